"""File-to-file work in one anyio worker thread: the sync driver over the two files, with a
cancellation check before every read, so a frame's read, crypto and write cost no event-loop
round trips, and a cancelled task waits at most about one frame."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import IO, Any, TypeVar, cast

import anyio
import anyio.lowlevel

from ..format.header import Header
from ..streaming import sync
from ..streaming.options import DecryptOptions, EncryptStreamOptions
from .materials import ResolvedManager
from .offload import in_thread

__all__ = ["decrypt_files", "encrypt_files", "run_cancellable"]

T = TypeVar("T")


class _WorkerCancelled(Exception):
    """Raised inside the worker when the awaiting task was cancelled; never leaves this module."""


class _Cancellable:
    """A binary file whose reads stop once ``cancelled`` is set.

    The flag is a threading.Event rather than ``anyio.from_thread.check_cancelled`` because the
    sync driver may read from a thread of its own (streaming/pipeline.py), not an anyio worker.
    """

    def __init__(self, file: Any, cancelled: threading.Event) -> None:
        self._file = file
        self._cancelled = cancelled

    def readinto(self, buffer: Any) -> int:
        if self._cancelled.is_set():
            raise _WorkerCancelled
        n: int = self._file.readinto(buffer)
        return n

    def readinto1(self, buffer: Any) -> int:
        """At most one system read, so the sync pipeline passes on whatever a pipe has."""
        if self._cancelled.is_set():
            raise _WorkerCancelled
        readinto = getattr(self._file, "readinto1", None) or self._file.readinto
        n: int = readinto(buffer)
        return n

    def read(self, size: int = -1) -> bytes:
        if self._cancelled.is_set():
            raise _WorkerCancelled
        data: bytes = self._file.read(size)
        return data


async def run_cancellable(fn: Callable[[threading.Event], T]) -> T:
    """Run ``fn(cancelled)`` in a worker thread; if this task is cancelled meanwhile, set the
    event, wait for ``fn`` to stop (it must poll the event), then raise the cancellation.

    The worker is never abandoned, so no thread outlives the call.
    """
    cancelled = threading.Event()
    error: BaseException | None = None
    result: T | None = None

    async def watch() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        try:
            result = await in_thread(fn, cancelled)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, outside the task group's ExceptionGroup
            error = exc
        group.cancel_scope.cancel()
    if isinstance(error, _WorkerCancelled):
        await anyio.lowlevel.checkpoint()  # raises this task's cancellation
        raise RuntimeError("envelope: internal error: worker stopped without a cancellation")  # noqa: TRY004
    if error is not None:
        raise error
    return cast(T, result)


def _encrypt(src: Any, dst: Any, manager: ResolvedManager, options: EncryptStreamOptions,
             cancelled: threading.Event) -> Header:
    source = cast(IO[bytes], _Cancellable(src, cancelled))
    return sync.encrypt_stream(source, dst, materials_manager=manager.in_worker(), **options)


def _decrypt(src: Any, dst: Any, manager: ResolvedManager, options: DecryptOptions,
             cancelled: threading.Event) -> Header:
    source = cast(IO[bytes], _Cancellable(src, cancelled))
    return sync.decrypt_stream(source, dst, materials_manager=manager.in_worker(), **options)


async def encrypt_files(src: Any, dst: Any, manager: ResolvedManager, options: EncryptStreamOptions) -> Header:
    """Encrypt sync binary file ``src`` into ``dst`` in a worker thread (an async keyring or
    manager is awaited back on the event loop)."""
    return await run_cancellable(partial(_encrypt, src, dst, manager, options))


async def decrypt_files(src: Any, dst: Any, manager: ResolvedManager, options: DecryptOptions) -> Header:
    """Decrypt sync binary file ``src`` into ``dst`` in a worker thread (see `encrypt_files`)."""
    return await run_cancellable(partial(_decrypt, src, dst, manager, options))
