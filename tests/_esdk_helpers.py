"""Helpers that drive the `aws-encryption-sdk` package (the reference peer) from tests and vectors.

The ESDK is a test dependency only; nothing here is imported by `envelope` itself.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import envelope

with warnings.catch_warnings():
    # The ESDK imports modules that warn about their own deprecations on import.
    warnings.simplefilter("ignore")
    import aws_encryption_sdk  # type: ignore[import-untyped]
    from aws_encryption_sdk import CommitmentPolicy as ESDKCommitmentPolicy
    from aws_encryption_sdk.exceptions import AWSEncryptionSDKClientError  # type: ignore[import-untyped]
    from aws_encryption_sdk.identifiers import Algorithm, EncryptionKeyType, WrappingAlgorithm  # type: ignore[import-untyped]
    from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey  # type: ignore[import-untyped]
    from aws_encryption_sdk.key_providers.base import MasterKeyProvider, MasterKeyProviderConfig  # type: ignore[import-untyped]
    from aws_encryption_sdk.key_providers.raw import RawMasterKey  # type: ignore[import-untyped]
    from aws_encryption_sdk.materials_managers import DecryptionMaterialsRequest  # type: ignore[import-untyped]
    from aws_encryption_sdk.materials_managers.default import DefaultCryptoMaterialsManager  # type: ignore[import-untyped]

__all__ = [
    "ESDK_RSA_PADDINGS",
    "AWSEncryptionSDKClientError",
    "ESDKRequiredContextCMM",
    "esdk_aes_key",
    "esdk_algorithm",
    "esdk_client",
    "esdk_decrypt",
    "esdk_encrypt",
    "esdk_multi",
    "esdk_rsa_key",
    "policy_for",
    "rsa_private_pem",
    "rsa_public_pem",
]

_AES_WRAPPING = {
    16: WrappingAlgorithm.AES_128_GCM_IV12_TAG16_NO_PADDING,
    24: WrappingAlgorithm.AES_192_GCM_IV12_TAG16_NO_PADDING,
    32: WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
}

# Our padding names (envelope.RawRSAKeyring) -> the ESDK's wrapping algorithms.
ESDK_RSA_PADDINGS: dict[str, WrappingAlgorithm] = {
    "PKCS1": WrappingAlgorithm.RSA_PKCS1,
    "OAEP-SHA1": WrappingAlgorithm.RSA_OAEP_SHA1_MGF1,
    "OAEP-SHA256": WrappingAlgorithm.RSA_OAEP_SHA256_MGF1,
    "OAEP-SHA384": WrappingAlgorithm.RSA_OAEP_SHA384_MGF1,
    "OAEP-SHA512": WrappingAlgorithm.RSA_OAEP_SHA512_MGF1,
}


def policy_for(suite: envelope.AlgorithmSuite) -> envelope.CommitmentPolicy:
    """The commitment policy under which ``suite`` may be written (non-committing needs FORBID)."""
    if suite.is_committing:
        return envelope.CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT
    return envelope.CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT


def esdk_algorithm(suite: envelope.AlgorithmSuite) -> Algorithm:
    return Algorithm.get_by_id(int(suite))


@functools.cache
def _client(policy_name: str, max_edks: int | None) -> Any:
    kwargs: dict[str, Any] = {"commitment_policy": ESDKCommitmentPolicy[policy_name]}
    if max_edks is not None:
        kwargs["max_encrypted_data_keys"] = max_edks
    return aws_encryption_sdk.EncryptionSDKClient(**kwargs)


def esdk_client(suite: envelope.AlgorithmSuite | None = None, *, max_encrypted_data_keys: int | None = None) -> Any:
    """An ESDK client allowed to write ``suite`` and to read every suite (None: the allow-all reader)."""
    if suite is not None and not suite.is_committing:
        return _client("FORBID_ENCRYPT_ALLOW_DECRYPT", max_encrypted_data_keys)
    return _client("REQUIRE_ENCRYPT_ALLOW_DECRYPT", max_encrypted_data_keys)


def esdk_aes_key(namespace: str, name: str, key: bytes) -> RawMasterKey:
    wrapping = WrappingKey(wrapping_algorithm=_AES_WRAPPING[len(key)], wrapping_key=key,
                           wrapping_key_type=EncryptionKeyType.SYMMETRIC)
    return RawMasterKey(provider_id=namespace, key_id=name.encode("utf-8"), wrapping_key=wrapping)


def esdk_rsa_key(namespace: str, name: str, private_pem: bytes, padding: str) -> RawMasterKey:
    wrapping = WrappingKey(wrapping_algorithm=ESDK_RSA_PADDINGS[padding], wrapping_key=private_pem,
                           wrapping_key_type=EncryptionKeyType.PRIVATE)
    return RawMasterKey(provider_id=namespace, key_id=name.encode("utf-8"), wrapping_key=wrapping)


class _MultiProvider(MasterKeyProvider):  # type: ignore[misc]
    """A provider that only groups master keys: the first member generates, all of them wrap."""

    provider_id = "envelope-tests-multi"
    _config_class = MasterKeyProviderConfig

    def _new_master_key(self, key_id: bytes) -> Any:
        raise AWSEncryptionSDKClientError(f"no master key {key_id!r} in this test provider")


def esdk_multi(master_keys: Sequence[RawMasterKey]) -> MasterKeyProvider:
    provider = _MultiProvider()
    provider.add_master_key_providers_from_list(master_keys)
    return provider


def esdk_encrypt(plaintext: bytes, key_provider: Any, suite: envelope.AlgorithmSuite, frame_length: int,
                 encryption_context: Mapping[str, str] | None = None) -> bytes:
    ciphertext, _ = esdk_client(suite).encrypt(
        source=plaintext, key_provider=key_provider, algorithm=esdk_algorithm(suite),
        frame_length=frame_length, encryption_context=dict(encryption_context or {}))
    return bytes(ciphertext)


def esdk_decrypt(ciphertext: bytes, key_provider: Any = None, *, materials_manager: Any = None,
                 max_encrypted_data_keys: int | None = None) -> tuple[bytes, dict[str, str]]:
    """Decrypt with the allow-all client; returns (plaintext, the header's encryption context)."""
    client = esdk_client(None, max_encrypted_data_keys=max_encrypted_data_keys)
    source = {"materials_manager": materials_manager} if materials_manager is not None else {
        "key_provider": key_provider}
    plaintext, header = client.decrypt(source=ciphertext, **source)
    return bytes(plaintext), dict(header.encryption_context)


class ESDKRequiredContextCMM(DefaultCryptoMaterialsManager):  # type: ignore[misc]
    """Required-encryption-context CMM for the ESDK without the MPL.

    ESDK 4.0.7 ships the required-EC CMM only in `aws-cryptographic-material-providers` (the MPL),
    but its message code path is duck-typed: materials carrying ``required_encryption_context_keys``
    make it keep those pairs out of the header and authenticate them in the header tag
    (streaming_client.generate_header / _read_header). This CMM sets that attribute, so the
    ESDK's own header code is what we test against. The decrypt-time context is held here because
    the MPL-less client refuses ``encryption_context=`` on decrypt: pairs the header stores must
    match, pairs it lacks are treated as required.
    """

    def __init__(self, master_key_provider: Any, required: Mapping[str, str]) -> None:
        super().__init__(master_key_provider)
        self.required = dict(required)

    def get_encryption_materials(self, request: Any) -> Any:
        materials = super().get_encryption_materials(request)
        materials.required_encryption_context_keys = list(self.required)
        return materials

    def decrypt_materials(self, request: Any) -> Any:
        stored = request.encryption_context
        for key, value in self.required.items():
            if key in stored and stored[key] != value:
                raise AWSEncryptionSDKClientError(f"encryption context value for {key!r} differs")
        # Pairs the header lacks are the required ones: they join the context the keys and the
        # header tag are checked against.
        missing = {k: v for k, v in self.required.items() if k not in stored}
        context = {**stored, **missing}
        full = DecryptionMaterialsRequest(algorithm=request.algorithm, encrypted_data_keys=request.encrypted_data_keys,
                                          encryption_context=context, commitment_policy=request.commitment_policy)
        materials = super().decrypt_materials(full)
        materials.encryption_context = context
        materials.required_encryption_context_keys = list(missing)
        return materials


@functools.cache
def _rsa_key(bits: int, index: int) -> rsa.RSAPrivateKey:
    # index only keeps distinct cached keys apart; RSA key generation cannot be seeded.
    del index
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def rsa_private_pem(bits: int = 2048, index: int = 0) -> bytes:
    return _rsa_key(bits, index).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption())


def rsa_public_pem(bits: int = 2048, index: int = 0) -> bytes:
    return _rsa_key(bits, index).public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo)

