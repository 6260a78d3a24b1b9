"""Hierarchical keyring: data keys wrapped under a per-message key derived from a cached branch key.

ESDK spec: framework/aws-kms/aws-kms-hierarchical-keyring.md. The branch key comes from a
BranchKeyStore (one KMS Decrypt per branch key and TTL); each message gets a fresh 16-byte salt,
so no two data keys are wrapped under the same AES key. format-spec/message.md §7.7 has the EDK.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..crypto.random import random_bytes
from ..errors import EnvelopeError, KeyringError, KMSError, NoMatchingKeyError
from ..format.context import serialize_context
from ..format.header import EncryptedDataKey
from ..materials.materials import DecryptionMaterials, EncryptionMaterials
from .branchstore.records import BranchKeyMaterials
from .branchstore.store import BranchKeyStore

__all__ = ["PROVIDER_ID", "BranchKeyIdSupplier", "HierarchicalKeyring", "derive_wrapping_key", "wrap", "unwrap"]

PROVIDER_ID = "aws-kms-hierarchy"
_PROVIDER_ID_BYTES = PROVIDER_ID.encode()
SALT_LENGTH = 16
IV_LENGTH = 12
VERSION_LENGTH = 16  # the branch key version, a UUID, as its 16 raw bytes
TAG_LENGTH = 16
# The SP 800-108 counter-mode KDF's fixed parts (spec "Branch Key Wrapping"; the MPL's KdfCtr):
# HMAC-SHA256(branch key, [1]_32 || label || 0x00 || salt || [256]_32), one block for 32 bytes.
_KDF_PREFIX = (1).to_bytes(4, "big") + _PROVIDER_ID_BYTES + b"\x00"
_KDF_SUFFIX = (256).to_bytes(4, "big")
_DEFAULT_CACHE_ENTRIES = 1000  # the MPL's DefaultCache entry capacity


def derive_wrapping_key(branch_key: bytes, salt: bytes) -> bytes:
    """The 32-byte AES key that wraps one message's data key (SP 800-108 counter mode, HMAC-SHA256)."""
    return hmac.digest(branch_key, _KDF_PREFIX + salt + _KDF_SUFFIX, hashlib.sha256)


def _aad(branch_key_id: bytes, version: bytes, context: bytes) -> bytes:
    # spec "Branch Key Wrapping and Unwrapping AAD": provider id || branch key id || version || context.
    return _PROVIDER_ID_BYTES + branch_key_id + version + context


def wrap(branch: BranchKeyMaterials, data_key: bytes, encryption_context: Mapping[str, str]) -> bytes:
    """The EDK ciphertext: salt(16) || IV(12) || version(16) || wrapped key || tag(16)."""
    salt = random_bytes(SALT_LENGTH)
    iv = random_bytes(IV_LENGTH)
    version = branch.version_bytes
    aad = _aad(branch.branch_key_id_bytes, version, serialize_context(encryption_context))
    sealed = AESGCM(derive_wrapping_key(branch.branch_key, salt)).encrypt(iv, data_key, aad)
    return salt + iv + version + sealed


def unwrap(branch: BranchKeyMaterials, ciphertext: bytes, encryption_context: Mapping[str, str]) -> bytes:
    """The data key inside an EDK ciphertext made by `wrap`.

    :raises KeyringError: the ciphertext does not authenticate under this branch key and context.
    """
    salt = ciphertext[:SALT_LENGTH]
    iv = ciphertext[SALT_LENGTH:SALT_LENGTH + IV_LENGTH]
    version = ciphertext[SALT_LENGTH + IV_LENGTH:_HEADER_LENGTH]
    aad = _aad(branch.branch_key_id_bytes, version, serialize_context(encryption_context))
    try:
        return AESGCM(derive_wrapping_key(branch.branch_key, salt)).decrypt(iv, ciphertext[_HEADER_LENGTH:], aad)
    except InvalidTag:
        raise KeyringError("the encrypted data key did not authenticate (wrong branch key or different "
                           "encryption context)") from None


