"""The async streaming driver: runs the sans-IO core between async sources and sinks, releasing
plaintext only after its frame verified (signed messages: the final frame after the signature).
The whole message's crypto runs in one worker thread (segment.py), fed and drained by the loop
through small pipes, so memory stays a few batches and the event loop never does the crypto.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from functools import partial
from typing import Any, Unpack

from ..format.body import FRAME_OVERHEAD
from ..format.header import Header
from ..keyrings.base import Keyring
from ..materials.base import MaterialsManager
from ..streaming.batcher import FrameSealer
from ..streaming.buffers import Outputs
from ..streaming.compression import compression_of
from ..streaming.decryptor import MessageDecryptor
from ..streaming.gatherer import FrameOpener
from ..streaming.limits import (
    ASYNC_BATCH_BYTES,
    ASYNC_DECRYPT_BATCH_BYTES,
    ASYNC_PIPE_DEPTH,
    DECOMPRESSED_PIECE_ASYNC,
    MAX_ALIGNED_UNIT,
    MAX_READ_SIZE,
    MAX_ZERO_COPY_FRAME,
    nearest_units,
)
from ..streaming.options import DecryptOptions, EncryptStreamOptions
from ..streaming.session import EncryptSession, OutputOptions, new_decryptor, plaintext_writer
from .adapters import Buffer, Reader, Send, Sink, Source, chunks, reader, sender, sync_file
from .materials import resolve, start_encryptor, supply_materials
from .protocols import AsyncKeyring, AsyncMaterialsManager
from .segment import FileInputs, Inputs, Pipe, PipeInputs, run_segment
from .worker import decrypt_files, encrypt_files

__all__ = ["decrypt_stream", "encrypt_stream"]

# Batch sizes and caps live in envelope/streaming/limits.py (with the measurements behind them);
# bound here so that tests can shrink the batches of this module alone.
BATCH_BYTES = ASYNC_BATCH_BYTES
DECRYPT_BATCH_BYTES = ASYNC_DECRYPT_BATCH_BYTES

Emit = Callable[[bytes | memoryview], None]
Busy = Callable[[], bool]  # whether the sink has output queued (worth gathering a bigger batch)


def _batch(unit: int, batch: int) -> int:
    """Read size for whole units (frames): about ``batch`` bytes of them, at least one."""
    if unit <= 0:
        return batch
    return min(unit * nearest_units(unit, batch), MAX_READ_SIZE)


# -- the worker's side: each of these runs in the segment's worker thread ------------------------


def _seal_frames(session: EncryptSession, outputs: Outputs, inputs: Inputs, emit: Emit, busy: Busy) -> None:
    """Framed messages without compression: whole frames sealed in batches, without copying
    chunks that hold whole frames. A batch goes out once it holds BATCH_BYTES, or as soon as the
    sink has nothing queued or no more input is waiting: sealed frames never wait for input
    that has not arrived, while a busy sink gets fewer, larger writes (each may cost it a
    thread hop)."""
    encryptor = session.encryptor
    emit(encryptor.take_header())
    # Sized by output, so that tiny frames (each with FRAME_OVERHEAD bytes) still make batches
    # of about BATCH_BYTES.
    unit = encryptor.frame_length + FRAME_OVERHEAD
    per_batch = nearest_units(unit, BATCH_BYTES)
    sealer = FrameSealer(encryptor, outputs, inputs.release)
    while (chunk := inputs.next()) is not None:
        session.count(len(chunk))
        sealer.hold(chunk, owned=inputs.reuses_buffers)
        while sealer.ready >= per_batch:
            emit(sealer.seal(per_batch))
        if sealer.ready and not (busy() and inputs.more_ready()):
            emit(sealer.seal(sealer.ready))
    emit(sealer.finish())  # the final frame (format-spec §5.4) and, signed suites, the footer


def _seal_general(session: EncryptSession, inputs: Inputs, emit: Emit, busy: Busy) -> None:
    """Compressed or non-framed messages, through the session's update/finalize (which copy)."""
    emit(session.encryptor.take_header())
    while (chunk := inputs.next()) is not None:
        out = session.update(chunk)
        inputs.release(chunk)
        emit(out)
    emit(session.finalize())


def _open_frames(decryptor: MessageDecryptor, opener: FrameOpener, inputs: Inputs, emit: Emit, busy: Busy) -> None:
    """Authenticated plaintext of every chunk (the opener gathers a frame split across chunks;
    the decryptor holds a signed message's final frame until the signature verified). Chunks
    are opened together, into one output, as `_seal_frames` batches frames."""
    emit(opener.start())  # the body bytes that came with the header
    held: list[Buffer] = []
    size = 0
    while (chunk := inputs.next()) is not None:
        held.append(chunk)
        size += len(chunk)
        if size >= DECRYPT_BATCH_BYTES or not (busy() and inputs.more_ready()):
            out = opener.open(*held)
            for used in held:
                inputs.release(used)
            held.clear()
            size = 0
            emit(out)
    emit(opener.open(*held))
    for used in held:
        inputs.release(used)
    emit(opener.finish())
    decryptor.finalize()  # raises AuthenticationError if the message is truncated


