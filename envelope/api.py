"""One-shot encrypt and decrypt of in-memory messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .format.header import Header
from .keyrings.base import Keyring
from .materials.base import MaterialsManager
from .streaming.session import new_decryptor, new_encryptor, resolve_materials_manager, supply

__all__ = ["decrypt", "encrypt"]

Buffer = bytes | bytearray | memoryview


def _as_buffer(data: Any, what: str) -> memoryview:
    if isinstance(data, str):
        raise TypeError(f"{what} must be bytes, not str (encode it first)")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes, bytearray or memoryview, not {type(data).__name__}")
    return memoryview(data).cast("B")


def encrypt(plaintext: Buffer, *, keyring: Keyring | None = None, materials_manager: MaterialsManager | None = None,
            **options: Any) -> bytes:
    """Encrypt ``plaintext`` into one message.

    :param keyring: wraps the data key (or pass ``materials_manager=``).
    :param encryption_context: str -> str pairs, authenticated and stored in the header (never secret).
    :param algorithm: an `AlgorithmSuite` member or its name; default: the commitment policy's default.
    :param frame_length: bytes per frame; default: the measured default (1 MiB).
    :param commitment_policy: default REQUIRE_ENCRYPT_REQUIRE_DECRYPT.
    :param max_encrypted_data_keys: refuse materials with more encrypted data keys.
    :returns: the message bytes.
    """
    data = _as_buffer(plaintext, "plaintext")
    encryptor = new_encryptor(keyring=keyring, materials_manager=materials_manager,
                              plaintext_length=len(data), **options)
    return encryptor.update(data) + encryptor.finalize()


def decrypt(ciphertext: Buffer, *, keyring: Keyring | None = None, materials_manager: MaterialsManager | None = None,
            encryption_context: Mapping[str, str] | None = None, **options: Any) -> tuple[bytes, Header]:
    """Decrypt and authenticate one message.

    :param encryption_context: pairs the message must carry with these exact values; required
        keys that were kept out of the header must be supplied here.
    :param commitment_policy: default REQUIRE_ENCRYPT_REQUIRE_DECRYPT (refuses non-committing suites).
    :param max_encrypted_data_keys: refuse messages with more encrypted data keys.
    :param allow_signed: False refuses signed messages.
    :returns: (plaintext, authenticated header).
    :raises FormatError: not a message (a hint says so if it looks base64-encoded).
    :raises AuthenticationError: tampered, truncated, trailing data, or wrong context.
    :raises NoMatchingKeyError: no keyring could unwrap the data key; ``.errors`` says why for each.
    """
    data = _as_buffer(ciphertext, "ciphertext")
    manager = resolve_materials_manager(keyring, materials_manager)
    decryptor = new_decryptor(encryption_context=encryption_context, **options)
    out = decryptor.update(data)
    if not decryptor.needs_materials:
        decryptor.finalize()  # raises: the input ended inside the header
    header = supply(decryptor, manager)
    out += decryptor.update(b"")
    decryptor.finalize()
    return out, header
