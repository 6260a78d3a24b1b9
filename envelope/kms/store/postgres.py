"""PostgreSQL storage: one schema per region (plus ``kms_iam``), shared by any number of instances.

The service's queries are written in SQLite's dialect; `translate` maps each one (once, cached)
to PostgreSQL's: ``?`` placeholders, ``INSERT OR IGNORE``/``OR REPLACE`` (``ON CONFLICT``, with
the primary key read from the table's DDL), ``instr``, SQLite's types in DDL. The schema itself
is the SQLite schema, translated, so both stores have the same tables and columns.

Concurrency (see `backend`): connections run in autocommit mode and every write transaction
starts with ``BEGIN`` + the region's ``meta`` change-counter row locked ``FOR UPDATE`` (READ
COMMITTED: each later statement sees everything committed before the lock was granted). That
one row lock plays SQLite's ``BEGIN IMMEDIATE``: the calls of one region are serialized across
instances, so the audit chain head, the change counter (which validates every instance's key
cache) and due rotations/deletions are read and written by one writer at a time, and a
due transition is applied exactly once, by whichever instance meets it first.

Failures: a lost connection (PostgreSQL restarted, network) and a deadlock between regions
raise `StoreUnavailableError` (KMS DependencyTimeoutException, HTTP 503, which SDKs retry); the
broken connection is dropped and the next call reconnects.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..model.sql import Connection, Cursor
from . import forks
from .backend import StoreUnavailableError
from .database import BUMP_COUNTER, SCHEMA_VERSION, STATE_QUERY, refuse_newer

__all__ = ["SCHEMA_VERSION", "PostgresDatabase", "region_schema", "translate", "translate_ddl"]

_CONNECT_TIMEOUT_S = 5
_LOCK = "SELECT value FROM meta WHERE name = 'change_counter' FOR UPDATE"
_SCHEMA_LOCK = 0x656E76_6B6D73  # pg_advisory_xact_lock key: one schema change at a time
# Primary keys and columns by table, read from the DDL as it is translated (INSERT OR REPLACE
# needs the key; an INSERT OR ... without a column list needs the columns).
_PRIMARY_KEYS: dict[str, tuple[str, ...]] = {}
_COLUMNS: dict[str, tuple[str, ...]] = {}


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ImportError("a PostgreSQL store needs psycopg: pip install 'envelope-crypto[postgres]'") from None
    return psycopg


def region_schema(name: str) -> str:
    """The PostgreSQL schema of a region (``us-east-1`` -> ``kms_us_east_1``) or of ``iam``."""
    return "kms_" + re.sub(r"[^a-z0-9]", "_", name)


def _split_top(body: str) -> list[str]:
    items, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(body[start:i].strip())
            start = i + 1
    items.append(body[start:].strip())
    return items


def _register_primary_key(ddl: str) -> None:
    match = re.match(r"\s*CREATE TABLE IF NOT EXISTS (\w+)\s*\((.*)\)\s*$", ddl, re.DOTALL)
    if match is None:
        return
    table, body = match.groups()
    columns = []
    for item in _split_top(body):
        found = re.match(r"PRIMARY KEY\s*\(([^)]*)\)", item)
        if found:
            _PRIMARY_KEYS[table] = tuple(c.strip() for c in found.group(1).split(","))
            continue
        words = item.split()
        if not words or words[0].upper() in ("CHECK", "UNIQUE", "FOREIGN", "CONSTRAINT"):
            continue
        columns.append(words[0])
        if "PRIMARY" in words and words[words.index("PRIMARY") + 1:][:1] == ["KEY"]:
            _PRIMARY_KEYS[table] = (words[0],)
    _COLUMNS[table] = tuple(columns)


def translate_ddl(statement: str) -> str:
    """A SQLite DDL statement in PostgreSQL's types (INTEGER -> BIGINT, REAL, BLOB -> BYTEA)."""
    _register_primary_key(statement)
    out = re.sub(r"\bINTEGER\b", "BIGINT", statement)
    out = re.sub(r"\bREAL\b", "DOUBLE PRECISION", out)
    out = re.sub(r"\bBLOB\b", "BYTEA", out)
    if out.lstrip().startswith("INSERT OR IGNORE"):
        out = out.replace("INSERT OR IGNORE", "INSERT", 1) + " ON CONFLICT DO NOTHING"
    return out


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """One statement of the service (SQLite dialect) in PostgreSQL's dialect."""
    head = sql.lstrip()[:12].upper()
    if head.startswith(("CREATE", "DROP")):
        return translate_ddl(sql)
    out = sql.replace("%", "%%").replace("?", "%s")
    bare = re.match(r"\s*(INSERT OR (?:IGNORE|REPLACE) INTO (\w+))\s+VALUES\b(.*)$", out, re.DOTALL)
    if bare is not None and bare.group(2) in _COLUMNS:
        head, table, rest = bare.groups()
        out = f"{head} ({', '.join(_COLUMNS[table])}) VALUES{rest}"
    match = re.match(r"\s*INSERT OR (IGNORE|REPLACE) INTO (\w+)\s*\(([^)]*)\)(.*)$", out, re.DOTALL)
    if match is not None:
        verb, table, columns, rest = match.groups()
        out = f"INSERT INTO {table} ({columns}){rest}"
        if verb == "IGNORE":
            out += " ON CONFLICT DO NOTHING"
        else:
            key = _PRIMARY_KEYS.get(table)
            if key is None:
                raise RuntimeError(f"envelope: internal error: no primary key known for {table}")
            names = [c.strip() for c in columns.split(",")]
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in names if c not in key)
            out += f" ON CONFLICT ({', '.join(key)}) " + (f"DO UPDATE SET {updates}" if updates else "DO NOTHING")
    out = re.sub(r"\binstr\(([\w.]+), %s\)", r"strpos(\1, %s)", out)
    return re.sub(r"\bWHERE 1\b(?= AND| ORDER| LIMIT|\s*$)", "WHERE TRUE", out)


