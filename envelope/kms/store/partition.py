"""A partition: the data directory (or a private in-memory store) holding every region's database.

It owns the root-key sealer, one Database per region and one for principals, and the in-process
caches of key state, which are checked against each database's change counter on every call.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..model.access import Decision, Grant
from ..model.keys import KeyRecord, key_arn
from ..model.regions import check_region
from .audit import AuditLog
from .database import IAM_SCHEMA, REGION_SCHEMA, Database
from .datadir import IAM_FILE, StoreLock, region_file
from .migrations import prepare_iam, prepare_region, read_store_keys
from .opening import open_store
from .rootkey import RootKey, load_root_key
from .sealing import Sealer, fingerprint

__all__ = ["DATA_DIR_ENV", "KeyEntry", "Partition", "Region", "default_data_dir", "open_partition"]

DATA_DIR_ENV = "ENVELOPE_DATA_DIR"
# Weak: a partition (and its SQLite connections) lives as long as some client uses it.
_registry: weakref.WeakValueDictionary[Path, Partition] = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()


def default_data_dir() -> Path:
    """``$ENVELOPE_DATA_DIR``, else the platform's per-user data directory + ``envelope``."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / "envelope"


@dataclass(slots=True)
class KeyEntry:
    """Cached state of one key in one region: record, parsed policy, grants, unsealed material.

    Valid only while the region's change counter is unchanged; material is unsealed lazily.
    ``decisions`` holds request-independent authorization decisions by (principal, action),
    each with the identity policies it was made with.
    """

    record: KeyRecord
    arn: str
    policy: dict[str, object]
    grants: tuple[Grant, ...]
    due_at: float | None
    aeads: dict[int, AESGCM] = field(default_factory=dict)
    materials: dict[int, bytes] = field(default_factory=dict)
    loaded: dict[int, Any] = field(default_factory=dict)
    decisions: dict[tuple[str, str], tuple[tuple[dict[str, object], ...], Decision]] = \
        field(default_factory=dict)


class Region:
    """One region's database, audit log and caches.

    :raises StoreError: the file is newer than this build, or sealed under another root key.
    """

    def __init__(self, name: str, path: Path | None, root: RootKey) -> None:
        self.name = name
        self.db = Database(path, REGION_SCHEMA, prepare_region(root))
        keys = read_store_keys(self.db.connect(), root)
        self.audit_key = keys.audit_chain_key
        self._fingerprint_key = keys.fingerprint_key
        self.audit = AuditLog(self.db.connect, keys.audit_chain_key)
        self.counter = -1
        self.keys: dict[str, KeyEntry | None] = {}
        self.aliases: dict[tuple[str, str], str | None] = {}

    def reset_cache(self, counter: int = -1) -> None:
        """Forget cached key state (after a change, a rollback, or another process's change)."""
        self.keys.clear()
        self.aliases.clear()
        self.counter = counter

    def arn(self, account: str, key_id: str) -> str:
        return key_arn(self.name, account, key_id)

    def fingerprint(self, material: bytes) -> bytes:
        """The region's keyed digest of imported key material (see `sealing.fingerprint`)."""
        return fingerprint(self._fingerprint_key, material)


class Partition:
    """All regions of one data directory (``directory=None``: a private in-memory partition)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        # Held (shared) while the partition lives: rotation and restore wait for it to go.
        self._store_lock: StoreLock | None = None
        if directory is not None:
            self._store_lock, self.root = open_store(directory)
        else:
            self.root = load_root_key(None)
        self.sealer = Sealer(self.root.key)
        self.iam = Database(None if directory is None else directory / IAM_FILE, IAM_SCHEMA, prepare_iam)
        self.identity_cache: dict[str, tuple[dict[str, object], ...]] = {}
        self._iam_seen = threading.local()
        self._regions: dict[str, Region] = {}
        self._lock = threading.Lock()

    def region(self, name: str) -> Region:
        """The region's state, opening its database on first use."""
        found = self._regions.get(name)
        if found is not None:
            return found
        check_region(name)  # before the region's database file is made: an unknown name leaves none
        with self._lock:
            found = self._regions.get(name)
            if found is None:
                path = None if self.directory is None else self.directory / region_file(name)
                found = Region(name, path, self.root)
                self._regions[name] = found
            return found

    def region_exists(self, name: str) -> bool:
        """Whether the region has a store (in memory: has been opened; on disk: its file exists)."""
        if name in self._regions:
            return True
        return self.directory is not None and (self.directory / region_file(name)).exists()

    def check_identity_cache(self) -> None:
        """Drop cached identity policies if another connection changed the principal store."""
        conn = self.iam.connect()
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if getattr(self._iam_seen, "version", None) != version:
            self._iam_seen.version = version
            self.identity_cache.clear()


def open_partition(path: str | os.PathLike[str] | None) -> Partition:
    """The partition for a data directory (shared within the process), or a new in-memory one."""
    if path == ":memory:":
        return Partition(None)
    directory = (Path(path) if path is not None else default_data_dir()).expanduser().resolve()
    with _registry_lock:
        found = _registry.get(directory)
        if found is None or found.directory is None:
            found = Partition(directory)
            _registry[directory] = found
        return found
