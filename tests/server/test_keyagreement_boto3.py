"""DeriveSharedSecret and GetPublicKey for KEY_AGREEMENT keys through boto3 against `envelope kms serve`.

AWS: https://docs.aws.amazon.com/kms/latest/APIReference/API_DeriveSharedSecret.html
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

if TYPE_CHECKING:
    from .conftest import Endpoint


def _der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_derive_shared_secret_over_http(endpoint: Endpoint) -> None:
    kms = endpoint.client()
    meta = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]
    assert meta["KeyAgreementAlgorithms"] == ["ECDH"]
    public = kms.get_public_key(KeyId=meta["KeyId"])
    assert public["KeyAgreementAlgorithms"] == ["ECDH"] and public["KeyUsage"] == "KEY_AGREEMENT"
    peer = ec.generate_private_key(ec.SECP384R1())
    response = kms.derive_shared_secret(KeyId=meta["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=_der(peer))
    kms_public = serialization.load_der_public_key(public["PublicKey"])
    assert isinstance(kms_public, ec.EllipticCurvePublicKey)
    assert response["SharedSecret"] == peer.exchange(ec.ECDH(), kms_public)
    assert (response["KeyId"], response["KeyAgreementAlgorithm"], response["KeyOrigin"]) == \
        (meta["Arn"], "ECDH", "AWS_KMS")


def test_errors_over_http(endpoint: Endpoint) -> None:
    kms = endpoint.client()
    signing = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    agreement = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["Arn"]
    peer = _der(ec.generate_private_key(ec.SECP256R1()))
    cases = [
        ({"KeyId": signing, "PublicKey": peer}, "InvalidKeyUsageException"),
        ({"KeyId": agreement, "PublicKey": _der(ec.generate_private_key(ec.SECP521R1()))}, "ValidationException"),
        ({"KeyId": agreement, "PublicKey": b"not der"}, "ValidationException"),
        ({"KeyId": agreement, "PublicKey": peer, "DryRun": True}, "DryRunOperationException"),
    ]
    for kwargs, code in cases:
        with pytest.raises(ClientError) as exc:
            kms.derive_shared_secret(KeyAgreementAlgorithm="ECDH", **kwargs)
        assert exc.value.response["Error"]["Code"] == code
    kms.disable_key(KeyId=agreement)
    with pytest.raises(ClientError) as exc:
        kms.derive_shared_secret(KeyId=agreement, KeyAgreementAlgorithm="ECDH", PublicKey=peer)
    assert exc.value.response["Error"]["Code"] == "DisabledException"
