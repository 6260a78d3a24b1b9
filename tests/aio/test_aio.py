"""envelope.aio round trips: every entry point, every kind of source and sink, on asyncio and trio.

Whatever the async side writes, the sync side must read, and the reverse.
"""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _aio_helpers import KEYRING, UNSIGNED, AsyncReader, ListSink, agen, through_socket

import envelope
from envelope import aio
from envelope.aio import offload as offload_module
from envelope.streaming.decryptor import MessageDecryptor
from envelope.streaming.encryptor import MessageEncryptor

pytestmark = pytest.mark.anyio

SIGNED = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"
SIZES = [0, 1, 4095, 4096, 4097, 3 * 4096 + 1]


def test_public_names_are_pinned() -> None:
    assert aio.__all__ == sorted(aio.__all__)
    assert aio.__all__ == ["AsyncDecryptor", "AsyncDefaultMaterialsManager", "AsyncEncryptor", "AsyncKeyring",
                           "AsyncMaterialsManager", "decrypt", "decrypt_file", "decrypt_range", "decrypt_stream",
                           "encrypt", "encrypt_file", "encrypt_stream"]
    assert envelope.aio is aio  # the lazy attribute of the top-level package


def _data(n: int, seed: int = 0) -> bytes:
    return random.Random(n * 7919 + seed).randbytes(n)


@pytest.mark.parametrize("n", SIZES, ids=[f"n{n}" for n in SIZES])
@pytest.mark.parametrize("suite", [UNSIGNED, SIGNED], ids=["unsigned", "signed"])
async def test_one_shot_round_trip(n: int, suite: str) -> None:
    data = _data(n)
    message = await aio.encrypt(data, keyring=KEYRING, algorithm=suite, frame_length=4096,
                                encryption_context={"purpose": "aio"})
    assert envelope.decrypt(message, keyring=KEYRING)[0] == data
    plaintext, header = await aio.decrypt(message, keyring=KEYRING)
    assert plaintext == data
    assert header.encryption_context["purpose"] == "aio"
    sync_message = envelope.encrypt(data, keyring=KEYRING, algorithm=suite, frame_length=4096)
    assert (await aio.decrypt(sync_message, keyring=KEYRING))[0] == data


async def test_one_shot_accepts_buffers_and_rejects_str() -> None:
    data = bytearray(b"buffer types")
    message = await aio.encrypt(memoryview(data), keyring=KEYRING)
    assert (await aio.decrypt(bytearray(message), keyring=KEYRING))[0] == data
    with pytest.raises(TypeError, match="str"):
        await aio.encrypt("text", keyring=KEYRING)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exactly one"):
        await aio.encrypt(b"x")


async def test_one_shot_legacy_non_framed_and_policy() -> None:
    data = _data(5000)
    message = await aio.encrypt(data, keyring=KEYRING, frame_length=0, algorithm=UNSIGNED)
    assert (await aio.decrypt(message, keyring=KEYRING))[0] == data
    legacy = envelope.encrypt(data, keyring=KEYRING, algorithm="AES_256_GCM_IV12_TAG16_HKDF_SHA256",
                              commitment_policy="FORBID_ENCRYPT_ALLOW_DECRYPT")
    with pytest.raises(envelope.PolicyError):
        await aio.decrypt(legacy, keyring=KEYRING)
    out, _ = await aio.decrypt(legacy, keyring=KEYRING, commitment_policy="REQUIRE_ENCRYPT_ALLOW_DECRYPT")
    assert out == data


# -- sources ---------------------------------------------------------------------------------


async def _memory_stream_source(data: bytes) -> Any:
    send, receive = anyio.create_memory_object_stream[bytes](100)
    async with send:
        for i in range(0, len(data), 3000):
            await send.send(data[i:i + 3000])
    return receive


async def _file_source(data: bytes, tmp_path: Path) -> Any:
    path = tmp_path / "source.bin"
    path.write_bytes(data)
    return await anyio.open_file(path, "rb")


SOURCE_KINDS = ["async-generator", "memory-object-stream", "async-read", "anyio-async-file"]


async def _source(kind: str, data: bytes, tmp_path: Path) -> Any:
    if kind == "async-generator":
        return agen(data, 777)
    if kind == "memory-object-stream":
        return await _memory_stream_source(data)
    if kind == "async-read":
        return AsyncReader(data)
    return await _file_source(data, tmp_path)


