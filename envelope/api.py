"""One-shot encrypt and decrypt of in-memory messages."""

from __future__ import annotations

from typing import Unpack

from .format.header import Header
from .keyrings.base import Keyring
from .materials.base import MaterialsManager
from .streaming.options import DecryptOptions, EncryptOptions
from .streaming.session import (
    as_buffer,
    new_decryptor,
    new_encryptor,
    resolve_materials_manager,
    supply,
    whole_plaintext,
)

__all__ = ["decrypt", "encrypt"]

Buffer = bytes | bytearray | memoryview


def encrypt(plaintext: Buffer, *, keyring: Keyring | None = None, materials_manager: MaterialsManager | None = None,
            **options: Unpack[EncryptOptions]) -> bytes:
    """Encrypt ``plaintext`` into one message.

    The plaintext is authenticated and encrypted; the encryption context is authenticated and
    stored in the clear in the header (never put secrets in it).

    :param keyring: wraps the data key (or pass ``materials_manager=``).
    :param encryption_context: str -> str pairs bound to the message.
    :param algorithm: an `AlgorithmSuite` member or its name; default: the commitment policy's
        default, AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384.
    :param frame_length: plaintext bytes per frame; default 256 KiB (chosen by measurement);
        0 writes the legacy non-framed body.
    :param commitment_policy: default REQUIRE_ENCRYPT_REQUIRE_DECRYPT.
    :param max_encrypted_data_keys: refuse materials with more encrypted data keys.
    :param compression: ``"zstd"`` to compress before encrypting; ``compression_level`` (default 3).
    :returns: the message bytes.
    :raises TypeError: an unknown option name (mypy already rejects it: see `EncryptOptions`).
    """
    data = as_buffer(plaintext, "plaintext")
    session = new_encryptor(keyring=keyring, materials_manager=materials_manager, plaintext_length=len(data), **options)
    return session.seal_whole(data)


def decrypt(ciphertext: Buffer, *, keyring: Keyring | None = None, materials_manager: MaterialsManager | None = None,
            **options: Unpack[DecryptOptions]) -> tuple[bytes, Header]:
    """Decrypt and authenticate one message.

    :param encryption_context: pairs the message must carry with these exact values; required
        keys that were kept out of the header must be supplied here.
    :param commitment_policy: default REQUIRE_ENCRYPT_REQUIRE_DECRYPT (refuses non-committing suites).
    :param max_encrypted_data_keys: refuse messages with more encrypted data keys.
    :param allow_signed: False refuses signed messages.
    :param max_header_length: refuse headers longer than this (default 4 MiB, format-spec §9).
    :param decompress: False returns a compressed message's zstd bytes as they are.
    :param max_decompressed_size: refuse to decompress beyond this many bytes.
    :param max_compression_ratio: refuse output/input beyond this ratio (default 1000; None: off).
    :returns: (plaintext, authenticated header).
    :raises FormatError: not a message (a hint says so if it looks base64-encoded).
    :raises AuthenticationError: tampered, truncated, trailing data, or wrong context.
    :raises NoMatchingKeyError: no keyring could unwrap the data key; ``.errors`` says why for each.
    :raises PolicyError: commitment policy, context mismatch, EDK limit or decompression limit.
    """
    data = as_buffer(ciphertext, "ciphertext")
    manager = resolve_materials_manager(keyring, materials_manager)
    decryptor, output_options = new_decryptor(**options)
    # The whole message is here: parse the header in place and read the body straight from the
    # input, with no buffering in the decryptor (format-spec §10 release rules still apply there).
    start = decryptor.parse_whole_header(data)
    header = supply(decryptor, manager)
    plaintext = decryptor.decrypt_rest(data[start:])
    return whole_plaintext(header, plaintext, output_options), header  # decompressed if the message says so (§8)
