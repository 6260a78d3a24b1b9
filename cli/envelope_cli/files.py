"""Which inputs go to which outputs, and outputs that appear only when complete.

Output is written to an unnamed temporary file beside the target (Linux O_TMPFILE) or, where the
file system lacks it, a hidden named one; it becomes the target only after success, so a failed,
interrupted or killed run leaves no partial output at the destination. A named temporary file
(the fallback, or the instant between linking an unnamed one and renaming it over an existing
target) is locked while its run lives; a later run writing to the same directory removes the
ones whose run died (kill -9).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import signal
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, Self

from .exits import CLIError, ExitCode

__all__ = ["STDIO", "AtomicOutput", "Interrupted", "Job", "discard_all", "file_mode", "install_signal_handlers",
           "is_stream_target", "plan_jobs", "refuse_empty_message", "regular_size", "restore_signal_handlers"]

STDIO = "-"
_TMP_SUFFIX = ".envelope-tmp"
# Our temporary names: "." + at most 64 characters of the target's name + "." + 16 hex digits +
# the suffix. Only names of exactly this shape are ever swept.
_TMP_NAME = re.compile(r"\..{0,64}\.[0-9a-f]{16}" + re.escape(_TMP_SUFFIX), re.DOTALL)
_live: set[AtomicOutput] = set()
_swept: set[str] = set()  # directories already cleaned of dead runs' leftovers by this process


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
            if name.endswith(_TMP_SUFFIX):
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


def _link(source: str, target: str) -> None:
    # Python calls plain link() unless a dir fd is given, and link() would hard-link the
    # /proc/self/fd symlink itself; linkat(AT_SYMLINK_FOLLOW) links the open file it points to.
    fd = os.open("/", os.O_RDONLY)
    try:
        os.link(source, target, src_dir_fd=fd, follow_symlinks=True)
    finally:
        os.close(fd)


def _temp_name(directory: str, target: str) -> str:
    return os.path.join(directory, f".{os.path.basename(target)[:64]}.{secrets.token_hex(8)}{_TMP_SUFFIX}")


def _lock(fd: int) -> bool:
    """Take the lock that marks a temporary file as in use; False if another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _same_file(fd: int, path: str) -> bool:
    try:
        named, held = os.lstat(path), os.fstat(fd)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def sweep_leftovers(directory: str) -> list[str]:
    """Remove the temporary files that runs killed in ``directory`` left behind; return them.

    Only our own: a regular file (not a symlink) of this user whose name has our temporary
    shape, and whose lock no live process holds (a run holds it from the file's creation until
    it is renamed into place or removed, and the kernel drops it when the process dies, even
    by kill -9). The name is checked to still be that file right before it is removed.
    """
    removed: list[str] = []
    try:
        names = [name for name in os.listdir(directory) if _TMP_NAME.fullmatch(name)]
    except OSError:
        return removed
    for name in names:
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue  # gone, a symlink, or not ours to read
        try:
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and _lock(fd) and _same_file(fd, path):
                os.unlink(path)
                removed.append(path)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def resolve_output(target: str) -> str:
    """The path a file output is written to: ``target`` with every symlink (``/proc/self/cwd``,
    ``/dev/stdout`` redirected to a file, a link the user made) resolved, so that the temporary
    file sits beside the real file and the rename replaces it, not the link or the /proc entry.

    :raises CLIError: ``target`` leads to an existing file that has no name to rename over (a
        deleted file behind /dev/stdout), or to something that is neither a file, a character
        device, a FIFO nor a socket (those are stream targets, see `is_stream_target`).
    """
    real = os.path.realpath(target)
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return real  # nothing there yet (or a dangling link): the file is made where it leads
    if not stat.S_ISREG(info.st_mode):
        raise CLIError(f"{target} is not a regular file, a character device, a FIFO or a socket", ExitCode.IO)
    try:
        named = os.stat(real)
    except OSError:
        named = None
    if named is None or (named.st_dev, named.st_ino) != (info.st_dev, info.st_ino):
        raise CLIError(f"{target} leads to a file that has no name to replace", ExitCode.IO,
                       hint="name the output file itself with -o")
    return real


