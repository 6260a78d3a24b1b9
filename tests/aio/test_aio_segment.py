"""The worker segment of the async stream driver: the pipes between the loop and the worker, an
AsyncFile on one side read or written by the worker itself, and teardown on errors and
cancellation (no thread left running, the error raised as itself)."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from _aio_helpers import KEYRING, UNSIGNED, ListSink, agen

import envelope
from envelope import aio
from envelope.aio import segment
from envelope.aio.segment import Pipe, Stopped

pytestmark = pytest.mark.anyio

SIGNED = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"
MIB = 1024 * 1024


def _data(n: int, seed: int = 0) -> bytes:
    return random.Random(n * 131 + seed).randbytes(n)


# -- Pipe -----------------------------------------------------------------------------------------


async def test_pipe_keeps_order_and_bounds_what_it_holds() -> None:
    """The worker puts 200 items into a pipe of depth 3 while the loop takes them slowly: all
    arrive in order, and the pipe never holds more than 3 (the worker waits for room)."""
    stop = threading.Event()
    pipe: Pipe[int | None] = Pipe(3, stop)
    most = 0

    def produce() -> None:
        nonlocal most
        for i in range(200):
            pipe.put(i)
            most = max(most, len(pipe._items))
        pipe.put(None)

    got: list[int] = []

    async def consume() -> None:
        while (item := await pipe.aget()) is not None:
            got.append(item)
            if item % 7 == 0:
                await anyio.sleep(0.001)

    async with anyio.create_task_group() as group:
        group.start_soon(consume)
        await anyio.to_thread.run_sync(produce)
    assert got == list(range(200))
    assert most <= 3


async def test_pipe_from_loop_to_worker() -> None:
    stop = threading.Event()
    pipe: Pipe[bytes | None] = Pipe(2, stop)
    got: list[bytes] = []

    def consume() -> None:
        while (item := pipe.get()) is not None:
            got.append(item)
            time.sleep(0.0005)

    async def produce() -> None:
        for i in range(100):
            await pipe.aput(bytes([i]))
            assert len(pipe._items) <= 2
        await pipe.aput(None)

    async with anyio.create_task_group() as group:
        group.start_soon(produce)
        await anyio.to_thread.run_sync(consume)
    assert got == [bytes([i]) for i in range(100)]


async def test_waking_the_loop_does_not_wait_for_it() -> None:
    """The worker's put into a pipe the loop waits on returns before the loop has run: here
    the loop is blocked until the put has returned (a wake that waited for the loop to run it
    would wait here until the 10 s timeout)."""
    stop = threading.Event()
    pipe: Pipe[int] = Pipe(1, stop)
    returned = threading.Event()
    got: list[int] = []

    async def take() -> None:
        got.append(await pipe.aget())

    def put() -> None:
        pipe.put(7)
        returned.set()

    async with anyio.create_task_group() as group:
        group.start_soon(take)
        await anyio.wait_all_tasks_blocked()  # take() waits on the empty pipe
        worker = threading.Thread(target=put)
        worker.start()
        assert returned.wait(10)  # blocks the loop on purpose
        worker.join()
    assert got == [7]


async def test_a_wake_for_a_cancelled_waiter_loses_nothing() -> None:
    """A loop task cancelled while the worker's wake for it is still queued: the item stays in
    the pipe for the next aget, and the stale wake does not upset later waits."""
    stop = threading.Event()
    pipe: Pipe[int] = Pipe(2, stop)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(pipe.aget)
            await anyio.wait_all_tasks_blocked()
            worker = threading.Thread(target=pipe.put, args=(1,))
            worker.start()
            worker.join()  # the wake is queued, not yet run: the loop is blocked here
            scope.cancel()
    assert scope.cancelled_caught
    got: list[int] = []

    async def take() -> None:
        got.append(await pipe.aget())

    with anyio.fail_after(10):
        await take()  # the item the cancelled task did not take
        async with anyio.create_task_group() as group:
            group.start_soon(take)
            await anyio.wait_all_tasks_blocked()  # waits afresh on the empty pipe
            worker = threading.Thread(target=pipe.put, args=(2,))
            worker.start()
        worker.join()
    assert got == [1, 2]


@pytest.mark.parametrize("blocked_on", ["get", "put"])
async def test_a_waiting_worker_stops_when_told(blocked_on: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker blocked on an empty pipe (get) or a full one (put) raises Stopped once the stop
    flag is set and the pipe woken; nothing waits for the safety-net timeout (made a minute
    here, so a missing wake-up shows as a wait far beyond the bound below, whatever the load)."""
    monkeypatch.setattr(segment, "WAIT_SAFETY_NET_S", 60.0)
    stop = threading.Event()
    pipe: Pipe[int] = Pipe(1, stop)
    if blocked_on == "put":
        await pipe.aput(0)
    outcome: list[str] = []

    def wait() -> None:
        try:
            pipe.get() if blocked_on == "get" else pipe.put(1)
        except Stopped:
            outcome.append("stopped")

    async def stop_soon() -> None:
        await anyio.sleep(0.02)
        stop.set()
        pipe.wake_worker()

    start = time.monotonic()
    async with anyio.create_task_group() as group:
        group.start_soon(stop_soon)
        await anyio.to_thread.run_sync(wait)
    assert outcome == ["stopped"]
    assert time.monotonic() - start < 20


