"""The embedded branch key store: the ESDK key store's items in one SQLite file (zero setup, offline).

Rows hold wrapped keys only (`enc`, useless without the KMS key); the file is still created 0600.
Several logical key stores may share a file: the logical name is part of each row's key.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ...errors import KeyringError
from .records import ACTIVE, Item

__all__ = ["SQLiteTable"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS branch_keys (
    store TEXT NOT NULL,
    branch_key_id TEXT NOT NULL,
    type TEXT NOT NULL,
    enc BLOB NOT NULL,
    attributes TEXT NOT NULL,  -- JSON object of the item's string attributes (all but enc)
    PRIMARY KEY (store, branch_key_id, type)
)
"""


class SQLiteTable:
    """A `Table` in a SQLite file; the table is created on first use."""

    def __init__(self, path: Path, store: str) -> None:
        self.path = path
        self.name = store
        self._ready = False
        self._lock = threading.Lock()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if not self._ready:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                os.close(fd)
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            if not self._ready:
                connection.execute(_SCHEMA)
                self._ready = True
            yield connection
        except sqlite3.Error as exc:
            raise KeyringError(f"branch key store {self.path}: {exc}") from None
        finally:
            connection.close()

    def create(self) -> str:
        with self._connect():
            return str(self.path)

    def get(self, branch_key_id: str, item_type: str) -> Item | None:
        with self._connect() as db:
            row = db.execute("SELECT enc, attributes FROM branch_keys WHERE store = ? AND branch_key_id = ? "
                             "AND type = ?", (self.name, branch_key_id, item_type)).fetchone()
        if row is None:
            return None
        attributes = json.loads(row[1])
        if not isinstance(attributes, dict):
            raise KeyringError(f"branch key store {self.path}: a row's attributes are not an object")
        item: Item = {str(k): v for k, v in attributes.items() if isinstance(v, str)}
        if len(item) != len(attributes):
            raise KeyringError(f"branch key store {self.path}: a row has a non-string attribute")
        item["enc"] = bytes(row[0])
        return item

    @staticmethod
    def _row(store: str, item: Item) -> tuple[str, str, str, bytes, str]:
        attributes = {k: v for k, v in item.items() if k != "enc"}
        enc = item["enc"]
        if not isinstance(enc, bytes):
            raise TypeError("envelope: internal error: enc must be bytes")
        return (store, str(item["branch-key-id"]), str(item["type"]), enc, json.dumps(attributes, sort_keys=True))

    def put_new(self, items: list[Item]) -> None:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT INTO branch_keys VALUES (?, ?, ?, ?, ?)",
                               [self._row(self.name, item) for item in items])
            except sqlite3.IntegrityError:
                db.execute("ROLLBACK")
                raise KeyringError(f"branch key {items[0]['branch-key-id']!r} already exists") from None
            db.execute("COMMIT")

    def put_version(self, decrypt_only: Item, active: Item, old_enc: bytes) -> None:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT enc FROM branch_keys WHERE store = ? AND branch_key_id = ? AND type = ?",
                                 (self.name, active["branch-key-id"], ACTIVE)).fetchone()
                # spec VersionKey: the ACTIVE item must not have changed since it was read.
                if row is None or bytes(row[0]) != old_enc:
                    raise KeyringError(f"branch key {active['branch-key-id']!r} was versioned concurrently; retry")
                db.execute("INSERT INTO branch_keys VALUES (?, ?, ?, ?, ?)", self._row(self.name, decrypt_only))
                db.execute("INSERT OR REPLACE INTO branch_keys VALUES (?, ?, ?, ?, ?)", self._row(self.name, active))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
