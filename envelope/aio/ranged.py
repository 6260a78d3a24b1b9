"""Async ranged decryption: the mirror of `envelope.decrypt_range` (format-spec/operations.md §1),
driving the same sans-IO flows with awaited reads and materials calls."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ..format.header import DEFAULT_MAX_HEADER_LENGTH
from ..format.suites import CommitmentPolicy
from ..keyrings.base import Keyring
from ..materials.base import MaterialsManager
from ..streaming.decryptor import MessageDecryptor
from ..streaming.ranged import Flow, NeedMaterials, Read, check_range, open_message, positional, read_range
from ..streaming.session import new_decryptor
from .materials import ResolvedManager, resolve
from .offload import in_thread, offload
from .protocols import AsyncKeyring, AsyncMaterialsManager

__all__ = ["decrypt_range"]

T = TypeVar("T")
ReadAt = Callable[[int, int], Awaitable[bytes | memoryview]]


async def decrypt_range(source: object, offset: int, length: int, *,
                        keyring: AsyncKeyring | Keyring | None = None,
                        materials_manager: AsyncMaterialsManager | MaterialsManager | None = None,
                        encryption_context: Mapping[str, str] | None = None,
                        commitment_policy: CommitmentPolicy | str | None = None,
                        max_encrypted_data_keys: int | None = None,
                        max_header_length: int = DEFAULT_MAX_HEADER_LENGTH,
                        allow_unverified_signature: bool = False) -> bytes:
    """The plaintext bytes [offset, offset+length) of a framed message; the async mirror of
    `envelope.decrypt_range`, with the same guarantees, refusals and clipping.

    :param source: bytes-like, a path, a seekable binary file (read in a worker thread), or an
        anyio ``AsyncFile`` positioned at the message's start.
    """
    check_range(offset, length)
    manager = resolve(keyring, materials_manager)
    decryptor, _ = new_decryptor(encryption_context=encryption_context, commitment_policy=commitment_policy,
                                 max_encrypted_data_keys=max_encrypted_data_keys, max_header_length=max_header_length)
    if isinstance(source, (str, os.PathLike)):
        file = await in_thread(open, source, "rb")
        try:
            return await _decrypt(file, decryptor, manager, offset, length, allow_unverified_signature)
        finally:
            await in_thread(file.close)
    return await _decrypt(source, decryptor, manager, offset, length, allow_unverified_signature)


async def _decrypt(source: object, decryptor: MessageDecryptor, manager: ResolvedManager, offset: int, length: int,
                   allow_unverified_signature: bool) -> bytes:
    size, read_at = await _reader(source)
    index = await _run(open_message(decryptor, size, allow_unverified_signature=allow_unverified_signature),
                       read_at, manager)
    return await _run(read_range(index, offset, length), read_at, manager)


async def _reader(source: object) -> tuple[int, ReadAt]:
    """The message's size and an awaitable exact read at an offset."""
    wrapped = getattr(source, "wrapped", None)  # an anyio AsyncFile wraps a sync file
    if isinstance(source, (bytes, bytearray, memoryview)):
        memory = positional(source)

        async def read_memory(offset: int, size: int) -> bytes | memoryview:
            return memory.read_at(offset, size)

        return memory.size, read_memory
    target = wrapped if wrapped is not None else source
    file = await in_thread(positional, target)

    async def read_file(offset: int, size: int) -> bytes | memoryview:
        return await in_thread(file.read_at, offset, size)

    return file.size, read_file


async def _run(flow: Flow[T], read_at: ReadAt, manager: ResolvedManager) -> T:
    """Drive a flow: reads awaited, frames opened off the loop when large, materials awaited."""
    step = _send(flow, None)  # starts the generator
    while not isinstance(step, _Done):
        if isinstance(step, Read):
            data = await read_at(step.offset, step.size)
            step = await offload(len(data), _send, flow, data)
        else:
            if not isinstance(step, NeedMaterials):  # pragma: no cover
                raise TypeError("envelope: internal error: unknown flow step")
            step = _send(flow, await manager.adecrypt_materials(step.request))
    return step.value  # type: ignore[no-any-return]


class _Done:
    """A finished flow's result (StopIteration cannot cross a coroutine or a thread)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _send(flow: Flow[T], value: object) -> object:
    try:
        return flow.send(value)
    except StopIteration as done:
        return _Done(done.value)
