"""Materials for the async drivers: the async default materials manager, and how a keyring or
manager (sync or async) is called from the event loop or from a worker thread."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import anyio.from_thread

from ..errors import KeyringError
from ..format.header import EncryptedDataKey, Header
from ..keyrings.base import Keyring, keyring_label
from ..materials.base import MaterialsManager
from ..materials.default import DefaultMaterialsManager
from ..materials.materials import DecryptionMaterials, DecryptionRequest, EncryptionMaterials, EncryptionRequest
from ..streaming.decryptor import MessageDecryptor
from ..streaming.options import EncryptStreamOptions
from ..streaming.session import (
    EncryptSession,
    authenticate_header,
    plan_encryption,
    resolve_materials_manager,
    start_encryption,
)
from .offload import in_thread
from .protocols import AsyncKeyring, AsyncMaterialsManager

__all__ = [
    "AsyncDefaultMaterialsManager",
    "ResolvedManager",
    "resolve",
    "start_encryptor",
    "supply_materials",
]


class _Stop(Exception):
    """Carries what a sync helper passed to the callee we stopped it at."""


class _StopAtKeyring:
    """A keyring that ends a DefaultMaterialsManager call right where it would call the keyring, so
    the async manager reuses its suite, signing-key and context rules instead of copying them."""

    def on_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
        raise _Stop(materials)

    def on_decrypt(self, materials: DecryptionMaterials,
                   encrypted_data_keys: Sequence[EncryptedDataKey]) -> DecryptionMaterials:
        raise _Stop(materials, encrypted_data_keys)


class AsyncDefaultMaterialsManager:
    """`envelope.DefaultMaterialsManager` with an awaited keyring.

    Same rules as the sync manager (suite choice, commitment policy, signing keys, reproduced
    context). The keyring's ``aon_encrypt``/``aon_decrypt`` are awaited when it has them; a sync
    keyring's ``on_encrypt``/``on_decrypt`` run in a worker thread, since they may block (KMS).
    """

    def __init__(self, keyring: AsyncKeyring | Keyring) -> None:
        # runtime_checkable protocols test only that the methods exist, which is what we mean.
        self._native = keyring if isinstance(keyring, AsyncKeyring) else None
        self._sync = keyring if self._native is None and isinstance(keyring, Keyring) else None
        if self._native is None and self._sync is None:
            raise TypeError("keyring must implement aon_encrypt and aon_decrypt, or on_encrypt and on_decrypt")
        self.keyring = keyring

    def __repr__(self) -> str:
        return f"AsyncDefaultMaterialsManager({self.keyring!r})"

    async def aget_encryption_materials(self, request: EncryptionRequest) -> EncryptionMaterials:
        try:
            DefaultMaterialsManager(_StopAtKeyring()).get_encryption_materials(request)
        except _Stop as stop:
            materials: EncryptionMaterials = stop.args[0]
        else:  # pragma: no cover
            raise RuntimeError("envelope: internal error: the default manager did not call its keyring")
        suite = materials.algorithm
        if self._native is not None:
            materials = await self._native.aon_encrypt(materials)
        elif self._sync is not None:
            materials = await in_thread(self._sync.on_encrypt, materials)
        # The checks DefaultMaterialsManager makes after its keyring call.
        if materials.plaintext_data_key is None or not materials.encrypted_data_keys:
            raise KeyringError(f"{keyring_label(self.keyring)} returned no data key or no encrypted data key")
        if materials.algorithm is not suite:
            raise KeyringError(f"{keyring_label(self.keyring)} changed the algorithm suite")
        return materials

    async def adecrypt_materials(self, request: DecryptionRequest) -> DecryptionMaterials:
        try:
            DefaultMaterialsManager(_StopAtKeyring()).decrypt_materials(request)
        except _Stop as stop:
            materials: DecryptionMaterials = stop.args[0]
            edks: Sequence[EncryptedDataKey] = stop.args[1]
        else:  # pragma: no cover
            raise RuntimeError("envelope: internal error: the default manager did not call its keyring")
        if self._native is not None:
            materials = await self._native.aon_decrypt(materials, edks)
        elif self._sync is not None:
            materials = await in_thread(self._sync.on_decrypt, materials, edks)
        if materials.plaintext_data_key is None:
            raise KeyringError(f"{keyring_label(self.keyring)} returned no data key")
        return materials


class _FromWorker:
    """A sync materials manager for code running in an anyio worker thread: each call goes back
    to the event loop and awaits the async manager there."""

    def __init__(self, manager: AsyncMaterialsManager) -> None:
        self._manager = manager

    def get_encryption_materials(self, request: EncryptionRequest) -> EncryptionMaterials:
        return anyio.from_thread.run(self._manager.aget_encryption_materials, request)

    def decrypt_materials(self, request: DecryptionRequest) -> DecryptionMaterials:
        return anyio.from_thread.run(self._manager.adecrypt_materials, request)


class ResolvedManager:
    """The caller's keyring or materials manager, callable from the event loop (awaited natively,
    or in a worker thread if it is sync) and from a worker thread (directly, or back on the loop
    if it is async)."""

    def __init__(self, *, sync: MaterialsManager | None = None, native: AsyncMaterialsManager | None = None) -> None:
        self._sync = sync
        self._native = native

    async def aget_encryption_materials(self, request: EncryptionRequest) -> EncryptionMaterials:
        if self._native is not None:
            return await self._native.aget_encryption_materials(request)
        return await in_thread(self.in_worker().get_encryption_materials, request)

    async def adecrypt_materials(self, request: DecryptionRequest) -> DecryptionMaterials:
        if self._native is not None:
            return await self._native.adecrypt_materials(request)
        return await in_thread(self.in_worker().decrypt_materials, request)

    def in_worker(self) -> MaterialsManager:
        """The manager to call from an anyio worker thread."""
        if self._sync is not None:
            return self._sync
        if self._native is None:  # pragma: no cover
            raise RuntimeError("envelope: internal error: no materials manager")
        return _FromWorker(self._native)


def resolve(keyring: AsyncKeyring | Keyring | None,
            materials_manager: AsyncMaterialsManager | MaterialsManager | None) -> ResolvedManager:
    """Pick the native async methods when the object has them, else its sync ones.

    :raises TypeError: not exactly one of the two, or an object with neither set of methods.
    """
    if (keyring is None) == (materials_manager is None):
        raise TypeError("pass exactly one of keyring= or materials_manager=")
    if materials_manager is not None:
        # runtime_checkable protocols test only that the methods exist, which is what we mean.
        if isinstance(materials_manager, AsyncMaterialsManager):
            return ResolvedManager(native=materials_manager)
        return ResolvedManager(sync=resolve_materials_manager(None, materials_manager))
    if isinstance(keyring, AsyncKeyring):
        return ResolvedManager(native=AsyncDefaultMaterialsManager(keyring))
    return ResolvedManager(sync=DefaultMaterialsManager(keyring))  # type: ignore[arg-type]


async def start_encryptor(manager: ResolvedManager, options: EncryptStreamOptions) -> EncryptSession:
    """`new_encryptor` with the materials call awaited.

    :raises TypeError, ValueError: the options are misused (checked before the manager is called).
    """
    plan = plan_encryption(**options)
    return start_encryption(plan, await manager.aget_encryption_materials(plan.request))


async def supply_materials(decryptor: MessageDecryptor, manager: ResolvedManager) -> Header:
    """`session.supply` with the materials call awaited: authenticates the header. A manager's
    error fails the decryptor too; a cancellation does not (the call can be made again)."""
    request = decryptor.request
    if request is None:  # pragma: no cover
        raise RuntimeError("envelope: internal error: materials requested before the header")
    try:
        materials = await manager.adecrypt_materials(request)
    except Exception as exc:
        decryptor.failure.trip(exc)
        raise
    return authenticate_header(decryptor, materials)