# -- an AsyncFile on one side -------------------------------------------------------------------


class _Counting:
    """Counts the awaited calls of one method of an AsyncFile instance."""

    def __init__(self, file: anyio.AsyncFile[bytes], name: str) -> None:
        self.calls = 0
        real = getattr(file, name)

        async def counted(*args: Any) -> Any:
            self.calls += 1
            return await real(*args)

        setattr(file, name, counted)


@pytest.mark.parametrize("suite", [UNSIGNED, SIGNED], ids=["unsigned", "signed"])
async def test_async_file_source_is_read_by_the_worker(suite: str, tmp_path: Path) -> None:
    """An AsyncFile source with any other sink: the worker reads the file under it, so the body
    costs no awaited read (decrypt: only the header is read on the loop)."""
    data = _data(3 * MIB + 11)
    (tmp_path / "plain").write_bytes(data)
    sink = ListSink()
    async with await anyio.open_file(tmp_path / "plain", "rb") as source:
        reads = [_Counting(source, "read"), _Counting(source, "readinto")]
        await aio.encrypt_stream(source, sink, keyring=KEYRING, algorithm=suite, frame_length=256 * 1024)
    assert sum(r.calls for r in reads) == 0
    assert envelope.decrypt(sink.value(), keyring=KEYRING)[0] == data
    (tmp_path / "sealed").write_bytes(sink.value())
    plain = ListSink()
    async with await anyio.open_file(tmp_path / "sealed", "rb") as source:
        reads = [_Counting(source, "read"), _Counting(source, "readinto")]
        await aio.decrypt_stream(source, plain, keyring=KEYRING)
    assert 1 <= sum(r.calls for r in reads) <= 2  # the header
    assert plain.value() == data


@pytest.mark.parametrize("compression", [None, "zstd"], ids=["plain", "zstd"])
async def test_async_file_sink_is_written_by_the_worker(compression: Literal["zstd"] | None, tmp_path: Path) -> None:
    """Any source with an AsyncFile sink: the worker writes the file under it, in order."""
    data = _data(2 * MIB + 5)
    async with await anyio.open_file(tmp_path / "sealed", "wb") as sink:
        writes = _Counting(sink, "write")
        await aio.encrypt_stream(agen(data, 100_000), sink, keyring=KEYRING, frame_length=65536,
                                 compression=compression)
    assert writes.calls == 0
    message = (tmp_path / "sealed").read_bytes()
    assert envelope.decrypt(message, keyring=KEYRING)[0] == data
    async with await anyio.open_file(tmp_path / "opened", "wb") as sink:
        writes = _Counting(sink, "write")
        await aio.decrypt_stream(agen(message, 70_001), sink, keyring=KEYRING)
    assert writes.calls == 0
    assert (tmp_path / "opened").read_bytes() == data


