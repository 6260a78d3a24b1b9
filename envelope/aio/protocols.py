"""The async extension points: `AsyncKeyring` and `AsyncMaterialsManager` (HOUSE_STYLE 11-12).

Both are optional. The async drivers await these methods when an object has them and otherwise
run the sync `Keyring` / `MaterialsManager` methods in a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..format.header import EncryptedDataKey
from ..materials.materials import DecryptionMaterials, DecryptionRequest, EncryptionMaterials, EncryptionRequest

__all__ = ["AsyncKeyring", "AsyncMaterialsManager"]


@runtime_checkable
class AsyncKeyring(Protocol):
    """A keyring whose wrapping calls are awaited on the event loop (for example a native async
    KMS client). Same semantics as `envelope.Keyring`, with ``a``-prefixed method names."""

    async def aon_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
        ...

    async def aon_decrypt(self, materials: DecryptionMaterials,
                          encrypted_data_keys: Sequence[EncryptedDataKey]) -> DecryptionMaterials:
        ...


@runtime_checkable
class AsyncMaterialsManager(Protocol):
    """A materials manager awaited on the event loop; same semantics as `envelope.MaterialsManager`."""

    async def aget_encryption_materials(self, request: EncryptionRequest) -> EncryptionMaterials:
        ...

    async def adecrypt_materials(self, request: DecryptionRequest) -> DecryptionMaterials:
        ...
