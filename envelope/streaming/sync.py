"""The synchronous driver: runs the sans-IO core over file-like objects and iterables
(`encrypt_stream`, `decrypt_stream`; the file objects in fileobj.py read through it too).

Plaintext reaches the sink only after its frame verified (signed messages: the final frame after
the signature). A decrypt that fails part-way may already have written earlier, authenticated
frames; write to a temporary file and rename on success if the output must be all-or-nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Protocol, Unpack

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
from .session import (
    EncryptSession,
    OutputOptions,
    new_decryptor,
    new_encryptor,
    plaintext_writer,
    resolve_materials_manager,
    supply,
)

__all__ = ["Buffer", "MessageReads", "Output", "Source", "Writable", "decrypt_stream", "encrypt_stream", "zero_copy"]

Buffer = bytes | bytearray | memoryview


class Writable(Protocol):
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


def zero_copy(session: EncryptSession) -> bool:
    """Whether the zero-copy paths (the batcher, reused whole-frame buffers) may seal this
    message: compression and a declared length (which the session counts) take the general
    path, and so do frames larger than limits.MAX_ZERO_COPY_FRAME."""
    return (session.compressor is None and session.plaintext_length is None
            and 0 < session.encryptor.frame_length <= MAX_ZERO_COPY_FRAME)


def _pump_encrypt(session: EncryptSession, source: Any, sink: Writable) -> None:
    encryptor = session.encryptor
    sink.write(encryptor.take_header())
    n = encryptor.frame_length
    if zero_copy(session):
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


def _pump_encrypt_frames(session: EncryptSession, source: Any, sink: Writable) -> None:
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


def _pump_encrypt_chunks(session: EncryptSession, chunks: Iterator[Buffer], sink: Writable) -> None:
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


def encrypt_stream(source: Source, sink: Writable, *, keyring: Keyring | None = None,
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


class Output:
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


class MessageReads:
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
        """The message ended or failed: let go of the buffers now (a fileobj.Decryptor may live on)."""
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


def _pump_decrypt(decryptor: MessageDecryptor, manager: MaterialsManager, source: Any, output: Output) -> Header:
    message = MessageReads(decryptor, source)
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


def decrypt_stream(source: Source, sink: Writable, *, keyring: Keyring | None = None,
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
    return _pump_decrypt(decryptor, manager, source, Output(sink.write, output_options))
