"""`AsyncEncryptor` / `AsyncDecryptor`: the async mirrors of `envelope.Encryptor` / `Decryptor`."""

from __future__ import annotations

import random
import threading
from typing import Any

import anyio
import pytest
from _aio_helpers import KEYRING, UNSIGNED, AsyncReader, ListSink, NativeAsyncKeyring, agen

import envelope
from envelope import aio
from envelope.format.body import FRAME_OVERHEAD
from envelope.format.header import parse_header
from envelope.streaming.batcher import FrameSealer
from envelope.streaming.gatherer import FrameOpener

pytestmark = pytest.mark.anyio

SIGNED = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"
WRITES = [[], [b""], [b"a"], [b"x" * 4095, b"y"], [b"z" * 10_000], [b"p" * 100] * 50]


def _data(n: int) -> bytes:
    return random.Random(n).randbytes(n)


@pytest.mark.parametrize("writes", WRITES, ids=["none", "empty", "one", "straddle", "big", "many"])
@pytest.mark.parametrize("suite", [UNSIGNED, SIGNED], ids=["unsigned", "signed"])
async def test_async_encryptor_writes_a_message_the_sync_side_reads(writes: list[bytes], suite: str) -> None:
    sink = ListSink()
    async with aio.AsyncEncryptor(sink, keyring=KEYRING, algorithm=suite, frame_length=4096,
                                  encryption_context={"f": "obj"}) as encryptor:
        for piece in writes:
            assert await encryptor.awrite(bytearray(piece)) == len(piece)
        assert encryptor.header.encryption_context["f"] == "obj"
    plaintext, header = envelope.decrypt(sink.value(), keyring=KEYRING)
    assert plaintext == b"".join(writes)
    assert header.message_id == encryptor.header.message_id
    with pytest.raises(ValueError, match="closed"):
        await encryptor.awrite(b"more")


async def test_async_encryptor_leaves_the_message_unfinished_on_error() -> None:
    sink = ListSink()
    with pytest.raises(RuntimeError, match="boom"):
        async with aio.AsyncEncryptor(sink, keyring=KEYRING, frame_length=100) as encryptor:
            await encryptor.awrite(b"x" * 1000)
            raise RuntimeError("boom")
    assert sink.value()  # the header and whole frames went out ...
    with pytest.raises(envelope.AuthenticationError, match="truncated"):
        envelope.decrypt(sink.value(), keyring=KEYRING)  # ... but never the final frame


async def test_async_encryptor_without_context_manager_and_with_async_keyring() -> None:
    keyring = NativeAsyncKeyring()
    sink = ListSink()
    encryptor = aio.AsyncEncryptor(sink, keyring=keyring, compression="zstd")
    with pytest.raises(ValueError, match="not started"):
        encryptor.header  # noqa: B018
    await encryptor.awrite(b"compress me " * 1000)
    await encryptor.aclose()
    await encryptor.aclose()  # idempotent
    assert envelope.decrypt(sink.value(), keyring=KEYRING)[0] == b"compress me " * 1000
    assert len(keyring.threads) == 1
    with pytest.raises(TypeError):
        aio.AsyncEncryptor(sink)  # neither keyring nor materials manager


@pytest.mark.parametrize("n", [0, 1, 4095, 4096, 4097, 50_000], ids=lambda n: f"n{n}")
@pytest.mark.parametrize("suite", [UNSIGNED, SIGNED], ids=["unsigned", "signed"])
async def test_async_decryptor_reads_what_sync_wrote(n: int, suite: str) -> None:
    data = _data(n)
    message = envelope.encrypt(data, keyring=KEYRING, algorithm=suite, frame_length=4096,
                               encryption_context={"k": "v"})
    async with aio.AsyncDecryptor(AsyncReader(message, most=3000), keyring=KEYRING) as decryptor:
        assert decryptor.header.encryption_context["k"] == "v"
        parts = []
        while chunk := await decryptor.aread(1000):
            assert len(chunk) <= 1000
            parts.append(chunk)
        assert await decryptor.aread(0) == b""
    assert b"".join(parts) == data
    with pytest.raises(ValueError, match="closed"):
        await decryptor.aread()
    whole = aio.AsyncDecryptor(agen(message, 777), keyring=KEYRING)
    assert await whole.aread() == data
    await whole.aclose()


async def test_async_decryptor_decompresses_and_refuses_tampering() -> None:
    data = b"squeeze " * 20_000
    message = envelope.encrypt(data, keyring=KEYRING, compression="zstd", frame_length=1024)
    async with aio.AsyncDecryptor(agen(message, 500), keyring=KEYRING) as decryptor:
        assert await decryptor.aread() == data
    tampered = bytearray(envelope.encrypt(_data(10_000), keyring=KEYRING, algorithm=UNSIGNED, frame_length=1024))
    tampered[-100] ^= 1
    decryptor = aio.AsyncDecryptor(agen(bytes(tampered), 4096), keyring=KEYRING)
    with pytest.raises(envelope.AuthenticationError):
        await decryptor.aread()
    truncated = envelope.encrypt(_data(10_000), keyring=KEYRING, algorithm=UNSIGNED, frame_length=1024)[:-50]
    with pytest.raises(envelope.AuthenticationError, match="truncated"):
        await aio.AsyncDecryptor(agen(truncated, 4096), keyring=KEYRING).aread()


