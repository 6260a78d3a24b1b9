"""Schema versions: a store of every earlier version opens (migrated in one transaction); a newer one is refused.

Issue 12 item 6. The fixtures under tests/kms/fixtures/ were written by each schema version's build
(tests/kms/fixtures/make_store.py); keep adding one per schema change.
"""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path

import pytest
from _kms_store_helpers import check_messages, release, store_from_fixture

from envelope.kms import LocalKMS, StoreError
from envelope.kms.server import AccessKeys
from envelope.kms.store.database import SCHEMA_VERSION, schema_version


def _dump(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def _versions(directory: Path) -> dict[str, int | None]:
    found = {}
    for path in sorted(directory.glob("*.sqlite3")):
        conn = sqlite3.connect(path)
        found[path.name] = schema_version(conn)
        conn.close()
    return found


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION + 1), ids=lambda v: f"schema-{v}")
def test_a_store_of_each_version_opens_and_keeps_everything(tmp_path: Path, version: int) -> None:
    directory = tmp_path / "store"
    fixture = store_from_fixture(version, directory)
    check_messages(directory, fixture["messages"])
    kms = LocalKMS(directory)
    mac = fixture["mac"]
    assert kms.verify_mac(KeyId=mac["key"], Message=b"fixture", MacAlgorithm="HMAC_SHA_256",
                          Mac=base64.b64decode(mac["mac"]))["MacValid"]
    assert kms.describe_key(KeyId="alias/fixture")["KeyMetadata"]["Description"] == "fixture symmetric"
    assert kms.principals.list_principals() == ["arn:aws:iam::111122223333:user/fixture"]
    keys = AccessKeys(directory)
    assert keys.lookup(fixture["access_key"]["id"]) == (fixture["access_key"]["secret"],
                                                         "arn:aws:iam::111122223333:root")
    keys.close()
    assert set(_versions(directory).values()) == {SCHEMA_VERSION}
    # The calls above were appended to a keyed chain after the older records.
    assert kms.audit.verify().ok and kms.audit.checkpoint() is not None
    del kms
    release()


def test_a_newer_store_is_refused_unchanged(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    store_from_fixture(SCHEMA_VERSION, directory)
    path = directory / "kms-us-east-1.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = 99 WHERE name = 'schema_version'")
    before = _dump(path)
    with pytest.raises(StoreError, match=r"kms-us-east-1.sqlite3 has schema version 99, newer than this build") as exc:
        LocalKMS(directory)
    assert "upgrade envelope" in (exc.value.hint or "")
    release()
    assert _dump(path) == before  # (the header may now say WAL)


def test_a_failed_migration_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The migration runs in the transaction that opens the file: refused here (the key does not
    # open the schema-1 material), the file keeps its version and contents.
    directory = tmp_path / "store"
    store_from_fixture(1, directory)
    path = directory / "kms-us-east-1.sqlite3"
    before = _dump(path)
    monkeypatch.setenv("ENVELOPE_KMS_ROOT_KEY", base64.b64encode(b"w" * 32).decode())
    with pytest.raises(StoreError, match="does not open the key material"):
        LocalKMS(directory)
    release()
    assert _dump(path) == before  # (the header may now say WAL)
    assert _versions(directory)["kms-us-east-1.sqlite3"] == 1
