"""Output files that appear only when complete (`AtomicOutput`): all or nothing, even on kill -9.
It does not check what is written: the caller commits only what it has finished (decrypt: what
authenticated). POSIX; unnamed files need Linux O_TMPFILE and /proc (format-spec/operations.md §2.5).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import stat
import time
from typing import IO, Self

__all__ = ["TEMP_SUFFIX", "AtomicOutput", "sweep_leftovers"]

TEMP_SUFFIX = ".envelope-tmp"
# Our temporary names: "." + at most 64 characters of the target's name + "." + 16 hex digits +
# the suffix. Only names of exactly this shape are ever swept.
_TEMP_NAME = re.compile(r"\..{0,64}\.[0-9a-f]{16}" + re.escape(TEMP_SUFFIX), re.DOTALL)
# A directory is swept on this process's first write into it, and again when it was last swept
# this long ago: a long-lived process also cleans up after runs killed while it ran, and a batch
# of many files into one directory lists it once, not once per file.
_SWEEP_EVERY = 60.0
_swept: dict[str, float] = {}  # directory -> time.monotonic() of its last sweep by this process


def sweep_leftovers(directory: str) -> list[str]:
    """Remove the temporary files that killed writers left in ``directory``; return their paths.

    Only our own: a regular file (not a symlink) of this user whose name has our temporary
    shape, and whose lock no open file holds (a writer holds it from the file's creation until
    it is renamed into place or removed, and the kernel drops it when the process dies, even by
    kill -9). The name is checked to still be that file right before it is removed.
    """
    removed: list[str] = []
    try:
        names = [name for name in os.listdir(directory) if _TEMP_NAME.fullmatch(name)]
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


class AtomicOutput:
    """A new file that becomes ``target`` only on `commit`; otherwise it leaves no trace.

    Write to `file`, then call `commit`: it syncs the file, puts it in place in one step (a
    link or a rename) and syncs the directory, so an output that `commit` returned for survives
    a crash. Leaving the ``with`` block without `commit` (an error, a cancellation) or calling
    `discard` removes the temporary file and leaves ``target`` as it was.

    The file is written unnamed beside ``target`` (Linux O_TMPFILE), so a process killed at any
    instant (kill -9, power loss) leaves nothing visible. Where a name is unavoidable (a file
    system without O_TMPFILE, or the instant between naming an unnamed file and renaming it over
    an existing ``target``), the file is ``.NAME.<16 hex>.envelope-tmp``, locked while its writer
    lives; a killed writer's one is removed by the next `AtomicOutput` in that directory
    (`sweep_leftovers`).

    ``target`` is the file its path leads to: a symlink is followed, so the file it names is
    replaced and the link stays.

    :param target: the path of the output.
    :param overwrite: replace an existing ``target`` (only at `commit`); otherwise an existing
        one is refused, here and again at `commit`, so a file that appears meanwhile is kept.
    :param mode: permission bits of the final file (the temporary one is 0600 until `commit`).
    :raises FileExistsError: ``target`` exists and ``overwrite`` is false.
    :raises IsADirectoryError: ``target`` is a directory.
    :raises OSError: ``target`` is neither a regular file nor absent, or leads to a file that has
        no name to replace (a deleted file behind ``/dev/stdout``).
    """

    def __init__(self, target: str | os.PathLike[str], *, overwrite: bool = False, mode: int = 0o600) -> None:
        name = os.fspath(target)
        if not isinstance(name, str):
            raise TypeError("target must be str or os.PathLike[str]")
        self.target = name
        self._path = _resolve(name)
        self._overwrite = overwrite
        self._mode = mode
        self._dir = os.path.dirname(self._path)
        if not overwrite and (os.path.lexists(name) or os.path.lexists(self._path)):
            raise self._exists()
        os.makedirs(self._dir, exist_ok=True)
        now = time.monotonic()
        if now - _swept.get(self._dir, -_SWEEP_EVERY) >= _SWEEP_EVERY:
            _swept[self._dir] = now
            sweep_leftovers(self._dir)
        self._temp_path: str | None = None
        fd = self._open_unnamed()
        if fd is None:
            fd, self._temp_path = self._open_named()
        self.file: IO[bytes] = os.fdopen(fd, "wb")

    def _exists(self) -> FileExistsError:
        return FileExistsError(f"{self.target!r} exists; pass overwrite=True to replace it")

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
        # onto an existing target (`_link_unnamed`) is then never swept while this writer lives.
        _lock(fd)
        return fd

    def _open_named(self) -> tuple[int, str]:
        """A new, locked temporary file beside the target (file systems without O_TMPFILE)."""
        while True:
            path = _temp_name(self._dir, self._path)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            # A sweep could take the lock between the create and ours: then the name is (or is
            # about to be) gone, so start again with a new one.
            if _lock(fd) and _same_file(fd, path):
                return fd, path
            os.close(fd)

    def commit(self) -> None:
        """Sync the file, move it into place, sync the directory; then close (once only).

        :raises FileExistsError: ``target`` appeared meanwhile and ``overwrite`` is false.
        """
        if self.file.closed:
            raise ValueError("the output was already committed or discarded")
        try:
            self.file.flush()
            # The data reaches the disk before the name does: a crash after the rename never
            # shows a complete-looking file with missing blocks.
            os.fsync(self.file.fileno())
            os.fchmod(self.file.fileno(), self._mode)
            if self._temp_path is None:
                self._link_unnamed()
            elif self._overwrite:
                os.replace(self._temp_path, self._path)
                self._temp_path = None
            else:
                self._link_named()
            _sync_directory(self._dir)
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
        if self._temp_path is None:  # pragma: no cover - only called for named temporaries
            raise RuntimeError("envelope: internal error: no temporary file to link")
        try:
            self._link_exclusive(self._temp_path)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP):
                raise
            # No hard links here (FAT): check, then rename (a tiny race instead of no support).
            if os.path.lexists(self._path):
                raise self._exists() from None
            os.replace(self._temp_path, self._path)
            self._temp_path = None

    def _link_exclusive(self, source: str) -> None:
        # link() fails if the target exists, so a file that appeared meanwhile is never clobbered.
        try:
            _link(source, self._path)
        except FileExistsError:
            raise self._exists() from None

    def discard(self) -> None:
        """Close and remove the temporary file; idempotent, and a no-op after `commit`."""
        if self._temp_path is not None:
            # Unlinked before the close releases the lock, so no sweep ever sees it unlocked.
            try:
                os.unlink(self._temp_path)
            except FileNotFoundError:
                pass
            self._temp_path = None
        try:
            self.file.close()
        except OSError:
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def _resolve(target: str) -> str:
    """The path the file is written to: ``target`` with every symlink (``/proc/self/cwd``,
    ``/dev/stdout`` redirected to a file, a link the user made) resolved, so that the temporary
    file sits beside the real file and the rename replaces it, not the link or the /proc entry."""
    real = os.path.realpath(target)
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return real  # nothing there yet (or a dangling link): the file is made where it leads
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file to write", target)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "not a regular file: only a regular file can be replaced whole", target)
    try:
        named = os.stat(real)
    except OSError:
        named = None
    if named is None or (named.st_dev, named.st_ino) != (info.st_dev, info.st_ino):
        raise OSError(errno.ENOENT, "leads to a file that has no name to replace; name the file itself", target)
    return real


def _temp_name(directory: str, target: str) -> str:
    return os.path.join(directory, f".{os.path.basename(target)[:64]}.{secrets.token_hex(8)}{TEMP_SUFFIX}")


def _link(source: str, target: str) -> None:
    # Python calls plain link() unless a dir fd is given, and link() would hard-link the
    # /proc/self/fd symlink itself; linkat(AT_SYMLINK_FOLLOW) links the open file it points to.
    fd = os.open("/", os.O_RDONLY)
    try:
        os.link(source, target, src_dir_fd=fd, follow_symlinks=True)
    finally:
        os.close(fd)


def _sync_directory(directory: str) -> None:
    """Make the new name durable: a rename or link lives in the directory, not in the file."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise  # some file systems cannot sync a directory; a failing disk must be reported
    finally:
        os.close(fd)


def _lock(fd: int) -> bool:
    """Take the lock that marks a temporary file as in use; False if another open file holds it."""
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
