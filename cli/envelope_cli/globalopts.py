"""The aws CLI's global options (--output, --query, --region, --endpoint-url, ...), taken out of the
command line wherever they stand: before the service, between the service and the operation, or
after the operation, as `aws` accepts them.

One table (`GLOBAL_OPTIONS`) describes them; `split_global_options` removes them from argv before
argparse sees it, so every command gets them without declaring them. A command's own option of the
same spelling wins after the command name (`envelope encrypt --output FILE`, `kms serve --region`).
"""

from __future__ import annotations

import argparse
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .exits import CLIError, ExitCode

__all__ = ["GLOBAL_HELP", "GLOBAL_OPTIONS", "OUTPUT_FORMATS", "AWS_STYLE_COMMANDS", "GlobalOption", "GlobalOptions",
           "split_global_options"]

# https://docs.aws.amazon.com/cli/latest/userguide/cli-usage-output-format.html
OUTPUT_FORMATS = ("json", "text", "table", "yaml", "yaml-stream", "off")
SKELETON_KINDS = ("input", "yaml-input", "output")
# Commands that behave like `aws <service>`: every global option applies, and their exit codes are
# the aws CLI's (https://docs.aws.amazon.com/cli/latest/topic/return-codes.html).
AWS_STYLE_COMMANDS = ("kms", "sts")


@dataclass(frozen=True, slots=True)
class GlobalOption:
    flag: str
    dest: str
    help: str
    metavar: str | None = None  # None: a switch that takes no value
    choices: tuple[str, ...] = ()
    service_only: bool = False  # only for `envelope kms` / `envelope sts`, not encrypt/decrypt/inspect
    optional_value: str | None = None  # value when given bare (--generate-cli-skeleton)


GLOBAL_OPTIONS: tuple[GlobalOption, ...] = (
    GlobalOption("--debug", "debug", "log each step (and botocore's) to stderr; never logs plaintext or keys"),
    GlobalOption("--endpoint-url", "endpoint_url", "call this KMS endpoint through boto3 (an `envelope kms serve` "
                 "or AWS) instead of the embedded service", "URL"),
    GlobalOption("--no-verify-ssl", "no_verify_ssl", "do not verify the endpoint's TLS certificate"),
    GlobalOption("--ca-bundle", "ca_bundle", "CA certificates (PEM) to verify the endpoint with", "FILE"),
    GlobalOption("--profile", "profile", "use this profile of ~/.aws/config (implies boto3, --kms aws)", "NAME"),
    GlobalOption("--region", "region", "region (default: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's, "
                 "or us-east-1 for the embedded service)", "REGION"),
    GlobalOption("--kms", "kms", "which KMS to call: embedded (the local service) or aws (boto3 with the "
                 "standard credential chain); default: aws with --endpoint-url or --profile, else "
                 "$ENVELOPE_KMS, else aws if $AWS_ENDPOINT_URL_KMS or $AWS_ENDPOINT_URL is set, else embedded",
                 "WHICH", ("embedded", "aws")),
    GlobalOption("--cli-read-timeout", "cli_read_timeout", "socket read timeout in seconds (0: none; default 60)",
                 "SECONDS"),
    GlobalOption("--cli-connect-timeout", "cli_connect_timeout", "socket connect timeout in seconds (0: none; "
                 "default 60)", "SECONDS"),
    GlobalOption("--output", "output", "output format (default: $AWS_DEFAULT_OUTPUT or json)", "FORMAT",
                 OUTPUT_FORMATS, service_only=True),
    GlobalOption("--query", "query", "JMESPath expression applied to the response before printing", "JMESPATH",
                 service_only=True),
    GlobalOption("--color", "color", "table colours (default: auto, on for a terminal)", "WHEN",
                 ("on", "off", "auto"), service_only=True),
    GlobalOption("--no-paginate", "no_paginate", "one call only: print the first page as the service returned it",
                 service_only=True),
    GlobalOption("--no-cli-pager", "no_cli_pager", "print straight to stdout (envelope never starts a pager; "
                 "accepted for scripts written for aws CLI v2)", service_only=True),
    GlobalOption("--cli-binary-format", "cli_binary_format", "how inline blob arguments are read (default: "
                 "base64)", "FORMAT", ("base64", "raw-in-base64-out"), service_only=True),
    GlobalOption("--cli-input-json", "cli_input_json", "the operation's parameters as JSON (a string or "
                 "file://FILE); flags given on the command line win", "JSON", service_only=True),
    GlobalOption("--cli-input-yaml", "cli_input_yaml", "the operation's parameters as YAML (a string or "
                 "file://FILE); needs PyYAML", "YAML", service_only=True),
    GlobalOption("--generate-cli-skeleton", "generate_cli_skeleton", "print a template of the parameters "
                 "(input, the default; yaml-input) or of the response (output), and call nothing", "KIND",
                 SKELETON_KINDS, service_only=True, optional_value="input"),
    GlobalOption("--principal", "principal", "embedded service only: call as this IAM principal ARN "
                 "(default: $ENVELOPE_PRINCIPAL or the account root)", "ARN", service_only=True),
    GlobalOption("--database", "database", "embedded service only: its store, a postgresql:// URL shared by "
                 "`kms serve` instances (default: $ENVELOPE_KMS_DATABASE, else the data directory's SQLite files)",
                 "URL"),
)

_BY_FLAG = {option.flag: option for option in GLOBAL_OPTIONS}

def _help_entry(option: GlobalOption) -> str:
    head = f"  {option.flag}{' ' + option.metavar if option.metavar else ''}"
    text = option.help + (f" ({'|'.join(option.choices)})" if option.choices and option.flag != "--kms" else "")
    return head + "\n" + textwrap.fill(text, 100, initial_indent="      ", subsequent_indent="      ")


