"""envelope.aio against the sync driver on the same data, and the measurements behind the offload
threshold in envelope/aio/offload.py.

Run: ``.venv/bin/python bench/bench_async.py --size 256M --repeat 5``. Rows: file to file,
unsigned committing suite, default frame; the median of ``--repeat`` interleaved rounds after a
warm-up round, page cache warm. The stream rows take the generic path (the sink is not an
AsyncFile): one with an AsyncFile source (read with ``readinto``), one with an async iterator of
``bytes``. ``max loop stall`` is the longest gap seen by a 1 ms ticker task on the same event
loop during the runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import envelope
from envelope import aio

MIB = 1024 * 1024
SUITE = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY"
KEYRING = envelope.RawAESKeyring("bench", "aio", bytes(range(32)))
BACKENDS = ("asyncio", "trio")


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)i?[bB]?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 256M, 1G)")
    return int(match.group(1)) * {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}[match.group(2).lower()]


# -- the offload threshold ------------------------------------------------------------------------


def _aes_inline(sizes: list[int]) -> dict[int, float]:
    """Seconds per AES-GCM seal of each size, walking a 64 MiB buffer (cache-cold input)."""
    aes = AESGCM(os.urandom(32))
    data = memoryview(bytearray(os.urandom(64 * MIB)))
    out: dict[int, float] = {}
    for size in sizes:
        sink = bytearray(size + 16)
        count = len(data) // size
        start = time.perf_counter()
        for i in range(count):
            aes.encrypt_into(bytes(12), data[i * size:(i + 1) * size], b"", sink)
        out[size] = (time.perf_counter() - start) / count
    return out


async def _hops(sizes: list[int], result: dict[str | int, float]) -> None:
    aes = AESGCM(os.urandom(32))
    for _ in range(100):
        await anyio.to_thread.run_sync(int)
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        await anyio.to_thread.run_sync(int)
    result["hop"] = (time.perf_counter() - start) / n
    data = memoryview(bytearray(os.urandom(64 * MIB)))
    for size in sizes:
        sink = bytearray(size + 16)
        count = len(data) // size
        start = time.perf_counter()
        for i in range(count):
            await anyio.to_thread.run_sync(aes.encrypt_into, bytes(12), data[i * size:(i + 1) * size], b"", sink)
        result[size] = (time.perf_counter() - start) / count


def threshold_table() -> None:
    sizes = [64 * 1024, 256 * 1024, 512 * 1024, MIB, 4 * MIB]
    inline = _aes_inline(sizes)
    print("\n## Thread hop vs AES-GCM (per call, microseconds)\n")
    rows: dict[str, dict[str | int, float]] = {}
    for backend in BACKENDS:
        rows[backend] = {}
        anyio.run(_hops, sizes, rows[backend], backend=backend)
    print("| work | inline | " + " | ".join(f"offloaded ({b})" for b in BACKENDS) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in BACKENDS) + " |")
    print("| empty to_thread.run_sync | - | " + " | ".join(f"{rows[b]['hop'] * 1e6:.0f}" for b in BACKENDS) + " |")
    for size in sizes:
        print(f"| AES-GCM {size // 1024} KiB | {inline[size] * 1e6:.0f} | "
              + " | ".join(f"{rows[b][size] * 1e6:.0f}" for b in BACKENDS) + " |")


# -- throughput ---------------------------------------------------------------------------------


class _AsyncWriter:
    """An async sink that is not an AsyncFile, so encrypt_stream takes the generic stream path
    (reader, crypto and writer tasks; batches of frames; crypto offloaded by the threshold)."""

    def __init__(self, file: Any) -> None:
        self._file = file

    async def write(self, data: bytes) -> None:
        await self._file.write(data)


async def _with_ticker(work: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """Run ``work`` with a 1 ms ticker on the same loop; return (seconds, longest tick gap)."""
    stall = 0.0
    done = False

    async def tick() -> None:
        nonlocal stall
        last = time.perf_counter()
        while not done:
            await anyio.sleep(0.001)
            now = time.perf_counter()
            stall = max(stall, now - last)
            last = now

    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        start = time.perf_counter()
        await work()
        elapsed = time.perf_counter() - start
        done = True
    return elapsed, stall


def _sync_encrypt(src: str, dst: str) -> None:
    with open(src, "rb") as s, open(dst, "wb") as d:
        envelope.encrypt_stream(s, d, keyring=KEYRING, algorithm=SUITE)


def _sync_decrypt(src: str, dst: str) -> None:
    with open(src, "rb") as s, open(dst, "wb") as d:
        envelope.decrypt_stream(s, d, keyring=KEYRING)


async def _stream(direction: str, src: str, dst: str) -> None:
    async with await anyio.open_file(src, "rb") as s, await anyio.open_file(dst, "wb") as d:
        if direction == "encrypt":
            await aio.encrypt_stream(s, _AsyncWriter(d), keyring=KEYRING, algorithm=SUITE)
        else:
            await aio.decrypt_stream(s, _AsyncWriter(d), keyring=KEYRING)


async def _chunks_of(file: Any) -> Any:
    """The file as an async iterator of 1 MiB ``bytes``: a source with no ``read``/``readinto``."""
    while chunk := await file.read(MIB):
        yield chunk


async def _stream_iterator(direction: str, src: str, dst: str) -> None:
    async with await anyio.open_file(src, "rb") as s, await anyio.open_file(dst, "wb") as d:
        if direction == "encrypt":
            await aio.encrypt_stream(_chunks_of(s), _AsyncWriter(d), keyring=KEYRING, algorithm=SUITE)
        else:
            await aio.decrypt_stream(_chunks_of(s), _AsyncWriter(d), keyring=KEYRING)


async def _file(direction: str, src: str, dst: str) -> None:
    if direction == "encrypt":
        await aio.encrypt_file(src, dst, keyring=KEYRING, algorithm=SUITE)
    else:
        await aio.decrypt_file(src, dst, keyring=KEYRING)


def _run_sync(fn: Callable[[str, str], None], src: str, dst: str) -> tuple[float, float]:
    start = time.perf_counter()
    fn(src, dst)
    return time.perf_counter() - start, 0.0


def _run_async(fn: Callable[[str, str, str], Awaitable[None]], direction: str, src: str, dst: str,
               backend: str) -> tuple[float, float]:
    async def main() -> tuple[float, float]:
        return await _with_ticker(lambda: fn(direction, src, dst))

    return anyio.run(main, backend=backend)


def _run_async_row(fn: Callable[[str, str, str], Awaitable[None]], backend: str, source: dict[str, str],
                   dst: str, direction: str) -> tuple[float, float]:
    return _run_async(fn, direction, source[direction], dst, backend)


def _idle_stall(backend: str) -> float:
    """The longest tick gap of an idle loop for one second: the machine's own noise."""
    return anyio.run(_with_ticker, lambda: anyio.sleep(1.0), backend=backend)[1]


