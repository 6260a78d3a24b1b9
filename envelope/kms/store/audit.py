"""The audit log: one CloudTrail-shaped event per KMS call, hash-chained in the region's SQLite file.

Events never hold plaintext, ciphertext, key material, tokens, MACs, messages or signatures.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import c_make_encoder as _c_make_encoder  # type: ignore[attr-defined]
from json.encoder import encode_basestring as _json_str
from typing import IO, NamedTuple

from ...errors import KMSError
from ..model.sql import Connection

__all__ = ["GENESIS_HASH", "AuditLog", "AuditVerification", "EncodedEvent", "build_event", "encode_event"]

EVENT_VERSION = "1.11"
GENESIS_HASH = "0" * 64  # the "previous hash" of the first record
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

# Request and response fields that are, or may carry, secrets or bulk data; compared after
# lower-casing. Bytes values are dropped wherever they appear, whatever their name.
_SECRET_FIELDS = frozenset({
    "plaintext", "ciphertextblob", "sourceciphertextblob", "ciphertextforrecipient",
    "privatekeyplaintext", "privatekeyciphertextblob", "publickey", "keymaterial",
    "encryptedkeymaterial", "importtoken", "granttoken", "granttokens", "mac", "message",
    "signature", "keystorepassword", "xksproxyauthenticationcredential", "recipient",
    "responsemetadata", "sharedsecret",
})
# Fields whose values are user-chosen maps: their keys are data, not field names to camelCase.
_DATA_MAPS = frozenset({"encryptioncontext", "encryptioncontextequals", "encryptioncontextsubset",
                        "sourceencryptioncontext", "destinationencryptioncontext"})


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """What `AuditLog.verify` found: ``ok``, how many records, and the first bad one (if any)."""

    ok: bool
    count: int
    first_bad_sequence: int | None
    reason: str


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware datetimes")
    return moment.astimezone(UTC)


_DROP = object()
_RULES_MAX = 4096
# field name -> None (a secret: drop it) or (CloudTrail name, whether its value is a data map)
_RULES: dict[str, tuple[str, bool] | None] = {}


def _camel(name: str) -> str:
    if name.isupper():
        return name.lower()
    return name[:1].lower() + name[1:]


def _rule(name: str) -> tuple[str, bool] | None:
    try:
        return _RULES[name]
    except KeyError:
        pass
    lowered = name.lower()
    found = None if lowered in _SECRET_FIELDS else (_camel(name), lowered in _DATA_MAPS)
    if len(_RULES) < _RULES_MAX:  # names come from callers' keyword arguments: stay bounded
        _RULES[name] = found
    return found


def _scrub(value: object, *, data_map: bool = False) -> object:
    """Return a JSON-ready copy without secrets or bytes (``_DROP`` if nothing may be kept)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return value
    if isinstance(value, (str, int, float)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _DROP
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, item in value.items():
            name = key if type(key) is str else str(key)
            if data_map:
                kept = item if type(item) is str else _scrub(item)
                if kept is not _DROP:
                    out[name] = kept
                continue
            rule = _rule(name)
            if rule is None:
                continue
            kept = _scrub(item, data_map=rule[1])
            if kept is not _DROP:
                out[rule[0]] = kept
        return out
    if isinstance(value, datetime):
        return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, (list, tuple, set, frozenset)):
        return [kept for kept in (_scrub(v) for v in value) if kept is not _DROP]
    return str(value)


@functools.lru_cache(maxsize=1024)
def _identity(principal: str) -> dict[str, str]:
    parts = principal.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        if principal.isdigit():
            return _identity(f"arn:aws:iam::{principal}:root")
        return {"type": "AWSService", "invokedBy": principal}
    account, resource = parts[4], parts[5]
    if resource == "root":
        kind, prefix = "Root", ""
    elif resource.startswith(("assumed-role/", "role/")):
        kind, prefix = "AssumedRole", "AROA"
    elif resource.startswith("user/"):
        kind, prefix = "IAMUser", "AIDA"
    else:
        kind, prefix = "Unknown", "AIDA"
    # A stable, opaque principal id derived from the ARN (CloudTrail's ids are opaque too).
    digest = hashlib.sha256(principal.encode()).hexdigest().upper()[:17]
    principal_id = account if kind == "Root" else prefix + digest
    if kind == "AssumedRole" and resource.count("/") >= 2:
        principal_id += ":" + resource.rsplit("/", 1)[1]
    return {"type": kind, "principalId": principal_id, "arn": principal, "accountId": account}