@pytest.mark.parametrize("kind", SOURCE_KINDS)
async def test_stream_sources(kind: str, tmp_path: Path) -> None:
    data = _data(50_000)
    sink = ListSink()
    source = await _source(kind, data, tmp_path)
    header = await aio.encrypt_stream(source, sink, keyring=KEYRING, frame_length=4096)
    message = sink.value()
    assert envelope.decrypt(message, keyring=KEYRING)[0] == data
    assert header.frame_length == 4096
    plain = ListSink()
    decrypted_header = await aio.decrypt_stream(await _source(kind, message, tmp_path), plain, keyring=KEYRING)
    assert plain.value() == data
    assert decrypted_header.message_id == header.message_id


async def test_byte_streams_both_ways() -> None:
    """anyio ByteReceiveStream in, ByteSendStream out (a real socket pair)."""
    data = _data(300_000)

    async def encrypt(receive: Any, send: Any) -> None:
        await aio.encrypt_stream(receive, send, keyring=KEYRING, frame_length=8192)

    async def decrypt(receive: Any, send: Any) -> None:
        await aio.decrypt_stream(receive, send, keyring=KEYRING)

    message = await through_socket(encrypt, data)
    assert envelope.decrypt(message, keyring=KEYRING)[0] == data
    assert await through_socket(decrypt, message) == data


async def test_memory_object_sink() -> None:
    data = _data(20_000)
    send, receive = anyio.create_memory_object_stream[bytes](1000)
    async with send:
        await aio.encrypt_stream(agen(data, 1000), send, keyring=KEYRING, frame_length=1024)
    async with receive:
        message = b"".join([chunk async for chunk in receive])
    assert envelope.decrypt(message, keyring=KEYRING)[0] == data


@pytest.mark.parametrize("n", SIZES, ids=[f"n{n}" for n in SIZES])
async def test_async_files_take_the_worker_path(n: int, tmp_path: Path) -> None:
    """AsyncFile to AsyncFile: the whole transform runs in one worker with the sync driver."""
    data = _data(n)
    (tmp_path / "plain").write_bytes(data)
    async with await anyio.open_file(tmp_path / "plain", "rb") as src, \
            await anyio.open_file(tmp_path / "sealed", "wb") as dst:
        await aio.encrypt_stream(src, dst, keyring=KEYRING, frame_length=4096)
    assert envelope.decrypt((tmp_path / "sealed").read_bytes(), keyring=KEYRING)[0] == data
    async with await anyio.open_file(tmp_path / "sealed", "rb") as src, \
            await anyio.open_file(tmp_path / "opened", "wb") as dst:
        await aio.decrypt_stream(src, dst, keyring=KEYRING)
    assert (tmp_path / "opened").read_bytes() == data


@pytest.mark.parametrize(("frame_length", "n"), [(1, 3001), (100, 20_003), (65536, 200_003)],
                         ids=["f1", "f100", "f64k"])
async def test_file_round_trip(frame_length: int, n: int, tmp_path: Path) -> None:
    data = _data(n)
    (tmp_path / "in").write_bytes(data)
    header = await aio.encrypt_file(tmp_path / "in", tmp_path / "in.env", keyring=KEYRING,
                                    frame_length=frame_length, encryption_context={"file": "in"})
    assert header.frame_length == frame_length
    assert envelope.decrypt((tmp_path / "in.env").read_bytes(), keyring=KEYRING)[0] == data
    opened = await aio.decrypt_file(str(tmp_path / "in.env"), str(tmp_path / "out"), keyring=KEYRING,
                                    encryption_context={"file": "in"})
    assert opened.encryption_context["file"] == "in"
    assert (tmp_path / "out").read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "in.env", "out"]  # no temp files left