class AtomicOutput:
    """A file that becomes ``target`` only on `commit`; `discard` (or any failure) leaves no trace.

    ``target`` is resolved first (`resolve_output`): a path that leads to an existing regular
    file is that file, refused without ``overwrite`` and replaced by a rename with it.

    :param overwrite: replace an existing ``target``; otherwise committing onto one fails.
    :param mode: permission bits for the final file (the temporary one is 0600 until commit).
    """

    def __init__(self, target: str, *, overwrite: bool, mode: int = 0o600) -> None:
        self.target = target
        self._path = resolve_output(target)
        self._overwrite = overwrite
        self._mode = mode
        self._dir = os.path.dirname(self._path)
        if not overwrite and (os.path.lexists(target) or os.path.lexists(self._path)):
            raise CLIError(f"{target} exists", ExitCode.IO, hint="pass --overwrite to replace it")
        os.makedirs(self._dir, exist_ok=True)
        if self._dir not in _swept:
            _swept.add(self._dir)
            sweep_leftovers(self._dir)
        self._tmp_path: str | None = None
        fd = self._open_unnamed()
        if fd is None:
            fd, self._tmp_path = self._open_named()
        self.file: IO[bytes] = os.fdopen(fd, "wb")
        _live.add(self)

    def _open_unnamed(self) -> int | None:
        flag = getattr(os, "O_TMPFILE", 0)
        if not flag or not os.path.isdir("/proc/self/fd"):
            return None
        try:
            fd = os.open(self._dir, flag | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                return None  # the file system has no unnamed files
            raise
        # Locked before it ever has a name: the name it gets for an instant before the rename
        # onto an existing target (`_link_unnamed`) is then never swept while this run lives.
        _lock(fd)
        return fd

    def _open_named(self) -> tuple[int, str]:
        """A new, locked temporary file beside the target (file systems without O_TMPFILE)."""
        while True:
            path = _temp_name(self._dir, self._path)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            # A sweeping run could take the lock between the create and ours: then the name is
            # (or is about to be) gone, so start again with a new one.
            if _lock(fd) and _same_file(fd, path):
                return fd, path
            os.close(fd)

    def commit(self) -> None:
        """Flush, sync and move the finished file into place."""
        self.file.flush()
        os.fsync(self.file.fileno())
        os.fchmod(self.file.fileno(), self._mode)
        try:
            if self._tmp_path is None:
                self._link_unnamed()
            elif self._overwrite:
                os.replace(self._tmp_path, self._path)
                self._tmp_path = None
            else:
                self._link_named()
        finally:
            self.discard()

    def _link_unnamed(self) -> None:
        proc = f"/proc/self/fd/{self.file.fileno()}"
        if not self._overwrite:
            self._link_exclusive(proc)
            return
        # No system call puts an unnamed file in place of an existing one: it gets a locked
        # temporary name for the instant before the rename (the window a sweep covers).
        while True:
            staged = _temp_name(self._dir, self._path)
            try:
                _link(proc, staged)
                break
            except FileExistsError:
                continue
        try:
            os.replace(staged, self._path)
        except BaseException:
            os.unlink(staged)
            raise

    def _link_named(self) -> None:
        if self._tmp_path is None:  # pragma: no cover - only called for named temporaries
            raise RuntimeError("envelope: internal error: no temporary file to link")
        try:
            self._link_exclusive(self._tmp_path)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP):
                raise
            # No hard links here: check, then rename (a tiny race instead of no support at all).
            if os.path.lexists(self._path):
                raise CLIError(f"{self.target} exists", ExitCode.IO, hint="pass --overwrite to replace it") from None
            os.replace(self._tmp_path, self._path)
            self._tmp_path = None

    def _link_exclusive(self, source: str) -> None:
        # link() fails if the target exists, so a file that appeared meanwhile is never clobbered.
        try:
            _link(source, self._path)
        except FileExistsError:
            raise CLIError(f"{self.target} exists", ExitCode.IO, hint="pass --overwrite to replace it") from None

    def discard(self) -> None:
        """Close and remove the temporary file (idempotent; safe from a signal handler)."""
        _live.discard(self)
        if self._tmp_path is not None:
            # Unlinked before the close releases the lock, so no sweep ever sees it unlocked.
            try:
                os.unlink(self._tmp_path)
            except FileNotFoundError:
                pass
            self._tmp_path = None
        try:
            self.file.close()
        except OSError:
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


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
    target is written in place, as it comes. Anything else is a file (`AtomicOutput`): a path
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
