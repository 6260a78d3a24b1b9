"""The audit log: one event per KMS call (`auditevents`), chained by HMAC in the region's SQLite file.

Events never hold plaintext, ciphertext, key material, tokens, MACs, messages or signatures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from ...errors import KMSError
from ..model.sql import Connection
from .auditchain import CHECKPOINT_SCHEMA, GENESIS_HASH, Checkpoint, chain_hash, read_checkpoint, write_checkpoint
from .auditevents import EncodedEvent, build_event, canonical, encode_event, index_fields, utc

__all__ = ["GENESIS_HASH", "AuditLog", "AuditVerification", "EncodedEvent", "build_event", "encode_event"]

HEAD_QUERY = "SELECT seq, hash FROM audit_head WHERE id = 1"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS audit_events (
        seq INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        event_name TEXT NOT NULL,
        principal TEXT NOT NULL,
        key_arns TEXT NOT NULL,
        body TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL)""",
    # No secondary index: each one is another page written by every call's commit, and lookups
    # by time are rare next to appends (they scan, newest first). Dropped from older files.
    "DROP INDEX IF EXISTS audit_events_ts",
    # The chain head lives apart from the events, written in the same transaction, so deleting
    # the newest events (which leaves a self-consistent chain) is still detected.
    """CREATE TABLE IF NOT EXISTS audit_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL)""",
)


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """What `AuditLog.verify` found: ``ok``, how many records, and the first bad one (if any)."""

    ok: bool
    count: int
    first_bad_sequence: int | None
    reason: str


def _record(seq: int, body: str, previous: str, digest: str) -> dict[str, object]:
    record: dict[str, object] = json.loads(body)
    record["sequenceNumber"] = seq
    record["previousHash"] = previous
    record["hash"] = digest
    return record


