"""pytest-benchmark versions of the key measurements of bench_stream.py, on small inputs.

Run: ``.venv/bin/python -m pytest bench/ --benchmark-only`` (bench/ is outside the default
testpaths). Every benchmark also checks its round trip, so a broken row fails instead of timing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import impls
import pytest
from impls import MESSAGE_SIZE, MIB

STREAM_SIZE = 16 * MIB
ROUNDS = 5

STREAM_ROWS = ["limit-copy", "envelope-commit", "envelope-commit-64k", "envelope-signed", "esdk-default",
               "esdk-commit-64k", "tink", "age-file"]
MEMORY_ROWS = ["limit-aes-into-1m", "limit-sha384"]
MESSAGE_ROWS = ["msg-limit-aes", "msg-envelope-commit", "msg-envelope-signed", "msg-esdk-mkp-commit", "msg-age"]

TABLE = impls.registry()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "input.bin"
    impls.random_file(str(path), STREAM_SIZE)
    return path


def _fresh(path: Path) -> Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]:
    """A pedantic setup that removes the output first, so every round writes a new file."""

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        path.unlink(missing_ok=True)
        return (), {}

    return setup


def _record(benchmark: Any, size: int) -> None:
    stats = benchmark.stats.stats if benchmark.stats else None
    if stats is not None:
        benchmark.extra_info["MB/s (median)"] = round(size / stats.median / 1e6, 1)


@pytest.mark.parametrize("op", ["encrypt", "decrypt"])
@pytest.mark.parametrize("name", STREAM_ROWS, ids=STREAM_ROWS)
def test_stream(benchmark: Any, source: Path, tmp_path: Path, name: str, op: str) -> None:
    encrypt, decrypt = TABLE[name].build()
    ct, out = tmp_path / "ct.bin", tmp_path / "out.bin"
    benchmark.group = f"stream {STREAM_SIZE // MIB} MiB {op}"
    if op == "encrypt":
        benchmark.pedantic(lambda: encrypt(str(source), str(ct)), setup=_fresh(ct), rounds=ROUNDS, warmup_rounds=1)
        decrypt(str(ct), str(out))
    else:
        encrypt(str(source), str(ct))
        benchmark.pedantic(lambda: decrypt(str(ct), str(out)), setup=_fresh(out), rounds=ROUNDS, warmup_rounds=1)
    _record(benchmark, STREAM_SIZE)
    assert impls.same_content(str(source), str(out))


@pytest.mark.parametrize("op", ["encrypt", "decrypt"])
@pytest.mark.parametrize("name", MEMORY_ROWS, ids=MEMORY_ROWS)
def test_memory_limit(benchmark: Any, source: Path, name: str, op: str) -> None:
    data = memoryview(source.read_bytes())
    encrypt, decrypt = TABLE[name].build(data)
    benchmark.group = f"stream {STREAM_SIZE // MIB} MiB {op}"
    result = benchmark.pedantic(encrypt if op == "encrypt" else decrypt, rounds=ROUNDS, warmup_rounds=1)
    _record(benchmark, STREAM_SIZE)
    # The AES rows return the bytes they covered, the SHA-384 row its digest.
    assert result == (hashlib.sha384(data).digest() if name == "limit-sha384" else len(data))


@pytest.mark.parametrize("op", ["encrypt", "decrypt"])
@pytest.mark.parametrize("name", MESSAGE_ROWS, ids=MESSAGE_ROWS)
def test_message(benchmark: Any, name: str, op: str) -> None:
    encrypt, decrypt = TABLE[name].build()
    data = os.urandom(MESSAGE_SIZE)
    ct = encrypt(data)
    benchmark.group = f"{MESSAGE_SIZE} B message {op}"
    result = benchmark(encrypt, data) if op == "encrypt" else benchmark(decrypt, ct)
    assert decrypt(result) == data if op == "encrypt" else result == data


def test_script_smoke(tmp_path: Path) -> None:
    """bench_stream.py end to end on 1 MiB (not a benchmark: skipped by --benchmark-only)."""
    script = Path(__file__).with_name("bench_stream.py")
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(script), "--size", "1M", "--repeat", "1", "--no-messages",
                           "--only", "^(limit-copy|limit-aes-into-1m|envelope-commit|sweep-65536)$",
                           "--tmpdir", str(tmp_path), "--json", str(out)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"limit-copy", "limit-aes-into-1m", "envelope-commit", "sweep-65536"}
    assert report["results"]["envelope-commit"]["bytes"] == MIB
    whats = {r["what"] for r in report["ratios"]}
    assert "envelope commit default / min(AES-GCM limit, file copy)" in whats
    assert "smallest frame within 5%" in proc.stdout
