"""Body framing: frame layouts, IVs and the body AAD (format-spec/message.md §5, §6).

These helpers only lay out bytes; sealing and opening happen in envelope.crypto and the
streaming layer.
"""

from __future__ import annotations

import enum
import struct

__all__ = [
    "FINAL_FRAME_MARKER",
    "FRAME_OVERHEAD",
    "FINAL_FRAME_OVERHEAD",
    "MAX_FRAMES",
    "MAX_REGULAR_SEQUENCE",
    "MAX_FRAME_LENGTH",
    "MAX_NON_FRAMED_LENGTH",
    "BodyKind",
    "body_aad",
    "frame_iv",
    "footer",
]

FINAL_FRAME_MARKER = b"\xff\xff\xff\xff"
MAX_FRAMES = 0xFFFFFFFF  # the final frame may carry sequence number 2^32-1 (§9)
MAX_REGULAR_SEQUENCE = 0xFFFFFFFE  # a regular frame's number may not look like the final-frame marker
MAX_FRAME_LENGTH = 0xFFFFFFFF
MAX_NON_FRAMED_LENGTH = 2**36 - 32  # GCM's limit for one invocation (§5.5)
FRAME_OVERHEAD = 4 + 12 + 16  # seq ‖ IV ‖ … ‖ tag
FINAL_FRAME_OVERHEAD = 4 + 4 + 12 + 4 + 16  # marker ‖ seq ‖ IV ‖ length ‖ … ‖ tag


class BodyKind(bytes, enum.Enum):
    """The content strings of the body AAD (§5.1)."""

    FRAME = b"AWSKMSEncryptionClient Frame"
    FINAL_FRAME = b"AWSKMSEncryptionClient Final Frame"
    SINGLE_BLOCK = b"AWSKMSEncryptionClient Single Block"


_SEQUENCE_AND_LENGTH = struct.Struct(">IQ")
_IV = struct.Struct(">8xI")


def body_aad(message_id: bytes, kind: BodyKind, sequence_number: int, length: int) -> bytes:
    """messageID ‖ content string ‖ seqNum(4) ‖ plaintext length(8) (§5.1)."""
    # BodyKind members are bytes: adding one adds its content string (no slower `.value` lookup).
    return message_id + kind + _SEQUENCE_AND_LENGTH.pack(sequence_number, length)


def frame_iv(sequence_number: int) -> bytes:
    """Eight zero bytes ‖ seqNum(4): deterministic, unique per frame of one message key (§5.2)."""
    return _IV.pack(sequence_number)


def footer(signature: bytes) -> bytes:
    """sigLen(2) ‖ DER signature (§6)."""
    if len(signature) > 0xFFFF:
        raise ValueError("signature longer than 65535 bytes")
    return len(signature).to_bytes(2, "big") + signature