def _resource(arn: str) -> dict[str, str]:
    parts = arn.split(":", 5)
    account = parts[4] if len(parts) == 6 else ""
    kind = "AWS::KMS::Alias" if len(parts) == 6 and parts[5].startswith("alias/") else "AWS::KMS::Key"
    return {"ARN": arn, "accountId": account, "type": kind}


def _uuid4_text(h: str) -> str:
    """32 random hex digits as a version 4 UUID string (what ``str(uuid.uuid4())`` gives)."""
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def _event_ids() -> tuple[str, str]:
    """A request id and an event id: random UUIDs from one read of the OS random source."""
    h = os.urandom(32).hex()
    return _uuid4_text(h[:32]), _uuid4_text(h[32:])


def build_event(*, event_name: str, region: str, account: str, principal: str,
                request_parameters: Mapping[str, object], response_elements: Mapping[str, object] | None,
                error_code: str | None, error_message: str | None, key_arns: Sequence[str],
                event_time: datetime, source_ip: str = "127.0.0.1", user_agent: str = "envelope",
                read_only: bool = False) -> dict[str, object]:
    """Return a CloudTrail-shaped record of one KMS call, with secrets scrubbed.

    Field names are camelCased as CloudTrail writes them (``KeyId`` becomes ``keyId``); the keys
    of encryption contexts are data and stay as given. Plaintext, ciphertext blobs, key material,
    import and grant tokens, MACs, messages and signatures are dropped, and so is any bytes value.
    ``errorCode`` and ``errorMessage`` appear only for a failed call, as in CloudTrail.
    """
    request = _scrub(request_parameters)
    response = None if response_elements is None else _scrub(response_elements)
    request_id, event_id = _event_ids()
    event: dict[str, object] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": dict(_identity(principal)),
        "eventTime": _utc(event_time).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "kms.amazonaws.com",
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": user_agent,
        "requestParameters": request,
        "responseElements": response or None,
        "requestID": request_id,
        "eventID": event_id,
        "readOnly": read_only,
        "resources": [_resource(arn) for arn in key_arns],
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    if error_code is not None:
        event["errorCode"] = error_code
        event["errorMessage"] = error_message or ""
    return event


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# JSONEncoder.encode builds this C encoder on every call; build it once (scrubbed events are
# acyclic trees, so the cycle check it would skip is not needed).
_C_CANONICAL = None if _c_make_encoder is None else _c_make_encoder(
    None, _CANONICAL.default, _json_str, None, ":", ",", True, False, True)


def _canonical(event: object) -> str:
    """``json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``: what is hashed."""
    if _C_CANONICAL is None or isinstance(event, str):
        return _CANONICAL.encode(event)
    return "".join(_C_CANONICAL(event, 0))


class EncodedEvent(NamedTuple):
    """An event ready to append: its canonical JSON (what is hashed) and the indexed columns."""

    body: str
    ts: float          # eventTime in epoch seconds (whole seconds, as eventTime has)
    event_name: str
    principal: str
    key_arns: str      # " arn1 arn2 " (space-delimited, space-padded), as `_index_fields` makes


@functools.lru_cache(maxsize=1024)
def _call_parts(event_name: str, region: str, account: str, principal: str, source_ip: str,
                user_agent: str, read_only: bool) -> tuple[str, str, str, str, str]:
    """The fixed stretches of a caller's canonical event, keys in sorted order (see `encode_event`)."""
    identity = _canonical(_identity(principal))
    return ('{"awsRegion":' + _json_str(region),
            ',"eventCategory":"Management","eventID":"',
            '","eventName":' + _json_str(event_name) + ',"eventSource":"kms.amazonaws.com","eventTime":"',
            '","eventType":"AwsApiCall","eventVersion":"' + EVENT_VERSION + '","managementEvent":true,'
            '"readOnly":' + ("true" if read_only else "false") + ',"recipientAccountId":' + _json_str(account)
            + ',"requestID":"',
            ',"sourceIPAddress":' + _json_str(source_ip) + ',"userAgent":' + _json_str(user_agent)
            + ',"userIdentity":' + identity + "}")


