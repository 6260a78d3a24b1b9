"""Imported key material: get_parameters_for_import, import_key_material, delete_imported_key_material.

Material arrives wrapped under a fresh RSA key (OAEP-SHA1 or OAEP-SHA256) valid for 24 hours; a
keyed fingerprint is kept so later imports must be byte-identical, even after the material is gone.
"""

from __future__ import annotations

import hmac
import os
from typing import TYPE_CHECKING, Any

import msgpack  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..model.clock import DAY, to_datetime
from ..model.errors import (
    ExpiredImportTokenError,
    IncorrectKeyMaterialError,
    InvalidCiphertextError,
    InvalidImportTokenError,
    InvalidStateError,
    UnsupportedOperationError,
    ValidationError,
)
from ..model.keys import update_key

if TYPE_CHECKING:
    from ..engine.runtime import Call
    from ..store.partition import KeyEntry

__all__ = ["WRAPPING_ALGORITHMS", "delete_imported_key_material", "get_parameters_for_import",
           "import_key_material"]

WRAPPING_ALGORITHMS = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")
_WRAPPING_SPECS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
_TOKEN_TAG = "EKIT"


def _external(entry: KeyEntry) -> None:
    if entry.record.origin != "EXTERNAL":
        raise UnsupportedOperationError(f"{entry.arn} was not created with Origin EXTERNAL.")
    if entry.record.key_state in ("PendingDeletion", "PendingReplicaDeletion"):
        raise InvalidStateError(f"{entry.arn} is pending deletion.")


def get_parameters_for_import(call: Call) -> dict[str, Any]:
    a = call.args
    algorithm = a.choice("WrappingAlgorithm", WRAPPING_ALGORITHMS)
    spec = a.choice("WrappingKeySpec", tuple(_WRAPPING_SPECS))
    a.finish()
    call.response_elements = False
    if algorithm is None or spec is None:
        raise TypeError("GetParametersForImport: WrappingAlgorithm and WrappingKeySpec are required")
    entry = call.subject(service_keys=False)
    _external(entry)
    private = rsa.generate_private_key(public_exponent=65537, key_size=_WRAPPING_SPECS[spec])
    token_id = os.urandom(16).hex()
    sealed = call.session.partition.sealer.seal(
        private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()), f"import-{token_id}", 0)
    expires = call.now + DAY
    call.conn.execute("DELETE FROM import_params WHERE expires < ?", (call.now,))
    call.conn.execute("INSERT INTO import_params (token_id, key_id, sealed_private, algorithm, expires) "
                      "VALUES (?, ?, ?, ?, ?)", (token_id, entry.record.key_id, sealed, algorithm, expires))
    token = msgpack.packb([_TOKEN_TAG, token_id, entry.record.key_id])
    public = private.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"KeyId": entry.arn, "ImportToken": token, "PublicKey": public,
            "ParametersValidTo": to_datetime(expires)}


def _unwrap(call: Call, entry: KeyEntry, token: bytes, wrapped: bytes) -> bytes:
    try:
        fields = msgpack.unpackb(token, raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError):
        raise InvalidImportTokenError("The import token is not valid.") from None
    if (not isinstance(fields, list) or len(fields) != 3 or fields[0] != _TOKEN_TAG
            or not isinstance(fields[1], str) or fields[2] != entry.record.key_id):
        raise InvalidImportTokenError("The import token is not valid for this key.")
    row = call.conn.execute("SELECT sealed_private, algorithm, expires FROM import_params WHERE token_id = ? "
                            "AND key_id = ?", (fields[1], entry.record.key_id)).fetchone()
    if row is None:
        raise InvalidImportTokenError("The import token is not valid for this key.")
    sealed, algorithm, expires = row
    if call.now > expires:
        raise ExpiredImportTokenError("The import token has expired; call GetParametersForImport again.")
    der = call.session.partition.sealer.open(sealed, f"import-{fields[1]}", 0)
    private = serialization.load_der_private_key(der, password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise RuntimeError("envelope: internal error: import wrapping key is not RSA")  # noqa: TRY004 - invariant
    digest: hashes.HashAlgorithm = hashes.SHA1() if algorithm == "RSAES_OAEP_SHA_1" else hashes.SHA256()
    try:
        return private.decrypt(wrapped, padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None))
    except ValueError:
        raise InvalidCiphertextError("The encrypted key material does not decrypt with the import "
                                     "parameters.") from None


def import_key_material(call: Call) -> dict[str, Any]:
    a = call.args
    token = a.blob("ImportToken", hi=6144)
    wrapped = a.blob("EncryptedKeyMaterial", hi=6144)
    valid_to = a.timestamp("ValidTo")
    model = a.choice("ExpirationModel", ("KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE"))
    a.opt_string("ImportType")
    a.opt_string("KeyMaterialDescription")
    a.opt_string("KeyMaterialId")
    a.finish()
    entry = call.subject(service_keys=False)
    _external(entry)
    if model is None:
        model = "KEY_MATERIAL_EXPIRES" if valid_to is not None else "KEY_MATERIAL_DOES_NOT_EXPIRE"
    if model == "KEY_MATERIAL_EXPIRES" and (valid_to is None or valid_to <= call.now):
        raise ValidationError("ValidTo must be a time in the future when the key material expires.")
    if model == "KEY_MATERIAL_DOES_NOT_EXPIRE" and valid_to is not None:
        raise ValidationError("ValidTo must be omitted when the key material does not expire.")
    material = _unwrap(call, entry, token, wrapped)
    if len(material) != 32:
        raise IncorrectKeyMaterialError("Symmetric key material must be 32 bytes (256 bits).")
    rec = entry.record
    sealer = call.session.partition.sealer
    fingerprint = call.region.fingerprint(material)
    if rec.fingerprint is not None and not hmac.compare_digest(rec.fingerprint, fingerprint):
        raise IncorrectKeyMaterialError("The key material is not the material previously imported "
                                        "into this key; a key only accepts the same material again.")
    call.conn.execute("INSERT OR REPLACE INTO key_versions (key_id, version, sealed, created, rotation_type) "
                      "VALUES (?, 1, ?, ?, NULL)", (rec.key_id, sealer.seal(material, rec.key_id, 1), call.now))
    state = "Enabled" if rec.key_state == "PendingImport" else rec.key_state
    update_key(call.conn, rec.key_id, key_state=state, current_version=1, fingerprint=fingerprint,
               valid_to=valid_to if model == "KEY_MATERIAL_EXPIRES" else None, expiration_model=model)
    call.mark_changed()
    return {"KeyId": entry.arn}


def delete_imported_key_material(call: Call) -> dict[str, Any]:
    a = call.args
    a.opt_string("KeyMaterialId")
    a.finish()
    entry = call.subject(service_keys=False)
    _external(entry)
    call.conn.execute("DELETE FROM key_versions WHERE key_id = ?", (entry.record.key_id,))
    update_key(call.conn, entry.record.key_id, key_state="PendingImport", current_version=0, valid_to=None)
    call.mark_changed()
    return {"KeyId": entry.arn}
