"""Keyrings, byte sources and sinks shared by the envelope.aio tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import SocketStream

import envelope
from envelope.format.header import EncryptedDataKey
from envelope.materials.materials import DecryptionMaterials, EncryptionMaterials

KEYRING = envelope.RawAESKeyring("aio-ns", "aio-key", bytes(range(32)))
OTHER_KEYRING = envelope.RawAESKeyring("aio-ns", "other-key", bytes(range(1, 33)))
UNSIGNED = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY"



class RecordingKeyring:
    """A sync keyring that records the thread of every call (KMS-like: it could block)."""

    def __init__(self, inner: envelope.Keyring = KEYRING) -> None:
        self.inner = inner
        self.threads: list[int] = []

    def on_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
        self.threads.append(threading.get_ident())
        return self.inner.on_encrypt(materials)

    def on_decrypt(self, materials: DecryptionMaterials,
                   encrypted_data_keys: Sequence[EncryptedDataKey]) -> DecryptionMaterials:
        self.threads.append(threading.get_ident())
        return self.inner.on_decrypt(materials, encrypted_data_keys)


class NativeAsyncKeyring:
    """An async-only keyring (no on_encrypt/on_decrypt): it can only work if it is awaited."""

    def __init__(self, inner: envelope.Keyring = KEYRING) -> None:
        self.inner = inner
        self.threads: list[int] = []

    async def aon_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
        await anyio.lowlevel.checkpoint()  # a real await: fails unless run as a coroutine on the loop
        self.threads.append(threading.get_ident())
        return self.inner.on_encrypt(materials)

    async def aon_decrypt(self, materials: DecryptionMaterials,
                          encrypted_data_keys: Sequence[EncryptedDataKey]) -> DecryptionMaterials:
        await anyio.lowlevel.checkpoint()
        self.threads.append(threading.get_ident())
        return self.inner.on_decrypt(materials, encrypted_data_keys)


class NativeAsyncManager:
    """An async-only materials manager over the default one."""

    def __init__(self, keyring: envelope.Keyring = KEYRING) -> None:
        self.inner = envelope.DefaultMaterialsManager(keyring)
        self.calls: list[str] = []

    async def aget_encryption_materials(self, request: envelope.EncryptionRequest) -> EncryptionMaterials:
        await anyio.lowlevel.checkpoint()
        self.calls.append("encrypt")
        return self.inner.get_encryption_materials(request)

    async def adecrypt_materials(self, request: envelope.DecryptionRequest) -> DecryptionMaterials:
        await anyio.lowlevel.checkpoint()
        self.calls.append("decrypt")
        return self.inner.decrypt_materials(request)


async def agen(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


class ListSink:
    """Anything with an async write(data)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    async def write(self, data: bytes) -> None:
        await anyio.lowlevel.checkpoint()
        self.parts.append(bytes(data))

    def value(self) -> bytes:
        return b"".join(self.parts)


class AsyncReader:
    """Anything with an async read(n) (short reads included)."""

    def __init__(self, data: bytes, most: int = 10_000) -> None:
        self._data = memoryview(data)
        self._most = most

    async def read(self, n: int = -1) -> bytes:
        await anyio.lowlevel.checkpoint()
        n = min(n, self._most)
        chunk, self._data = bytes(self._data[:n]), self._data[n:]
        return chunk


async def socket_pair() -> tuple[SocketStream, SocketStream]:
    """A connected pair of real anyio byte streams (ByteSendStream and ByteReceiveStream)."""
    a, b = socket.socketpair()
    return await SocketStream.from_socket(a), await SocketStream.from_socket(b)


async def through_socket(run: Any, data: bytes) -> bytes:
    """Run ``run(receive_stream, send_stream)`` with ``data`` flowing in through one socket pair
    and the output collected from another."""
    in_a, in_b = await socket_pair()
    out_a, out_b = await socket_pair()
    received = bytearray()

    async def feed() -> None:
        async with in_a:
            await in_a.send(data)
            await in_a.send_eof()

    async def collect() -> None:
        async with out_b:
            async for chunk in out_b:
                received.extend(chunk)

    async with anyio.create_task_group() as group:
        group.start_soon(feed)
        group.start_soon(collect)
        async with in_b, out_a:
            await run(in_b, out_a)
            await out_a.send_eof()
    return bytes(received)