# The audit append (store.audit) writes an event, then moves the chain head.
_AUDIT_INSERT = "INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_HEAD_UPDATE = "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1"
_HEAD_INSERT = "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)"
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_IDLE, _IN_ERROR = 0, 3  # psycopg.pq.TransactionStatus values


class _Row:
    """A one-row result known without asking the database."""

    rowcount = 1

    def __init__(self, row: tuple[Any, ...]) -> None:
        self._row = row

    def fetchone(self) -> tuple[Any, ...]:
        return self._row

    def fetchall(self) -> list[Any]:
        return [self._row]

    def __iter__(self) -> Iterator[Any]:
        return iter([self._row])


class PgConnection:
    """A psycopg connection behind the `Connection` surface (SQLite-dialect statements translated).

    Round trips are what a call costs here, so while this connection holds its store's writer lock
    (between `PostgresDatabase.begin_on` and the end of the transaction) it keeps what only its own
    transaction can change: the change counter and the audit chain head (`STATE_QUERY` is answered
    from them after the first time), and the audit events, sent in one batch before any other
    statement, savepoint or commit. In a group, a call's savepoint is made only before its first
    write other than its audit event (most calls only read and append their event). Every
    statement is prepared: the same few run over and over.
    """

    __slots__ = ("_db", "_events", "_head", "_state", "raw", "savepoint")

    @property
    def location(self) -> str:
        """What this connection's store is, for messages (see `migrations`)."""
        return f"the PostgreSQL schema {self._db.schema_name}"

    def __init__(self, raw: Any, db: PostgresDatabase) -> None:  # raw: a psycopg.Connection (an extra)
        self.raw = raw
        self._db = db
        self._events: list[Sequence[Any]] = []
        self._head: tuple[str, Sequence[Any]] | None = None
        self._state: list[Any] | None = None  # [counter, head seq, head hash] while the lock is held
        # None: outside a group call; False: a group call without its savepoint yet; True: made.
        self.savepoint: bool | None = None

    @property
    def in_transaction(self) -> bool:
        return bool(self.raw.info.transaction_status != _IDLE)

    @property
    def failed(self) -> bool:
        """The transaction hit an error and can only be rolled back (PostgreSQL's INERROR state)."""
        return bool(self.raw.info.transaction_status == _IN_ERROR)

    def locked(self) -> None:
        """The writer lock was just taken: nothing is known yet."""
        self._events, self._head, self._state, self.savepoint = [], None, None, None

    def discard(self) -> None:
        """Forget held-back events and known state (a rollback is coming)."""
        self._events, self._head, self._state = [], None, None

    def flush(self) -> None:
        """Send the held-back audit events and chain head."""
        events, head = self._events, self._head
        if not events and head is None:
            return
        self._events, self._head = [], None
        insert = translate(_AUDIT_INSERT)
        if len(events) == 1 and head is not None:
            self.raw.execute(f"WITH event AS ({insert}) {head[0]}", (*events[0], *head[1]), prepare=True)
            return
        if events:
            self.raw.cursor().executemany(insert, events)
        if head is not None:
            self.raw.execute(head[0], head[1], prepare=True)

    def flush_or_fail(self) -> None:
        """`flush`, with errors mapped like `execute`'s."""
        try:
            self.flush()
        except Exception as exc:
            self.discard()
            raise self._db.failure(exc) from exc

    def _held(self, sql: str, parameters: Sequence[Any]) -> Cursor | None:
        """Answer or hold back a statement while the lock is held; None: send it now."""
        state = self._state
        if sql == STATE_QUERY:
            return None if state is None else _Row((state[0], state[1], state[2]))
        if state is None:
            return None
        if sql == _AUDIT_INSERT:
            self._events.append(parameters)
            return _Row(())
        if sql in (_HEAD_UPDATE, _HEAD_INSERT):
            self._head = (translate(sql), parameters)
            state[1], state[2] = parameters[0], parameters[1]
            return _Row(())
        if sql == BUMP_COUNTER:
            state[0] += 1  # and sent below, as any other write
        return None

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        try:
            if sql == "BEGIN IMMEDIATE":  # AuditLog.append outside a transaction
                self._db.begin_on(self)
                return _Row(())
            held = self._held(sql, parameters)
            if held is not None:
                return held
            self.flush()
            if self.savepoint is False and sql.lstrip()[:7].upper().startswith(_WRITES):
                self.raw.execute("SAVEPOINT call", prepare=True)
                self.savepoint = True
            cursor: Cursor = self.raw.execute(translate(sql), parameters or None, prepare=True)
            if sql in ("COMMIT", "ROLLBACK"):  # a transaction of AuditLog's own (append, prune) ended
                self.locked()
            if sql == STATE_QUERY and self.in_transaction and not self.failed:
                row = cursor.fetchone()
                self._state = list(row)
                return _Row(tuple(row))
            return cursor
        except Exception as exc:
            self.discard()
            raise self._db.failure(exc) from exc

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        try:
            self.flush()
            if self.savepoint is False:
                self.raw.execute("SAVEPOINT call", prepare=True)
                self.savepoint = True
            many = self.raw.cursor()
            many.executemany(translate(sql), list(parameters))
            cursor: Cursor = many
            return cursor
        except Exception as exc:
            self.discard()
            raise self._db.failure(exc) from exc

    def control(self, statement: str) -> None:
        """Run a transaction-control statement (errors mapped like `execute`'s)."""
        try:
            self.raw.execute(statement, prepare=True)
        except Exception as exc:
            raise self._db.failure(exc) from exc


