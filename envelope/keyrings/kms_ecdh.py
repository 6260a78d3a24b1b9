"""KMS ECDH keyring: data keys wrapped under a key agreed by ECDH where one private key is a KMS
KEY_AGREEMENT key (ESDK spec framework/aws-kms/aws-kms-ecdh-keyring.md, key-agreement-schemas.md).

The shared secret comes from KMS DeriveSharedSecret; everything after it (provider info, fixed
info, KDF, wrapping, commitment) is the raw ECDH keyring's (format-spec/raw-ecdh.md), so either
keyring decrypts what the other made for the same key pair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..crypto import ecdh
from ..crypto.random import random_bytes
from ..errors import KeyringError
from ..format.context import serialize_context
from ..format.header import EncryptedDataKey
from ..materials.materials import DecryptionMaterials, EncryptionMaterials
from .ecdh_wrapping import ECDHProviderInfo, fixed_info, unwrap_first, wrap
from .kms import _bytes_field, _call_kms, _check_client, _grant_token_tuple, _is_valid_identifier

__all__ = ["PROVIDER_ID", "KMSECDHClient", "KMSECDHKeyring"]

PROVIDER_ID = "aws-kms-ecdh"
Scheme = Literal["static", "discovery"]


@runtime_checkable
class KMSECDHClient(Protocol):
    """The KMS methods the keyring calls, with boto3's shapes (LocalKMS and boto3 fit)."""

    def derive_shared_secret(self, **kwargs: Any) -> Mapping[str, Any]:
        ...

    def get_public_key(self, **kwargs: Any) -> Mapping[str, Any]:
        ...


