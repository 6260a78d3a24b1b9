"""Which inputs go to which outputs, and outputs that appear only when complete.

A file output is the library's `AtomicOutput` (envelope/streaming/atomic.py): it becomes the
target only after success, so a failed, interrupted or killed run leaves no partial output; a
run killed by kill -9 leaves at most a locked `.NAME.<hex>.envelope-tmp` that the next run
writing to that directory removes. SIGTERM and SIGHUP become `Interrupted`, so `finally` blocks
remove the temporary file at once.
"""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from envelope.streaming import atomic

from .exits import CLIError, ExitCode

__all__ = ["STDIO", "Interrupted", "Job", "OutputFile", "discard_all", "file_mode", "install_signal_handlers",
           "is_stream_target", "plan_jobs", "refuse_empty_message", "regular_size", "restore_signal_handlers"]

STDIO = "-"
_live: set[OutputFile] = set()


@dataclass(frozen=True, slots=True)
class Job:
    """One message to write: ``source`` and ``target`` are paths or ``-`` for stdin/stdout."""

    source: str
    target: str


def _target_name(name: str, mode: str, suffix: str) -> str:
    if mode == "encrypt":
        return name + suffix
    if suffix and name.endswith(suffix) and len(name) > len(suffix):
        return name[: -len(suffix)]
    return name + ".decrypted"


def _walk(root: Path, mode: str, suffix: str) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(atomic.TEMP_SUFFIX):
                continue
            # A directory holds plaintext and ciphertext side by side: encrypt skips what is
            # already encrypted, decrypt takes only what carries the suffix.
            if bool(suffix) and name.endswith(suffix) != (mode == "decrypt"):
                continue
            yield Path(dirpath) / name


def plan_jobs(inputs: list[str], output: str | None, *, mode: str, suffix: str, recursive: bool) -> list[Job]:
    """Turn the input arguments and ``-o`` into jobs, refusing ambiguous or clobbering plans."""
    if inputs.count(STDIO) > 1:
        raise CLIError("stdin ('-') may be given only once", ExitCode.USAGE)
    many = len(inputs) > 1 or any(os.path.isdir(p) for p in inputs if p != STDIO)
    # With several inputs (or a directory) -o names a directory, created if missing.
    out_is_dir = output is not None and output != STDIO and (
        os.path.isdir(output) or output.endswith(os.sep) or (many and not os.path.lexists(output)))
    if many and output is not None and not out_is_dir:
        if output == STDIO:
            raise CLIError("several inputs cannot all go to stdout", ExitCode.USAGE,
                           hint="pass -o DIRECTORY, or one input at a time")
        raise CLIError(f"several inputs need -o to be a directory, and {output!r} is a file", ExitCode.USAGE)
    jobs: list[Job] = []
    for item in inputs:
        if item == STDIO:
            if many:
                raise CLIError("stdin ('-') cannot be combined with other inputs", ExitCode.USAGE)
            target = output if output is not None and not out_is_dir else STDIO
            if out_is_dir:
                raise CLIError("input from stdin needs -o FILE or -o -, not a directory", ExitCode.USAGE)
            jobs.append(Job(STDIO, target))
            continue
        path = Path(item)
        if path.is_dir():
            if not recursive:
                raise CLIError(f"{item} is a directory", ExitCode.USAGE, hint="pass -r to process directories")
            for found in _walk(path, mode, suffix):
                name = _target_name(found.name, mode, suffix)
                if output is None:
                    nested = found.with_name(name)
                else:
                    nested = Path(output) / found.parent.relative_to(path) / name
                jobs.append(Job(str(found), str(nested)))
            continue
        if not path.exists():
            raise CLIError(f"no such file: {item}", ExitCode.IO)
        name = _target_name(path.name, mode, suffix)
        if output is None:
            target_str = str(path.with_name(name))
        elif out_is_dir:
            target_str = str(Path(output) / name)
        else:
            target_str = output
        jobs.append(Job(item, target_str))
    _check_targets(jobs)
    return jobs


def _check_targets(jobs: list[Job]) -> None:
    sources = {os.path.realpath(j.source) for j in jobs if j.source != STDIO}
    seen: set[str] = set()
    for job in jobs:
        if job.target == STDIO:
            continue
        real = os.path.realpath(job.target)
        # realpath sees through symlinks; samefile also catches a hard link to an input.
        if real in sources or (job.source != STDIO and os.path.exists(job.target)
                               and os.path.samefile(job.source, job.target)):
            raise CLIError(f"refusing to overwrite the input {job.source} with its own output", ExitCode.USAGE)
        if real in seen:
            raise CLIError(f"two inputs would write the same output {job.target}", ExitCode.USAGE)
        seen.add(real)


class OutputFile(atomic.AtomicOutput):
    """The library's `envelope.streaming.atomic.AtomicOutput` with the CLI's wording (an existing
    output names ``--overwrite``), listed for `discard_all` while it is open."""

    def __init__(self, target: str, *, overwrite: bool, mode: int = 0o600) -> None:
        try:
            super().__init__(target, overwrite=overwrite, mode=mode)
        except FileExistsError:
            if overwrite or not os.path.lexists(target):
                raise  # a path component that is a file (`-o file/x`): an error of its own
            raise _exists(target) from None
        _live.add(self)

    def commit(self) -> None:
        try:
            super().commit()
        except FileExistsError:
            raise _exists(self.target) from None  # it appeared while we wrote

    def discard(self) -> None:
        _live.discard(self)
        super().discard()


def _exists(target: str) -> CLIError:
    return CLIError(f"{target} exists", ExitCode.IO, hint="pass --overwrite to replace it")


class Interrupted(BaseException):
    """Raised in the main thread by SIGTERM/SIGHUP so `finally` blocks remove temporary output."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def install_signal_handlers() -> dict[int, Any]:
    """Turn SIGTERM and SIGHUP into an exception, as Python already does for SIGINT.

    :returns: the handlers replaced, for `restore_signal_handlers`.
    """
    previous: dict[int, Any] = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, None):
            previous[sig] = signal.signal(sig, _on_signal)
    return previous


def restore_signal_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def discard_all() -> None:
    """Remove every temporary file still open (last resort on the way out)."""
    for output in list(_live):
        output.discard()


def is_stream_target(target: str) -> bool:
    """True for stdout (``-``) and for an output that is a character device (/dev/null, a
    terminal), a FIFO or a socket, whatever path leads to it (/dev/stdout included): such a
    target is written in place, as it comes. Anything else is a file (`OutputFile`): a path
    that leads to an existing regular file (/proc/self/cwd/x, /dev/stdout redirected to a file,
    a symlink) is that file, refused without --overwrite and replaced whole with it."""
    if target == STDIO:
        return True
    try:
        mode = os.stat(target).st_mode  # follows symlinks: /dev/stdout -> /proc/self/fd/1 -> ...
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def regular_size(source: str) -> int | None:
    """The size of a regular file; None for stdin, a pipe (`<(cmd)`), a device and the like,
    whose size says nothing about how much they will yield."""
    if source == STDIO:
        return None
    info = os.stat(source)
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def refuse_empty_message(source: str) -> None:
    """Refuse an empty file where a message is expected, saying so: the header parser can only
    report that the input ends inside the header."""
    if regular_size(source) == 0:
        raise CLIError("the input is empty: not an envelope message", ExitCode.AUTHENTICATION)


def file_mode(source: str) -> int:
    """Permission bits for an output: the input file's, else what the umask allows."""
    if source != STDIO:
        try:
            return stat.S_IMODE(os.stat(source).st_mode)
        except OSError:
            pass
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
