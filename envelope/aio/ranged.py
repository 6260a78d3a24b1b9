"""Async ranged decryption (format-spec/operations.md §1): `decrypt_range`, the mirror of
`envelope.decrypt_range`, and what a seeking `AsyncDecryptor` reads through (`MessageSource`,
`FrameWindow`), all driving the sans-IO flows of envelope.streaming.ranged."""

from __future__ import annotations

import abc
import inspect
import io
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import anyio

from ..format.body import FRAME_OVERHEAD
from ..format.header import DEFAULT_MAX_HEADER_LENGTH
from ..format.suites import CommitmentPolicy
from ..keyrings.base import Keyring
from ..materials.base import MaterialsManager
from ..streaming.decryptor import MessageDecryptor
from ..streaming.limits import RANGE_BATCH_BYTES, whole_units
from ..streaming.ranged import (
    Flow,
    MessageIndex,
    NeedMaterials,
    PositionalSource,
    Read,
    check_range,
    open_message,
    positional,
    read_range,
    run_flow,
)
from ..streaming.session import new_decryptor
from .adapters import Buffer
from .materials import ResolvedManager, resolve
from .offload import in_thread, offload
from .protocols import AsyncKeyring, AsyncMaterialsManager

__all__ = ["FrameWindow", "MessageSource", "decrypt_range", "message_source", "seekable_file"]

T = TypeVar("T")
ReadAt = Callable[[int, int], Awaitable[Buffer]]


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

    :param source: bytes-like, a path, a seekable binary file (read in a worker thread), an
        anyio ``AsyncFile`` (the same, through the file under it), or an object with async
        ``seek`` and ``read``; a file is read from its current position, the message's start.
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
    message = await message_source(source)
    if message is None:
        raise TypeError("ranged decryption needs bytes, a seekable binary file (with seek and read) or an "
                        "object with async seek and read")
    index = await message.run(open_message(decryptor, message.size,
                                           allow_unverified_signature=allow_unverified_signature), manager)
    return await message.run(read_range(index, offset, length), manager)


# -- sources ----------------------------------------------------------------------------------------


class MessageSource(abc.ABC):
    """A message the event loop reads at any offset from its start: `read_at` for single reads,
    `run` for a whole flow of them (as cheaply as the source allows)."""

    #: the message's size in bytes (the source's size from the message's start)
    size: int

    @abc.abstractmethod
    async def read_at(self, offset: int, size: int) -> Buffer:
        """``size`` bytes at ``offset`` from the message's start (fewer only at the source's end)."""

    async def run(self, flow: Flow[T], manager: ResolvedManager) -> T:
        """Drive a flow of envelope.streaming.ranged: its reads from here, its materials call
        from ``manager``; opening frames stays off the event loop where it costs."""
        return await _drive(flow, self.read_at, manager)


class _InMemory(MessageSource):
    """Bytes: read in place (zero-copy views); flows driven on the loop, large opens offloaded."""

    def __init__(self, source: PositionalSource) -> None:
        self._source = source
        self.size = source.size

    async def read_at(self, offset: int, size: int) -> Buffer:
        return self._source.read_at(offset, size)


class _InThread(MessageSource):
    """A seekable sync file: every read in a worker thread, and a whole flow in one thread hop
    (the materials call, if any, made from there: `ResolvedManager.in_worker`)."""

    def __init__(self, source: PositionalSource) -> None:
        self._source = source
        self.size = source.size

    async def read_at(self, offset: int, size: int) -> Buffer:
        return await in_thread(self._source.read_at, offset, size)

    async def run(self, flow: Flow[T], manager: ResolvedManager) -> T:
        return await in_thread(run_flow, flow, self._source, manager.in_worker().decrypt_materials)


class _AsyncSeek(MessageSource):
    """An object with async ``seek(offset, whence)`` and ``read(n)``: a seek, then reads."""

    def __init__(self, file: Any, start: int, size: int) -> None:
        self._file = file
        self._start = start
        self.size = size

    async def read_at(self, offset: int, size: int) -> Buffer:
        await self._file.seek(self._start + offset)
        parts: list[bytes] = []
        got = 0
        while got < size:
            data = await self._file.read(size - got)
            if not data:
                break
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"source.read returned {type(data).__name__}, not bytes")
            parts.append(bytes(data))
            got += len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)


