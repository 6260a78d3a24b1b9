"""Fixtures for the embedded KMS tests: a moving clock, in-memory and on-disk clients, a key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pgserver import create_database

from envelope.kms import LocalKMS, ManualClock

START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    # Never touch the user's data directory or a root key from the developer's environment.
    monkeypatch.delenv("ENVELOPE_KMS_ROOT_KEY", raising=False)
    monkeypatch.delenv("ENVELOPE_KMS_DATABASE", raising=False)
    monkeypatch.delenv("ENVELOPE_KMS_ROOT_KEY_FILE", raising=False)
    monkeypatch.setenv("ENVELOPE_DATA_DIR", str(tmp_path / "default-data"))
    yield


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


# Modules whose `kms` tests run on both stores: the in-memory SQLite one and PostgreSQL.
BOTH_STORES = frozenset({"test_kms_keys", "test_kms_lifecycle", "test_kms_multiregion"})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kms_store" in metafunc.fixturenames and metafunc.module.__name__.rsplit(".", 1)[-1] in BOTH_STORES:
        metafunc.parametrize("kms_store", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def kms_store(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def kms(clock: ManualClock, kms_store: str, request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> LocalKMS:
    if kms_store == "postgres":
        monkeypatch.setenv("ENVELOPE_KMS_DATABASE", create_database(request.getfixturevalue("postgres_base_url")))
        return LocalKMS(path=tmp_path / "pg", clock=clock)
    return LocalKMS(path=":memory:", clock=clock)


@pytest.fixture(params=["sqlite", "postgres"])
def disk_kms(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock,
             monkeypatch: pytest.MonkeyPatch) -> LocalKMS:
    """A client over a persistent store: SQLite files, or PostgreSQL (a database per test).

    For PostgreSQL, $ENVELOPE_KMS_DATABASE names the database, so the other clients a test opens
    on the same data directory share it too.
    """
    if request.param == "postgres":
        monkeypatch.setenv("ENVELOPE_KMS_DATABASE", create_database(request.getfixturevalue("postgres_base_url")))
    else:
        # SQLite files, even when the test's `kms` is a PostgreSQL one (its own root key: one
        # database under two root keys is refused).
        monkeypatch.delenv("ENVELOPE_KMS_DATABASE", raising=False)
    return LocalKMS(path=tmp_path / "kms", clock=clock)


@pytest.fixture
def key_id(kms: LocalKMS) -> str:
    return str(kms.create_key(Description="test key")["KeyMetadata"]["KeyId"])
