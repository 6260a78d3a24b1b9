"""Compression benchmark: envelope's zstd option beside plain zstd on text-like data (ratio and MB/s).

Run: ``.venv/bin/python bench/bench_compression.py [--size 64M] [--levels 1,3,9] [--rounds 3] [--json out.json]``.
The input is deterministic text-like data (JSON log lines with varying fields, or ``--kind words``).
Rows run interleaved in rounds (A, B, C, ..., then again; one untimed warm-up pass each first) and
the table shows the median round. MB/s is 10^6 plaintext bytes per CPU-second of this process (all
threads; other load distorts it far less than wall time), with wall-clock MB/s beside it.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from impls import COMMIT, envelope_keyring, parse_size, same_content, tmpfs_dir

# -- input -----------------------------------------------------------------------------------------

_SERVICES = ["checkout", "search", "auth", "inventory", "billing", "gateway", "recommendations", "mailer"]
_PATHS = ["/api/v1/orders/{}", "/api/v1/users/{}/cart", "/api/v2/search?q=item{}", "/health",
          "/api/v1/items/{}/reviews", "/static/js/app.{}.js", "/api/v1/payments/{}/capture"]
_MESSAGES = ["request completed", "cache miss; fetched from origin", "slow upstream response",
             "retrying after timeout", "user session refreshed", "payment authorized", "rate limit near"]
_LEVELS = ["INFO"] * 12 + ["DEBUG"] * 5 + ["WARN"] * 2 + ["ERROR"]
_METHODS = ["GET"] * 6 + ["POST"] * 3 + ["PUT", "DELETE"]
_STATUS = [200] * 20 + [201, 204, 301, 304, 400, 401, 403, 404, 404, 429, 500, 503]


def json_logs(size: int, seed: int = 7) -> bytes:
    """JSON log lines as a service writes them: a rising clock, repeated keys, varying values,
    random request ids (the incompressible part)."""
    rng = random.Random(seed)
    lines: list[str] = []
    total = 0
    millis = 1_763_800_000_000
    while total < size:
        millis += rng.randrange(1, 40)
        seconds, ms = divmod(millis, 1000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        line = (f'{{"ts":"{stamp}.{ms:03d}Z","level":"{rng.choice(_LEVELS)}",'
                f'"service":"{rng.choice(_SERVICES)}","host":"web-{rng.randrange(1, 33):02d}",'
                f'"req_id":"{rng.getrandbits(64):016x}","user":"u-{rng.randrange(100000)}",'
                f'"method":"{rng.choice(_METHODS)}","path":"{rng.choice(_PATHS).format(rng.randrange(100000))}",'
                f'"status":{rng.choice(_STATUS)},"latency_ms":{rng.lognormvariate(3, 1):.1f},'
                f'"bytes":{rng.randrange(100, 65536)},"msg":"{rng.choice(_MESSAGES)}"}}\n')
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def words(size: int, seed: int = 7) -> bytes:
    """English-like text: words from a made-up 5,000-word vocabulary at Zipf-like frequencies,
    in sentences and paragraphs."""
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0,
               1.9, 1.5, 1.0, 0.8, 0.2, 0.2, 0.1, 0.1]
    vocabulary = ["".join(rng.choices(letters, weights, k=rng.randrange(1, 11))) for _ in range(5000)]
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(vocabulary))))
    out: list[str] = []
    total = 0
    while total < size:
        sentence = rng.choices(vocabulary, cum_weights=cumulative, k=rng.randrange(4, 20))
        text = " ".join(sentence).capitalize() + (".\n\n" if rng.random() < 0.15 else ". ")
        out.append(text)
        total += len(text)
    return "".join(out).encode()[:size]


KINDS: dict[str, Callable[[int], bytes]] = {"json": json_logs, "words": words}


# -- rows ------------------------------------------------------------------------------------------

@dataclass
class Row:
    """One way to get from plaintext to stored bytes and back."""

    name: str
    label: str
    encrypt: Callable[[], int]  # returns the stored size
    decrypt: Callable[[], None]
    check: Callable[[], bool]  # after a warm-up pass: did the round trip give the input back?
    stored: int = 0
    cpu: dict[str, list[float]] = field(default_factory=lambda: {"encrypt": [], "decrypt": []})
    wall: dict[str, list[float]] = field(default_factory=lambda: {"encrypt": [], "decrypt": []})
    error: str | None = None


class Workload:
    def __init__(self, data: bytes, tmpdir: Path) -> None:
        self.data = data
        self.tmpdir = tmpdir
        self.source = tmpdir / "input"
        self.source.write_bytes(data)
        self.keyring = envelope_keyring()
        self.slots: dict[str, Any] = {}  # each row's last output, for its decrypt

    def file(self, name: str) -> Path:
        return self.tmpdir / name

    def same_file(self, path: Path) -> bool:
        return same_content(str(self.source), str(path))


def zstd_rows(w: Workload, level: int) -> list[Row]:
    import zstandard

    compressor = zstandard.ZstdCompressor(level=level)
    decompressor = zstandard.ZstdDecompressor()
    key = f"zstd-{level}"
    stored, restored = w.file(f"{key}.zst"), w.file(f"{key}.out")

    def enc() -> int:
        w.slots[key] = compressor.compress(w.data)
        return len(w.slots[key])

    def dec() -> None:
        w.slots[key + "-out"] = decompressor.decompress(w.slots[key])

    def enc_stream() -> int:
        sink = io.BytesIO()
        compressor.copy_stream(io.BytesIO(w.data), sink)
        w.slots[key + "-stream"] = sink.getvalue()
        return len(w.slots[key + "-stream"])

    def dec_stream() -> None:
        # The twin of envelope's stream row: zstd's streaming decoder between BytesIOs, with
        # its default piece sizes, and the same getvalue() at the end.
        sink = io.BytesIO()
        decompressor.copy_stream(io.BytesIO(w.slots[key + "-stream"]), sink)
        w.slots[key + "-stream-out"] = sink.getvalue()

    def enc_file() -> int:
        with open(w.source, "rb") as fin, open(stored, "wb") as fout:
            return int(compressor.copy_stream(fin, fout)[1])

    def dec_file() -> None:
        with open(stored, "rb") as fin, open(restored, "wb") as fout:
            decompressor.copy_stream(fin, fout)

    return [
        Row(key, f"plain zstd {level}, one-shot (bytes)", enc, dec, lambda: w.slots.pop(key + "-out") == w.data),
        Row(f"{key}-stream", f"plain zstd {level}, stream (BytesIO to BytesIO, copy_stream)", enc_stream,
            dec_stream, lambda: w.slots.pop(key + "-stream-out") == w.data),
        Row(f"{key}-file", f"plain zstd {level}, file to file (copy_stream)", enc_file, dec_file,
            lambda: w.same_file(restored)),
    ]


def envelope_rows(w: Workload, level: int | None) -> list[Row]:
    import envelope

    options: dict[str, Any] = {"keyring": w.keyring, "algorithm": COMMIT}
    if level is not None:
        options.update(compression="zstd", compression_level=level)
    key = f"envelope-zstd-{level}" if level is not None else "envelope"
    what = f"envelope, zstd {level}" if level is not None else "envelope, no compression"
    stored, restored = w.file(f"{key}.env"), w.file(f"{key}.out")

    def enc() -> int:
        w.slots[key] = envelope.encrypt(w.data, **options)
        return len(w.slots[key])

    def dec() -> None:
        w.slots[key + "-out"] = envelope.decrypt(w.slots[key], keyring=w.keyring)[0]

    def enc_stream() -> int:
        sink = io.BytesIO()
        envelope.encrypt_stream(io.BytesIO(w.data), sink, **options)
        w.slots[key + "-stream"] = sink.getvalue()
        return len(w.slots[key + "-stream"])

    def dec_stream() -> None:
        sink = io.BytesIO()
        envelope.decrypt_stream(io.BytesIO(w.slots[key + "-stream"]), sink, keyring=w.keyring)
        w.slots[key + "-stream-out"] = sink.getvalue()

    def dec_streamed_whole() -> None:
        # A message written by the streaming encryptor (its zstd frame declares no size) read
        # back by the one-shot decrypt.
        w.slots[key + "-mixed-out"] = envelope.decrypt(w.slots[key + "-stream"], keyring=w.keyring)[0]

    def enc_file() -> int:
        with open(w.source, "rb") as fin, open(stored, "wb") as fout:
            envelope.encrypt_stream(fin, fout, **options)
        return stored.stat().st_size

    def dec_file() -> None:
        with open(stored, "rb") as fin, open(restored, "wb") as fout:
            envelope.decrypt_stream(fin, fout, keyring=w.keyring)

    rows = [
        Row(key, f"{what}, one-shot (encrypt/decrypt)", enc, dec, lambda: w.slots.pop(key + "-out") == w.data),
        Row(f"{key}-stream", f"{what}, stream (BytesIO to BytesIO)", enc_stream, dec_stream,
            lambda: w.slots.pop(key + "-stream-out") == w.data),
        Row(f"{key}-file", f"{what}, file to file", enc_file, dec_file, lambda: w.same_file(restored)),
    ]
    if level is not None:
        rows.insert(2, Row(f"{key}-mixed", f"{what}, stream encrypt, one-shot decrypt", enc_stream,
                           dec_streamed_whole, lambda: w.slots.pop(key + "-mixed-out") == w.data))
        import zstandard

        compressor = zstandard.ZstdCompressor(level=level)
        decompressor = zstandard.ZstdDecompressor()
        two = f"zstd-then-envelope-{level}"

        def enc_two() -> int:
            w.slots[two] = envelope.encrypt(compressor.compress(w.data), keyring=w.keyring, algorithm=COMMIT)
            return len(w.slots[two])

        def dec_two() -> None:
            w.slots[two + "-out"] = decompressor.decompress(envelope.decrypt(w.slots[two], keyring=w.keyring)[0])

        # What "zstd + encrypt" predicts: the two steps one after the other, in memory.
        rows.insert(0, Row(two, f"zstd {level} then envelope (two steps, one-shot)", enc_two, dec_two,
                           lambda: w.slots.pop(two + "-out") == w.data))
    return rows


# -- measurement -----------------------------------------------------------------------------------

def measure(row: Row, size: int, warm: bool) -> None:
    if row.error is not None:
        return
    try:
        if warm:
            row.stored = row.encrypt()
            row.decrypt()
            if not row.check():
                raise RuntimeError("round trip gave different bytes")
            return
        for name, op in (("encrypt", row.encrypt), ("decrypt", row.decrypt)):
            cpu, wall = time.process_time(), time.perf_counter()
            op()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            row.cpu[name].append(size / max(cpu, 1e-9) / 1e6)
            row.wall[name].append(size / max(wall, 1e-9) / 1e6)
    except Exception as exc:  # noqa: BLE001  # a row that fails posts no number
        row.error = f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=parse_size, default="64M", help="input bytes (default 64M)")
    parser.add_argument("--kind", choices=sorted(KINDS), default="json", help="the text-like input (default json)")
    parser.add_argument("--levels", default="1,3,9", help="zstd levels, comma-separated (default 1,3,9; 19 is slow)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="substring of row names to run")
    parser.add_argument("--stat", choices=("median", "best"), default="median")
    parser.add_argument("--tmpdir", help="where the file rows write (default: /dev/shm if it fits)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    size = args.size
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    pick = statistics.median if args.stat == "median" else max

    started = time.perf_counter()
    data = KINDS[args.kind](size)
    made = time.perf_counter() - started
    # The input and, per level and file row, a stored file and a restored one.
    need = (3 + 4 * len(levels)) * size
    with tempfile.TemporaryDirectory(prefix="bench-compression-", dir=args.tmpdir or tmpfs_dir(need)) as tmp:
        w = Workload(data, Path(tmp))
        table = envelope_rows(w, None)
        for level in levels:
            table += zstd_rows(w, level) + envelope_rows(w, level)
        table = [r for r in table if args.only in r.name]
        load_before = os.getloadavg()
        for row in table:
            measure(row, size, warm=True)
        for _ in range(args.rounds):
            for row in table:
                # Each row's warm-up just freed the pages it writes into (see bench/README.md).
                measure(row, size, warm=False)
        load_after = os.getloadavg()

    print(f"{args.kind} input, {size:,} bytes (made in {made:.1f} s); {args.stat} of {args.rounds} rounds; "
          f"envelope: raw AES keyring, {COMMIT}, default frame")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}. ratio = input / stored bytes; "
          "MB/s of plaintext per CPU-second (all threads), wall MB/s beside")
    print(f"{'row':<58} {'ratio':>6} {'enc MB/cpu-s':>12} {'dec MB/cpu-s':>12} {'enc MB/s':>9} {'dec MB/s':>9}")
    result: dict[str, Any] = {"kind": args.kind, "size": size, "levels": levels, "rows": {}, "ratios": {},
                              "load_average": [load_before, load_after]}
    for row in table:
        entry: dict[str, Any] = {"label": row.label, "error": row.error, "stored": row.stored,
                                 "ratio": size / row.stored if row.stored else None}
        for name in ("encrypt", "decrypt"):
            entry[f"{name}_mb_per_cpu_s"] = pick(row.cpu[name]) if row.cpu[name] else None
            entry[f"{name}_mb_per_s"] = pick(row.wall[name]) if row.wall[name] else None
        result["rows"][row.name] = entry
        if row.error is not None or entry["encrypt_mb_per_cpu_s"] is None:
            print(f"{row.label:<58} {'-':>6} {'-':>12} {'-':>12} {'-':>9} {'-':>9}  ({row.error})")
            continue
        print(f"{row.label:<58} {entry['ratio']:6.2f} {entry['encrypt_mb_per_cpu_s']:12,.0f} "
              f"{entry['decrypt_mb_per_cpu_s']:12,.0f} {entry['encrypt_mb_per_s']:9,.0f} "
              f"{entry['decrypt_mb_per_s']:9,.0f}")

    def ratio(label: str, a: str, b: str) -> None:
        ra, rb = result["rows"].get(a), result["rows"].get(b)
        if not ra or not rb or ra["error"] or rb["error"] or ra["encrypt_mb_per_cpu_s"] is None \
                or rb["encrypt_mb_per_cpu_s"] is None:
            return
        enc = ra["encrypt_mb_per_cpu_s"] / rb["encrypt_mb_per_cpu_s"]
        dec = ra["decrypt_mb_per_cpu_s"] / rb["decrypt_mb_per_cpu_s"]
        stored = ra["stored"] / rb["stored"]
        print(f"{label:<62} encrypt {enc:5.2f}x  decrypt {dec:5.2f}x  stored size {stored:6.4f}x")
        result["ratios"][label] = {"encrypt": enc, "decrypt": dec, "stored": stored}

    print("\nenvelope / plain zstd at the same level (MB per CPU-second; stored size: message / zstd output)")
    for level in levels:
        ratio(f"zstd {level}: envelope one-shot / plain zstd one-shot", f"envelope-zstd-{level}", f"zstd-{level}")
        ratio(f"zstd {level}: envelope one-shot / zstd then envelope", f"envelope-zstd-{level}",
              f"zstd-then-envelope-{level}")
        ratio(f"zstd {level}: envelope stream / plain zstd one-shot", f"envelope-zstd-{level}-stream",
              f"zstd-{level}")
        ratio(f"zstd {level}: envelope stream / plain zstd stream (copy_stream)", f"envelope-zstd-{level}-stream",
              f"zstd-{level}-stream")
        ratio(f"zstd {level}: envelope stream enc, one-shot dec / plain one-shot", f"envelope-zstd-{level}-mixed",
              f"zstd-{level}")
        ratio(f"zstd {level}: envelope file / plain zstd file (copy_stream)", f"envelope-zstd-{level}-file",
              f"zstd-{level}-file")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 1 if any(r.error for r in table) else 0


if __name__ == "__main__":
    sys.exit(main())