def throughput_table(size: int, repeat: int, directory: str) -> None:
    plain, sealed, out = (os.path.join(directory, name) for name in ("plain", "sealed", "out"))
    with open(plain, "wb") as f:
        f.writelines(os.urandom(MIB) for _ in range(size // MIB))
    _sync_encrypt(plain, sealed)
    source = {"encrypt": plain, "decrypt": sealed}
    Run = Callable[[str], tuple[float, float]]
    rows: list[tuple[str, Run]] = [
        ("sync envelope.encrypt_stream / decrypt_stream",
         lambda d: _run_sync(_sync_encrypt if d == "encrypt" else _sync_decrypt, source[d], out)),
    ]
    for backend in BACKENDS:
        rows.append((f"aio.encrypt_file / decrypt_file ({backend})",
                     partial(_run_async_row, _file, backend, source, out)))
        rows.append((f"aio.encrypt_stream / decrypt_stream, AsyncFile in, async write out ({backend})",
                     partial(_run_async_row, _stream, backend, source, out)))
        rows.append((f"aio.encrypt_stream / decrypt_stream, async iterator in, async write out ({backend})",
                     partial(_run_async_row, _stream_iterator, backend, source, out)))
    # Rounds interleave the rows, so that drift in a shared machine's load hits all rows alike;
    # the first round is a warm-up and is dropped.
    times: dict[tuple[str, str], list[float]] = {}
    stalls: dict[str, float] = {}
    for round_ in range(repeat + 1):
        for label, run in rows:
            for direction in ("encrypt", "decrypt"):
                seconds, stall = run(direction)
                if round_:
                    times.setdefault((label, direction), []).append(seconds)
                    stalls[label] = max(stalls.get(label, 0.0), stall)
    print(f"\n## {size // MIB} MiB file to file, {SUITE}, default frame, median of {repeat} interleaved rounds\n")
    print("| implementation | encrypt MB/s | vs sync | decrypt MB/s | vs sync | max loop stall ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    base: dict[str, float] = {}
    for label, _ in rows:
        cells = []
        for direction in ("encrypt", "decrypt"):
            rate = size / statistics.median(times[(label, direction)]) / 1e6
            base.setdefault(direction, rate)
            cells += [f"{rate:,.0f}", f"{rate / base[direction]:.2f}"]
        stall_text = "-" if label.startswith("sync") else f"{stalls[label] * 1e3:.1f}"
        print(f"| {label} | " + " | ".join(cells) + f" | {stall_text} |")
    for backend in BACKENDS:
        print(f"| idle loop for 1 s ({backend}): the machine's own stall | | | | | {_idle_stall(backend) * 1e3:.1f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=parse_size, default=256 * MIB)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-threshold", action="store_true", help="only the throughput table")
    args = parser.parse_args(argv)
    print(f"# envelope.aio benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}")
    if not args.skip_threshold:
        threshold_table()
    with tempfile.TemporaryDirectory(prefix="bench-aio-") as directory:
        throughput_table(args.size, args.repeat, directory)


if __name__ == "__main__":
    main()
