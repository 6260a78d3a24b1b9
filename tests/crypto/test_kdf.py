"""Message-key derivation: the one-block HKDF and its HMAC agree with the stdlib and cryptography."""

from __future__ import annotations

import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from envelope.crypto.kdf import COMMIT_KEY_LABEL, DERIVE_KEY_LABEL, _hmac, derive_keys
from envelope.format.suites import AlgorithmSuite

_HASH = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
@pytest.mark.parametrize("key_length", [0, 1, 16, 32, 63, 64, 65, 127, 128, 129, 300], ids=lambda n: f"key{n}")
def test_hmac_matches_stdlib(hash_name: str, key_length: int) -> None:
    key = bytes((7 * i + 3) % 256 for i in range(key_length))
    messages = (b"", b"\x01", bytes(range(200)), b"\x01")
    # Several messages under one key: the copied hash states must not carry one into the next.
    assert _hmac(key, hash_name, *messages) == [hmac.digest(key, m, hash_name) for m in messages]
    assert _hmac(key, hash_name, messages[2]) == [hmac.digest(key, messages[2], hash_name)]


def _hkdf(suite: AlgorithmSuite, data_key: bytes, salt: bytes | None, info: bytes, length: int) -> bytes:
    assert suite.kdf_hash is not None
    return HKDF(_HASH[suite.kdf_hash], length, salt, info).derive(data_key)


@pytest.mark.parametrize("suite", list(AlgorithmSuite), ids=lambda s: s.name)
def test_derive_keys_matches_cryptography_hkdf(suite: AlgorithmSuite) -> None:
    data_key = bytes(range(suite.key_length))
    message_id = bytes(range(100, 100 + (32 if suite.message_format_version == 2 else 16)))
    key, commitment = derive_keys(suite, data_key, message_id)
    if suite.kdf_hash is None:
        assert (key, commitment) == (data_key, b"")
    elif suite.is_committing:
        assert key == _hkdf(suite, data_key, message_id, suite.wire_id + DERIVE_KEY_LABEL, suite.key_length)
        assert commitment == _hkdf(suite, data_key, message_id, COMMIT_KEY_LABEL, 32)
    else:
        assert key == _hkdf(suite, data_key, None, suite.wire_id + message_id, suite.key_length)
        assert commitment == b""


@pytest.mark.parametrize("suite", list(AlgorithmSuite), ids=lambda s: s.name)
def test_derive_keys_refuses_a_wrong_length_data_key(suite: AlgorithmSuite) -> None:
    with pytest.raises(ValueError, match="data key"):
        derive_keys(suite, bytes(suite.key_length + 1), bytes(32))
