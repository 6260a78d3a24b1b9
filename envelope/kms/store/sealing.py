"""Key material at rest: AES-256-GCM sealing under a root key that never enters the database.

The root key comes from ENVELOPE_KMS_ROOT_KEY (base64, 32 bytes) or a 0600 file in the data dir.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["ROOT_KEY_ENV", "ROOT_KEY_FILE", "Sealer", "load_root_key"]

ROOT_KEY_ENV = "ENVELOPE_KMS_ROOT_KEY"
ROOT_KEY_FILE = "kms-root.key"
_SEAL_LABEL = b"envelope-kms-seal-v1\x00"
_FINGERPRINT_LABEL = b"envelope-kms-fingerprint-v1\x00"


def load_root_key(data_dir: Path | None) -> bytes:
    """Return the root key: from the environment, else from (or newly created in) ``data_dir``.

    With ``data_dir=None`` (an in-memory store) and no environment key, a fresh random key is used.

    :raises ValueError: the environment or file holds something other than 32 bytes.
    """
    env = os.environ.get(ROOT_KEY_ENV)
    if env:
        try:
            key = base64.b64decode(env, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{ROOT_KEY_ENV} is not valid base64") from None
        if len(key) != 32:
            raise ValueError(f"{ROOT_KEY_ENV} must decode to 32 bytes")
        return key
    if data_dir is None:
        return os.urandom(32)
    path = data_dir / ROOT_KEY_FILE
    if not path.exists():
        _create_root_key_file(path)
    key = path.read_bytes()
    if len(key) != 32:
        raise ValueError(f"root key file {path} is damaged (expected 32 bytes)")
    return key


def _create_root_key_file(path: Path) -> None:
    # Write a private temp file, then hard-link it into place: link() fails if another process won
    # the race, so every process ends up reading the same complete key (never a half-written one).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, os.urandom(32))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


class Sealer:
    """Seals and opens key material under the root key, bound to the key id and version."""

    __slots__ = ("_aead", "_fingerprint_key")

    def __init__(self, root_key: bytes) -> None:
        if len(root_key) != 32:
            raise ValueError("the root key must be 32 bytes")
        self._aead = AESGCM(hashlib.sha256(_SEAL_LABEL + root_key).digest())
        self._fingerprint_key = hashlib.sha256(_FINGERPRINT_LABEL + root_key).digest()

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

    def fingerprint(self, material: bytes) -> bytes:
        """A keyed digest of material, kept so re-imports can be checked after the material is gone."""
        return hmac.new(self._fingerprint_key, material, hashlib.sha256).digest()


def _aad(key_id: str, version: int) -> bytes:
    return key_id.encode("ascii") + b"\x00" + version.to_bytes(4, "big")
