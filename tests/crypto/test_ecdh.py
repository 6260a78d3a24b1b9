"""envelope.crypto.ecdh: the SP 800-108 derivation against an independent implementation, and the
point handling the raw ECDH keyring relies on (format-spec/raw-ecdh.md §1, §4)."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode

from envelope.crypto import ecdh


@pytest.mark.parametrize("secret_length", [32, 48, 66])
def test_kdf_is_sp800_108_counter_mode_hmac_sha384(secret_length: int) -> None:
    # cryptography's KBKDF: r = 32-bit counter before the fixed data, Label || 00 || Context || L(32).
    secret, info, salt = os.urandom(secret_length), os.urandom(200), os.urandom(32)
    reference = KBKDFHMAC(algorithm=hashes.SHA384(), mode=Mode.CounterMode, length=64, rlen=4, llen=4,
                          location=CounterLocation.BeforeFixed, label=info, context=salt, fixed=None)
    assert ecdh.derive_keying_material(secret, info, salt) == reference.derive(secret)


@pytest.mark.parametrize("name", list(ecdh.CURVES))
def test_points_and_secrets(name: str) -> None:
    curve = ecdh.curve_named(name.lower())
    a, b = ecdh.generate_private_key(curve), ecdh.generate_private_key(curve)
    point = ecdh.compress(a.public_key())
    assert len(point) == curve.compressed_length and point[0] in (2, 3)
    restored = ecdh.decompress(point, curve)
    assert restored is not None and ecdh.compress(restored) == point
    secret = ecdh.shared_secret(b, restored)
    assert secret == ecdh.shared_secret(a, b.public_key()) and len(secret) == curve.coordinate_length
    assert ecdh.decompress(bytes(len(point)), curve) is None  # the point at infinity's prefix
    assert ecdh.decompress(b"\x04" + point[1:], curve) is None
    assert ecdh.decompress(point[:-1], curve) is None
    # An x with no point: about half of all x values; find one.
    x = int.from_bytes(point[1:], "big")
    misses = [ecdh.decompress(b"\x02" + ((x + d) % 2 ** (8 * (len(point) - 1))).to_bytes(len(point) - 1, "big"),
                              curve) for d in range(1, 40)]
    assert None in misses


def test_curve_names() -> None:
    assert [c.label for c in ecdh.CURVES.values()] == ["p256", "p384", "p521"]
    with pytest.raises(ValueError):
        ecdh.curve_named("SM2")
    with pytest.raises(TypeError):
        ecdh.curve_named(256)  # type: ignore[arg-type]
