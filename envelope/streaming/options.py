"""The keyword options of every encrypt and decrypt entry point, as TypedDicts.

Each entry point takes ``**options: Unpack[...]`` of one of these, so the sync and async APIs
share one list of names: mypy rejects a misspelt option and editors complete the names, while
the functions that consume the options (`session.plan_encryption`, `session.new_decryptor`)
keep their explicit keyword parameters and raise TypeError for an unknown name at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict

from ..format.suites import AlgorithmSuite, CommitmentPolicy

__all__ = [
    "DECRYPT_OPTION_NAMES",
    "DecryptOptions",
    "ENCRYPT_OPTION_NAMES",
    "ENCRYPT_STREAM_OPTION_NAMES",
    "EncryptOptions",
    "EncryptStreamOptions",
    "check_options",
]


class EncryptOptions(TypedDict, total=False):
    """Options of `envelope.encrypt` and every other encrypt entry point (see its docstring)."""

    encryption_context: Mapping[str, str] | None
    algorithm: AlgorithmSuite | str | int | None
    frame_length: int | None
    commitment_policy: CommitmentPolicy | str | None
    max_encrypted_data_keys: int | None
    compression: Literal["zstd"] | None
    compression_level: int | None


class EncryptStreamOptions(EncryptOptions, total=False):
    """`EncryptOptions` plus what a stream cannot tell by itself: the plaintext length, when the
    caller knows it (a materials manager may use it, e.g. a caching manager's byte limit)."""

    plaintext_length: int | None


class DecryptOptions(TypedDict, total=False):
    """Options of `envelope.decrypt` and every other decrypt entry point (see its docstring)."""

    encryption_context: Mapping[str, str] | None
    commitment_policy: CommitmentPolicy | str | None
    max_encrypted_data_keys: int | None
    allow_signed: bool
    max_header_length: int
    decompress: bool
    max_decompressed_size: int | None
    max_compression_ratio: float | None


ENCRYPT_OPTION_NAMES = EncryptOptions.__optional_keys__
ENCRYPT_STREAM_OPTION_NAMES = EncryptStreamOptions.__optional_keys__
DECRYPT_OPTION_NAMES = DecryptOptions.__optional_keys__


def check_options(known: frozenset[str], options: Mapping[str, Any], caller: str) -> None:
    """Raise TypeError naming ``caller`` if ``options`` holds a name not in ``known``.

    For entry points that keep the options for later (a file object started on first use), so a
    misspelt name fails where it was written rather than at the first write.
    """
    for name in options:
        if name not in known:
            raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}")
