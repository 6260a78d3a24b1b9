"""Raw ECDH keyring: wraps data keys under a key agreed by ECDH with local EC keys
(format-spec/raw-ecdh.md; ESDK spec framework/raw-ecdh-keyring.md, key-agreement-schemas.md).

Each wrapped key is bound to both public keys, the curve and the full encryption context (the KDF's
fixed info, also the GCM AAD), and carries a key commitment checked before unwrapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import ec

from ..crypto import ecdh
from ..crypto.random import random_bytes
from ..errors import KeyringError, NoMatchingKeyError
from ..format.context import serialize_context
from ..format.header import EncryptedDataKey
from ..materials.materials import DecryptionMaterials, EncryptionMaterials
from .ecdh_wrapping import ECDHProviderInfo, fixed_info, unwrap_first, wrap

__all__ = ["PROVIDER_ID", "RawECDHKeyring"]

PROVIDER_ID = "raw-ecdh"

Scheme = Literal["static", "ephemeral", "discovery"]


class RawECDHKeyring:
    """Wraps data keys for the holder of an EC private key, using ECDH on P-256, P-384 or P-521.

    Build one with a class method; each is one of the ESDK's key agreement schemes:

    - `static`: a sender key pair and the recipient's public key; encrypts, and decrypts what
      either party made with the same two keys.
    - `ephemeral`: the recipient's public key only; every message gets a fresh sender key, so
      anyone with the public key can encrypt. It cannot decrypt.
    - `discovery`: the recipient's private key; decrypts any message wrapped for its public key,
      from any sender. It cannot encrypt. The sender is not authenticated: anyone can make such a
      message.

    Private keys are unencrypted PEM (PKCS #8); public keys DER SubjectPublicKeyInfo or PEM.
    """

    def __init__(self, scheme: Scheme, curve: str, private_key: ec.EllipticCurvePrivateKey | None,
                 recipient_public_key: ec.EllipticCurvePublicKey | None) -> None:
        """Use `static`, `ephemeral` or `discovery`; this takes loaded keys and checks little."""
        self.scheme: Scheme = scheme
        self._curve = ecdh.curve_named(curve)
        self.curve = self._curve.name
        self._private = private_key
        self._own = ecdh.compress(private_key.public_key()) if private_key is not None else b""
        if scheme == "discovery":
            self._recipient = self._own
            self._recipient_key = None
        else:
            if recipient_public_key is None:
                raise RuntimeError("envelope: internal error: no recipient public key")
            self._recipient = ecdh.compress(recipient_public_key)
            self._recipient_key = recipient_public_key
        # Static keys agree on one secret for ever: compute it once.
        self._static_secret = (ecdh.shared_secret(private_key, recipient_public_key)
                               if scheme == "static" and private_key is not None and recipient_public_key is not None
                               else None)

    @classmethod
    def static(cls, sender_private_key: bytes | str, recipient_public_key: bytes | str,
               curve: str = "ECC_NIST_P256") -> RawECDHKeyring:
        """RawPrivateKeyToStaticPublicKey: encrypt with a static sender key to a static recipient.

        :raises ValueError: a key does not load, is not an EC key, or is not on ``curve``.
        """
        spec = ecdh.curve_named(curve)
        private = ecdh.load_private_key(sender_private_key, spec, "sender_private_key")
        public = ecdh.load_public_key(recipient_public_key, spec, "recipient_public_key")
        return cls("static", spec.name, private, public)

    @classmethod
    def ephemeral(cls, recipient_public_key: bytes | str, curve: str = "ECC_NIST_P256") -> RawECDHKeyring:
        """EphemeralPrivateKeyToStaticPublicKey: encrypt only, a new sender key per message.

        :raises ValueError: the key does not load, is not an EC key, or is not on ``curve``.
        """
        spec = ecdh.curve_named(curve)
        public = ecdh.load_public_key(recipient_public_key, spec, "recipient_public_key")
        return cls("ephemeral", spec.name, None, public)

    @classmethod
    def discovery(cls, recipient_private_key: bytes | str, curve: str = "ECC_NIST_P256") -> RawECDHKeyring:
        """PublicKeyDiscovery: decrypt only, whatever the sender's key.

        :raises ValueError: the key does not load, is not an EC key, or is not on ``curve``.
        """
        spec = ecdh.curve_named(curve)
        private = ecdh.load_private_key(recipient_private_key, spec, "recipient_private_key")
        return cls("discovery", spec.name, private, None)

    def __repr__(self) -> str:
        # The recipient's compressed key, shortened, tells keyrings apart without printing a secret.
        return f"RawECDHKeyring.{self.scheme}(curve={self.curve!r}, recipient={self._recipient[:8].hex()}…)"

    def __str__(self) -> str:  # how messages name it (never the repr)
        return f"ECDH {self.scheme} keyring on {self.curve} (recipient {self._recipient[:8].hex()}…)"

    # --- encrypt ---------------------------------------------------------------------------------

    def on_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
        if self.scheme == "discovery":
            raise KeyringError(f"{self} only decrypts (a discovery keyring has no recipient to encrypt to)")
        if self.scheme == "ephemeral":
            if self._recipient_key is None:  # pragma: no cover
                raise RuntimeError("envelope: internal error: no recipient public key")
            ephemeral = ecdh.generate_private_key(self._curve)
            secret = ecdh.shared_secret(ephemeral, self._recipient_key)
            sender = ecdh.compress(ephemeral.public_key())
        else:
            if self._static_secret is None:  # pragma: no cover
                raise RuntimeError("envelope: internal error: no static shared secret")
            secret, sender = self._static_secret, self._own
        data_key = materials.plaintext_data_key
        generate = data_key is None
        if data_key is None:
            data_key = random_bytes(materials.algorithm.key_length)
        info = fixed_info(self._curve, sender, self._recipient, serialize_context(materials.encryption_context))
        edk = EncryptedDataKey(PROVIDER_ID, ECDHProviderInfo(self._recipient, sender).serialize(),
                               wrap(secret, info, data_key))
        if generate:
            return materials.with_data_key(data_key, edk)
        return materials.with_encrypted_data_key(edk)

    # --- decrypt ---------------------------------------------------------------------------------

    def _peer(self, keys: ECDHProviderInfo) -> bytes | None:
        """The compressed public key to agree with, or None if the EDK is not for this keyring."""
        if self.scheme == "discovery":
            return keys.sender if keys.recipient == self._own else None
        # Static: the same two keys in either role, so each party decrypts what the other sent.
        if {keys.recipient, keys.sender} == {self._own, self._recipient}:
            return self._recipient
        return None

    def _secret_with(self, peer: bytes) -> bytes | None:
        if peer == self._recipient and self._static_secret is not None:
            return self._static_secret
        # The other key in the provider info equals our own byte for byte (that is how it matched),
        # a valid point by construction; the peer's must be proved one (format-spec/raw-ecdh.md §6).
        peer_key = ecdh.decompress(peer, self._curve)
        if peer_key is None or self._private is None:
            return None
        return ecdh.shared_secret(self._private, peer_key)

    def on_decrypt(self, materials: DecryptionMaterials,
                   encrypted_data_keys: Sequence[EncryptedDataKey]) -> DecryptionMaterials:
        if materials.plaintext_data_key is not None:
            return materials
        if self.scheme == "ephemeral" or self._private is None:
            raise NoMatchingKeyError("raw ECDH keyring could not decrypt",
                                     [f"{self} only encrypts (it holds no private key)"])
        data_key = unwrap_first("raw ECDH keyring could not decrypt", repr(self), self._curve, encrypted_data_keys,
                                serialize_context(materials.encryption_context), materials.algorithm.key_length,
                                self._peer, self._secret_with)
        return materials.with_data_key(data_key)
