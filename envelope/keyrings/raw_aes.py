"""Raw AES keyring: wraps data keys with a local AES-GCM key (format-spec/message.md §7.1).

The wrapped key is bound to the full encryption context (it is the GCM AAD), so a message whose
context was altered cannot have its data key unwrapped.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..crypto.aead import AEAD, IV_LENGTH, TAG_LENGTH
from ..crypto.random import random_bytes
from ..errors import AuthenticationError, NoMatchingKeyError
from ..format.context import serialize_context
from ..format.header import EncryptedDataKey
from ..materials.materials import DecryptionMaterials, EncryptionMaterials

__all__ = ["RawAESKeyring"]

_TAG_BITS = (TAG_LENGTH * 8).to_bytes(4, "big")
_IV_LEN = IV_LENGTH.to_bytes(4, "big")


class RawAESKeyring:
    """Wraps data keys under a 128-, 192- or 256-bit AES key you hold.

    :param key_namespace: the provider id written in each EDK (must not start with ``aws-kms``).
    :param key_name: names the key within the namespace; both must match again to decrypt.
    :param wrapping_key: 16, 24 or 32 bytes.
    """

    def __init__(self, key_namespace: str, key_name: str, wrapping_key: bytes) -> None:
        if not isinstance(key_namespace, str) or not isinstance(key_name, str):
            raise TypeError("key_namespace and key_name must be str")
        if key_namespace.startswith("aws-kms"):
            raise ValueError("a raw keyring's key_namespace may not start with 'aws-kms'")
        if not isinstance(wrapping_key, (bytes, bytearray, memoryview)):
            raise TypeError("wrapping_key must be bytes")
        if len(wrapping_key) not in (16, 24, 32):
            raise ValueError("wrapping_key must be 16, 24 or 32 bytes (AES-128/192/256)")
        self.key_namespace = key_namespace
        self.key_name = key_name
        self._name = key_name.encode("utf-8")
        self._info_prefix = self._name + _TAG_BITS + _IV_LEN  # provider info: name ‖ tag bits ‖ IV length ‖ IV
        self._info_length = len(self._info_prefix) + IV_LENGTH
        self._aead = AEAD(bytes(wrapping_key))

    def __repr__(self) -> str:
        return f"RawAESKeyring({self.key_namespace!r}, {self.key_name!r})"

    def __str__(self) -> str:  # how messages name it (never the repr)
        return f"AES key {self.key_name!r} (namespace {self.key_namespace!r})"

    def on_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
        data_key = materials.plaintext_data_key
        generate = data_key is None  # the first keyring makes the data key (ESDK keyring semantics)
        if data_key is None:
            data_key = random_bytes(materials.algorithm.key_length)
        iv = random_bytes(IV_LENGTH)
        wrapped = self._aead.seal(iv, data_key, serialize_context(materials.encryption_context))
        edk = EncryptedDataKey(self.key_namespace, self._info_prefix + iv, wrapped)
        if generate:
            # New key and its first EDK in one step: one materials object instead of two.
            return materials.with_data_key(data_key, edk)
        return materials.with_encrypted_data_key(edk)

    def on_decrypt(self, materials: DecryptionMaterials,
                   encrypted_data_keys: Sequence[EncryptedDataKey]) -> DecryptionMaterials:
        if materials.plaintext_data_key is not None:
            return materials
        aad = serialize_context(materials.encryption_context)
        errors: list[str] = []
        for index, edk in enumerate(encrypted_data_keys):
            info = edk.provider_info
            if edk.provider_id != self.key_namespace or not info.startswith(self._name):
                continue
            if len(info) != self._info_length or not info.startswith(self._info_prefix):
                errors.append(f"{self}: encrypted data key {index} has malformed provider info")
                continue
            if len(edk.ciphertext) != materials.algorithm.key_length + TAG_LENGTH:
                errors.append(f"{self}: encrypted data key {index} has the wrong length")
                continue
            try:
                data_key = self._aead.open(info[-IV_LENGTH:], edk.ciphertext, aad, "wrapped data key")
            except AuthenticationError:
                errors.append(f"{self}: encrypted data key {index} did not unwrap "
                              "(wrong key or different encryption context)")
                continue
            return materials.with_data_key(data_key)
        if not errors:
            errors.append(f"{self}: the message has no data key wrapped by this key")
        raise NoMatchingKeyError("raw AES keyring could not decrypt", errors)
