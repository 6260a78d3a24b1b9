"""Asymmetric operations: get_public_key, RSA encrypt/decrypt, sign/verify, data key pairs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from ..model.errors import (
    InvalidCiphertextError,
    InvalidKeyUsageError,
    InvalidSignatureError,
    UnsupportedOperationError,
    ValidationError,
)
from ..model.keys import KEY_SPECS, generate_material
from ..model.params import dry_run_stop
from .keyblobs import seal_for
from .lifecycle import require_enabled

if TYPE_CHECKING:
    from ..engine.runtime import Call
    from ..store.partition import KeyEntry

__all__ = ["PAIR_SPECS", "generate_data_key_pair", "generate_data_key_pair_without_plaintext",
           "get_public_key", "rsa_decrypt", "rsa_encrypt", "sign", "verify"]

PAIR_SPECS = ("RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
              "ECC_SECG_P256K1")
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384,
                                                    "512": hashes.SHA512}
_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _private(call: Call, entry: KeyEntry) -> _PrivateKey:
    version = entry.record.current_version
    found = entry.loaded.get(version)
    if found is None:
        key = serialization.load_der_private_key(call.material(entry, version), password=None)
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise RuntimeError("envelope: internal error: unexpected private key type")
        entry.loaded[version] = found = key
    return found


def _asymmetric(entry: KeyEntry, usage: str, what: str, op: str) -> None:
    rec = entry.record
    if rec.key_spec == "SYMMETRIC_DEFAULT" or rec.key_spec.startswith("HMAC_"):
        raise UnsupportedOperationError(f"{entry.arn} is not an asymmetric key; {what} needs one.")
    if rec.key_usage != usage:
        raise InvalidKeyUsageError.for_usage(entry.arn, rec.key_usage, op)


def _oaep(algorithm: str) -> padding.OAEP:
    algo: hashes.HashAlgorithm = hashes.SHA1() if algorithm == "RSAES_OAEP_SHA_1" else hashes.SHA256()
    return padding.OAEP(mgf=padding.MGF1(algorithm=algo), algorithm=algo, label=None)


def _check_rsa(entry: KeyEntry, algorithm: str, context: Mapping[str, str], op: str) -> None:
    _asymmetric(entry, "ENCRYPT_DECRYPT", "RSA encryption", op)
    if algorithm not in KEY_SPECS[entry.record.key_spec].encryption:
        raise InvalidKeyUsageError(f"{algorithm} is not valid for {entry.arn}.")
    if context:
        raise ValidationError("Asymmetric keys do not support an encryption context.")


def rsa_encrypt(call: Call, entry: KeyEntry, plaintext: bytes, algorithm: str,
                context: Mapping[str, str]) -> bytes:
    """RSA-OAEP encryption with the key's public key (no envelope, as KMS returns it)."""
    _check_rsa(entry, algorithm, context, call.args.op)
    public = _private(call, entry).public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise RuntimeError("envelope: internal error: RSA spec without an RSA key")  # noqa: TRY004 - invariant
    digest = 20 if algorithm == "RSAES_OAEP_SHA_1" else 32
    limit = public.key_size // 8 - 2 * digest - 2
    if len(plaintext) > limit:
        raise ValidationError(f"Plaintext is longer than {limit} bytes, the limit for {algorithm} "
                              f"with {entry.record.key_spec}.")
    return public.encrypt(plaintext, _oaep(algorithm))


def rsa_decrypt(call: Call, entry: KeyEntry, blob: bytes, algorithm: str,
                context: Mapping[str, str]) -> bytes:
    """RSA-OAEP decryption with the key's private key."""
    _check_rsa(entry, algorithm, context, call.args.op)
    private = _private(call, entry)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise RuntimeError("envelope: internal error: RSA spec without an RSA key")  # noqa: TRY004 - invariant
    try:
        return private.decrypt(blob, _oaep(algorithm))
    except ValueError:
        raise InvalidCiphertextError("the ciphertext does not decrypt with this key") from None


def get_public_key(call: Call) -> dict[str, Any]:
    a = call.args
    a.grant_tokens()
    a.finish()
    call.response_elements = False
    entry = call.subject()
    rec = entry.record
    if rec.key_spec == "SYMMETRIC_DEFAULT" or rec.key_spec.startswith("HMAC_"):
        raise UnsupportedOperationError(f"{entry.arn} is not an asymmetric key; it has no public key.")
    require_enabled(entry)
    public = _private(call, entry).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    info = KEY_SPECS[rec.key_spec]
    out: dict[str, Any] = {"KeyId": entry.arn, "PublicKey": public, "CustomerMasterKeySpec": rec.key_spec,
                           "KeySpec": rec.key_spec, "KeyUsage": rec.key_usage}
    if rec.key_usage == "ENCRYPT_DECRYPT":
        out["EncryptionAlgorithms"] = list(info.encryption)
    elif rec.key_usage == "KEY_AGREEMENT":
        out["KeyAgreementAlgorithms"] = list(info.key_agreement)
    else:
        out["SigningAlgorithms"] = list(info.signing)
    return out


