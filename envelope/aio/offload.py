"""When the async drivers move CPU work (AES, SHA-384, zstd) off the event loop: small work runs
inline, where a thread hop would cost as much as the work; large work goes to a worker thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

__all__ = ["COMPRESS_WEIGHT", "OFFLOAD_BYTES", "SIGNED_WEIGHT", "offload"]

T = TypeVar("T")

# Bytes of AES-GCM work at which offloading starts to pay (cost units are "AES bytes").
# Measured by bench/bench_async.py on the shared 2-core EPYC (several runs): an empty
# anyio.to_thread.run_sync round trip costs 42-150 us on asyncio and 51-135 us on trio, while
# AES-GCM seals 64 KiB in 10-25 us, 512 KiB in 90-180 us and 1 MiB in 150-520 us. AESGCM's
# *_into calls, hashlib and zstd release the GIL, so the loop keeps running while they work.
OFFLOAD_BYTES = 512 * 1024
# Signed suites hash every frame with SHA-384 (~0.3-0.5 GB/s here, no SHA-512 hardware): ~8x AES.
SIGNED_WEIGHT = 8
# zstd level 3 compresses text at ~0.6 GB/s and decompression pushes output through a callback.
COMPRESS_WEIGHT = 8


async def offload(cost: int, fn: Callable[..., T], *args: object) -> T:
    """Run ``fn(*args)`` in a worker thread if ``cost`` (AES-equivalent bytes) is large, else inline.

    The worker is never abandoned: a cancelled caller waits for ``fn`` to return, so no thread
    outlives the call and the sans-IO core is never touched by two threads at once.
    """
    if cost >= OFFLOAD_BYTES:
        return await anyio.to_thread.run_sync(fn, *args)
    return fn(*args)
