"""Exit codes and how an error becomes ``envelope: error: ...`` plus a ``hint:`` line on stderr."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import envelope

__all__ = ["AWS_EXIT_CODES_HELP", "EXIT_CODES_HELP", "NO_KEY_HINT", "CLIError", "ExitCode", "InputFailed",
           "aws_exit_code", "describe", "naming_input", "report"]


class ExitCode:
    """Process exit codes; documented in ``envelope --help`` and the README."""

    OK = 0
    FAILURE = 1  # anything not listed below
    USAGE = 2  # bad flags or arguments (argparse's own code)
    AUTHENTICATION = 3  # not a valid message, tampered, truncated, trailing data
    IO = 4  # cannot read or write a file, or the output exists
    KEY = 5  # no key could unwrap the data key, keyring or KMS failure
    POLICY = 6  # a rule refused: encryption context mismatch, signed message, commitment policy, limits
    INTERRUPTED = 130  # SIGINT / SIGTERM: temporary output removed
    BROKEN_PIPE = 141  # the reader of the output went away (`| head`): 128 + SIGPIPE, as other tools
    # `envelope kms` / `envelope sts` use the aws CLI's codes instead of 2-6
    # (https://docs.aws.amazon.com/cli/latest/topic/return-codes.html):
    AWS_USAGE = 252  # bad syntax, unknown parameter, or a parameter value that prevented the call
    AWS_CONFIG = 253  # the environment or configuration is invalid (credentials, profile, region)
    AWS_SERVICE = 254  # the call was made and the service returned an error
    AWS_FAILURE = 255  # any other failure of the CLI or the service


EXIT_CODES_HELP = """\
exit codes:
  0    success
  1    other failure
  2    usage error (bad flags or arguments)
  3    authentication failure: not a message, tampered, truncated or trailing data
  4    I/O error: cannot read or write a file, or the output exists (see --overwrite)
  5    key error: no key could decrypt the data key, keyring or KMS failure (disabled key, ...)
  6    policy refused the operation: encryption context mismatch (-c), signed message refused,
       commitment policy, encrypted-data-key or decompression limit
  130  interrupted (SIGINT or SIGTERM); no partial output is left behind
  141  the output's reader went away (e.g. `| head`), as for other tools killed by SIGPIPE
