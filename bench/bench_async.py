"""envelope.aio against the sync driver on the same data, and the measurements behind the offload
threshold in envelope/aio/offload.py.

Run: ``.venv/bin/python bench/bench_async.py --size 256M --repeat 5``. Rows: unsigned committing
suite, default frame; the median of ``--repeat`` interleaved rounds after a warm-up round, page
cache warm, files on ``/dev/shm`` (tmpfs, as bench_stream.py) if they fit, unless ``--tmpdir``
says otherwise.
Ratios are medians of each round's own ratio. Every async row is compared with its sync twin,
the sync driver given the same kind of input:
file rows and AsyncFile rows with the sync driver over files; async-iterator rows with the sync
driver over a sync iterator of the same 1 MiB ``bytes`` chunks. ``vs sync file`` compares every
row with the sync driver over files. The stream rows take the generic path (the sink is not an
AsyncFile). ``cpu`` is the process CPU time (all threads) of the median round, encrypt/decrypt.
``max loop stall`` is the longest gap seen by a 1 ms ticker task on the same event loop during
untimed runs (``--ticker-in-timed-runs`` puts the ticker in the timed rounds instead, as this
bench did at first: the ticker itself costs CPU, 40-80 ms a second on asyncio and 50-160 on
trio here, which the sync twins do not pay; the ``idle loop`` rows show it); ``peak``
is the largest tracemalloc peak of one untimed encrypt or decrypt. The
``floor`` rows copy the same bytes through the same async source and sink with no crypto at
all: an async-iterator row cannot beat its floor, whatever the driver does. The "writes only"
floor writes the output's size through the async sink alone, against plain file writes: the
AsyncFile-in rows write through that sink, so its own cost (a thread hop a write) bounds them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import impls
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from impls import MIB, parse_size

import envelope
from envelope import aio

SUITE = impls.COMMIT
KEYRING = impls.envelope_keyring()
BACKENDS = ("asyncio", "trio")


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


_sync_encrypt, _sync_decrypt = impls.envelope_stream(SUITE, None)()  # the sync driver over files


def _sync_chunks(file: Any) -> Any:
    """The file as a sync iterator of 1 MiB ``bytes``: the twin of `_chunks_of`."""
    while chunk := file.read(MIB):
        yield chunk


class _Writer:
    """A sync sink that is not a file: the twin of `_AsyncWriter`."""

    def __init__(self, file: Any) -> None:
        self._file = file

    def write(self, data: Any) -> None:
        self._file.write(data)


def _sync_iterator_encrypt(src: str, dst: str) -> None:
    with open(src, "rb") as s, open(dst, "wb") as d:
        envelope.encrypt_stream(_sync_chunks(s), _Writer(d), keyring=KEYRING, algorithm=SUITE)


def _sync_iterator_decrypt(src: str, dst: str) -> None:
    with open(src, "rb") as s, open(dst, "wb") as d:
        envelope.decrypt_stream(_sync_chunks(s), _Writer(d), keyring=KEYRING)


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


async def _copy_iterator(direction: str, src: str, dst: str) -> None:
    """No crypto: the same async source and sink as `_stream_iterator`, bytes copied through.
    The floor for those rows: what the async I/O alone costs."""
    async with await anyio.open_file(src, "rb") as s, await anyio.open_file(dst, "wb") as d:
        sink = _AsyncWriter(d)
        async for chunk in _chunks_of(s):
            await sink.write(chunk)


_WRITE = bytes(4 * MIB)  # what the writes-only rows write: one batch of the stream driver


def _sync_writes_only(src: str, dst: str) -> None:
    """No input, no crypto: ``src``'s size in 4 MiB writes to a file (the twin of `_writes_only`)."""
    left = os.path.getsize(src)
    with open(dst, "wb") as d:
        while left > 0:
            left -= d.write(_WRITE[:left])


async def _writes_only(direction: str, src: str, dst: str) -> None:
    """No input, no crypto: ``src``'s size in 4 MiB writes through the same async sink as the
    stream rows (a thread hop each). What that sink alone costs: a floor for the AsyncFile rows."""
    left = os.path.getsize(src)
    async with await anyio.open_file(dst, "wb") as d:
        sink = _AsyncWriter(d)
        while left > 0:
            piece = _WRITE[:left]
            await sink.write(piece)
            left -= len(piece)


