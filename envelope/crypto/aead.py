"""AES-GCM seal/open with a 12-byte IV and 16-byte tag (format-spec/message.md §2, §5.2).

One `AEAD` per message key: building a cipher object costs more than sealing a frame, so the
object is reused for every frame. Opening raises our AuthenticationError, never InvalidTag.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import AuthenticationError

__all__ = ["AEAD", "TAG_LENGTH", "IV_LENGTH"]

TAG_LENGTH = 16
IV_LENGTH = 12
Buffer = bytes | bytearray | memoryview


class AEAD:
    """AES-GCM under one key. `seal_into`/`open_into` write into caller buffers and release the GIL."""

    __slots__ = ("_cipher",)

    def __init__(self, key: bytes) -> None:
        if len(key) not in (16, 24, 32):
            raise ValueError("AES keys are 16, 24 or 32 bytes")
        self._cipher = AESGCM(key)

    def seal(self, iv: Buffer, plaintext: Buffer, aad: Buffer) -> bytes:
        """Return ciphertext ‖ tag."""
        return self._cipher.encrypt(bytes(iv), plaintext, aad)

    def seal_into(self, iv: Buffer, plaintext: Buffer, aad: Buffer, out: memoryview) -> None:
        """Write ciphertext ‖ tag into ``out`` (exactly len(plaintext) + 16 bytes)."""
        self._cipher.encrypt_into(bytes(iv), plaintext, aad, out)

    def open(self, iv: Buffer, ciphertext_and_tag: Buffer, aad: Buffer, what: str = "ciphertext") -> bytes:
        """Return the plaintext, or raise AuthenticationError naming ``what`` failed."""
        try:
            return self._cipher.decrypt(bytes(iv), ciphertext_and_tag, aad)
        except InvalidTag:
            raise AuthenticationError(f"{what} failed authentication") from None

    def open_into(self, iv: Buffer, ciphertext_and_tag: Buffer, aad: Buffer, out: memoryview,
                  what: str = "ciphertext") -> None:
        """Write the plaintext into ``out`` (exactly len(ciphertext)); on failure ``out`` is zeroed
        and AuthenticationError is raised."""
        try:
            self._cipher.decrypt_into(bytes(iv), ciphertext_and_tag, aad, out)
        except InvalidTag:
            out[:] = bytes(len(out))  # never leave unauthenticated plaintext in the caller's buffer
            raise AuthenticationError(f"{what} failed authentication") from None
