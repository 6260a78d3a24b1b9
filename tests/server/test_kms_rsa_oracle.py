"""The MPL's KMS RSA keyring (boto3 client on `kms serve`) and ours interoperate, both directions
(ESDK spec framework/aws-kms/aws-kms-rsa-keyring.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives import serialization

import envelope
from envelope import AlgorithmSuite, KMSRSAKeyring
from envelope.kms import LocalKMS

if TYPE_CHECKING:
    from .conftest import Endpoint

pytest.importorskip("aws_cryptographic_material_providers")
from _mpl_helpers import mpl_decrypt, mpl_encrypt, mpl_kms_rsa

UNSIGNED = AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
CONTEXT = {"tenant": "t-9", "purpose": "kms rsa interop"}


@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1"])
def test_kms_rsa_both_directions(endpoint: Endpoint, algorithm: str) -> None:
    boto = endpoint.client()
    arn = boto.create_key(KeySpec="RSA_3072", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    der = boto.get_public_key(KeyId=arn)["PublicKey"]
    pem = serialization.load_der_public_key(der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    theirs = mpl_kms_rsa(arn, pem, boto, algorithm)

    # MPL -> envelope: over boto3 on the endpoint, and in process on the same data directory.
    message = mpl_encrypt(b"from the MPL", theirs, CONTEXT, algorithm=UNSIGNED)
    (edk,) = envelope.read_header(message).encrypted_data_keys
    assert (edk.provider_id, edk.provider_info, len(edk.ciphertext)) == ("aws-kms-rsa", arn.encode(), 384)
    for client in (boto, LocalKMS(endpoint.data_dir)):
        ours = KMSRSAKeyring(arn, client=client, encryption_algorithm=algorithm)
        assert envelope.decrypt(message, keyring=ours, encryption_context=CONTEXT)[0] == b"from the MPL"

    # envelope -> MPL: the public key fetched by GetPublicKey, and given as DER.
    for public in (None, der):
        ours = KMSRSAKeyring(arn, client=boto, public_key=public, encryption_algorithm=algorithm)
        message = envelope.encrypt(b"from envelope", keyring=ours, algorithm=UNSIGNED, encryption_context=CONTEXT)
        plaintext, context = mpl_decrypt(message, theirs)
        assert plaintext == b"from envelope" and context == CONTEXT
