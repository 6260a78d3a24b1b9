"""Parallelism (issue 3, item 4): does frame work spread over threads or processes beat one thread
on this 2-core machine, file to file, for large inputs?

Run: ``.venv/bin/python bench/bench_parallel.py [--size 256M] [--rounds 3] [--frames 64K,1M] [--workers 2]``.

Rows, all file to file on tmpfs (the disk stays out of the numbers), one input, interleaved rounds
(every row once, then again; the untimed round-trip check of every row first is the warm-up),
median wall-clock MB/s:

- **envelope, default**: the sync driver as shipped: its threaded pipeline (a reader thread, AES on
  the calling thread, a back thread that writes, and for signed suites hashes).
- **envelope, one thread**: the same driver with the pipeline switched off (its frame threshold
  raised past every frame), which is what the driver does without threads.
- **bound: AES-GCM frames on N threads / N processes**: not envelope, and no message format at all:
  the file read in frames, each frame sealed (or opened) with AES-GCM by a pool of N workers, the
  results written in order with at most 2N frames in flight. They are upper bounds for a
  frame-parallel design: a real one would add the format's work to them, never remove any.

The ratio column is each row's speed over "envelope, default" in the same round (median of the
rounds' ratios). ``--busy N`` runs N busy-looping processes meanwhile, as another tenant of a shared
machine would; the default pipeline and the one-thread path can then be compared with fewer free
cores than the machine has. Signed suites are measured for the envelope rows only: their SHA-384 runs over the
whole message in order, so frames in parallel cannot split it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from impls import AES_KEY, COMMIT, SIGNED, envelope_stream, parse_size, random_file, same_content, size_label, tmpfs_dir

from envelope.streaming import sync

_TAG = 16

# -- envelope rows ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """The sync driver without its pipeline: frames below the threshold take the one-thread path."""
    saved = sync.PIPELINE_MIN_FRAME
    sync.PIPELINE_MIN_FRAME = sys.maxsize
    try:
        yield
    finally:
        sync.PIPELINE_MIN_FRAME = saved


def _envelope(suite: str, frame: int, threaded: bool) -> Callable[[str, str, str], None]:
    encrypt, decrypt = envelope_stream(suite, frame)()

    def run(direction: str, src: str, dst: str) -> None:
        with contextlib.nullcontext() if threaded else _one_thread():
            (encrypt if direction == "encrypt" else decrypt)(src, dst)
    return run


# -- upper bounds: AES-GCM frames on a pool ----------------------------------------------------------

_AEAD: AESGCM | None = None


def _init_worker(key: bytes) -> None:
    global _AEAD
    _AEAD = AESGCM(key)


def _seal(item: tuple[int, bytes]) -> bytes:
    sequence, frame = item
    assert _AEAD is not None
    return _AEAD.encrypt(sequence.to_bytes(12, "big"), frame, None)


def _open(item: tuple[int, bytes]) -> bytes:
    sequence, frame = item
    assert _AEAD is not None
    return _AEAD.decrypt(sequence.to_bytes(12, "big"), frame, None)


def _frames(file: Any, size: int) -> Iterator[tuple[int, bytes]]:
    sequence = 0
    while chunk := file.read(size):
        sequence += 1
        yield sequence, chunk


def _ordered(pool: concurrent.futures.Executor, work: Callable[[tuple[int, bytes]], bytes],
             items: Iterator[tuple[int, bytes]], window: int, write: Callable[[bytes], object]) -> None:
    """``work`` over ``items`` on ``pool``, results written in order, at most ``window`` in flight
    (Executor.map would submit the whole input at once)."""
    pending: deque[concurrent.futures.Future[bytes]] = deque()
    for item in items:
        pending.append(pool.submit(work, item))
        if len(pending) >= window:
            write(pending.popleft().result())
    while pending:
        write(pending.popleft().result())


def _process_bound(workers: int, frame: int) -> Callable[[str, str, str], None]:
    """Frames to worker processes and back: each crossing pickles and copies the frame."""
    pool = concurrent.futures.ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(AES_KEY,))
    _POOLS.append(pool)

    def run(direction: str, src: str, dst: str) -> None:
        work, size = (_seal, frame) if direction == "encrypt" else (_open, frame + _TAG)
        with open(src, "rb") as s, open(dst, "wb") as d:
            _ordered(pool, work, _frames(s, size), 2 * workers, d.write)
    return run


def _thread_bound(workers: int, frame: int) -> Callable[[str, str, str], None]:
    """Frames on a thread pool, the best way this machine allows: read into and sealed into reused
    buffers (`encrypt_into` releases the GIL; an allocating `encrypt` would hold it)."""
    aead = AESGCM(AES_KEY)
    pool = concurrent.futures.ThreadPoolExecutor(workers)
    _POOLS.append(pool)
    window = 2 * workers
    inputs = [bytearray(frame + _TAG) for _ in range(window)]
    outputs = [bytearray(frame + _TAG) for _ in range(window)]

    def run(direction: str, src: str, dst: str) -> None:
        sealing = direction == "encrypt"
        size = frame if sealing else frame + _TAG

        def work(slot: int, sequence: int, n: int) -> memoryview:
            nonce = sequence.to_bytes(12, "big")
            data, out = memoryview(inputs[slot])[:n], memoryview(outputs[slot])
            if sealing:
                return out[:aead.encrypt_into(nonce, data, None, out[:n + _TAG])]
            return out[:aead.decrypt_into(nonce, data, None, out[:n - _TAG])]

        # Slot k % window is reused only once frame k - window has been written.
        pending: deque[concurrent.futures.Future[memoryview]] = deque()
        sequence = 0
        with open(src, "rb") as s, open(dst, "wb") as d:
            while True:
                if len(pending) == window:
                    d.write(pending.popleft().result())
                slot = sequence % window
                n = s.readinto(memoryview(inputs[slot])[:size])
                if not n:
                    break
                sequence += 1
                pending.append(pool.submit(work, slot, sequence, n))
            while pending:
                d.write(pending.popleft().result())
    return run


_POOLS: list[concurrent.futures.Executor] = []

# -- the table -------------------------------------------------------------------------------------

Run = Callable[[str, str, str], None]


def _rows(frame: int, workers: int) -> list[tuple[str, str, Run]]:
    """(label, input kind, run): input kind "envelope" decrypts an envelope message of the suite,
    "aes" decrypts the bound rows' own format."""
    label = size_label(frame)
    return [
        (f"envelope, default (pipeline given 2+ CPUs), unsigned, frame {label}", COMMIT, _envelope(COMMIT, frame, True)),
        (f"envelope, one thread, unsigned, frame {label}", COMMIT, _envelope(COMMIT, frame, False)),
        (f"bound: AES-GCM frames of {label} on {workers} threads", "aes", _thread_bound(workers, frame)),
        (f"bound: AES-GCM frames of {label} on {workers} processes", "aes", _process_bound(workers, frame)),
        (f"envelope, default (pipeline given 2+ CPUs), signed, frame {label}", SIGNED, _envelope(SIGNED, frame, True)),
        (f"envelope, one thread, signed, frame {label}", SIGNED, _envelope(SIGNED, frame, False)),
    ]


