"""The sync driver's threaded pipeline runs only where it pays: frames of 16 KiB to 4 MiB from a
file, and a second CPU to run on (affinity, and a cgroup v2 CPU quota). Either way the message
round-trips."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import envelope
from envelope.streaming import pipeline

KEYRING = envelope.RawAESKeyring("test-ns", "pipeline-choice", bytes(range(32)))
FRAME = 64 * 1024
PLAINTEXT = bytes(range(256)) * (5 * FRAME // 256 + 3)


@pytest.fixture(autouse=True)
def _fresh_quota_cache() -> Iterator[None]:
    pipeline._cgroup_cpu_quota.cache_clear()
    yield
    pipeline._cgroup_cpu_quota.cache_clear()


@pytest.mark.parametrize(("cpu_max", "expected"), [
    ("max 100000\n", None),
    ("50000 100000\n", 0.5),
    ("150000 100000\n", 1.5),
    ("400000 100000\n", 4.0),
    ("garbage\n", None),
    ("100000 0\n", None),
    ("", None),
])
def test_cgroup_quota_is_read_from_cpu_max(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           cpu_max: str, expected: float | None) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max, encoding="ascii")
    monkeypatch.setattr(pipeline, "_CPU_MAX", str(path))
    assert pipeline._cgroup_cpu_quota() == expected


def test_no_cgroup_file_means_no_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "_CPU_MAX", str(tmp_path / "absent"))
    assert pipeline._cgroup_cpu_quota() is None


@pytest.mark.parametrize(("affinity", "quota", "expected"), [
    ({0, 1}, None, 2),
    ({0}, None, 1),
    ({0, 1, 2, 3}, 1.5, 1),   # a quota of 1.5 CPUs gives no whole second CPU
    ({0, 1, 2, 3}, 2.0, 2),
    ({0, 1}, 8.0, 2),         # a quota above the affinity does not add CPUs
    ({0, 1}, 0.25, 1),        # never below one
])
def test_usable_cpus(monkeypatch: pytest.MonkeyPatch, affinity: set[int], quota: float | None, expected: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: affinity, raising=False)
    monkeypatch.setattr(pipeline, "_cgroup_cpu_quota", lambda: quota)
    assert pipeline.usable_cpus() == expected


def _round_trip() -> bytes:
    sealed = io.BytesIO()
    envelope.encrypt_stream(io.BytesIO(PLAINTEXT), sealed, keyring=KEYRING, frame_length=FRAME,
                            algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY")
    out = io.BytesIO()
    envelope.decrypt_stream(io.BytesIO(sealed.getvalue()), out, keyring=KEYRING)
    return out.getvalue()


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    for name in ("encrypt_body", "decrypt_body"):
        real = getattr(pipeline, name)

        def spy(*args: Any, _real: Any = real, _name: str = name) -> None:
            calls.append(_name)
            _real(*args)

        monkeypatch.setattr(pipeline, name, spy)
    return calls


def test_one_cpu_takes_the_one_thread_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy(monkeypatch)
    monkeypatch.setattr(pipeline, "usable_cpus", lambda: 1)
    assert _round_trip() == PLAINTEXT
    assert calls == []


def test_two_cpus_take_the_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy(monkeypatch)
    monkeypatch.setattr(pipeline, "usable_cpus", lambda: 2)
    assert _round_trip() == PLAINTEXT
    assert calls == ["encrypt_body", "decrypt_body"]