async def test_file_replaces_existing_destination_and_refuses_the_input(tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(b"new contents")
    (tmp_path / "out").write_bytes(b"old")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        await aio.encrypt_file(tmp_path / "in", tmp_path / "out", keyring=KEYRING)
    assert (tmp_path / "out").read_bytes() == b"old"
    await aio.encrypt_file(tmp_path / "in", tmp_path / "out", keyring=KEYRING, overwrite=True)
    assert envelope.decrypt((tmp_path / "out").read_bytes(), keyring=KEYRING)[0] == b"new contents"
    with pytest.raises(ValueError, match="input"):
        await aio.encrypt_file(tmp_path / "in", tmp_path / "in", keyring=KEYRING, overwrite=True)
    os.link(tmp_path / "in", tmp_path / "hardlink")
    with pytest.raises(ValueError, match="input"):
        await aio.decrypt_file(tmp_path / "in", tmp_path / "hardlink", keyring=KEYRING)
    assert (tmp_path / "in").read_bytes() == b"new contents"


@pytest.mark.parametrize("source", [b"bytes", "text", [b"sync", b"list"], 42], ids=["bytes", "str", "list", "int"])
async def test_stream_rejects_sync_sources(source: Any) -> None:
    with pytest.raises(TypeError):
        await aio.encrypt_stream(source, ListSink(), keyring=KEYRING)


async def test_stream_rejects_sync_file_and_bad_chunks(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"data")
    with open(tmp_path / "f", "rb") as sync_file, pytest.raises(TypeError, match="not async"):  # noqa: ASYNC230
        await aio.encrypt_stream(sync_file, ListSink(), keyring=KEYRING)  # type: ignore[arg-type]
    with open(tmp_path / "g", "wb") as sync_sink, pytest.raises(TypeError, match="not async"):  # noqa: ASYNC230
        await aio.encrypt_stream(agen(b"data", 2), sync_sink, keyring=KEYRING)  # type: ignore[arg-type]

    async def strings() -> Any:
        yield "text"

    with pytest.raises(TypeError, match="str"):
        await aio.encrypt_stream(strings(), ListSink(), keyring=KEYRING)
    with pytest.raises(TypeError, match="sink"):
        await aio.encrypt_stream(agen(b"data", 2), object(), keyring=KEYRING)  # type: ignore[arg-type]


async def test_options_are_validated_like_sync() -> None:
    with pytest.raises(ValueError, match="envelope:"):
        await aio.encrypt_stream(agen(b"x", 1), ListSink(), keyring=KEYRING,
                                 encryption_context={"envelope:mine": "1"})
    with pytest.raises(TypeError, match="frame_length"):
        await aio.encrypt(b"x", keyring=KEYRING, frame_length="big")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await aio.encrypt(b"x", keyring=KEYRING, no_such_option=1)  # type: ignore[call-arg]
    two_keys = envelope.MultiKeyring(generator=KEYRING, children=[KEYRING])
    with pytest.raises(envelope.PolicyError):
        await aio.encrypt(b"x", keyring=two_keys, max_encrypted_data_keys=1)


async def test_concurrent_streams() -> None:
    """Many streams at once, each its own message, their worker threads running side by side."""
    results: dict[int, bytes] = {}

    async def one(i: int) -> None:
        data = _data(40_000 + i, seed=i)
        sink = ListSink()
        await aio.encrypt_stream(agen(data, 5000 + i), sink, keyring=KEYRING, frame_length=2048,
                                 encryption_context={"i": str(i)})
        plain = ListSink()
        header = await aio.decrypt_stream(agen(sink.value(), 3333), plain, keyring=KEYRING)
        assert header.encryption_context["i"] == str(i)
        results[i] = plain.value()

    async with anyio.create_task_group() as group:
        for i in range(12):
            group.start_soon(one, i)
    assert results == {i: _data(40_000 + i, seed=i) for i in range(12)}


@pytest.mark.parametrize("threshold", [1, 1 << 40], ids=["always-offload", "never-offload"])
@pytest.mark.parametrize("suite", [UNSIGNED, "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384",
                                   "AES_256_GCM_IV12_TAG16"], ids=["unsigned", "signed", "legacy"])
async def test_offload_and_inline_give_the_same_messages(threshold: int, suite: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offload_module, "OFFLOAD_BYTES", threshold)
    policy = "FORBID_ENCRYPT_ALLOW_DECRYPT" if suite == "AES_256_GCM_IV12_TAG16" else None
    allow = "REQUIRE_ENCRYPT_ALLOW_DECRYPT" if policy else None
    for frame_length in (0, 1000):
        data = _data(7000)
        sink = ListSink()
        await aio.encrypt_stream(agen(data, 999), sink, keyring=KEYRING, algorithm=suite,
                                 frame_length=frame_length, commitment_policy=policy)
        assert envelope.decrypt(sink.value(), keyring=KEYRING, commitment_policy=allow)[0] == data
        plain = ListSink()
        await aio.decrypt_stream(agen(sink.value(), 1500), plain, keyring=KEYRING, commitment_policy=allow)
        assert plain.value() == data
        # The one-shots offload by the threshold (streams always use their worker thread).
        message = await aio.encrypt(data, keyring=KEYRING, algorithm=suite, frame_length=frame_length,
                                    commitment_policy=policy)
        assert (await aio.decrypt(message, keyring=KEYRING, commitment_policy=allow))[0] == data


async def test_frames_are_sealed_and_opened_off_the_loop_in_one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the frame length, a stream's crypto runs in one worker thread, never on the
    loop thread (the loop only reads and writes)."""
    seal_threads: dict[int, set[int]] = {}
    open_threads: dict[int, set[int]] = {}
    real_seal, real_update_into = MessageEncryptor.seal_frame_into, MessageDecryptor.update_into

    def seal(self: MessageEncryptor, plaintext: Any, out: Any) -> int:
        seal_threads.setdefault(self.frame_length, set()).add(threading.get_ident())
        return real_seal(self, plaintext, out)

    def update_into(self: MessageDecryptor, data: Any, out: Any) -> int:
        n = real_update_into(self, data, out)
        if n and self.header is not None:
            open_threads.setdefault(self.header.frame_length, set()).add(threading.get_ident())
        return n

    monkeypatch.setattr(MessageEncryptor, "seal_frame_into", seal)
    monkeypatch.setattr(MessageDecryptor, "update_into", update_into)
    loop_thread = threading.get_ident()
    for frame_length in (4096, 1 << 20):
        data = _data(3 * frame_length + 5)
        sink = ListSink()
        await aio.encrypt_stream(agen(data, frame_length), sink, keyring=KEYRING, algorithm=UNSIGNED,
                                 frame_length=frame_length)
        plain = ListSink()
        await aio.decrypt_stream(agen(sink.value(), frame_length + 32), plain, keyring=KEYRING)
        assert plain.value() == data
    for threads in (seal_threads, open_threads):
        assert set(threads) == {4096, 1 << 20}
        for frame_threads in threads.values():
            assert len(frame_threads) == 1
            assert loop_thread not in frame_threads


async def test_slow_producer_with_tiny_chunks() -> None:
    data = _data(10_000)

    async def trickle() -> Any:
        rnd = random.Random(5)
        pos = 0
        while pos < len(data):
            n = rnd.choice([1, 2, 3, 17, 500])
            yield data[pos:pos + n]
            pos += n
            await anyio.lowlevel.checkpoint()

    sink = ListSink()
    await aio.encrypt_stream(trickle(), sink, keyring=KEYRING, frame_length=64)
    message = sink.value()
    plain = ListSink()
    await aio.decrypt_stream(agen(message, 1), plain, keyring=KEYRING)  # one byte at a time
    assert plain.value() == data


async def test_source_and_sink_errors_surface_as_themselves() -> None:
    """The driver's reader and writer tasks do not wrap errors in exception groups."""

    async def failing_source() -> Any:
        yield b"x" * 5000
        raise ConnectionResetError("source went away")

    with pytest.raises(ConnectionResetError, match="source went away"):
        await aio.encrypt_stream(failing_source(), ListSink(), keyring=KEYRING, frame_length=1024)

    class FailingSink:
        async def write(self, data: bytes) -> None:
            raise BrokenPipeError("sink went away")

    with pytest.raises(BrokenPipeError, match="sink went away"):
        await aio.encrypt_stream(agen(b"x" * 5000, 100), FailingSink(), keyring=KEYRING, frame_length=1024)
    for compression in (None, "zstd"):  # zstd: the failure reaches a worker blocked on the writer
        message = envelope.encrypt(_data(50_000), keyring=KEYRING, frame_length=1024, compression=compression)
        with pytest.raises(BrokenPipeError, match="sink went away"):
            await aio.decrypt_stream(agen(message, 100), FailingSink(), keyring=KEYRING)
