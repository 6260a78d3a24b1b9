"""When the async drivers move CPU work (AES, SHA-384, zstd) off the event loop: small work runs
inline, where a thread hop would cost as much as the work; large work goes to a worker thread.
Every hop to a worker thread goes through `in_thread`, which leaves the worker holding nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import anyio.to_thread

__all__ = ["COMPRESS_WEIGHT", "OFFLOAD_BYTES", "SIGNED_WEIGHT", "in_thread", "offload"]

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
        return await in_thread(fn, *args)
    return fn(*args)


class _Job(Generic[T]):
    """One call for a worker thread that lets go of its function, arguments, result and error
    as soon as they are handed over. An idle anyio worker keeps its last job's arguments and
    error until its next job (asyncio backend: up to 10 s), and with them a message's
    decryptor, buffers, data key or the frames of its traceback (issue 12)."""

    __slots__ = ("_call", "_error", "_result")

    def __init__(self, fn: Callable[..., T], args: tuple[object, ...]) -> None:
        self._call: tuple[Callable[..., T], tuple[object, ...]] | None = (fn, args)
        self._result: T | None = None
        self._error: BaseException | None = None

    def __call__(self) -> None:
        call, self._call = self._call, None
        if call is None:  # pragma: no cover - a job runs once
            raise RuntimeError("envelope: internal error: a worker job ran twice")
        try:
            self._result = call[0](*call[1])
        except BaseException as exc:  # noqa: BLE001 - raised again on the loop by outcome()
            self._error = exc

    def outcome(self) -> T:
        result, error = self._result, self._error
        self.clear()
        if error is not None:
            try:
                raise error
            finally:
                del error
        return result  # type: ignore[return-value]

    def clear(self) -> None:
        self._call = self._result = self._error = None


async def in_thread(fn: Callable[..., T], *args: object, limiter: Any = None) -> T:
    """``await anyio.to_thread.run_sync(fn, *args)``, but the worker keeps no reference to
    ``fn``, ``args``, the result or the error once this returns."""
    job = _Job(fn, args)
    try:
        await anyio.to_thread.run_sync(job, limiter=limiter)
    except BaseException:
        job.clear()  # cancelled once the job had run: its outcome is dropped with it
        raise
    return job.outcome()
