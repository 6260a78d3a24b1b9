"""Message-key derivation and key commitment (format-spec/message.md §2.2, §2.3).

Derivation does not check that the data key is the right one; for committing suites the caller
compares `commitment_key` output with the header's suite data, in constant time, before use.
"""

from __future__ import annotations

import hmac

from ..format.suites import AlgorithmSuite

__all__ = ["DERIVE_KEY_LABEL", "COMMIT_KEY_LABEL", "derive_keys"]

DERIVE_KEY_LABEL = b"DERIVEKEY"
COMMIT_KEY_LABEL = b"COMMITKEY"
_DIGEST_SIZE = {"sha256": 32, "sha384": 48, "sha512": 64}


def _expand_one_block(prk: bytes, info: bytes, length: int, hash_name: str) -> bytes:
    """HKDF-Expand (RFC 5869 §2.3) when ``length`` fits one hash block, as every suite's does:
    T(1) = HMAC(PRK, info ‖ 0x01). One HMAC call instead of a KDF object per key."""
    return hmac.digest(prk, info + b"\x01", hash_name)[:length]


def derive_keys(suite: AlgorithmSuite, data_key: bytes, message_id: bytes) -> tuple[bytes, bytes]:
    """Return (message encryption key, commitment key); the commitment key is b"" when the suite
    does not commit.

    :raises ValueError: the data key has the wrong length for the suite.
    """
    if len(data_key) != suite.key_length:
        raise ValueError(f"{suite.name} needs a {suite.key_length}-byte data key, got {len(data_key)}")
    if suite.kdf_hash is None:
        return data_key, b""
    hash_name = suite.kdf_hash
    if suite.is_committing:
        # HKDF-SHA512 with the message id as salt: extract once, expand twice (§2.3).
        prk = hmac.digest(message_id, data_key, hash_name)
        key = _expand_one_block(prk, suite.wire_id + DERIVE_KEY_LABEL, suite.key_length, hash_name)
        return key, _expand_one_block(prk, COMMIT_KEY_LABEL, 32, hash_name)
    # v1 HKDF suites: no salt (HashLen zero bytes), info = suite id ‖ message id (§2.2).
    prk = hmac.digest(bytes(_DIGEST_SIZE[hash_name]), data_key, hash_name)
    return _expand_one_block(prk, suite.wire_id + message_id, suite.key_length, hash_name), b""
