"""Symmetric ciphertext blobs: a msgpack array naming the key and backing-key version.

Layout: ``["EKMS", 1, key_id, version, nonce, sealed]``; AES-256-GCM over the plaintext with AAD
``header || serialize_context(context)``, so the context is bound with lengths (no collisions).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import msgpack  # type: ignore[import-untyped]
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ...format.context import serialize_context
from .errors import InvalidCiphertextError

__all__ = ["BLOB_MAGIC", "BLOB_VERSION", "BlobHeader", "open_blob", "parse_blob", "seal_blob"]

BLOB_MAGIC = "EKMS"
BLOB_VERSION = 1
_MAX_BLOB = 6144


@dataclass(frozen=True, slots=True)
class BlobHeader:
    """What a blob says about itself before any key is used (unauthenticated until opened)."""

    key_id: str
    version: int
    nonce: bytes
    sealed: bytes


_AAD_CACHE: dict[tuple[str, int, tuple[tuple[str, str], ...]], bytes] = {}
_AAD_CACHE_MAX = 4096


def _aad(key_id: str, version: int, context: Mapping[str, str]) -> bytes:
    # Services see the same few contexts over and over; the serialization is pure, so cache it.
    slot = (key_id, version, tuple(context.items()))
    found = _AAD_CACHE.get(slot)
    if found is None:
        found = b"".join((
            BLOB_MAGIC.encode(), BLOB_VERSION.to_bytes(1, "big"), len(key_id).to_bytes(1, "big"),
            key_id.encode("ascii"), version.to_bytes(4, "big"), serialize_context(context),
        ))
        if len(_AAD_CACHE) >= _AAD_CACHE_MAX:
            _AAD_CACHE.clear()
        _AAD_CACHE[slot] = found
    return found


def seal_blob(aead: AESGCM, key_id: str, version: int, plaintext: bytes,
              context: Mapping[str, str]) -> bytes:
    """Encrypt plaintext under one backing key and return the self-describing blob."""
    nonce = os.urandom(12)
    sealed = aead.encrypt(nonce, plaintext, _aad(key_id, version, context))
    return msgpack.packb([BLOB_MAGIC, BLOB_VERSION, key_id, version, nonce, sealed])  # type: ignore[no-any-return]


def parse_blob(blob: bytes) -> BlobHeader:
    """Read a blob's header fields.

    :raises InvalidCiphertextError: not a blob this service wrote (shape, magic or version).
    """
    if len(blob) > _MAX_BLOB:
        raise InvalidCiphertextError("the ciphertext is too long")
    try:
        fields = msgpack.unpackb(blob, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError):
        raise InvalidCiphertextError("the ciphertext is not a valid KMS ciphertext blob") from None
    if (not isinstance(fields, list) or len(fields) != 6 or fields[0] != BLOB_MAGIC
            or fields[1] != BLOB_VERSION or not isinstance(fields[2], str)
            or not isinstance(fields[3], int) or not isinstance(fields[4], bytes)
            or not isinstance(fields[5], bytes) or len(fields[4]) != 12 or len(fields[5]) < 16
            or not 0 < fields[3] < 2**32 or not fields[2].isascii() or len(fields[2]) > 255):
        raise InvalidCiphertextError("the ciphertext is not a valid KMS ciphertext blob")
    return BlobHeader(fields[2], fields[3], fields[4], fields[5])


def open_blob(aead: AESGCM, header: BlobHeader, context: Mapping[str, str]) -> bytes:
    """Decrypt a parsed blob with its backing key.

    :raises InvalidCiphertextError: wrong encryption context, or the blob was altered.
    """
    try:
        return aead.decrypt(header.nonce, header.sealed, _aad(header.key_id, header.version, context))
    except InvalidTag:
        raise InvalidCiphertextError(
            "the ciphertext does not decrypt (encryption context mismatch or altered ciphertext)"
        ) from None
