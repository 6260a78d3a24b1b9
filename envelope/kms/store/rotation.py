"""Root-key rotation: every sealed row of every database re-sealed under a new root key, crash-safe.

The steps, each of which a kill may interrupt:

1. the new key is written beside the current one (``kms-root.key.new``: temp file, fsync, link);
2. each database, in one transaction of its own, has every sealed row (key versions, import
   parameters, its store keys, access-key secrets) re-sealed and its ``root_key_id`` set to the
   new key's: a file is always wholly under one key or the other, and says which;
3. the new key file is renamed over the old one (atomic).

A store found with a ``.new`` key (a rotation was interrupted) is finished by whoever opens it
next (`opening.open_store`, under the exclusive lock): step 2 skips the files already done. So
after a kill at any point, the store is used under exactly one root key, the new one once any
file has moved. The old key is gone after step 3: keep a copy only if old backups need it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .database import IAM_SCHEMA, REGION_SCHEMA, SCHEMA_VERSION, Database, schema_version
from .datadir import ACCESS_KEYS_FILE, StoreError, StoreLock, region_of, store_files
from .migrations import ACCESS_KEYS_SCHEMA, prepare_access_keys, prepare_region, reseal_store_keys
from .rootkey import RootKey, commit_pending, create_pending, load_root_key, pending_key, remove_leftovers
from .sealing import Sealer, access_key_aead

__all__ = ["finish_rotation", "rotate_root_key", "upgrade_files"]


def _reseal_region(conn: sqlite3.Connection, old: RootKey, new: RootKey) -> None:
    before, after = Sealer(old.key), Sealer(new.key)
    rows = conn.execute("SELECT key_id, version, sealed FROM key_versions").fetchall()
    for key_id, version, sealed in rows:
        material = before.open(bytes(sealed), key_id, version)
        conn.execute("UPDATE key_versions SET sealed = ? WHERE key_id = ? AND version = ?",
                     (after.seal(material, key_id, version), key_id, version))
    for token_id, sealed in conn.execute("SELECT token_id, sealed_private FROM import_params").fetchall():
        private = before.open(bytes(sealed), f"import-{token_id}", 0)
        conn.execute("UPDATE import_params SET sealed_private = ? WHERE token_id = ?",
                     (after.seal(private, f"import-{token_id}", 0), token_id))
    reseal_store_keys(conn, before, after)


def _reseal_access_keys(conn: sqlite3.Connection, old: RootKey, new: RootKey) -> None:
    before, after = access_key_aead(old.key), access_key_aead(new.key)
    for akid, sealed in conn.execute("SELECT access_key_id, sealed_secret FROM access_keys").fetchall():
        blob = bytes(sealed)
        secret = before.decrypt(blob[:12], blob[12:], str(akid).encode())
        nonce = os.urandom(12)
        conn.execute("UPDATE access_keys SET sealed_secret = ? WHERE access_key_id = ?",
                     (nonce + after.encrypt(nonce, secret, str(akid).encode()), akid))


def _move_file(path: Path, old: RootKey, new: RootKey) -> None:
    """Step 2 for one file: one transaction; a file already under ``new`` is left alone."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT value FROM store_keys WHERE name = 'root_key_id'").fetchone()
            current = None if row is None else str(row[0])
            if current == old.key_id:
                if region_of(path.name):
                    _reseal_region(conn, old, new)
                else:
                    _reseal_access_keys(conn, old, new)
                conn.execute("UPDATE store_keys SET value = ? WHERE name = 'root_key_id'", (new.key_id,))
            elif current != new.key_id:
                raise StoreError(f"{path} is sealed under neither the current root key nor the new one "
                                 f"(its root key id is {current}); the rotation stopped before it")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


def upgrade_files(directory: Path, root: RootKey) -> None:
    """Migrate every database file of the store to this build's schema (each in one transaction)."""
    for path in store_files(directory):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            version = schema_version(conn)
        finally:
            conn.close()
        if version is None or version >= SCHEMA_VERSION:
            continue
        if region_of(path.name):
            db = Database(path, REGION_SCHEMA, prepare_region(root))
        elif path.name == ACCESS_KEYS_FILE:
            db = Database(path, ACCESS_KEYS_SCHEMA, prepare_access_keys(root))
        else:
            db = Database(path, IAM_SCHEMA)
        db.connect()
        db.close()


def finish_rotation(directory: Path, old: RootKey, new: RootKey) -> None:
    """Steps 2 and 3 (the caller holds the exclusive lock)."""
    for path in store_files(directory):
        if region_of(path.name) or path.name == ACCESS_KEYS_FILE:
            _move_file(path, old, new)
    commit_pending(old)


def rotate_root_key(directory: Path) -> str:
    """Rotate the root key of the store in ``directory``; return the new key's id.

    :raises StoreError: the store is in use (a server or client holds it open), or its root key
        comes from ``$ENVELOPE_KMS_ROOT_KEY`` (there is no file to replace).
    """
    lock = StoreLock(directory, exclusive=True, wait=False)
    try:
        old = load_root_key(directory)
        remove_leftovers(old)
        new = pending_key(old)
        if new is None:
            upgrade_files(directory, old)
            new = create_pending(old)
        finish_rotation(directory, old, new)
        return new.key_id
    finally:
        lock.release()
