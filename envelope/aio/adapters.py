"""What the async drivers read from and write to: anyio byte streams, async iterables of bytes,
and objects with an async ``read(n)`` / ``write(data)`` (anyio's AsyncFile, for one)."""

from __future__ import annotations

import abc
import inspect
import io
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Coroutine
from typing import Any, Protocol

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream

from .offload import in_thread

__all__ = ["Buffer", "Reader", "Send", "Sink", "Source", "chunks", "reader", "sender", "sync_file", "thread_reader"]

Buffer = bytes | bytearray | memoryview
Send = Callable[[bytes | memoryview], Coroutine[Any, Any, None]]


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


class Reader(abc.ABC):
    """One way to pull bytes from a source: ``await read(size)`` returns up to ``size`` bytes
    (an iterable: its next chunk, whatever its size), and b"" once the source has ended. The
    source is never closed here: it belongs to the caller."""

    #: read() returns views of buffers the reader reuses: the consumer calls `release` once it no
    #: longer needs a chunk, and may keep a chunk without copying it until then.
    reuses_buffers = False

    @abc.abstractmethod
    async def read(self, size: int) -> Buffer:
        """The next chunk (at most ``size`` bytes where the source allows), b"" at the end."""

    def release(self, chunk: Buffer) -> None:
        """Hand a chunk's buffer back for reuse (thread-safe; a no-op unless `reuses_buffers`)."""


class _ReadInto(Reader):
    """A source with an async ``readinto`` (anyio's AsyncFile): reads into a few reused buffers,
    so a long stream does not allocate (and page-fault in) fresh memory for every chunk."""

    reuses_buffers = True

    def __init__(self, readinto: Callable[[memoryview], Any]) -> None:
        self._readinto = readinto
        self._free: deque[bytearray] = deque()  # append/pop are atomic: release runs in workers

    async def read(self, size: int) -> Buffer:
        try:
            buffer = self._free.pop()
        except IndexError:
            buffer = bytearray(size)
        if len(buffer) < size:
            buffer = bytearray(size)
        view = memoryview(buffer)[:size]
        n = await self._readinto(view)
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= size:
            raise TypeError(f"source.readinto returned {n!r}, not a byte count")
        if not n:
            self._free.append(buffer)
            return b""
        return view[:n]

    def release(self, chunk: Buffer) -> None:
        if isinstance(chunk, memoryview) and isinstance(chunk.obj, bytearray):
            self._free.append(chunk.obj)


class _ReadMethod(Reader):
    def __init__(self, read: Callable[[int], Any]) -> None:
        self._read = read

    async def read(self, size: int) -> Buffer:
        chunk = await self._read(size)
        return _check(chunk) if chunk else b""


class _Receive(Reader):
    def __init__(self, stream: ByteReceiveStream) -> None:
        self._stream = stream

    async def read(self, size: int) -> Buffer:
        try:
            return _check(await self._stream.receive(size))
        except anyio.EndOfStream:
            return b""


class _Iterate(Reader):
    def __init__(self, source: AsyncIterable[Any]) -> None:
        self._iterator = aiter(source)

    async def read(self, size: int) -> Buffer:
        async for chunk in self._iterator:
            if len(_check(chunk)):
                return chunk  # type: ignore[no-any-return]
        return b""


class _InThread(Reader):
    """A sync binary file (a pipe, say), read in a worker thread: the loop never blocks on it."""

    def __init__(self, file: Any) -> None:
        self._file = file

    async def read(self, size: int) -> Buffer:
        chunk = await in_thread(self._file.read, size)
        if isinstance(chunk, str):
            raise TypeError("source must be opened in binary mode")
        return _check(chunk) if chunk else b""


