"""A message header as JSON-ready data, shared by `envelope inspect` and --metadata-output."""

from __future__ import annotations

import base64
from typing import Any

import envelope

__all__ = ["edk_key_id", "header_dict", "recipient_label"]


def recipient_label(compressed_point: bytes) -> str:
    """How `inspect` and `keygen` name an ECDH recipient (as `envelope.edk_key_name` does)."""
    return "recipient:" + base64.b64encode(compressed_point).decode()


def edk_key_id(edk: envelope.EncryptedDataKey) -> str:
    """The key an EDK names: a KMS key ARN, a raw key's name, or an ECDH recipient's public key."""
    return envelope.edk_key_name(edk)


def header_dict(header: envelope.Header) -> dict[str, Any]:
    suite = header.algorithm
    return {
        "version": header.version,
        "algorithm": suite.name,
        "algorithm_id": f"0x{int(suite):04X}",
        "message_id": header.message_id.hex(),
        "encryption_context": dict(header.encryption_context),
        "encrypted_data_keys": [
            {"provider_id": edk.provider_id, "key_id": edk_key_id(edk)} for edk in header.encrypted_data_keys
        ],
        "content_type": "framed" if header.is_framed else "non-framed",
        "frame_length": header.frame_length,
    }
