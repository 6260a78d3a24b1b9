"""File-to-file encrypt and decrypt that never leave a partial output (`encrypt_file`,
`decrypt_file`), and the steps they share with the async mirrors in `envelope.aio.files`.

The output is an `AtomicOutput` beside the destination (mode 0600): it appears only once the
message is complete (decrypt: fully authenticated) and synced to disk; on any error, interruption
or kill -9 the destination is left as it was (see `AtomicOutput` for what a kill can leave).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import IO, Unpack

from ..format.header import Header
from ..keyrings.base import Keyring
from ..materials.base import MaterialsManager
from .atomic import AtomicOutput
from .options import DecryptOptions, EncryptStreamOptions
from .sync import decrypt_stream, encrypt_stream

__all__ = ["StrPath", "check_paths", "decrypt_file", "encrypt_file", "open_input"]

StrPath = str | os.PathLike[str]


def check_paths(src_path: StrPath, dst_path: StrPath) -> tuple[str, str]:
    """The two paths as str; TypeError for bytes paths."""
    src, dst = os.fspath(src_path), os.fspath(dst_path)
    if not isinstance(src, str) or not isinstance(dst, str):
        raise TypeError("paths must be str or os.PathLike[str]")
    return src, dst


def open_input(src: str, dst: str) -> IO[bytes]:
    """Open ``src`` for reading, refusing a destination that is the input itself before any work
    is done (an existing destination is `AtomicOutput`'s to refuse or replace).

    :raises ValueError: ``dst`` is ``src`` (or a hard link or symlink to it).
    """
    source = open(src, "rb")  # noqa: SIM115 - closed by the caller
    try:
        if os.path.exists(dst) and os.path.samefile(src, dst):
            raise ValueError(f"{dst!r} is the input file; envelope never overwrites its input")
    except BaseException:
        source.close()
        raise
    return source


def _transform(src_path: StrPath, dst_path: StrPath, overwrite: bool,
               run: Callable[[IO[bytes], IO[bytes]], Header]) -> Header:
    src, dst = check_paths(src_path, dst_path)
    with open_input(src, dst) as source, AtomicOutput(dst, overwrite=overwrite) as out:
        header = run(source, out.file)
        out.commit()
    return header


def encrypt_file(src_path: StrPath, dst_path: StrPath, *, keyring: Keyring | None = None,
                 materials_manager: MaterialsManager | None = None, overwrite: bool = False,
                 **options: Unpack[EncryptStreamOptions]) -> Header:
    """Encrypt the file ``src_path`` into ``dst_path``, which appears only once the message is
    complete and synced to disk; on any error, interruption or kill -9 ``dst_path`` is left as it
    was and no partial output appears (`envelope.streaming.atomic.AtomicOutput` says what a kill
    can leave: nothing visible where the file system has O_TMPFILE). The new file has mode 0600.
    A symlink ``dst_path`` is followed: the file it leads to is replaced.

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
    message has been authenticated and written to disk; on any error, interruption or kill -9 no
    plaintext appears and an existing ``dst_path`` is untouched (as for `encrypt_file`). The new
    file has mode 0600.

    :param overwrite: replace an existing ``dst_path`` (only on success); else it is an error.
    :param options: as for `envelope.decrypt_stream`.
    :returns: the authenticated header.
    :raises AuthenticationError: tampering, truncation or trailing data.
    :raises FileExistsError: ``dst_path`` exists and ``overwrite`` is false.
    :raises ValueError: ``dst_path`` is the input file.
    """
    return _transform(src_path, dst_path, overwrite, lambda source, out: decrypt_stream(
        source, out, keyring=keyring, materials_manager=materials_manager, **options))
