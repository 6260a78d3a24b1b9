"""Cancellation, back-pressure and bounded memory in envelope.aio.

Cancelled calls leave no thread running (anyio's limiter has every token back, the sync
pipeline's own threads are gone) and no output file, temporary or final.
"""

from __future__ import annotations

import contextlib
import os
import threading
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from _aio_helpers import KEYRING, UNSIGNED, ListSink, NativeAsyncKeyring, agen
from _output_helpers import open_output_size

import envelope
from envelope import aio
from envelope.aio import streams as streams_module
from envelope.aio import worker as worker_module
from envelope.streaming import limits

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024


def _busy_threads() -> tuple[int, list[str]]:
    limiter = anyio.to_thread.current_default_thread_limiter()
    ours = [t.name for t in threading.enumerate() if t.name.startswith("envelope-")]
    return limiter.statistics().borrowed_tokens, ours


async def _decrypt_until_cancelled(message: bytes, after_chunks: int, **options: Any) -> int:
    """Decrypt into a zero-buffer memory stream whose consumer cancels after ``after_chunks``."""
    send, receive = anyio.create_memory_object_stream[bytes](0)
    received = 0
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as group:
            async def consume() -> None:
                nonlocal received
                async with receive:
                    async for _ in receive:
                        received += 1
                        if received == after_chunks:
                            scope.cancel()

            group.start_soon(consume)
            async with send:
                await aio.decrypt_stream(agen(message, 64 * 1024), send, keyring=KEYRING, **options)
    assert scope.cancelled_caught
    return received


