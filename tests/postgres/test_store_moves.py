"""The PostgreSQL store: a copy from the embedded store, regions on different databases, a restart
of PostgreSQL under load (calls in flight fail with a retryable error, later calls succeed)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from pgserver import ENABLE_HINT, PgServer, _binaries, create_database

from envelope.errors import KMSError
from envelope.kms import LocalKMS, ManualClock
from envelope.kms.server import AccessKeys
from envelope.kms.store.copy import copy_store
from envelope.kms.store.partition import open_partition

from .instances import Instance, access_key, client


def test_copy_from_the_embedded_store_verified_key_by_key(postgres_base_url: str, tmp_path: Path) -> None:
    data = tmp_path / "kms"
    clock = ManualClock(1_767_225_600.0)
    embedded = LocalKMS(data, clock=clock)
    blobs: list[tuple[str, bytes]] = []
    for n in range(5):
        key_id = embedded.create_key(Description=f"k{n}", Tags=[{"TagKey": "n", "TagValue": str(n)}])["KeyMetadata"]["KeyId"]
        embedded.create_alias(AliasName=f"alias/k{n}", TargetKeyId=key_id)
        if n % 2:
            embedded.rotate_key_on_demand(KeyId=key_id)
        embedded.create_grant(KeyId=key_id, GranteePrincipal="arn:aws:iam::111122223333:role/app",
                              Operations=["Decrypt"])
        blobs.append((key_id, embedded.encrypt(KeyId=key_id, Plaintext=f"p{n}".encode())["CiphertextBlob"]))
    embedded.principals.create("arn:aws:iam::111122223333:role/app")
    embedded.for_region("eu-west-1").create_key(Description="elsewhere")
    sqlite_keys = AccessKeys(data, None)
    sqlite_keys.create()
    url = create_database(postgres_base_url)
    pg_keys = AccessKeys(data, url)
    report = copy_store(open_partition(data), open_partition(data, url), (sqlite_keys._db, pg_keys._db))
    assert report.ok, report.problems
    assert report.counts["us-east-1"]["keys"] == 5 and report.counts["us-east-1"]["key_versions"] == 7
    assert report.counts["eu-west-1"]["keys"] == 1 and report.counts["access-keys"]["access_keys"] == 1
    assert report.keys_checked == 6 and report.versions_checked == 8
    copied = LocalKMS(data, clock=clock, database=url)
    assert copied.list_keys()["Keys"] == embedded.list_keys()["Keys"]  # same keys, same order
    for n, (key_id, blob) in enumerate(blobs):
        assert copied.decrypt(CiphertextBlob=blob)["Plaintext"] == f"p{n}".encode()
        assert copied.describe_key(KeyId=f"alias/k{n}")["KeyMetadata"]["KeyId"] == key_id
        assert copied.list_grants(KeyId=key_id)["Grants"] == embedded.list_grants(KeyId=key_id)["Grants"]
    assert copied.principals.list_principals() == ["arn:aws:iam::111122223333:role/app"]
    assert copied.audit.verify().ok
    # A second copy into the same store is refused rather than mixing two histories.
    with pytest.raises(KMSError, match="copy into an empty database"):
        copy_store(open_partition(data), open_partition(data, url))


def test_multi_region_keys_across_databases(postgres_base_url: str, tmp_path: Path) -> None:
    # https://docs.aws.amazon.com/kms/latest/developerguide/multi-region-keys-overview.html
    prefix = create_database(postgres_base_url).rsplit("/", 1)[1]
    with psycopg.connect(postgres_base_url, autocommit=True) as conn:
        for name in ("us-east-1", "eu-west-1", "iam"):
            conn.execute(f'CREATE DATABASE "{prefix}_{name}"')
    url = postgres_base_url.rsplit("/", 1)[0] + f"/{prefix}_{{region}}"
    east = LocalKMS(tmp_path / "kms", database=url)
    key_id = east.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    east.replicate_key(KeyId=key_id, ReplicaRegion="eu-west-1")
    blob = east.encrypt(KeyId=key_id, Plaintext=b"everywhere")["CiphertextBlob"]
    west = LocalKMS(tmp_path / "kms", database=url, region="eu-west-1")
    assert west.decrypt(CiphertextBlob=blob)["Plaintext"] == b"everywhere"
    east.rotate_key_on_demand(KeyId=key_id)
    rotated = east.encrypt(KeyId=key_id, Plaintext=b"new")["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=rotated)["Plaintext"] == b"new"
    with psycopg.connect(url.replace("{region}", "eu-west-1")) as conn:  # really in the other database
        assert conn.execute("SELECT count(*) FROM kms_eu_west_1.keys").fetchone() == (1,)


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    """A server this test may restart (CI has the binaries: .ci/run installs them)."""
    bindir = _binaries()
    if bindir is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but no PostgreSQL binaries: {ENABLE_HINT}")
        pytest.skip(ENABLE_HINT)
    server = PgServer(bindir)
    try:
        yield server
    finally:
        server.stop()


def test_a_postgres_restart_under_load_is_survived(own_server: PgServer, tmp_path: Path) -> None:
    url = create_database(own_server.base_url)
    instances = [Instance(tmp_path / "kms", url) for _ in range(2)]
    try:
        creds = access_key(tmp_path / "kms", url)
        setup = client(instances[0].url, creds)
        key_id = setup.create_key()["KeyMetadata"]["KeyId"]
        acknowledged: list[tuple[bytes, bytes]] = []
        failures: list[tuple[int, str]] = []
        stop = threading.Event()

        def load(instance: Instance, n: int) -> None:
            kms = client(instance.url, creds)  # no SDK retries: see each failure
            i = 0
            while not stop.is_set():
                i += 1
                plaintext = f"{n}-{i}".encode()
                try:
                    acknowledged.append((kms.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"], plaintext))
                except ClientError as exc:
                    failures.append((exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"]))

        threads = [threading.Thread(target=load, args=(inst, n)) for n, inst in enumerate(instances)]
        for thread in threads:
            thread.start()
        while len(acknowledged) < 30:
            threading.Event().wait(0.01)
        own_server.restart()
        before = len(acknowledged)
        while len(acknowledged) < before + 30:
            threading.Event().wait(0.01)
        stop.set()
        for thread in threads:
            thread.join()
        # Calls in flight during the restart failed with errors SDKs retry (500/503).
        assert all(status in (500, 503) for status, _ in failures), failures
        assert {code for _, code in failures} <= {"DependencyTimeoutException", "KMSInternalException"}
        retrying = client(instances[1].url, creds, attempts=5)
        for blob, plaintext in acknowledged:
            assert retrying.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
        assert LocalKMS(tmp_path / "kms", database=url).audit.verify().ok
    finally:
        for instance in instances:
            instance.stop()
