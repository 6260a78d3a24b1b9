"""`envelope inspect FILE`: show a message header without keys and without decrypting."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from envelope import Header, read_header

from .exits import ExitCode, naming_input
from .files import STDIO, refuse_empty_message
from .headers import header_dict

__all__ = ["add_parser", "run_inspect"]


def add_parser(subparsers: Any, epilog: str) -> None:
    parser = subparsers.add_parser(
        "inspect", help="show a message header without decrypting", epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print a message's header: format version, algorithm suite, message id, encryption\n"
                    "context, the encrypted data keys' providers and key ids, and the frame length.\n"
                    "Nothing is decrypted or authenticated: a tampered header prints the same way.")
    parser.add_argument("inputs", nargs="+", metavar="FILE", help="message files; - reads stdin")
    parser.add_argument("--output", dest="format", choices=["text", "json"], default="text",
                        help="text (default) or one JSON object per file")
    parser.set_defaults(run=run_inspect)


def _text(name: str, info: dict[str, Any], many: bool) -> str:
    lines = [f"{name}:"] if many else []
    pad = "  " if many else ""
    lines += [
        f"{pad}version:         {info['version']}",
        f"{pad}algorithm:       {info['algorithm']} ({info['algorithm_id']})",
        f"{pad}message id:      {info['message_id']}",
        f"{pad}content type:    {info['content_type']}",
        f"{pad}frame length:    {info['frame_length']}",
        f"{pad}encryption context:" + ("" if info["encryption_context"] else " (empty)"),
    ]
    lines += [f"{pad}  {k} = {v}" for k, v in sorted(info["encryption_context"].items())]
    lines.append(f"{pad}encrypted data keys: {len(info['encrypted_data_keys'])}")
    lines += [f"{pad}  {edk['provider_id']}  {edk['key_id']}" for edk in info["encrypted_data_keys"]]
    return "\n".join(lines)


def _read(name: str) -> Header:
    if name == STDIO:
        return read_header(sys.stdin.buffer)
    refuse_empty_message(name)
    with open(name, "rb") as fp:
        return read_header(fp)


def run_inspect(args: argparse.Namespace) -> int:
    many = len(args.inputs) > 1
    for name in args.inputs:
        with naming_input(name, many=many):
            header = _read(name)
        info = header_dict(header)
        if args.format == "json":
            print(json.dumps({"file": name, **info}, sort_keys=True))
        else:
            print(_text(name, info, many))
    return ExitCode.OK
