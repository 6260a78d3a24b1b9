"""File-to-file encrypt and decrypt that never leave a partial output (`encrypt_file`,
`decrypt_file`), and the steps they share with the async mirrors in `envelope.aio.files`.

The output is written to a temporary file beside the destination (mode 0600) and moved into
place only once the message is complete (decrypt: fully authenticated); on any error or
interruption the temporary file is removed and the destination left as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from contextlib import suppress
from typing import IO, Unpack

from ..format.header import Header
from ..keyrings.base import Keyring
from ..materials.base import MaterialsManager
from .options import DecryptOptions, EncryptStreamOptions
from .sync import decrypt_stream, encrypt_stream

__all__ = ["StrPath", "check_paths", "commit", "decrypt_file", "discard", "encrypt_file", "open_input", "open_temp"]

StrPath = str | os.PathLike[str]


def check_paths(src_path: StrPath, dst_path: StrPath) -> tuple[str, str]:
    """The two paths as str; TypeError for bytes paths."""
    src, dst = os.fspath(src_path), os.fspath(dst_path)
    if not isinstance(src, str) or not isinstance(dst, str):
        raise TypeError("paths must be str or os.PathLike[str]")
    return src, dst


def _exists_error(dst: str) -> FileExistsError:
    return FileExistsError(f"{dst!r} exists; pass overwrite=True to replace it")


def open_input(src: str, dst: str, overwrite: bool) -> IO[bytes]:
    """Open ``src`` for reading, refusing a destination that is the input itself (or, unless
    ``overwrite``, any existing destination) before any work is done.

    :raises ValueError: ``dst`` is ``src`` (or a hard link to it).
    :raises FileExistsError: ``dst`` exists and ``overwrite`` is false.
    """
    source = open(src, "rb")  # noqa: SIM115 - closed by the caller
    try:
        if os.path.lexists(dst):
            if os.path.exists(dst) and os.path.samefile(src, dst):
                raise ValueError(f"{dst!r} is the input file; envelope never overwrites its input")
            if not overwrite:
                raise _exists_error(dst)
    except BaseException:
        source.close()
        raise
    return source


def open_temp(dst: str) -> tuple[IO[bytes], str]:
    """A new temporary file in ``dst``'s directory: (file, its path)."""
    directory, name = os.path.split(os.path.abspath(dst))
    # mkstemp: mode 0600, so a decrypted file is never readable by others while it is written.
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    return os.fdopen(fd, "wb"), temp


def commit(out: IO[bytes], temp: str, dst: str, overwrite: bool) -> None:
    """Close ``out`` and move ``temp`` to ``dst`` in one step; on failure remove ``temp``.

    Without ``overwrite`` the move is a hard link, which fails if ``dst`` appeared meanwhile, so
    a file created by someone else during the work is never replaced.

    :raises FileExistsError: ``dst`` exists and ``overwrite`` is false.
    """
    try:
        out.close()
        if overwrite:
            os.replace(temp, dst)
            return
        try:
            os.link(temp, dst)
        except FileExistsError:
            raise _exists_error(dst) from None
        except OSError:
            # A file system without hard links (e.g. FAT): the check and the rename are two steps.
            if os.path.lexists(dst):
                raise _exists_error(dst) from None
            os.replace(temp, dst)
            return
    except BaseException:
        discard(out, temp)
        raise
    # The destination is complete and in place: a leftover temporary name is only untidy.
    with suppress(OSError):
        os.unlink(temp)


def discard(out: IO[bytes], temp: str) -> None:
    """Close ``out`` and remove ``temp``, ignoring what is already gone."""
    with suppress(OSError):
        out.close()
    with suppress(FileNotFoundError):
        os.unlink(temp)


def _transform(src_path: StrPath, dst_path: StrPath, overwrite: bool,
               run: Callable[[IO[bytes], IO[bytes]], Header]) -> Header:
    src, dst = check_paths(src_path, dst_path)
    with open_input(src, dst, overwrite) as source:
        out, temp = open_temp(dst)
        try:
            header = run(source, out)
        except BaseException:
            discard(out, temp)
            raise
        commit(out, temp, dst, overwrite)
    return header


def encrypt_file(src_path: StrPath, dst_path: StrPath, *, keyring: Keyring | None = None,
                 materials_manager: MaterialsManager | None = None, overwrite: bool = False,
                 **options: Unpack[EncryptStreamOptions]) -> Header:
    """Encrypt the file ``src_path`` into ``dst_path``, which appears only once the message is
    complete; on any error or interruption nothing is left behind. The new file has mode 0600.

    :param overwrite: replace an existing ``dst_path`` (only on success); else it is an error.
    :param options: as for `envelope.encrypt_stream`.
    :returns: the message header.
    :raises FileExistsError: ``dst_path`` exists and ``overwrite`` is false.
    :raises ValueError: ``dst_path`` is the input file.
    """
    return _transform(src_path, dst_path, overwrite, lambda source, out: encrypt_stream(
        source, out, keyring=keyring, materials_manager=materials_manager, **options))


def decrypt_file(src_path: StrPath, dst_path: StrPath, *, keyring: Keyring | None = None,
                 materials_manager: MaterialsManager | None = None, overwrite: bool = False,
                 **options: Unpack[DecryptOptions]) -> Header:
    """Decrypt the message in ``src_path`` into ``dst_path``, which appears only once the whole
    message has been authenticated; on any error or interruption nothing is left behind and an
    existing ``dst_path`` is untouched. The new file has mode 0600.

    :param overwrite: replace an existing ``dst_path`` (only on success); else it is an error.
    :param options: as for `envelope.decrypt_stream`.
    :returns: the authenticated header.
    :raises AuthenticationError: tampering, truncation or trailing data.
    :raises FileExistsError: ``dst_path`` exists and ``overwrite`` is false.
    :raises ValueError: ``dst_path`` is the input file.
    """
    return _transform(src_path, dst_path, overwrite, lambda source, out: decrypt_stream(
        source, out, keyring=keyring, materials_manager=materials_manager, **options))