def _open_decompressed(decryptor: MessageDecryptor, header: Header, options: OutputOptions, inputs: Inputs,
                       emit: Emit, busy: Busy) -> None:
    """Compressed messages: output size is not bounded by the input (zstd), so each piece waits
    for room in the pipe to the sink (back-pressure holds back decompression too)."""
    write, finish = plaintext_writer(header, lambda piece: emit(bytes(piece)), options, piece_size=DECOMPRESSED_PIECE_ASYNC)

    def step(chunk: Buffer) -> None:
        out = decryptor.update(chunk)
        if out:
            write(out)

    step(b"")  # the body bytes that came with the header
    while (chunk := inputs.next()) is not None:
        step(chunk)
        inputs.release(chunk)
    decryptor.finalize()
    finish()


# -- the loop's side ----------------------------------------------------------------------------


async def _read_header(decryptor: MessageDecryptor, source: Reader) -> None:
    """Read until the header is complete; reads are sized by the decryptor (at least 4 KiB, so
    a little of the body comes along), so that later reads can be whole frames."""
    while not decryptor.needs_materials:
        chunk = await source.read(decryptor.size_hint())
        if not chunk:
            decryptor.finalize()  # raises: the message ended inside the header
            raise RuntimeError("envelope: internal error: truncated header accepted")  # pragma: no cover
        decryptor.update(chunk)  # buffers a copy
        source.release(chunk)


Task = Callable[[], Awaitable[None]]


def _inputs(source: Source, source_reader: Reader | None, size: int, unit: int, first: int | None,
            stop: threading.Event) -> tuple[Inputs, Task | None, Pipe[Any] | None]:
    """The worker's input: the AsyncFile's sync file read in the worker's own reader thread, or
    chunks that a task on the loop reads from the async source into a pipe (None ends them)."""
    if source_reader is None:
        return FileInputs(sync_file(source), size, unit, stop, first), None, None
    inbox: Pipe[Buffer | None] = Pipe(ASYNC_PIPE_DEPTH, stop)
    reader_ = source_reader

    async def feed() -> None:
        async with aclosing(chunks(reader_, size, first)) as stream:
            async for chunk in stream:
                await inbox.aput(chunk)
        await inbox.aput(None)

    return PipeInputs(inbox, reader_.reuses_buffers, reader_.release), feed, inbox


def _outputs(sink: Sink, send: Send | None, outputs: Outputs,
             stop: threading.Event) -> tuple[Emit, Busy, Callable[[], None], Task | None, Pipe[Any] | None]:
    """(emit, busy, end, task, pipe): the worker's output goes to the AsyncFile's sync file
    written by the worker itself, or through a pipe to a task on the loop that sends it to the
    sink. Buffers lent to the sink go back to ``outputs`` once its write returned."""
    if send is None:
        write = sync_file(sink).write

        def emit_to_file(data: bytes | memoryview) -> None:
            if data:
                write(data)
                outputs.give_back(data)

        return emit_to_file, lambda: False, lambda: None, None, None
    outbox: Pipe[bytes | memoryview | None] = Pipe(ASYNC_PIPE_DEPTH, stop)
    send_ = send

    def emit(data: bytes | memoryview) -> None:
        if data:
            outbox.put(data)

    async def drain() -> None:
        while (data := await outbox.aget()) is not None:
            await send_(data)
            outputs.give_back(data)

    return emit, outbox.ready, partial(outbox.put, None), drain, outbox


async def _run(work: Callable[[Inputs, Emit, Busy], None], source: Source, source_reader: Reader | None,
               sink: Sink, send: Send | None, outputs: Outputs, size: int, unit: int,
               first: int | None = None) -> None:
    """Run ``work(inputs, emit, busy)`` in a worker thread of its own between the source and the
    sink: reads of ``size`` (the first of ``first``), ``unit`` (a frame, or 1) the boundary at
    which a short read from a pipe is handed on. Memory: a few chunks and batches in the pipes."""
    stop = threading.Event()
    emit, busy, end, drain, outbox = _outputs(sink, send, outputs, stop)
    inputs, feed, inbox = _inputs(source, source_reader, size, unit, first, stop)

    def whole() -> None:
        try:
            work(inputs, emit, busy)
            end()
        finally:
            inputs.close()

    await run_segment(whole, *(task for task in (feed, drain) if task is not None), stop=stop,
                      pipes=tuple(pipe for pipe in (inbox, outbox) if pipe is not None))


def _endpoints(source: Source, sink: Sink) -> tuple[Reader | None, Send | None, bool]:
    """(an async reader unless the worker reads the source's file itself, an async send unless
    it writes the sink's file itself, whether outputs may be lent). Checks both types."""
    if sync_file(sink) is not None:
        send: Send | None = None
        lend = True
    else:
        send, lend = sender(sink)
    return (None if sync_file(source) is not None else reader(source)), send, lend


