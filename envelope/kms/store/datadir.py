"""The data directory's layout (which files make a key store) and the lock that guards it.

Every process using a store holds a shared lock on ``DIR/.lock`` for as long as it has the store
open; the operations that replace sealed material or whole files (root-key rotation, restore)
take it exclusively, so they never run under a serving process.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import IO

from ...errors import KMSError

__all__ = ["ACCESS_KEYS_FILE", "IAM_FILE", "LOCK_FILE", "ROOT_KEY_FILE", "StoreError", "StoreLock",
           "region_file", "region_of", "store_files"]

ROOT_KEY_FILE = "kms-root.key"
IAM_FILE = "iam.sqlite3"
ACCESS_KEYS_FILE = "access-keys.sqlite3"
LOCK_FILE = ".lock"
_REGION_FILE = re.compile(r"^kms-([a-z]{2}(?:-[a-z0-9]+)+-\d{1,2})\.sqlite3$")

try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks; documented in the README
    _fcntl = None  # type: ignore[assignment]


class StoreError(KMSError):
    """The key store cannot be used as it is (root key missing or wrong, newer schema, in use).

    The message names the data directory and what to do; nothing was changed.
    """

    default_code = "KMSInternalException"


def region_file(region: str) -> str:
    """The file name of a region's database."""
    return f"kms-{region}.sqlite3"


def region_of(name: str) -> str | None:
    """The region whose database file ``name`` is, else None."""
    found = _REGION_FILE.match(name)
    return found.group(1) if found else None


def store_files(directory: Path) -> list[Path]:
    """The database files of the store in ``directory`` (regions, principals, access keys), sorted."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and (region_of(p.name) or p.name in (IAM_FILE, ACCESS_KEYS_FILE)))


class StoreLock:
    """An advisory lock on a data directory (``flock`` on ``DIR/.lock``), shared or exclusive.

    It is released by `release` or when the object is collected (its file closes).
    """

    __slots__ = ("_file", "exclusive")

    def __init__(self, directory: Path, *, exclusive: bool, wait: bool = True) -> None:
        """Take the lock.

        :raises StoreError: ``wait=False`` and another process holds a conflicting lock.
        """
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        self._file: IO[bytes] | None = os.fdopen(fd, "r+b")
        self.exclusive = exclusive
        try:
            self._flock(exclusive, wait)
        except BlockingIOError:
            self.release()
            raise StoreError(
                f"the key store in {directory} is in use (a server or another command has it open)",
                hint="stop `envelope kms serve` and other users of this data directory, then run this again") \
                from None

    def _flock(self, exclusive: bool, wait: bool) -> None:
        if _fcntl is None or self._file is None:
            return
        mode = _fcntl.LOCK_EX if exclusive else _fcntl.LOCK_SH
        _fcntl.flock(self._file.fileno(), mode if wait else mode | _fcntl.LOCK_NB)

    def change(self, *, exclusive: bool) -> None:
        """Convert the lock (waiting for other holders when it becomes exclusive)."""
        self._flock(exclusive, True)
        self.exclusive = exclusive

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None
