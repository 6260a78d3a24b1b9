"""The audit log: CloudTrail-shaped events without secrets, lookups, export and tamper detection."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from envelope.errors import KMSError
from envelope.kms.store.audit import GENESIS_HASH, AuditLog, build_event, encode_event

ACCOUNT = "111122223333"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY_ID}"
KEY2 = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/mrk-0123456789abcdef0123456789abcdef"
APP = f"arn:aws:iam::{ACCOUNT}:role/App"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/Alice"
T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
SECRET = b"\x00secret-bytes\xff"


def _event(name: str = "Decrypt", *, principal: str = APP, key: str = KEY, at: datetime = T0,
           error: str | None = None) -> dict[str, object]:
    return build_event(
        event_name=name, region="us-east-1", account=ACCOUNT, principal=principal,
        request_parameters={"KeyId": key, "EncryptionContext": {"Dept": "eng"}},
        response_elements=None if error else {"KeyId": key},
        error_code=error, error_message="denied" if error else None, key_arns=[key], event_time=at,
        read_only=True)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(tmp_path / "us-east-1.sqlite", isolation_level=None)
    AuditLog.create_schema(conn)
    yield conn
    conn.close()


def _fill(conn: sqlite3.Connection, count: int = 5) -> AuditLog:
    conn.execute("BEGIN IMMEDIATE")
    for i in range(count):
        AuditLog.append(conn, _event(at=T0 + timedelta(seconds=i)))
    conn.execute("COMMIT")
    return AuditLog(lambda: conn)


# --- event shape ------------------------------------------------------------------------------

def test_event_has_cloudtrail_shape() -> None:
    event = _event()
    for field in ("eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion",
                  "sourceIPAddress", "userAgent", "requestParameters", "responseElements", "requestID",
                  "eventID", "readOnly", "resources", "eventType", "recipientAccountId"):
        assert field in event, field
    assert event["eventSource"] == "kms.amazonaws.com" and event["eventType"] == "AwsApiCall"
    assert event["eventTime"] == "2026-11-22T12:00:00Z"
    assert event["requestParameters"] == {"keyId": KEY, "encryptionContext": {"Dept": "eng"}}
    assert event["resources"] == [{"ARN": KEY, "accountId": ACCOUNT, "type": "AWS::KMS::Key"}]
    assert event["readOnly"] is True and event["recipientAccountId"] == ACCOUNT
    assert "errorCode" not in event and "errorMessage" not in event
    assert event["eventID"] != _event()["eventID"]
    failed = _event(error="AccessDeniedException")
    assert failed["errorCode"] == "AccessDeniedException" and failed["errorMessage"] == "denied"
    assert failed["responseElements"] is None
    json.dumps(event)  # JSON-ready as it stands


@pytest.mark.parametrize(("principal", "kind"), [
    (f"arn:aws:iam::{ACCOUNT}:root", "Root"),
    (ALICE, "IAMUser"),
    (APP, "AssumedRole"),
    (f"arn:aws:sts::{ACCOUNT}:assumed-role/App/session-7", "AssumedRole"),
])
def test_user_identity(principal: str, kind: str) -> None:
    identity = _event(principal=principal)["userIdentity"]
    assert isinstance(identity, dict)
    assert identity["type"] == kind and identity["arn"] == principal and identity["accountId"] == ACCOUNT
    assert identity["principalId"]


def test_secrets_and_bytes_never_appear() -> None:
    event = build_event(
        event_name="GenerateDataKey", region="us-east-1", account=ACCOUNT, principal=APP,
        request_parameters={
            "KeyId": KEY, "NumberOfBytes": 32, "GrantTokens": ["token-abc"], "Plaintext": SECRET,
            "CiphertextBlob": SECRET, "ImportToken": SECRET, "EncryptedKeyMaterial": SECRET,
            "Message": SECRET, "Signature": SECRET, "Mac": SECRET, "Note": SECRET,
            "EncryptionContext": {"Plaintext": "kept: context keys are data", "blob": SECRET},
            "Nested": {"PrivateKeyPlaintext": SECRET, "List": [SECRET, "ok"], "When": T0},
        },
        response_elements={"Plaintext": SECRET, "CiphertextBlob": SECRET, "KeyId": KEY,
                           "GrantToken": "token-xyz", "ResponseMetadata": {"RequestId": "r"}},
        error_code=None, error_message=None, key_arns=[KEY], event_time=T0)
    text = json.dumps(event)
    for leaked in ("token-abc", "token-xyz", "secret-bytes", "c2VjcmV0", "PrivateKey", "ImportToken",
                   "RequestId", "signature", "\"mac\""):
        assert leaked not in text, leaked
    request = event["requestParameters"]
    assert isinstance(request, dict)
    assert request["numberOfBytes"] == 32 and request["keyId"] == KEY
    assert request["encryptionContext"] == {"Plaintext": "kept: context keys are data"}
    assert request["nested"] == {"list": ["ok"], "when": "2026-11-22T12:00:00Z"}
    assert event["responseElements"] == {"keyId": KEY}


def test_naive_times_are_refused(db: sqlite3.Connection) -> None:
    with pytest.raises(ValueError):
        _event(at=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        AuditLog(lambda: db).lookup(start_time=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        AuditLog.append(db, {"eventName": "X", "eventTime": "yesterday"})


_ENCODE_CASES: dict[str, dict[str, object]] = {
    "allowed": {"principal": APP, "request_parameters": {"KeyId": KEY, "NumberOfBytes": 32,
                                                         "EncryptionContext": {"b": "2", "a": "1"}},
                "response_elements": None, "error_code": None, "error_message": None, "key_arns": [KEY]},
    "denied": {"principal": ALICE, "request_parameters": {"KeyId": KEY, "Plaintext": SECRET},
               "response_elements": None, "error_code": "AccessDeniedException",
               "error_message": 'User "Alice" \\ is not authorized\n', "key_arns": []},
    "response-and-two-keys": {
        "principal": f"arn:aws:sts::{ACCOUNT}:assumed-role/App/s-1",
        "request_parameters": {"SourceKeyId": KEY, "DestinationKeyId": KEY2, "CiphertextBlob": SECRET,
                               "GrantTokens": ["t"], "Tags": [{"TagKey": "k", "TagValue": 1.5}]},
        "response_elements": {"KeyId": KEY2, "SourceKeyId": KEY, "Plaintext": SECRET, "Truncated": False},
        "error_code": None, "error_message": None,
        "key_arns": [KEY, KEY2, f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/x"]},
    "unicode-and-quotes": {
        "principal": "kms.amazonaws.com",
        "request_parameters": {"EncryptionContext": {"ключ\"": "värde\u2028"}, "Description": "é\x00\t"},
        "response_elements": {}, "error_code": "ValidationException", "error_message": None, "key_arns": [KEY]},
    "empty": {"principal": f"arn:aws:iam::{ACCOUNT}:root", "request_parameters": {},
              "response_elements": None, "error_code": None, "error_message": None, "key_arns": []},
}


@pytest.mark.parametrize("read_only", [False, True], ids=["write", "read-only"])
@pytest.mark.parametrize("case", list(_ENCODE_CASES), ids=list(_ENCODE_CASES))
def test_encoded_event_is_the_canonical_json_of_build_event(case: str, read_only: bool) -> None:
    fields = {**_ENCODE_CASES[case], "event_name": "ReEncrypt", "region": "eu-west-1", "account": ACCOUNT,
              "source_ip": '10.0.0.1"', "user_agent": "agent/1 \\ é", "read_only": read_only}
    now = T0.timestamp() + 59.75
    encoded = encode_event(now=now, **fields)  # type: ignore[arg-type]
    reference = build_event(event_time=T0 + timedelta(seconds=59), **fields)  # type: ignore[arg-type]
    decoded = json.loads(encoded.body)
    assert decoded["eventID"] != decoded["requestID"]
    for random_id in ("eventID", "requestID"):
        assert len(decoded[random_id]) == 36 and decoded[random_id][14] == "4"
        decoded[random_id] = reference[random_id]
    assert decoded == reference
    # Byte for byte what the chain hashes: sorted keys, no spaces, UTF-8 as is.
    canonical = json.dumps(json.loads(encoded.body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert encoded.body == canonical
    assert encoded.ts == T0.timestamp() + 59 and encoded.event_name == "ReEncrypt"
    identity = reference["userIdentity"]
    assert isinstance(identity, dict)
    assert encoded.principal == (identity.get("arn") or identity.get("invokedBy"))
    assert encoded.key_arns == " " + " ".join(fields["key_arns"]) + " "  # type: ignore[arg-type]


def test_encoded_events_chain_and_verify(db: sqlite3.Connection) -> None:
    log = AuditLog(lambda: db)
    for i, case in enumerate(_ENCODE_CASES.values()):
        encoded = encode_event(event_name="Decrypt", region="us-east-1", account=ACCOUNT,
                               now=T0.timestamp() + i, **case)  # type: ignore[arg-type]
        seq, _, digest = AuditLog.append_encoded(db, encoded)
        assert seq == i + 1 and log.head() == (seq, digest)
    AuditLog.append(db, _event())  # dict events and encoded ones share one chain
    assert log.verify().ok and log.verify().count == len(_ENCODE_CASES) + 1
    assert [e["sequenceNumber"] for e in log.lookup(principal=ALICE)] == [2]
    assert [e["sequenceNumber"] for e in log.lookup(key_id=KEY2)] == [3]
    with pytest.raises(ValueError):
        encode_event(event_name="Decrypt", region="us-east-1", account=ACCOUNT, now=float("nan"),
                     **_ENCODE_CASES["empty"])  # type: ignore[arg-type]


# --- append and lookup ----------------------------------------------------------------------------

def test_append_chains_records(db: sqlite3.Connection) -> None:
    AuditLog.create_schema(db)  # idempotent
    first = AuditLog.append(db, _event())  # outside a transaction: commits on its own
    second = AuditLog.append(db, _event("Encrypt"))
    assert (first["sequenceNumber"], first["previousHash"]) == (1, GENESIS_HASH)
    assert (second["sequenceNumber"], second["previousHash"]) == (2, first["hash"])
    log = AuditLog(lambda: db)
    assert log.head() == (2, second["hash"])
    assert [e["eventName"] for e in log.lookup()] == ["Encrypt", "Decrypt"]  # newest first


def test_append_rolls_back_with_the_callers_transaction(db: sqlite3.Connection) -> None:
    log = _fill(db, 2)
    head = log.head()
    db.execute("BEGIN IMMEDIATE")
    AuditLog.append(db, _event("ScheduleKeyDeletion"))
    db.execute("ROLLBACK")
    assert log.head() == head and len(log.lookup()) == 2 and log.verify().ok
    AuditLog.append(db, _event("Encrypt"))
    assert log.verify().ok and log.head()[0] == 3


def test_lookup_filters(db: sqlite3.Connection) -> None:
    db.execute("BEGIN IMMEDIATE")
    AuditLog.append(db, _event("Encrypt", at=T0))
    AuditLog.append(db, _event("Decrypt", at=T0 + timedelta(minutes=1), principal=ALICE))
    AuditLog.append(db, _event("Decrypt", at=T0 + timedelta(minutes=2), key=KEY2))
    AuditLog.append(db, _event("Decrypt", at=T0 + timedelta(minutes=3), error="AccessDeniedException"))
    db.execute("COMMIT")
    log = AuditLog(lambda: db)

    def seqs(**kwargs: object) -> list[object]:
        return [e["sequenceNumber"] for e in log.lookup(**kwargs)]  # type: ignore[arg-type]

    assert seqs() == [4, 3, 2, 1]
    assert seqs(event_name="Decrypt") == [4, 3, 2]
    assert seqs(principal=ALICE) == [2]
    assert seqs(key_id=KEY_ID) == [4, 2, 1]
    assert seqs(key_id=KEY2) == [3]
    assert seqs(key_id=KEY_ID[:8]) == []  # a prefix of an id is not the id
    assert seqs(start_time=T0 + timedelta(minutes=1), end_time=T0 + timedelta(minutes=2)) == [3, 2]
    assert seqs(start_time=T0 + timedelta(minutes=2, seconds=1)) == [4]
    assert seqs(start_time=T0 + timedelta(minutes=3, microseconds=500)) == [4]  # same second
    assert seqs(event_name="Decrypt", limit=2) == [4, 3]
    assert seqs(event_name="Decrypt", principal=APP, key_id=KEY) == [4]
    assert log.lookup(limit=1)[0]["errorCode"] == "AccessDeniedException"
    with pytest.raises(ValueError):
        log.lookup(limit=-1)


def test_export_jsonl_lines_verify_offline(db: sqlite3.Connection) -> None:
    log = _fill(db, 4)
    out = io.StringIO()
    assert log.export_jsonl(out) == 4
    lines = out.getvalue().splitlines()
    previous = GENESIS_HASH
    for number, line in enumerate(lines, start=1):
        record = json.loads(line)
        seq, prev, digest = record.pop("sequenceNumber"), record.pop("previousHash"), record.pop("hash")
        body = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert seq == number and prev == previous
        assert hashlib.sha256(f"{seq}\n{prev}\n{body}".encode()).hexdigest() == digest
        previous = digest
    assert log.head() == (4, previous)


def test_a_fresh_connection_per_call_works(tmp_path: Path) -> None:
    path = tmp_path / "region.sqlite"
    writer = sqlite3.connect(path, isolation_level=None)
    AuditLog.create_schema(writer)
    AuditLog.append(writer, _event())
    writer.close()
    log = AuditLog(lambda: sqlite3.connect(path))
    assert len(log.lookup()) == 1 and log.verify().ok


# --- tamper detection -----------------------------------------------------------------------------

def _tamper_edit_body(db: sqlite3.Connection) -> None:
    body = db.execute("SELECT body FROM audit_events WHERE seq = 3").fetchone()[0]
    db.execute("UPDATE audit_events SET body = ? WHERE seq = 3", (body.replace("Decrypt", "Encrypt"),))


def _tamper_edit_and_rehash(db: sqlite3.Connection) -> None:
    seq, prev, body = db.execute("SELECT seq, prev_hash, body FROM audit_events WHERE seq = 3").fetchone()
    body = body.replace("us-east-1\"", "eu-west-1\"")
    digest = hashlib.sha256(f"{seq}\n{prev}\n{body}".encode()).hexdigest()
    db.execute("UPDATE audit_events SET body = ?, hash = ? WHERE seq = 3", (body, digest))


def _tamper_swap(db: sqlite3.Connection) -> None:
    rows = {r[0]: r[1:] for r in db.execute("SELECT seq, body, prev_hash, hash FROM audit_events "
                                             "WHERE seq IN (2, 3)")}
    for seq, other in ((2, 3), (3, 2)):
        db.execute("UPDATE audit_events SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?", (*rows[other], seq))


def _tamper_renumber(db: sqlite3.Connection) -> None:
    db.execute("UPDATE audit_events SET seq = 99 WHERE seq = 2")


def _tamper_column(db: sqlite3.Connection) -> None:
    db.execute("UPDATE audit_events SET principal = 'arn:aws:iam::111122223333:user/Mallory' WHERE seq = 3")


def _tamper_insert(db: sqlite3.Connection) -> None:
    db.execute("UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 3")  # make room at 3
    db.execute("UPDATE audit_events SET seq = seq - 999 WHERE seq > 1000")
    db.execute("INSERT INTO audit_events SELECT 3, ts, event_name, principal, key_arns, body, prev_hash, hash "
               "FROM audit_events WHERE seq = 2")


@pytest.mark.parametrize(("tamper", "first_bad"), [
    (_tamper_edit_body, 3),
    (_tamper_edit_and_rehash, 4),
    (_tamper_swap, 2),
    (lambda db: db.execute("DELETE FROM audit_events WHERE seq = 3"), 3),
    (lambda db: db.execute("DELETE FROM audit_events WHERE seq >= 4"), 4),
    (lambda db: db.execute("DELETE FROM audit_events WHERE seq = 1"), 1),
    (_tamper_renumber, 2),
    (_tamper_column, 3),
    (lambda db: db.execute("UPDATE audit_events SET hash = 'x' || substr(hash, 2) WHERE seq = 5"), 5),
], ids=["edit", "edit-and-rehash", "reorder", "delete-middle", "delete-tail", "delete-first", "renumber",
        "indexed-column", "edit-last-hash"])
def test_verify_detects_tampering(db: sqlite3.Connection, tamper: object, first_bad: int) -> None:
    log = _fill(db, 5)
    assert log.verify().ok
    tamper(db)  # type: ignore[operator]
    result = log.verify()
    assert not result.ok and result.first_bad_sequence == first_bad, result


def test_verify_detects_insertion(db: sqlite3.Connection) -> None:
    log = _fill(db, 5)
    _tamper_insert(db)
    result = log.verify()
    assert not result.ok and result.first_bad_sequence is not None and result.first_bad_sequence <= 4


def test_verify_detects_missing_head(db: sqlite3.Connection) -> None:
    log = _fill(db, 3)
    db.execute("DELETE FROM audit_head")
    assert not log.verify().ok
    with pytest.raises(KMSError, match="chain head is missing"):  # no silent restart of the chain
        AuditLog.append(db, _event())
    assert not log.verify().ok


def test_anchor_catches_a_consistent_rewrite(db: sqlite3.Connection) -> None:
    log = _fill(db, 3)
    anchor = log.head()
    # Rewrite everything from scratch, chain and head consistent: only the anchor can tell.
    db.execute("DELETE FROM audit_events")
    db.execute("DELETE FROM audit_head")
    for i in range(3):
        AuditLog.append(db, _event("Encrypt", at=T0 + timedelta(seconds=i)))
    assert log.verify().ok
    result = log.verify(anchor=anchor)
    assert not result.ok and result.first_bad_sequence == 3
    wiped = AuditLog(lambda: db)
    db.execute("DELETE FROM audit_events")
    db.execute("DELETE FROM audit_head")
    assert wiped.verify().ok and wiped.verify().count == 0
    assert not wiped.verify(anchor=anchor).ok


def test_create_schema_drops_the_old_time_index(db: sqlite3.Connection) -> None:
    # Files made before the index was dropped lose it at open, so their commits stop paying for it.
    db.execute("CREATE INDEX audit_events_ts ON audit_events (ts)")
    AuditLog.create_schema(db)
    indexes = db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events'")
    assert indexes.fetchall() == []


def test_empty_log_verifies(db: sqlite3.Connection) -> None:
    result = AuditLog(lambda: db).verify()
    assert result.ok and result.count == 0 and result.first_bad_sequence is None
