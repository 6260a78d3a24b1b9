"""`envelope kms serve` and the endpoint's access keys (`create-access-key`, `list-access-keys`, ...).

`add_commands` registers them on the `envelope kms` sub-parsers; `main` runs them standalone
(``python -m envelope_cli.kms_serve serve --port 8787``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from .argtypes import ArgumentParser
from .kms_store import DATABASE_HELP, DatabaseOption
from .kms_store import add_commands as add_store_commands

__all__ = ["add_commands", "main"]

_DATA_DIR_HELP = "the KMS data directory (default: $ENVELOPE_DATA_DIR or ~/.local/share/envelope)"


def _print(args: argparse.Namespace, value: Any, title: str) -> None:
    """JSON, or the global --output/--query when run as `envelope kms ...` (globalopts.py)."""
    opts = getattr(args, "globals", None)
    if opts is None:
        sys.stdout.write(json.dumps(value, indent=4) + "\n")
    else:
        from .output import emit

        emit(value, fmt=opts.output_format, query=opts.query, stream=sys.stdout, title=title,
             color=opts.color or "auto")
    sys.stdout.flush()


def _local(args: argparse.Namespace, command: str) -> None:
    """These commands work on the data directory itself: an endpoint option is a mistake."""
    opts = getattr(args, "globals", None)
    given = [f for f in getattr(opts, "given", ()) if f in ("--endpoint-url", "--profile", "--kms")]
    if given:
        from .exits import CLIError, ExitCode

        raise CLIError(f"{given[0]} does not apply to `kms {command}`: it works on the data directory",
                       ExitCode.AWS_USAGE, hint="run it on the machine that serves (use --data-dir)")


def _run_serve(args: argparse.Namespace) -> int:
    from envelope.kms.server import serve

    _local(args, "serve")
    given = getattr(getattr(args, "globals", None), "regions", None)  # `envelope --region R kms serve`
    regions = args.region or given or [os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                                       or "us-east-1"]
    access_log = None if args.access_log == "off" else (args.access_log or "-")

    def ready(url: str) -> None:
        print(f"envelope kms serve: listening on {url} (regions: {', '.join(regions)})", flush=True)

    serve(args.data_dir, args.host, args.port, regions, certfile=args.certfile, keyfile=args.keyfile,
          max_body=args.max_body, access_log=access_log, workers=args.workers, on_ready=ready,
          database=args.database)
    return 0


def _run_create(args: argparse.Namespace) -> int:
    from envelope.kms.server import AccessKeys

    _local(args, "create-access-key")
    keys = AccessKeys(args.data_dir, args.database)
    try:
        _print(args, keys.create(args.principal), "CreateAccessKey")
    finally:
        keys.close()
    return 0


def _run_list(args: argparse.Namespace) -> int:
    from envelope.kms.server import AccessKeys

    _local(args, "list-access-keys")
    keys = AccessKeys(args.data_dir, args.database)
    try:
        _print(args, keys.list(), "ListAccessKeys")
    finally:
        keys.close()
    return 0


def _run_delete(args: argparse.Namespace) -> int:
    from envelope.kms.server import AccessKeys

    _local(args, "delete-access-key")
    keys = AccessKeys(args.data_dir, args.database)
    try:
        keys.delete(args.access_key_id)
    except KeyError:
        # IAM's error for DeleteAccessKey, and the aws CLI's code for a service error (254).
        print("envelope: error: An error occurred (NoSuchEntity) when calling the DeleteAccessKey operation: "
              f"The Access Key with id {args.access_key_id} cannot be found.", file=sys.stderr)
        return 254
    finally:
        keys.close()
    return 0


def add_commands(kms_subparsers: Any) -> None:
    """Register ``serve``, ``create-access-key``, ``list-access-keys`` and ``delete-access-key``.

    Each parser sets ``run`` (a function of the parsed namespace returning the exit code).
    """
    serve = kms_subparsers.add_parser(
        "serve", help="serve the embedded KMS over HTTP (KMS JSON protocol, SigV4-authenticated)",
        description="Serve the embedded KMS to boto3, the aws CLI and other SDKs: "
                    "--endpoint-url http://HOST:PORT with an access key from create-access-key.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8787, help="port (default: 8787; 0 picks a free one)")
    serve.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    serve.add_argument("--database", action=DatabaseOption, default=None, metavar="URL", help=DATABASE_HELP)
    serve.add_argument("--region", action="append", default=None,
                       help="region served (repeatable; default: $AWS_REGION, $AWS_DEFAULT_REGION or us-east-1)")
    serve.add_argument("--certfile", default=None, help="TLS certificate (PEM); serves HTTPS with --keyfile")
    serve.add_argument("--keyfile", default=None, help="TLS private key (PEM)")
    serve.add_argument("--max-body", type=int, default=256 * 1024, metavar="BYTES",
                       help="largest request body accepted (default: 262144)")
    serve.add_argument("--access-log", default=None, metavar="FILE",
                       help="JSON-lines access log: a file, '-' for stderr (the default), or 'off'")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes (default: 1; SQLite serializes their writes)")
    serve.set_defaults(run=_run_serve)
    add_store_commands(kms_subparsers)

    create = kms_subparsers.add_parser(
        "create-access-key", help="create an access key for `kms serve` (prints IAM CreateAccessKey JSON)")
    create.add_argument("--principal", default=None, metavar="ARN",
                        help="the IAM principal the key acts as (default: the account root)")
    create.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    create.add_argument("--database", action=DatabaseOption, default=None, metavar="URL", help=DATABASE_HELP)
    create.set_defaults(run=_run_create)

    listing = kms_subparsers.add_parser("list-access-keys", help="list the access keys of `kms serve`")
    listing.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    listing.add_argument("--database", action=DatabaseOption, default=None, metavar="URL", help=DATABASE_HELP)
    listing.set_defaults(run=_run_list)

    delete = kms_subparsers.add_parser("delete-access-key", help="delete an access key of `kms serve`")
    delete.add_argument("--access-key-id", required=True)
    delete.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    delete.add_argument("--database", action=DatabaseOption, default=None, metavar="URL", help=DATABASE_HELP)
    delete.set_defaults(run=_run_delete)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one of the commands standalone; returns the exit code."""
    parser = ArgumentParser(prog="envelope kms", description="The embedded KMS's HTTP endpoint.")
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (ValueError, OSError, ImportError) as exc:
        print(f"envelope: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
