"""The key an encrypted data key names, as its keyring encodes it (format-spec/message.md §7)."""

from __future__ import annotations

import base64

from ..format.header import EncryptedDataKey

__all__ = ["edk_key_name"]

# A raw AES EDK's provider info is key name || tag length (u32) || IV length (u32) || IV (§7.1):
# 4 + 4 + 12 bytes after the name.
_RAW_AES_TRAILER = (128).to_bytes(4, "big") + (12).to_bytes(4, "big")


_ECDH_PROVIDER_IDS = ("raw-ecdh", "aws-kms-ecdh")
_COMPRESSED_POINT_LENGTHS = (33, 49, 67)  # P-256, P-384, P-521 (format-spec/raw-ecdh.md §1)


def edk_key_name(edk: EncryptedDataKey) -> str:
    """A KMS key's ARN, a raw key's name (without the raw AES IV), or an ECDH recipient as
    ``recipient:<base64 compressed point>``; undecodable names as ``base64:...``. For showing and
    choosing keys, never for trusting them."""
    info = bytes(edk.provider_info)
    # ECDH provider info: 01 || u32 n || recipient || u32 n || sender (format-spec/raw-ecdh.md §2).
    n = int.from_bytes(info[1:5], "big")
    if edk.provider_id in _ECDH_PROVIDER_IDS and n in _COMPRESSED_POINT_LENGTHS and len(info) == 9 + 2 * n:
        return "recipient:" + base64.b64encode(info[5:5 + n]).decode()
    if len(info) >= 20 and info[-20:-12] == _RAW_AES_TRAILER:
        info = info[:-20]
    try:
        return info.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(info).decode()
