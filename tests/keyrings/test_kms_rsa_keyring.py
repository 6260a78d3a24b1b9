"""KMS RSA keyring over the embedded service, in process (ESDK spec framework/aws-kms/aws-kms-rsa-keyring.md).

The oracle runs in tests/server/test_kms_rsa_oracle.py (the MPL's keyring over boto3 and `kms serve`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import envelope
from envelope import AlgorithmSuite, KMSRSAKeyring, NoMatchingKeyError, PolicyError
from envelope.format.context import serialize_context
from envelope.keyrings.base import Keyring
from envelope.kms import LocalKMS
from envelope.materials.materials import DecryptionMaterials, EncryptionMaterials

UNSIGNED = AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
CONTEXT = {"tenant": "t-7"}


@pytest.fixture(scope="module")
def kms(tmp_path_factory: pytest.TempPathFactory) -> LocalKMS:
    return LocalKMS(tmp_path_factory.mktemp("kms-rsa"))


@pytest.fixture(scope="module")
def rsa_key(kms: LocalKMS) -> tuple[str, bytes]:
    """(key ARN, DER public key) of an RSA_2048 ENCRYPT_DECRYPT key."""
    arn = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    return str(arn), bytes(kms.get_public_key(KeyId=arn)["PublicKey"])


def _pem(der: bytes) -> bytes:
    return serialization.load_der_public_key(der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1"])
@pytest.mark.parametrize("public_key_form", ["fetched", "der", "pem"])
def test_round_trip(kms: LocalKMS, rsa_key: tuple[str, bytes], algorithm: str, public_key_form: str) -> None:
    arn, der = rsa_key
    public = {"fetched": None, "der": der, "pem": _pem(der)}[public_key_form]
    keyring = KMSRSAKeyring(arn, client=kms, public_key=public, encryption_algorithm=algorithm)
    _: Keyring = keyring
    message = envelope.encrypt(b"rsa", keyring=keyring, algorithm=UNSIGNED, encryption_context=CONTEXT)
    (edk,) = envelope.read_header(message).encrypted_data_keys
    assert (edk.provider_id, edk.provider_info, len(edk.ciphertext)) == ("aws-kms-rsa", arn.encode(), 256)
    # Decrypt needs no public key: a keyring without one (and never fetching one) decrypts.
    decrypting = KMSRSAKeyring(arn, client=kms, encryption_algorithm=algorithm)
    assert envelope.decrypt(message, keyring=decrypting)[0] == b"rsa"


def test_plaintext_is_context_digest_then_data_key(kms: LocalKMS, rsa_key: tuple[str, bytes]) -> None:
    # aws-kms-rsa-keyring.md OnEncrypt: RSA plaintext = SHA-384(serialized context) || data key.
    arn, _ = rsa_key
    materials = KMSRSAKeyring(arn, client=kms).on_encrypt(EncryptionMaterials(UNSIGNED, CONTEXT))
    response = kms.decrypt(KeyId=arn, CiphertextBlob=materials.encrypted_data_keys[0].ciphertext,
                           EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert materials.plaintext_data_key is not None
    assert response["Plaintext"] == hashlib.sha384(serialize_context(CONTEXT)).digest() + materials.plaintext_data_key


def test_signing_suites_are_refused(kms: LocalKMS, rsa_key: tuple[str, bytes]) -> None:
    arn, der = rsa_key
    keyring = KMSRSAKeyring(arn, client=kms, public_key=der)
    with pytest.raises(PolicyError, match="signing suite"):
        envelope.encrypt(b"x", keyring=keyring)  # the default suite signs
    with pytest.raises(PolicyError, match="signing suite"):
        keyring.on_decrypt(DecryptionMaterials(AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384, {}), [])


def test_a_different_context_is_refused(kms: LocalKMS, rsa_key: tuple[str, bytes]) -> None:
    arn, der = rsa_key
    keyring = KMSRSAKeyring(arn, client=kms, public_key=der)
    materials = keyring.on_encrypt(EncryptionMaterials(UNSIGNED, CONTEXT))
    with pytest.raises(NoMatchingKeyError, match="different encryption context"):
        keyring.on_decrypt(DecryptionMaterials(UNSIGNED, {"tenant": "other"}), materials.encrypted_data_keys)


def test_edk_filtering(kms: LocalKMS, rsa_key: tuple[str, bytes]) -> None:
    arn, der = rsa_key
    keyring = KMSRSAKeyring(arn, client=kms, public_key=der)
    (edk,) = keyring.on_encrypt(EncryptionMaterials(UNSIGNED, CONTEXT)).encrypted_data_keys
    materials = DecryptionMaterials(UNSIGNED, CONTEXT)
    other = arn.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    with pytest.raises(NoMatchingKeyError, match="no encrypted data key matches"):
        keyring.on_decrypt(materials, [dataclasses.replace(edk, provider_info=other.encode())])
    # The spec: provider info that is not a key ARN fails the call.
    with pytest.raises(NoMatchingKeyError, match="not a KMS key ARN"):
        keyring.on_decrypt(materials, [dataclasses.replace(edk, provider_info=b"alias/x")])
    bad = dataclasses.replace(edk, ciphertext=bytes(len(edk.ciphertext)))
    with pytest.raises(NoMatchingKeyError, match="InvalidCiphertextException"):
        keyring.on_decrypt(materials, [bad])
    # Configured by key id, the keyring encrypts but cannot decrypt (no ARN to match).
    by_id = KMSRSAKeyring(arn.rsplit("/", 1)[1], client=kms, public_key=der)
    with pytest.raises(NoMatchingKeyError, match="ARN"):
        by_id.on_decrypt(materials, [edk])


def test_get_public_key_checks_the_key(kms: LocalKMS) -> None:
    signing = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    with pytest.raises(envelope.KeyringError, match="ENCRYPT_DECRYPT"):
        envelope.encrypt(b"x", keyring=KMSRSAKeyring(signing, client=kms), algorithm=UNSIGNED)


def _small_key() -> bytes:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


BAD: list[tuple[str, Any]] = [
    ("alias", lambda arn, der, kms: KMSRSAKeyring("alias/rsa", client=kms)),
    ("alias-arn", lambda arn, der, kms: KMSRSAKeyring(arn.replace(":key/", ":alias/"), client=kms)),
    ("bad-algorithm", lambda arn, der, kms: KMSRSAKeyring(arn, client=kms, encryption_algorithm="RSAES_PKCS1_V1_5")),
    ("small-key", lambda arn, der, kms: KMSRSAKeyring(arn, client=kms, public_key=_small_key())),
    ("garbage-key", lambda arn, der, kms: KMSRSAKeyring(arn, client=kms, public_key=der[:-9])),
    ("ec-key", lambda arn, der, kms: KMSRSAKeyring(arn, client=kms, public_key=_ec_der())),
]


def _ec_der() -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("make", [m for _, m in BAD], ids=[n for n, _ in BAD])
def test_bad_configuration_is_a_value_error(kms: LocalKMS, rsa_key: tuple[str, bytes], make: Any) -> None:
    with pytest.raises(ValueError):
        make(*rsa_key, kms)


def test_the_algorithm_must_match_on_decrypt(kms: LocalKMS, rsa_key: tuple[str, bytes]) -> None:
    arn, der = rsa_key
    message = envelope.encrypt(b"sha1", keyring=KMSRSAKeyring(arn, client=kms, public_key=der,
                                                              encryption_algorithm="RSAES_OAEP_SHA_1"),
                               algorithm=UNSIGNED)
    with pytest.raises(NoMatchingKeyError, match="InvalidCiphertextException"):
        envelope.decrypt(message, keyring=KMSRSAKeyring(arn, client=kms))  # SHA-256 configured
