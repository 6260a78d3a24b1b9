"""Fixtures for the embedded KMS tests: a moving clock, in-memory and on-disk clients, a key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from envelope.kms import LocalKMS, ManualClock

START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    # Never touch the user's data directory or a root key from the developer's environment.
    monkeypatch.delenv("ENVELOPE_KMS_ROOT_KEY", raising=False)
    monkeypatch.delenv("ENVELOPE_KMS_ROOT_KEY_FILE", raising=False)
    monkeypatch.setenv("ENVELOPE_DATA_DIR", str(tmp_path / "default-data"))
    yield


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def kms(clock: ManualClock) -> LocalKMS:
    return LocalKMS(path=":memory:", clock=clock)


@pytest.fixture
def disk_kms(tmp_path: Path, clock: ManualClock) -> LocalKMS:
    return LocalKMS(path=tmp_path / "kms", clock=clock)


@pytest.fixture
def key_id(kms: LocalKMS) -> str:
    return str(kms.create_key(Description="test key")["KeyMetadata"]["KeyId"])
