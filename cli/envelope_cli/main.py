"""The `envelope` entry point: argparse wiring, dispatch, and errors to exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import envelope

from . import crypt, ecdh_keys, inspect_cmd, rewrap_cmd
from .argtypes import ArgumentParser
from .exits import EXIT_CODES_HELP, ExitCode, aws_exit_code, report
from .files import Interrupted, discard_all, install_signal_handlers, restore_signal_handlers
from .globalopts import AWS_STYLE_COMMANDS, GLOBAL_HELP, split_global_options

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="envelope", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=GLOBAL_HELP + "\n\n" + EXIT_CODES_HELP,
        description="Envelope encryption of files and streams (AWS Encryption SDK message format),\n"
                    "and an embedded key-management service driven like `aws kms`.")
    parser.add_argument("--version", action="version", version=f"envelope {envelope.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    crypt.add_parsers(sub, EXIT_CODES_HELP)
    inspect_cmd.add_parser(sub, EXIT_CODES_HELP)
    rewrap_cmd.add_parser(sub, EXIT_CODES_HELP)
    ecdh_keys.add_parser(sub, EXIT_CODES_HELP)
    try:
        from . import kms_cmd
    except ImportError:  # pragma: no cover - the kms commands need the embedded service
        pass
    else:
        kms_cmd.add_parsers(sub, EXIT_CODES_HELP)
        from . import branch_key_cmd

        branch_key_cmd.add_parsers(sub, EXIT_CODES_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns (and, as a console script, exits with) its exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    aws_style = False
    try:
        # The global options (--output, --region, --endpoint-url, ...) may stand anywhere, as with `aws`.
        opts, rest, path = split_global_options(argv, parser)
        aws_style = bool(path) and path[0] in AWS_STYLE_COMMANDS
        try:
            args = parser.parse_args(rest)
        except SystemExit as exc:
            # argparse's usage errors exit 2; `envelope kms`/`sts` exit as `aws` does (252).
            code = exc.code if isinstance(exc.code, int) else ExitCode.USAGE
            return aws_exit_code(code) if aws_style and code else code
        args.globals = opts
        from .clients import configure_debug

        undo_debug = configure_debug(opts)
    except Exception as exc:  # noqa: BLE001 - a bad global option reaches the user as one line
        return report(exc, aws=aws_style or _names_aws_command(argv))
    previous = install_signal_handlers()
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        discard_all()
        print("envelope: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Interrupted:
        discard_all()
        print("envelope: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): say nothing and end with SIGPIPE's status, as
        # other Unix tools do; point stdout at /dev/null so the interpreter's final flush does
        # not fail again.
        discard_all()
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return ExitCode.BROKEN_PIPE  # every command: a closed pipe is no failure of the call
    except Exception as exc:  # noqa: BLE001 - every error reaches the user as one line plus a hint
        discard_all()
        return report(exc, aws=aws_style)
    finally:
        restore_signal_handlers(previous)
        undo_debug()


def _names_aws_command(argv: Sequence[str]) -> bool:
    return any(token in AWS_STYLE_COMMANDS for token in argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
