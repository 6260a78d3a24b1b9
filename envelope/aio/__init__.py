"""Async envelope encryption on anyio (asyncio and trio): one-shot `encrypt`/`decrypt`, streams
(`encrypt_stream`/`decrypt_stream`), files (`encrypt_file`/`decrypt_file`) and file objects
(`AsyncEncryptor`/`AsyncDecryptor`), with the sync driver's guarantees: bounded memory, and
only authenticated plaintext is ever released.
"""

from __future__ import annotations

from .api import decrypt as decrypt
from .api import encrypt as encrypt
from .decryptor import AsyncDecryptor as AsyncDecryptor
from .encryptor import AsyncEncryptor as AsyncEncryptor
from .files import decrypt_file as decrypt_file
from .files import encrypt_file as encrypt_file
from .materials import AsyncDefaultMaterialsManager as AsyncDefaultMaterialsManager
from .protocols import AsyncKeyring as AsyncKeyring
from .protocols import AsyncMaterialsManager as AsyncMaterialsManager
from .ranged import decrypt_range as decrypt_range
from .streams import decrypt_stream as decrypt_stream
from .streams import encrypt_stream as encrypt_stream

__all__ = [
    "AsyncDecryptor",
    "AsyncDefaultMaterialsManager",
    "AsyncEncryptor",
    "AsyncKeyring",
    "AsyncMaterialsManager",
    "decrypt",
    "decrypt_file",
    "decrypt_range",
    "decrypt_stream",
    "encrypt",
    "encrypt_file",
    "encrypt_stream",
]