async def _file(direction: str, src: str, dst: str) -> None:
    # Every round writes the same output path: the file functions refuse an existing one unless told.
    if direction == "encrypt":
        await aio.encrypt_file(src, dst, keyring=KEYRING, algorithm=SUITE, overwrite=True)
    else:
        await aio.decrypt_file(src, dst, keyring=KEYRING, overwrite=True)


def _run_sync(fn: Callable[[str, str], None], src: str, dst: str) -> tuple[float, float]:
    start = time.perf_counter()
    fn(src, dst)
    return time.perf_counter() - start, 0.0


def _run_async(fn: Callable[[str, str, str], Awaitable[None]], direction: str, src: str, dst: str,
               backend: str, ticker: bool) -> tuple[float, float]:
    async def main() -> tuple[float, float]:
        if ticker:
            return await _with_ticker(lambda: fn(direction, src, dst))
        start = time.perf_counter()
        await fn(direction, src, dst)
        return time.perf_counter() - start, 0.0

    return anyio.run(main, backend=backend)


def _idle_stall(backend: str) -> tuple[float, float]:
    """(the longest tick gap of an idle loop for one second: the machine's own noise; the CPU
    seconds the ticker itself took meanwhile)."""
    cpu = time.process_time()
    stall = anyio.run(_with_ticker, lambda: anyio.sleep(1.0), backend=backend)[1]
    return stall, time.process_time() - cpu


Run = Callable[[str, bool], tuple[float, float]]  # (direction, ticker) -> (seconds, longest loop stall)


def _is_sync(label: str) -> bool:
    """A sync-driver row: no event loop, so no loop stall to report."""
    return label.startswith("sync")


def _rows(source: dict[str, str], out: str) -> list[tuple[str, str, Run]]:
    """(label, label of the sync twin, run) for every row."""
    sync_file, sync_iterator = "sync, file in, file out", "sync, iterator in, write out"

    def sync(encrypt: Callable[[str, str], None], decrypt: Callable[[str, str], None]) -> Run:
        return lambda d, ticker: _run_sync(encrypt if d == "encrypt" else decrypt, source[d], out)

    def aio_row(fn: Callable[[str, str, str], Awaitable[None]], backend: str) -> Run:
        return lambda d, ticker: _run_async(fn, d, source[d], out, backend, ticker)

    sync_writes = "sync, 4 MiB writes only (no input, no crypto)"
    rows: list[tuple[str, str, Run]] = [
        (sync_file, sync_file, sync(_sync_encrypt, _sync_decrypt)),
        (sync_iterator, sync_iterator, sync(_sync_iterator_encrypt, _sync_iterator_decrypt)),
        (sync_writes, sync_writes, sync(_sync_writes_only, _sync_writes_only)),
    ]
    for backend in BACKENDS:
        rows += [
            (f"aio.encrypt_file / decrypt_file ({backend})", sync_file, aio_row(_file, backend)),
            (f"aio stream, AsyncFile in, async write out ({backend})", sync_file, aio_row(_stream, backend)),
            (f"aio stream, async iterator in, async write out ({backend})", sync_iterator,
             aio_row(_stream_iterator, backend)),
            (f"floor: no crypto, async iterator in, async write out ({backend})", sync_iterator,
             aio_row(_copy_iterator, backend)),
            (f"floor: 4 MiB writes only, through the async sink ({backend})", sync_writes,
             aio_row(_writes_only, backend)),
        ]
    return rows


