"""`envelope rewrap`: change which keys can decrypt messages, without re-encrypting their bodies."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import envelope

from .crypt import add_context_argument, parse_context
from .exits import CLIError, ExitCode, naming_input
from .files import STDIO, OutputFile, file_mode, is_stream_target
from .keys import KeySpec, add_key_arguments, build_keyring, keyring_options

__all__ = ["add_parser", "run_rewrap"]


class _NewKeys(argparse.Action):
    """``--to``: the key flags after it are the new keys."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if getattr(namespace, "new_from", None) is not None:
            parser.error("--to may be given only once")
        namespace.new_from = len(getattr(namespace, "keys", None) or [])


def add_parser(subparsers: Any, epilog: str) -> None:
    parser = subparsers.add_parser(
        "rewrap", help="change the keys that can decrypt messages (the body is not re-encrypted)",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog,
        description="Give each message new encrypted data keys: the key flags before --to unwrap today's\n"
                    "data key (as for decrypt; none: every embedded KMS key the message names), those after\n"
                    "--to wrap it anew. The message id, encryption context and (unsigned) body stay as they\n"
                    "are. Files are rewritten in place, atomically: a failure leaves them untouched.\n\n"
                    "  envelope rewrap secret.envelope --aes-key-file old.key --to --kms-key alias/new\n"
                    "  envelope rewrap -r backups/ --to --kms-key alias/a --kms-key alias/b\n"
                    "  envelope rewrap secret.envelope --add --to --rsa-public-key bob.pem\n"
                    "  envelope rewrap secret.envelope --remove-key bob --dry-run")
    parser.add_argument("inputs", nargs="+", metavar="FILE",
                        help="messages to rewrap in place; directories with -r; - reads stdin (to stdout)")
    parser.add_argument("-o", "--output", metavar="PATH",
                        help="write to PATH instead of in place (one input); - writes stdout")
    parser.add_argument("--overwrite", action="store_true", help="let -o replace an existing file")
    parser.add_argument("-r", "--recursive", action="store_true",
                        help="rewrap the files under directories that end with --suffix")
    parser.add_argument("--suffix", default=".envelope", help="with -r, the files to take (default: .envelope)")
    parser.add_argument("--to", action=_NewKeys, nargs=0, dest="new_from",
                        help="the key flags after this are the new keys")
    parser.add_argument("--add", action="store_true",
                        help="keep the message's keys and add the new ones (unsigned suites)")
    parser.add_argument("--remove-key", action="append", default=[], metavar="NAME",
                        help="drop the data key wrapped by NAME, a KMS key ARN or a raw key's name as "
                             "`envelope inspect` lists them (repeatable; unsigned suites)")
    parser.add_argument("--dry-run", action="store_true",
                        help="rewrap into nothing and list each message's keys before and after")
    add_context_argument(parser, decrypt=True)
    parser.add_argument("--commitment-policy", choices=[p.name for p in envelope.CommitmentPolicy],
                        help="default: REQUIRE_ENCRYPT_REQUIRE_DECRYPT")
    add_key_arguments(parser, decrypt=True)
    parser.set_defaults(run=run_rewrap, new_from=None)


def _inputs(args: argparse.Namespace) -> list[str]:
    found: list[str] = []
    for item in args.inputs:
        if item != STDIO and os.path.isdir(item):
            if not args.recursive:
                raise CLIError(f"{item} is a directory", ExitCode.USAGE, hint="pass -r to rewrap the files under it")
            found += sorted(str(p) for p in Path(item).rglob("*" + args.suffix) if p.is_file())
        else:
            found.append(item)
    if STDIO in found and len(found) > 1:
        raise CLIError("stdin ('-') cannot be combined with other inputs", ExitCode.USAGE)
    if args.output is not None and len(found) != 1:
        raise CLIError("-o takes one input", ExitCode.USAGE, hint="without -o, files are rewrapped in place")
    return found


def _keyrings(args: argparse.Namespace) -> tuple[Any, Any]:
    keys: list[KeySpec] = list(args.keys)
    split = len(keys) if args.new_from is None else args.new_from
    old, new = keys[:split], keys[split:]
    if not new and not args.remove_key:
        raise CLIError("no new key: put the new key flags after --to", ExitCode.USAGE,
                       hint="for example: envelope rewrap FILE --to --kms-key alias/new")
    options = keyring_options(args)  # the KMS (embedded or an endpoint) and the discovery filter
    old_keyring, _ = build_keyring(old, args.key_defaults, decrypt=True, **options)
    new_keyring = (build_keyring(new, args.key_defaults, decrypt=False, connection=options["connection"])[0]
                   if new else None)
    return old_keyring, new_keyring


def _key_list(header: envelope.Header) -> str:
    return "; ".join(f"{edk.provider_id} {envelope.edk_key_name(edk)}" for edk in header.encrypted_data_keys)


def run_rewrap(args: argparse.Namespace) -> int:
    inputs = _inputs(args)
    context, bare = parse_context(args.encryption_context, decrypt=True)
    if bare:
        raise CLIError(f"bad encryption context {bare[0]!r}: rewrap needs K=V", ExitCode.USAGE)
    old_keyring, new_keyring = _keyrings(args)
    options: dict[str, Any] = {"keyring": old_keyring, "new_keyring": new_keyring, "keep_existing": args.add,
                               "remove_keys": args.remove_key, "commitment_policy": args.commitment_policy,
                               "encryption_context": context or None}
    for source in inputs:
        with naming_input(source, many=len(inputs) > 1), ExitStack() as stack:
            src = sys.stdin.buffer if source == STDIO else stack.enter_context(open(source, "rb"))
            if args.dry_run:
                _dry_run(source, src, options)
                continue
            try:
                _rewrap_one(source, src, args.output, args.overwrite, options, stack)
            except envelope.PolicyError as exc:
                if args.add or args.remove_key:
                    raise CLIError(exc.args[0], ExitCode.POLICY,
                                   hint="name every key that should decrypt it after --to, without --add or "
                                        "--remove-key") from None
                raise
    return ExitCode.OK


def _dry_run(source: str, src: IO[bytes], options: dict[str, Any]) -> None:
    """Rewrap into nothing (the keys are really unwrapped and wrapped) and list the keys."""
    if not src.seekable():
        raise CLIError("--dry-run reads the message twice and needs a file, not a stream", ExitCode.USAGE)
    before = envelope.read_header(src)
    src.seek(0)
    after = envelope.rewrap(src, _Discard(), **options)
    print(f"{source}:\n  before: {_key_list(before)}\n  after:  {_key_list(after)}")


def _rewrap_one(source: str, src: IO[bytes], output: str | None, overwrite: bool, options: dict[str, Any],
                stack: ExitStack) -> None:
    target = output if output is not None else (STDIO if source == STDIO else source)
    if target == STDIO or is_stream_target(target):
        if target == STDIO:
            raw = sys.stdout.buffer
        else:
            raw = stack.enter_context(open(target, "wb"))  # noqa: SIM115 - a device or pipe, written in place
        if raw.isatty():
            raise CLIError("refusing to write a binary message to the terminal", ExitCode.USAGE,
                           hint="redirect stdout or pass -o FILE")
        envelope.rewrap(src, raw, **options)
        raw.flush()
        return
    mode = file_mode(source) if source != STDIO else 0o600
    # In place is what rewrap is for; another existing file is replaced only with --overwrite.
    out = stack.enter_context(OutputFile(target, overwrite=overwrite or target == source, mode=mode))
    envelope.rewrap(src, out.file, **options)
    out.commit()


class _Discard:
    def write(self, data: Any) -> int:
        return len(data)