async def test_file_objects_over_a_memory_stream() -> None:
    data = _data(30_000)
    send, receive = anyio.create_memory_object_stream[bytes](1000)
    async with send, aio.AsyncEncryptor(send, keyring=KEYRING, frame_length=2048) as encryptor:
        await encryptor.awrite(data)
    async with receive, aio.AsyncDecryptor(receive, keyring=KEYRING) as decryptor:
        assert await decryptor.aread() == data


# -- the building blocks under the file objects (issue 15 item 3) ----------------------------------

FRAME = 4096
# Sizes around the frame length, a batch of frames, and one byte.
SIZES = [1, 100, FRAME - 1, FRAME, FRAME + 1, 3 * FRAME + 5, 70_000]


@pytest.mark.parametrize("size", SIZES, ids=lambda n: f"w{n}")
@pytest.mark.parametrize("kind", ["bytes", "reused-bytearray", "memoryview"])
@pytest.mark.parametrize("suite", [UNSIGNED, SIGNED], ids=["unsigned", "signed"])
async def test_awrite_sizes_do_not_change_the_plaintext(size: int, kind: str, suite: str) -> None:
    """Any split of the writes gives the same plaintext; a caller that refills its buffer as
    soon as awrite returns (allowed) does not change what was encrypted."""
    data = _data(5 * FRAME + 123)
    sink = ListSink()
    scratch = bytearray(size)
    async with aio.AsyncEncryptor(sink, keyring=KEYRING, algorithm=suite, frame_length=FRAME) as encryptor:
        for i in range(0, len(data), size):
            piece = data[i:i + size]
            if kind == "bytes":
                await encryptor.awrite(piece)
            else:
                scratch[:len(piece)] = piece
                view = memoryview(scratch)[:len(piece)]
                await encryptor.awrite(view if kind == "memoryview" else bytearray(view))
                scratch[:] = b"\xee" * size  # reused at once
    assert envelope.decrypt(sink.value(), keyring=KEYRING)[0] == data


@pytest.mark.parametrize("read", [1, 999, FRAME, FRAME + 1, 50_000, -1], ids=lambda n: f"r{n}")
@pytest.mark.parametrize("chunk", [1000, FRAME + 32, 100_000], ids=lambda n: f"c{n}")
@pytest.mark.parametrize("suite", [UNSIGNED, SIGNED], ids=["unsigned", "signed"])
async def test_aread_sizes_and_source_chunks_do_not_change_the_plaintext(read: int, chunk: int, suite: str) -> None:
    data = _data(7 * FRAME + 77)
    message = envelope.encrypt(data, keyring=KEYRING, algorithm=suite, frame_length=FRAME)
    async with aio.AsyncDecryptor(agen(message, chunk), keyring=KEYRING) as decryptor:
        parts = []
        while part := await decryptor.aread(read):
            assert read < 0 or len(part) <= read
            parts.append(part)
        assert decryptor.tell() == len(data)
    assert b"".join(parts) == data


def _flip(message: bytes, position: int) -> bytes:
    damaged = bytearray(message)
    damaged[position] ^= 1
    return bytes(damaged)


@pytest.mark.parametrize("where", ["header", "first-frame", "middle-frame", "final-frame", "signature",
                                   "truncated", "trailing"])
@pytest.mark.parametrize("source", ["stream", "bytes"])
async def test_tampering_in_reads_in_order_is_refused_and_stays(where: str, source: str) -> None:
    """Nothing of a tampered frame (or, signed, of the final frame before the signature verifies)
    is returned; what came before it is authentic; the decryptor stays failed."""
    data = _data(6 * FRAME)
    message = envelope.encrypt(data, keyring=KEYRING, algorithm=SIGNED, frame_length=FRAME)
    header_length = parse_header(message).length
    unit = FRAME + FRAME_OVERHEAD
    positions = {"header": header_length - 5, "first-frame": header_length + 100,
                 "middle-frame": header_length + 3 * unit + 100, "final-frame": header_length + 5 * unit + 100,
                 "signature": len(message) - 5}
    if where == "truncated":
        damaged = message[:-30]
    elif where == "trailing":
        damaged = message + b"\x00"
    else:
        damaged = _flip(message, positions[where])
    decryptor = aio.AsyncDecryptor(agen(damaged, 3000) if source == "stream" else damaged, keyring=KEYRING)
    got = bytearray()
    with pytest.raises(envelope.AuthenticationError):
        while part := await decryptor.aread(1000):
            got += part
    assert data.startswith(got)
    assert len(got) <= {"header": 0, "first-frame": 0, "middle-frame": 3 * FRAME}.get(where, 5 * FRAME)
    for _ in range(2):
        with pytest.raises(envelope.AuthenticationError):
            await decryptor.aread(1)