class PostgresDatabase:
    """One region's (or the principal store's) schema in a PostgreSQL database.

    :param url: a libpq connection URL (``postgresql://user@host:port/db``).
    :param schema_name: the schema holding this store's tables (created on first use).
    :param schema: SQLite-dialect DDL (``;``-separated), translated and run at first use.
    :param prepare: run in the schema transaction after the DDL with the version the schema had
        before (None: new), as `database.Database`'s: the same migrations and root-key checks.
    :param counted_tables: tables whose every change bumps ``meta.change_counter`` (a trigger),
        for stores whose writers do not bump it themselves; `data_version` reads it.
    """

    def __init__(self, url: str, schema_name: str, schema: str,
                 prepare: Callable[[Connection, int | None], None] | None = None,
                 counted_tables: Sequence[str] = ()) -> None:
        self.path: Path | None = None
        self.url = url
        self.schema_name = schema_name
        self._schema = schema
        self._prepare = prepare
        self._counted = tuple(counted_tables)
        self._local = threading.local()
        self._generation = forks.generation()
        self._init_lock = threading.Lock()
        self._initialized = False

    def __repr__(self) -> str:
        return f"PostgresDatabase(schema={self.schema_name!r})"

    # -- errors --------------------------------------------------------------------------------
    def failure(self, exc: Exception) -> Exception:
        """The error to raise for a psycopg error: retryable ones become `StoreUnavailableError`."""
        psycopg = _psycopg()
        if isinstance(exc, (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)):
            return StoreUnavailableError("The key store was busy with a conflicting request; retry it.")
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            self._drop()
            return StoreUnavailableError("The key store's database is unavailable; retry the request.")
        return exc

    def _drop(self) -> None:
        conn: PgConnection | None = getattr(self._local, "conn", None)
        # An open group stays open: its transaction died with the connection, so its commit (and any
        # later call of it) must fail, never find "no group" and report its calls committed.
        self._local.conn = None
        if conn is not None:
            try:
                conn.raw.close()
            except Exception:  # noqa: BLE001, S110 - closing a broken connection
                pass

    # -- connections ---------------------------------------------------------------------------
    def connect(self) -> PgConnection:
        """This thread's connection (opened, and the schema ensured, on first use)."""
        if self._generation != forks.generation():
            self._local = threading.local()
            self._generation = forks.generation()
            self._initialized = False
        conn: PgConnection | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.raw.closed and not conn.raw.broken:
            return conn
        psycopg = _psycopg()
        try:
            raw = psycopg.connect(self.url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            raise StoreUnavailableError("The key store's database is unavailable; retry the request.") from exc
        conn = PgConnection(raw, self)
        try:
            with self._init_lock:
                if not self._initialized:
                    self._initialize(conn)
                    self._initialized = True
            raw.execute(f'SET search_path TO "{self.schema_name}"')
        except Exception as exc:
            raw.close()
            raise self.failure(exc) from exc
        self._local.conn = conn
        return conn

    def _initialize(self, conn: PgConnection) -> None:
        raw = conn.raw
        raw.execute("BEGIN")
        try:
            raw.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            before = self._version_before(raw)
            refuse_newer(before, self.location)
            raw.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema_name}"')
            raw.execute(f'SET LOCAL search_path TO "{self.schema_name}"')
            for statement in self._schema.split(";"):
                if statement.strip():
                    raw.execute(translate_ddl(statement))
            if self._prepare is not None:
                self._prepare(conn, before)
            for table in self._counted:
                raw.execute(_COUNTER_FUNCTION)
                raw.execute(f"CREATE OR REPLACE TRIGGER {table}_counted AFTER INSERT OR UPDATE OR DELETE "
                            f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION bump_change_counter()")
            raw.execute("INSERT INTO meta (name, value) VALUES ('schema_version', %s) "
                        "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value", (SCHEMA_VERSION,))
            raw.execute("COMMIT")
        except BaseException:
            raw.execute("ROLLBACK") if not raw.broken else None
            raise

    @property
    def location(self) -> str:
        return f"the PostgreSQL schema {self.schema_name}"

    def _version_before(self, raw: Any) -> int | None:
        """The schema's version before this opening (None: no tables yet), like `database.schema_version`."""
        found = raw.execute("SELECT to_regclass(%s)", (f'"{self.schema_name}".meta',)).fetchone()
        if found is None or found[0] is None:
            return None
        row = raw.execute(f'SELECT value FROM "{self.schema_name}".meta WHERE name = %s',
                          ("schema_version",)).fetchone()
        return 1 if row is None else int(row[0])

    def schema_version(self) -> int:
        """The schema version stored in the database (creating the schema if needed)."""
        row = self.connect().execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        return int(row[0])

    def exists(self) -> bool:
        """Whether this store's schema exists (without creating it)."""
        psycopg = _psycopg()
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S) as raw:
                row = raw.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema_name,)).fetchone()
                return row is not None
        except psycopg.OperationalError:
            return False

    # -- transactions --------------------------------------------------------------------------
    def begin_on(self, conn: PgConnection) -> None:
        """BEGIN and take the store's writer lock (the change-counter row) on ``conn``."""
        try:
            conn.discard()
            conn.raw.execute("BEGIN; " + _LOCK)  # one round trip
        except Exception as exc:
            raise self.failure(exc) from exc
        conn.locked()

    def begin(self) -> PgConnection:
        """Start a write transaction (inside a group: a savepoint of the group's transaction)."""
        conn = self.connect()
        group = getattr(self._local, "group", None)
        if group is not None:
            if not group[0]:
                self.begin_on(conn)
                group[0] = True
            elif not conn.in_transaction or conn.failed:
                # The group's transaction is lost or failed: none of its calls may be acknowledged.
                raise StoreUnavailableError("The key store's transaction was lost; retry the request.")
            conn.savepoint = False  # made before the call's first write (see PgConnection)
            return conn
        self.begin_on(conn)
        return conn

    def commit(self, conn: Connection) -> None:
        """Commit the transaction begun by `begin` (in a group: keep it for `commit_group`)."""
        if not isinstance(conn, PgConnection):
            raise TypeError("not a PostgreSQL connection")
        if getattr(self._local, "group", None) is not None:
            if conn.savepoint:
                conn.control("RELEASE call")
            conn.savepoint = None
            return
        self._commit(conn)

    def rollback(self, conn: Connection) -> None:
        """Roll back the transaction begun by `begin` (a no-op if it already ended or the link broke)."""
        if not isinstance(conn, PgConnection) or conn.raw.broken or conn.raw.closed:
            return
        try:
            if getattr(self._local, "group", None) is not None:
                # Held-back events of the group's earlier calls stay: they were held after this
                # call's savepoint was made (which sent everything held before it), or this call
                # has no savepoint and wrote nothing.
                if conn.savepoint and conn.in_transaction:
                    conn.control("ROLLBACK TO call")
                    conn.control("RELEASE call")
                    conn.locked()  # the counter and head are read again (events were sent before the savepoint)
                # Without a savepoint the call wrote nothing; if one of its statements failed, the
                # group's transaction is failed and the group's commit will refuse (`_commit`).
                conn.savepoint = None
                return
            conn.discard()
            if conn.in_transaction:
                conn.control("ROLLBACK")
        except StoreUnavailableError:
            pass

    @contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        """A write transaction: commits on success, rolls back on any exception."""
        conn = self.begin()
        try:
            yield conn
        except BaseException:
            self.rollback(conn)
            raise
        self.commit(conn)

    # -- group commit --------------------------------------------------------------------------
    def open_group(self) -> bool:
        """Start a group on this thread (see `database.Database.open_group`); False if one is open."""
        if getattr(self._local, "group", None) is not None:
            return False
        self._local.group = [False]
        return True

    def commit_group(self) -> None:
        """Commit this thread's group (if any) and end it."""
        group = getattr(self._local, "group", None)
        self._local.group = None
        if group is not None and group[0]:
            conn = self.connect()
            if not conn.in_transaction:
                raise StoreUnavailableError("The key store's transaction was lost; retry the request.")
            self._commit(conn)

    def rollback_group(self) -> None:
        """Roll back this thread's group (if any) and end it."""
        group = getattr(self._local, "group", None)
        self._local.group = None
        conn: PgConnection | None = getattr(self._local, "conn", None)
        if group is not None and group[0] and conn is not None and not conn.raw.broken:
            conn.discard()
            conn.savepoint = None
            try:
                if conn.in_transaction:
                    conn.control("ROLLBACK")
            except StoreUnavailableError:
                pass

    def _commit(self, conn: PgConnection) -> None:
        conn.flush_or_fail()
        if conn.failed:
            # COMMIT of a failed transaction "succeeds" as a ROLLBACK: never report that as a commit.
            conn.control("ROLLBACK")
            raise StoreUnavailableError("The key store's transaction failed; retry the request.")
        conn.control("COMMIT")
        conn.locked()  # the lock is released: what it protected is no longer known

    def data_version(self) -> int:
        """The change counter: differs from an earlier reading once anyone committed a change."""
        return int(self.connect().execute("SELECT value FROM meta WHERE name = 'change_counter'").fetchone()[0])

    def close(self) -> None:
        """Close this thread's connection."""
        self._drop()


_COUNTER_FUNCTION = """CREATE OR REPLACE FUNCTION bump_change_counter() RETURNS trigger AS $$
BEGIN
    UPDATE meta SET value = value + 1 WHERE name = 'change_counter';
    RETURN NULL;
END $$ LANGUAGE plpgsql"""


def list_region_schemas(url: str) -> list[str]:
    """The regions with a schema in the database ``url`` names (none when ``url`` has ``{region}``)."""
    if "{region}" in url:
        return []
    psycopg = _psycopg()
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S) as raw:
            rows = raw.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'kms\\_%%'").fetchall()
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError("The key store's database is unavailable; retry the request.") from exc
    return sorted(str(name)[4:].replace("_", "-") for (name,) in rows if name != "kms_iam")
