"""Benchmark of the embedded key-management service: GenerateDataKey and Decrypt ops/s, side by side.

Rows, all in one run (compare ratios; absolute numbers drift ~30% on shared machines):

- ``localkms-disk``: LocalKMS on a data directory (SQLite WAL, synchronous=NORMAL), audit log on;
  every call is one durable transaction that includes its audit event. The configuration users run.
- ``localkms-memory``: the same over ``path=":memory:"`` (no file I/O).
- ``localkms-disk-no-audit``: attribution only, NOT a supported configuration: the audit event is
  neither encoded nor appended, to show how much of a call is the audit log.
- ``moto``: moto's in-process KMS mock behind a boto3 client (``mock_aws``), the common test peer.

Each rate is given twice: by wall time and by this process's CPU time (``time.process_time``).
The machines are shared, so wall rates swing with the neighbours' load; CPU rates (and ratios
between rows of one run) are the figures to compare. Every row runs in this one process.

Plus the latency of opening an existing store and making the first call, in a fresh interpreter.

Run: ``.venv/bin/python bench/bench_kms.py [--seconds 2] [--repeat 3] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CONTEXT = {"purpose": "bench", "tenant": "t-0001"}
ROOT = Path(__file__).resolve().parents[1]


def _rate(fn: Callable[[], object], seconds: float) -> tuple[float, float]:
    """Calls per second of ``fn`` over about ``seconds`` (after a short warm-up): by wall and CPU time."""
    for _ in range(200):
        fn()
    count, start, cpu_start = 0, time.perf_counter(), time.process_time()
    deadline = start + seconds
    while True:
        for _ in range(100):
            fn()
        count += 100
        now = time.perf_counter()
        if now >= deadline:
            cpu = time.process_time() - cpu_start
            return count / (now - start), count / cpu if cpu > 0 else float("inf")


@contextmanager
def _localkms(path: str, audit: bool) -> Iterator[Any]:
    from envelope.kms import LocalKMS
    from envelope.kms.engine import runtime
    from envelope.kms.store import audit as audit_module

    # Patch the names the runtime calls (attribution only); restored on exit.
    log_class: Any = audit_module.AuditLog
    names = vars(runtime)
    saved_append, saved_encode = log_class.__dict__["append_encoded"], names["encode_event"]
    if not audit:
        log_class.append_encoded = staticmethod(lambda conn, event, head=None, key=None: (0, "", ""))
        names["encode_event"] = lambda **kwargs: None
    try:
        yield LocalKMS(path=path)
    finally:
        log_class.append_encoded = saved_append
        names["encode_event"] = saved_encode


@contextmanager
def _moto() -> Iterator[Any]:
    import boto3  # type: ignore[import-untyped]
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("kms", region_name="us-east-1", aws_access_key_id="bench",
                           aws_secret_access_key="bench")


def _measure(client: Any, seconds: float) -> dict[str, tuple[float, float]]:
    key_id = client.create_key(Description="bench")["KeyMetadata"]["KeyId"]

    def gdk() -> dict[str, Any]:
        out: dict[str, Any] = client.generate_data_key(KeyId=key_id, NumberOfBytes=32, EncryptionContext=CONTEXT)
        return out

    blob = gdk()["CiphertextBlob"]

    def decrypt() -> dict[str, Any]:
        out: dict[str, Any] = client.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT)
        return out

    assert client.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT)["Plaintext"]
    return {"GenerateDataKey": _rate(gdk, seconds), "Decrypt": _rate(decrypt, seconds)}


def _rows(tmp: Path) -> dict[str, Callable[[], Any]]:
    return {
        "localkms-disk": lambda: _localkms(str(tmp / "disk"), audit=True),
        "localkms-memory": lambda: _localkms(":memory:", audit=True),
        "localkms-disk-no-audit": lambda: _localkms(str(tmp / "disk-no-audit"), audit=False),
        "moto": _moto,
    }


_OPEN = textwrap.dedent("""
    import sys, time
    t0 = time.perf_counter()
    from envelope.kms import LocalKMS
    t1 = time.perf_counter()
    kms = LocalKMS(path=sys.argv[1])
    out = kms.generate_data_key(KeyId=sys.argv[2], KeySpec="AES_256")
    t2 = time.perf_counter()
    kms.decrypt(CiphertextBlob=out["CiphertextBlob"])
    t3 = time.perf_counter()
    print((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
""")


def _open_latency(tmp: Path, repeat: int) -> dict[str, float]:
    """Fresh interpreter: import time, open-existing-store + first GenerateDataKey, then one Decrypt."""
    from envelope.kms import LocalKMS

    path = tmp / "open"
    key_id = LocalKMS(path=str(path)).create_key()["KeyMetadata"]["KeyId"]
    samples = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", _OPEN, str(path), key_id], capture_output=True, text=True,
                             check=True, cwd=ROOT)
        samples.append([float(x) for x in out.stdout.split()])
    return {"import_ms": statistics.median(s[0] for s in samples),
            "open_and_first_call_ms": statistics.median(s[1] for s in samples),
            "second_call_ms": statistics.median(s[2] for s in samples)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per row (the median is reported)")
    parser.add_argument("--only", default="", help="substring filter on row names")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name, make in _rows(tmp).items():
            if args.only not in name:
                continue
            rounds = []
            for _ in range(args.repeat):
                with make() as client:
                    rounds.append(_measure(client, args.seconds))
            results[name] = {f"{op}{suffix}": statistics.median(r[op][index] for r in rounds)
                             for op in rounds[0] for index, suffix in ((0, ""), (1, "_cpu"))}
        results["open-latency"] = _open_latency(tmp, max(args.repeat, 3))
    print(f"{'ops/s, median of rounds':<26}{'GenerateDataKey':>16}{'Decrypt':>10}{'GDK (CPU)':>12}"
          f"{'Decrypt (CPU)':>15}   ratio to moto (CPU)")
    base = results.get("moto")
    for name, row in results.items():
        if name == "open-latency":
            continue
        line = (f"{name:<26}{row['GenerateDataKey']:>16,.0f}{row['Decrypt']:>10,.0f}"
                f"{row['GenerateDataKey_cpu']:>12,.0f}{row['Decrypt_cpu']:>15,.0f}")
        if base and name != "moto":
            line += f"   {row['GenerateDataKey_cpu'] / base['GenerateDataKey_cpu']:.1f}x / " \
                    f"{row['Decrypt_cpu'] / base['Decrypt_cpu']:.1f}x"
        print(line)
    lat = results["open-latency"]
    print(f"fresh process: import {lat['import_ms']:.0f} ms, open store + first GenerateDataKey "
          f"{lat['open_and_first_call_ms']:.1f} ms, next Decrypt {lat['second_call_ms']:.2f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
