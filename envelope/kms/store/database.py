"""SQLite storage: one database per region file (plus one for principals), WAL, write transactions.

Every operation runs in one ``BEGIN IMMEDIATE`` transaction (or a savepoint of a group's: see
`Database.open_group`), so callers in other threads and processes are serialized by SQLite
itself; busy waits are absorbed here and never reach users.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..model.sql import Connection
from . import forks
from .datadir import StoreError

__all__ = ["BUMP_COUNTER", "IAM_SCHEMA", "REGION_SCHEMA", "SCHEMA_VERSION", "STATE_QUERY", "Database",
           "bump_counter", "read_counter", "refuse_newer", "schema_version"]

# The version of every database file this build writes (meta.schema_version). A build opens
# files of its own or an older version (migrating them, in the transaction that opens them:
# `envelope.kms.migrations`) and refuses newer ones. Bump it with every change of any schema,
# and keep a store written by the old version under tests/kms/fixtures/.
SCHEMA_VERSION = 2
_BUSY_TIMEOUT_MS = 30_000
_RETRY_FOR_S = 120.0

# The change counter (`read_counter`) and the audit chain head in one query: every call needs both.
STATE_QUERY = ("SELECT m.value, h.seq, h.hash FROM meta AS m LEFT JOIN audit_head AS h ON h.id = 1 "
               "WHERE m.name = 'change_counter'")
BUMP_COUNTER = "UPDATE meta SET value = value + 1 WHERE name = 'change_counter'"

REGION_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY, account TEXT NOT NULL, created REAL NOT NULL, description TEXT NOT NULL,
    key_usage TEXT NOT NULL, key_spec TEXT NOT NULL, key_state TEXT NOT NULL, origin TEXT NOT NULL,
    key_manager TEXT NOT NULL, multi_region INTEGER NOT NULL, primary_region TEXT,
    replica_regions TEXT NOT NULL, policy TEXT NOT NULL, rotation_enabled INTEGER NOT NULL,
    rotation_period INTEGER, next_rotation REAL, on_demand_count INTEGER NOT NULL,
    deletion_date REAL, pending_window INTEGER, valid_to REAL, expiration_model TEXT,
    fingerprint BLOB, current_version INTEGER NOT NULL, service TEXT);
CREATE INDEX IF NOT EXISTS keys_account ON keys (account);
CREATE TABLE IF NOT EXISTS key_versions (
    key_id TEXT NOT NULL, version INTEGER NOT NULL, sealed BLOB NOT NULL, created REAL NOT NULL,
    rotation_type TEXT, PRIMARY KEY (key_id, version));
CREATE TABLE IF NOT EXISTS aliases (
    account TEXT NOT NULL, alias_name TEXT NOT NULL, key_id TEXT NOT NULL, created REAL NOT NULL,
    updated REAL NOT NULL, PRIMARY KEY (account, alias_name));
CREATE INDEX IF NOT EXISTS aliases_key ON aliases (key_id);
CREATE TABLE IF NOT EXISTS grants (
    grant_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, grantee TEXT NOT NULL, retiring TEXT,
    operations TEXT NOT NULL, constraints TEXT, name TEXT, issuing_account TEXT NOT NULL,
    created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS grants_key ON grants (key_id);
CREATE TABLE IF NOT EXISTS tags (
    key_id TEXT NOT NULL, tag_key TEXT NOT NULL, tag_value TEXT NOT NULL,
    PRIMARY KEY (key_id, tag_key));
CREATE TABLE IF NOT EXISTS import_params (
    token_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, sealed_private BLOB NOT NULL,
    algorithm TEXT NOT NULL, expires REAL NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('change_counter', 0);
"""