def thread_reader(source: object) -> Reader | None:
    """A `Reader` for a sync binary file (a sync ``read``), read in a worker thread; None if
    ``source`` is not one."""
    read = getattr(source, "read", None)
    if read is None or inspect.iscoroutinefunction(read) or isinstance(source, (bytes, bytearray, memoryview, str)):
        return None
    if isinstance(source, io.TextIOBase):
        raise TypeError("source must be opened in binary mode, not text")
    return _InThread(source)


def reader(source: Source) -> Reader:
    """The `Reader` for an anyio byte stream, an async iterable of bytes or an async ``read(n)``.

    :raises TypeError: bytes, str, a sync file or anything else that is not an async byte source.
    """
    if isinstance(source, (bytes, bytearray, memoryview, str)):
        raise TypeError("source must be an async byte source; for bytes use envelope.aio.encrypt/decrypt")
    read = getattr(source, "read", None)
    if read is not None:
        # Checked up front: calling a sync file's read would block the loop before failing.
        if not inspect.iscoroutinefunction(read):
            raise TypeError("source.read is not async; use envelope.encrypt_stream/decrypt_stream for sync files")
        readinto = getattr(source, "readinto", None)
        # A text-mode AsyncFile has the method but not the file under it (read then yields str).
        binary = not isinstance(source, anyio.AsyncFile) or hasattr(source.wrapped, "readinto")
        if readinto is not None and inspect.iscoroutinefunction(readinto) and binary:
            return _ReadInto(readinto)
        return _ReadMethod(read)
    if isinstance(source, ByteReceiveStream):
        return _Receive(source)
    if hasattr(source, "__aiter__"):
        return _Iterate(source)  # type: ignore[arg-type]
    raise TypeError(f"source must be an anyio ByteReceiveStream, an async iterable of bytes or have an async "
                    f"read(n), not {type(source).__name__} (sync sources go to envelope.encrypt_stream)")


async def chunks(source: Reader, size: int, first: int | None = None) -> AsyncGenerator[Buffer, None]:
    """Yield the source's bytes in reads of ``size`` (the first read: ``first``) until it ends.

    A chunk the source may change later (a bytearray or memoryview a producer refills once it
    is asked for more) is copied before the next read, since the consumer may still hold it
    then; ``bytes`` and the reader's own reused buffers are not copied. The caller must close
    the returned generator (``contextlib.aclosing``).
    """
    want = size if first is None else first
    while True:
        chunk = await source.read(want)
        if not chunk:
            return
        yield chunk if source.reuses_buffers or type(chunk) is bytes else bytes(chunk)
        want = size


def sender(sink: Sink) -> tuple[Send, bool]:
    """Return ``send(data)`` for the sink, and whether it may be lent reused buffers.

    A ``write`` is file-like: as with `io.RawIOBase.write`, it must not keep ``data`` after it
    returns, so it gets views of reused buffers. A ``send`` (anyio streams; a memory object
    stream keeps every item) gets ``bytes`` of its own.
    """
    if isinstance(sink, ByteSendStream) or (not hasattr(sink, "write") and hasattr(sink, "send")):
        method, lend = sink.send, False
    elif hasattr(sink, "write"):
        method, lend = sink.write, True
    else:
        raise TypeError(f"sink must be an anyio ByteSendStream or have an async write(data), "
                        f"not {type(sink).__name__}")

    if not inspect.iscoroutinefunction(method):
        raise TypeError("sink.write is not async; use envelope.encrypt_stream/decrypt_stream for sync files")

    async def send(data: bytes | memoryview) -> None:
        if data:
            # A send-style sink is only ever given bytes (Outputs copies for it).
            await method(data if lend or type(data) is bytes else bytes(data))  # type: ignore[arg-type]

    return send, lend


def sync_file(stream: object) -> Any:
    """The sync file under an anyio AsyncFile, or None: the drivers then do file I/O and crypto
    together in one worker thread instead of one thread hop per read and write."""
    if isinstance(stream, anyio.AsyncFile) and not isinstance(stream.wrapped, io.TextIOBase):
        return stream.wrapped
    return None
