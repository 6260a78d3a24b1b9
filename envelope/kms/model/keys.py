"""The key model: key specs and usages, the stored key record, ARNs, and the KeyMetadata shape."""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass, fields
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .clock import to_datetime
from .errors import KeyNotFoundError, ValidationError
from .sql import Connection

__all__ = [
    "KEY_SPECS", "KeyRecord", "KeyRef", "SpecInfo", "generate_material", "insert_key", "key_arn",
    "load_key", "metadata", "new_key_id", "parse_key_ref", "update_key",
]

RSA_ENCRYPTION = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")
RSA_SIGNING = ("RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
               "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512")


@dataclass(frozen=True, slots=True)
class SpecInfo:
    """What a key spec allows: usages and the algorithms for each usage."""

    usages: tuple[str, ...]
    encryption: tuple[str, ...] = ()
    signing: tuple[str, ...] = ()
    mac: tuple[str, ...] = ()
    size: int = 0  # bytes of symmetric/HMAC material, or RSA bits
    key_agreement: tuple[str, ...] = ()  # KEY_AGREEMENT keys: ECDH (API_DeriveSharedSecret.html)


KEY_SPECS: dict[str, SpecInfo] = {
    "SYMMETRIC_DEFAULT": SpecInfo(("ENCRYPT_DECRYPT",), encryption=("SYMMETRIC_DEFAULT",), size=32),
    "RSA_2048": SpecInfo(("ENCRYPT_DECRYPT", "SIGN_VERIFY"), RSA_ENCRYPTION, RSA_SIGNING, size=2048),
    "RSA_3072": SpecInfo(("ENCRYPT_DECRYPT", "SIGN_VERIFY"), RSA_ENCRYPTION, RSA_SIGNING, size=3072),
    "RSA_4096": SpecInfo(("ENCRYPT_DECRYPT", "SIGN_VERIFY"), RSA_ENCRYPTION, RSA_SIGNING, size=4096),
    "ECC_NIST_P256": SpecInfo(("SIGN_VERIFY", "KEY_AGREEMENT"), signing=("ECDSA_SHA_256",), key_agreement=("ECDH",)),
    "ECC_NIST_P384": SpecInfo(("SIGN_VERIFY", "KEY_AGREEMENT"), signing=("ECDSA_SHA_384",), key_agreement=("ECDH",)),
    "ECC_NIST_P521": SpecInfo(("SIGN_VERIFY", "KEY_AGREEMENT"), signing=("ECDSA_SHA_512",), key_agreement=("ECDH",)),
    "ECC_SECG_P256K1": SpecInfo(("SIGN_VERIFY",), signing=("ECDSA_SHA_256",)),
    "HMAC_224": SpecInfo(("GENERATE_VERIFY_MAC",), mac=("HMAC_SHA_224",), size=28),
    "HMAC_256": SpecInfo(("GENERATE_VERIFY_MAC",), mac=("HMAC_SHA_256",), size=32),
    "HMAC_384": SpecInfo(("GENERATE_VERIFY_MAC",), mac=("HMAC_SHA_384",), size=48),
    "HMAC_512": SpecInfo(("GENERATE_VERIFY_MAC",), mac=("HMAC_SHA_512",), size=64),
}

_CURVES: dict[str, ec.EllipticCurve] = {
    "ECC_NIST_P256": ec.SECP256R1(), "ECC_NIST_P384": ec.SECP384R1(),
    "ECC_NIST_P521": ec.SECP521R1(), "ECC_SECG_P256K1": ec.SECP256K1(),
}