IAM_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS principals (arn TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS identity_policies (
    arn TEXT NOT NULL, name TEXT NOT NULL, document TEXT NOT NULL, PRIMARY KEY (arn, name));
INSERT OR IGNORE INTO meta (name, value) VALUES ('change_counter', 0);
"""




def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _retrying(fn: Callable[[], object]) -> None:
    deadline = time.monotonic() + _RETRY_FOR_S
    delay = 0.001
    while True:
        try:
            fn()
            return
        except sqlite3.OperationalError as exc:
            # busy_timeout already waited; a few paths (WAL recovery, schema changes) return
            # SQLITE_BUSY without calling the busy handler, so wait here instead of surfacing it.
            if not _is_busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


class Database:
    """One SQLite database: a file (WAL, per-thread connections) or a private in-memory database.

    :param path: the file, or None for an in-memory database (one connection behind a lock).
    :param schema: SQL run once at open inside a write transaction (idempotent DDL).
    :param prepare: run once at open in that same transaction, after the DDL, with the version
        the file had before (None: a new file): migrations and checks (`envelope.kms.migrations`).
    :raises StoreError: (at first use) the file was written by a newer schema version.
    """

    def __init__(self, path: Path | None, schema: str,
                 prepare: Callable[[Connection, int | None], None] | None = None) -> None:
        self.path = path
        self._schema = schema
        self._prepare = prepare
        self._local = threading.local()
        self._generation = forks.generation()
        self._init_lock = threading.Lock()
        self._initialized = False
        self._memory_lock = threading.RLock()
        self._memory_conn: sqlite3.Connection | None = None
        if path is None:
            self._memory_conn = self._open(":memory:", shared=True)
            self._initialize(self._memory_conn)

    # -- connections ---------------------------------------------------------------------------
    def _open(self, target: str, *, shared: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(target, isolation_level=None, check_same_thread=not shared,
                               cached_statements=512, timeout=_BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        if target != ":memory:":
            # WAL + synchronous=NORMAL: a killed process never loses a committed transaction or
            # corrupts the file; only an OS crash or power loss can drop the last commits.
            _retrying(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = OFF")
        return conn

    def _initialize(self, conn: sqlite3.Connection) -> None:
        def _create() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = schema_version(conn)
                refuse_newer(before, self.path)
                for statement in self._schema.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                if self._prepare is not None:
                    self._prepare(conn, before)
                conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('schema_version', ?)",
                             (SCHEMA_VERSION,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        _retrying(_create)

    def connect(self) -> sqlite3.Connection:
        """This thread's connection (opened, and the schema ensured, on first use)."""
        if self._memory_conn is not None:
            return self._memory_conn
        if self._generation != forks.generation():
            self._local = threading.local()
            self._generation = forks.generation()
            self._initialized = False
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            path = self.path
            if path is None:
                raise RuntimeError("envelope: internal error: file database without a path")
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():
                # Owner-only, like the root key: key metadata, policies and the audit log are no
                # other local user's business. SQLite gives its -wal and -shm files the database
                # file's permissions. (No O_EXCL: an empty file is an empty database.)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            conn = self._open(str(path))
            with self._init_lock:
                if not self._initialized:
                    self._initialize(conn)
                    self._initialized = True
            self._local.conn = conn
        return conn

    # -- transactions --------------------------------------------------------------------------
    def begin(self) -> sqlite3.Connection:
        """Start a write transaction (BEGIN IMMEDIATE) and return its connection.

        Inside a group (`open_group`) the transaction is a savepoint of the group's transaction:
        `commit` releases it into the group, `rollback` undoes only it.
        """
        conn = self.connect()
        group = getattr(self._local, "group", None)
        if group is not None:
            if not group[0]:
                _begin_immediate(conn)
                group[0] = True
            elif not conn.in_transaction:
                # SQLite rolled the whole group back (an I/O error, a full disk): a savepoint
                # now would start a new transaction that `commit_group` could commit alone.
                raise sqlite3.OperationalError("envelope: the group transaction was rolled back")
            conn.execute("SAVEPOINT call")
            return conn
        if self._memory_conn is not None:
            self._memory_lock.acquire()
        try:
            _begin_immediate(conn)
        except BaseException:
            if self._memory_conn is not None:
                self._memory_lock.release()
            raise
        return conn

    def commit(self, conn: Connection) -> None:
        """Commit the transaction begun by `begin` (in a group: keep it for `commit_group`)."""
        if getattr(self._local, "group", None) is not None:
            conn.execute("RELEASE call")
            return
        try:
            _commit(conn)
        finally:
            if self._memory_conn is not None:
                self._memory_lock.release()

    def rollback(self, conn: Connection) -> None:
        """Roll back the transaction begun by `begin` (a no-op if it already ended)."""
        if getattr(self._local, "group", None) is not None:
            if conn.in_transaction:
                conn.execute("ROLLBACK TO call")
                conn.execute("RELEASE call")
            return
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        finally:
            if self._memory_conn is not None:
                self._memory_lock.release()

    # -- group commit --------------------------------------------------------------------------
    def open_group(self) -> bool:
        """Start a group commit on this thread: later transactions share one, ended by `commit_group`.

        Each transaction of the group stays atomic on its own (a savepoint), but none is durable,
        or visible to other connections, until `commit_group`: a caller must not report any of
        them done before then. The write lock is taken by the first transaction and held until
        `commit_group` or `rollback_group`, so a group must be short. Returns False (and does
        nothing) for an in-memory database or if this thread's group is already open.
        """
        if self._memory_conn is not None or getattr(self._local, "group", None) is not None:
            return False
        self.connect()  # a fork check may replace self._local; open the connection first
        self._local.group = [False]  # [whether the group's transaction has begun]
        return True

    def commit_group(self) -> None:
        """Commit this thread's group (if any) and end it.

        :raises sqlite3.Error: the commit failed; the whole group is rolled back.
        """
        group = getattr(self._local, "group", None)
        self._local.group = None
        if group is not None and group[0]:
            conn = self.connect()
            if not conn.in_transaction:
                raise sqlite3.OperationalError("envelope: the group transaction was rolled back")
            _commit(conn)

    def rollback_group(self) -> None:
        """Roll back this thread's group (if any) and end it."""
        group = getattr(self._local, "group", None)
        self._local.group = None
        if group is not None and group[0]:
            conn = self.connect()
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: commits on success, rolls back on any exception."""
        conn = self.begin()
        try:
            yield conn
        except BaseException:
            self.rollback(conn)
            raise
        self.commit(conn)

    def data_version(self) -> int:
        """Changes whenever another connection committed to the file (SQLite's ``data_version``)."""
        return int(self.connect().execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _execute_when_free(conn: Connection, statement: str) -> None:
    """Run ``statement``; while another connection holds the lock, retry (the first try is
    direct: the common, uncontended case costs no closure)."""
    try:
        conn.execute(statement)
    except sqlite3.OperationalError as exc:
        if not _is_busy(exc):
            raise
        _retrying(lambda: conn.execute(statement))


def _begin_immediate(conn: sqlite3.Connection) -> None:
    _execute_when_free(conn, "BEGIN IMMEDIATE")


def _commit(conn: Connection) -> None:
    try:
        _execute_when_free(conn, "COMMIT")
    except BaseException:
        # A failed COMMIT (disk full, I/O error) can leave the transaction open; end it so
        # this thread's connection stays usable.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def schema_version(conn: sqlite3.Connection) -> int | None:
    """The file's schema version; None for a new (empty) file. Files from before versions were
    recorded (an access-keys file without ``meta``) count as version 1."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return None
    if "meta" not in tables:
        return 1
    row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    return 1 if row is None else int(row[0])


def refuse_newer(version: int | None, path: Path | str | None) -> None:
    """:raises StoreError: ``version`` is newer than this build's (``path``: the file, or a description)."""
    if version is not None and version > SCHEMA_VERSION:
        where = "an in-memory database" if path is None else str(path)
        raise StoreError(f"{where} has schema version {version}, newer than this build of envelope "
                         f"reads (up to {SCHEMA_VERSION}); it was not changed",
                         hint="upgrade envelope, or restore a backup made by this version")


def read_counter(conn: Connection) -> int:
    """The database's change counter: bumped by every change that cached state depends on."""
    row = conn.execute("SELECT value FROM meta WHERE name = 'change_counter'").fetchone()
    return int(row[0])


def bump_counter(conn: Connection) -> None:
    """Record a change so every process's caches of this database reload."""
    conn.execute(BUMP_COUNTER)
