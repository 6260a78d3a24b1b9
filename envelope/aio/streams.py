"""The async streaming driver: runs the sans-IO core between async sources and sinks, releasing
plaintext only after its frame verified (signed messages: the final frame after the signature).
Reading, crypto and writing are three tasks joined by small channels, each step handling a batch
of whole frames, so memory stays a few batches and the crypto costs one thread hop a batch.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread

from ..format.body import FRAME_OVERHEAD
from ..format.header import Header
from ..keyrings.base import Keyring
from ..materials.base import MaterialsManager
from ..streaming.compression import compression_of
from ..streaming.decryptor import MessageDecryptor
from ..streaming.session import EncryptSession, OutputOptions, new_decryptor, plaintext_writer
from .adapters import Buffer, Reader, Send, Sink, Source, chunks, reader, sender, sync_file
from .buffers import Outputs
from .frames import FrameOpener, FrameSealer
from .materials import resolve, start_encryptor, supply_materials
from .offload import COMPRESS_WEIGHT, OFFLOAD_BYTES, SIGNED_WEIGHT, offload
from .protocols import AsyncKeyring, AsyncMaterialsManager
from .worker import decrypt_files, encrypt_files

__all__ = ["decrypt_stream", "encrypt_stream"]

T = TypeVar("T")
# Bytes per read and per batch of frames, and batches each channel holds (so that a stage whose
# worker thread wakes late on a loaded machine does not stall the others). Encrypt: one thread
# hop each for the read, the crypto and the write cover two 1 MiB frames. Decrypt: one frame,
# since plaintext written to a file in 2 MiB page-aligned pieces measured slow and erratic
# (often 5-7 ms inside write(2) under strace, against ~0.3 ms for the 1 MiB pieces the sync
# driver writes). Measured with bench/bench_async.py; peak memory ~20 MiB (encrypt) and
# ~15 MiB (decrypt) a stream at the default frame length.
BATCH_BYTES = 2 * 1024 * 1024
_DEPTH = 2
DECRYPT_BATCH_BYTES = 1024 * 1024
_DECRYPT_DEPTH = 4
_MAX_READ_SIZE = 64 * 1024 * 1024
# The largest frame sealed by FrameSealer (bigger ones take the session's general path, which
# holds a frame whatever its size); the sync driver's zero-copy path uses the same limit.
_MAX_BATCH_FRAME = 64 * 1024 * 1024
# As in the sync driver and the decryptor's size_hint: reads sized by a header's frame length
# stop here, since a hostile header may claim any length (format-spec §9).
_MAX_ALIGNED_FRAME = 4 * 1024 * 1024 + 32


def _batch(unit: int, batch: int) -> int:
    """Read size for whole units (frames): about ``batch`` bytes of them, at least one."""
    if unit <= 0:
        return batch
    return min(unit * max(1, (batch + unit // 2) // unit), _MAX_READ_SIZE)


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to raise for a failed stage group: the first that is not a cancellation."""
    cancelled = anyio.get_cancelled_exc_class()
    flat: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            pending[:0] = list(exc.exceptions)
        else:
            flat.append(exc)
    for exc in flat:
        if not isinstance(exc, cancelled):
            return exc
    return flat[0] if flat else group


# Heavy batches are sealed and opened in a worker thread (offload.py); a compressed message is
# decompressed there too, each output piece waiting for the writer, so a slow sink holds back
# decompression as well.
async def _in_stages(stream: AsyncGenerator[Buffer, None], send: Send, outputs: Outputs, depth: int,
                     middle: Callable[[AsyncIterator[Buffer], Send], Awaitable[T]]) -> T:
    """Run ``middle`` between a reader task and a writer task joined by small channels, so that
    reading chunk n+1, the crypto of chunk n and the write of chunk n-1 overlap; memory stays a
    few chunks. Buffers lent to the sink go back to ``outputs`` once its write returned.
    Errors surface as themselves, not as exception groups."""
    to_middle, from_reader = anyio.create_memory_object_stream[Buffer](depth)
    to_writer, from_middle = anyio.create_memory_object_stream[bytes | memoryview](depth)
    results: list[T] = []

    async def read() -> None:
        async with to_middle:
            async for chunk in stream:
                await to_middle.send(chunk)

    async def write() -> None:
        async with from_middle:
            async for data in from_middle:
                await send(data)
                outputs.give_back(data)

    async def forward(data: bytes | memoryview) -> None:
        if data:
            await to_writer.send(data)

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(read)
            group.start_soon(write)
            async with from_reader, to_writer:
                results.append(await middle(from_reader, forward))
    except BaseExceptionGroup as failed:
        raise _first_error(failed) from None
    return results[0]


