"""kms-operator's store semantics on the PostgreSQL store: schema version and migration from the
first PostgreSQL schema, the root key id recorded and checked, the keyed audit chain with its
checkpoint (prune, export), copy-store carrying the chain key and checkpoint, and the operator
commands that only the SQLite store has (backup, restore, rotate-root-key) refused with a hint."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from pgserver import create_database

from envelope.kms import LocalKMS, ManualClock, StoreError
from envelope.kms.server import AccessKeys
from envelope.kms.store.auditchain import GENESIS_HASH, chain_hash
from envelope.kms.store.copy import copy_store
from envelope.kms.store.database import SCHEMA_VERSION
from envelope.kms.store.partition import open_partition

START = datetime(2026, 3, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
SCHEMA = "kms_us_east_1"


@pytest.fixture
def url(postgres_base_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ENVELOPE_KMS_ROOT_KEY", base64.b64encode(os.urandom(32)).decode())
    return create_database(postgres_base_url)


def _store(directory: Path, url: str | None, days: int = 4) -> tuple[LocalKMS, ManualClock, str]:
    clock = ManualClock(START.timestamp())
    kms = LocalKMS(directory, clock=clock, database=url)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    for _ in range(days):
        clock.advance(86400)
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    return kms, clock, key_id


def _sql(url: str, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def test_a_new_postgres_store_has_the_sqlite_schema_version_and_records_its_root_key(url: str,
                                                                                   tmp_path: Path) -> None:
    kms, _, _ = _store(tmp_path / "d", url)
    assert _sql(url, f"SELECT value FROM {SCHEMA}.meta WHERE name = 'schema_version'") == [(SCHEMA_VERSION,)]
    names = {str(n) for (n,) in _sql(url, f"SELECT name FROM {SCHEMA}.store_keys")}
    assert names == {"root_key_id", "audit_chain_key", "fingerprint_key"}
    assert kms.audit.verify().ok


def test_another_root_key_is_refused_naming_the_schema_and_both_ids(url: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _store(tmp_path / "d", url)
    monkeypatch.setenv("ENVELOPE_KMS_ROOT_KEY", base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(StoreError, match=f"the PostgreSQL schema {SCHEMA} is sealed under another root key"):
        LocalKMS(tmp_path / "other", database=url).list_keys()


def test_a_newer_schema_is_refused_and_left_unchanged(url: str, tmp_path: Path) -> None:
    _store(tmp_path / "d", url)
    _sql(url, f"UPDATE {SCHEMA}.meta SET value = %s WHERE name = 'schema_version'", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer than this build"):
        LocalKMS(tmp_path / "other", database=url).list_keys()
    assert _sql(url, f"SELECT value FROM {SCHEMA}.meta WHERE name = 'schema_version'") == [(SCHEMA_VERSION + 1,)]


def test_a_schema_1_postgres_store_is_migrated_keeping_its_chain_and_keys(url: str, tmp_path: Path) -> None:
    kms, _, key_id = _store(tmp_path / "d", url)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"before")["CiphertextBlob"]
    # Make it what the first PostgreSQL release wrote: no store keys, no checkpoint, version 1,
    # the audit chain by plain SHA-256.
    previous = GENESIS_HASH
    with psycopg.connect(url) as conn:
        conn.execute(f"DROP TABLE {SCHEMA}.store_keys, {SCHEMA}.audit_checkpoint")
        conn.execute(f"UPDATE {SCHEMA}.meta SET value = 1 WHERE name = 'schema_version'")
        for seq, body in conn.execute(f"SELECT seq, body FROM {SCHEMA}.audit_events ORDER BY seq").fetchall():
            digest = chain_hash(None, seq, previous, body)
            conn.execute(f"UPDATE {SCHEMA}.audit_events SET prev_hash = %s, hash = %s WHERE seq = %s",
                         (previous, digest, seq))
            previous = digest
        conn.execute(f"UPDATE {SCHEMA}.audit_head SET hash = %s", (previous,))
    migrated = LocalKMS(tmp_path / "again", database=url)  # another partition: opens (and migrates) the schema
    assert migrated.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before"
    assert _sql(url, f"SELECT value FROM {SCHEMA}.meta WHERE name = 'schema_version'") == [(SCHEMA_VERSION,)]
    keyed_after = _sql(url, f"SELECT keyed_after FROM {SCHEMA}.audit_checkpoint")
    assert keyed_after and int(str(keyed_after[0][0])) > 0  # the SHA-256 prefix is MACed, later records keyed
    assert migrated.audit.verify().ok


def test_the_keyed_chain_detects_a_rewrite_and_prunes_with_a_checkpoint(url: str, tmp_path: Path) -> None:
    kms, clock, _ = _store(tmp_path / "d", url)
    assert kms.audit.verify().ok
    pruned = kms.audit.prune(START + timedelta(days=2), now=clock())
    assert pruned == 2  # CreateKey and the first day's Encrypt
    verdict = kms.audit.verify()
    assert verdict.ok and "2 older records pruned" in verdict.reason
    out = io.StringIO()
    assert kms.audit.export_jsonl(out) == 3
    assert [json.loads(line)["eventName"] for line in out.getvalue().splitlines()] == ["Encrypt"] * 3
    # Without the chain key (sealed under the root key) a record cannot be rewritten consistently.
    body = str(_sql(url, f"SELECT body FROM {SCHEMA}.audit_events WHERE seq = 4")[0][0])
    _sql(url, f"UPDATE {SCHEMA}.audit_events SET body = %s WHERE seq = 4", (body.replace("Encrypt", "Decrypt"),))
    assert kms.audit.verify().first_bad_sequence == 4
    _sql(url, f"UPDATE {SCHEMA}.audit_checkpoint SET pruned_through = 1")
    assert kms.audit.verify().reason == "the chain's checkpoint is missing or was altered"


def test_copy_store_carries_the_chain_key_and_checkpoint(url: str, tmp_path: Path) -> None:
    data = tmp_path / "kms"
    embedded, clock, key_id = _store(data, None)
    embedded.audit.prune(START + timedelta(days=2), now=clock())
    blob = embedded.encrypt(KeyId=key_id, Plaintext=b"moved")["CiphertextBlob"]
    sqlite_keys, pg_keys = AccessKeys(data, None), AccessKeys(data, url)
    try:
        report = copy_store(open_partition(data), open_partition(data, url), (sqlite_keys._db, pg_keys._db))
    finally:
        sqlite_keys.close()
        pg_keys.close()
    assert report.ok, report.problems
    assert report.counts["us-east-1"]["audit_checkpoint"] == 1 and report.counts["us-east-1"]["store_keys"] == 3
    copied = LocalKMS(data, clock=clock, database=url)
    verdict = copied.audit.verify(anchor=embedded.audit.head())
    assert verdict.ok and "2 older records pruned" in verdict.reason
    assert copied.decrypt(CiphertextBlob=blob)["Plaintext"] == b"moved"
    copied.encrypt(KeyId=key_id, Plaintext=b"after")  # the chain goes on under the copied key
    assert copied.audit.verify().ok


def _cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "envelope_cli.main", *argv], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=False)


def test_backup_restore_and_rotate_root_key_refuse_a_postgres_store(url: str, tmp_path: Path) -> None:
    env = {**os.environ, "ENVELOPE_DATA_DIR": str(tmp_path / "d"), "ENVELOPE_KMS_DATABASE": url}
    done = _cli("kms", "backup", str(tmp_path / "bk"), env=env)
    assert done.returncode == 254 and "pg_dump" in done.stderr, done.stderr
    assert not (tmp_path / "bk").exists()
    done = _cli("kms", "restore", str(tmp_path / "bk"), env=env)
    assert done.returncode == 254 and "pg_restore" in done.stderr, done.stderr
    done = _cli("kms", "rotate-root-key", env=env)
    assert done.returncode == 254 and "SQLite store only" in done.stderr, done.stderr
    del env["ENVELOPE_KMS_DATABASE"]
    done = _cli("kms", "--database", url, "backup", str(tmp_path / "bk"), env=env)
    assert done.returncode == 254 and "pg_dump" in done.stderr, done.stderr