def _sign_args(call: Call, with_signature: bool) -> tuple[KeyEntry, bytes, str, str, bytes]:
    a = call.args
    message = a.blob("Message", hi=4096)
    message_type = a.choice("MessageType", ("RAW", "DIGEST", "EXTERNAL_MU"), "RAW") or "RAW"
    algorithm = a.choice("SigningAlgorithm", tuple(sorted({s for i in KEY_SPECS.values() for s in i.signing})))
    signature = a.blob("Signature") if with_signature else b""
    tokens = a.grant_tokens()
    dry = a.dry_run()
    a.finish()
    call.response_elements = False
    if algorithm is None:
        raise TypeError(f"{a.op}: missing required parameter SigningAlgorithm")
    entry = call.subject(grant_tokens=tokens)
    require_enabled(entry)
    _asymmetric(entry, "SIGN_VERIFY", "signing", a.op)
    if algorithm not in KEY_SPECS[entry.record.key_spec].signing:
        raise InvalidKeyUsageError(f"{algorithm} is not valid for {entry.arn}.")
    if message_type == "EXTERNAL_MU":
        raise ValidationError("MessageType EXTERNAL_MU is only for ML-DSA keys.")
    digest = _HASHES[algorithm[-3:]]()
    if message_type == "DIGEST" and len(message) != digest.digest_size:
        raise ValidationError(f"A {algorithm} digest must be {digest.digest_size} bytes.")
    dry_run_stop(dry)
    return entry, message, message_type, algorithm, signature


def _pad(algorithm: str, digest: hashes.HashAlgorithm) -> padding.AsymmetricPadding:
    if algorithm.startswith("RSASSA_PSS"):
        return padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
    return padding.PKCS1v15()


def sign(call: Call) -> dict[str, Any]:
    entry, message, message_type, algorithm, _ = _sign_args(call, False)
    digest = _HASHES[algorithm[-3:]]()
    chosen: hashes.HashAlgorithm | utils.Prehashed = utils.Prehashed(digest) if message_type == "DIGEST" else digest
    private = _private(call, entry)
    if isinstance(private, rsa.RSAPrivateKey):
        signature = private.sign(message, _pad(algorithm, digest), chosen)
    else:
        signature = private.sign(message, ec.ECDSA(chosen))
    return {"KeyId": entry.arn, "Signature": signature, "SigningAlgorithm": algorithm}


def verify(call: Call) -> dict[str, Any]:
    entry, message, message_type, algorithm, signature = _sign_args(call, True)
    digest = _HASHES[algorithm[-3:]]()
    chosen: hashes.HashAlgorithm | utils.Prehashed = utils.Prehashed(digest) if message_type == "DIGEST" else digest
    public = _private(call, entry).public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, message, _pad(algorithm, digest), chosen)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, message, ec.ECDSA(chosen))
    except (InvalidSignature, ValueError):
        raise InvalidSignatureError("The signature does not verify.") from None
    return {"KeyId": entry.arn, "SignatureValid": True, "SigningAlgorithm": algorithm}


def _pair(call: Call, action: str) -> tuple[KeyEntry, bytes, bytes, bytes, str]:
    a = call.args
    context = a.context()
    spec = a.choice("KeyPairSpec", PAIR_SPECS)
    tokens = a.grant_tokens()
    a.no_recipient()
    dry = a.dry_run()
    a.finish()
    call.response_elements = False
    if spec is None:
        raise TypeError(f"{a.op}: missing required parameter KeyPairSpec")
    entry = call.subject(context=context, grant_tokens=tokens)
    require_enabled(entry)
    if entry.record.key_spec != "SYMMETRIC_DEFAULT":
        raise InvalidKeyUsageError(f"{entry.arn} must be a symmetric encryption key.")
    dry_run_stop(dry)
    private_der = generate_material(spec)
    key = serialization.load_der_private_key(private_der, password=None)
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return entry, private_der, public, seal_for(call, entry, private_der, context), spec


def generate_data_key_pair(call: Call) -> dict[str, Any]:
    entry, private, public, blob, spec = _pair(call, "kms:GenerateDataKeyPair")
    return {"PrivateKeyCiphertextBlob": blob, "PrivateKeyPlaintext": private, "PublicKey": public,
            "KeyId": entry.arn, "KeyPairSpec": spec}


def generate_data_key_pair_without_plaintext(call: Call) -> dict[str, Any]:
    entry, _, public, blob, spec = _pair(call, "kms:GenerateDataKeyPairWithoutPlaintext")
    return {"PrivateKeyCiphertextBlob": blob, "PublicKey": public, "KeyId": entry.arn, "KeyPairSpec": spec}
