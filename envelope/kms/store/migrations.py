"""What each schema version adds, and the store keys each database file holds.

`Database` calls a ``prepare`` from here in the transaction that opens a file: a new file gets
the current schema; an older one is migrated, step by step, in that same transaction (all or
nothing); a newer one was refused before (`store.refuse_newer`). Files holding sealed material
record which root key seals them (``store_keys.root_key_id``) and are refused under another one.

Schema 2 (this build): ``meta.schema_version`` in every file; ``store_keys`` (root key id, the
audit chain key and the imported-material fingerprint key, both sealed); the audit checkpoint
(keyed chaining). Schema 1: the first release (no versions recorded in access-keys files).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..model.sql import Connection
from .audit import AuditLog
from .auditchain import start_keyed_chain
from .database import schema_version
from .datadir import StoreError
from .rootkey import RootKey
from .sealing import AUDIT_CHAIN_LABEL, Sealer, access_key_aead, derive, legacy_fingerprint_key

__all__ = ["ACCESS_KEYS_SCHEMA", "STORE_KEYS_SCHEMA", "StoreKeys", "file_version", "prepare_access_keys", "prepare_iam",
           "prepare_region", "read_store_keys", "reseal_store_keys"]

STORE_KEYS_SCHEMA = "CREATE TABLE IF NOT EXISTS store_keys (name TEXT PRIMARY KEY, value BLOB NOT NULL)"
ACCESS_KEYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS access_keys (
    access_key_id TEXT PRIMARY KEY, sealed_secret BLOB NOT NULL, principal TEXT NOT NULL,
    status TEXT NOT NULL, created REAL NOT NULL);
""" + STORE_KEYS_SCHEMA
_SECRETS = ("audit_chain_key", "fingerprint_key")


@dataclass(frozen=True, slots=True)
class StoreKeys:
    """A region's own keys, unsealed: the audit chain key and the imported-material fingerprint key."""

    audit_chain_key: bytes = field(repr=False)
    fingerprint_key: bytes = field(repr=False)


def _where(conn: Connection) -> str:
    # A store's connection may name itself (PostgreSQL: the schema); SQLite's names its file.
    where = getattr(conn, "location", None)
    if isinstance(where, str):
        return where
    row = conn.execute("PRAGMA database_list").fetchone()
    return str(row[2]) if row and row[2] else "an in-memory database"


def _text(value: object) -> str:
    """A text value of ``store_keys`` (SQLite keeps it as text; PostgreSQL's BYTEA column, as bytes)."""
    return bytes(value).decode() if isinstance(value, (bytes, bytearray, memoryview)) else str(value)


def _check_root(conn: Connection, root: RootKey) -> None:
    row = conn.execute("SELECT value FROM store_keys WHERE name = 'root_key_id'").fetchone()
    if row is None:
        conn.execute("INSERT INTO store_keys VALUES ('root_key_id', ?)", (root.key_id,))
    elif _text(row[0]) != root.key_id:
        raise StoreError(
            f"{_where(conn)} is sealed under another root key (id {_text(row[0])}) than the one from {root.source} "
            f"(id {root.key_id}); nothing was changed",
            hint="use the root key this store was made with (restore kms-root.key from its backup, or set "
                 "ENVELOPE_KMS_ROOT_KEY / ENVELOPE_KMS_ROOT_KEY_FILE)")


def _try_open(conn: Connection, root: RootKey) -> None:
    """A schema-1 file records no root key id: check the key opens its sealed rows before recording it."""
    sealer = Sealer(root.key)
    row = conn.execute("SELECT sealed, key_id, version FROM key_versions LIMIT 1").fetchone()
    try:
        if row is not None:
            sealer.open(bytes(row[0]), str(row[1]), int(row[2]))
        row = conn.execute("SELECT sealed_private, token_id FROM import_params LIMIT 1").fetchone()
        if row is not None:
            sealer.open(bytes(row[0]), f"import-{row[1]}", 0)
    except RuntimeError:
        raise StoreError(f"the root key from {root.source} does not open the key material in {_where(conn)}; "
                         "nothing was changed",
                         hint="use the root key this store was made with (restore kms-root.key from its "
                              "backup)") from None


def prepare_region(root: RootKey) -> Callable[[Connection, int | None], None]:
    """The ``prepare`` of a region database under ``root`` (see the module docstring)."""
    def prepare(conn: Connection, before: int | None) -> None:
        AuditLog.create_schema(conn)
        conn.execute(STORE_KEYS_SCHEMA)
        if before == 1:
            _try_open(conn, root)
        _check_root(conn, root)
        if conn.execute("SELECT 1 FROM store_keys WHERE name = 'audit_chain_key'").fetchone() is None:
            # A new file, or schema 1: the fingerprint key is what schema 1 derived (fingerprints
            # already stored stay valid); the chain is keyed from its current head on.
            sealer = Sealer(root.key)
            keys = {"audit_chain_key": derive(root.key, AUDIT_CHAIN_LABEL, os.urandom(16)),
                    "fingerprint_key": legacy_fingerprint_key(root.key)}
            for name, value in keys.items():
                conn.execute("INSERT INTO store_keys VALUES (?, ?)", (name, sealer.seal(value, f"store-{name}", 0)))
            start_keyed_chain(conn, keys["audit_chain_key"])
    return prepare


def prepare_iam(conn: Connection, before: int | None) -> None:
    """The principals database holds no sealed material: schema 1 to 2 only records the version."""


def prepare_access_keys(root: RootKey) -> Callable[[Connection, int | None], None]:
    """The ``prepare`` of the endpoint's access-keys database under ``root``."""
    def prepare(conn: Connection, before: int | None) -> None:
        if before == 1:
            row = conn.execute("SELECT access_key_id, sealed_secret FROM access_keys LIMIT 1").fetchone()
            if row is not None:
                sealed = bytes(row[1])
                try:
                    access_key_aead(root.key).decrypt(sealed[:12], sealed[12:], str(row[0]).encode())
                except Exception:  # noqa: BLE001 - InvalidTag: the wrong key
                    raise StoreError(f"the root key from {root.source} does not open the access keys in "
                                     f"{_where(conn)}; nothing was changed") from None
        _check_root(conn, root)
    return prepare


def read_store_keys(conn: Connection, root: RootKey) -> StoreKeys:
    """Unseal a region's store keys."""
    sealer = Sealer(root.key)
    found = dict(conn.execute("SELECT name, value FROM store_keys WHERE name IN (?, ?)", _SECRETS).fetchall())
    if set(found) != set(_SECRETS):
        raise StoreError(f"{_where(conn)} is damaged: its store keys are missing")
    return StoreKeys(*(sealer.open(bytes(found[name]), f"store-{name}", 0) for name in _SECRETS))


def reseal_store_keys(conn: Connection, old: Sealer, new: Sealer) -> None:
    """Re-seal a region's store keys under a new root key (inside the rotation's transaction)."""
    for name in _SECRETS:
        row = conn.execute("SELECT value FROM store_keys WHERE name = ?", (name,)).fetchone()
        if row is not None:
            value = old.open(bytes(row[0]), f"store-{name}", 0)
            conn.execute("UPDATE store_keys SET value = ? WHERE name = ?", (new.seal(value, f"store-{name}", 0), name))


def file_version(path: Path) -> int | None:
    """The schema version of a database file, read without changing it (None: empty)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return schema_version(conn)
    finally:
        conn.close()
