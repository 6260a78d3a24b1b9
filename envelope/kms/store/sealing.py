"""Key material at rest: AES-256-GCM sealing under a root key that never enters the database.

Where the root key comes from is `rootkey`'s business; this module only derives keys from it.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["AUDIT_CHAIN_LABEL", "Sealer", "access_key_aead", "derive", "fingerprint", "legacy_fingerprint_key"]

_SEAL_LABEL = b"envelope-kms-seal-v1\x00"
_FINGERPRINT_LABEL = b"envelope-kms-fingerprint-v1\x00"
_ACCESS_KEY_SEAL_LABEL = b"envelope-kms-access-key-seal-v1\x00"
AUDIT_CHAIN_LABEL = b"envelope-kms-audit-chain-v1"


def derive(root_key: bytes, label: bytes, salt: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869) of the root key: 32 bytes for one purpose (``label``)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=label).derive(root_key)


def legacy_fingerprint_key(root_key: bytes) -> bytes:
    """The imported-material fingerprint key as schema 1 derived it (kept, sealed, from then on)."""
    return hashlib.sha256(_FINGERPRINT_LABEL + root_key).digest()


def access_key_aead(root_key: bytes) -> AESGCM:
    """The AEAD that seals the endpoint's access-key secrets (bound to each access key id)."""
    return AESGCM(hashlib.sha256(_ACCESS_KEY_SEAL_LABEL + root_key).digest())


class Sealer:
    """Seals and opens key material under the root key, bound to the key id and version."""

    __slots__ = ("_aead",)

    def __init__(self, root_key: bytes) -> None:
        if len(root_key) != 32:
            raise ValueError("the root key must be 32 bytes")
        self._aead = AESGCM(hashlib.sha256(_SEAL_LABEL + root_key).digest())

    def seal(self, material: bytes, key_id: str, version: int) -> bytes:
        """Encrypt material; the key id and version are authenticated so rows cannot be swapped."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, material, _aad(key_id, version))

    def open(self, sealed: bytes, key_id: str, version: int) -> bytes:
        """Decrypt sealed material.

        :raises RuntimeError: the row was tampered with or the root key is wrong.
        """
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], _aad(key_id, version))
        except InvalidTag:
            raise RuntimeError(
                "envelope: internal error: sealed key material does not open (wrong root key?)"
            ) from None



def fingerprint(key: bytes, material: bytes) -> bytes:
    """A keyed digest of material, kept so re-imports can be checked after the material is gone.

    ``key`` is the region's fingerprint key (sealed in its database, so it survives a root-key
    rotation even for keys whose material was deleted).
    """
    return hmac.new(key, material, hashlib.sha256).digest()


def _aad(key_id: str, version: int) -> bytes:
    return key_id.encode("ascii") + b"\x00" + version.to_bytes(4, "big")
