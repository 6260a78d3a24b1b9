"""`--help` for every command is complete: it runs, names the flags, and documents exit codes."""

from __future__ import annotations

import argparse

import pytest
from _cli_helpers import run_envelope
from envelope_cli.kms_table import OPERATIONS
from envelope_cli.main import build_parser

COMMANDS = [["encrypt"], ["decrypt"], ["inspect"], ["kms"], ["sts"], ["sts", "get-caller-identity"],
            ["kms", "audit"], ["kms", "audit", "lookup"], ["kms", "audit", "verify"], ["kms", "audit", "head"],
            ["kms", "audit", "export"]] + [["kms", name] for name in OPERATIONS]


def _flag(param: str) -> str:
    out = "".join("-" + c.lower() if c.isupper() else c for c in param)
    return "-" + out


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_help(cli, command: list[str]) -> None:
    r = cli(*command, "--help")
    assert r.code == 0
    assert r.text.startswith("usage: envelope " + " ".join(command))
    assert "exit codes:" in r.text and "130" in r.text
    if command[0] == "kms" and len(command) == 2 and command[1] in OPERATIONS:
        for param in OPERATIONS[command[1]].params:
            assert _flag(param) in r.text
        for option in ("--region", "--output", "--query"):
            assert option in r.text


# `kms serve` and its access-key commands come from kms_serve.py (another module's owner).
_NOT_OURS = {"serve", "create-access-key", "list-access-keys", "delete-access-key"}


def test_every_argument_has_help() -> None:
    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    if name not in _NOT_OURS:
                        walk(sub, f"{path} {name}")
            elif action.help is None:
                raise AssertionError(f"{path}: {action.option_strings or action.dest} has no help")

    walk(build_parser(), "envelope")


def test_flag_spelling_follows_aws() -> None:
    assert _flag("PendingWindowInDays") == "--pending-window-in-days"
    assert _flag("CiphertextBlob") == "--ciphertext-blob"


def test_console_script_runs() -> None:
    r = run_envelope("--version")
    assert r.returncode == 0 and r.stdout.startswith(b"envelope ")
    r = run_envelope("encrypt")
    assert r.returncode == 2 and b"usage: envelope encrypt" in r.stderr