async def test_tampering_with_an_async_file_on_either_side(tmp_path: Path) -> None:
    """The worker's AuthenticationError is raised as itself; the frames released before it are
    authentic (a prefix of the plaintext)."""
    data = _data(6 * MIB + 3)
    message = bytearray(envelope.encrypt(data, keyring=KEYRING, algorithm=UNSIGNED, frame_length=65536))
    message[len(message) * 4 // 5] ^= 1  # after a few batches
    (tmp_path / "bad").write_bytes(message)
    plain = ListSink()
    async with await anyio.open_file(tmp_path / "bad", "rb") as source:
        with pytest.raises(envelope.AuthenticationError):
            await aio.decrypt_stream(source, plain, keyring=KEYRING)
    released = plain.value()
    # How much was sent before the error depends on scheduling (frames still queued for the
    # sink are dropped when the worker fails); what was sent must be authentic.
    assert len(released) < len(data)
    assert released == data[:len(released)]
    async with await anyio.open_file(tmp_path / "out", "wb") as sink:
        with pytest.raises(envelope.AuthenticationError):
            await aio.decrypt_stream(agen(bytes(message), 50_000), sink, keyring=KEYRING)


async def test_sink_error_stops_a_worker_reading_a_file(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(_data(12 * MIB))

    class FailingSink:
        calls = 0

        async def write(self, data: bytes) -> None:
            self.calls += 1
            if self.calls == 2:  # the first batch after the header
                raise BrokenPipeError("sink went away")

    before = threading.active_count()
    async with await anyio.open_file(tmp_path / "plain", "rb") as source:
        with pytest.raises(BrokenPipeError, match="sink went away"):
            await aio.encrypt_stream(source, FailingSink(), keyring=KEYRING, frame_length=65536)
    await _threads_settle(before)


async def _threads_settle(before: int) -> None:
    """No thread of ours is left running: no borrowed token, no reader thread of the sync
    pipeline, and the count comes back (idle pool threads aside)."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    assert limiter.statistics().borrowed_tokens == 0
    assert [t.name for t in threading.enumerate() if t.name.startswith("envelope-")] == []
    for _ in range(1000):  # up to 10 s: a loaded machine schedules exiting threads late
        if threading.active_count() <= before + 2:  # at most the pool threads just started
            return
        await anyio.sleep(0.01)
    raise AssertionError(f"{threading.active_count() - before} more threads than before")


@pytest.mark.parametrize("side", ["source", "sink"])
async def test_cancel_with_an_async_file_on_one_side(side: str, tmp_path: Path) -> None:
    """Cancelled mid-message with the worker reading (or writing) a file: the call returns
    promptly, raises the cancellation, and leaves no thread behind."""
    data = _data(8 * MIB)
    (tmp_path / "plain").write_bytes(data)
    writes = 0

    class CancellingSink:
        async def write(self, data: bytes) -> None:
            nonlocal writes
            writes += 1
            if writes == 3:
                scope.cancel()
            await anyio.lowlevel.checkpoint()

    async def slow_source() -> Any:
        for i in range(0, len(data), 65536):
            if i == 4 * 65536:
                scope.cancel()
            yield data[i:i + 65536]
            await anyio.lowlevel.checkpoint()

    before = threading.active_count()
    with anyio.CancelScope() as scope:
        if side == "source":
            async with await anyio.open_file(tmp_path / "plain", "rb") as source:
                await aio.encrypt_stream(source, CancellingSink(), keyring=KEYRING, frame_length=65536)
        else:
            async with await anyio.open_file(tmp_path / "out", "wb") as sink:
                await aio.encrypt_stream(slow_source(), sink, keyring=KEYRING, frame_length=65536)
    assert scope.cancelled_caught
    if side == "source":
        assert writes == 3
    else:
        assert os.path.getsize(tmp_path / "out") < len(data)  # unfinished: no final frame
        with pytest.raises(envelope.AuthenticationError):
            envelope.decrypt((tmp_path / "out").read_bytes(), keyring=KEYRING)
    await _threads_settle(before)


async def test_async_file_fifo_source_streams_frames_as_they_arrive(tmp_path: Path) -> None:
    """An AsyncFile over a FIFO: the worker's reader hands on whole frames as they arrive
    instead of waiting for a whole batch, so the sink sees sealed frames while the producer
    still holds back the rest of the input."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    frame = 65536
    data = _data(5 * frame + 3)
    frames_out = threading.Event()
    waited: list[bool] = []

    def feed() -> None:
        with open(fifo, "wb", buffering=0) as writer:
            writer.write(data[:3 * frame])
            waited.append(frames_out.wait(10))
            writer.write(data[3 * frame:])

    sink = ListSink()

    class Watching(ListSink):
        async def write(self, data: bytes) -> None:
            await sink.write(data)
            if len(sink.parts) >= 2:  # the header, then sealed frames
                frames_out.set()

    with anyio.fail_after(30):  # a driver that held sealed frames back until more input came would hang
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, feed)
            async with await anyio.open_file(fifo, "rb") as source:
                await aio.encrypt_stream(source, Watching(), keyring=KEYRING, algorithm=UNSIGNED,
                                         frame_length=frame)
    assert waited == [True]
    assert envelope.decrypt(sink.value(), keyring=KEYRING)[0] == data


async def test_batches_are_bounded_by_output_size_for_tiny_frames(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """16-byte frames carry 28 bytes of overhead each: a batch is sized by what it writes, so a
    read of BATCH_BYTES of plaintext still goes out in pieces of about BATCH_BYTES."""
    from envelope.aio import streams as streams_module

    batch = 64 * 1024
    monkeypatch.setattr(streams_module, "BATCH_BYTES", batch)
    data = _data(MIB)
    (tmp_path / "plain").write_bytes(data)
    sizes: list[int] = []

    class Recording(ListSink):
        async def write(self, data: bytes) -> None:
            sizes.append(len(data))
            await super().write(data)

    sink = Recording()
    async with await anyio.open_file(tmp_path / "plain", "rb") as source:
        await aio.encrypt_stream(source, sink, keyring=KEYRING, algorithm=UNSIGNED, frame_length=16)
    assert max(sizes) <= batch + 44
    assert envelope.decrypt(sink.value(), keyring=KEYRING)[0] == data
