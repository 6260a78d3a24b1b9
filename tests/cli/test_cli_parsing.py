"""Command-line parsing: no abbreviated options anywhere, and a "did you mean" for a mistyped
command, operation or verb."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from envelope_cli.main import build_parser

Run = Callable[..., Any]


def _usage_code(argv: list[str]) -> int:
    # `envelope kms` exits as the aws CLI does on a usage error (252); the other commands with 2.
    return 252 if argv[0] == "kms" else 2


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:  # argparse keeps the subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _parsers(sub)


def test_every_parser_refuses_abbreviations() -> None:
    parsers = list(_parsers(build_parser()))
    assert len(parsers) > 50  # the commands, every kms operation, the audit verbs
    assert [p.prog for p in parsers if p.allow_abbrev] == []


@pytest.mark.parametrize("argv", [["encrypt", "--overw", "x"], ["decrypt", "--refuse-sign", "x"],
                                  ["kms", "list-keys", "--max-it", "2"]], ids=["encrypt", "decrypt", "kms"])
def test_an_abbreviated_option_is_a_usage_error(cli: Run, argv: list[str]) -> None:
    result = cli(*argv)
    assert result.code == _usage_code(argv)
    assert f"unrecognized arguments: {argv[-2] if argv[0] == 'kms' else argv[1]}" in result.err


@pytest.mark.parametrize(("argv", "suggestion"), [
    (["encrpyt"], "'encrypt'"),
    (["kms", "list-key"], "'list-keys'"),
    (["kms", "create-alais"], "'create-alias'"),
    (["kms", "audit", "veryfy"], "'verify'"),
], ids=["command", "kms-operation", "kms-operation-2", "audit-verb"])
def test_did_you_mean(cli: Run, argv: list[str], suggestion: str) -> None:
    result = cli(*argv)
    assert result.code == _usage_code(argv)
    assert f"invalid choice: {argv[-1]!r} (did you mean {suggestion}?)" in result.err


def test_short_choice_lists_stay_and_long_ones_go_with_a_suggestion(cli: Run) -> None:
    command = cli("encrpyt").err
    assert "(choose from encrypt, decrypt, inspect, " in command
    operation = cli("kms", "list-key").err
    assert "choose from" not in operation  # 50-odd operations: the suggestion is enough
    nothing_close = cli("kms", "zzzz").err
    assert "did you mean" not in nothing_close and "choose from cancel-key-deletion" in nothing_close  # the table's (alphabetical) order, as aws kms lists them