def _der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class KMSECDHKeyring:
    """Wraps data keys with ECDH between a KMS KEY_AGREEMENT key and a public key.

    - `static` (KmsPrivateKeyToStaticPublicKey): the KMS key is the sender, ``recipient_public_key``
      the recipient; encrypts, and decrypts what either party made with these two keys.
    - `discovery` (KmsPublicKeyDiscovery): the KMS key is the recipient; decrypts any message
      wrapped for its public key, from any sender (the sender is not authenticated). No encrypt.

    Construction calls GetPublicKey for the KMS key's public key (unless given) and checks that the
    key's usage is KEY_AGREEMENT on ``curve``; each encrypt or decrypt calls DeriveSharedSecret.

    :raises KMSError: GetPublicKey failed (construction) or DeriveSharedSecret failed (encrypt).
    :raises NoMatchingKeyError: from ``on_decrypt``, with each matching EDK's reason.
    """

    def __init__(self, scheme: Scheme, key_id: str, curve: str, client: KMSECDHClient,
                 recipient_public_key: bytes | str | None, grant_tokens: Sequence[str],
                 kms_public_key: bytes | str | None) -> None:
        """Use `static` or `discovery`."""
        if not isinstance(key_id, str):
            raise TypeError("key_id must be a str")
        if not _is_valid_identifier(key_id):
            raise ValueError(f"{key_id!r} is not a KMS key ARN, key id, alias name or alias ARN")
        _check_client(client, ("derive_shared_secret", "get_public_key"))
        self.scheme: Scheme = scheme
        self.key_id = key_id
        self.client = client
        self.grant_tokens = _grant_token_tuple(grant_tokens)
        self._curve = ecdh.curve_named(curve)
        self.curve = self._curve.name
        own = (ecdh.load_public_key(kms_public_key, self._curve, "kms_public_key") if kms_public_key is not None
               else self._fetch_public_key())
        self._own = ecdh.compress(own)
        if scheme == "static":
            if recipient_public_key is None:
                raise RuntimeError("envelope: internal error: no recipient public key")
            peer = ecdh.load_public_key(recipient_public_key, self._curve, "recipient_public_key")
            self._recipient, self._recipient_der = ecdh.compress(peer), _der(peer)
        else:
            self._recipient, self._recipient_der = self._own, b""

    @classmethod
    def static(cls, key_id: str, recipient_public_key: bytes | str, curve: str, *, client: KMSECDHClient,
               grant_tokens: Sequence[str] = (), sender_public_key: bytes | str | None = None) -> KMSECDHKeyring:
        """KmsPrivateKeyToStaticPublicKey: the KMS key (sender) to a static recipient public key.

        :param recipient_public_key: DER SubjectPublicKeyInfo or PEM, on ``curve``.
        :param sender_public_key: the KMS key's public key, to skip the GetPublicKey call.
        :raises ValueError: a key does not load or is on another curve, or the KMS key is not a
            KEY_AGREEMENT key on ``curve``.
        """
        return cls("static", key_id, curve, client, recipient_public_key, grant_tokens, sender_public_key)

    @classmethod
    def discovery(cls, key_id: str, curve: str, *, client: KMSECDHClient, grant_tokens: Sequence[str] = (),
                  recipient_public_key: bytes | str | None = None) -> KMSECDHKeyring:
        """KmsPublicKeyDiscovery: decrypt only, messages for the KMS key (the recipient) from any sender.

        :param recipient_public_key: the KMS key's public key, to skip the GetPublicKey call.
        """
        return cls("discovery", key_id, curve, client, None, grant_tokens, recipient_public_key)

    def __repr__(self) -> str:
        return f"KMSECDHKeyring.{self.scheme}({self.key_id!r}, curve={self.curve!r})"

    def __str__(self) -> str:  # how messages name it (never the repr)
        return f"KMS ECDH {self.scheme} keyring on KMS key {self.key_id}"

    def _with_tokens(self, **kwargs: Any) -> dict[str, Any]:
        if self.grant_tokens:
            kwargs["GrantTokens"] = list(self.grant_tokens)
        return kwargs

    def _fetch_public_key(self) -> ec.EllipticCurvePublicKey:
        response = _call_kms(self.client, "get_public_key", **self._with_tokens(KeyId=self.key_id))
        # key-agreement-schemas.md: the response MUST say KEY_AGREEMENT and the configured curve.
        if response.get("KeyUsage") != "KEY_AGREEMENT":
            raise ValueError(f"KMS key {self.key_id} has key usage {response.get('KeyUsage')!r}, not KEY_AGREEMENT")
        if response.get("KeySpec") != self.curve:
            raise ValueError(f"KMS key {self.key_id} is {response.get('KeySpec')!r}, not {self.curve}")
        return ecdh.load_public_key(_bytes_field(response, "PublicKey", "GetPublicKey"), self._curve,
                                    "the KMS key's public key")

    def _derive(self, peer_der: bytes) -> bytes:
        response = _call_kms(self.client, "derive_shared_secret", **self._with_tokens(
            KeyId=self.key_id, KeyAgreementAlgorithm="ECDH", PublicKey=peer_der))
        secret = _bytes_field(response, "SharedSecret", "DeriveSharedSecret")
        if len(secret) != self._curve.coordinate_length:
            raise KeyringError(f"DeriveSharedSecret returned {len(secret)} bytes; {self.curve} needs "
                               f"{self._curve.coordinate_length}")
        return secret

    def on_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
        if self.scheme == "discovery":
            raise KeyringError(f"{self} only decrypts (a discovery keyring has no recipient to encrypt to)")
        secret = self._derive(self._recipient_der)
        data_key = materials.plaintext_data_key
        generate = data_key is None
        if data_key is None:
            data_key = random_bytes(materials.algorithm.key_length)
        info = fixed_info(self._curve, self._own, self._recipient, serialize_context(materials.encryption_context))
        edk = EncryptedDataKey(PROVIDER_ID, ECDHProviderInfo(self._recipient, self._own).serialize(),
                               wrap(secret, info, data_key))
        if generate:
            return materials.with_data_key(data_key, edk)
        return materials.with_encrypted_data_key(edk)

    def _peer(self, keys: ECDHProviderInfo) -> bytes | None:
        if self.scheme == "discovery":
            return keys.sender if keys.recipient == self._own else None
        if {keys.recipient, keys.sender} == {self._own, self._recipient}:
            return self._recipient
        return None

    def _secret_with(self, peer: bytes) -> bytes | None:
        if peer == self._recipient and self._recipient_der:
            return self._derive(self._recipient_der)
        peer_key = ecdh.decompress(peer, self._curve)  # a sender's key from the message: prove it a point
        if peer_key is None:
            return None
        return self._derive(_der(peer_key))

    def on_decrypt(self, materials: DecryptionMaterials,
                   encrypted_data_keys: Sequence[EncryptedDataKey]) -> DecryptionMaterials:
        if materials.plaintext_data_key is not None:
            return materials
        data_key = unwrap_first("KMS ECDH keyring could not decrypt", repr(self), self._curve, encrypted_data_keys,
                                serialize_context(materials.encryption_context), materials.algorithm.key_length,
                                self._peer, self._secret_with)
        return materials.with_data_key(data_key)


