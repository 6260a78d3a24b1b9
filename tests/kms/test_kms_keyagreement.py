"""KMS key agreement in the embedded service: KEY_AGREEMENT ECC keys, DeriveSharedSecret, GetPublicKey.

AWS: https://docs.aws.amazon.com/kms/latest/APIReference/API_DeriveSharedSecret.html,
https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateKey.html (KeyUsage per KeySpec),
developer guide https://docs.aws.amazon.com/kms/latest/developerguide/asymm-create-key.html#key-agreement.
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from envelope.errors import KMSError
from envelope.kms import LocalKMS

CURVES = {"ECC_NIST_P256": (ec.SECP256R1(), 32), "ECC_NIST_P384": (ec.SECP384R1(), 48),
          "ECC_NIST_P521": (ec.SECP521R1(), 66)}
APP = "arn:aws:iam::111122223333:role/App"


def _der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _code(call: object) -> str:
    with pytest.raises(KMSError) as exc:
        call()  # type: ignore[operator]
    assert exc.value.response["Error"]["Code"] == exc.value.code
    return exc.value.code


def _agreement_key(kms: LocalKMS, spec: str = "ECC_NIST_P256") -> str:
    return str(kms.create_key(KeySpec=spec, KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["Arn"])


@pytest.mark.parametrize("spec", list(CURVES))
def test_derive_shared_secret_is_ecdh(kms: LocalKMS, spec: str) -> None:
    curve, length = CURVES[spec]
    arn = _agreement_key(kms, spec)
    meta = kms.describe_key(KeyId=arn)["KeyMetadata"]
    assert (meta["KeyUsage"], meta["KeyAgreementAlgorithms"]) == ("KEY_AGREEMENT", ["ECDH"])
    assert "SigningAlgorithms" not in meta
    public = kms.get_public_key(KeyId=arn)
    assert (public["KeyUsage"], public["KeyAgreementAlgorithms"], public["KeySpec"]) == ("KEY_AGREEMENT", ["ECDH"],
                                                                                         spec)
    peer = ec.generate_private_key(curve)
    response = kms.derive_shared_secret(KeyId=arn, KeyAgreementAlgorithm="ECDH", PublicKey=_der(peer))
    kms_public = serialization.load_der_public_key(public["PublicKey"])
    assert isinstance(kms_public, ec.EllipticCurvePublicKey)
    assert response == {"KeyId": arn, "SharedSecret": peer.exchange(ec.ECDH(), kms_public),
                        "KeyAgreementAlgorithm": "ECDH", "KeyOrigin": "AWS_KMS"}
    assert len(response["SharedSecret"]) == length


def test_key_agreement_only_for_nist_curves(kms: LocalKMS) -> None:
    # API_CreateKey.html: KEY_AGREEMENT for ECC_NIST_* (and SM2 in China Regions), not secp256k1.
    for spec in ("ECC_SECG_P256K1", "RSA_2048", "SYMMETRIC_DEFAULT", "HMAC_256"):
        assert _code(lambda s=spec: kms.create_key(KeySpec=s, KeyUsage="KEY_AGREEMENT")) == "ValidationException"


def test_wrong_key_usage(kms: LocalKMS) -> None:
    peer = _der(ec.generate_private_key(ec.SECP256R1()))
    signing = str(kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"])
    with pytest.raises(KMSError) as exc:
        kms.derive_shared_secret(KeyId=signing, KeyAgreementAlgorithm="ECDH", PublicKey=peer)
    assert exc.value.code == "InvalidKeyUsageException"
    assert str(exc.value).endswith(f"{signing} key usage is SIGN_VERIFY which is not valid for DeriveSharedSecret.")
    symmetric = str(kms.create_key()["KeyMetadata"]["Arn"])
    assert _code(lambda: kms.derive_shared_secret(KeyId=symmetric, KeyAgreementAlgorithm="ECDH",
                                                  PublicKey=peer)) == "UnsupportedOperationException"
    agreement = _agreement_key(kms)
    for call in (lambda: kms.sign(KeyId=agreement, Message=b"m", SigningAlgorithm="ECDSA_SHA_256"),
                 lambda: kms.encrypt(KeyId=agreement, Plaintext=b"m")):
        assert _code(call) in ("InvalidKeyUsageException", "UnsupportedOperationException")


def test_bad_public_keys(kms: LocalKMS) -> None:
    arn = _agreement_key(kms)
    other_curve = _der(ec.generate_private_key(ec.SECP384R1()))
    # A P-256 SubjectPublicKeyInfo whose point is not on the curve (y changed).
    good = bytearray(_der(ec.generate_private_key(ec.SECP256R1())))
    good[-1] ^= 1
    for public in (other_curve, bytes(good), b"\x30\x03\x02\x01\x01", b"x" * 8193):
        with pytest.raises(KMSError) as exc:
            kms.derive_shared_secret(KeyId=arn, KeyAgreementAlgorithm="ECDH", PublicKey=public)
        assert exc.value.code == "ValidationException"
    assert _code(lambda: kms.derive_shared_secret(KeyId=arn, KeyAgreementAlgorithm="ECDHE",
                                                  PublicKey=other_curve)) == "ValidationException"


def test_key_states(kms: LocalKMS) -> None:
    arn = _agreement_key(kms)
    peer = _der(ec.generate_private_key(ec.SECP256R1()))

    def call() -> object:
        return kms.derive_shared_secret(KeyId=arn, KeyAgreementAlgorithm="ECDH", PublicKey=peer)

    kms.disable_key(KeyId=arn)
    assert _code(call) == "DisabledException"
    kms.enable_key(KeyId=arn)
    kms.schedule_key_deletion(KeyId=arn, PendingWindowInDays=7)
    assert _code(call) == "KMSInvalidStateException"


def test_dry_run_recipient_and_audit(kms: LocalKMS) -> None:
    arn = _agreement_key(kms)
    peer = _der(ec.generate_private_key(ec.SECP256R1()))
    assert _code(lambda: kms.derive_shared_secret(KeyId=arn, KeyAgreementAlgorithm="ECDH", PublicKey=peer,
                                                  DryRun=True)) == "DryRunOperationException"
    # Recipient: the embedded service cannot check attestation documents, so it refuses.
    assert _code(lambda: kms.derive_shared_secret(
        KeyId=arn, KeyAgreementAlgorithm="ECDH", PublicKey=peer,
        Recipient={"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": b"doc"},
    )) == "UnsupportedOperationException"
    secret = kms.derive_shared_secret(KeyId=arn, KeyAgreementAlgorithm="ECDH", PublicKey=peer)["SharedSecret"]
    events = kms.audit.lookup(event_name="DeriveSharedSecret")
    assert events and secret.hex() not in json.dumps(events, default=str)


def test_grant_and_policy(kms: LocalKMS) -> None:
    arn = _agreement_key(kms)
    peer = _der(ec.generate_private_key(ec.SECP256R1()))
    app = kms.for_principal(APP)

    def derive(tokens: list[str] | None = None) -> object:
        extra = {"GrantTokens": tokens} if tokens else {}
        return app.derive_shared_secret(KeyId=arn, KeyAgreementAlgorithm="ECDH", PublicKey=peer, **extra)

    assert _code(derive) == "AccessDeniedException"
    grant = kms.create_grant(KeyId=arn, GranteePrincipal=APP, Operations=["DeriveSharedSecret"])
    assert derive([grant["GrantToken"]])["KeyAgreementAlgorithm"] == "ECDH"  # type: ignore[index]


@pytest.mark.parametrize(("wanted", "outcome"), [("ECDH", "allowed"), ("OTHER", "AccessDeniedException")])
def test_key_agreement_algorithm_condition(kms: LocalKMS, wanted: str, outcome: str) -> None:
    # https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-key-agreement-algorithm
    arn = _agreement_key(kms)
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{kms.account}:root"}, "Action": "kms:*",
         "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": APP}, "Action": "kms:DeriveSharedSecret", "Resource": "*",
         "Condition": {"StringEquals": {"kms:KeyAgreementAlgorithm": wanted}}}]}
    kms.put_key_policy(KeyId=arn, PolicyName="default", Policy=json.dumps(policy))
    peer = _der(ec.generate_private_key(ec.SECP256R1()))

    def derive() -> object:
        return kms.for_principal(APP).derive_shared_secret(KeyId=arn, KeyAgreementAlgorithm="ECDH", PublicKey=peer)

    if outcome == "allowed":
        derive()
    else:
        assert _code(derive) == outcome