async def test_a_cancelled_aread_loses_nothing() -> None:
    """Cancel reads where they wait (the source's read, the hop to a worker thread to open what
    was read): the reads after each still return the plaintext in order."""
    frame = 1024 * 1024  # frames large enough to be opened in a worker thread
    data = _data(3 * frame + 5)
    message = envelope.encrypt(data, keyring=KEYRING, algorithm=UNSIGNED, frame_length=frame)
    # Sources that do not wait themselves: the cancellation lands on the hop to the worker.
    for source in (agen(message, 700_000), message, AsyncReader(message, most=300_000)):
        decryptor = aio.AsyncDecryptor(source, keyring=KEYRING)
        got = bytearray()
        cancelled = 0
        while True:
            with anyio.CancelScope() as scope:
                scope.cancel()
                got += await decryptor.aread(frame)  # a frame: nothing is left ready, the next read waits
            cancelled += scope.cancelled_caught
            part = await decryptor.aread(frame)
            if not part:
                break
            got += part
        assert bytes(got) == data
        assert cancelled >= 3


async def test_a_failed_or_cancelled_awrite_fails_the_encryptor() -> None:
    class FailingSink(ListSink):
        async def write(self, data: bytes) -> None:
            if sum(map(len, self.parts)) > 10_000:
                raise OSError(28, "No space left on device")
            await super().write(data)

    encryptor = aio.AsyncEncryptor(FailingSink(), keyring=KEYRING, algorithm=UNSIGNED, frame_length=FRAME)
    with pytest.raises(OSError):
        for _ in range(10):
            await encryptor.awrite(_data(FRAME))
    for call in (encryptor.awrite(b"x"), encryptor.aclose()):
        with pytest.raises(OSError):
            await call
    cancelled = aio.AsyncEncryptor(ListSink(), keyring=KEYRING, algorithm=UNSIGNED, frame_length=FRAME)
    await cancelled.awrite(b"start")
    with anyio.CancelScope() as scope:
        scope.cancel()
        await cancelled.awrite(_data(4 * FRAME))
    with pytest.raises(ValueError, match="interrupted"):
        await cancelled.aclose()


async def test_large_frames_are_sealed_and_opened_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []
    seal, open_ = FrameSealer.seal, FrameOpener.open

    def sealing(self: FrameSealer, count: int) -> Any:
        threads.append(threading.get_ident())
        return seal(self, count)

    def opening(self: FrameOpener, *chunks: Any) -> Any:
        threads.append(threading.get_ident())
        return open_(self, *chunks)

    monkeypatch.setattr(FrameSealer, "seal", sealing)
    monkeypatch.setattr(FrameOpener, "open", opening)
    data = _data(4 * 1024 * 1024)
    sink = ListSink()
    async with aio.AsyncEncryptor(sink, keyring=KEYRING, algorithm=UNSIGNED, frame_length=1024 * 1024) as encryptor:
        await encryptor.awrite(data)
    sealed, threads[:] = list(threads), []
    async with aio.AsyncDecryptor(sink.value(), keyring=KEYRING) as decryptor:
        assert await decryptor.aread() == data
    assert sealed and loop_thread not in sealed
    assert threads and loop_thread not in [t for t in threads[1:]]  # (the first: the bytes with the header)


async def test_write_sinks_get_reused_views_and_send_sinks_get_bytes() -> None:
    seen: list[type] = []

    class Sink:
        async def write(self, data: Any) -> None:
            seen.append(type(data))

    async with aio.AsyncEncryptor(Sink(), keyring=KEYRING, algorithm=UNSIGNED, frame_length=FRAME) as encryptor:
        await encryptor.awrite(_data(10 * FRAME))
    assert memoryview in seen
    send, receive = anyio.create_memory_object_stream[bytes](100)
    async with send, aio.AsyncEncryptor(send, keyring=KEYRING, algorithm=UNSIGNED, frame_length=FRAME) as encryptor:
        await encryptor.awrite(_data(10 * FRAME))
    async with receive:
        assert all(type(item) is bytes for item in receive._state.buffer)


async def test_declared_length_takes_the_general_path() -> None:
    data = _data(3 * FRAME)
    sink = ListSink()
    async with aio.AsyncEncryptor(sink, keyring=KEYRING, frame_length=FRAME, plaintext_length=len(data)) as encryptor:
        await encryptor.awrite(data[:FRAME])
        await encryptor.awrite(bytearray(data[FRAME:]))
        with pytest.raises(ValueError, match="plaintext_length"):
            await encryptor.awrite(b"one too many")
    assert envelope.decrypt(sink.value(), keyring=KEYRING)[0] == data
