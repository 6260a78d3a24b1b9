"""`AsyncEncryptor` and `AsyncDecryptor`: async file-object mirrors of `envelope.Encryptor` and
`envelope.Decryptor` (``awrite``/``aread``/``aclose``, async context managers)."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self, Unpack

import anyio

from ..format.header import Header
from ..keyrings.base import Keyring
from ..materials.base import MaterialsManager
from ..streaming.compression import COMPRESSION_KEY
from ..streaming.decryptor import MessageDecryptor
from ..streaming.limits import READ_SIZE
from ..streaming.options import ENCRYPT_STREAM_OPTION_NAMES, DecryptOptions, EncryptStreamOptions, check_options
from ..streaming.session import EncryptSession, new_decryptor, plaintext_writer
from .adapters import Buffer, Sink, Source, reader, sender
from .materials import resolve, start_encryptor, supply_materials
from .offload import COMPRESS_WEIGHT, OFFLOAD_BYTES, SIGNED_WEIGHT, offload
from .protocols import AsyncKeyring, AsyncMaterialsManager

__all__ = ["AsyncDecryptor", "AsyncEncryptor"]


class AsyncEncryptor:
    """Encrypts what is written to it into one message sent to ``sink``.

    The keyring is called when the encryptor starts (``async with``, or the first `awrite`).
    Call `aclose` (or leave the ``async with`` block normally): only then are the final frame
    and signature written. If the block raises, the message is left unfinished on purpose, so a
    partial message never decrypts as if it were complete. ``sink`` is not closed.

    :param sink: an anyio ``ByteSendStream``, or anything with an async ``write(data)`` or
        ``send(data)``; it is given ``bytes``.
    :param options: as for `envelope.aio.encrypt_stream`.
    """

    def __init__(self, sink: Sink, *, keyring: AsyncKeyring | Keyring | None = None,
                 materials_manager: AsyncMaterialsManager | MaterialsManager | None = None,
                 **options: Unpack[EncryptStreamOptions]) -> None:
        check_options(ENCRYPT_STREAM_OPTION_NAMES, options, "AsyncEncryptor")  # used at the first write
        self._send, _ = sender(sink)
        self._manager = resolve(keyring, materials_manager)
        self._options = options
        self._session: EncryptSession | None = None
        self._weight = 1
        self.closed = False

    async def _started(self) -> EncryptSession:
        if self._session is None:
            session = await start_encryptor(self._manager, self._options)
            self._session = session
            self._weight = COMPRESS_WEIGHT if session.compressor is not None else \
                SIGNED_WEIGHT if session.encryptor.header.algorithm.is_signing else 1
            await self._send(session.encryptor.take_header())
        return self._session

    @property
    def header(self) -> Header:
        """The message header (available once started)."""
        if self._session is None:
            raise ValueError("the AsyncEncryptor has not started: use 'async with' or awrite first")
        return self._session.encryptor.header

    async def awrite(self, data: Buffer) -> int:
        """Encrypt ``data``; send the frames it completes. Returns len(data)."""
        if self.closed:
            raise ValueError("write to a closed AsyncEncryptor")
        view = memoryview(data).cast("B")
        session = await self._started()
        # Sealing copies what it holds back, so the caller may reuse ``data`` at once.
        await self._send(await offload(len(view) * self._weight, session.update, view))
        return len(view)

    async def aclose(self) -> None:
        """Seal the final frame (and signature) and send it. Idempotent."""
        if self.closed:
            return
        self.closed = True
        session = await self._started()
        # The final frame; signed suites add an ECDSA signature (~0.4 ms), worth a thread hop.
        cost = OFFLOAD_BYTES if self._weight > 1 else session.encryptor.output_bound(0)
        await self._send(await offload(cost, session.finalize))

    async def __aenter__(self) -> Self:
        await self._started()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.closed = True  # no final frame: the message stays undecryptable
            return
        await self.aclose()


class AsyncDecryptor:
    """Reads the authenticated plaintext of the message in ``source``.

    `aread` returns plaintext only after it is authenticated (for signed suites the final frame
    only after the signature verifies), and raises AuthenticationError on tampering or
    truncation, at the latest when the end of the message is reached; once a read raised, every
    later read raises the same error. The header is read and authenticated when the decryptor
    starts (``async with``, or the first `aread`).

    :param source: an anyio ``ByteReceiveStream``, an async iterable of bytes, or anything with
        an async ``read(n)``; it is not closed.
    :param options: as for `envelope.aio.decrypt_stream`.
    """

    def __init__(self, source: Source, *, keyring: AsyncKeyring | Keyring | None = None,
                 materials_manager: AsyncMaterialsManager | MaterialsManager | None = None,
                 **options: Unpack[DecryptOptions]) -> None:
        self._reader = reader(source)
        self._manager = resolve(keyring, materials_manager)
        self._core: MessageDecryptor
        self._core, self._output_options = new_decryptor(**options)
        self._ready = bytearray()
        self._write: Any = None
        self._finish: Any = None
        self._header: Header | None = None
        self._weight = 1
        self._eof = False
        self.closed = False

    @property
    def header(self) -> Header:
        """The authenticated header (available once started)."""
        self._core.failure.check()
        if self._header is None:
            raise ValueError("the AsyncDecryptor has not started: use 'async with' or aread first")
        return self._header

    async def _advance(self) -> None:
        """Read one chunk and decrypt it into the ready plaintext. After an error, this and
        every later read raise it again, and the plaintext not yet read is dropped; a
        cancellation is no error (a step is never left half-done by one)."""
        self._core.failure.check()
        try:
            await self._step()
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:
            self._core.failure.trip(exc)
            self._ready.clear()
            self._write = self._finish = None  # the decompressor (and zstd's window) go now
            raise

    async def _step(self) -> None:
        core = self._core
        chunk = await self._reader.read(core.size_hint() if self._header is None else READ_SIZE)
        if not chunk:
            core.finalize()  # raises AuthenticationError if the message is truncated
            if self._finish is not None:
                self._finish()
            self._write = self._finish = None
            self._eof = True
            return
        if self._header is None:
            core.update(chunk)  # buffers (a copy) until the header is complete
            self._reader.release(chunk)
            if not core.needs_materials:
                return
            header = await supply_materials(core, self._manager)
            self._write, self._finish = plaintext_writer(header, self._ready.extend, self._output_options)
            self._weight = COMPRESS_WEIGHT if COMPRESSION_KEY in header.encryption_context else \
                SIGNED_WEIGHT if header.algorithm.is_signing else 1
            self._header = header
            chunk = b""  # the body bytes that came with the header
        cost = core.output_bound(len(chunk)) * self._weight
        await offload(cost, self._decrypt, chunk)
        self._reader.release(chunk)

    def _decrypt(self, chunk: Buffer) -> None:
        out = self._core.update(chunk)
        if out:
            self._write(out)

    async def _started(self) -> None:
        self._core.failure.check()
        while self._header is None and not self._eof:
            await self._advance()

    async def aread(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of authenticated plaintext (all of the rest if ``size`` < 0);
        b"" at the end of the message."""
        if self.closed:
            raise ValueError("read from a closed AsyncDecryptor")
        self._core.failure.check()
        if size == 0:
            return b""
        if size < 0:
            while not self._eof:
                await self._advance()
            data = bytes(self._ready)
            self._ready.clear()
            return data
        while not self._ready and not self._eof:
            await self._advance()
        data = bytes(self._ready[:size])
        del self._ready[:size]
        return data

    async def aclose(self) -> None:
        """Stop reading; plaintext not yet read is dropped. Idempotent."""
        self.closed = True
        self._ready.clear()
        self._write = self._finish = None

    async def __aenter__(self) -> Self:
        await self._started()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
