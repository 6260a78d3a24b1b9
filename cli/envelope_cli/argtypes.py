"""Argument types shared by the encrypt/decrypt and kms command lines, and the parser class
every `envelope` command line is built from."""

from __future__ import annotations

import argparse
import difflib
from typing import Any

__all__ = ["ArgumentParser", "positive_int"]

# Above this many choices the "choose from" list is left out when a close match is suggested
# (the kms operations are 50-odd names).
_LIST_CHOICES = 12


class ArgumentParser(argparse.ArgumentParser):
    """argparse with no abbreviated options (``--overw`` is not ``--overwrite``: an abbreviation
    that works today breaks when a longer option is added) and a "did you mean" for a mistyped
    choice, such as a command or operation name.

    Subparsers are made of the same class (argparse's default ``parser_class``), so one root
    parser carries both rules to every subcommand.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if choices is None or value in choices or not isinstance(value, str):
            super()._check_value(action, value)
            return
        names = [str(c) for c in choices]
        close = difflib.get_close_matches(value, names, n=1, cutoff=0.6)
        message = f"invalid choice: {value!r}"
        if close:
            message += f" (did you mean {close[0]!r}?)"
        if not close or len(names) <= _LIST_CHOICES:
            message += f" (choose from {', '.join(names)})"
        raise argparse.ArgumentError(action, message)


def positive_int(text: str) -> int:
    """An integer of at least 1 (argparse ``type=``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
