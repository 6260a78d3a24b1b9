"""A partition: the data directory (or a private in-memory store) holding every region's database.

It owns the root-key sealer, one store per region and one for principals, and the in-process
caches of key state, which are checked against each database's change counter on every call.
The stores are SQLite files in the data directory, or schemas of a PostgreSQL database
(``database=postgresql://...``; the data directory then holds only the root key).
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..model.access import Decision, Grant
from ..model.keys import KeyRecord, key_arn
from ..model.regions import REGIONS, check_region
from ..model.sql import Connection
from .audit import AuditLog
from .backend import Store, is_postgres_url
from .database import IAM_SCHEMA, REGION_SCHEMA, Database
from .datadir import IAM_FILE, StoreLock, region_file
from .migrations import prepare_iam, prepare_region, read_store_keys
from .opening import open_store
from .rootkey import RootKey, load_root_key
from .sealing import Sealer, fingerprint

__all__ = ["DATA_DIR_ENV", "KeyEntry", "Partition", "Region", "default_data_dir", "open_partition"]

DATA_DIR_ENV = "ENVELOPE_DATA_DIR"
# Weak: a partition (and its SQLite connections) lives as long as some client uses it.
_registry: weakref.WeakValueDictionary[tuple[Path, str | None], Partition] = weakref.WeakValueDictionary()
# PostgreSQL only: rows in ``keys`` keep their insertion order for ListKeys (SQLite's rowid).
_PG_REGION_EXTRA = "ALTER TABLE keys ADD COLUMN IF NOT EXISTS rowid BIGSERIAL"
PG_IAM_SCHEMA_NAME = "iam"
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

    :raises StoreError: the store is newer than this build, or sealed under another root key.
    """

    def __init__(self, name: str, db: Store, root: RootKey) -> None:
        self.name = name
        self.db = db
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
    """All regions of one data directory (``directory=None``: a private in-memory partition).

    :param database: a PostgreSQL URL: the regions and principals live there (one schema each;
        a ``{region}`` in the URL puts each region in its own database, the principals in the one
        named with ``iam``), and ``directory`` holds only the root key.
    """

    def __init__(self, directory: Path | None, database: str | None = None) -> None:
        self.directory = directory
        self.database = database
        # Held (shared) while the partition lives: rotation and restore wait for it to go.
        self._store_lock: StoreLock | None = None
        if directory is not None:
            self._store_lock, self.root = open_store(directory)
        else:
            self.root = load_root_key(None)
        self.sealer = Sealer(self.root.key)
        self.iam: Store
        if database is not None:
            self.iam = self._postgres(PG_IAM_SCHEMA_NAME, IAM_SCHEMA, prepare=prepare_iam,
                                      counted=("principals", "identity_policies"))
        else:
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
                found = Region(name, self._region_store(name), self.root)
                self._regions[name] = found
            return found

    def reopen(self, name: str) -> None:
        """Forget the region's cached state (its store keys were replaced: `copy.copy_store`)."""
        with self._lock:
            self._regions.pop(name, None)

    def _postgres(self, name: str, schema: str, extra: str = "", counted: tuple[str, ...] = (),
                  prepare: Callable[[Connection, int | None], None] | None = None) -> Store:
        from .postgres import PostgresDatabase, region_schema

        url = str(self.database).replace("{region}", name)
        return PostgresDatabase(url, region_schema(name), schema + (";" + extra if extra else ""),
                                prepare, counted)

    def _region_store(self, name: str) -> Store:
        # The same schema, migrations and root-key checks on both stores (`migrations.prepare_region`).
        if self.database is not None:
            return self._postgres(name, REGION_SCHEMA, _PG_REGION_EXTRA, prepare=prepare_region(self.root))
        path = None if self.directory is None else self.directory / region_file(name)
        return Database(path, REGION_SCHEMA, prepare_region(self.root))

    def region_names(self) -> list[str]:
        """The regions with a store (opened in this process, or present on disk / in the database)."""
        names = set(self._regions)
        if self.database is not None:
            from .postgres import list_region_schemas

            names.update(list_region_schemas(self.database))
        elif self.directory is not None:
            names.update(p.name[4:-8] for p in self.directory.glob(region_file("*")))
        return sorted(n for n in names if n in REGIONS)

    def region_exists(self, name: str) -> bool:
        """Whether the region has a store (opened, or its file / schema exists)."""
        if name in self._regions:
            return True
        if self.database is not None:
            if name not in REGIONS:
                return False
            from .postgres import PostgresDatabase, region_schema

            url = self.database.replace("{region}", name)
            return PostgresDatabase(url, region_schema(name), "").exists()
        return self.directory is not None and (self.directory / region_file(name)).exists()

    def check_identity_cache(self) -> None:
        """Drop cached identity policies if another connection changed the principal store."""
        version = self.iam.data_version()
        if getattr(self._iam_seen, "version", None) != version:
            self._iam_seen.version = version
            self.identity_cache.clear()


def open_partition(path: str | os.PathLike[str] | None, database: str | None = None) -> Partition:
    """The partition for a data directory (shared within the process), or a new in-memory one.

    :param database: a PostgreSQL URL holding the stores (the directory then holds the root key).
    """
    if database is not None and not is_postgres_url(database):
        raise ValueError("database must be a postgresql:// URL")
    if path == ":memory:":
        if database is not None:
            raise ValueError("an in-memory store cannot use a database")
        return Partition(None)
    directory = (Path(path) if path is not None else default_data_dir()).expanduser().resolve()
    with _registry_lock:
        found = _registry.get((directory, database))
        if found is None or found.directory is None:
            found = Partition(directory, database)
            _registry[(directory, database)] = found
        return found
