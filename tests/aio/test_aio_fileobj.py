"""`AsyncEncryptor` / `AsyncDecryptor`: the async mirrors of `envelope.Encryptor` / `Decryptor`."""

from __future__ import annotations

import random

import anyio
import pytest
from _aio_helpers import KEYRING, UNSIGNED, AsyncReader, ListSink, NativeAsyncKeyring, agen

import envelope
from envelope import aio

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