def measure(size: int, frames: list[int], rounds: int, workers: int, directory: str) -> int:
    plain, out, back = (os.path.join(directory, name) for name in ("plain", "out", "back"))
    random_file(plain, size)
    failures = 0
    for frame in frames:
        rows = _rows(frame, workers)
        sealed: dict[str, str] = {}
        for label, kind, run in rows:
            # Every row must round-trip (its own ciphertext opens to the input), which also warms it
            # up (pools started, code paths run); the decrypt rows then read one ciphertext per input kind.
            path = sealed.setdefault(kind, os.path.join(directory, f"sealed-{len(sealed)}"))
            run("encrypt", plain, path)
            run("decrypt", path, back)
            if not same_content(plain, back):
                print(f"FAILED round trip: {label}", file=sys.stderr)
                failures += 1
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(rounds):
            for label, kind, run in rows:
                for direction, src in (("encrypt", plain), ("decrypt", sealed[kind])):
                    start = time.perf_counter()
                    run(direction, src, out)
                    times.setdefault((label, direction), []).append(time.perf_counter() - start)
        base = rows[0][0]
        print(f"\n## {size_label(size)}, file to file on {directory}, median of {rounds} interleaved rounds\n")
        print("| row | encrypt MB/s | vs default | decrypt MB/s | vs default |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for label, _, _ in rows:
            cells = []
            for direction in ("encrypt", "decrypt"):
                ours = times[(label, direction)]
                ratio = statistics.median(b / o for o, b in zip(ours, times[(base, direction)], strict=True))
                cells += [f"{size / statistics.median(ours) / 1e6:,.0f}", f"{ratio:.2f}"]
            print(f"| {label} | " + " | ".join(cells) + " |")
    return failures


def _burn() -> None:
    """Another tenant's work: one core kept busy until terminated."""
    while True:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default="256M", help="input size (default 256M)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", default="64K,1M", help="frame lengths, comma-separated (default 64K,1M)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="pool size of the bound rows")
    parser.add_argument("--busy", type=int, default=0, help="busy-looping processes to run meanwhile (default 0)")
    parser.add_argument("--tmpdir", help="where the files go (default: /dev/shm if it fits)")
    args = parser.parse_args(argv)
    print(f"cpus: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}, busy processes: {args.busy}")
    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(args.busy)]
    for burner in burners:
        burner.start()
    try:
        # The input, its output, a round trip and one ciphertext per input kind: 5 files.
        with tempfile.TemporaryDirectory(dir=args.tmpdir or tmpfs_dir(6 * args.size)) as directory:
            failures = measure(args.size, [parse_size(f) for f in args.frames.split(",")],
                               args.rounds, args.workers, directory)
    finally:
        for pool in _POOLS:
            pool.shutdown()
        for burner in burners:
            burner.terminate()
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
