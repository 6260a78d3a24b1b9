"""Async file-to-file encrypt and decrypt that never leave a partial output: an `AtomicOutput`
beside the destination takes its place only once the message is complete (decrypt: fully
authenticated) and synced; on error, cancellation or kill -9 the destination is left as it was."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import IO, Unpack

import anyio

from ..format.header import Header
from ..keyrings.base import Keyring
from ..materials.base import MaterialsManager
from ..streaming.atomic import AtomicOutput
from ..streaming.files import StrPath, check_paths, open_input
from ..streaming.options import DecryptOptions, EncryptStreamOptions
from .materials import resolve
from .offload import in_thread
from .protocols import AsyncKeyring, AsyncMaterialsManager
from .worker import decrypt_files, encrypt_files

__all__ = ["decrypt_file", "encrypt_file"]

_Run = Callable[[IO[bytes], IO[bytes]], Awaitable[Header]]


async def _transform(src_path: StrPath, dst_path: StrPath, overwrite: bool, run: _Run) -> Header:
    # The steps of envelope.streaming.files' sync _transform, with the blocking ones (opening,
    # which may sweep the directory; fsync; rename; unlink) in a thread.
    src, dst = check_paths(src_path, dst_path)
    source = await in_thread(open_input, src, dst)
    try:
        # Shielded: a cancellation while the thread opens the output would drop the open file
        # unseen; it is seen at the next checkpoint instead, inside the try that discards it.
        with anyio.CancelScope(shield=True):
            out = await in_thread(partial(AtomicOutput, dst, overwrite=overwrite))
        try:
            header = await run(source, out.file)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await in_thread(out.discard)
            raise
        # In a thread, since replacing a large file frees its blocks inside rename() (a measured
        # 100+ ms loop stall for 256 MiB) and fsync waits for the disk; shielded, so that a
        # cancellation arriving now cannot separate "renamed" from "reported": the call then
        # completes and the caller sees the cancellation at its next checkpoint.
        with anyio.CancelScope(shield=True):
            await in_thread(out.commit)
    finally:
        source.close()
    return header


async def encrypt_file(src_path: StrPath, dst_path: StrPath, *, keyring: AsyncKeyring | Keyring | None = None,
                       materials_manager: AsyncMaterialsManager | MaterialsManager | None = None,
                       overwrite: bool = False, **options: Unpack[EncryptStreamOptions]) -> Header:
    """Encrypt the file ``src_path`` into ``dst_path``, replacing it only on success.

    The work runs in one worker thread (file reads, AES and writes together; a sync keyring too),
    cancellable between frames; an `AsyncKeyring` is awaited on the event loop. The new file has
    mode 0600. The same contract as `envelope.encrypt_file`: all or nothing, even on kill -9.

    :param overwrite: replace an existing ``dst_path`` (only on success); else it is an error.
    :param options: as for `envelope.encrypt_stream`.
    :returns: the message header.
    :raises FileExistsError: ``dst_path`` exists and ``overwrite`` is false.
    :raises ValueError: ``dst_path`` is the input file.
    """
    manager = resolve(keyring, materials_manager)
    return await _transform(src_path, dst_path, overwrite,
                            lambda source, out: encrypt_files(source, out, manager, options))


async def decrypt_file(src_path: StrPath, dst_path: StrPath, *, keyring: AsyncKeyring | Keyring | None = None,
                       materials_manager: AsyncMaterialsManager | MaterialsManager | None = None,
                       overwrite: bool = False, **options: Unpack[DecryptOptions]) -> Header:
    """Decrypt the message in ``src_path`` into ``dst_path``, replacing it only once the whole
    message has been authenticated; on any error or cancellation ``dst_path`` is untouched. The
    same contract as `envelope.decrypt_file`.

    :param overwrite: replace an existing ``dst_path`` (only on success); else it is an error.
    :param options: as for `envelope.decrypt_stream`.
    :returns: the authenticated header.
    :raises AuthenticationError: tampering, truncation or trailing data.
    :raises FileExistsError: ``dst_path`` exists and ``overwrite`` is false.
    :raises ValueError: ``dst_path`` is the input file.
    """
    manager = resolve(keyring, materials_manager)
    return await _transform(src_path, dst_path, overwrite,
                            lambda source, out: decrypt_files(source, out, manager, options))