@pytest.mark.parametrize("compression", [None, "zstd"], ids=["plain", "zstd"])
async def test_cancel_decrypt_stream_mid_message(compression: Literal["zstd"] | None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(4 * MIB)
    message = envelope.encrypt(data, keyring=KEYRING, algorithm=UNSIGNED, frame_length=64 * 1024,
                               compression=compression, compression_level=1 if compression else None)
    await _decrypt_until_cancelled(message, 1)  # warm the thread pool
    baseline = threading.active_count()
    for _ in range(5):
        assert await _decrypt_until_cancelled(message, 3) == 3
        assert _busy_threads() == (0, [])
    # A thread leaked per cancelled stream would show as 5 more. The pool may have grown by an
    # idle thread or two when a worker returned late on a loaded machine (they expire later).
    assert threading.active_count() <= baseline + 2


async def test_cancel_encrypt_stream_mid_message(monkeypatch: pytest.MonkeyPatch) -> None:
    produced = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal produced
        while True:
            produced += 1
            yield bytes(100_000)

    sink_calls = 0

    class CancellingSink:
        async def write(self, data: bytes) -> None:
            nonlocal sink_calls
            sink_calls += 1
            if sink_calls == 4:
                scope.cancel()
            await anyio.lowlevel.checkpoint()

    with anyio.CancelScope() as scope:
        await aio.encrypt_stream(endless(), CancellingSink(), keyring=KEYRING, frame_length=4096)
    assert scope.cancelled_caught
    assert sink_calls == 4
    assert _busy_threads() == (0, [])


class CancellingKeyring(NativeAsyncKeyring):
    """Cancels the caller's scope from inside the (awaited) keyring call."""

    scope: anyio.CancelScope

    async def aon_encrypt(self, materials: Any) -> Any:
        self.threads.append(threading.get_ident())
        self.scope.cancel()
        return await super().aon_encrypt(materials)

    async def aon_decrypt(self, materials: Any, edks: Any) -> Any:
        self.threads.append(threading.get_ident())
        self.scope.cancel()
        return await super().aon_decrypt(materials, edks)


@pytest.mark.parametrize("direction", ["encrypt", "decrypt"])
async def test_cancel_file_leaves_destination_untouched(direction: str, tmp_path: Path) -> None:
    data = os.urandom(3 * MIB)
    options: dict[str, Any]
    run: Callable[..., Awaitable[envelope.Header]]
    if direction == "encrypt":
        (tmp_path / "in").write_bytes(data)
        run, options = aio.encrypt_file, {"frame_length": 65536}
    else:
        (tmp_path / "in").write_bytes(envelope.encrypt(data, keyring=KEYRING, frame_length=65536))
        run, options = aio.decrypt_file, {}
    (tmp_path / "out").write_bytes(b"previous contents")
    keyring = CancellingKeyring()
    with anyio.CancelScope() as scope:
        keyring.scope = scope
        await run(tmp_path / "in", tmp_path / "out", keyring=keyring, overwrite=True, **options)
    assert scope.cancelled_caught
    assert keyring.threads == [threading.get_ident()]  # called from the worker, back on the loop
    assert (tmp_path / "out").read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    assert _busy_threads() == (0, [])


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to watch the output")
async def test_cancel_encrypt_file_in_the_middle_of_the_body(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A FIFO as the input: the test decides when data arrives, so the cancellation is certain
    to land after part of the body was written to the temporary file, and the rest of the input
    is released only once the worker has been told to stop."""
    stop_flags: list[threading.Event] = []

    class RecordedEvent(threading.Event):
        def __init__(self) -> None:
            super().__init__()
            stop_flags.append(self)

    monkeypatch.setattr(worker_module, "threading", SimpleNamespace(Event=RecordedEvent))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    out.mkdir()
    frame = 65536
    go_on = threading.Event()
    scope = anyio.CancelScope()

    def feed(first: bytes, rest: bytes) -> None:
        # The cancelled reader may close its end before the rest is written.
        with contextlib.suppress(BrokenPipeError), open(fifo, "wb", buffering=0) as writer:
            writer.write(first)
            go_on.wait(30)
            writer.write(rest)

    async def cancel_mid_body() -> None:
        with anyio.fail_after(30):
            # The driver has written the header and at least one frame to the temporary file
            # (an unnamed one: seen through /proc).
            while (open_output_size(os.getpid(), out) or 0) <= frame:
                await anyio.sleep(0.005)
            scope.cancel()
            await anyio.to_thread.run_sync(stop_flags[0].wait)
        go_on.set()

    async with anyio.create_task_group() as group:
        group.start_soon(anyio.to_thread.run_sync, feed, os.urandom(8 * frame), os.urandom(8 * frame))
        group.start_soon(cancel_mid_body)
        with scope:
            await aio.encrypt_file(fifo, out / "out", keyring=KEYRING, algorithm=UNSIGNED, frame_length=frame)
    assert scope.cancelled_caught
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "out"]
    assert os.listdir(out) == []
    assert _busy_threads() == (0, [])


async def test_slow_consumer_holds_back_the_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Back-pressure: with a zero-buffer stream and a slow consumer, the driver never reads more
    than a few chunks ahead of what the consumer has taken, however long the stream. Batches of
    one frame here, so that items count frames: one chunk in the reader's hand and ASYNC_PIPE_DEPTH in
    the pipe to the worker, one frame held back by the encryptor and one being sealed, ASYNC_PIPE_DEPTH in
    the pipe to the sink and one in the writer's hand."""
    chunk = 4096
    monkeypatch.setattr(streams_module, "BATCH_BYTES", chunk)
    pulled = 0
    delivered = 0
    lead = 0

    async def source() -> AsyncIterator[bytes]:
        nonlocal pulled
        for i in range(200):
            pulled += 1
            yield bytes([i]) * chunk

    send, receive = anyio.create_memory_object_stream[bytes](0)

    async def consume() -> None:
        nonlocal delivered, lead
        async with receive:
            async for _ in receive:
                delivered += 1
                lead = max(lead, pulled - delivered)
                for _ in range(5):
                    await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as group:
        group.start_soon(consume)
        async with send:
            await aio.encrypt_stream(source(), send, keyring=KEYRING, algorithm=UNSIGNED, frame_length=chunk)
    assert pulled == 200
    assert lead <= 2 * limits.ASYNC_PIPE_DEPTH + 4


async def test_decompression_is_paced_by_the_sink() -> None:
    """A compressed message that expands 64 MiB is decrypted into a zero-buffer stream: the
    decompressor waits for the consumer, so memory stays a few MiB, not the whole output."""
    size = 64 * MIB
    message = envelope.encrypt(bytes(size), keyring=KEYRING, algorithm=UNSIGNED, compression="zstd")
    send, receive = anyio.create_memory_object_stream[bytes](0)
    total = 0
    largest = 0

    async def consume() -> None:
        nonlocal total, largest
        async with receive:
            async for piece in receive:
                total += len(piece)
                largest = max(largest, len(piece))

    tracemalloc.start()
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(consume)
            async with send:
                await aio.decrypt_stream(agen(message, 4096), send, keyring=KEYRING, max_compression_ratio=None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == size
    assert largest <= MIB
    assert peak < 8 * MIB


async def test_bomb_limit_in_async_decrypt() -> None:
    message = envelope.encrypt(bytes(32 * MIB), keyring=KEYRING, algorithm=UNSIGNED, compression="zstd")
    with pytest.raises(envelope.PolicyError, match="ratio"):
        await aio.decrypt_stream(agen(message, 4096), ListSink(), keyring=KEYRING)
    with pytest.raises(envelope.PolicyError, match="limit"):
        await aio.decrypt(message, keyring=KEYRING, max_decompressed_size=MIB, max_compression_ratio=None)