_HEADER_LENGTH = SALT_LENGTH + IV_LENGTH + VERSION_LENGTH


@runtime_checkable
class BranchKeyIdSupplier(Protocol):
    """Chooses the branch key for a message from its encryption context (multi-tenant use)."""

    def get_branch_key_id(self, encryption_context: Mapping[str, str]) -> str:
        ...


_ACTIVE_SCOPE = b"active"  # cache key scope of the ACTIVE version; a version's scope is its 16 raw bytes


class _Cache:
    """Branch key materials by (scope, branch key id), each valid for ``ttl`` seconds, LRU-bounded."""

    def __init__(self, ttl: float, capacity: int, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._capacity = capacity
        self._clock = clock
        self._entries: OrderedDict[tuple[bytes, str], tuple[float, BranchKeyMaterials]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[bytes, str]) -> BranchKeyMaterials | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            # spec "cacheEntryWithinLimits": now - creation <= ttl, else treat as expired.
            if self._clock() - entry[0] > self._ttl:
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: tuple[bytes, str], materials: BranchKeyMaterials) -> None:
        with self._lock:
            self._entries[key] = (self._clock(), materials)
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)


class HierarchicalKeyring:
    """Wraps data keys with keys derived from a branch key that a KMS key protects.

    Contract: each EDK is bound (as AES-GCM AAD) to the branch key id, its version and the full
    encryption context. The branch key's plaintext stays in this keyring's memory cache for
    ``ttl_seconds`` after it was fetched, so a tenant costs one KMS Decrypt per TTL; a version
    rotated away by ``version_key`` is still used for encryption until its cache entry expires.

    :param key_store: where branch keys live (`BranchKeyStore.embedded` or `.dynamodb`).
    :param branch_key_id: the branch key for every message; or
    :param branch_key_id_supplier: chooses one per message from its encryption context.
    :param ttl_seconds: how long fetched branch keys are used without asking the store again.
    :param max_cache_entries: bound on cached branch keys (least recently used leave first).
    :raises NoMatchingKeyError: from ``on_decrypt``, with each matching EDK's reason.
    :raises KMSError: from ``on_encrypt`` when the store's KMS call fails.
    """

    def __init__(self, key_store: BranchKeyStore, *, branch_key_id: str | None = None,
                 branch_key_id_supplier: BranchKeyIdSupplier | None = None, ttl_seconds: float = 600,
                 max_cache_entries: int = _DEFAULT_CACHE_ENTRIES,
                 _clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(key_store, BranchKeyStore):
            raise TypeError("key_store must be a BranchKeyStore")
        if (branch_key_id is None) == (branch_key_id_supplier is None):
            raise ValueError("give exactly one of branch_key_id and branch_key_id_supplier")
        if branch_key_id is not None and (not isinstance(branch_key_id, str) or not branch_key_id):
            raise TypeError("branch_key_id must be a non-empty str")
        if branch_key_id_supplier is not None and not callable(getattr(branch_key_id_supplier,
                                                                       "get_branch_key_id", None)):
            raise TypeError("branch_key_id_supplier must have a get_branch_key_id(encryption_context) method")
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, (int, float)) or ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be a positive number")
        if isinstance(max_cache_entries, bool) or not isinstance(max_cache_entries, int) or max_cache_entries < 1:
            raise ValueError("max_cache_entries must be a positive int")
        self.key_store = key_store
        self.branch_key_id = branch_key_id
        self.branch_key_id_supplier = branch_key_id_supplier
        self.ttl_seconds = ttl_seconds
        self._cache = _Cache(float(ttl_seconds), max_cache_entries, _clock)

    def __repr__(self) -> str:
        chosen = repr(self.branch_key_id) if self.branch_key_id is not None else "<supplier>"
        return f"HierarchicalKeyring({self.key_store.logical_key_store_name!r}, {chosen})"

    def __str__(self) -> str:  # how messages name it (never the repr)
        chosen = f"branch key {self.branch_key_id}" if self.branch_key_id is not None else "branch keys by supplier"
        return f"hierarchical keyring ({chosen}, key store {self.key_store.logical_key_store_name!r})"

    def _branch_key_id_for(self, encryption_context: Mapping[str, str]) -> str:
        if self.branch_key_id is not None:
            return self.branch_key_id
        supplier = self.branch_key_id_supplier
        if supplier is None:
            raise RuntimeError("envelope: internal error: hierarchical keyring has no branch key id")
        try:
            chosen = supplier.get_branch_key_id(encryption_context)
        except EnvelopeError:
            raise
        except Exception as exc:  # noqa: BLE001 - a user's supplier may raise anything
            raise KeyringError(f"the branch key id supplier failed: {type(exc).__name__}: {exc}") from None
        if not isinstance(chosen, str) or not chosen:
            raise KeyringError("the branch key id supplier did not return a non-empty str")
        return chosen

    def _active(self, branch_key_id: str) -> BranchKeyMaterials:
        cached = self._cache.get((_ACTIVE_SCOPE, branch_key_id))
        if cached is not None:
            return cached
        materials = self.key_store.get_active_branch_key(branch_key_id)
        self._cache.put((_ACTIVE_SCOPE, branch_key_id), materials)
        # The ACTIVE item authenticates its version, so the same key serves decryption of that
        # version: a tenant that encrypts and decrypts still costs one KMS call per TTL.
        self._cache.put((materials.version_bytes, branch_key_id), materials)
        return materials

    def _version(self, branch_key_id: str, version: bytes) -> BranchKeyMaterials:
        cached = self._cache.get((version, branch_key_id))
        if cached is not None:
            return cached
        materials = self.key_store.get_branch_key_version(branch_key_id, str(uuid.UUID(bytes=version)))
        if materials.version_bytes != version:
            raise KeyringError("the key store returned another version than the one asked for")
        self._cache.put((version, branch_key_id), materials)
        return materials

    def on_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
        branch = self._active(self._branch_key_id_for(materials.encryption_context))
        data_key = materials.plaintext_data_key
        generate = data_key is None
        if data_key is None:
            data_key = random_bytes(materials.algorithm.key_length)
        edk = EncryptedDataKey(PROVIDER_ID, branch.branch_key_id_bytes,
                               wrap(branch, data_key, materials.encryption_context))
        if generate:
            return materials.with_data_key(data_key, edk)
        return materials.with_encrypted_data_key(edk)

    def on_decrypt(self, materials: DecryptionMaterials,
                   encrypted_data_keys: Sequence[EncryptedDataKey]) -> DecryptionMaterials:
        if materials.plaintext_data_key is not None:
            return materials
        branch_key_id = self._branch_key_id_for(materials.encryption_context)
        wanted = branch_key_id.encode("utf-8")
        expected_length = _HEADER_LENGTH + materials.algorithm.key_length + TAG_LENGTH
        errors: list[BaseException | str] = []
        for index, edk in enumerate(encrypted_data_keys):
            if edk.provider_id != PROVIDER_ID or bytes(edk.provider_info) != wanted:
                continue
            ciphertext = bytes(edk.ciphertext)
            if len(ciphertext) != expected_length:
                errors.append(f"encrypted data key {index} is {len(ciphertext)} bytes, not {expected_length}")
                continue
            version = ciphertext[SALT_LENGTH + IV_LENGTH:_HEADER_LENGTH]
            try:
                branch = self._version(branch_key_id, version)
                return materials.with_data_key(unwrap(branch, ciphertext, materials.encryption_context))
            except KMSError as exc:
                errors.append(KMSError(f"encrypted data key {index} (branch key {branch_key_id}, version "
                                       f"{uuid.UUID(bytes=version)}): {exc}", code=exc.code))
            except EnvelopeError as exc:
                errors.append(KeyringError(f"encrypted data key {index} (branch key {branch_key_id}, version "
                                           f"{uuid.UUID(bytes=version)}): {exc}"))
        if not errors:
            errors.append(f"no encrypted data key was wrapped by branch key {branch_key_id!r}")
        raise NoMatchingKeyError(f"{self} could not decrypt the data key", errors)