def seekable_file(source: object) -> Any:
    """The sync binary file ``source`` is read through at any offset (an anyio AsyncFile's file,
    or a sync file itself) if it says it can seek; None for anything else (bytes included)."""
    file = source.wrapped if isinstance(source, anyio.AsyncFile) else source
    if isinstance(file, (bytes, bytearray, memoryview, io.TextIOBase)):
        return None
    read, seekable = getattr(file, "read", None), getattr(file, "seekable", None)
    if not callable(read) or not callable(seekable):
        return None
    if inspect.iscoroutinefunction(read) or inspect.iscoroutinefunction(seekable):
        return None  # an async object: see message_source
    return file if seekable() else None


async def message_source(source: object, start: int | None = None) -> MessageSource | None:
    """``source`` as a `MessageSource` whose message starts at ``start`` (default: the current
    position), or None if it cannot be read at any offset.

    Sources: bytes-like; a seekable sync binary file or anyio ``AsyncFile`` (read in worker
    threads); an object with async ``seek`` and ``read`` (and, if it has one, a ``seekable``
    that says yes).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _InMemory(positional(source))
    file = seekable_file(source)
    if file is not None:
        return _InThread(await in_thread(_positional_at, file, start))
    if isinstance(source, anyio.AsyncFile):
        return None  # its file cannot seek, or it is a text file
    seek, read = getattr(source, "seek", None), getattr(source, "read", None)
    if not (inspect.iscoroutinefunction(seek) and inspect.iscoroutinefunction(read)):
        return None
    says = getattr(source, "seekable", None)
    try:
        if callable(says):
            answer = says()
            if not (await answer if inspect.isawaitable(answer) else answer):
                return None
        if start is None:
            start = int(await seek(0, io.SEEK_CUR))
        end = int(await seek(0, io.SEEK_END))
    except OSError:  # io.UnsupportedOperation included: a seek method that cannot
        return None
    return _AsyncSeek(source, start, max(end - start, 0))


def _positional_at(file: Any, start: int | None) -> PositionalSource:
    return positional(file, start=start)


# -- driving a flow ---------------------------------------------------------------------------------


async def _drive(flow: Flow[T], read_at: ReadAt, manager: ResolvedManager) -> T:
    """Drive a flow on the loop: reads awaited, frames opened off the loop when large, the
    materials call awaited."""
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


# -- the seeking AsyncDecryptor's reads -------------------------------------------------------------


class FrameWindow:
    """Reads at any plaintext position of a located message, opening only the frames they
    touch (format-spec/operations.md §1.1): the async mirror of
    envelope.streaming.ranged.FrameWindow. The last frame opened is kept, so small reads one
    after another open each frame once."""

    def __init__(self, index: MessageIndex, source: MessageSource, manager: ResolvedManager) -> None:
        self.index = index
        self._source = source
        self._manager = manager
        self._frame = -1  # the frame whose plaintext is kept
        self._plaintext = b""
        # Frames opened by one flow: one read of at most RANGE_BATCH_BYTES, as read_range reads them.
        self._per_run = whole_units(index.frame_length + FRAME_OVERHEAD, RANGE_BATCH_BYTES)

    async def read(self, position: int, size: int) -> bytes:
        """Up to ``size`` bytes (all to the end if negative) from ``position``; fewer only at the
        end, b"" at or past it. A cancelled read leaves the window as it was."""
        index = self.index
        length = index.frame_length
        end = index.plaintext_length if size < 0 else min(position + size, index.plaintext_length)
        parts: list[bytes] = []
        here = position
        while here < end:
            frame = here // length
            base = frame * length
            if frame == self._frame:
                opened = self._plaintext
            else:
                last = min((end - 1) // length, frame + self._per_run - 1)
                opened = await self._source.run(read_range(index, base, (last - frame + 1) * length), self._manager)
                self._frame, self._plaintext = last, opened[(last - frame) * length:]
            stop = min(end, base + len(opened))
            parts.append(opened[here - base:stop - base])
            here = stop
        return parts[0] if len(parts) == 1 else b"".join(parts)
