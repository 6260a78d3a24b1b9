"""Required-encryption-context manager: keys that must be given at encrypt and again at decrypt,
and are not stored in the header (format-spec/message.md §4.5)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from ..errors import PolicyError
from ..keyrings.base import Keyring
from .base import MaterialsManager
from .default import DefaultMaterialsManager
from .materials import DecryptionMaterials, DecryptionRequest, EncryptionMaterials, EncryptionRequest

__all__ = ["RequiredEncryptionContextManager"]


class RequiredEncryptionContextManager:
    """Requires the given context keys on every encrypt and decrypt.

    The required keys and their values are authenticated by the header tag but left out of the
    header, so the message alone does not reveal them and decrypt fails unless the caller supplies
    them (as ``encryption_context=``) with the same values.

    :param required_encryption_context_keys: the keys to require.
    :param keyring: a keyring, wrapped in a DefaultMaterialsManager; or
    :param materials_manager: the manager to wrap.
    """

    def __init__(self, required_encryption_context_keys: Iterable[str], *, keyring: Keyring | None = None,
                 materials_manager: MaterialsManager | None = None) -> None:
        if (keyring is None) == (materials_manager is None):
            raise ValueError("give exactly one of keyring= or materials_manager=")
        self.required_keys = frozenset(required_encryption_context_keys)
        if not self.required_keys:
            raise ValueError("required_encryption_context_keys is empty")
        self.underlying: MaterialsManager = (materials_manager if materials_manager is not None
                                             else DefaultMaterialsManager(keyring))  # type: ignore[arg-type]

    def get_encryption_materials(self, request: EncryptionRequest) -> EncryptionMaterials:
        missing = sorted(self.required_keys - set(request.encryption_context))
        if missing:
            raise PolicyError(f"encryption context is missing required keys: {', '.join(missing)}")
        materials = self.underlying.get_encryption_materials(request)
        return dataclasses.replace(
            materials,
            required_encryption_context_keys=materials.required_encryption_context_keys | self.required_keys)

    def decrypt_materials(self, request: DecryptionRequest) -> DecryptionMaterials:
        reproduced = request.reproduced_encryption_context or {}
        missing = sorted(self.required_keys - set(reproduced))
        if missing:
            raise PolicyError(f"decrypt needs the required encryption context keys: {', '.join(missing)}",
                              hint="pass them with encryption_context= exactly as at encrypt time")
        materials = self.underlying.decrypt_materials(request)
        return dataclasses.replace(
            materials,
            required_encryption_context_keys=materials.required_encryption_context_keys | self.required_keys)
