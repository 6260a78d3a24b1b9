"""`AsyncDecryptor`: the async file-object mirror of `envelope.Decryptor` (``aread``/``aclose``,
``seekable``/``seek``/``tell``, an async context manager), opening through the frame gatherer of
envelope.streaming, and at random through the flows of envelope.streaming.ranged."""

from __future__ import annotations

import io
import operator
import sys
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self, Unpack

import anyio

from ..errors import PolicyError
from ..format.body import FRAME_OVERHEAD
from ..format.header import Header
from ..keyrings.base import Keyring
from ..materials.base import MaterialsManager
from ..streaming.buffers import Outputs
from ..streaming.compression import COMPRESSION_KEY, compression_of
from ..streaming.decryptor import MessageDecryptor
from ..streaming.gatherer import FrameOpener
from ..streaming.limits import MAX_ALIGNED_UNIT, READ_SIZE, nearest_units
from ..streaming.options import DecryptOptions
from ..streaming.ranged import check_eligible, open_message, read_header
from ..streaming.session import new_decryptor, plaintext_writer
from .adapters import Buffer, Reader, Source, reader, thread_reader
from .materials import resolve, supply_materials
from .offload import COMPRESS_WEIGHT, SIGNED_WEIGHT, offload
from .protocols import AsyncKeyring, AsyncMaterialsManager
from .ranged import FrameWindow, MessageSource, message_source, seekable_file

__all__ = ["AsyncDecryptor"]


class _SyncReadable(Protocol):
    """A sync binary file (``read`` returns bytes; a raw file may return None)."""

    def read(self, size: int = ..., /) -> bytes | None: ...


#: What an `AsyncDecryptor` reads: an async source, bytes, or a sync binary file.
DecryptorSource = Source | Buffer | _SyncReadable


class _Plaintext:
    """Authenticated plaintext not yet read, in order: views of the opener's output buffers
    (given back once read) or decompressed pieces."""

    def __init__(self, outputs: Outputs) -> None:
        self._outputs = outputs
        self._pieces: deque[bytes | memoryview] = deque()
        self._at = 0  # bytes of the first piece already read

    def put(self, piece: bytes | memoryview) -> None:
        if len(piece):
            self._pieces.append(piece)

    def __bool__(self) -> bool:
        return bool(self._pieces)

    def take(self, size: int) -> bytes:
        """Up to ``size`` bytes (all if negative), in one copy."""
        want = size if size >= 0 else sys.maxsize
        parts: list[memoryview] = []
        pieces = self._pieces
        while pieces and want:
            piece = pieces[0]
            if self._at == 0 and len(piece) <= want and type(piece) is bytes and not parts and size >= 0:
                pieces.popleft()  # a whole decompressed piece: no copy
                return piece
            n = min(want, len(piece) - self._at)
            parts.append(memoryview(piece)[self._at:self._at + n])
            self._at += n
            want -= n
            if self._at == len(piece):
                pieces.popleft()
                self._at = 0
                self._outputs.give_back(piece)
        return bytes(parts[0]) if len(parts) == 1 else b"".join(parts)

    def clear(self) -> None:
        self._pieces.clear()
        self._at = 0


class _Cursor(Reader):
    """Sequential reads of a `MessageSource`, from ``offset`` on."""

    def __init__(self, message: MessageSource, offset: int) -> None:
        self._message = message
        self._offset = offset

    async def read(self, size: int) -> Buffer:
        data = await self._message.read_at(self._offset, size)
        self._offset += len(data)
        return data


