"""KMS RSA keyring: wraps data keys locally with the public key of an asymmetric KMS key and unwraps
them through KMS Decrypt (ESDK spec framework/aws-kms/aws-kms-rsa-keyring.md; format-spec/message.md §7.6).

RSA-OAEP binds nothing beyond its plaintext, so the plaintext is SHA-384(serialized encryption
context) || data key, and decrypt compares that digest before accepting the key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..crypto.random import random_bytes
from ..errors import EnvelopeError, KeyringError, KMSError, NoMatchingKeyError, PolicyError
from ..format.context import serialize_context
from ..format.header import EncryptedDataKey
from ..format.suites import AlgorithmSuite
from ..materials.materials import DecryptionMaterials, EncryptionMaterials
from .kms import (
    KMSClient,
    _bytes_field,
    _call_kms,
    _check_client,
    _grant_token_tuple,
    _is_valid_identifier,
    mrk_match,
    parse_kms_arn,
)

__all__ = ["ENCRYPTION_ALGORITHMS", "PROVIDER_ID", "KMSRSAKeyring"]

PROVIDER_ID = "aws-kms-rsa"
# KMS's names -> the OAEP hash (MGF1 uses the same one): aws-kms-rsa-keyring.md "Supported Padding Schemes".
ENCRYPTION_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "RSAES_OAEP_SHA_1": hashes.SHA1,
    "RSAES_OAEP_SHA_256": hashes.SHA256,
}
_DIGEST_LENGTH = 48  # SHA-384 of the serialized encryption context
_MIN_MODULUS_BITS = 2048  # the spec: the untruncated digest rules out 1024-bit keys


def _context_digest(context: Mapping[str, str]) -> bytes:
    return hashlib.sha384(serialize_context(context)).digest()


def _refuse_signing(suite: AlgorithmSuite) -> None:
    # aws-kms-rsa-keyring.md "Security Considerations": the wrapping key is public, so a signature
    # would prove nothing about who made the message; the ESDK refuses such suites and so do we.
    if suite.is_signing:
        raise PolicyError(f"the KMS RSA keyring cannot be used with the signing suite {suite.name}; "
                          "choose a suite without a signature",
                          hint="pass algorithm=AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY")


def _load_public_key(data: bytes | str) -> rsa.RSAPublicKey:
    if isinstance(data, str):
        data = data.encode("ascii", "replace")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("public_key must be PEM or DER bytes")
    raw = bytes(data)
    try:
        key = (serialization.load_pem_public_key(raw) if raw.lstrip().startswith(b"-----BEGIN")
               else serialization.load_der_public_key(raw))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("public_key is not a valid PEM or DER public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("public_key is not an RSA public key")  # noqa: TRY004 - the bytes are the wrong value
    if key.key_size < _MIN_MODULUS_BITS:
        raise ValueError(f"public_key is a {key.key_size}-bit RSA key; the KMS RSA keyring needs at least "
                         f"{_MIN_MODULUS_BITS} bits")
    return key


class KMSRSAKeyring:
    """Wraps data keys with an asymmetric (RSA, ENCRYPT_DECRYPT) KMS key.

    Encrypt needs no KMS call once the public key is known: it is ``public_key`` (PEM or DER), or
    is fetched once with GetPublicKey on first use. Decrypt calls KMS Decrypt with the configured
    ``encryption_algorithm``, and needs ``key_id`` to be a key ARN. Only suites without a
    signature are allowed (anyone with the public key can make such a message).

    :param key_id: a key ARN or key id (not an alias).
    :param client: any object with boto3's KMS method shapes.
    :param encryption_algorithm: ``RSAES_OAEP_SHA_256`` (default) or ``RSAES_OAEP_SHA_1``.
    :raises PolicyError: from ``on_encrypt``/``on_decrypt`` for a signing suite.
    """

    def __init__(self, key_id: str, *, client: KMSClient, public_key: bytes | str | None = None,
                 encryption_algorithm: str = "RSAES_OAEP_SHA_256", grant_tokens: Sequence[str] = ()) -> None:
        if not isinstance(key_id, str):
            raise TypeError("key_id must be a str")
        arn = parse_kms_arn(key_id)
        if key_id.startswith("alias/") or (arn is not None and arn.resource_type == "alias"):
            raise ValueError("the KMS RSA keyring needs a key ARN or key id, not an alias")
        if not _is_valid_identifier(key_id):
            raise ValueError(f"{key_id!r} is not a KMS key ARN or key id")
        if encryption_algorithm not in ENCRYPTION_ALGORITHMS:
            raise ValueError(f"unsupported encryption_algorithm {encryption_algorithm!r}; expected one of "
                             f"{', '.join(ENCRYPTION_ALGORITHMS)}")
        _check_client(client, ("decrypt",) if public_key is not None else ("decrypt", "get_public_key"))
        self.key_id = key_id
        self.client = client
        self.encryption_algorithm = encryption_algorithm
        self.grant_tokens = _grant_token_tuple(grant_tokens)
        hash_cls = ENCRYPTION_ALGORITHMS[encryption_algorithm]
        self._padding = padding.OAEP(mgf=padding.MGF1(hash_cls()), algorithm=hash_cls(), label=None)
        self._public = _load_public_key(public_key) if public_key is not None else None

    def __repr__(self) -> str:
        return f"KMSRSAKeyring({self.key_id!r}, encryption_algorithm={self.encryption_algorithm!r})"

    def __str__(self) -> str:  # how messages name it (never the repr)
        return f"KMS RSA key {self.key_id}"

    def _kwargs(self) -> dict[str, Any]:
        return {"GrantTokens": list(self.grant_tokens)} if self.grant_tokens else {}

    def _public_key(self) -> rsa.RSAPublicKey:
        """The configured public key, or the one GetPublicKey returns (fetched once)."""
        if self._public is None:
            response = _call_kms(self.client, "get_public_key", KeyId=self.key_id, **self._kwargs())
            if response.get("KeyUsage") != "ENCRYPT_DECRYPT" or \
                    self.encryption_algorithm not in (response.get("EncryptionAlgorithms") or ()):
                raise KeyringError(f"{self.key_id} is not an ENCRYPT_DECRYPT RSA key that supports "
                                   f"{self.encryption_algorithm}")
            try:
                self._public = _load_public_key(_bytes_field(response, "PublicKey", "GetPublicKey"))
            except ValueError as exc:
                raise KeyringError(f"GetPublicKey for {self.key_id}: {exc}") from None
        return self._public

    def on_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
        _refuse_signing(materials.algorithm)
        public = self._public_key()
        data_key = materials.plaintext_data_key
        generate = data_key is None
        if data_key is None:
            data_key = random_bytes(materials.algorithm.key_length)
        try:
            wrapped = public.encrypt(_context_digest(materials.encryption_context) + data_key, self._padding)
        except ValueError:  # the key is too small for the digest, the data key and the padding
            raise KeyringError(f"{self}: the RSA key is too small to wrap a data key") from None
        edk = EncryptedDataKey(PROVIDER_ID, self.key_id.encode("utf-8"), wrapped)
        return materials.with_data_key(data_key, edk) if generate else materials.with_encrypted_data_key(edk)

    def on_decrypt(self, materials: DecryptionMaterials,
                   encrypted_data_keys: Sequence[EncryptedDataKey]) -> DecryptionMaterials:
        if materials.plaintext_data_key is not None:
            return materials
        _refuse_signing(materials.algorithm)
        owner = f"{self} could not decrypt the data key"
        if parse_kms_arn(self.key_id) is None:
            raise NoMatchingKeyError(owner, ["decrypting needs the key configured by its ARN"])
        digest = _context_digest(materials.encryption_context)
        key_length = materials.algorithm.key_length
        errors: list[BaseException | str] = []
        for edk in encrypted_data_keys:
            if edk.provider_id != PROVIDER_ID:
                continue
            try:
                info = bytes(edk.provider_info).decode("utf-8")
            except UnicodeDecodeError:
                info = ""
            arn = parse_kms_arn(info)
            if arn is None or arn.resource_type != "key":
                # The spec: such provider info fails the whole call, not just this EDK.
                raise NoMatchingKeyError(owner, ["an aws-kms-rsa encrypted data key's provider info is not a KMS key ARN"])
            if not mrk_match(self.key_id, info):
                continue
            try:
                response = _call_kms(self.client, "decrypt", KeyId=self.key_id, CiphertextBlob=edk.ciphertext,
                                     EncryptionAlgorithm=self.encryption_algorithm, **self._kwargs())
                if response.get("KeyId") != self.key_id:
                    raise KeyringError(f"Decrypt answered for key {response.get('KeyId')!r}, not {self.key_id}")
                plaintext = _bytes_field(response, "Plaintext", "Decrypt")
            except KMSError as exc:
                text = str(exc)
                errors.append(KMSError(f"{info}: {text if text.startswith(exc.code) else f'{exc.code}: {text}'}",
                                       code=exc.code))
                continue
            except EnvelopeError as exc:
                errors.append(KeyringError(f"{info}: {exc}"))
                continue
            if len(plaintext) != _DIGEST_LENGTH + key_length:
                errors.append(KeyringError(f"{info}: Decrypt returned {len(plaintext)} bytes; expected "
                                           f"{_DIGEST_LENGTH + key_length}"))
                continue
            if not hmac.compare_digest(plaintext[:_DIGEST_LENGTH], digest):
                errors.append(PolicyError(f"{info}: the data key was wrapped with a different encryption context"))
                continue
            return materials.with_data_key(plaintext[_DIGEST_LENGTH:])
        if not errors:
            errors.append("no encrypted data key matches")
        raise NoMatchingKeyError(owner, errors)