async def encrypt_stream(source: Source, sink: Sink, *, keyring: AsyncKeyring | Keyring | None = None,
                         materials_manager: AsyncMaterialsManager | MaterialsManager | None = None,
                         **options: Unpack[EncryptStreamOptions]) -> Header:
    """Encrypt everything ``source`` yields into one message sent to ``sink``.

    The message is complete only when this returns: if it raises or is cancelled, ``sink`` holds
    a message without its final frame, which never decrypts. The crypto runs in a worker thread
    of its own; an anyio ``AsyncFile`` source or sink is read or written there too, through the
    file under it (both files: the whole transform runs in that thread, like `encrypt_file`).

    :param source: an anyio ``ByteReceiveStream``, an async iterable of bytes, or anything with
        an async ``read(n)`` (anyio's ``AsyncFile``; an async ``readinto`` is used if present).
    :param sink: an anyio ``ByteSendStream``, or anything with an async ``write(data)`` or
        ``send(data)``; it is not closed. ``send`` gets ``bytes``. ``write`` is treated like
        `io.RawIOBase.write`: it gets a memoryview of a reused buffer and must not keep it after
        it returns (copy with ``bytes(data)`` to keep it); a buffer is reused only once nothing
        holds a view of it, so a sink that keeps one still keeps the right bytes.
    :param keyring: a `Keyring` (run in a worker thread) or an `AsyncKeyring` (awaited); or pass
        ``materials_manager=``, sync or `AsyncMaterialsManager`.
    :param options: as for `envelope.encrypt_stream`.
    :returns: the message header.
    """
    manager = resolve(keyring, materials_manager)
    src_file, dst_file = sync_file(source), sync_file(sink)
    if src_file is not None and dst_file is not None:
        return await encrypt_files(src_file, dst_file, manager, options)
    source_reader, send, lend = _endpoints(source, sink)
    session = await start_encryptor(manager, options)
    n = session.encryptor.frame_length
    outputs = Outputs(lend)
    work: Callable[[Inputs, Emit, Busy], None]
    if session.compressor is None and 0 < n <= MAX_ZERO_COPY_FRAME:
        work = partial(_seal_frames, session, outputs)
    else:
        work = partial(_seal_general, session)
    await _run(work, source, source_reader, sink, send, outputs, _batch(n, BATCH_BYTES), n or 1)
    return session.encryptor.header


async def decrypt_stream(source: Source, sink: Sink, *, keyring: AsyncKeyring | Keyring | None = None,
                         materials_manager: AsyncMaterialsManager | MaterialsManager | None = None,
                         **options: Unpack[DecryptOptions]) -> Header:
    """Decrypt one message from ``source``, sending authenticated plaintext to ``sink``.

    Each frame's plaintext is sent only after its tag verifies; for signed suites the final frame
    only after the signature verifies. If this raises or is cancelled, what was sent was authentic
    but the message is incomplete: discard it (`decrypt_file` does that for files).

    :param source: as for `encrypt_stream`.
    :param sink: as for `encrypt_stream`.
    :param options: ``encryption_context``, ``commitment_policy``, ``max_encrypted_data_keys``,
        ``allow_signed``, ``decompress``, ``max_decompressed_size``, ``max_compression_ratio`` as
        for `envelope.decrypt`.
    :returns: the authenticated header.
    :raises AuthenticationError: tampering, truncation or trailing data.
    """
    manager = resolve(keyring, materials_manager)
    src_file, dst_file = sync_file(source), sync_file(sink)
    if src_file is not None and dst_file is not None:
        return await decrypt_files(src_file, dst_file, manager, options)
    body_reader, send, lend = _endpoints(source, sink)
    decryptor, output_options = new_decryptor(**options)
    # The header is read on the loop (the materials call may be awaited), the body in the segment.
    await _read_header(decryptor, body_reader if body_reader is not None else reader(source))
    header = await supply_materials(decryptor, manager)
    outputs = Outputs(lend)
    # The check plaintext_writer makes: it refuses unknown envelope: extensions (§8.1).
    if output_options.decompress and compression_of(header.encryption_context) is not None:
        await _run(partial(_open_decompressed, decryptor, header, output_options), source, body_reader, sink,
                   send, outputs, DECRYPT_BATCH_BYTES, 1)
        return header
    # The body bytes that came with the header, then reads of whole frames, so that frames are
    # opened straight from the chunks: the first read completes the frame those bytes began.
    unit = header.frame_length + FRAME_OVERHEAD if header.frame_length else 0
    # Reads follow the bytes that arrive, not a frame length a hostile header may claim (§9):
    # frames beyond limits.MAX_ALIGNED_UNIT are gathered by the decryptor from smaller reads.
    aligned = 0 < unit <= MAX_ALIGNED_UNIT
    size = _batch(unit, DECRYPT_BATCH_BYTES) if aligned else DECRYPT_BATCH_BYTES
    rest = decryptor.size_hint()
    first = rest + size - unit if aligned and 0 < rest <= unit else size
    opener = FrameOpener(decryptor, outputs, unit if aligned else 0)
    await _run(partial(_open_frames, decryptor, opener), source, body_reader, sink, send, outputs, size,
               unit if aligned else 1, first)
    return header
