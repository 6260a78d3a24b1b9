"""The ECDH keyrings' encrypted data key: provider info, fixed info, and wrapping a data key under a
shared secret (format-spec/raw-ecdh.md). Shared by the raw ECDH keyring and the KMS ECDH keyring:
nothing here cares where the shared secret came from (a local private key or KMS DeriveSharedSecret).

Parsing the provider info does not check that its points are on the curve; `decompress` does.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..crypto.aead import AEAD, IV_LENGTH, TAG_LENGTH
from ..crypto.ecdh import ECDHCurve, derive_keying_material
from ..crypto.random import random_bytes
from ..errors import AuthenticationError, EnvelopeError, NoMatchingKeyError
from ..format.header import EncryptedDataKey

__all__ = [
    "ECDH_PROVIDER_IDS",
    "KDF_LABEL",
    "KDF_PRF",
    "KEYRING_VERSION",
    "SALT_LENGTH",
    "ECDHProviderInfo",
    "fixed_info",
    "unwrap",
    "unwrap_first",
    "wrap",
    "wrapped_length",
]

# Both ECDH keyrings write this encoding (§2); the holder of the recipient's private key reads either.
ECDH_PROVIDER_IDS = frozenset({"raw-ecdh", "aws-kms-ecdh"})
KEYRING_VERSION = 0x01  # §2: the only version; also an input of the fixed info
KDF_LABEL = b"ecdh-key-derivation"  # §4 (the ESDK spec prints it in capitals; the bytes are lower case)
KDF_PRF = b"HMAC_SHA384"
SALT_LENGTH = 32
COMMITMENT_LENGTH = 32
_ZERO_IV = bytes(IV_LENGTH)  # safe: every wrapping key is fresh, derived with a random 32-byte salt (§5)
_U32 = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class ECDHProviderInfo:
    """The provider info of an ECDH EDK: the recipient's and the sender's compressed public keys (§2)."""

    recipient: bytes
    sender: bytes

    def serialize(self) -> bytes:
        """``0x01 || u32 len || recipient || u32 len || sender`` (the recipient comes first)."""
        return b"".join((bytes((KEYRING_VERSION,)), _U32.pack(len(self.recipient)), self.recipient,
                         _U32.pack(len(self.sender)), self.sender))

    @classmethod
    def parse(cls, info: bytes, curve: ECDHCurve) -> ECDHProviderInfo | None:
        """The two keys, or None unless ``info`` is exactly a version-1 provider info for ``curve``."""
        n = curve.compressed_length
        if len(info) != 1 + 4 + n + 4 + n or info[0] != KEYRING_VERSION:
            return None
        if _U32.unpack_from(info, 1)[0] != n or _U32.unpack_from(info, 5 + n)[0] != n:
            return None
        return cls(bytes(info[5:5 + n]), bytes(info[9 + n:]))


def fixed_info(curve: ECDHCurve, sender: bytes, recipient: bytes, context: bytes) -> bytes:
    """§4: label 0 curve 0 PRF 0 sender||recipient 0 version 0 serialized context."""
    return b"\x00".join((KDF_LABEL, curve.label.encode("ascii"), KDF_PRF, sender + recipient,
                         bytes((KEYRING_VERSION,)), context))


def wrapped_length(key_length: int) -> int:
    """The EDK ciphertext length for a data key of ``key_length`` bytes (112 for 32)."""
    return SALT_LENGTH + COMMITMENT_LENGTH + key_length + TAG_LENGTH


def wrap(secret: bytes, info: bytes, data_key: bytes) -> bytes:
    """Wrap ``data_key``: ``salt || commitment key || AES-256-GCM(data key) || tag`` (§3, §5).

    :param secret: the ECDH shared secret.
    :param info: `fixed_info` for this EDK and the message's encryption context.
    """
    salt = random_bytes(SALT_LENGTH)
    material = derive_keying_material(secret, info, salt)
    sealed = AEAD(material[COMMITMENT_LENGTH:]).seal(_ZERO_IV, data_key, info)
    return salt + material[:COMMITMENT_LENGTH] + sealed


def unwrap(secret: bytes, info: bytes, ciphertext: bytes, key_length: int) -> bytes:
    """Unwrap an EDK ciphertext made by `wrap`.

    :raises AuthenticationError: wrong length, the commitment key differs (wrong key or keys, or a
        different encryption context), or the tag does not verify.
    """
    if len(ciphertext) != wrapped_length(key_length):
        raise AuthenticationError("the wrapped data key has the wrong length")
    salt = ciphertext[:SALT_LENGTH]
    commitment = ciphertext[SALT_LENGTH:SALT_LENGTH + COMMITMENT_LENGTH]
    material = derive_keying_material(secret, info, salt)
    # Constant-time comparison (spec: key-agreement-schemas.md, "Key Commitment").
    if not hmac.compare_digest(material[:COMMITMENT_LENGTH], commitment):
        raise AuthenticationError("the wrapped data key's commitment does not match "
                                  "(wrong key, or a different encryption context)")
    return AEAD(material[COMMITMENT_LENGTH:]).open(_ZERO_IV, ciphertext[SALT_LENGTH + COMMITMENT_LENGTH:], info,
                                                  "wrapped data key")


def unwrap_first(failure: str, owner: str, curve: ECDHCurve, encrypted_data_keys: Sequence[EncryptedDataKey], context: bytes,
                 key_length: int, peer_of: Callable[[ECDHProviderInfo], bytes | None],
                 secret_with: Callable[[bytes], bytes | None]) -> bytes:
    """The decrypt loop of an ECDH keyring: the first EDK that unwraps gives the data key.

    :param failure: the NoMatchingKeyError's message ("raw ECDH keyring could not decrypt").
    :param owner: the keyring's repr, to prefix each reason.
    :param context: the serialized encryption context of the decryption materials.
    :param peer_of: the compressed key to agree with for an EDK's two keys, or None if the EDK is
        not for this keyring (skipped silently).
    :param secret_with: the shared secret with that key, or None if it is not a point on the
        curve; it may raise EnvelopeError (a KMS call failing), which is collected.
    :raises NoMatchingKeyError: no EDK unwrapped; ``errors`` says why for each one tried.
    """
    errors: list[str] = []
    for index, edk in enumerate(encrypted_data_keys):
        if edk.provider_id not in ECDH_PROVIDER_IDS:
            continue
        keys = ECDHProviderInfo.parse(edk.provider_info, curve)
        if keys is None:
            errors.append(f"{owner}: encrypted data key {index} has provider info that is not a "
                          f"{curve.name} key pair (another curve, or malformed)")
            continue
        peer = peer_of(keys)
        if peer is None:
            continue
        try:
            secret = secret_with(peer)
            if secret is None:
                errors.append(f"{owner}: encrypted data key {index} names a public key that is not a point "
                              f"on {curve.name}")
                continue
            return unwrap(secret, fixed_info(curve, keys.sender, keys.recipient, context), edk.ciphertext,
                          key_length)
        except AuthenticationError as exc:
            errors.append(f"{owner}: encrypted data key {index} did not unwrap ({exc})")
        except EnvelopeError as exc:
            errors.append(f"{owner}: encrypted data key {index}: {exc}")
    if not errors:
        errors.append(f"{owner}: the message has no data key wrapped for this key")
    raise NoMatchingKeyError(failure, errors)
