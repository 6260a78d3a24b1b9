"""A message header as JSON-ready data, shared by `envelope inspect` and --metadata-output."""

from __future__ import annotations

import base64
from typing import Any

import envelope

__all__ = ["edk_key_id", "header_dict", "recipient_label"]

# A raw AES EDK's provider info is key name || tag length (u32) || IV length (u32) || IV
# (format-spec keyrings: raw AES): 4 + 4 + 12 trailing bytes after the name.
_RAW_AES_TRAILER = (128).to_bytes(4, "big") + (12).to_bytes(4, "big")


_ECDH_PROVIDER_IDS = ("raw-ecdh", "aws-kms-ecdh")
_COMPRESSED_POINT_LENGTHS = (33, 49, 67)  # P-256, P-384, P-521 (format-spec/raw-ecdh.md §1)


def recipient_label(compressed_point: bytes) -> str:
    """How `inspect` and `keygen` name an ECDH recipient: its compressed public key, base64."""
    return "recipient:" + base64.b64encode(compressed_point).decode()


def edk_key_id(edk: envelope.EncryptedDataKey) -> str:
    """The key an EDK names: a KMS key ARN, a raw key's name (without the raw AES IV), or an ECDH
    recipient's public key."""
    info = bytes(edk.provider_info)
    # ECDH provider info: 01 || u32 n || recipient || u32 n || sender (format-spec/raw-ecdh.md §2).
    n = int.from_bytes(info[1:5], "big")
    if edk.provider_id in _ECDH_PROVIDER_IDS and n in _COMPRESSED_POINT_LENGTHS and len(info) == 9 + 2 * n:
        return recipient_label(info[5:5 + n])
    if len(info) >= 20 and info[-20:-12] == _RAW_AES_TRAILER:
        info = info[:-20]
    try:
        return info.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(info).decode()


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
