"""Message-key derivation and key commitment (format-spec/message.md §2.2, §2.3).

Derivation does not check that the data key is the right one; for committing suites the caller
compares `commitment_key` output with the header's suite data, in constant time, before use.
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from ..format.suites import AlgorithmSuite

__all__ = ["DERIVE_KEY_LABEL", "COMMIT_KEY_LABEL", "derive_keys"]

DERIVE_KEY_LABEL = b"DERIVEKEY"
COMMIT_KEY_LABEL = b"COMMITKEY"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}


def derive_keys(suite: AlgorithmSuite, data_key: bytes, message_id: bytes) -> tuple[bytes, bytes]:
    """Return (message encryption key, commitment key); the commitment key is b"" when the suite
    does not commit.

    :raises ValueError: the data key has the wrong length for the suite.
    """
    if len(data_key) != suite.key_length:
        raise ValueError(f"{suite.name} needs a {suite.key_length}-byte data key, got {len(data_key)}")
    if suite.kdf_hash is None:
        return data_key, b""
    hash_cls = _HASHES[suite.kdf_hash]
    if suite.is_committing:
        # HKDF-SHA512 with the message id as salt: extract once, expand twice (§2.3).
        prk = hmac.digest(message_id, data_key, suite.kdf_hash)
        key = HKDFExpand(hash_cls(), suite.key_length, suite.wire_id + DERIVE_KEY_LABEL).derive(prk)
        commit = HKDFExpand(hash_cls(), 32, COMMIT_KEY_LABEL).derive(prk)
        return key, commit
    # v1 HKDF suites: no salt (HashLen zero bytes), info = suite id ‖ message id (§2.2).
    salt = bytes(hash_cls().digest_size)
    prk = hmac.digest(salt, data_key, suite.kdf_hash)
    return HKDFExpand(hash_cls(), suite.key_length, suite.wire_id + message_id).derive(prk), b""
