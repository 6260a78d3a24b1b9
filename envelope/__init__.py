"""envelope: envelope encryption for large files and streams, compatible with the AWS Encryption SDK.

The recipe API: `encrypt`/`decrypt` for bytes, `encrypt_stream`/`decrypt_stream` and the
`Encryptor`/`Decryptor` file objects for streams, `encrypt_file`/`decrypt_file` for files, keyrings that wrap the data key, and one error
root, `EnvelopeError`. `envelope.aio` has the async mirrors; `envelope.kms` the embedded
key-management service. `envelope.format` and `envelope.crypto` are lower layers, not re-exported.
"""

from __future__ import annotations

import importlib
from typing import Any

from .api import decrypt as decrypt
from .api import encrypt as encrypt
from .errors import AuthenticationError as AuthenticationError
from .errors import EnvelopeError as EnvelopeError
from .errors import FormatError as FormatError
from .errors import KeyDisabledError as KeyDisabledError
from .errors import KeyNotFoundError as KeyNotFoundError
from .errors import KeyringError as KeyringError
from .errors import KMSError as KMSError
from .errors import NoMatchingKeyError as NoMatchingKeyError
from .errors import PolicyError as PolicyError
from .format.header import EncryptedDataKey as EncryptedDataKey
from .format.header import Header as Header
from .format.suites import AlgorithmSuite as AlgorithmSuite
from .format.suites import CommitmentPolicy as CommitmentPolicy
from .inspect import read_header as read_header
from .keyrings.base import Keyring as Keyring
from .keyrings.branchstore.store import BranchKeyStore as BranchKeyStore
from .keyrings.hierarchy import BranchKeyIdSupplier as BranchKeyIdSupplier
from .keyrings.hierarchy import HierarchicalKeyring as HierarchicalKeyring
from .keyrings.kms import KMSClient as KMSClient
from .keyrings.kms import KMSKeyring as KMSKeyring
from .keyrings.kms import KMSMRKAwareKeyring as KMSMRKAwareKeyring
from .keyrings.kms_discovery import DiscoveryFilter as DiscoveryFilter
from .keyrings.kms_discovery import KMSDiscoveryKeyring as KMSDiscoveryKeyring
from .keyrings.kms_discovery import KMSMRKAwareDiscoveryKeyring as KMSMRKAwareDiscoveryKeyring
from .keyrings.kms_ecdh import KMSECDHKeyring as KMSECDHKeyring
from .keyrings.kms_rsa import KMSRSAKeyring as KMSRSAKeyring
from .keyrings.multi import MultiKeyring as MultiKeyring
from .keyrings.names import edk_key_name as edk_key_name
from .keyrings.raw_aes import RawAESKeyring as RawAESKeyring
from .keyrings.raw_ecdh import RawECDHKeyring as RawECDHKeyring
from .keyrings.raw_rsa import RawRSAKeyring as RawRSAKeyring
from .materials.base import MaterialsManager as MaterialsManager
from .materials.cache import CacheStats as CacheStats
from .materials.cache import CryptoCache as CryptoCache
from .materials.cache import LocalCache as LocalCache
from .materials.caching import CachingMaterialsManager as CachingMaterialsManager
from .materials.caching import CachingStats as CachingStats
from .materials.default import DefaultMaterialsManager as DefaultMaterialsManager
from .materials.materials import DecryptionMaterials as DecryptionMaterials
from .materials.materials import DecryptionRequest as DecryptionRequest
from .materials.materials import EncryptionMaterials as EncryptionMaterials
from .materials.materials import EncryptionRequest as EncryptionRequest
from .materials.required_context import RequiredEncryptionContextManager as RequiredEncryptionContextManager
from .streaming.fileobj import Decryptor as Decryptor
from .streaming.fileobj import Encryptor as Encryptor
from .streaming.files import decrypt_file as decrypt_file
from .streaming.files import encrypt_file as encrypt_file
from .streaming.options import DecryptOptions as DecryptOptions
from .streaming.options import EncryptOptions as EncryptOptions
from .streaming.options import EncryptStreamOptions as EncryptStreamOptions
from .streaming.ranged import decrypt_range as decrypt_range
from .streaming.rewrap import rewrap as rewrap
from .streaming.sync import decrypt_stream as decrypt_stream
from .streaming.sync import encrypt_stream as encrypt_stream

__version__ = "0.1.0"

__all__ = [
    "AlgorithmSuite",
    "AuthenticationError",
    "BranchKeyIdSupplier",
    "BranchKeyStore",
    "CacheStats",
    "CachingMaterialsManager",
    "CachingStats",
    "CommitmentPolicy",
    "CryptoCache",
    "DecryptOptions",
    "DecryptionMaterials",
    "DecryptionRequest",
    "Decryptor",
    "DefaultMaterialsManager",
    "DiscoveryFilter",
    "EncryptOptions",
    "EncryptStreamOptions",
    "EncryptedDataKey",
    "EncryptionMaterials",
    "EncryptionRequest",
    "Encryptor",
    "EnvelopeError",
    "FormatError",
    "Header",
    "HierarchicalKeyring",
    "KMSClient",
    "KMSDiscoveryKeyring",
    "KMSECDHKeyring",
    "KMSError",
    "KMSKeyring",
    "KMSMRKAwareDiscoveryKeyring",
    "KMSMRKAwareKeyring",
    "KMSRSAKeyring",
    "KeyDisabledError",
    "KeyNotFoundError",
    "Keyring",
    "KeyringError",
    "LocalCache",
    "MaterialsManager",
    "MultiKeyring",
    "NoMatchingKeyError",
    "PolicyError",
    "RawAESKeyring",
    "RawECDHKeyring",
    "RawRSAKeyring",
    "RequiredEncryptionContextManager",
    "decrypt",
    "decrypt_file",
    "decrypt_range",
    "decrypt_stream",
    "edk_key_name",
    "encrypt",
    "encrypt_file",
    "encrypt_stream",
    "read_header",
    "rewrap",
]

_SUBMODULES = frozenset({"aio", "kms"})


def __getattr__(name: str) -> Any:
    # envelope.kms and envelope.aio load on first use: most programs need neither.
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'envelope' has no attribute {name!r}")
