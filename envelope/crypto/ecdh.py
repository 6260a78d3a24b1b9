"""ECDH on the NIST curves: key loading and validation, point compression, the shared secret, and
the SP 800-108 derivation the ECDH keyrings use (format-spec/raw-ecdh.md §3, §4).

Nothing here decides whose key a public key is; callers compare keys. Loading checks that a point
is on the named curve and is not the point at infinity (cryptography refuses both).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "CURVES",
    "ECDHCurve",
    "KDF_OUTPUT_LENGTH",
    "compress",
    "curve_named",
    "decompress",
    "derive_keying_material",
    "generate_private_key",
    "load_private_key",
    "load_public_key",
    "shared_secret",
]

KDF_OUTPUT_LENGTH = 64  # 32-byte commitment key || 32-byte wrapping key (§4)
_L_BITS = (KDF_OUTPUT_LENGTH * 8).to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class ECDHCurve:
    """One supported curve: its ESDK name, the label the KDF's fixed info uses, and sizes."""

    name: str  # as the ESDK and KMS spell it: ECC_NIST_P256
    label: str  # in the fixed info (§4): p256
    curve: ec.EllipticCurve

    @property
    def coordinate_length(self) -> int:
        return (self.curve.key_size + 7) // 8

    @property
    def compressed_length(self) -> int:
        """SEC 1 compressed point: one parity byte and x (33/49/67 bytes)."""
        return 1 + self.coordinate_length


CURVES: dict[str, ECDHCurve] = {
    c.name: c for c in (
        ECDHCurve("ECC_NIST_P256", "p256", ec.SECP256R1()),
        ECDHCurve("ECC_NIST_P384", "p384", ec.SECP384R1()),
        ECDHCurve("ECC_NIST_P521", "p521", ec.SECP521R1()),
    )
}


def curve_named(name: str) -> ECDHCurve:
    """The curve called ``name`` (``ECC_NIST_P256``, ``ECC_NIST_P384`` or ``ECC_NIST_P521``).

    :raises ValueError: an unknown or unsupported curve.
    """
    if not isinstance(name, str):
        raise TypeError("curve must be a str such as 'ECC_NIST_P256'")
    curve = CURVES.get(name.upper())
    if curve is None:
        raise ValueError(f"unsupported curve {name!r}; expected one of {', '.join(CURVES)}")
    return curve


def _check_curve(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey, curve: ECDHCurve, what: str) -> None:
    if key.curve.name != curve.curve.name:
        raise ValueError(f"{what} is on curve {key.curve.name}, not {curve.name}")


def load_private_key(pem: bytes | str, curve: ECDHCurve, what: str = "the private key") -> ec.EllipticCurvePrivateKey:
    """Load an unencrypted PEM (PKCS #8) EC private key on ``curve``.

    :raises ValueError: not PEM, encrypted, not an EC key, or on another curve.
    """
    if isinstance(pem, str):
        pem = pem.encode("ascii", "replace")
    if not isinstance(pem, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be PEM bytes")
    try:
        key = serialization.load_pem_private_key(bytes(pem), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # cryptography's message may quote key bytes: say only what was wrong.
        raise ValueError(f"{what} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{what} is not an EC private key")  # noqa: TRY004 - the bytes are the wrong value
    _check_curve(key, curve, what)
    return key


def load_public_key(data: bytes | str, curve: ECDHCurve, what: str = "the public key") -> ec.EllipticCurvePublicKey:
    """Load a DER SubjectPublicKeyInfo or PEM EC public key on ``curve``.

    Loading refuses a point off the curve and the point at infinity.

    :raises ValueError: malformed, truncated, not EC, or on another curve.
    """
    if isinstance(data, str):
        data = data.encode("ascii", "replace")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be DER or PEM bytes")
    raw = bytes(data)
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(raw)
        else:
            key = serialization.load_der_public_key(raw)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(f"{what} is not a valid DER or PEM public key (truncated, or a point not on "
                         "its curve)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError(f"{what} is not an EC public key")  # noqa: TRY004 - the bytes are the wrong value
    _check_curve(key, curve, what)
    return key


def generate_private_key(curve: ECDHCurve) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve.curve)


def compress(key: ec.EllipticCurvePublicKey) -> bytes:
    """The SEC 1 compressed encoding of ``key``."""
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)


def decompress(point: bytes, curve: ECDHCurve) -> ec.EllipticCurvePublicKey | None:
    """The public key a compressed point names, or None if it is not a valid compressed point on ``curve``.

    Only the two compressed forms (0x02, 0x03) of the curve's exact length are accepted, so the
    point at infinity (0x00) and uncompressed points are refused.
    """
    if len(point) != curve.compressed_length or point[0] not in (2, 3):
        return None
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve.curve, bytes(point))
    except ValueError:  # x has no point on the curve
        return None


def shared_secret(private_key: ec.EllipticCurvePrivateKey, public_key: ec.EllipticCurvePublicKey) -> bytes:
    """ECDH: the x coordinate of the shared point, big-endian, the curve's coordinate length."""
    return private_key.exchange(ec.ECDH(), public_key)


def derive_keying_material(secret: bytes, fixed_info: bytes, salt: bytes) -> bytes:
    """SP 800-108 KDF in counter mode with HMAC-SHA384, 64 bytes of output (§4).

    Block i is HMAC(secret, u32(i) || fixed_info || 0x00 || salt || u32(512)) for i = 1, 2 —
    the ESDK's label is the fixed info and its context the salt.
    """
    tail = fixed_info + b"\x00" + salt + _L_BITS
    first = hmac.new(secret, b"\x00\x00\x00\x01" + tail, hashlib.sha384).digest()
    second = hmac.new(secret, b"\x00\x00\x00\x02" + tail, hashlib.sha384).digest()
    return (first + second)[:KDF_OUTPUT_LENGTH]