_KEY_ID = re.compile(r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$")
_ARN = re.compile(r"^arn:aws:kms:([a-z0-9-]+):(\d{12}):(key|alias)/(.+)$")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key as stored in one region (a multi-Region key has one record per region)."""

    key_id: str
    account: str
    created: float
    description: str
    key_usage: str
    key_spec: str
    key_state: str
    origin: str
    key_manager: str
    multi_region: bool
    primary_region: str | None
    replica_regions: tuple[str, ...]
    policy: str
    rotation_enabled: bool
    rotation_period: int | None
    next_rotation: float | None
    on_demand_count: int
    deletion_date: float | None
    pending_window: int | None
    valid_to: float | None
    expiration_model: str | None
    fingerprint: bytes | None
    current_version: int
    service: str | None


_COLUMNS = tuple(f.name for f in fields(KeyRecord))
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM keys WHERE key_id = ?"


def _to_row(rec: KeyRecord) -> tuple[Any, ...]:
    out: list[Any] = []
    for name in _COLUMNS:
        value = getattr(rec, name)
        if name == "replica_regions":
            value = json.dumps(list(value))
        elif isinstance(value, bool):
            value = int(value)
        out.append(value)
    return tuple(out)


def _from_row(row: tuple[Any, ...]) -> KeyRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["replica_regions"] = tuple(json.loads(values["replica_regions"]))
    for name in ("multi_region", "rotation_enabled"):
        values[name] = bool(values[name])
    return KeyRecord(**values)


def load_key(conn: Connection, key_id: str) -> KeyRecord | None:
    """The stored record for ``key_id`` in this region, or None."""
    row = conn.execute(_SELECT, (key_id,)).fetchone()
    return None if row is None else _from_row(row)


def insert_key(conn: Connection, rec: KeyRecord) -> None:
    """Insert a new key record."""
    marks = ", ".join("?" for _ in _COLUMNS)
    conn.execute(f"INSERT INTO keys ({', '.join(_COLUMNS)}) VALUES ({marks})", _to_row(rec))


def update_key(conn: Connection, key_id: str, **changes: Any) -> None:
    """Update some columns of a key record (column names are KeyRecord field names)."""
    for name in changes:
        if name not in _COLUMNS or name == "key_id":
            raise ValueError(f"envelope: internal error: unknown key column {name!r}")
    if "replica_regions" in changes:
        changes["replica_regions"] = json.dumps(list(changes["replica_regions"]))
    assignments = ", ".join(f"{name} = ?" for name in changes)
    values = [int(v) if isinstance(v, bool) else v for v in changes.values()]
    conn.execute(f"UPDATE keys SET {assignments} WHERE key_id = ?", (*values, key_id))


def new_key_id(multi_region: bool) -> str:
    """A fresh key id: a UUID, or ``mrk-`` + 32 hex digits for a multi-Region key."""
    return f"mrk-{os.urandom(16).hex()}" if multi_region else str(uuid.uuid4())


def key_arn(region: str, account: str, key_id: str) -> str:
    """The key ARN in one region."""
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def generate_material(spec: str) -> bytes:
    """Fresh key material for a spec: raw bytes for symmetric/HMAC, PKCS#8 DER for asymmetric."""
    info = KEY_SPECS[spec]
    if spec == "SYMMETRIC_DEFAULT" or spec.startswith("HMAC_"):
        return os.urandom(info.size)
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if spec.startswith("RSA_"):
        private = rsa.generate_private_key(public_exponent=65537, key_size=info.size)
    else:
        private = ec.generate_private_key(_CURVES[spec])
    return private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


@dataclass(frozen=True, slots=True)
class KeyRef:
    """A parsed KeyId parameter: a key id or an alias name, with the account an ARN named."""

    kind: str  # "key" or "alias"
    name: str  # key id, or "alias/<name>"
    account: str | None


_REF_CACHE: dict[tuple[str, str], KeyRef] = {}


def parse_key_ref(value: str, region: str) -> KeyRef:
    """Parse a key id, key ARN, alias name or alias ARN.

    :raises KeyNotFoundError: malformed, or an ARN of another region (never found here).
    """
    found = _REF_CACHE.get((value, region))
    if found is None:
        found = _parse_key_ref(value, region)
        if len(_REF_CACHE) >= 4096:
            _REF_CACHE.clear()
        _REF_CACHE[(value, region)] = found
    return found


def _parse_key_ref(value: str, region: str) -> KeyRef:
    if value.startswith("alias/"):
        return KeyRef("alias", value, None)
    match = _ARN.match(value)
    if match is not None:
        arn_region, account, kind, rest = match.groups()
        if arn_region != region:
            raise KeyNotFoundError(f"Key '{value}' does not exist in region {region}")
        if kind == "alias":
            return KeyRef("alias", f"alias/{rest}", account)
        if _KEY_ID.match(rest):
            return KeyRef("key", rest, account)
    elif _KEY_ID.match(value):
        return KeyRef("key", value, None)
    if value.startswith("arn:") and not value.startswith("arn:aws:kms:"):
        raise ValidationError(f"'{value}' is not a valid KMS key ARN")
    raise KeyNotFoundError(f"Invalid keyId '{value}'")


def metadata(rec: KeyRecord, region: str) -> dict[str, Any]:
    """The boto3 ``KeyMetadata`` dict for a key record."""
    info = KEY_SPECS[rec.key_spec]
    meta: dict[str, Any] = {
        "AWSAccountId": rec.account,
        "KeyId": rec.key_id,
        "Arn": key_arn(region, rec.account, rec.key_id),
        "CreationDate": to_datetime(rec.created),
        "Enabled": rec.key_state == "Enabled",
        "Description": rec.description,
        "KeyUsage": rec.key_usage,
        "KeyState": rec.key_state,
        "Origin": rec.origin,
        "KeyManager": rec.key_manager,
        "CustomerMasterKeySpec": rec.key_spec,
        "KeySpec": rec.key_spec,
        "MultiRegion": rec.multi_region,
    }
    if rec.deletion_date is not None and rec.key_state == "PendingDeletion":
        meta["DeletionDate"] = to_datetime(rec.deletion_date)
    if rec.pending_window is not None and rec.key_state in ("PendingDeletion", "PendingReplicaDeletion"):
        meta["PendingDeletionWindowInDays"] = rec.pending_window
    if rec.origin == "EXTERNAL":
        if rec.expiration_model is not None:
            meta["ExpirationModel"] = rec.expiration_model
        if rec.valid_to is not None:
            meta["ValidTo"] = to_datetime(rec.valid_to)
    if rec.key_usage == "ENCRYPT_DECRYPT":
        meta["EncryptionAlgorithms"] = list(info.encryption)
    elif rec.key_usage == "SIGN_VERIFY":
        meta["SigningAlgorithms"] = list(info.signing)
    elif rec.key_usage == "KEY_AGREEMENT":
        meta["KeyAgreementAlgorithms"] = list(info.key_agreement)
    else:
        meta["MacAlgorithms"] = list(info.mac)
    if rec.multi_region and rec.primary_region is not None:
        primary = rec.primary_region
        meta["MultiRegionConfiguration"] = {
            "MultiRegionKeyType": "PRIMARY" if primary == region else "REPLICA",
            "PrimaryKey": {"Arn": key_arn(primary, rec.account, rec.key_id), "Region": primary},
            "ReplicaKeys": [{"Arn": key_arn(r, rec.account, rec.key_id), "Region": r}
                            for r in rec.replica_regions],
        }
    return meta
