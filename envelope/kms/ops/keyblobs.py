"""Sealing plaintext under a KMS key's current backing key: the helper symmetric encryption and
data key pairs (`asymmetric`) share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..model.blobs import seal_blob

if TYPE_CHECKING:
    from ..engine.runtime import Call
    from ..store.partition import KeyEntry

__all__ = ["seal_for"]


def seal_for(call: Call, entry: KeyEntry, plaintext: bytes, context: Mapping[str, str]) -> bytes:
    """Encrypt under the key's current backing key (the key must be usable and symmetric)."""
    version = entry.record.current_version
    return seal_blob(call.aead(entry, version), entry.record.key_id, version, plaintext, context)