GLOBAL_HELP = ("global options (before the command, between the service and the operation, or after it, "
               "as with `aws`):\n" + "\n".join(_help_entry(o) for o in GLOBAL_OPTIONS))


@dataclass(slots=True)
class GlobalOptions:
    """The global options given, as parsed values (None: not given)."""

    debug: bool = False
    endpoint_url: str | None = None
    no_verify_ssl: bool = False
    ca_bundle: str | None = None
    profile: str | None = None
    region: str | None = None
    kms: str | None = None
    cli_read_timeout: int | None = None
    cli_connect_timeout: int | None = None
    output: str | None = None
    query: str | None = None
    color: str | None = None
    no_paginate: bool = False
    no_cli_pager: bool = False
    cli_binary_format: str | None = None
    cli_input_json: str | None = None
    cli_input_yaml: str | None = None
    generate_cli_skeleton: str | None = None
    principal: str | None = None
    database: str | None = None
    regions: list[str] = field(default_factory=list)  # every --region given, in order (`kms serve` serves each)
    given: list[str] = field(default_factory=list)  # flags given, in order

    @property
    def output_format(self) -> str:
        """--output, else $AWS_DEFAULT_OUTPUT, else the profile's ``output`` in ~/.aws/config, else json
        (the aws CLI's order)."""
        fmt = self.output or os.environ.get("AWS_DEFAULT_OUTPUT") or self._profile_output() or "json"
        if fmt not in OUTPUT_FORMATS:
            raise CLIError(f"output format {fmt!r} (from AWS_DEFAULT_OUTPUT or the profile) is not one of: "
                           f"{', '.join(OUTPUT_FORMATS)}", ExitCode.AWS_CONFIG)
        return fmt

    def _profile_output(self) -> str | None:
        try:
            import botocore.session  # type: ignore[import-untyped]
            from botocore.exceptions import BotoCoreError  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - botocore comes with the cli extra
            return None
        try:
            value = botocore.session.Session(profile=self.profile).get_scoped_config().get("output")
        except BotoCoreError:
            return None  # an unknown profile is reported where the profile is used
        return str(value) if value else None


def _usage(message: str) -> CLIError:
    return CLIError(message, ExitCode.USAGE)


def _set(options: GlobalOptions, option: GlobalOption, value: str | None) -> None:
    if option.metavar is None:
        setattr(options, option.dest, True)
    else:
        text = value if value is not None else option.optional_value
        if text is None:  # pragma: no cover - split_global_options always finds a value or fails
            raise RuntimeError("envelope: internal error: global option without a value")
        if option.choices and text not in option.choices:
            raise _usage(f"argument {option.flag}: invalid choice: {text!r} (choose from {', '.join(option.choices)})")
        parsed: Any = text
        if option.dest in ("cli_read_timeout", "cli_connect_timeout"):
            try:
                parsed = int(text)
            except ValueError:
                raise _usage(f"argument {option.flag}: not a whole number of seconds: {text!r}") from None
            if parsed < 0:
                raise _usage(f"argument {option.flag}: must be 0 (no timeout) or more")
        setattr(options, option.dest, parsed)
        if option.dest == "region":
            options.regions.append(parsed)
        if option.dest == "database":
            if not text.startswith(("postgresql://", "postgres://")):
                raise _usage(f"argument {option.flag}: not a postgresql:// URL")
            os.environ["ENVELOPE_KMS_DATABASE"] = text  # every embedded client of this process (LocalKMS)
    options.given.append(option.flag)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps sub-commands only on this (documented) attribute
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _own_flags(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def split_global_options(argv: Sequence[str], parser: argparse.ArgumentParser
                         ) -> tuple[GlobalOptions, list[str], list[str]]:
    """Take the global options out of ``argv``.

    :returns: the options, the remaining arguments for ``parser``, and the command path
        (e.g. ``["kms", "list-aliases"]``) as far as it could be read.
    :raises CLIError: (usage) for a bad value, or a service-only option given to another command.
    """
    options = GlobalOptions()
    rest: list[str] = []
    path: list[str] = []
    current = parser
    children = _subparsers(current)
    own: set[str] = set()
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--":
            rest.extend(tokens[i:])
            break
        flag, eq, inline = token.partition("=")
        option = _BY_FLAG.get(flag) if token.startswith("--") and flag not in own else None
        if option is not None:
            value: str | None = None
            if option.metavar is not None:
                if eq:
                    value = inline
                elif option.optional_value is not None:
                    if i + 1 < len(tokens) and tokens[i + 1] in option.choices:
                        value = tokens[i + 1]
                        i += 1
                elif i + 1 < len(tokens):
                    value = tokens[i + 1]
                    i += 1
                else:
                    raise _usage(f"argument {option.flag}: expected one argument")
            elif eq:
                raise _usage(f"argument {option.flag}: ignored explicit argument {inline!r}")
            _set(options, option, value)
            i += 1
            continue
        if not token.startswith("-") and token in children:
            # The next sub-command level: its own options shadow global ones from here on.
            path.append(token)
            current = children[token]
            children = _subparsers(current)
            own = _own_flags(current)
        elif not token.startswith("-"):
            children = {}  # a value or positional: no further sub-command levels
        rest.append(token)
        i += 1
    if path and path[0] not in AWS_STYLE_COMMANDS:
        misplaced = [f for f in options.given if _BY_FLAG[f].service_only]
        if misplaced:
            raise _usage(f"{misplaced[0]} applies to `envelope kms` and `envelope sts`, not `envelope {path[0]}`")
    return options, rest, path