def _sealed(total: int, frame_length: int) -> int:
    """Plaintext bytes the encryptor has sealed after being fed ``total``: it holds back the last
    1..frame_length bytes until it knows which frame is final."""
    return frame_length * ((total - 1) // frame_length) if frame_length and total > 0 else 0


async def _pump_frames(session: EncryptSession, source: Reader, outputs: Outputs, stream: AsyncIterator[Buffer],
                       send: Send) -> None:
    """Framed messages without compression: whole frames sealed in batches, without copying
    chunks that hold whole frames."""
    encryptor = session.encryptor
    await send(encryptor.take_header())
    n = encryptor.frame_length
    signed = encryptor.header.algorithm.is_signing
    weight = SIGNED_WEIGHT if signed else 1
    sealer = FrameSealer(encryptor, outputs, source.release)
    async for chunk in stream:
        session.count(len(chunk))
        sealer.hold(chunk, owned=source.reuses_buffers)
        ready = sealer.ready
        if ready:
            await send(await offload(ready * n * weight, sealer.seal, ready))
    # The final frame; for signed suites also the ECDSA signature (~0.4 ms), worth a thread hop.
    final_cost = OFFLOAD_BYTES if signed else sealer.held
    await send(await offload(final_cost, sealer.finish))


async def _pump_general(session: EncryptSession, source: Reader, outputs: Outputs, stream: AsyncIterator[Buffer],
                        send: Send) -> None:
    """Compressed or non-framed messages, through the session's update/finalize (which copy)."""
    encryptor = session.encryptor
    await send(encryptor.take_header())
    n = encryptor.frame_length
    weight = SIGNED_WEIGHT if encryptor.header.algorithm.is_signing else 1
    fed = 0
    async for chunk in stream:
        if session.compressor is not None:
            cost = len(chunk) * COMPRESS_WEIGHT
        else:
            cost = (_sealed(fed + len(chunk), n) - _sealed(fed, n)) * weight
            fed += len(chunk)
        out = await offload(cost, session.update, chunk)
        source.release(chunk)
        await send(out)
    # The final frame; for signed suites also the ECDSA signature (~0.4 ms), worth a thread hop.
    heavy = session.compressor is not None or weight > 1
    final_cost = OFFLOAD_BYTES if heavy else fed - _sealed(fed, n)
    await send(await offload(final_cost, session.finalize))


def _decrypt_step(decryptor: MessageDecryptor, chunk: Buffer, write: Callable[[bytes], object]) -> None:
    out = decryptor.update(chunk)
    if out:
        write(out)


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


async def _pump_decompress(decryptor: MessageDecryptor, header: Header, options: OutputOptions, source: Reader,
                           stream: AsyncIterator[Buffer], send: Send) -> None:
    """Compressed messages: output size is not bounded by the input (zstd), so it is produced in
    the worker and each piece waits for the sink."""

    def emit(piece: bytes | memoryview) -> None:
        # Runs in the worker thread: wait until the loop has sent this piece (back-pressure).
        anyio.from_thread.run(send, bytes(piece))

    write, finish = plaintext_writer(header, emit, options)
    await anyio.to_thread.run_sync(_decrypt_step, decryptor, b"", write)  # body bytes that came with the header
    async for chunk in stream:
        await anyio.to_thread.run_sync(_decrypt_step, decryptor, chunk, write)
        source.release(chunk)
    decryptor.finalize()  # raises AuthenticationError if the message is truncated
    await anyio.to_thread.run_sync(finish)


async def _pump_open(decryptor: MessageDecryptor, opener: FrameOpener, weight: int, source: Reader,
                     stream: AsyncIterator[Buffer], send: Send) -> None:
    async for chunk in stream:
        # Work happens only when the chunk completes a frame; a short last chunk holding only a
        # signed message's footer verifies inline (~0.7 ms).
        completes = len(chunk) >= decryptor.size_hint()
        cost = decryptor.output_bound(len(chunk)) * weight if completes else 0
        out = await offload(cost, opener.open, chunk)
        source.release(chunk)  # the decryptor keeps a copy of any partial frame
        await send(out)
    decryptor.finalize()  # raises AuthenticationError if the message is truncated


async def encrypt_stream(source: Source, sink: Sink, *, keyring: AsyncKeyring | Keyring | None = None,
                         materials_manager: AsyncMaterialsManager | MaterialsManager | None = None,
                         **options: Any) -> Header:
    """Encrypt everything ``source`` yields into one message sent to ``sink``.

    The message is complete only when this returns: if it raises or is cancelled, ``sink`` holds
    a message without its final frame, which never decrypts.

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
    send, lend = sender(sink)
    outputs = Outputs(lend)
    source_reader = reader(source)
    session = await start_encryptor(manager, options)
    n = session.encryptor.frame_length
    framed = session.compressor is None and 0 < n <= _MAX_BATCH_FRAME
    async with aclosing(chunks(source_reader, _batch(n, BATCH_BYTES))) as stream:
        await _in_stages(stream, send, outputs, _DEPTH,
                         partial(_pump_frames if framed else _pump_general, session, source_reader, outputs))
    return session.encryptor.header


async def decrypt_stream(source: Source, sink: Sink, *, keyring: AsyncKeyring | Keyring | None = None,
                         materials_manager: AsyncMaterialsManager | MaterialsManager | None = None,
                         **options: Any) -> Header:
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
    send, lend = sender(sink)
    outputs = Outputs(lend)
    decryptor, output_options = new_decryptor(**options)
    source_reader = reader(source)
    await _read_header(decryptor, source_reader)
    header = await supply_materials(decryptor, manager)
    # The check plaintext_writer makes: it refuses unknown envelope: extensions (§8.1).
    if output_options.decompress and compression_of(header.encryption_context) is not None:
        async with aclosing(chunks(source_reader, DECRYPT_BATCH_BYTES)) as stream:
            await _in_stages(stream, send, outputs, _DECRYPT_DEPTH,
                             partial(_pump_decompress, decryptor, header, output_options, source_reader))
        return header
    weight = SIGNED_WEIGHT if header.algorithm.is_signing else 1
    opener = FrameOpener(decryptor, outputs)
    # The body bytes that came with the header, then reads of whole frames, so that frames are
    # opened straight from the chunks: the first read completes the frame those bytes began.
    data = await offload(decryptor.output_bound(0) * weight, opener.open, b"")
    await send(data)
    outputs.give_back(data)
    del data
    unit = header.frame_length + FRAME_OVERHEAD if header.frame_length else 0
    # Reads follow the bytes that arrive, not a frame length a hostile header may claim (§9):
    # frames beyond _MAX_ALIGNED_FRAME are gathered by the decryptor from smaller reads.
    aligned = 0 < unit <= _MAX_ALIGNED_FRAME
    size = _batch(unit, DECRYPT_BATCH_BYTES) if aligned else DECRYPT_BATCH_BYTES
    rest = decryptor.size_hint()
    first = rest + size - unit if aligned and 0 < rest <= unit else size
    async with aclosing(chunks(source_reader, size, first)) as stream:
        await _in_stages(stream, send, outputs, _DECRYPT_DEPTH,
                         partial(_pump_open, decryptor, opener, weight, source_reader))
    return header