`envelope kms` and `envelope sts` exit as `aws` does: 0 success, 130 interrupted, 141 as above,
  252 bad syntax or parameter, 253 bad environment or configuration (credentials, profile),
  254 the service returned an error, 255 any other failure"""

AWS_EXIT_CODES_HELP = """\
exit codes: (as the aws CLI's: https://docs.aws.amazon.com/cli/latest/topic/return-codes.html)
  0    success
  130  interrupted (SIGINT)
  141  the output's reader went away (e.g. `| head`), as for other tools killed by SIGPIPE
  252  bad syntax, unknown parameter, or a parameter value that prevented the call
  253  the environment or configuration is invalid (credentials, profile, region)
  254  the call reached the service, which returned an error (e.g. NotFoundException)
  255  any other failure (for `audit verify`: the audit log failed verification)"""


class CLIError(Exception):
    """An error the CLI itself detects, with its exit code and an optional hint."""

    def __init__(self, message: str, code: int = ExitCode.FAILURE, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.exit_code = code
        self.hint = hint


class InputFailed(Exception):
    """``error`` happened while processing ``source``: reported as ``SOURCE: message`` when a run
    has several inputs, so the user knows which file failed."""

    def __init__(self, source: str, error: BaseException) -> None:
        super().__init__(source, error)
        self.source = source
        self.error = error


@contextmanager
def naming_input(source: str, *, many: bool) -> Iterator[None]:
    """Re-raise an error from the block as `InputFailed` when the run has ``many`` inputs."""
    try:
        yield
    except BrokenPipeError:
        raise  # main() handles a reader that went away
    except Exception as exc:
        if not many:
            raise
        raise InputFailed(source, exc) from exc


# The library's hints name Python keyword arguments; a CLI user needs the flag that sets them.
_FLAG_FOR_KEYWORD = (
    ("commitment_policy=", "--commitment-policy "),
    ("raise max_decompressed_size", "raise --max-decompressed-size"),
    ("raise max_compression_ratio", "raise --max-compression-ratio (0 turns the check off)"),
    ("allow signed messages,", "drop --refuse-signed,"),
)


def _cli_hint(hint: str | None) -> str | None:
    if hint is None:
        return None
    for keyword, flag in _FLAG_FOR_KEYWORD:
        hint = hint.replace(keyword, flag)
    return hint


NO_KEY_HINT = ("check the key flags (--kms-key, --aes-key-file, --rsa-private-key, --identity); "
               "`envelope inspect FILE` lists the keys that wrapped the data key")
_CONTEXT_HINT = "`envelope inspect FILE` shows the stored encryption context; -c k=v must match it"
_DISABLED_HINT = "a KMS key is disabled; enable it with `envelope kms enable-key --key-id KEY`"
_PENDING_DELETION_HINT = ("a KMS key is pending deletion; `envelope kms cancel-key-deletion --key-id KEY` "
                          "then `envelope kms enable-key --key-id KEY` restores it")


def _message(exc: BaseException) -> str:
    # EnvelopeError.__str__ appends the hint; the CLI prints it on its own line instead.
    text = Exception.__str__(exc) if isinstance(exc, envelope.EnvelopeError) else str(exc)
    return text or type(exc).__name__


def describe(exc: BaseException) -> tuple[int, str, str | None]:
    """Map an exception to (exit code, message, hint)."""
    if isinstance(exc, InputFailed):
        code, text, hint = describe(exc.error)
        if isinstance(exc.error, OSError) and exc.error.filename == exc.source:
            return code, text, hint  # the message names the file already
        return code, f"{exc.source}: {text}", hint
    if isinstance(exc, CLIError):
        return exc.exit_code, _message(exc), exc.hint
    if isinstance(exc, envelope.EnvelopeError):
        hint = _cli_hint(exc.hint)
        text = _message(exc)
        if isinstance(exc, (envelope.FormatError, envelope.AuthenticationError)):
            code = ExitCode.AUTHENTICATION
            if hint is None and "context" in text.lower():
                hint = _CONTEXT_HINT
        elif isinstance(exc, envelope.KeyDisabledError):
            code = ExitCode.KEY
            hint = hint or _DISABLED_HINT
        elif isinstance(exc, envelope.KeyNotFoundError):
            code = ExitCode.KEY
            hint = hint or ("check the key id and --region; `envelope kms list-aliases` and "
                            "`envelope kms list-keys` show what exists")
        elif isinstance(exc, envelope.NoMatchingKeyError):
            code = ExitCode.KEY
            codes = {getattr(e, "code", None) for e in exc.errors}
            if "DisabledException" in codes:
                hint = hint or _DISABLED_HINT
            elif "KMSInvalidStateException" in codes:
                hint = hint or _PENDING_DELETION_HINT
            elif "InvalidCiphertextException" in codes:
                hint = hint or _CONTEXT_HINT
            hint = hint or NO_KEY_HINT
        elif isinstance(exc, (envelope.KeyringError, envelope.KMSError)):
            code = ExitCode.KEY
            if hint is None and "pending deletion" in text:
                hint = _PENDING_DELETION_HINT
        elif isinstance(exc, envelope.PolicyError):
            code = ExitCode.POLICY
            if hint is None and "context" in text.lower():
                hint = _CONTEXT_HINT
        else:
            code = ExitCode.FAILURE
        return code, text, hint
    if isinstance(exc, OSError):
        name = f": {exc.filename}" if exc.filename else ""
        return ExitCode.IO, f"{exc.strerror or exc}{name}", None
    if isinstance(exc, (ValueError, TypeError)):
        return ExitCode.USAGE, _message(exc), None
    return ExitCode.FAILURE, f"{type(exc).__name__}: {exc}", None


# `envelope` codes -> the aws CLI's, for `envelope kms` and `envelope sts`.
_AWS_CODES = {ExitCode.OK: ExitCode.OK, ExitCode.USAGE: ExitCode.AWS_USAGE, ExitCode.KEY: ExitCode.AWS_SERVICE,
              ExitCode.INTERRUPTED: ExitCode.INTERRUPTED}


def aws_exit_code(code: int) -> int:
    """The aws CLI's return code for an `envelope` exit code (252-255 pass through)."""
    if code >= ExitCode.AWS_USAGE:
        return code
    return _AWS_CODES.get(code, ExitCode.AWS_FAILURE)


def report(exc: BaseException, stream: IO[str] | None = None, *, aws: bool = False) -> int:
    """Print the error the age way and return its exit code (the aws CLI's when ``aws``)."""
    stream = stream or sys.stderr
    code, text, hint = describe(exc)
    if aws:
        code = aws_exit_code(code)
    print(f"envelope: error: {_printable(text)}", file=stream)
    if hint:
        print(f"hint: {_printable(hint)}", file=stream)
    return code


def _printable(text: str) -> str:
    """``text`` with control and other unprintable characters escaped: messages may quote a
    message header's fields (key names, context keys), which a hostile writer controls, and raw
    escape sequences would reach the user's terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
