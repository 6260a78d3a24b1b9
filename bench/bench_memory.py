"""RSS over many streaming decrypts of a compressed message (issue 12's target: after 1,000
decrypts of a compressed 4 MiB message, RSS within 5 MiB of what it was after 10).

Run: ``.venv/bin/python bench/bench_memory.py [--count 1000] [--size 4M]``. Each entry point
runs in a fresh child process (``--one NAME``), so that one's heap does not carry into the next.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from impls import MIB, parse_size

import envelope
import envelope.aio

KEYRING = envelope.RawAESKeyring("bench", "memory", bytes(range(32)))
TARGET_MIB = 5.0
_RESULT = "BENCH-RESULT "


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def _decrypt_stream(message: bytes) -> int:
    sink = io.BytesIO()
    envelope.decrypt_stream(io.BytesIO(message), sink, keyring=KEYRING)
    return sink.tell()


def _decryptor(message: bytes) -> int:
    with envelope.Decryptor(io.BytesIO(message), keyring=KEYRING) as reader:
        return len(reader.read())


class _Sink:
    def __init__(self) -> None:
        self.size = 0

    async def write(self, data: bytes) -> None:
        self.size += len(data)


async def _chunks(message: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(message), MIB):
        yield message[i:i + MIB]


async def _aio_decrypt_stream(message: bytes) -> int:
    sink = _Sink()
    await envelope.aio.decrypt_stream(_chunks(message), sink, keyring=KEYRING)
    return sink.size


SYNC: dict[str, Callable[[bytes], int]] = {"decrypt_stream": _decrypt_stream, "Decryptor": _decryptor}
ASYNC: dict[str, Callable[[bytes], Awaitable[int]]] = {"aio.decrypt_stream (asyncio)": _aio_decrypt_stream}
ENTRIES = [*SYNC, *ASYNC]


def _one(name: str, size: int, count: int) -> dict[str, float]:
    # The repro: 1 MiB of random bytes over and over (zstd finds the repeats).
    plaintext = os.urandom(MIB) * (size // MIB)
    message = envelope.encrypt(plaintext, keyring=KEYRING, compression="zstd")
    rss: dict[int, float] = {}

    def check(i: int, n: int) -> None:
        if n != len(plaintext):
            raise SystemExit(f"{name}: wrong plaintext length")
        if i in (10, count):
            gc.collect()
            rss[i] = _rss_mib()

    start = time.perf_counter()
    if name in SYNC:
        for i in range(1, count + 1):
            check(i, SYNC[name](message))
    else:
        async def loop() -> None:  # one event loop, as in a long-running service
            for i in range(1, count + 1):
                check(i, await ASYNC[name](message))

        anyio.run(loop)
    return {"after_10": rss[10], "after_n": rss[count], "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000, help="decrypts per entry point (at least 10)")
    parser.add_argument("--size", type=parse_size, default=4 * MIB, help="plaintext size, whole MiB")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.count < 10:
        parser.error("--count must be at least 10")
    if args.one:
        print(_RESULT + json.dumps(_one(args.one, args.size, args.count)), flush=True)
        return 0
    print(f"# {args.count} streaming decrypts of a zstd-compressed {args.size // MIB} MiB message; "
          f"target: RSS after {args.count} within {TARGET_MIB:g} MiB of after 10")
    print(f"{'entry point':<32} {'RSS@10 MiB':>11} {f'RSS@{args.count} MiB':>13} {'delta MiB':>10} {'s':>7}  met")
    failed = False
    for name in ENTRIES:
        child = subprocess.run([sys.executable, __file__, "--one", name, "--size", str(args.size),
                                "--count", str(args.count)], capture_output=True, text=True, check=False)
        lines = [line for line in child.stdout.splitlines() if line.startswith(_RESULT)]
        if child.returncode or not lines:
            print(f"{name:<32} error: {child.stderr.strip().splitlines()[-1:]}")
            failed = True
            continue
        result = json.loads(lines[0][len(_RESULT):])
        delta = result["after_n"] - result["after_10"]
        met = delta <= TARGET_MIB
        failed |= not met
        print(f"{name:<32} {result['after_10']:>11.1f} {result['after_n']:>13.1f} {delta:>10.1f} "
              f"{result['seconds']:>7.1f}  {'yes' if met else 'NO'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
