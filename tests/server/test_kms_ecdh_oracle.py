"""The MPL's KMS ECDH keyring (boto3 client on `kms serve`) and ours interoperate, both directions,
for both schemes and every curve (ESDK spec framework/aws-kms/aws-kms-ecdh-keyring.md,
key-agreement-schemas.md). The KMS side is DeriveSharedSecret of the embedded service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import envelope
from envelope import KMSECDHKeyring, RawECDHKeyring
from envelope.errors import KeyringError, NoMatchingKeyError
from envelope.kms import LocalKMS

if TYPE_CHECKING:
    from .conftest import Endpoint

pytest.importorskip("aws_cryptographic_material_providers")
from _mpl_helpers import CURVES, EcKeys, mpl_decrypt, mpl_encrypt

CONTEXT = {"tenant": "t-3", "purpose": "kms ecdh interop"}


def _mpl_kms_ecdh(curve: str, boto: Any, *, sender: str | None = None, recipient_public: bytes | None = None,
                  discovery: str | None = None) -> Any:
    from aws_cryptographic_material_providers.mpl import AwsCryptographicMaterialProviders  # type: ignore[import-untyped]
    from aws_cryptographic_material_providers.mpl.config import MaterialProvidersConfig  # type: ignore[import-untyped]
    from aws_cryptographic_material_providers.mpl.models import (  # type: ignore[import-untyped]
        CreateAwsKmsEcdhKeyringInput,
        KmsEcdhStaticConfigurationsKmsPrivateKeyToStaticPublicKey,
        KmsEcdhStaticConfigurationsKmsPublicKeyDiscovery,
        KmsPrivateKeyToStaticPublicKeyInput,
        KmsPublicKeyDiscoveryInput,
    )
    from aws_cryptography_primitives.smithygenerated.aws_cryptography_primitives.models import ECDHCurveSpec  # type: ignore[import-untyped]

    scheme: Any
    if discovery is not None:
        scheme = KmsEcdhStaticConfigurationsKmsPublicKeyDiscovery(
            KmsPublicKeyDiscoveryInput(recipient_kms_identifier=discovery))
    else:
        scheme = KmsEcdhStaticConfigurationsKmsPrivateKeyToStaticPublicKey(KmsPrivateKeyToStaticPublicKeyInput(
            sender_kms_identifier=sender, recipient_public_key=recipient_public))
    return AwsCryptographicMaterialProviders(MaterialProvidersConfig()).create_aws_kms_ecdh_keyring(
        CreateAwsKmsEcdhKeyringInput(key_agreement_scheme=scheme, curve_spec=getattr(ECDHCurveSpec, curve),
                                     kms_client=boto))


def _kms_key(boto: Any, curve: str) -> tuple[str, bytes]:
    arn = boto.create_key(KeySpec=curve, KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["Arn"]
    return arn, boto.get_public_key(KeyId=arn)["PublicKey"]


@pytest.mark.parametrize("curve", list(CURVES))
def test_static_both_directions(endpoint: Endpoint, curve: str) -> None:
    boto = endpoint.client()
    arn, _ = _kms_key(boto, curve)
    bob = EcKeys(curve)
    theirs = _mpl_kms_ecdh(curve, boto, sender=arn, recipient_public=bob.public_der)
    message = mpl_encrypt(b"from the MPL", theirs, CONTEXT)
    (edk,) = envelope.read_header(message).encrypted_data_keys
    assert edk.provider_id == "aws-kms-ecdh" and len(edk.ciphertext) == 112
    assert edk.provider_info[5:5 + len(bob.compressed)] == bob.compressed  # the recipient comes first
    for client in (boto, LocalKMS(endpoint.data_dir)):
        ours = KMSECDHKeyring.static(arn, bob.public_der, curve, client=client)
        assert envelope.decrypt(message, keyring=ours)[0] == b"from the MPL"
    ours = KMSECDHKeyring.static(arn, bob.public_pem, curve, client=boto)
    message = envelope.encrypt(b"from envelope", keyring=ours, encryption_context=CONTEXT)
    assert envelope.read_header(message).encrypted_data_keys[0].provider_info == edk.provider_info
    plaintext, context = mpl_decrypt(message, theirs)
    assert plaintext == b"from envelope" and context.items() >= CONTEXT.items()
    # Bob, holding the recipient's private key, decrypts with a raw ECDH discovery keyring.
    assert envelope.decrypt(message, keyring=RawECDHKeyring.discovery(bob.private_pem, curve))[0] == b"from envelope"


@pytest.mark.parametrize("curve", ["ECC_NIST_P256", "ECC_NIST_P521"])
def test_discovery_both_directions(endpoint: Endpoint, curve: str) -> None:
    boto = endpoint.client()
    arn, kms_public = _kms_key(boto, curve)
    alice = EcKeys(curve)
    # Alice encrypts to the KMS key's public key with a raw ECDH static keyring (ours).
    message = envelope.encrypt(b"to the KMS key", keyring=RawECDHKeyring.static(alice.private_pem, kms_public, curve),
                               encryption_context=CONTEXT)
    theirs = _mpl_kms_ecdh(curve, boto, discovery=arn)
    assert mpl_decrypt(message, theirs)[0] == b"to the KMS key"
    ours = KMSECDHKeyring.discovery(arn, curve, client=boto)
    assert envelope.decrypt(message, keyring=ours)[0] == b"to the KMS key"
    # The MPL's KMS static keyring of another KMS key, sending to our KMS key: we discover it.
    sender_arn, _ = _kms_key(boto, curve)
    message = mpl_encrypt(b"kms to kms", _mpl_kms_ecdh(curve, boto, sender=sender_arn, recipient_public=kms_public),
                          CONTEXT)
    assert envelope.decrypt(message, keyring=ours)[0] == b"kms to kms"
    with pytest.raises(KeyringError, match="only decrypts"):
        envelope.encrypt(b"x", keyring=ours)


def test_misconfiguration(endpoint: Endpoint) -> None:
    boto = endpoint.client()
    arn, _ = _kms_key(boto, "ECC_NIST_P256")
    signing = boto.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    bob = EcKeys("ECC_NIST_P256")
    with pytest.raises(ValueError, match="not KEY_AGREEMENT"):
        KMSECDHKeyring.static(signing, bob.public_der, "ECC_NIST_P256", client=boto)
    with pytest.raises(ValueError, match="not ECC_NIST_P384"):
        KMSECDHKeyring.discovery(arn, "ECC_NIST_P384", client=boto)
    with pytest.raises(ValueError, match="recipient_public_key"):
        KMSECDHKeyring.static(arn, EcKeys("ECC_NIST_P384").public_der, "ECC_NIST_P256", client=boto)
    # A message for another recipient: nothing to try.
    other = KMSECDHKeyring.static(arn, EcKeys("ECC_NIST_P256").public_der, "ECC_NIST_P256", client=boto)
    message = envelope.encrypt(b"x", keyring=KMSECDHKeyring.static(arn, bob.public_der, "ECC_NIST_P256", client=boto))
    with pytest.raises(NoMatchingKeyError):
        envelope.decrypt(message, keyring=other)
