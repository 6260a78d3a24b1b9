"""The MaterialsManager protocol: where encrypt and decrypt get their materials."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .materials import DecryptionMaterials, DecryptionRequest, EncryptionMaterials, EncryptionRequest

__all__ = ["MaterialsManager"]


@runtime_checkable
class MaterialsManager(Protocol):
    """Assembles materials for one message (ESDK "cryptographic materials manager" semantics)."""

    def get_encryption_materials(self, request: EncryptionRequest) -> EncryptionMaterials:
        """Return materials with a data key, at least one EDK and, for signing suites, a signing key."""
        ...

    def decrypt_materials(self, request: DecryptionRequest) -> DecryptionMaterials:
        """Return materials with the data key, or raise (NoMatchingKeyError lists every reason)."""
        ...
