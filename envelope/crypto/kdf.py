"""Message-key derivation and key commitment (format-spec/message.md §2.2, §2.3).

Derivation does not check that the data key is the right one; for committing suites the caller
compares `commitment_key` output with the header's suite data, in constant time, before use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from ..format.suites import AlgorithmSuite

__all__ = ["DERIVE_KEY_LABEL", "COMMIT_KEY_LABEL", "derive_keys"]

DERIVE_KEY_LABEL = b"DERIVEKEY"
COMMIT_KEY_LABEL = b"COMMITKEY"

# name -> (constructor, block size, digest size); hashlib's own constructors, which OpenSSL backs.
_HASHES: dict[str, tuple[Callable[..., hashlib._Hash], int, int]] = {
    "sha256": (hashlib.sha256, 64, 32),
    "sha384": (hashlib.sha384, 128, 48),
    "sha512": (hashlib.sha512, 128, 64),
}
_IPAD = bytes(b ^ 0x36 for b in range(256))  # bytes.translate tables: key byte -> key byte XOR pad
_OPAD = bytes(b ^ 0x5C for b in range(256))


def _hmac(key: bytes, hash_name: str, *messages: bytes) -> list[bytes]:
    """HMAC(key, m) for each message (RFC 2104): H((K ^ opad) ‖ H((K ^ ipad) ‖ m)).

    Why not `hmac.digest`: each of its calls sets the key up again, about half its cost for
    these short inputs, and HKDF makes three HMACs per message. Here the two padded key blocks
    are hashed once and the hash states copied for each message (the committing suites expand
    twice under one PRK). tests/crypto/test_kdf.py checks it against `hmac` and `cryptography`.
    """
    new, block_size, _ = _HASHES[hash_name]
    if len(key) > block_size:
        key = new(key).digest()  # RFC 2104 §2: a key longer than a block is hashed first
    key = key.ljust(block_size, b"\x00")
    inner_key, outer_key = key.translate(_IPAD), key.translate(_OPAD)
    if len(messages) == 1:
        # One message: hashing the padded keys along with it is cheaper than copying states.
        return [new(outer_key + new(inner_key + messages[0]).digest()).digest()]
    inner_start, outer_start = new(inner_key), new(outer_key)
    macs = []
    for message in messages:
        inner = inner_start.copy()
        inner.update(message)
        outer = outer_start.copy()
        outer.update(inner.digest())
        macs.append(outer.digest())
    return macs


# The committing suites' HKDF-Expand inputs, info ‖ 0x01, built once (§2.3).
_DERIVE_KEY_INFO = {suite: suite.wire_id + DERIVE_KEY_LABEL + b"\x01" for suite in AlgorithmSuite}
_COMMIT_KEY_INFO = COMMIT_KEY_LABEL + b"\x01"


def derive_keys(suite: AlgorithmSuite, data_key: bytes, message_id: bytes) -> tuple[bytes, bytes]:
    """Return (message encryption key, commitment key); the commitment key is b"" when the suite
    does not commit.

    Every suite's output fits in one hash block, so HKDF-Expand (RFC 5869 §2.3) is the single
    block T(1) = HMAC(PRK, info ‖ 0x01), truncated.

    :raises ValueError: the data key has the wrong length for the suite.
    """
    info = suite.info  # one table lookup for all the suite's facts
    key_length = info.key_length
    if len(data_key) != key_length:
        raise ValueError(f"{suite.name} needs a {key_length}-byte data key, got {len(data_key)}")
    hash_name = info.kdf_hash
    if hash_name is None:
        return data_key, b""
    if info.committing:
        # HKDF-SHA512 with the message id as salt: extract once, expand twice (§2.3).
        [prk] = _hmac(message_id, hash_name, data_key)
        key, commitment_key = _hmac(prk, hash_name, _DERIVE_KEY_INFO[suite], _COMMIT_KEY_INFO)
        return key[:key_length], commitment_key[:32]
    # v1 HKDF suites: no salt (HashLen zero bytes), info = suite id ‖ message id (§2.2).
    [prk] = _hmac(bytes(_HASHES[hash_name][2]), hash_name, data_key)
    [key] = _hmac(prk, hash_name, suite.wire_id + message_id + b"\x01")
    return key[:key_length], b""
