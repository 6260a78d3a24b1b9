"""What the async drivers read from and write to: anyio byte streams, async iterables of bytes,
and objects with an async ``read(n)`` / ``write(data)`` (anyio's AsyncFile, for one)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Coroutine
from typing import Any, Protocol

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream

__all__ = ["Buffer", "Send", "Sink", "Source", "chunks", "sender", "sync_file"]

Buffer = bytes | bytearray | memoryview
Send = Callable[[bytes], Coroutine[Any, Any, None]]


class _AsyncReadable(Protocol):
    async def read(self, size: int = ..., /) -> bytes: ...


class _AsyncWritable(Protocol):
    async def write(self, data: bytes, /) -> Any: ...


class _AsyncSendable(Protocol):
    async def send(self, item: bytes, /) -> Any: ...


Source = ByteReceiveStream | AsyncIterable[Buffer] | _AsyncReadable
Sink = ByteSendStream | _AsyncWritable | _AsyncSendable


def _check(chunk: object) -> Buffer:
    if not isinstance(chunk, (bytes, bytearray, memoryview)):
        raise TypeError(f"source yielded {type(chunk).__name__}, not bytes")
    return chunk


async def _read_chunks(read: Callable[[int], Any], size: int) -> AsyncGenerator[Buffer, None]:
    while True:
        chunk = await read(size)
        if not chunk:
            return
        yield _check(chunk)


async def _receive_chunks(stream: ByteReceiveStream, size: int) -> AsyncGenerator[Buffer, None]:
    while True:
        try:
            chunk = await stream.receive(size)
        except anyio.EndOfStream:
            return
        yield _check(chunk)


async def _iterate(source: AsyncIterable[Any]) -> AsyncGenerator[Buffer, None]:
    async for chunk in source:
        if len(_check(chunk)):
            yield chunk


def chunks(source: Source, size: int) -> AsyncGenerator[Buffer, None]:
    """Yield the source's bytes in chunks of at most ``size`` (iterables: as they come).

    The caller must close the returned generator (``contextlib.aclosing``).
    """
    if isinstance(source, (bytes, bytearray, memoryview, str)):
        raise TypeError("source must be an async byte source; for bytes use envelope.aio.encrypt/decrypt")
    read = getattr(source, "read", None)
    if read is not None:
        # Checked up front: calling a sync file's read would block the loop before failing.
        if not inspect.iscoroutinefunction(read):
            raise TypeError("source.read is not async; use envelope.encrypt_stream/decrypt_stream for sync files")
        return _read_chunks(read, size)
    if isinstance(source, ByteReceiveStream):
        return _receive_chunks(source, size)
    if hasattr(source, "__aiter__"):
        return _iterate(source)  # type: ignore[arg-type]
    raise TypeError(f"source must be an anyio ByteReceiveStream, an async iterable of bytes or have an async "
                    f"read(n), not {type(source).__name__} (sync sources go to envelope.encrypt_stream)")


def sender(sink: Sink) -> Send:
    """Return ``send(data)`` for the sink: its ``send`` (anyio streams) or its async ``write``."""
    if isinstance(sink, ByteSendStream) or (not hasattr(sink, "write") and hasattr(sink, "send")):
        method = sink.send
    elif hasattr(sink, "write"):
        method = sink.write
    else:
        raise TypeError(f"sink must be an anyio ByteSendStream or have an async write(data), "
                        f"not {type(sink).__name__}")

    if not inspect.iscoroutinefunction(method):
        raise TypeError("sink.write is not async; use envelope.encrypt_stream/decrypt_stream for sync files")

    async def send(data: bytes) -> None:
        if data:
            await method(data)

    return send


def sync_file(stream: object) -> Any:
    """The sync file under an anyio AsyncFile, or None: the drivers then do file I/O and crypto
    together in one worker thread instead of one thread hop per read and write."""
    if isinstance(stream, anyio.AsyncFile):
        return stream.wrapped
    return None
