"""Where the root key comes from, and the files of a root-key rotation in progress.

Sources, first found wins: ``$ENVELOPE_KMS_ROOT_KEY`` (base64 of 32 bytes), the file named by
``$ENVELOPE_KMS_ROOT_KEY_FILE``, else ``DATA_DIR/kms-root.key`` (32 bytes, mode 0600), which is
created only for a directory that holds no store yet: a new key beside sealed material it cannot
open would make every key unusable, so that is refused with an error naming what is missing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

from .datadir import ROOT_KEY_FILE, StoreError, store_files

__all__ = ["PENDING_SUFFIX", "ROOT_KEY_ENV", "ROOT_KEY_FILE_ENV", "RootKey", "commit_pending",
           "create_pending", "key_id", "load_root_key", "parse_root_key", "pending_key", "remove_leftovers", "write_key_file"]

ROOT_KEY_ENV = "ENVELOPE_KMS_ROOT_KEY"
ROOT_KEY_FILE_ENV = "ENVELOPE_KMS_ROOT_KEY_FILE"
PENDING_SUFFIX = ".new"  # the next root key while a rotation is under way: kms-root.key.new
_KEY_ID_LABEL = b"envelope-kms-root-key-id-v1"


def key_id(key: bytes) -> str:
    """A public name for a root key (recorded in each database it seals; reveals nothing of it)."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class RootKey:
    """A root key, its id, and where it came from (``path``: its file; None for the environment)."""

    key: bytes = field(repr=False)
    source: str
    path: Path | None
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_id", key_id(self.key))


def parse_root_key(data: bytes, where: str) -> bytes:
    """32 raw bytes, or base64 text of 32 bytes (``openssl rand -base64 32``), from ``where``.

    :raises StoreError: anything else.
    """
    if len(data) == 32:
        return data
    try:
        key = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise StoreError(f"the root key in {where} is damaged: expected 32 bytes or their base64")
    return key


def _from_env() -> RootKey | None:
    text = os.environ.get(ROOT_KEY_ENV)
    if text:
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{ROOT_KEY_ENV} is not valid base64") from None
        if len(key) != 32:
            raise ValueError(f"{ROOT_KEY_ENV} must decode to 32 bytes")
        return RootKey(key, ROOT_KEY_ENV, None)
    return None


def key_path(directory: Path) -> Path:
    """The root key file used for ``directory`` (when ``$ENVELOPE_KMS_ROOT_KEY`` is not set)."""
    named = os.environ.get(ROOT_KEY_FILE_ENV)
    return Path(named).expanduser() if named else directory / ROOT_KEY_FILE


def _read(path: Path, source: str) -> RootKey:
    return RootKey(parse_root_key(path.read_bytes(), source), source, path)


def load_root_key(directory: Path | None) -> RootKey:
    """Return the root key for a store in ``directory`` (None: in memory, a fresh random key
    unless the environment names one).

    :raises StoreError: the key file is missing while the directory holds a store, the file
        named by ``$ENVELOPE_KMS_ROOT_KEY_FILE`` is missing, or a key file is damaged.
    :raises ValueError: ``$ENVELOPE_KMS_ROOT_KEY`` is not base64 of 32 bytes.
    """
    found = _from_env()
    if found is not None:
        return found
    if directory is None:
        return RootKey(os.urandom(32), "memory", None)
    path = key_path(directory)
    if os.environ.get(ROOT_KEY_FILE_ENV):
        source = f"{ROOT_KEY_FILE_ENV} ({path})"
        if not path.is_file():
            raise StoreError(f"{ROOT_KEY_FILE_ENV} names {path}, which does not exist",
                             hint=f"write the store's root key there, or unset {ROOT_KEY_FILE_ENV}")
        return _read(path, source)
    if not path.exists():
        existing = store_files(directory)
        # Re-checked: another process may have created the key, then its first database, since.
        if existing and not path.exists():
            names = ", ".join(p.name for p in existing)
            raise StoreError(
                f"the key store in {directory} ({names}) has no root key: {path} is missing. "
                "A new root key is never created beside an existing store, since it could not open "
                "the sealed key material",
                hint=f"restore {ROOT_KEY_FILE} from your backup into {directory} (mode 0600), or set "
                     f"{ROOT_KEY_ENV} or {ROOT_KEY_FILE_ENV}")
        if not existing:
            write_key_file(path, os.urandom(32))
    return _read(path, str(path))


def write_key_file(path: Path, key: bytes) -> None:
    """Write a 0600 key file atomically; if another process created it first, keep theirs.

    Linux: an unnamed file (``O_TMPFILE``), fsynced, then linked into place, so a kill leaves no
    temporary file behind. Elsewhere: a named temp file, linked; a kill may leave it, and the
    next rotation (which holds the exclusive lock) removes it (`remove_leftovers`).
    """
    fd = -1
    if hasattr(os, "O_TMPFILE"):
        try:
            fd = os.open(path.parent, os.O_TMPFILE | os.O_WRONLY, 0o600)
        except OSError:  # pragma: no cover - a file system without O_TMPFILE
            fd = -1
    if fd >= 0:
        try:
            os.write(fd, key)
            os.fsync(fd)
            parent = os.open(path.parent, os.O_RDONLY)
            try:
                # A dir fd makes CPython call linkat(AT_SYMLINK_FOLLOW) (plain link() would link
                # the /proc symlink itself); the absolute source path ignores it.
                os.link(f"/proc/self/fd/{fd}", path.name, src_dir_fd=parent, dst_dir_fd=parent)
            except FileExistsError:
                pass
            finally:
                os.close(parent)
        finally:
            os.close(fd)
    else:  # pragma: no cover - exercised where O_TMPFILE is missing
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    _fsync_dir(path.parent)


def remove_leftovers(root: RootKey) -> None:
    """Remove temporary key files a killed writer left beside ``root``'s file (exclusive lock held)."""
    if root.path is not None:
        for stray in root.path.parent.glob(f".{root.path.name}*.*.*"):
            stray.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _pending_path(root: RootKey) -> Path | None:
    return None if root.path is None else root.path.with_name(root.path.name + PENDING_SUFFIX)


def pending_key(root: RootKey) -> RootKey | None:
    """The next root key of a rotation under way (its file exists), else None."""
    path = _pending_path(root)
    if path is None or not path.exists():
        return None
    return _read(path, str(path))


def create_pending(root: RootKey) -> RootKey:
    """Write a new random root key beside ``root``'s file (``kms-root.key.new``) and return it.

    :raises StoreError: ``root`` comes from the environment (there is no file to rotate).
    """
    path = _pending_path(root)
    if path is None:
        raise StoreError(f"the root key comes from {ROOT_KEY_ENV}, which cannot be rotated in place",
                         hint=f"put the key in a file named by {ROOT_KEY_FILE_ENV} (or the data directory's "
                              f"{ROOT_KEY_FILE}), unset {ROOT_KEY_ENV}, and rotate again")
    write_key_file(path, os.urandom(32))
    return _read(path, str(path))


def commit_pending(root: RootKey) -> None:
    """Make the pending key the root key (one rename): the rotation's last step."""
    path = _pending_path(root)
    if path is None or root.path is None:
        raise RuntimeError("envelope: internal error: no pending root key file")
    os.replace(path, root.path)
    _fsync_dir(root.path.parent)
