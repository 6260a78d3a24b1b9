"""Several `envelope kms serve` processes over one PostgreSQL store, driven with boto3.

A call answered by one instance is seen by the next call on any other; conflicting calls on
different instances resolve as one service would; kill -9 of an instance loses no acknowledged call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from envelope.kms import LocalKMS

from .instances import Instance, access_key, client


@pytest.fixture(scope="module")
def cluster(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Instance]]:
    data_dir = tmp_path_factory.mktemp("kms")  # shared: the root key every instance needs
    instances = [Instance(data_dir, postgres_url) for _ in range(3)]
    try:
        yield instances
    finally:
        for instance in instances:
            instance.stop()


@pytest.fixture(scope="module")
def creds(cluster: list[Instance]) -> tuple[str, str]:
    return access_key(cluster[0].data_dir, cluster[0].database)


def _code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def test_a_call_on_one_instance_is_seen_by_the_next_on_another(cluster: list[Instance],
                                                                 creds: tuple[str, str]) -> None:
    a, b, c = (client(i.url, creds) for i in cluster)
    key_id = a.create_key(Description="seen everywhere")["KeyMetadata"]["KeyId"]
    blob = b.encrypt(KeyId=key_id, Plaintext=b"one")["CiphertextBlob"]
    assert c.decrypt(CiphertextBlob=blob)["Plaintext"] == b"one"
    a.disable_key(KeyId=key_id)  # a change every instance's cache must notice at its next call
    with pytest.raises(ClientError) as exc:
        b.encrypt(KeyId=key_id, Plaintext=b"two")
    assert _code(exc.value) == "DisabledException"
    c.enable_key(KeyId=key_id)
    assert a.decrypt(CiphertextBlob=blob)["Plaintext"] == b"one"


def test_two_create_alias_with_one_name_exactly_one_succeeds(cluster: list[Instance],
                                                               creds: tuple[str, str]) -> None:
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html (AlreadyExistsException)
    clients = [client(i.url, creds) for i in cluster]
    key_id = clients[0].create_key()["KeyMetadata"]["KeyId"]
    for round_ in range(6):
        barrier = threading.Barrier(len(clients))

        def create(kms: Any, name: str = f"alias/race-{round_}", barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            try:
                kms.create_alias(AliasName=name, TargetKeyId=key_id)
                return "ok"
            except ClientError as exc:
                return _code(exc)

        with ThreadPoolExecutor(len(clients)) as pool:
            outcomes = sorted(pool.map(create, clients))
        assert outcomes == ["AlreadyExistsException"] * (len(clients) - 1) + ["ok"]


def test_schedule_key_deletion_racing_encrypt(cluster: list[Instance], creds: tuple[str, str]) -> None:
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_ScheduleKeyDeletion.html: a key pending
    # deletion cannot be used in cryptographic operations (KMSInvalidStateException).
    a, b = client(cluster[0].url, creds), client(cluster[1].url, creds)
    key_id = a.create_key()["KeyMetadata"]["KeyId"]
    acknowledged: list[bytes] = []
    scheduled = threading.Event()
    after: list[str] = []

    def encrypt_loop() -> None:
        for _ in range(200):
            was_scheduled = scheduled.is_set()
            try:
                acknowledged.append(a.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"])
                assert not was_scheduled, "an Encrypt started after the deletion was acknowledged succeeded"
            except ClientError as exc:
                after.append(_code(exc))
                return

    worker = threading.Thread(target=encrypt_loop)
    worker.start()
    while not acknowledged:
        threading.Event().wait(0.005)
    b.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    scheduled.set()
    worker.join()
    assert after == ["KMSInvalidStateException"]
    b.cancel_key_deletion(KeyId=key_id)
    b.enable_key(KeyId=key_id)
    for blob in acknowledged:
        assert a.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"


def test_concurrent_rotate_key_on_demand(cluster: list[Instance], creds: tuple[str, str]) -> None:
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_RotateKeyOnDemand.html
    clients = [client(i.url, creds) for i in cluster]
    key_id = clients[0].create_key()["KeyMetadata"]["KeyId"]
    blobs = [clients[0].encrypt(KeyId=key_id, Plaintext=b"before")["CiphertextBlob"]]

    def rotate(kms: Any) -> str:
        try:
            kms.rotate_key_on_demand(KeyId=key_id)
            blobs.append(kms.encrypt(KeyId=key_id, Plaintext=b"before")["CiphertextBlob"])
            return "ok"
        except ClientError as exc:
            return _code(exc)

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(rotate, clients * 2))
    assert outcomes.count("ok") == 6
    rotations = clients[1].list_key_rotations(KeyId=key_id)["Rotations"]
    assert len(rotations) == 6  # one new version per acknowledged rotation, none lost, none doubled
    for kms in clients:
        for blob in blobs:
            assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before"


def test_kill_9_under_load_loses_no_acknowledged_call(cluster: list[Instance], creds: tuple[str, str],
                                                      tmp_path: Path) -> None:
    acknowledged: list[tuple[str, bytes, bytes]] = []
    lock = threading.Lock()
    for round_ in range(2):
        victim = cluster[round_ % len(cluster)]
        stop = threading.Event()

        def load(instance: Instance, n: int, stop: threading.Event = stop, round_: int = round_,
                 victim: Instance = victim) -> None:
            kms = client(instance.url, creds)
            i = 0
            while not stop.is_set() and i < 400:
                i += 1
                plaintext = f"{round_}-{n}-{i}".encode()
                try:
                    if i % 25 == 1:
                        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
                    else:
                        key_id = acknowledged[-1][0] if acknowledged else kms.create_key()["KeyMetadata"]["KeyId"]
                    blob = kms.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"]
                except Exception:
                    if instance is victim:
                        return
                    raise
                with lock:
                    acknowledged.append((key_id, blob, plaintext))

        threads = [threading.Thread(target=load, args=(inst, n)) for n, inst in enumerate(cluster) for _ in range(2)]
        for thread in threads:
            thread.start()
        while len(acknowledged) < 40 * (round_ + 1):
            threading.Event().wait(0.01)
        victim.kill()
        threading.Event().wait(0.1)
        stop.set()
        for thread in threads:
            thread.join()
        victim.start()
    for instance in cluster:
        kms = client(instance.url, creds)
        for key_id, blob, plaintext in acknowledged[:: max(1, len(acknowledged) // 60)]:
            assert kms.decrypt(CiphertextBlob=blob, KeyId=key_id)["Plaintext"] == plaintext
    local = LocalKMS(cluster[0].data_dir, database=cluster[0].database)
    for key_id, blob, plaintext in acknowledged:
        assert local.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
    assert local.audit.verify().ok
