"""The async streaming driver: runs the sans-IO core between async sources and sinks, releasing
plaintext only after its frame verified (signed messages: the final frame after the signature).
Reading, crypto and writing are three tasks joined by one-slot channels, so memory stays a few chunks.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread

from ..format.header import Header
from ..keyrings.base import Keyring
from ..materials.base import MaterialsManager
from ..streaming.compression import compression_of
from ..streaming.decryptor import MessageDecryptor
from ..streaming.session import DEFAULT_FRAME_LENGTH, EncryptSession, OutputOptions, new_decryptor, plaintext_writer
from .adapters import Buffer, Send, Sink, Source, chunks, sender, sync_file
from .materials import ResolvedManager, resolve, start_encryptor, supply_materials
from .offload import COMPRESS_WEIGHT, OFFLOAD_BYTES, SIGNED_WEIGHT, offload
from .protocols import AsyncKeyring, AsyncMaterialsManager
from .worker import decrypt_files, encrypt_files

__all__ = ["decrypt_stream", "encrypt_stream"]

T = TypeVar("T")
READ_SIZE = 1024 * 1024
_MAX_READ_SIZE = 64 * 1024 * 1024


def _read_size(options: Mapping[str, Any]) -> int:
    # Read at least a frame per call, as the sync driver does; new_encryptor validates the option.
    n = options.get("frame_length")
    n = n if isinstance(n, int) and not isinstance(n, bool) else DEFAULT_FRAME_LENGTH
    return min(max(n, READ_SIZE), _MAX_READ_SIZE)


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


# Heavy frames are sealed and opened in a worker thread (offload.py); a compressed message is
# decompressed there too, each output piece waiting for the writer, so a slow sink holds back
# decompression as well.
async def _in_stages(stream: AsyncGenerator[Buffer, None], send: Send,
                     middle: Callable[[AsyncIterator[Buffer], Send], Awaitable[T]]) -> T:
    """Run ``middle`` between a reader task and a writer task joined by one-slot channels, so
    that reading chunk n+1, the crypto of chunk n and the write of chunk n-1 overlap; memory
    stays a few chunks. Errors surface as themselves, not as exception groups."""
    to_middle, from_reader = anyio.create_memory_object_stream[Buffer](1)
    to_writer, from_middle = anyio.create_memory_object_stream[bytes](1)
    results: list[T] = []

    async def read() -> None:
        async with to_middle:
            async for chunk in stream:
                await to_middle.send(chunk)

    async def write() -> None:
        async with from_middle:
            async for data in from_middle:
                await send(data)

    async def forward(data: bytes) -> None:
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


async def _pump_encrypt(session: EncryptSession, stream: AsyncIterator[Buffer], send: Send) -> None:
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
        await send(await offload(cost, session.update, chunk))
    # The final frame; for signed suites also the ECDSA signature (~0.4 ms), worth a thread hop.
    heavy = session.compressor is not None or weight > 1
    final_cost = OFFLOAD_BYTES if heavy else fed - _sealed(fed, n)
    await send(await offload(final_cost, session.finalize))


def _decrypt_step(decryptor: MessageDecryptor, chunk: Buffer, write: Callable[[bytes], object]) -> None:
    out = decryptor.update(chunk)
    if out:
        write(out)


async def _pump_decrypt(decryptor: MessageDecryptor, options: OutputOptions, manager: ResolvedManager,
                        stream: AsyncIterator[Buffer], send: Send) -> Header:
    header: Header | None = None
    weight = 1
    decompressing = False
    finish: Callable[[], None] = lambda: None
    write: Callable[[bytes], object] = lambda data: None

    def emit(piece: bytes | memoryview) -> None:
        # Runs in the worker thread: wait until the loop has sent this piece (back-pressure).
        anyio.from_thread.run(send, bytes(piece))

    async for chunk in stream:
        if header is None:
            decryptor.update(chunk)  # parses and buffers; releases nothing before the header verifies
            if not decryptor.needs_materials:
                continue
            header = await supply_materials(decryptor, manager)
            weight = SIGNED_WEIGHT if header.algorithm.is_signing else 1
            # Called even when not decompressing: it refuses unknown envelope: extensions (§8.1).
            write, finish = plaintext_writer(header, emit, options)
            decompressing = options.decompress and compression_of(header.encryption_context) is not None
            chunk = b""  # now decrypt the body bytes that came with the header
        if decompressing:
            # Output size is not bounded by the input (zstd), so it is produced in the worker and
            # each piece waits for the sink.
            await anyio.to_thread.run_sync(_decrypt_step, decryptor, chunk, write)
            continue
        # Work happens only when the chunk completes a frame (or the buffered body is flushed).
        # A short last chunk holding only a signed message's footer verifies inline (~0.7 ms).
        completes = not chunk or len(chunk) >= decryptor.size_hint()
        cost = decryptor.output_bound(len(chunk)) * weight if completes else 0
        await send(await offload(cost, decryptor.update, chunk))
    decryptor.finalize()  # raises AuthenticationError if the message is truncated
    if header is None:  # pragma: no cover - finalize raised
        raise RuntimeError("envelope: internal error: finished without a header")
    if decompressing:
        await anyio.to_thread.run_sync(finish)
    return header


async def encrypt_stream(source: Source, sink: Sink, *, keyring: AsyncKeyring | Keyring | None = None,
                         materials_manager: AsyncMaterialsManager | MaterialsManager | None = None,
                         **options: Any) -> Header:
    """Encrypt everything ``source`` yields into one message sent to ``sink``.

    The message is complete only when this returns: if it raises or is cancelled, ``sink`` holds
    a message without its final frame, which never decrypts.

    :param source: an anyio ``ByteReceiveStream``, an async iterable of bytes, or anything with
        an async ``read(n)`` (anyio's ``AsyncFile``).
    :param sink: an anyio ``ByteSendStream``, or anything with an async ``write(data)`` or
        ``send(data)``; it is not closed.
    :param keyring: a `Keyring` (run in a worker thread) or an `AsyncKeyring` (awaited); or pass
        ``materials_manager=``, sync or `AsyncMaterialsManager`.
    :param options: as for `envelope.encrypt_stream`.
    :returns: the message header.
    """
    manager = resolve(keyring, materials_manager)
    src_file, dst_file = sync_file(source), sync_file(sink)
    if src_file is not None and dst_file is not None:
        return await encrypt_files(src_file, dst_file, manager, options)
    send = sender(sink)
    async with aclosing(chunks(source, _read_size(options))) as stream:
        session = await start_encryptor(manager, options)
        await _in_stages(stream, send, partial(_pump_encrypt, session))
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
    send = sender(sink)
    decryptor, output_options = new_decryptor(**options)
    async with aclosing(chunks(source, READ_SIZE)) as stream:
        return await _in_stages(stream, send, partial(_pump_decrypt, decryptor, output_options, manager))
