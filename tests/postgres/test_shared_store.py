"""Two services in one process over one PostgreSQL store (separate partitions: separate caches, as
two instances have), and the `envelope kms` commands for the store (--database, migrate)."""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path

import pytest
from pgserver import create_database

from envelope.kms import LocalKMS, ManualClock
from envelope.kms.model.clock import DAY

START = 1_767_225_600.0  # 2026-01-01


@pytest.fixture
def postgres_url(postgres_base_url: str) -> str:
    """A fresh database per test: each test has its own root key, and a store records the key that
    seals it (a store under another key is refused)."""
    return create_database(postgres_base_url)


@pytest.fixture
def two_instances(postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[LocalKMS, LocalKMS]:
    # Two data directories, one root key: two partitions (two sets of caches) on one database.
    monkeypatch.setenv("ENVELOPE_KMS_ROOT_KEY", base64.b64encode(os.urandom(32)).decode())
    clock = ManualClock(START)
    return (LocalKMS(tmp_path / "a", clock=clock, database=postgres_url),
            LocalKMS(tmp_path / "b", clock=clock, database=postgres_url))


def test_a_due_rotation_is_applied_once_whichever_instance_sees_it(two_instances: tuple[LocalKMS, LocalKMS]) -> None:
    # https://docs.aws.amazon.com/kms/latest/developerguide/rotating-keys-enable.html
    a, b = two_instances
    key_id = a.create_key()["KeyMetadata"]["KeyId"]
    a.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    before = b.encrypt(KeyId=key_id, Plaintext=b"old")["CiphertextBlob"]
    clock = a._session.clock
    assert isinstance(clock, ManualClock)
    clock.advance(days=91)
    barrier = threading.Barrier(4)
    blobs: list[bytes] = []

    def call(kms: LocalKMS) -> None:
        barrier.wait()
        blobs.append(kms.encrypt(KeyId=key_id, Plaintext=b"new")["CiphertextBlob"])

    threads = [threading.Thread(target=call, args=(kms,)) for kms in (a, b, a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rotations = a.list_key_rotations(KeyId=key_id)["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["AUTOMATIC"]  # once, not once per instance
    assert rotations[0]["RotationDate"].timestamp() == pytest.approx(START + 90 * DAY)
    for kms in (a, b):
        assert kms.decrypt(CiphertextBlob=before)["Plaintext"] == b"old"
        for blob in blobs:
            assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"new"
    assert a.audit.verify().ok


def test_a_due_deletion_is_applied_once(two_instances: tuple[LocalKMS, LocalKMS]) -> None:
    a, b = two_instances
    key_id = a.create_key()["KeyMetadata"]["KeyId"]
    a.create_alias(AliasName="alias/going", TargetKeyId=key_id)
    b.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    clock = a._session.clock
    assert isinstance(clock, ManualClock)
    clock.advance(days=8)
    seen: list[list[str]] = []
    barrier = threading.Barrier(2)

    def list_keys(kms: LocalKMS) -> None:  # ListKeys applies due deletions first
        barrier.wait()
        seen.append([k["KeyId"] for k in kms.list_keys()["Keys"]])

    threads = [threading.Thread(target=list_keys, args=(kms,)) for kms in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(key_id not in keys for keys in seen)
    assert "alias/going" not in [alias["AliasName"] for alias in b.list_aliases()["Aliases"]]
    assert a.audit.verify().ok


def test_principals_and_identity_policies_are_shared(two_instances: tuple[LocalKMS, LocalKMS]) -> None:
    a, b = two_instances
    key_id = a.create_key()["KeyMetadata"]["KeyId"]
    user = "arn:aws:iam::111122223333:user/dana"
    a.principals.create(user)
    as_user = b.for_principal(user)
    with pytest.raises(Exception, match="not authorized"):
        as_user.encrypt(KeyId=key_id, Plaintext=b"x")
    a.principals.put_identity_policy(user, "use", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}]})
    assert as_user.encrypt(KeyId=key_id, Plaintext=b"x")["KeyId"].endswith(key_id)  # b's cache saw a's change


def test_cli_database_flag_and_migrate(postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from envelope_cli.main import main

    monkeypatch.setenv("ENVELOPE_DATA_DIR", str(tmp_path / "data"))
    # Set (empty: unset for LocalKMS) so that what --database exports is undone after the test.
    monkeypatch.setenv("ENVELOPE_KMS_DATABASE", "")
    assert main(["kms", "migrate", "--database", postgres_url, "--region", "eu-central-1"]) == 0
    schemas = json.loads(capsys.readouterr().out)["Schemas"]
    assert {"kms_eu_central_1", "kms_iam"} <= set(schemas)
    assert main(["kms", "create-key", "--database", postgres_url, "--description", "via cli",
                 "--region", "eu-central-1"]) == 0
    key_id = json.loads(capsys.readouterr().out)["KeyMetadata"]["KeyId"]
    # Another client, not the CLI's: the key is in the database, not in the data directory's files.
    assert LocalKMS(tmp_path / "data", region="eu-central-1", database=postgres_url).describe_key(
        KeyId=key_id)["KeyMetadata"]["Description"] == "via cli"
    assert not list((tmp_path / "data").glob("kms-*.sqlite3"))


def test_a_group_whose_connection_dies_is_never_reported_committed(postgres_url: str, tmp_path: Path) -> None:
    import psycopg

    from envelope.kms.store.backend import StoreUnavailableError

    kms = LocalKMS(tmp_path / "g", database=postgres_url)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    region = kms._region_state()
    before = kms.audit.head()[0]
    assert region.db.open_group()
    kms.encrypt(KeyId=key_id, Plaintext=b"held in the group")  # done, not yet committed
    pid = region.db.connect().raw.info.backend_pid  # type: ignore[attr-defined]
    with psycopg.connect(postgres_url, autocommit=True) as admin:  # the database drops the connection
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    kms.encrypt(KeyId=key_id, Plaintext=b"after the drop")  # held too (it needs no round trip)
    with pytest.raises(StoreUnavailableError) as failed:
        kms.create_key()  # a write: it reaches the database and finds the connection gone
    assert failed.value.code == "DependencyTimeoutException"  # HTTP 503: SDKs retry it
    with pytest.raises(StoreUnavailableError):  # the calls before it must not be reported done
        region.db.commit_group()
    assert kms.audit.head()[0] == before  # neither call happened
    assert kms.encrypt(KeyId=key_id, Plaintext=b"reconnected")["KeyId"].endswith(key_id)
    assert kms.audit.verify().ok
