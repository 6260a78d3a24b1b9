"""Key agreement: DeriveSharedSecret with KEY_AGREEMENT ECC keys (ECDH).

AWS: https://docs.aws.amazon.com/kms/latest/APIReference/API_DeriveSharedSecret.html and the
developer guide's key agreement page (kms/latest/developerguide/symm-asymm-choose-key-spec.html).
The shared secret is the raw ECDH output (the x-coordinate of the shared point), as KMS returns it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..model.errors import InvalidKeyUsageError, UnsupportedOperationError, ValidationError
from ..model.keys import KEY_SPECS
from ..model.params import dry_run_stop
from .asymmetric import _private
from .lifecycle import require_enabled

if TYPE_CHECKING:
    from ..engine.runtime import Call

__all__ = ["KEY_AGREEMENT_ALGORITHMS", "derive_shared_secret"]

KEY_AGREEMENT_ALGORITHMS = ("ECDH",)
_PUBLIC_KEY_MAX = 8192  # the PublicKey member's length constraint in the API reference


def _peer_key(der: bytes, curve: ec.EllipticCurve) -> ec.EllipticCurvePublicKey:
    """The caller's public key: DER SubjectPublicKeyInfo on the KMS key's curve.

    cryptography refuses points off the curve and the point at infinity while loading.
    """
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError):  # malformed DER, unsupported key type, invalid point
        raise ValidationError("PublicKey is not a valid DER-encoded X.509 SubjectPublicKeyInfo "
                              "elliptic curve public key.") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValidationError("PublicKey must be an elliptic curve public key.")
    if key.curve.name != curve.name:
        raise ValidationError(f"PublicKey is on curve {key.curve.name}; the KMS key's curve is {curve.name}.")
    return key


def derive_shared_secret(call: Call) -> dict[str, Any]:
    a = call.args
    algorithm = a.choice("KeyAgreementAlgorithm", KEY_AGREEMENT_ALGORITHMS)
    public_der = a.blob("PublicKey", hi=_PUBLIC_KEY_MAX)
    tokens = a.grant_tokens()
    # Recipient (a Nitro Enclaves attestation document) asks KMS to encrypt the secret to an
    # enclave's key; the embedded service cannot verify attestation, so it refuses rather than
    # returning the secret in plaintext, as the other operations that take Recipient do here.
    a.no_recipient()
    dry = a.dry_run()
    a.finish()
    call.response_elements = False
    if algorithm is None:
        raise TypeError(f"{a.op}: missing required parameter KeyAgreementAlgorithm")
    entry = call.subject(grant_tokens=tokens)  # kms:KeyAgreementAlgorithm: the parameter
    require_enabled(entry)
    rec = entry.record
    if rec.key_spec == "SYMMETRIC_DEFAULT" or rec.key_spec.startswith("HMAC_"):
        raise UnsupportedOperationError(f"{entry.arn} is not an asymmetric key; DeriveSharedSecret needs one.")
    if rec.key_usage != "KEY_AGREEMENT":
        raise InvalidKeyUsageError(f"{entry.arn} key usage is {rec.key_usage} which is not valid for "
                                   "DeriveSharedSecret.")
    if algorithm not in KEY_SPECS[rec.key_spec].key_agreement:
        raise InvalidKeyUsageError(f"{algorithm} is not valid for {entry.arn}.")
    private = _private(call, entry)
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise RuntimeError("envelope: internal error: KEY_AGREEMENT key without an EC private key")  # noqa: TRY004
    peer = _peer_key(public_der, private.curve)
    dry_run_stop(dry)
    secret = private.exchange(ec.ECDH(), peer)
    return {"KeyId": entry.arn, "SharedSecret": secret, "KeyAgreementAlgorithm": algorithm,
            "KeyOrigin": rec.origin}