@functools.lru_cache(maxsize=1024)
def _resources_json(key_arns: tuple[str, ...]) -> str:
    return _canonical([_resource(arn) for arn in key_arns])


_time_text: tuple[int, str] = (0, "1970-01-01T00:00:00Z")


def _event_time(second: int) -> str:
    global _time_text
    last = _time_text  # one read: another thread may swap the pair, never tear it
    if last[0] == second:
        return last[1]
    text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
    _time_text = (second, text)
    return text


def encode_event(*, event_name: str, region: str, account: str, principal: str,
                 request_parameters: Mapping[str, object], response_elements: Mapping[str, object] | None,
                 error_code: str | None, error_message: str | None, key_arns: Sequence[str],
                 now: float, source_ip: str = "127.0.0.1", user_agent: str = "envelope",
                 read_only: bool = False) -> EncodedEvent:
    """Return what `build_event` builds (with ``eventTime`` = ``now`` floored to the second), encoded.

    The body is exactly ``json.dumps(event, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` of that event, assembled from cached fixed parts so that a call pays
    only for the fields that vary (ids, time, request, response, resources).
    """
    if not math.isfinite(now):
        raise ValueError("the event time must be a finite number of epoch seconds")
    second = math.floor(now)
    head, to_name, to_time, to_request, tail = _call_parts(event_name, region, account, principal,
                                                           source_ip, user_agent, read_only)
    request = _canonical(_scrub(request_parameters))
    response = None if response_elements is None else _scrub(response_elements)
    arns = tuple(key_arns)
    error = "" if error_code is None else \
        ',"errorCode":' + _json_str(error_code) + ',"errorMessage":' + _json_str(error_message or "")
    request_id, event_id = _event_ids()
    body = "".join((head, error, to_name, event_id, to_time, _event_time(second), to_request,
                    request_id, '","requestParameters":', request, ',"resources":', _resources_json(arns),
                    ',"responseElements":', _canonical(response) if response else "null", tail))
    return EncodedEvent(body, float(second), event_name, _principal_column(_identity(principal)),
                        " " + " ".join(arns) + " ")


def _chain_hash(seq: int, previous: str, body: str) -> str:
    return hashlib.sha256(f"{seq}\n{previous}\n{body}".encode()).hexdigest()


def _record(seq: int, body: str, previous: str, digest: str) -> dict[str, object]:
    record: dict[str, object] = json.loads(body)
    record["sequenceNumber"] = seq
    record["previousHash"] = previous
    record["hash"] = digest
    return record


