"""The audit log of a key store: keyed chaining, export by time, prune with a checkpoint (issue 12 item 7)."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _kms_store_helpers import release

from envelope.errors import KMSError
from envelope.kms import LocalKMS, ManualClock, rotate_root_key

START = datetime(2026, 3, 1, tzinfo=UTC)


def _store(directory: Path, days: int = 5) -> LocalKMS:
    """One key, then one Encrypt a day (a CreateKey event at START, then one event per day)."""
    clock = ManualClock(START.timestamp())
    kms = LocalKMS(directory, clock=clock)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    for _ in range(days):
        clock.advance(86400)
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    return kms


def test_a_rewrite_without_the_root_key_is_detected(tmp_path: Path) -> None:
    kms = _store(tmp_path / "store")
    assert kms.audit.verify().ok
    db = tmp_path / "store" / "kms-us-east-1.sqlite3"
    # Someone with write access edits record 3 and recomputes every later hash and the head the
    # way an unkeyed chain would be computed: without the key, the chain no longer verifies.
    conn = sqlite3.connect(db, isolation_level=None)
    rows = conn.execute("SELECT seq, body, prev_hash FROM audit_events ORDER BY seq").fetchall()
    previous = conn.execute("SELECT hash FROM audit_events WHERE seq = 2").fetchone()[0]
    conn.execute("BEGIN")
    for seq, body, _ in rows[2:]:
        if seq == 3:
            body = body.replace('"Encrypt"', '"Decrypt"')
        digest = hashlib.sha256(f"{seq}\n{previous}\n{body}".encode()).hexdigest()
        conn.execute("UPDATE audit_events SET body = ?, prev_hash = ?, hash = ?, event_name = ? WHERE seq = ?",
                     (body, previous, digest, json.loads(body)["eventName"], seq))
        previous = digest
    conn.execute("UPDATE audit_head SET hash = ?", (previous,))
    conn.execute("COMMIT")
    verdict = kms.audit.verify()
    assert not verdict.ok and verdict.first_bad_sequence == 3


def test_the_checkpoint_cannot_be_altered(tmp_path: Path) -> None:
    kms = _store(tmp_path / "store")
    with sqlite3.connect(tmp_path / "store" / "kms-us-east-1.sqlite3") as conn:
        conn.execute("UPDATE audit_checkpoint SET pruned_through = 2")
    assert kms.audit.verify().reason == "the chain's checkpoint is missing or was altered"


def test_export_since_until(tmp_path: Path) -> None:
    kms = _store(tmp_path / "store")
    out = io.StringIO()
    count = kms.audit.export_jsonl(out, since=START + timedelta(days=2), until=START + timedelta(days=3, hours=1))
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert count == 2 and [r["sequenceNumber"] for r in records] == [3, 4]
    assert [r["eventTime"] for r in records] == ["2026-03-03T00:00:00Z", "2026-03-04T00:00:00Z"]


def test_prune_keeps_the_rest_verifiable(tmp_path: Path) -> None:
    kms = _store(tmp_path / "store")
    anchor = kms.audit.head()
    old_anchor = (3, kms.audit.lookup(event_name="Encrypt")[-2]["hash"])
    pruned = kms.audit.prune(START + timedelta(days=3), now=START.timestamp())
    assert pruned == 3  # CreateKey and the first two Encrypts
    verdict = kms.audit.verify(anchor=anchor)
    assert verdict.ok and verdict.count == 3 and "3 older records pruned" in verdict.reason
    assert kms.audit.verify(anchor=old_anchor).ok  # the last pruned record is the checkpoint's
    assert not kms.audit.verify(anchor=(3, "0" * 64)).ok
    assert kms.audit.prune(START + timedelta(days=1), now=START.timestamp()) == 0
    kms.list_keys()  # the chain goes on from its head
    assert kms.audit.verify().ok
    # Deleting the oldest remaining record is still caught: the checkpoint fixes where the chain starts.
    with sqlite3.connect(tmp_path / "store" / "kms-us-east-1.sqlite3") as conn:
        conn.execute("DELETE FROM audit_events WHERE seq = 4")
    assert kms.audit.verify().first_bad_sequence == 4


def test_prune_refuses_a_damaged_log(tmp_path: Path) -> None:
    kms = _store(tmp_path / "store")
    with sqlite3.connect(tmp_path / "store" / "kms-us-east-1.sqlite3") as conn:
        conn.execute("UPDATE audit_events SET body = body || ' ' WHERE seq = 2")
    with pytest.raises(KMSError, match="does not verify"):
        kms.audit.prune(START + timedelta(days=9), now=START.timestamp())
    assert len(kms.audit.lookup()) == 6


def test_verify_after_prune_and_rotation(tmp_path: Path) -> None:
    kms = _store(tmp_path / "store")
    kms.audit.prune(START + timedelta(days=2), now=START.timestamp())
    anchor = kms.audit.head()
    del kms
    release()
    rotate_root_key(tmp_path / "store")
    kms = LocalKMS(tmp_path / "store")
    kms.list_keys()
    verdict = kms.audit.verify(anchor=anchor)
    assert verdict.ok and verdict.count == 5


def test_the_unkeyed_prefix_of_a_migrated_log_is_sealed_by_the_checkpoint(tmp_path: Path) -> None:
    # A schema-1 log keeps its SHA-256 records; the checkpoint written at migration MACs their
    # head, so rewriting them consistently (possible without any key) is still detected.
    from _kms_store_helpers import store_from_fixture

    directory = tmp_path / "store"
    store_from_fixture(1, directory)
    kms = LocalKMS(directory)
    kms.list_keys()
    checkpoint = kms.audit.checkpoint()
    assert checkpoint is not None and checkpoint.keyed_after > 2 and kms.audit.verify().ok
    conn = sqlite3.connect(directory / "kms-us-east-1.sqlite3", isolation_level=None)
    rows = conn.execute("SELECT seq, body FROM audit_events WHERE seq <= ? ORDER BY seq",
                        (checkpoint.keyed_after,)).fetchall()
    previous = "0" * 64
    conn.execute("BEGIN")
    for seq, body in rows:
        if seq == 2:
            body = body.replace('"111122223333"', '"999999999999"')
        digest = hashlib.sha256(f"{seq}\n{previous}\n{body}".encode()).hexdigest()
        conn.execute("UPDATE audit_events SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                     (body, previous, digest, seq))
        previous = digest
    conn.execute("COMMIT")
    conn.close()
    verdict = kms.audit.verify()
    assert not verdict.ok and verdict.first_bad_sequence == checkpoint.keyed_after
