"""`envelope encrypt` and `envelope decrypt`: files, directories and pipes, one message per file."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from typing import IO, Any, cast

import envelope

from .argtypes import positive_int
from .exits import NO_KEY_HINT, CLIError, ExitCode, describe, naming_input
from .files import STDIO, Job, OutputFile, file_mode, is_stream_target, plan_jobs, refuse_empty_message, regular_size
from .headers import edk_key_id, header_dict
from .keys import add_key_arguments, build_keyring, keyring_options
from .progress import Progress, describe_job, make_progress

__all__ = ["add_context_argument", "add_parsers", "parse_context", "run_decrypt", "run_encrypt"]

DEFAULT_SUFFIX = ".envelope"
_DEFAULT = object()  # "flag not given", where None means "no limit"
_SIZE = re.compile(r"^(\d+)\s*([kmg]?)(?:i?b)?$", re.IGNORECASE)


def _size(text: str) -> int:
    match = _SIZE.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 4096, 64K, 1M)")
    return int(match.group(1)) * (1 << (10 * " kmg".index((match.group(2) or " ").lower())))


def _suite(text: str) -> envelope.AlgorithmSuite:
    try:
        return envelope.AlgorithmSuite.coerce(text)
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(
            f"unknown algorithm suite {text!r}; one of: {', '.join(s.name for s in envelope.AlgorithmSuite)}") from None


def _byte_range(text: str) -> tuple[int, int | None]:
    """START:END in plaintext bytes, END exclusive, either side optional (as a Python slice)."""
    start_text, sep, end_text = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"not a range: {text!r} (examples: 0:4096, 1M:2M, 10G:)")
    start = _size(start_text) if start_text.strip() else 0
    end = _size(end_text) if end_text.strip() else None
    if end is not None and end < start:
        raise argparse.ArgumentTypeError(f"the range {text!r} ends before it starts")
    return start, end


def _ratio(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError("must be 0 (no limit) or more")
    return value or None


def _common(parser: argparse.ArgumentParser, decrypt: bool) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="files or directories (with -r) to read; - reads stdin")
    parser.add_argument("-o", "--output", metavar="PATH",
                        help="output file, or directory for several inputs; - writes stdout (default: "
                             "beside each input, or stdout for stdin)")
    parser.add_argument("-r", "--recursive", action="store_true", help="process directories recursively")
    parser.add_argument("--suffix", default=DEFAULT_SUFFIX,
                        help=f"suffix encrypt appends and decrypt strips (default: {DEFAULT_SUFFIX}; decrypt "
                             "appends .decrypted to names without it)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs (never the input); without it an existing output is an error")
    add_context_argument(parser, decrypt=decrypt)
    parser.add_argument("--commitment-policy", choices=[p.name for p in envelope.CommitmentPolicy],
                        help="default: REQUIRE_ENCRYPT_REQUIRE_DECRYPT")
    parser.add_argument("--max-encrypted-data-keys", type=positive_int, metavar="N",
                        help="refuse messages with more encrypted data keys")
    parser.add_argument("--caching", type=float, metavar="SECONDS",
                        help="reuse data keys / unwrapped keys for this long within one run "
                             "(caching materials manager; helps many small files)")
    parser.add_argument("--metadata-output", metavar="FILE",
                        help="write one JSON line per file (header, context, keys, sizes); - for stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_key_arguments(parser, decrypt=decrypt)


def add_context_argument(parser: argparse.ArgumentParser, *, decrypt: bool) -> None:
    parser.add_argument("-c", "--encryption-context", action="append", default=[], metavar="K=V",
                        help=("on decrypt, K=V requires that pair and a bare K requires the key (repeatable)"
                              if decrypt else "authenticated context stored in the header (repeatable)"))


def add_parsers(subparsers: Any, epilog: str) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    enc = subparsers.add_parser(
        "encrypt", help="encrypt files or stdin", formatter_class=fmt, epilog=epilog,
        description="Encrypt each input into an ESDK-compatible message (FILE -> FILE.envelope).\n"
                    "Output appears only when complete; an existing output is never replaced without "
                    "--overwrite.")
    _common(enc, decrypt=False)
    enc.add_argument("--algorithm", type=_suite, metavar="SUITE",
                     help="algorithm suite (default: AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384)")
    enc.add_argument("--frame-length", type=_size, metavar="BYTES",
                     help="plaintext bytes per frame, e.g. 64K or 1M (default 1M; 0: non-framed)")
    enc.add_argument("--compress", action="store_true", help="compress with zstd before encrypting")
    enc.add_argument("--compression-level", type=int, metavar="N", help="zstd level (default 3; needs --compress)")
    enc.set_defaults(run=run_encrypt)

    dec = subparsers.add_parser(
        "decrypt", help="decrypt files or stdin", formatter_class=fmt, epilog=epilog,
        description="Decrypt and authenticate each input (FILE.envelope -> FILE).\n"
                    "A file output appears only after the whole message authenticated; a failed or\n"
                    "interrupted decrypt leaves no partial plaintext. To stdout, plaintext is written\n"
                    "frame by frame as it authenticates: on a non-zero exit, discard what was written.")
    _common(dec, decrypt=True)
    dec.add_argument("--refuse-signed", action="store_true",
                     help="refuse messages with signing suites (only unsigned messages decrypt)")
    dec.add_argument("--max-decompressed-size", type=_size, metavar="BYTES",
                     help="for compressed messages: refuse more output than this, e.g. 10G (default: no limit)")
    dec.add_argument("--max-compression-ratio", type=_ratio, metavar="N", default=_DEFAULT,
                     help="for compressed messages: refuse output larger than N times the compressed input, "
                          "a decompression-bomb guard (default 1000; 0: no limit)")
    dec.add_argument("--range", type=_byte_range, metavar="START:END", dest="byte_range",
                     help="decrypt only plaintext bytes START to END (END exclusive; either may be omitted; "
                          "sizes like 1M), reading only the frames they touch; one framed, uncompressed input")
    dec.add_argument("--allow-unverified-signature", action="store_true",
                     help="with --range, read a signed message by its frame tags alone: its signature covers "
                          "the whole message and is NOT checked")
    dec.set_defaults(run=run_decrypt)


def parse_context(items: list[str], *, decrypt: bool) -> tuple[dict[str, str], list[str]]:
    pairs: dict[str, str] = {}
    bare: list[str] = []
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise CLIError(f"bad encryption context {item!r}: expected K=V", ExitCode.USAGE)
        if not sep:
            if not decrypt:
                raise CLIError(f"bad encryption context {item!r}: expected K=V", ExitCode.USAGE,
                               hint="a bare key (without =V) is only meaningful on decrypt")
            bare.append(key)
        elif pairs.get(key, value) != value:
            raise CLIError(f"encryption context key {key!r} given twice with different values", ExitCode.USAGE)
        else:
            pairs[key] = value
    return pairs, bare


_KEYS_NAMED = 5  # in the no-key hint; a header may carry many


class _DecryptManager:
    """The CLI's own steps around the materials manager on decrypt, where the header's encrypted
    data keys and context are at hand (parsed, not yet authenticated):

    - refuse, before any key is unwrapped, a message whose context lacks a key required by a bare
      ``-c K``. The header context is authenticated right after (before any plaintext), so a forged
      header cannot pass this check and then release plaintext;
    - when no key flag fits, name the keys that wrapped the data key in the hint.
    """

    def __init__(self, inner: Any, required_keys: list[str]) -> None:
        self._inner = inner
        self._required_keys = required_keys

    def get_encryption_materials(self, request: Any) -> Any:
        return self._inner.get_encryption_materials(request)

    def decrypt_materials(self, request: envelope.DecryptionRequest) -> Any:
        missing = [k for k in self._required_keys if k not in request.encryption_context]
        if missing:
            raise envelope.PolicyError(f"the message's encryption context lacks the required key(s) "
                                       f"{', '.join(map(repr, missing))}")
        try:
            return self._inner.decrypt_materials(request)
        except envelope.NoMatchingKeyError as exc:
            named = _name_the_wrapping_keys(exc, request.encrypted_data_keys)
            if named is None:
                raise
            raise named from exc


def _name_the_wrapping_keys(exc: envelope.NoMatchingKeyError,
                            edks: Sequence[envelope.EncryptedDataKey]) -> CLIError | None:
    """``exc`` with a hint naming the keys that wrapped the data key (the header names them in
    clear), unless `describe` has a more specific hint than the generic one (disabled key, ...)."""
    code, text, hint = describe(exc)
    if hint != NO_KEY_HINT or not edks:
        return None
    keys = "; ".join(f"{edk.provider_id} {edk_key_id(edk)}" for edk in edks[:_KEYS_NAMED])
    if len(edks) > _KEYS_NAMED:
        keys += f" and {len(edks) - _KEYS_NAMED} more (`envelope inspect` lists them)"
    return CLIError(text, code, hint=f"the message's data key was wrapped by {keys}; pass that key "
                                     "(--kms-key, --aes-key-file, --rsa-private-key or --identity)")


def _manager(args: argparse.Namespace, decrypt: bool) -> tuple[Any, list[str]]:
    keyring, names = build_keyring(args.keys, args.key_defaults, decrypt=decrypt, **keyring_options(args))
    if args.caching is None:
        return envelope.DefaultMaterialsManager(keyring), names
    caching = getattr(envelope, "CachingMaterialsManager", None)
    cache = getattr(envelope, "LocalCache", None)
    if caching is None or cache is None:
        raise CLIError("--caching needs envelope.CachingMaterialsManager and envelope.LocalCache, "
                       "which this build does not export", ExitCode.USAGE)
    if args.caching <= 0:
        raise CLIError("--caching needs a positive number of seconds", ExitCode.USAGE)
    return caching(keyring=keyring, cache=cache(capacity=100), max_age=args.caching), names


class _CountingSink:
    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.count = 0

    def write(self, data: Any) -> int:
        n = self._raw.write(data) or 0
        self.count += len(data) if not isinstance(data, memoryview) else data.nbytes
        return n


def _total_size(jobs: list[Job]) -> int | None:
    total = 0
    for job in jobs:
        size = regular_size(job.source)
        if size is None:
            return None
        total += size
    return total


def _open_source(source: str, stack: ExitStack) -> IO[bytes]:
    if source == STDIO:
        return sys.stdin.buffer
    return stack.enter_context(open(source, "rb"))


def _run(args: argparse.Namespace, decrypt: bool) -> int:
    mode = "decrypt" if decrypt else "encrypt"
    if not decrypt and args.compression_level is not None and not args.compress:
        raise CLIError("--compression-level needs --compress", ExitCode.USAGE)
    context, bare = parse_context(args.encryption_context, decrypt=decrypt)
    jobs = plan_jobs(args.inputs, args.output, mode=mode, suffix=args.suffix, recursive=args.recursive)
    if not jobs:
        print(f"envelope: nothing to {mode}", file=sys.stderr)
        return ExitCode.OK
    if args.metadata_output == STDIO and any(job.target == STDIO for job in jobs):
        raise CLIError("--metadata-output - and the output would both go to stdout", ExitCode.USAGE,
                       hint="pass --metadata-output FILE or -o FILE")
    if not decrypt and sys.stdout.isatty() and any(job.target == STDIO for job in jobs):
        raise _binary_to_terminal()
    byte_range = getattr(args, "byte_range", None)
    if byte_range is not None and len(jobs) != 1:
        raise CLIError("--range takes one input", ExitCode.USAGE)
    if getattr(args, "allow_unverified_signature", False) and byte_range is None:
        raise CLIError("--allow-unverified-signature applies to --range only", ExitCode.USAGE)
    manager, key_names = _manager(args, decrypt)
    if decrypt:
        manager = _DecryptManager(manager, bare)
    options: dict[str, Any] = {"commitment_policy": args.commitment_policy,
                               "max_encrypted_data_keys": args.max_encrypted_data_keys}
    if context:
        options["encryption_context"] = context
    if decrypt:
        options.update(allow_signed=not args.refuse_signed, max_decompressed_size=args.max_decompressed_size)
        if args.max_compression_ratio is not _DEFAULT:
            options["max_compression_ratio"] = args.max_compression_ratio
    else:
        options.update(algorithm=args.algorithm, frame_length=args.frame_length,
                       compression="zstd" if args.compress else None, compression_level=args.compression_level)
    with ExitStack() as outer:
        meta = _metadata_stream(args.metadata_output, outer)
        total = _total_size(jobs)
        progress = make_progress(quiet=args.quiet, total=total)
        progress.start(f"{mode}ing", total)
        outer.callback(progress.stop)
        for index, job in enumerate(jobs, 1):
            with naming_input(job.source, many=len(jobs) > 1):
                progress.describe(describe_job(mode, job.source, index=index, count=len(jobs),
                                               size=regular_size(job.source)))
                if byte_range is not None:
                    record = _one_range(job, manager, options, byte_range, args.allow_unverified_signature,
                                        overwrite=args.overwrite)
                else:
                    record = _one(job, manager, options, decrypt=decrypt, overwrite=args.overwrite,
                                  progress=progress)
            if meta is not None:
                record["keys"] = key_names
                meta.write(json.dumps(record, sort_keys=True) + "\n")
                meta.flush()
    return ExitCode.OK


def _metadata_stream(path: str | None, stack: ExitStack) -> IO[str] | None:
    if path is None:
        return None
    if path == STDIO:
        return sys.stdout
    return stack.enter_context(open(path, "a", encoding="utf-8"))


def _one(job: Job, manager: Any, options: Mapping[str, Any], *, decrypt: bool, overwrite: bool,
         progress: Progress) -> dict[str, Any]:
    stream = envelope.decrypt_stream if decrypt else envelope.encrypt_stream
    if decrypt:
        refuse_empty_message(job.source)
    elif not options.get("compression") and (size := regular_size(job.source)) is not None:
        # A known length lets a caching materials manager count bytes against its limits (it
        # never caches encryptions of unknown length).
        options = {**options, "plaintext_length": size}
    with ExitStack() as stack:
        counting = progress.wrap(_open_source(job.source, stack))
        source = cast(IO[bytes], counting)
        if is_stream_target(job.target):
            # stdout, /dev/null, a pipe: written as it goes (no temporary file to rename over it)
            raw = sys.stdout.buffer if job.target == STDIO else stack.enter_context(open(job.target, "wb"))
            if not decrypt and job.target != STDIO and raw.isatty():
                raise _binary_to_terminal()
            sink = _CountingSink(raw)
            header = stream(source, sink, materials_manager=manager, **options)
            raw.flush()
        else:
            output = stack.enter_context(OutputFile(job.target, overwrite=overwrite, mode=file_mode(job.source)))
            sink = _CountingSink(output.file)
            header = stream(source, sink, materials_manager=manager, **options)
            output.commit()
    return {"mode": "decrypt" if decrypt else "encrypt", "input": job.source, "output": job.target,
            "header": header_dict(header), "input_bytes": counting.count, "output_bytes": sink.count}


_RANGE_OPTIONS = ("encryption_context", "commitment_policy", "max_encrypted_data_keys")
_RANGE_PIECE = 1024 * 1024


def _one_range(job: Job, manager: Any, options: Mapping[str, Any], byte_range: tuple[int, int | None],
               allow_unverified_signature: bool, *, overwrite: bool) -> dict[str, Any]:
    """``decrypt --range``: seek in the message and copy the range, reading only its frames."""
    start, end = byte_range
    with ExitStack() as stack:
        raw_source = _open_source(job.source, stack)
        if not raw_source.seekable():
            raise CLIError("--range needs a file it can seek in, not a pipe", ExitCode.USAGE)
        decryptor = envelope.Decryptor(raw_source, materials_manager=manager,
                                       allow_unverified_signature=allow_unverified_signature,
                                       **{k: v for k, v in options.items() if k in _RANGE_OPTIONS})
        try:
            decryptor.seek(start)
        except envelope.PolicyError as exc:
            if decryptor.header.algorithm.is_signing and not allow_unverified_signature:
                raise CLIError(exc.args[0], ExitCode.POLICY,
                               hint="pass --allow-unverified-signature to read it by its frame tags alone") from None
            raise
        if is_stream_target(job.target):
            raw = sys.stdout.buffer if job.target == STDIO else stack.enter_context(open(job.target, "wb"))
            sink = _CountingSink(raw)
            _copy_range(decryptor, start, end, sink)
            raw.flush()
        else:
            output = stack.enter_context(OutputFile(job.target, overwrite=overwrite, mode=file_mode(job.source)))
            sink = _CountingSink(output.file)
            _copy_range(decryptor, start, end, sink)
            output.commit()
    return {"mode": "decrypt", "input": job.source, "output": job.target, "header": header_dict(decryptor.header),
            "range": [start, end], "output_bytes": sink.count}


def _copy_range(decryptor: envelope.Decryptor, start: int, end: int | None, sink: _CountingSink) -> None:
    left = None if end is None else end - start
    while left is None or left > 0:
        piece = decryptor.read(_RANGE_PIECE if left is None else min(left, _RANGE_PIECE))
        if not piece:
            break
        sink.write(piece)
        if left is not None:
            left -= len(piece)


def _binary_to_terminal() -> CLIError:
    return CLIError("refusing to write a binary message to the terminal", ExitCode.USAGE,
                    hint="redirect stdout or pass -o FILE")


def run_encrypt(args: argparse.Namespace) -> int:
    return _run(args, decrypt=False)


def run_decrypt(args: argparse.Namespace) -> int:
    return _run(args, decrypt=True)
