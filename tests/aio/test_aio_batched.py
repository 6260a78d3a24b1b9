"""The batched stream path of envelope.aio: several frames per thread hop, chunks sealed and
opened without copies, reused read buffers, and output buffers lent to file-like sinks only
while nothing else holds them."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from _aio_helpers import KEYRING, UNSIGNED, ListSink, agen

import envelope
from envelope import aio
from envelope.aio import streams as streams_module
from envelope.errors import AuthenticationError
from envelope.format.body import FRAME_OVERHEAD
from envelope.streaming import limits
from envelope.streaming.batcher import FrameSealer
from envelope.streaming.buffers import Outputs
from envelope.streaming.decryptor import MessageDecryptor
from envelope.streaming.gatherer import FrameOpener
from envelope.streaming.session import new_decryptor, new_encryptor, resolve_materials_manager, supply

pytestmark = pytest.mark.anyio

SIGNED = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"
FRAME = 1024


def _data(n: int, seed: int = 0) -> bytes:
    return random.Random(n * 31 + seed).randbytes(n)


# -- FrameSealer --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, FRAME - 1, FRAME, FRAME + 1, 5 * FRAME, 5 * FRAME + 7],
                         ids=lambda n: f"n{n}")
@pytest.mark.parametrize("cut", ["frames", "bytes-1", "odd", "one-chunk"])
def test_sealer_matches_the_message_format(n: int, cut: str) -> None:
    data = _data(n)
    sizes = {"frames": FRAME, "bytes-1": 1, "odd": 333, "one-chunk": max(n, 1)}[cut]
    session = new_encryptor(keyring=KEYRING, algorithm=UNSIGNED, frame_length=FRAME)
    sealer = FrameSealer(session.encryptor, Outputs(lend=False))
    out = [session.encryptor.take_header()]
    for i in range(0, n, sizes):
        sealer.hold(data[i:i + sizes])
        if sealer.ready:
            out.append(bytes(sealer.seal(sealer.ready)))
        assert 0 < sealer.held <= FRAME  # the last frame is held back until finish
    out.append(bytes(sealer.finish()))
    plaintext, header = envelope.decrypt(b"".join(out), keyring=KEYRING)
    assert plaintext == data
    assert header.frame_length == FRAME


def test_sealer_copies_buffers_it_does_not_own_and_releases_lent_ones_after_sealing() -> None:
    session = new_encryptor(keyring=KEYRING, algorithm=UNSIGNED, frame_length=FRAME)
    released: list[Any] = []
    sealer = FrameSealer(session.encryptor, Outputs(lend=False), released.append)
    data = _data(3 * FRAME + 10)
    mutable = bytearray(data[:FRAME + 10])
    sealer.hold(mutable)  # a producer's buffer: copied, so changing it later cannot matter
    mutable[:] = bytes(len(mutable))
    lent = memoryview(bytearray(data[FRAME + 10:]))
    sealer.hold(lent, owned=True)  # lent: held by reference, handed back once sealed
    assert released == []
    out = [session.encryptor.take_header(), bytes(sealer.seal(2))]
    assert released == []  # its last bytes are still held
    out.append(bytes(sealer.finish()))
    assert released == [lent]
    assert envelope.decrypt(b"".join(out), keyring=KEYRING)[0] == data


# -- lent output buffers ------------------------------------------------------------------------


class KeepingSink:
    """Breaks the write contract on purpose: keeps what it was given, as given."""

    def __init__(self, keep: str) -> None:
        self.keep = keep
        self.kept: list[Any] = []

    async def write(self, data: Any) -> None:
        await anyio.lowlevel.checkpoint()
        if self.keep == "view":
            self.kept.append(data)
        elif self.keep == "slice":
            self.kept.append(data[:])
        else:
            self.kept.append(memoryview(data).cast("B"))

    def value(self) -> bytes:
        return b"".join(bytes(k) for k in self.kept)


# -- FrameOpener --------------------------------------------------------------------------------

UNIT = FRAME + FRAME_OVERHEAD


def _opener_for(message: bytes, header_read: int) -> tuple[MessageDecryptor, FrameOpener, list[int], bytes]:
    """A decryptor given the first ``header_read`` bytes and its materials (as the driver's
    header read leaves it), a gathering opener, the lengths fed to the decryptor from then on,
    and the rest of the message."""
    decryptor, _ = new_decryptor()
    decryptor.update(message[:header_read])
    supply(decryptor, resolve_materials_manager(KEYRING, None))
    fed: list[int] = []
    real = decryptor.update_into

    def spy(data: Any, out: Any) -> int:
        fed.append(len(memoryview(data)))
        return real(data, out)

    decryptor.update_into = spy  # type: ignore[method-assign]
    return decryptor, FrameOpener(decryptor, Outputs(lend=False), UNIT), fed, message[header_read:]


@pytest.mark.parametrize("suite", [UNSIGNED, SIGNED], ids=["unsigned", "signed"])
@pytest.mark.parametrize("n", [0, 1, FRAME - 1, FRAME, FRAME + 1, 7 * FRAME, 7 * FRAME + 5], ids=lambda n: f"n{n}")
@pytest.mark.parametrize("cut", [1, 333, UNIT - 1, UNIT, UNIT + 1, 4 * UNIT + 7, 1 << 20], ids=lambda c: f"cut{c}")
def test_opener_feeds_whole_frames_whatever_the_chunks(suite: str, n: int, cut: int) -> None:
    """Chunks that split frames anywhere: the plaintext is the message's, and the decryptor is
    fed whole frames (so it never copies one): after the piece that completes the frame the
    header read began, every piece but the last (in finish) is a multiple of the frame."""
    data = _data(n)
    message = envelope.encrypt(data, keyring=KEYRING, algorithm=suite, frame_length=FRAME)
    decryptor, opener, fed, body = _opener_for(message, 600)
    out = [bytes(opener.start())]
    due = decryptor.size_hint()
    fed.clear()
    for i in range(0, len(body), cut):
        out.append(bytes(opener.open(body[i:i + cut])))
    pieces = [size for size in fed if size]
    out.append(bytes(opener.finish()))
    decryptor.finalize()
    assert b"".join(out) == data
    if 0 < due < UNIT and pieces:
        assert pieces[0] % UNIT == due % UNIT
        pieces = pieces[1:]
    assert all(size % UNIT == 0 for size in pieces), pieces


@pytest.mark.parametrize("damage", ["truncated", "trailing", "trailing-after-header-read"])
def test_opener_still_refuses_truncation_and_trailing_data(damage: str) -> None:
    """Gathered bytes still reach the decryptor: in finish at the latest, also when the header's
    read already held the whole message and only trailing bytes follow."""
    n = 9 if damage == "trailing-after-header-read" else 5 * FRAME + 9
    message = envelope.encrypt(_data(n), keyring=KEYRING, algorithm=UNSIGNED, frame_length=FRAME)
    header_read = 600
    if damage == "truncated":
        message = message[:-UNIT // 2]
    else:
        header_read = len(message) if damage == "trailing-after-header-read" else header_read
        message += b"x" * 5
    decryptor, opener, _, body = _opener_for(message, header_read)
    opener.start()
    with pytest.raises(AuthenticationError):
        for i in range(0, len(body), 700):
            opener.open(body[i:i + 700])
        opener.finish()
        decryptor.finalize()


@pytest.mark.parametrize("keep", ["view", "slice", "cast"])
async def test_a_sink_that_keeps_what_it_was_lent_still_gets_intact_bytes(keep: str) -> None:
    data = _data(20 * FRAME + 3)
    sink = KeepingSink(keep)
    await aio.encrypt_stream(agen(data, 3 * FRAME), sink, keyring=KEYRING, algorithm=UNSIGNED, frame_length=FRAME)
    assert envelope.decrypt(sink.value(), keyring=KEYRING)[0] == data
    plain = KeepingSink(keep)
    await aio.decrypt_stream(agen(sink.value(), 3 * (FRAME + 32)), plain, keyring=KEYRING)
    assert plain.value() == data


def test_outputs_reuse_a_buffer_only_when_nothing_holds_it() -> None:
    outputs = Outputs(lend=True)
    first = outputs.take(100)
    first[:5] = b"hello"
    view = outputs.result(first, 5)
    kept = view[1:3]
    outputs.give_back(view)
    del view
    for _ in range(4):  # later writes let the first view be looked at
        data = outputs.result(outputs.take(100), 10)
        outputs.give_back(data)
        del data
    assert all(buffer is not first for buffer in outputs._free)
    assert bytes(kept) == b"el"
    copies = Outputs(lend=False)
    buffer = copies.take(10)
    assert type(copies.result(buffer, 3)) is bytes
    assert copies.take(10) is buffer  # free again at once


async def test_send_style_sinks_get_bytes_and_write_style_sinks_get_views() -> None:
    data = _data(10 * FRAME)
    send, receive = anyio.create_memory_object_stream[Any](100)
    async with send:
        await aio.encrypt_stream(agen(data, 4 * FRAME), send, keyring=KEYRING, frame_length=FRAME)
    async with receive:
        items = [item async for item in receive]
    assert {type(item) for item in items} == {bytes}
    assert envelope.decrypt(b"".join(items), keyring=KEYRING)[0] == data

    types: set[type] = set()

    class TypeSink(ListSink):
        async def write(self, data: bytes) -> None:
            types.add(type(data))
            await super().write(data)

    sink = TypeSink()
    await aio.encrypt_stream(agen(data, 4 * FRAME), sink, keyring=KEYRING, frame_length=FRAME)
    assert memoryview in types
    assert envelope.decrypt(sink.value(), keyring=KEYRING)[0] == data


# -- batching and reads ---------------------------------------------------------------------------


async def test_thread_hops_do_not_grow_with_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """64 frames in 4-frame chunks: the crypto runs in one worker thread for the whole stream,
    so the stream costs the same few thread hops (materials, the worker) as a short one."""
    monkeypatch.setattr(streams_module, "BATCH_BYTES", 4 * FRAME)
    monkeypatch.setattr(streams_module, "DECRYPT_BATCH_BYTES", 4 * FRAME)
    hops: list[str] = []
    real = anyio.to_thread.run_sync

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(fn, "__name__", ""))
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    for frames in (2, 64):
        data = _data(frames * FRAME)
        sink = ListSink()
        hops.clear()
        await aio.encrypt_stream(agen(data, 4 * FRAME), sink, keyring=KEYRING, algorithm=UNSIGNED,
                                 frame_length=FRAME)
        assert len(hops) <= 2, hops  # the keyring call, the worker
        plain = ListSink()
        hops.clear()
        await aio.decrypt_stream(agen(sink.value(), 4 * (FRAME + 32)), plain, keyring=KEYRING)
        assert plain.value() == data
        assert len(hops) <= 2, hops


class RecordingFile:
    """An async file-like source with ``read`` and ``readinto`` that records read sizes."""

    def __init__(self, data: bytes, most: int | None = None) -> None:
        self._data = memoryview(data)
        self._most = most
        self.sizes: list[int] = []
        self.buffers: set[int] = set()

    async def read(self, n: int = -1) -> bytes:  # pragma: no cover - readinto is preferred
        raise AssertionError("read() used although readinto() exists")

    async def readinto(self, buffer: Any) -> int:
        await anyio.lowlevel.checkpoint()
        self.sizes.append(len(buffer))
        self.buffers.add(id(memoryview(buffer).obj))
        n = min(len(buffer), len(self._data), self._most or len(buffer))
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


@pytest.mark.parametrize("suite", [UNSIGNED, SIGNED], ids=["unsigned", "signed"])
async def test_readinto_sources_reuse_buffers_and_decrypt_reads_whole_frames(
        suite: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams_module, "BATCH_BYTES", 4 * FRAME)
    monkeypatch.setattr(streams_module, "DECRYPT_BATCH_BYTES", 4 * FRAME)
    data = _data(40 * FRAME + 5)
    source = RecordingFile(data)
    sink = ListSink()
    await aio.encrypt_stream(source, sink, keyring=KEYRING, algorithm=suite, frame_length=FRAME)
    assert envelope.decrypt(sink.value(), keyring=KEYRING)[0] == data
    assert len(source.sizes) >= 10
    # A few reused buffers, not one per read: one being read, ASYNC_PIPE_DEPTH in the pipe to the worker,
    # two held by the sealer (its held-back frame may straddle them).
    assert len(source.buffers) <= limits.ASYNC_PIPE_DEPTH + 3
    message = RecordingFile(sink.value())
    plain = ListSink()
    await aio.decrypt_stream(message, plain, keyring=KEYRING)
    assert plain.value() == data
    unit = FRAME + 32
    # After the header and the read that completes the first frame: whole frames per read.
    assert len(message.sizes) >= 10
    assert {size % unit for size in message.sizes[2:]} == {0}


async def test_short_reads_and_one_byte_chunks_still_round_trip() -> None:
    data = _data(9 * FRAME + 1)
    sink = ListSink()
    await aio.encrypt_stream(RecordingFile(data, most=777), sink, keyring=KEYRING, frame_length=FRAME)
    plain = ListSink()
    await aio.decrypt_stream(RecordingFile(sink.value(), most=1), plain, keyring=KEYRING)
    assert plain.value() == data


async def test_producer_reusing_its_buffer_is_safe() -> None:
    """A producer that refills one bytearray for every chunk: held bytes must be copies."""
    data = _data(10 * FRAME + 17)

    async def reusing() -> AsyncIterator[bytearray]:
        buffer = bytearray(700)
        for i in range(0, len(data), 700):
            piece = data[i:i + 700]
            buffer[:len(piece)] = piece
            yield buffer if len(piece) == 700 else bytearray(piece)
            buffer[:] = bytes(700)  # scribbled over once the consumer has it

    sink = ListSink()
    await aio.encrypt_stream(reusing(), sink, keyring=KEYRING, frame_length=FRAME)
    assert envelope.decrypt(sink.value(), keyring=KEYRING)[0] == data


async def test_anyio_file_source_with_a_generic_sink(tmp_path: Path) -> None:
    data = _data(3 * 1024 * 1024 + 11)
    (tmp_path / "plain").write_bytes(data)
    sink = ListSink()
    async with await anyio.open_file(tmp_path / "plain", "rb") as source:
        await aio.encrypt_stream(source, sink, keyring=KEYRING, algorithm=UNSIGNED)
    (tmp_path / "sealed").write_bytes(sink.value())
    plain = ListSink()
    async with await anyio.open_file(tmp_path / "sealed", "rb") as source:
        await aio.decrypt_stream(source, plain, keyring=KEYRING)
    assert plain.value() == data


async def test_text_mode_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("text")
    async with await anyio.open_file(tmp_path / "t", "r") as source:
        with pytest.raises(TypeError, match="str"):
            await aio.encrypt_stream(source, ListSink(), keyring=KEYRING)  # type: ignore[arg-type]


@pytest.mark.parametrize(("frame_length", "n"), [(64 * 1024 * 1024, 1000), (5 * 1024 * 1024, 11 * 1024 * 1024 + 3)],
                         ids=["claimed-64MiB", "real-5MiB"])
async def test_reads_do_not_follow_a_huge_frame_length(frame_length: int, n: int) -> None:
    """A header may claim 64 MiB frames for a tiny message: read sizes stay capped (§9)."""
    data = _data(n)
    message = envelope.encrypt(data, keyring=KEYRING, algorithm=UNSIGNED, frame_length=frame_length)
    source = RecordingFile(message)
    plain = ListSink()
    await aio.decrypt_stream(source, plain, keyring=KEYRING)
    assert plain.value() == data
    assert max(source.sizes) <= 4 * 1024 * 1024 + 32