class AuditLog:
    """Query, export and verify the audit events of one region's database.

    Writers call the static `append` inside their own write transaction. Each record's hash is
    SHA-256 over its sequence number, the previous record's hash and the canonical JSON of the
    event; a separate head row holds the newest sequence number and hash.

    `verify` detects an edited, inserted, reordered or deleted record, the loss of the newest
    records, and a missing head. The chain has no secret key, so it cannot detect someone with
    write access who rewrites every later record and the head consistently, or who deletes all
    records and the head together; to catch that, keep `head` somewhere else and pass it back to
    `verify` as ``anchor``.

    :param connect: returns a connection to the region's database; it is not closed here (it may
        be shared with the store).
    """

    def __init__(self, connect: Callable[[], Connection]) -> None:
        if not callable(connect):
            raise TypeError("connect must be a callable returning a Connection")
        self._connect = connect

    @staticmethod
    def create_schema(conn: Connection) -> None:
        """Create the audit tables if they do not exist (idempotent)."""
        for statement in _SCHEMA:
            conn.execute(statement)

    @staticmethod
    def append(conn: Connection, event: Mapping[str, object]) -> dict[str, object]:
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
            ts = _utc(datetime.fromisoformat(moment)).timestamp()
        except ValueError:
            raise ValueError("eventTime must be an ISO 8601 time with a zone") from None
        principal, arns = _index_fields(event)
        seq, previous, digest = AuditLog.append_encoded(
            conn, EncodedEvent(_canonical(event), ts, name, principal, arns))
        record = dict(event)
        record.update(sequenceNumber=seq, previousHash=previous, hash=digest)
        return record

    @staticmethod
    def append_encoded(conn: Connection, event: EncodedEvent,
                       head: tuple[int | None, str | None] | None = None) -> tuple[int, str, str]:
        """Chain an event made by `encode_event`; return its sequence number, previous hash and hash.

        The same contract as `append` (which calls it), minus the dict: the service's own calls
        use it so that the event is serialized once and never parsed back.

        :param head: the head row's ``(seq, hash)`` (``(None, None)``: no row) as read by the
            caller earlier in this same write transaction, to save a query; None: read it here.
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
            digest = _chain_hash(seq, previous, event.body)
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
            args.append(math.floor(_utc(start_time).timestamp()))
        if end_time is not None:
            where.append("ts <= ?")
            args.append(_utc(end_time).timestamp())
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

    def export_jsonl(self, fp: IO[str]) -> int:
        """Write every event, oldest first, one JSON object per line (with its chain fields)."""
        count = 0
        for seq, _ts, _name, _principal, _arns, body, prev, digest in self._rows():
            fp.write(_canonical(_record(seq, body, prev, digest)) + "\n")
            count += 1
        return count

    def head(self) -> tuple[int, str]:
        """Return the newest sequence number and hash (``(0, GENESIS_HASH)`` for an empty log)."""
        row = self._connect().execute(HEAD_QUERY).fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)

    def verify(self, *, anchor: tuple[int, str] | None = None) -> AuditVerification:
        """Recompute the chain and compare it with the head row (and ``anchor``, from `head`)."""
        expected_seq, previous, count = 1, GENESIS_HASH, 0
        anchor_seen = anchor is None or anchor[0] == 0
        for seq, ts, name, principal, arns, body, prev, digest in self._rows():
            if seq != expected_seq:
                bad = min(seq, expected_seq)
                return AuditVerification(False, count, bad, f"sequence {expected_seq} is missing or out of place")
            if prev != previous or _chain_hash(seq, prev, body) != digest:
                return AuditVerification(False, count, seq, f"record {seq} does not match its hash chain")
            problem = _columns_problem(ts, name, principal, arns, body)
            if problem:
                return AuditVerification(False, count, seq, f"record {seq}: {problem}")
            if anchor is not None and seq == anchor[0]:
                if digest != anchor[1]:
                    return AuditVerification(False, count, seq, f"record {seq} differs from the anchor")
                anchor_seen = True
            previous, expected_seq, count = digest, seq + 1, count + 1
        head = self.head()
        stored_head = self._connect().execute("SELECT count(*) FROM audit_head").fetchone()[0]
        if count and not stored_head:
            return AuditVerification(False, count, None, "the chain head is missing")
        if head != (count, previous):
            first_bad = min(head[0], count) + 1
            return AuditVerification(False, count, first_bad,
                                     f"the head names record {head[0]}, the chain ends at {count}")
        if not anchor_seen:
            return AuditVerification(False, count, count + 1, "records up to the anchor are missing")
        return AuditVerification(True, count, None, "ok")


def _principal_column(identity: Mapping[str, object]) -> str:
    return str(identity.get("arn") or identity.get("invokedBy") or "")


def _index_fields(event: Mapping[str, object]) -> tuple[str, str]:
    """Return the principal and the space-delimited resource ARNs that lookups filter on."""
    identity = event.get("userIdentity")
    principal = ""
    if isinstance(identity, Mapping):
        principal = _principal_column(identity)
    resources = event.get("resources")
    arns = [str(r["ARN"]) for r in resources if isinstance(r, Mapping) and "ARN" in r] \
        if isinstance(resources, (list, tuple)) else []
    return principal, " " + " ".join(arns) + " "


def _columns_problem(ts: float, name: str, principal: str, arns: str, body: str) -> str:
    """The indexed columns must agree with the hashed body, or lookups could be steered."""
    try:
        event = json.loads(body)
        moment = _utc(datetime.fromisoformat(event["eventTime"])).timestamp()
        expected = _index_fields(event)
    except (ValueError, KeyError, TypeError, AttributeError):
        return "the event body is not a valid event"
    if moment != ts or event.get("eventName") != name or expected != (principal, arns):
        return "the indexed columns disagree with the event"
    return ""
