"""ECDSA message signatures over header ‖ body (format-spec/message.md §2.4, §6).

A `Verifier` only says whether a signature matches the bytes it was fed; deciding when to release
plaintext is the streaming layer's job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import AuthenticationError, FormatError
from .random import random_bytes

__all__ = ["PUBLIC_KEY_CONTEXT_KEY", "HashLike", "Signer", "Verifier", "generate_signing_key"]

PUBLIC_KEY_CONTEXT_KEY = "aws-crypto-public-key"  # §2.4: base64 of the compressed public point

_CURVES: dict[str, tuple[ec.EllipticCurve, str, int, int]] = {
    # curve name -> (curve, hash, order, fixed DER signature length written by the ESDK)
    "P-256": (ec.SECP256R1(), "sha256",
              0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551, 71),
    "P-384": (ec.SECP384R1(), "sha384",
              0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
              103),
}
_PREHASH = {"sha256": hashes.SHA256, "sha384": hashes.SHA384}


class HashLike(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def digest(self) -> bytes: ...


def generate_signing_key(curve: str) -> ec.EllipticCurvePrivateKey:
    """A fresh ephemeral signing key, drawn through the randomness seam (see crypto/random.py)."""
    ec_curve, _, order, _ = _CURVES[curve]
    # 64 extra bits make the bias of the reduction negligible.
    scalar = int.from_bytes(random_bytes(ec_curve.key_size // 8 + 8), "big") % (order - 1) + 1
    return ec.derive_private_key(scalar, ec_curve)


def encode_public_key(key: ec.EllipticCurvePublicKey) -> str:
    """Base64 of the SEC1 compressed point, as stored in the encryption context."""
    return base64.b64encode(key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)).decode("ascii")


def decode_public_key(curve: str, encoded: str) -> ec.EllipticCurvePublicKey:
    try:
        point = base64.b64decode(encoded.encode("ascii"), validate=True)
        return ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[curve][0], point)
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise FormatError("the message's signature public key is not a valid point") from None


class Signer:
    """Hash the message bytes as they are written, then sign the digest (§6)."""

    def __init__(self, curve: str, private_key: ec.EllipticCurvePrivateKey) -> None:
        self._curve = curve
        self._key = private_key
        self._hash: HashLike = hashlib.new(_CURVES[curve][1])

    def wrap_hash(self, wrap: Callable[[HashLike], HashLike]) -> None:
        """Let a driver run the hashing elsewhere (another thread); order of updates is kept."""
        self._hash = wrap(self._hash)

    @property
    def public_key(self) -> str:
        return encode_public_key(self._key.public_key())

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)

    def finalize(self) -> bytes:
        _, hash_name, order, length = _CURVES[self._curve]
        digest = self._hash.digest()
        algorithm = ec.ECDSA(Prehashed(_PREHASH[hash_name]()))
        while True:
            # Peers write fixed-length signatures: use the low or high s so the DER has the usual
            # length, and sign again in the rare case r alone is short (§6).
            r, s = decode_dss_signature(self._key.sign(digest, algorithm))
            signature = encode_dss_signature(r, s)
            if len(signature) != length:
                signature = encode_dss_signature(r, order - s)
            if len(signature) == length:
                return signature


class Verifier:
    """Hash the message bytes as they are read, then check the footer signature."""

    def __init__(self, curve: str, public_key: ec.EllipticCurvePublicKey) -> None:
        self._curve = curve
        self._key = public_key
        self._hash: HashLike = hashlib.new(_CURVES[curve][1])

    def wrap_hash(self, wrap: Callable[[HashLike], HashLike]) -> None:
        """Let a driver run the hashing elsewhere (another thread); order of updates is kept."""
        self._hash = wrap(self._hash)

    @classmethod
    def from_encoded(cls, curve: str, encoded: str) -> Verifier:
        return cls(curve, decode_public_key(curve, encoded))

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)

    def verify(self, signature: bytes) -> None:
        hash_name = _CURVES[self._curve][1]
        try:
            self._key.verify(signature, self._hash.digest(), ec.ECDSA(Prehashed(_PREHASH[hash_name]())))
        except InvalidSignature:
            raise AuthenticationError("message signature failed verification") from None
