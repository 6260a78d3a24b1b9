"""The synchronous driver: runs the sans-IO core over file-like objects and iterables.

Plaintext reaches the sink only after its frame verified (signed messages: the final frame after
the signature). A decrypt that fails part-way may already have written earlier, authenticated
frames; write to a temporary file and rename on success if the output must be all-or-nothing.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, Any, Protocol, Unpack

from ..errors import PolicyError
from ..format.body import FINAL_FRAME_OVERHEAD, FRAME_OVERHEAD
from ..format.header import Header
from ..keyrings.base import Keyring
from ..materials.base import MaterialsManager
from . import pipeline
from .batcher import FrameSealer, seal_run
from .buffers import Outputs
from .decryptor import MessageDecryptor
from .gatherer import FrameOpener, UnitReader
from .limits import (
    MAX_ALIGNED_UNIT,
    MAX_TRUSTED_FRAME,
    MAX_ZERO_COPY_FRAME,
    PIPELINE_MIN_FRAME,
    READ_SIZE,
    WRITE_BATCH_BYTES,
    nearest_units,
)
from .options import DecryptOptions, EncryptStreamOptions
from .ranged import FrameWindow, check_eligible, open_message, positional, run_flow
from .session import (
    EncryptSession,
    OutputOptions,
    new_decryptor,
    new_encryptor,
    plaintext_writer,
    resolve_materials_manager,
    supply,
)

__all__ = ["Decryptor", "Encryptor", "decrypt_stream", "encrypt_stream"]

Buffer = bytes | bytearray | memoryview


class _Writable(Protocol):
    def write(self, data: Any, /) -> Any: ...


Source = IO[bytes] | Iterable[Buffer]


def _chunks(source: Any, size: int) -> Iterator[Buffer]:
    if isinstance(source, (bytes, bytearray, memoryview, str)):
        raise TypeError("source must be a binary file-like object or an iterable of bytes; "
                        "for bytes use envelope.encrypt/decrypt or wrap them in io.BytesIO")
    if hasattr(source, "read"):
        while True:
            chunk = source.read(size)
            if not chunk:
                return
            if isinstance(chunk, str):
                raise TypeError("source must be opened in binary mode")
            yield chunk
    else:
        for chunk in source:
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise TypeError(f"source yielded {type(chunk).__name__}, not bytes")
            yield chunk


def _zero_copy(session: EncryptSession) -> bool:
    """Whether the zero-copy paths (the batcher, reused whole-frame buffers) may seal this
    message: compression and a declared length (which the session counts) take the general
    path, and so do frames larger than limits.MAX_ZERO_COPY_FRAME."""
    return (session.compressor is None and session.plaintext_length is None
            and 0 < session.encryptor.frame_length <= MAX_ZERO_COPY_FRAME)


def _pump_encrypt(session: EncryptSession, source: Any, sink: _Writable) -> None:
    encryptor = session.encryptor
    sink.write(encryptor.take_header())
    n = encryptor.frame_length
    if _zero_copy(session):
        if hasattr(source, "readinto"):
            _pump_encrypt_frames(session, source, sink)
        else:
            _pump_encrypt_chunks(session, _chunks(source, max(n, READ_SIZE)), sink)
        return
    for chunk in _chunks(source, max(n, READ_SIZE)):
        out = session.update(chunk)
        if out:
            sink.write(out)
    sink.write(session.finalize())


def _pump_encrypt_frames(session: EncryptSession, source: Any, sink: _Writable) -> None:
    """Zero-copy path: whole frames read into reused buffers (`UnitReader`, batches of about
    `READ_SIZE` bytes; a pipe's complete frames move on early) and sealed into a reused buffer
    (`seal_run`), one batch behind the reads: only the end of input says which frame is final."""
    encryptor = session.encryptor
    n = encryptor.frame_length
    reads = UnitReader(source, n)
    first = bytearray(n)
    count, ended = reads.fill(memoryview(first))
    if count == n and n >= PIPELINE_MIN_FRAME and pipeline.usable_cpus() > 1:
        pipeline.encrypt_body(encryptor, source, sink.write, first, count)
        return
    sealing = memoryview(first)
    if not ended:
        units = nearest_units(n, READ_SIZE)
        buffers = (memoryview(bytearray(units * n)), memoryview(bytearray(units * n)))
        out = memoryview(bytearray(units * (n + FRAME_OVERHEAD) + FINAL_FRAME_OVERHEAD + encryptor.footer_size))
    else:  # the whole message in one short read: one final frame, no batch buffers
        out = memoryview(bytearray(n + FINAL_FRAME_OVERHEAD + encryptor.footer_size))
    current = 0
    while not ended:
        following, ended = reads.fill(buffers[current])
        if not following:
            break
        sink.write(out[:seal_run(encryptor, sealing, count, out, last=False)])
        sealing, count, current = buffers[current], following, 1 - current
    sink.write(out[:seal_run(encryptor, sealing, count, out, last=True)])


def _pump_encrypt_chunks(session: EncryptSession, chunks: Iterator[Buffer], sink: _Writable) -> None:
    """Chunks of any size (an iterable, or a file without ``readinto``): the batcher gathers them
    into whole frames, sealed straight from a chunk where a frame lies inside one, and writes
    them a batch at a time from reused buffers (as envelope.aio's stream path does)."""
    encryptor = session.encryptor
    outputs = Outputs(lend=True)
    sealer = FrameSealer(encryptor, outputs)
    per_batch = nearest_units(encryptor.frame_length + FRAME_OVERHEAD, WRITE_BATCH_BYTES)

    def emit(data: bytes | memoryview) -> None:
        if data:
            sink.write(data)
            outputs.give_back(data)

    for chunk in chunks:
        sealer.hold(chunk)
        while sealer.ready:
            emit(sealer.seal(min(sealer.ready, per_batch)))
    emit(sealer.finish())  # the final frame (format-spec §5.4) and, signed suites, the footer


def encrypt_stream(source: Source, sink: _Writable, *, keyring: Keyring | None = None,
                   materials_manager: MaterialsManager | None = None,
                   **options: Unpack[EncryptStreamOptions]) -> Header:
    """Encrypt everything ``source`` yields into one message written to ``sink``.

    :param source: a binary file-like object (``readinto`` or ``read``) or an iterable of bytes.
    :param sink: anything with ``write(bytes)``; it is not closed.
    :param options: ``encryption_context``, ``algorithm``, ``frame_length``, ``commitment_policy``,
        ``max_encrypted_data_keys``, ``compression``, ``compression_level`` as for `envelope.encrypt`;
        ``plaintext_length`` if known (`EncryptStreamOptions`).
    :returns: the message header.
    """
    session = new_encryptor(keyring=keyring, materials_manager=materials_manager, **options)
    _pump_encrypt(session, source, sink)
    return session.encryptor.header


class _Output:
    """Where authenticated plaintext goes once the header is known (decompressing if declared)."""

    def __init__(self, write: Callable[[Any], object], options: OutputOptions) -> None:
        self._raw_write = write
        self._options = options
        self.write: Callable[[Any], object] = self._before_header
        self.finish: Callable[[], None] = lambda: None

    def _before_header(self, data: Any) -> object:  # pragma: no cover - nothing precedes the header
        raise RuntimeError("envelope: internal error: plaintext before the header")

    def start(self, header: Header) -> None:
        self.write, self.finish = plaintext_writer(header, self._raw_write, self._options)

    def release(self) -> None:
        """The message ended or failed: let go of the decompressor (and zstd's window) now."""
        self.write, self.finish = self._before_header, lambda: None


class _MessageReads:
    """One message read from a sync source for its decryptor, a batch of plaintext at a time.

    The header comes from reads of exactly what the decryptor asks for (a source with
    ``readinto``) or from the source's chunks; the body goes through the gatherer
    (`FrameOpener`): whole frames, batches of about `READ_SIZE` bytes, read into one reused
    buffer at frame boundaries (`UnitReader`: a pipe hands each frame over once it is complete)
    or gathered from the chunks. The plaintext of a batch is lent from reused buffers
    (`Outputs`): hand it back with `give_back` once written. Frames too large to trust
    (limits.MAX_ALIGNED_UNIT) and non-framed bodies are fed as read, capped by the decryptor's
    `size_hint`, so memory follows the bytes that arrive (format-spec/message.md §9).
    """

    def __init__(self, decryptor: MessageDecryptor, source: Any) -> None:
        self._decryptor = decryptor
        self.reads = UnitReader(source) if hasattr(source, "readinto") else None
        self._chunks = None if self.reads is not None else _chunks(source, READ_SIZE)
        self._buffer = memoryview(bytearray(0))
        self._unit = 0
        self._outputs = Outputs(lend=True)
        self._opener: FrameOpener | None = None
        self._at_end = False
        self.ended = False  # the input ended and the message was complete

    def read_header(self) -> None:
        """Feed the decryptor until it needs materials.

        :raises AuthenticationError: the input ended inside the header.
        """
        decryptor = self._decryptor
        while not decryptor.needs_materials:
            chunk = self._read(decryptor.size_hint())
            if not len(chunk):
                decryptor.finalize()  # raises: the message is truncated
                raise RuntimeError("envelope: internal error: no header at the end of input")
            decryptor.update_into(chunk, memoryview(bytearray(0)))  # buffered, no plaintext yet

    def start_body(self) -> bytes | memoryview:
        """The plaintext of the body bytes that came with the header (materials supplied)."""
        header = self._decryptor.header
        if header is None or self._decryptor.needs_materials:  # pragma: no cover
            raise RuntimeError("envelope: internal error: body before materials")
        if 0 < header.frame_length <= MAX_ALIGNED_UNIT - FRAME_OVERHEAD:
            self._unit = header.frame_length + FRAME_OVERHEAD
        self._opener = FrameOpener(self._decryptor, self._outputs, self._unit)
        data = self._opener.start()
        if self.reads is not None and self._unit:
            # The decryptor holds the start of a frame: the first read completes it (§5.3).
            self.reads.align(self._unit, self._decryptor.pending_bytes % self._unit)
        return data

    def next(self) -> bytes | memoryview:
        """The plaintext of the next batch (may be empty); sets `ended` at the end of input.

        :raises AuthenticationError: tampering, truncation or trailing data.
        """
        opener = self._opener
        if opener is None:  # pragma: no cover
            raise RuntimeError("envelope: internal error: body before start_body")
        chunk = self._read(self._decryptor.size_hint() if not self._unit else 0)
        if len(chunk):
            return opener.open(chunk)
        data = opener.finish()
        self._decryptor.finalize()  # raises AuthenticationError if the message is truncated
        self.ended = True
        return data

    def give_back(self, data: bytes | memoryview) -> None:
        """``data`` (from `start_body` or `next`) was written: its buffer may be reused."""
        self._outputs.give_back(data)

    def release(self) -> None:
        """The message ended or failed: let go of the buffers now (a `Decryptor` may live on)."""
        self._buffer = memoryview(bytearray(0))
        self._outputs = Outputs(lend=True)
        self._opener = None
        self._chunks = iter(())
        self.reads = None

    def _read(self, want: int) -> Buffer:
        """The next bytes of input (empty at its end): a chunk, or a read into the reused buffer
        of ``want`` bytes (0: a batch of whole frames)."""
        if self._chunks is not None:
            for chunk in self._chunks:
                if len(chunk):  # an iterable may yield empty chunks: they do not end the input
                    return chunk
            return b""
        if self.reads is None or self._at_end:
            return b""
        size = want or nearest_units(self._unit, READ_SIZE) * self._unit
        if len(self._buffer) < size:
            self._buffer = memoryview(bytearray(size))
        got, self._at_end = self.reads.fill(self._buffer[:size])
        return self._buffer[:got]


def _pump_decrypt(decryptor: MessageDecryptor, manager: MaterialsManager, source: Any, output: _Output) -> Header:
    message = _MessageReads(decryptor, source)
    message.read_header()
    header = supply(decryptor, manager)
    output.start(header)
    if (message.reads is not None and PIPELINE_MIN_FRAME <= header.frame_length <= MAX_TRUSTED_FRAME
            and pipeline.usable_cpus() > 1):
        pipeline.decrypt_body(decryptor, source, output.write)
        output.finish()
        return header
    data = message.start_body()
    while True:
        if len(data):
            output.write(data)
            message.give_back(data)
        if message.ended:
            break
        data = message.next()
    output.finish()
    return header


def decrypt_stream(source: Source, sink: _Writable, *, keyring: Keyring | None = None,
                   materials_manager: MaterialsManager | None = None, **options: Unpack[DecryptOptions]) -> Header:
    """Decrypt one message from ``source``, writing authenticated plaintext to ``sink``.

    Each frame's plaintext is written only after its tag verifies; for signed suites the final
    frame is written only after the signature verifies. If an error is raised, frames written
    before it were authentic but the message is incomplete: discard the output.

    :param options: ``encryption_context``, ``commitment_policy``, ``max_encrypted_data_keys``, ``allow_signed``,
        ``max_header_length``, ``decompress``, ``max_decompressed_size``, ``max_compression_ratio``
        as for `envelope.decrypt`.
    :returns: the authenticated header.
    :raises AuthenticationError: tampering, truncation or trailing data.
    """
    manager = resolve_materials_manager(keyring, materials_manager)
    decryptor, output_options = new_decryptor(**options)
    return _pump_decrypt(decryptor, manager, source, _Output(sink.write, output_options))


class Encryptor(io.RawIOBase):
    """A writable file object that encrypts what is written to it into ``sink``.

    Call `close` (or leave the ``with`` block normally): only then are the final frame and
    signature written. If the ``with`` block raises, the message is left unfinished on purpose,
    so that a partial message can never decrypt as if it were complete. ``sink`` is not closed.
    """

    def __init__(self, sink: _Writable, *, keyring: Keyring | None = None,
                 materials_manager: MaterialsManager | None = None, **options: Unpack[EncryptStreamOptions]) -> None:
        super().__init__()
        self._sink = sink
        self._session = new_encryptor(keyring=keyring, materials_manager=materials_manager, **options)
        self._aborted = False
        # As in encrypt_stream: without compression or a declared length (which the session
        # counts), the batcher seals whole frames straight from what is written, a batch per
        # sink write from reused buffers; otherwise the session's general path.
        self._sealer: FrameSealer | None = None
        self._outputs = Outputs(lend=True)
        encryptor = self._session.encryptor
        if _zero_copy(self._session):
            self._sealer = FrameSealer(encryptor, self._outputs)
            self._per_batch = nearest_units(encryptor.frame_length + FRAME_OVERHEAD, WRITE_BATCH_BYTES)

    @property
    def header(self) -> Header:
        return self._session.encryptor.header

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed Encryptor")
        view = memoryview(data).cast("B")
        sealer = self._sealer
        if sealer is None:
            out = self._session.update(view)
            if out:
                self._sink.write(out)
            return len(view)
        self._write_header()
        if type(data) is bytes:
            sealer.hold(data)  # immutable: held by reference
        else:
            # The caller may reuse ``data`` once write returns: the frames completed now are
            # sealed straight from it, and only the bytes held back after them are copied.
            n, held = self._session.encryptor.frame_length, sealer.held
            sealed = max(0, (held + len(view) - 1) // n * n - held)  # what `ready` frames take of it
            sealer.hold(view[:sealed], owned=True)
            sealer.hold(view[sealed:])
        while sealer.ready:
            self._emit(sealer.seal(min(sealer.ready, self._per_batch)))
        return len(view)

    def _write_header(self) -> None:
        header = self._session.encryptor.take_header()  # b"" once written
        if header:
            self._sink.write(header)

    def _emit(self, data: bytes | memoryview) -> None:
        if data:
            self._sink.write(data)
            self._outputs.give_back(data)

    def close(self) -> None:
        if not self.closed:
            try:
                if not self._aborted:
                    if self._sealer is None:
                        self._sink.write(self._session.finalize())
                    else:
                        self._write_header()
                        # the final frame (format-spec §5.4) and, signed suites, the footer
                        self._emit(self._sealer.finish())
            finally:
                self._sealer = None
                super().close()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._aborted = True
        self.close()


class Decryptor(io.RawIOBase):
    """A readable file object yielding the authenticated plaintext of the message in ``source``.

    `read` returns plaintext only after it is authenticated, and raises AuthenticationError on
    tampering or truncation (at the latest when the end of the message is reached). Once a read
    raised, every later read raises the same error: the message was rejected.

    Over a seekable source (bytes, or a seekable file positioned at the message's start) holding
    a framed, uncompressed message, `seek` moves anywhere in the plaintext: from then on each read
    opens only the frames it touches (format-spec/operations.md §1), as `envelope.decrypt_range`
    does; a signed message needs ``allow_unverified_signature=True`` for that, since a slice cannot
    prove the signature. `seekable` says whether this message can seek (it reads the header).
    """

    def __init__(self, source: Source, *, keyring: Keyring | None = None,
                 materials_manager: MaterialsManager | None = None, allow_unverified_signature: bool = False,
                 **options: Unpack[DecryptOptions]) -> None:
        super().__init__()
        self._manager = resolve_materials_manager(keyring, materials_manager)
        self._core, output_options = new_decryptor(**options)
        self._source = source
        self._start = _message_start(source)  # None: the source cannot seek
        self._allow_unverified_signature = allow_unverified_signature
        self._message = _MessageReads(self._core, source)
        self._ready = bytearray()  # plaintext decrypted and not yet read: at most about one batch
        self._output = _Output(self._ready.extend, output_options)
        self._eof = False
        self._header: Header | None = None
        self._position = 0  # of the next plaintext byte read returns
        self._window: FrameWindow | None = None  # set by the first seek

    @property
    def header(self) -> Header:
        """The authenticated header (reads the start of the message if needed)."""
        self._core.failure.check()
        while self._header is None and not self._eof:
            self._advance()
        if self._header is None:  # pragma: no cover - _advance raises first
            raise RuntimeError("envelope: internal error: no header after the end of input")
        return self._header

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        if self._start is None:
            return False
        try:
            check_eligible(self.header, self._allow_unverified_signature)
        except PolicyError:
            return False
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to a plaintext offset (whence as for files); past the end, reads return b"".

        :raises io.UnsupportedOperation: the source cannot seek.
        :raises PolicyError: the message cannot be read at random (non-framed, compressed, or
            signed without ``allow_unverified_signature``).
        """
        if self._start is None:
            raise io.UnsupportedOperation("the source is not seekable (random access needs bytes or a seekable file)")
        window = self._window or self._open_window()
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._position + offset
        elif whence == io.SEEK_END:
            target = window.index.plaintext_length + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        self._position = target
        return target

    def _open_window(self) -> FrameWindow:
        header = self.header  # authenticated through the streaming path: the data key is not asked for again
        check_eligible(header, self._allow_unverified_signature)
        source = positional(self._source, start=self._start)
        index = run_flow(open_message(self._core, source.size,
                                      allow_unverified_signature=self._allow_unverified_signature),
                         source, self._manager.decrypt_materials)
        self._window = FrameWindow(index, source, self._manager.decrypt_materials)
        self._ready.clear()
        return self._window

    def _advance(self) -> None:
        """Decrypt the next chunk of the source into the ready plaintext. After an error, this
        and every later read raise it again, and the plaintext not yet read is dropped."""
        self._core.failure.check()
        try:
            self._step()
        except BaseException as exc:
            self._core.failure.trip(exc)
            self._ready.clear()
            self._output.release()
            self._message.release()
            raise

    def _step(self) -> None:
        message = self._message
        if self._header is None:
            message.read_header()
            self._header = supply(self._core, self._manager)
            self._output.start(self._header)
            data = message.start_body()
        else:
            data = message.next()
        if len(data):
            self._output.write(data)
            message.give_back(data)
        if message.ended:
            self._output.finish()
            self._output.release()
            message.release()
            self._eof = True

    def readinto(self, buffer: Any) -> int:
        self._core.failure.check()
        view = memoryview(buffer).cast("B")
        if self._window is not None:
            try:
                n = self._window.read_into(self._position, view)
            except BaseException as exc:
                self._core.failure.trip(exc)  # as for a sequential read: the message is rejected
                raise
        else:
            while not self._ready and not self._eof:
                self._advance()
            n = min(len(view), len(self._ready))
            view[:n] = self._ready[:n]
            del self._ready[:n]
        self._position += n
        return n

    def readall(self) -> bytes:
        self._core.failure.check()
        if self._window is not None:
            return super().readall() or b""
        while not self._eof:
            self._advance()
        data = bytes(self._ready)
        self._ready.clear()
        self._position += len(data)
        return data


def _message_start(source: object) -> int | None:
    """Where the message starts in ``source`` if it can be read at any offset (bytes, or a file
    that says it can seek), else None."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return 0
    seekable = getattr(source, "seekable", None)
    if callable(seekable) and seekable():
        return int(source.tell())  # type: ignore[attr-defined]
    return None
