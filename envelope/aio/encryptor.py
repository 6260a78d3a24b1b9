"""`AsyncEncryptor`: the async file-object mirror of `envelope.Encryptor` (``awrite``/``aclose``,
an async context manager), sealing through the frame batcher of envelope.streaming."""

from __future__ import annotations

from types import TracebackType
from typing import Self, Unpack

from ..format.body import FRAME_OVERHEAD
from ..format.header import Header
from ..keyrings.base import Keyring
from ..materials.base import MaterialsManager
from ..streaming.batcher import FrameSealer
from ..streaming.buffers import Outputs
from ..streaming.failure import FailureLatch
from ..streaming.limits import ASYNC_BATCH_BYTES, MAX_ZERO_COPY_FRAME, nearest_units
from ..streaming.options import ENCRYPT_STREAM_OPTION_NAMES, EncryptStreamOptions, check_options
from ..streaming.session import EncryptSession
from .adapters import Buffer, Sink, sender
from .materials import resolve, start_encryptor
from .offload import COMPRESS_WEIGHT, OFFLOAD_BYTES, SIGNED_WEIGHT, offload
from .protocols import AsyncKeyring, AsyncMaterialsManager

__all__ = ["AsyncEncryptor"]


class AsyncEncryptor:
    """Encrypts what is written to it into one message sent to ``sink``.

    The keyring is called when the encryptor starts (``async with``, or the first `awrite`).
    Call `aclose` (or leave the ``async with`` block normally): only then are the final frame
    and signature written. If the block raises, the message is left unfinished on purpose, so a
    partial message never decrypts as if it were complete. If an `awrite` raised or was
    cancelled, what it sealed may not have reached ``sink``: every later call raises, and no
    final frame is written. ``sink`` is not closed.

    :param sink: an anyio ``ByteSendStream``, or anything with an async ``write(data)`` or
        ``send(data)``. ``send`` gets ``bytes``; ``write`` gets a memoryview of a reused buffer,
        which it must not keep after it returns (as `io.RawIOBase.write`).
    :param options: as for `envelope.aio.encrypt_stream`.
    """

    def __init__(self, sink: Sink, *, keyring: AsyncKeyring | Keyring | None = None,
                 materials_manager: AsyncMaterialsManager | MaterialsManager | None = None,
                 **options: Unpack[EncryptStreamOptions]) -> None:
        check_options(ENCRYPT_STREAM_OPTION_NAMES, options, "AsyncEncryptor")  # used at the first write
        self._send, self._lend = sender(sink)
        self._manager = resolve(keyring, materials_manager)
        self._options = options
        self._session: EncryptSession | None = None
        self._sealer: FrameSealer | None = None  # framed messages without compression
        self._outputs = Outputs(self._lend)
        self._per_batch = 1
        self._weight = 1
        self._failure = FailureLatch()
        self.closed = False

    async def _started(self) -> EncryptSession:
        if self._session is None:
            session = await start_encryptor(self._manager, self._options)
            encryptor = session.encryptor
            n = encryptor.frame_length
            # The zero-copy path (as encrypt_stream's): whole frames sealed in batches straight
            # from the caller's buffer into reused outputs. Compression and a declared length
            # (which the session counts) take the session's general path.
            if session.compressor is None and session.plaintext_length is None and 0 < n <= MAX_ZERO_COPY_FRAME:
                self._sealer = FrameSealer(encryptor, self._outputs)
                self._per_batch = nearest_units(n + FRAME_OVERHEAD, ASYNC_BATCH_BYTES)
            self._weight = COMPRESS_WEIGHT if session.compressor is not None else \
                SIGNED_WEIGHT if encryptor.header.algorithm.is_signing else 1
            self._session = session
            await self._emit(encryptor.take_header())
        return self._session

    async def _emit(self, data: bytes | memoryview) -> None:
        """Send output; an error or a cancellation may have lost it, so the message is broken."""
        try:
            await self._send(data)
        except BaseException as exc:
            self._failure.trip(exc)
            raise
        self._outputs.give_back(data)

    @property
    def header(self) -> Header:
        """The message header (available once started)."""
        if self._session is None:
            raise ValueError("the AsyncEncryptor has not started: use 'async with' or awrite first")
        return self._session.encryptor.header

    async def awrite(self, data: Buffer) -> int:
        """Encrypt ``data``; send the frames it completes. Returns len(data). The caller may
        reuse ``data`` once this returns."""
        if self.closed:
            raise ValueError("write to a closed AsyncEncryptor")
        self._failure.check()
        view = memoryview(data).cast("B")
        session = await self._started()
        limit = session.plaintext_length
        if limit is not None and session.consumed + len(view) > limit:
            session.count(len(view))  # raises before any of it is taken: the message can still end
        out: bytes | memoryview
        try:
            if self._sealer is None:
                # The session copies what it holds back.
                out = await offload(len(view) * self._weight, session.update, view)
            else:
                out = await self._seal(self._sealer, session, data, view)
        except BaseException as exc:
            self._failure.trip(exc)  # the encryptor's state ran ahead of what was sent
            raise
        await self._emit(out)
        return len(view)

    async def _seal(self, sealer: FrameSealer, session: EncryptSession, data: Buffer, view: memoryview
                    ) -> bytes | memoryview:
        """Hold ``data`` and send every batch of frames it completes but the last; return that."""
        session.count(len(view))
        n = session.encryptor.frame_length
        if type(data) is bytes:
            sealer.hold(data)  # immutable: held by reference, whatever is left after this write
        elif len(view):
            # The sealer holds back 1..n bytes for the final frame (format-spec/message.md §5.4):
            # those are copied, since the caller may reuse ``data``; the frames before them are
            # sealed from ``data`` itself before this returns.
            kept = min(len(view), (sealer.held + len(view) - 1) % n + 1)
            sealer.hold(view[:len(view) - kept], owned=True)
            sealer.hold(view[len(view) - kept:])
        out: bytes | memoryview = b""
        while sealer.ready:
            if out:
                await self._emit(out)
            count = min(sealer.ready, self._per_batch)
            out = await offload(count * n * self._weight, sealer.seal, count)
        return out

    async def aclose(self) -> None:
        """Seal the final frame (and signature) and send it. Idempotent.

        :raises: the error of an earlier failed `awrite` (the message stays unfinished).
        """
        if self.closed:
            return
        self.closed = True
        self._failure.check()
        session = await self._started()
        signed = session.encryptor.header.algorithm.is_signing
        # The final frame; signed suites add an ECDSA signature (~0.4 ms), worth a thread hop.
        out: bytes | memoryview
        if self._sealer is None:
            cost = OFFLOAD_BYTES if self._weight > 1 else session.encryptor.output_bound(0)
            out = await offload(cost, session.finalize)
        else:
            cost = self._sealer.held * self._weight + (OFFLOAD_BYTES if signed else 0)
            out = await offload(cost, self._sealer.finish)
        await self._emit(out)

    async def __aenter__(self) -> Self:
        await self._started()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.closed = True  # no final frame: the message stays undecryptable
            return
        await self.aclose()