def _peak(run: Run, direction: str) -> int:
    """The tracemalloc peak of one untimed run (bytes)."""
    tracemalloc.start()
    try:
        run(direction, False)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def throughput_table(size: int, repeat: int, directory: str, ticker_in_timed_runs: bool = False) -> None:
    plain, sealed, out = (os.path.join(directory, name) for name in ("plain", "sealed", "out"))
    impls.random_file(plain, size)
    _sync_encrypt(plain, sealed)
    rows = _rows({"encrypt": plain, "decrypt": sealed}, out)
    # Rounds interleave the rows, so that drift in a shared machine's load hits all rows alike;
    # the first round is a warm-up and is dropped.
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    stalls: dict[str, float] = {}
    for round_ in range(repeat + 1):
        for label, _, run in rows:
            for direction in ("encrypt", "decrypt"):
                cpu = time.process_time()
                seconds, stall = run(direction, ticker_in_timed_runs)
                cpu = time.process_time() - cpu
                if round_:
                    times.setdefault((label, direction), []).append((seconds, cpu))
                    stalls[label] = max(stalls.get(label, 0.0), stall)
    if not ticker_in_timed_runs:  # the stalls from untimed runs with the ticker (sync rows have no loop)
        for _ in range(min(repeat, 3)):
            for label, _, run in rows:
                if _is_sync(label):
                    continue
                for direction in ("encrypt", "decrypt"):
                    stalls[label] = max(stalls.get(label, 0.0), run(direction, True)[1])
    peaks = {label: max(_peak(run, d) for d in ("encrypt", "decrypt")) for label, _, run in rows}
    print(f"\n## {impls.size_label(size)}, {SUITE}, default frame, median of {repeat} interleaved rounds\n")
    print("| implementation | encrypt MB/s | vs twin | decrypt MB/s | vs twin | vs sync file enc / dec "
          "| cpu ms enc / dec | max loop stall ms | peak MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    rate: dict[tuple[str, str], float] = {}
    cpu_ms: dict[tuple[str, str], float] = {}
    for label, _, _ in rows:
        for direction in ("encrypt", "decrypt"):
            runs = times[(label, direction)]
            rate[(label, direction)] = size / statistics.median(t for t, _ in runs) / 1e6
            cpu_ms[(label, direction)] = statistics.median(c for _, c in runs) * 1e3

    def ratio(label: str, other: str, direction: str) -> float:
        """Speed of ``label`` over ``other``: the median of the rounds' own ratios, so that a
        burst of load in one round weighs on both sides of that round's ratio."""
        return statistics.median(theirs / ours for (ours, _), (theirs, _)
                                 in zip(times[(label, direction)], times[(other, direction)], strict=True))

    base = rows[0][0]
    for label, twin, _ in rows:
        enc, dec = rate[(label, "encrypt")], rate[(label, "decrypt")]
        cells = [f"{enc:,.0f}", f"{ratio(label, twin, 'encrypt'):.2f}",
                 f"{dec:,.0f}", f"{ratio(label, twin, 'decrypt'):.2f}",
                 f"{ratio(label, base, 'encrypt'):.2f} / {ratio(label, base, 'decrypt'):.2f}",
                 f"{cpu_ms[(label, 'encrypt')]:.0f} / {cpu_ms[(label, 'decrypt')]:.0f}",
                 "-" if _is_sync(label) else f"{stalls[label] * 1e3:.1f}",
                 f"{peaks[label] / MIB:.1f}"]
        print(f"| {label} | " + " | ".join(cells) + " |")
    for backend in BACKENDS:
        stall, ticker_cpu = _idle_stall(backend)
        print(f"| idle loop for 1 s ({backend}): the machine's own stall, the ticker's own cpu | | | | | | "
              f"{ticker_cpu * 1e3:.0f} | {stall * 1e3:.1f} | |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=parse_size, default=256 * MIB)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-threshold", action="store_true", help="only the throughput table")
    parser.add_argument("--ticker-in-timed-runs", action="store_true",
                        help="run the loop-stall ticker during the timed rounds (its CPU counts against the async rows)")
    parser.add_argument("--tmpdir", help="where the files go (default: /dev/shm if it fits)")
    args = parser.parse_args(argv)
    print(f"# envelope.aio benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}")
    if not args.skip_threshold:
        threshold_table()
    # Plaintext, ciphertext and output: tmpfs, as in bench_stream.py, when they fit.
    tmpdir = args.tmpdir or impls.tmpfs_dir(4 * args.size)
    with tempfile.TemporaryDirectory(prefix="bench-aio-", dir=tmpdir) as directory:
        throughput_table(args.size, args.repeat, directory, args.ticker_in_timed_runs)


if __name__ == "__main__":
    main()
