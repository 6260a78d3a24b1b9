"""Helpers that drive the reference keyrings (`aws-cryptographic-material-providers`, the MPL) through
the `aws-encryption-sdk` package: the live oracle for the ESDK 4 keyrings. Test dependency only.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import aws_encryption_sdk  # type: ignore[import-untyped]
    from aws_cryptographic_material_providers.mpl import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
        AwsCryptographicMaterialProviders,
    )
    from aws_cryptographic_material_providers.mpl.config import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
        MaterialProvidersConfig,
    )
    from aws_cryptographic_material_providers.mpl.models import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
        CreateAwsKmsRsaKeyringInput,
        CreateRawEcdhKeyringInput,
        EphemeralPrivateKeyToStaticPublicKeyInput,
        PublicKeyDiscoveryInput,
        RawEcdhStaticConfigurationsEphemeralPrivateKeyToStaticPublicKey,
        RawEcdhStaticConfigurationsPublicKeyDiscovery,
        RawEcdhStaticConfigurationsRawPrivateKeyToStaticPublicKey,
        RawPrivateKeyToStaticPublicKeyInput,
    )
    from aws_cryptography_primitives.smithygenerated.aws_cryptography_primitives.models import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
        ECDHCurveSpec,
    )

__all__ = [
    "CURVES",
    "EcKeys",
    "mpl_decrypt",
    "mpl_encrypt",
    "mpl_ecdh_discovery",
    "mpl_ecdh_ephemeral",
    "mpl_ecdh_static",
    "mpl_kms_rsa",
]

CURVES: dict[str, ec.EllipticCurve] = {
    "ECC_NIST_P256": ec.SECP256R1(), "ECC_NIST_P384": ec.SECP384R1(), "ECC_NIST_P521": ec.SECP521R1(),
}


class EcKeys:
    """An EC key pair in the encodings the keyrings take: PEM PKCS #8 private, DER/PEM SPKI public."""

    def __init__(self, curve: str) -> None:
        self.curve = curve
        self.key = ec.generate_private_key(CURVES[curve])
        self.private_pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption())
        public = self.key.public_key()
        self.public_der = public.public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        self.public_pem = public.public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        self.compressed = public.public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.CompressedPoint)


@functools.cache
def _mpl() -> Any:
    return AwsCryptographicMaterialProviders(MaterialProvidersConfig())


@functools.cache
def _client() -> Any:
    return aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=aws_encryption_sdk.CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)


def _ecdh(curve: str, scheme: Any) -> Any:
    return _mpl().create_raw_ecdh_keyring(CreateRawEcdhKeyringInput(
        curve_spec=getattr(ECDHCurveSpec, curve), key_agreement_scheme=scheme))


def mpl_ecdh_static(sender: EcKeys, recipient: EcKeys) -> Any:
    return _ecdh(sender.curve, RawEcdhStaticConfigurationsRawPrivateKeyToStaticPublicKey(
        RawPrivateKeyToStaticPublicKeyInput(sender_static_private_key=sender.private_pem,
                                            recipient_public_key=recipient.public_der)))


def mpl_ecdh_ephemeral(recipient: EcKeys) -> Any:
    return _ecdh(recipient.curve, RawEcdhStaticConfigurationsEphemeralPrivateKeyToStaticPublicKey(
        EphemeralPrivateKeyToStaticPublicKeyInput(recipient_public_key=recipient.public_der)))


def mpl_ecdh_discovery(recipient: EcKeys) -> Any:
    return _ecdh(recipient.curve, RawEcdhStaticConfigurationsPublicKeyDiscovery(
        PublicKeyDiscoveryInput(recipient_static_private_key=recipient.private_pem)))


def mpl_kms_rsa(key_arn: str, public_key_pem: bytes | None, kms_client: Any,
                encryption_algorithm: str = "RSAES_OAEP_SHA_256") -> Any:
    return _mpl().create_aws_kms_rsa_keyring(CreateAwsKmsRsaKeyringInput(
        public_key=public_key_pem, kms_key_id=key_arn, encryption_algorithm=encryption_algorithm,
        kms_client=kms_client))


def mpl_encrypt(plaintext: bytes, keyring: Any, context: Mapping[str, str] | None = None,
                algorithm: Any = None) -> bytes:
    kwargs: dict[str, Any] = {"source": plaintext, "keyring": keyring, "encryption_context": dict(context or {})}
    if algorithm is not None:
        kwargs["algorithm"] = aws_encryption_sdk.Algorithm.get_by_id(int(algorithm))
    ciphertext, _ = _client().encrypt(**kwargs)
    return bytes(ciphertext)


def mpl_decrypt(ciphertext: bytes, keyring: Any) -> tuple[bytes, dict[str, str]]:
    plaintext, header = _client().decrypt(source=ciphertext, keyring=keyring)
    return bytes(plaintext), dict(header.encryption_context)