class AsyncDecryptor:
    """Reads the authenticated plaintext of the message in ``source``.

    `aread` returns plaintext only after it is authenticated (for signed suites the final frame
    only after the signature verifies), and raises AuthenticationError on tampering or
    truncation, at the latest when the end of the message is reached; once a read raised, every
    later read raises the same error. A cancelled read loses nothing: the next one goes on where
    it stopped. The header is read and authenticated when the decryptor starts (``async with``,
    or the first `aread`). Memory stays a few frames.

    Random access, as `envelope.Decryptor` has it: over a source that can seek (bytes, a seekable
    sync binary file or anyio ``AsyncFile`` positioned at the message's start, or an object with
    async ``seek`` and ``read``) holding a framed, uncompressed message, ``await seek(offset,
    whence)`` moves anywhere in the plaintext; from then on each read opens only the frames it
    touches (format-spec/operations.md §1), as `envelope.aio.decrypt_range` does. A signed message
    needs ``allow_unverified_signature=True`` for that: a slice cannot prove the signature, so
    the bytes are authentic to a holder of the data key, but who wrote them is NOT checked.
    ``await seekable()`` says whether this message can seek (it reads the header); ``tell()``
    (not awaited: it does no I/O) is the plaintext position of the next read. The header is
    read exactly when the source can seek, so after a seek the source has given the header,
    the frames the reads touched and the final frame's fields, nothing else.

    :param source: an anyio ``ByteReceiveStream``, an async iterable of bytes, anything with an
        async ``read(n)``, bytes, or a sync binary file (read in worker threads); not closed.
    :param allow_unverified_signature: let a signed message seek (see above).
    :param options: as for `envelope.aio.decrypt_stream`.
    """

    def __init__(self, source: DecryptorSource, *, keyring: AsyncKeyring | Keyring | None = None,
                 materials_manager: AsyncMaterialsManager | MaterialsManager | None = None,
                 allow_unverified_signature: bool = False, **options: Unpack[DecryptOptions]) -> None:
        self._manager = resolve(keyring, materials_manager)
        self._core: MessageDecryptor
        self._core, self._output_options = new_decryptor(**options)
        self._allow_unverified_signature = allow_unverified_signature
        self._source = source
        file = seekable_file(source)
        # Where the message starts in a seekable file: here, as envelope.Decryptor notes it.
        self._file_start = int(file.tell()) if file is not None else None
        # The reader of a source that cannot seek (checked now, so a wrong type fails here).
        self._reader: Reader | None = None
        if file is None and not isinstance(source, (bytes, bytearray, memoryview)):
            self._reader = thread_reader(source) or reader(source)  # type: ignore[arg-type]
        self._may_seek = self._reader is None or callable(getattr(source, "seek", None))
        self._message: MessageSource | None = None  # the source, once opened, if it can seek
        self._outputs = Outputs(lend=True)
        self._ready = _Plaintext(self._outputs)
        self._opener: FrameOpener | None = None
        # Where opened plaintext goes: to the ready plaintext, through zstd if compressed.
        self._write: Callable[[bytes | memoryview], object] = self._ready.put
        self._finish = _nothing
        self._decompressing = False
        self._unfed: Buffer | None = None  # a chunk read but not yet opened (a cancelled read)
        self._want = self._size = READ_SIZE  # the next read; later reads
        self._unit = 0
        self._header: Header | None = None
        self._weight = 1
        self._eof = False
        self._position = 0  # of the next plaintext byte aread returns
        self._window: FrameWindow | None = None  # set by the first seek
        self.closed = False

    @property
    def header(self) -> Header:
        """The authenticated header (available once started)."""
        self._core.failure.check()
        if self._header is None:
            raise ValueError("the AsyncDecryptor has not started: use 'async with' or aread first")
        return self._header

    # -- reading in order -----------------------------------------------------------------------

    async def _advance(self) -> None:
        """Read and open the next chunk (or the header) into the ready plaintext. After an error,
        this and every later read raise it again, and the plaintext not yet read is dropped; a
        cancellation is no error (a step is never left half-done by one)."""
        self._core.failure.check()
        try:
            if self._header is None:
                await self._start()
            else:
                await self._step()
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:
            self._core.failure.trip(exc)
            self._ready.clear()
            self._drop()
            raise

    async def _open_source(self) -> None:
        """Open a source that may seek as a `MessageSource` (once, before anything is read)."""
        if not self._may_seek or self._message is not None:
            return
        with anyio.CancelScope(shield=True):  # a few quick seeks: a cancelled open would lose the start
            message = await message_source(self._source, self._file_start)
        self._message, self._may_seek = message, message is not None

    async def _start(self) -> None:
        """Read the header (exactly, if the source can seek), authenticate it, and prepare the body."""
        core = self._core
        await self._open_source()
        message = self._message
        if core.header is None:
            if message is not None:
                await message.run(read_header(core), self._manager)
            else:
                source = self._reader
                if source is None:  # pragma: no cover - set when the source cannot seek
                    raise RuntimeError("envelope: internal error: no reader")
                while core.header is None:
                    chunk = await source.read(core.size_hint())
                    if not chunk:
                        core.finalize()  # raises: the message ended inside the header
                        raise RuntimeError("envelope: internal error: truncated header accepted")  # pragma: no cover
                    core.update(chunk)  # buffers (a copy) until the header is complete
                    source.release(chunk)
        header = await supply_materials(core, self._manager) if core.needs_materials else core.header
        if header is None:  # pragma: no cover
            raise RuntimeError("envelope: internal error: no header after reading it")
        # Nothing below awaits: a cancellation finds the decryptor before or after all of it.
        self._write, self._finish = plaintext_writer(header, self._ready.put, self._output_options)
        self._decompressing = self._output_options.decompress and compression_of(header.encryption_context) is not None
        self._weight = COMPRESS_WEIGHT if COMPRESSION_KEY in header.encryption_context else \
            SIGNED_WEIGHT if header.algorithm.is_signing else 1
        if message is not None:
            self._reader = _Cursor(message, core.header_length or 0)
        # Reads of whole frames (about READ_SIZE of them), so the opener feeds the decryptor whole
        # frames straight from each chunk. Frames beyond MAX_ALIGNED_UNIT (a hostile header's claim,
        # §9) are gathered by the decryptor from READ_SIZE reads: memory follows what arrives.
        unit = header.frame_length + FRAME_OVERHEAD if header.frame_length else 0
        aligned = 0 < unit <= MAX_ALIGNED_UNIT
        self._unit = unit if aligned else 0
        self._opener = FrameOpener(core, self._outputs, self._unit)
        self._size = unit * nearest_units(unit, READ_SIZE) if aligned else READ_SIZE
        self._deliver(self._opener.start())  # the body bytes that came with the header (a few KiB)
        rest = core.size_hint()  # the first read completes the frame those bytes began
        self._want = rest + self._size - unit if aligned and 0 < rest <= unit else self._size
        self._header = header

    async def _step(self) -> None:
        source = self._reader
        if source is None:  # pragma: no cover - set once the header is read
            raise RuntimeError("envelope: internal error: no reader")
        chunk = self._unfed
        if chunk is None:
            chunk = self._unfed = await source.read(self._want)
            self._want = self._size
        if not len(chunk):
            # The gathered rest (the final frame, signed suites the footer and its signature).
            await offload(max(self._unit, 1) * self._weight, self._end)
            return
        await offload(self._core.output_bound(len(chunk)) * self._weight, self._open, chunk)
        source.release(chunk)

    def _open(self, chunk: Buffer) -> None:
        opener = self._opener
        if opener is None:  # pragma: no cover - set with the header
            raise RuntimeError("envelope: internal error: no opener")
        out = opener.open(chunk)
        self._unfed = None
        self._deliver(out)

    def _end(self) -> None:
        opener = self._opener
        if opener is None:  # pragma: no cover - set with the header
            raise RuntimeError("envelope: internal error: no opener")
        self._unfed = None
        self._deliver(opener.finish())
        self._core.finalize()  # raises AuthenticationError if the message is truncated
        self._finish()
        self._eof = True
        self._drop()

    def _deliver(self, out: bytes | memoryview) -> None:
        if out:
            self._write(out)
            if self._decompressing:
                self._outputs.give_back(out)  # decompressed: the opened bytes are done with

    def _drop(self) -> None:
        """The message ended, failed or moved to random access: let go of the opener and the
        decompressor (and zstd's window) now."""
        self._opener = None
        self._write, self._finish = self._ready.put, _nothing
        self._decompressing = False
        self._unfed = None

    async def _started(self) -> Header:
        self._core.failure.check()
        while self._header is None:
            await self._advance()
        return self._header

    async def aread(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of authenticated plaintext (all of the rest if ``size`` < 0);
        b"" at the end of the message."""
        if self.closed:
            raise ValueError("read from a closed AsyncDecryptor")
        self._core.failure.check()
        if size == 0:
            return b""
        if self._window is not None:
            data = await self._read_window(size)
        elif size < 0:
            while not self._eof:
                await self._advance()
            data = self._ready.take(-1)
        else:
            while not self._ready and not self._eof:
                await self._advance()
            data = self._ready.take(size)
        self._position += len(data)
        return data

    # -- random access ----------------------------------------------------------------------------

    async def seekable(self) -> bool:
        """Whether `seek` works: the source can seek and the message can be read at random (it
        is framed, uncompressed and, if signed, ``allow_unverified_signature`` was given).
        Reads the header if it is not read yet."""
        if self.closed:
            raise ValueError("seekable on a closed AsyncDecryptor")
        await self._open_source()
        if self._message is None:
            return False
        try:
            check_eligible(await self._started(), self._allow_unverified_signature)
        except PolicyError:
            return False
        return True

    def tell(self) -> int:
        """The plaintext position of the next read (not awaited: no I/O)."""
        return self._position

    async def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to a plaintext offset (``whence`` as for files); return the new position. Past
        the end, reads return b"". The first seek locates the message's end (§1.2).

        :raises io.UnsupportedOperation: the source cannot seek.
        :raises PolicyError: the message cannot be read at random (non-framed, compressed, or
            signed without ``allow_unverified_signature``).
        :raises ValueError: a negative position or an unknown ``whence``.
        """
        if self.closed:
            raise ValueError("seek on a closed AsyncDecryptor")
        offset = operator.index(offset)
        if whence not in (io.SEEK_SET, io.SEEK_CUR, io.SEEK_END):
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        window = self._window or await self._open_window()
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._position + offset
        else:
            target = window.index.plaintext_length + offset
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        self._position = target
        return target

    async def _open_window(self) -> FrameWindow:
        await self._open_source()
        message = self._message
        if message is None:
            raise io.UnsupportedOperation("the source is not seekable (random access needs bytes, a seekable "
                                          "file or an object with async seek and read)")
        # Authenticated through the sequential path: the data key is not asked for again.
        check_eligible(await self._started(), self._allow_unverified_signature)
        try:
            index = await message.run(open_message(self._core, message.size,
                                                   allow_unverified_signature=self._allow_unverified_signature),
                                      self._manager)
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:
            self._core.failure.trip(exc)  # no final frame where the message ends: it is rejected
            self._ready.clear()
            self._drop()
            raise
        self._window = FrameWindow(index, message, self._manager)
        self._ready.clear()  # the plaintext read ahead in order is not where the reads go now
        self._drop()
        self._reader = None
        return self._window

    async def _read_window(self, size: int) -> bytes:
        window = self._window
        if window is None:  # pragma: no cover - called after the first seek
            raise RuntimeError("envelope: internal error: no window")
        try:
            return await window.read(self._position, size)
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:
            self._core.failure.trip(exc)  # as for a read in order: the message is rejected
            raise

    # -- closing -----------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop reading; plaintext not yet read is dropped. Idempotent."""
        self.closed = True
        self._drop()
        self._ready.clear()
        self._window = None
        self._message = None
        self._reader = None

    async def __aenter__(self) -> Self:
        await self._started()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


def _nothing() -> None:
    """The finish of plaintext that needs none (not compressed, or already finished)."""