class AuditLog:
    """Query, export and verify the audit events of one region's database.

    Writers call the static `append` inside their own write transaction. Each record's hash is
    an HMAC-SHA256 under the chain key (`envelope.kms.auditchain`) over its sequence number, the
    previous record's hash and the canonical JSON of the event; a separate head row holds the
    newest sequence number and hash. Without a key (a log outside a key store) it is SHA-256.

    `verify` detects an edited, inserted, reordered or deleted record, the loss of the newest
    records, and a missing head. Without the key, nobody can rewrite records consistently. Deleting
    the newest records and setting the head back to an older record is only caught with an anchor:
    keep `head` somewhere else and pass it back to `verify` as ``anchor``.

    :param connect: returns a connection to the region's database; it is not closed here (it may
        be shared with the store).
    :param key: the chain key (from the region's sealed store keys); None: an unkeyed log.
    """

    def __init__(self, connect: Callable[[], Connection], key: bytes | None = None) -> None:
        if not callable(connect):
            raise TypeError("connect must be a callable returning a Connection")
        self._connect = connect
        self._key = key

    @staticmethod
    def create_schema(conn: Connection) -> None:
        """Create the audit tables if they do not exist (idempotent)."""
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(CHECKPOINT_SCHEMA)

    @staticmethod
    def append(conn: Connection, event: Mapping[str, object], key: bytes | None = None) -> dict[str, object]:
        """Chain one event onto the log and return it with ``sequenceNumber``, ``previousHash``, ``hash``.

        Call it inside the caller's write transaction (``BEGIN IMMEDIATE``) so the event commits
        or rolls back with the call it records; outside one, it opens and commits its own.

        :raises TypeError: the event has no ``eventName`` or ``eventTime`` string.
        :raises ValueError: its ``eventTime`` is not an ISO 8601 time with a zone.
        :raises KMSError: the chain head is missing while events remain (a damaged log).
        """
        name, moment = event.get("eventName"), event.get("eventTime")
        if not isinstance(name, str) or not isinstance(moment, str):
            raise TypeError("an audit event needs eventName and eventTime strings")
        try:
            ts = utc(datetime.fromisoformat(moment)).timestamp()
        except ValueError:
            raise ValueError("eventTime must be an ISO 8601 time with a zone") from None
        principal, arns = index_fields(event)
        seq, previous, digest = AuditLog.append_encoded(
            conn, EncodedEvent(canonical(event), ts, name, principal, arns), key=key)
        record = dict(event)
        record.update(sequenceNumber=seq, previousHash=previous, hash=digest)
        return record

    @staticmethod
    def append_encoded(conn: Connection, event: EncodedEvent,
                       head: tuple[int | None, str | None] | None = None,
                       key: bytes | None = None) -> tuple[int, str, str]:
        """Chain an event made by `encode_event`; return its sequence number, previous hash and hash.

        The same contract as `append` (which calls it), minus the dict: the service's own calls
        use it so that the event is serialized once and never parsed back.

        :param head: the head row's ``(seq, hash)`` (``(None, None)``: no row) as read by the
            caller earlier in this same write transaction, to save a query; None: read it here.
        :param key: the chain key (None: an unkeyed log).
        :raises KMSError: the chain head is missing while events remain (a damaged log).
        """
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN IMMEDIATE")
            head = None  # a head read before this transaction began may be stale
        try:
            if head is None:
                row = conn.execute(HEAD_QUERY).fetchone()
                head = (None, None) if row is None else row
            last, previous = head
            if last is None or previous is None:
                if conn.execute("SELECT 1 FROM audit_events LIMIT 1").fetchone():
                    # Restarting the chain would hide the damage; refuse until someone looks.
                    raise KMSError("the audit log is damaged: its chain head is missing (see AuditLog.verify)",
                                   code="KMSInternalException")
                seq, previous = 1, GENESIS_HASH
            else:
                seq = last + 1
            digest = chain_hash(key, seq, previous, event.body)
            conn.execute("INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (seq, event.ts, event.event_name, event.principal, event.key_arns, event.body,
                          previous, digest))
            # An UPDATE rewrites the head row in place (INSERT OR REPLACE deletes and reinserts).
            conn.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)" if last is None
                         else "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (seq, digest))
        except BaseException:
            if own:
                conn.execute("ROLLBACK")
            raise
        if own:
            conn.execute("COMMIT")
        return seq, previous, digest

    def lookup(self, *, start_time: datetime | None = None, end_time: datetime | None = None,
               event_name: str | None = None, key_id: str | None = None,
               principal: str | None = None, limit: int | None = None) -> list[dict[str, object]]:
        """Return matching events, newest first (as CloudTrail's LookupEvents does).

        Times are inclusive bounds at the one-second precision of ``eventTime``; ``key_id`` matches a key id or key ARN among the resources;
        ``principal`` matches the caller ARN exactly.
        """
        where: list[str] = ["1"]
        args: list[object] = []
        if start_time is not None:
            where.append("ts >= ?")  # eventTime has whole seconds, so the bound is floored to match
            args.append(math.floor(utc(start_time).timestamp()))
        if end_time is not None:
            where.append("ts <= ?")
            args.append(utc(end_time).timestamp())
        if event_name is not None:
            where.append("event_name = ?")
            args.append(event_name)
        if principal is not None:
            where.append("principal = ?")
            args.append(principal)
        if key_id is not None:
            # key ARNs are stored space-delimited; an id matches the tail ".../<id> ".
            needle = f" {key_id} " if key_id.startswith("arn:") else f"/{key_id} "
            where.append("instr(key_arns, ?) > 0")
            args.append(needle)
        sql = f"SELECT seq, body, prev_hash, hash FROM audit_events WHERE {' AND '.join(where)} ORDER BY seq DESC"
        if limit is not None:
            if limit < 0:
                raise ValueError("limit must not be negative")
            sql += " LIMIT ?"
            args.append(limit)
        rows = self._connect().execute(sql, args).fetchall()
        return [_record(seq, body, prev, digest) for seq, body, prev, digest in rows]

    def _rows(self) -> Iterator[tuple[int, float, str, str, str, str, str, str]]:
        yield from self._connect().execute(
            "SELECT seq, ts, event_name, principal, key_arns, body, prev_hash, hash FROM audit_events ORDER BY seq")

    def export_jsonl(self, fp: IO[str], *, since: datetime | None = None, until: datetime | None = None) -> int:
        """Write the events, oldest first, one JSON object per line (with its chain fields).

        ``since`` and ``until`` are inclusive bounds on ``eventTime`` (whole seconds, as in
        `lookup`). Returns the number written.
        """
        where: list[str] = ["1"]
        args: list[float] = []
        if since is not None:
            where.append("ts >= ?")
            args.append(math.floor(utc(since).timestamp()))
        if until is not None:
            where.append("ts <= ?")
            args.append(utc(until).timestamp())
        rows = self._connect().execute(
            f"SELECT seq, body, prev_hash, hash FROM audit_events WHERE {' AND '.join(where)} ORDER BY seq", args)
        count = 0
        for seq, body, prev, digest in rows:
            fp.write(canonical(_record(seq, body, prev, digest)) + "\n")
            count += 1
        return count

    def head(self) -> tuple[int, str]:
        """Return the newest sequence number and hash (``(0, GENESIS_HASH)`` for an empty log)."""
        row = self._connect().execute(HEAD_QUERY).fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)

    def checkpoint(self) -> Checkpoint | None:
        """The chain's checkpoint (keyed logs); None for an unkeyed log or a damaged checkpoint."""
        return None if self._key is None else read_checkpoint(self._connect(), self._key)

    def verify(self, *, anchor: tuple[int, str] | None = None) -> AuditVerification:
        """Recompute the chain and compare it with the head row (and ``anchor``, from `head`).

        A keyed log starts from its checkpoint: after a prune, from the last pruned record's hash.
        An anchor inside the pruned part is accepted if it names the checkpoint's record.
        """
        checkpoint = Checkpoint(0, GENESIS_HASH)
        key = self._key
        if key is not None:
            found = read_checkpoint(self._connect(), key)
            if found is None:
                return AuditVerification(False, 0, None, "the chain's checkpoint is missing or was altered")
            checkpoint = found
        expected_seq, previous, count = checkpoint.pruned_through + 1, checkpoint.pruned_hash, 0
        anchor_seen = anchor is None or anchor[0] == 0
        if anchor is not None and 0 < anchor[0] <= checkpoint.pruned_through:
            # Pruned: only the last pruned record's hash is still known.
            if anchor[0] == checkpoint.pruned_through and anchor[1] != checkpoint.pruned_hash:
                return AuditVerification(False, 0, anchor[0], f"record {anchor[0]} differs from the anchor")
            anchor_seen = True
        for seq, ts, name, principal, arns, body, prev, digest in self._rows():
            if seq != expected_seq:
                bad = min(seq, expected_seq)
                return AuditVerification(False, count, bad, f"sequence {expected_seq} is missing or out of place")
            if seq == checkpoint.keyed_after and digest != checkpoint.keyed_hash:
                return AuditVerification(False, count, seq, f"record {seq} differs from the keyed checkpoint")
            record_key = None if key is None else checkpoint.hash_key(key, seq)
            if prev != previous or chain_hash(record_key, seq, prev, body) != digest:
                return AuditVerification(False, count, seq, f"record {seq} does not match its hash chain")
            problem = _columns_problem(ts, name, principal, arns, body)
            if problem:
                return AuditVerification(False, count, seq, f"record {seq}: {problem}")
            if anchor is not None and seq == anchor[0]:
                if digest != anchor[1]:
                    return AuditVerification(False, count, seq, f"record {seq} differs from the anchor")
                anchor_seen = True
            previous, expected_seq, count = digest, seq + 1, count + 1
        last = expected_seq - 1
        head = self.head()
        stored_head = self._connect().execute("SELECT count(*) FROM audit_head").fetchone()[0]
        if last and not stored_head:
            return AuditVerification(False, count, None, "the chain head is missing")
        if head != (last, previous):
            first_bad = min(head[0], last) + 1
            return AuditVerification(False, count, first_bad,
                                     f"the head names record {head[0]}, the chain ends at {last}")
        if not anchor_seen:
            return AuditVerification(False, count, last + 1, "records up to the anchor are missing")
        if checkpoint.pruned_through:
            return AuditVerification(True, count, None, f"ok ({checkpoint.pruned_count} older records pruned, "
                                                        f"up to record {checkpoint.pruned_through})")
        return AuditVerification(True, count, None, "ok")

    def prune(self, before: datetime, *, now: float) -> int:
        """Delete the oldest records, those before ``before``, and return how many went.

        The records deleted are the longest prefix of the chain with ``eventTime`` before
        ``before``. The whole chain is verified first, in the same write transaction (a damaged
        log is refused, not laundered); the checkpoint then records the last pruned record's
        sequence number and hash and the running count, so `verify` still checks what remains.

        :raises KMSError: the log is unkeyed or does not verify.
        """
        key = self._key
        if key is None:
            raise KMSError("only a keyed audit log (a key store's region) can be pruned", code="KMSInternalException")
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = self.verify()
            checkpoint = read_checkpoint(conn, key)
            if not result.ok or checkpoint is None:
                raise KMSError(f"the audit log does not verify ({result.reason}); nothing was pruned",
                               code="KMSInternalException")
            row = conn.execute("SELECT min(seq) FROM audit_events WHERE ts >= ?",
                               (utc(before).timestamp(),)).fetchone()
            head_seq, _ = self.head()
            through = (head_seq + 1 if row[0] is None else int(row[0])) - 1
            pruned = 0
            if through > checkpoint.pruned_through:
                digest = conn.execute("SELECT hash FROM audit_events WHERE seq = ?", (through,)).fetchone()[0]
                pruned = conn.execute("DELETE FROM audit_events WHERE seq <= ?", (through,)).rowcount
                write_checkpoint(conn, key, Checkpoint(
                    checkpoint.keyed_after, checkpoint.keyed_hash, through, str(digest),
                    checkpoint.pruned_count + pruned, now))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return pruned


def _columns_problem(ts: float, name: str, principal: str, arns: str, body: str) -> str:
    """The indexed columns must agree with the hashed body, or lookups could be steered."""
    try:
        event = json.loads(body)
        moment = utc(datetime.fromisoformat(event["eventTime"])).timestamp()
        expected = index_fields(event)
    except (ValueError, KeyError, TypeError, AttributeError):
        return "the event body is not a valid event"
    if moment != ts or event.get("eventName") != name or expected != (principal, arns):
        return "the indexed columns disagree with the event"
    return ""
