"""Encryption-context encoding (format-spec/message.md §4.3).

Parsing checks the encoding rules (sorted, unique, UTF-8); it does not authenticate the context.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from ..errors import FormatError
from .reader import Incomplete, Reader, decode_utf8

__all__ = ["RESERVED_PREFIX", "ENVELOPE_PREFIX", "parse_context", "serialize_context"]

RESERVED_PREFIX = "aws-crypto-"  # keys the SDK itself writes; callers may not (§4.3)
ENVELOPE_PREFIX = "envelope:"  # our authenticated extensions (§8)
MAX_SERIALIZED = 0xFFFF
_U16 = struct.Struct(">H")


def serialize_context(context: Mapping[str, str]) -> bytes:
    """Serialize a context: empty map -> b""; else count, then entries sorted by UTF-8 key bytes.

    :raises TypeError: a key or value is not a str.
    :raises ValueError: the serialization exceeds 65535 bytes.
    """
    if not context:
        return b""
    entries: list[tuple[bytes, bytes]] = []
    for key, value in context.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("encryption context keys and values must be str")
        entries.append((key.encode("utf-8"), value.encode("utf-8")))
    entries.sort()  # by key bytes: the keys are distinct, so the values never decide the order
    if len(entries) > 0xFFFF:
        raise ValueError("encryption context has more than 65535 entries")
    parts = [_U16.pack(len(entries))]
    for k, v in entries:
        if len(k) > 0xFFFF or len(v) > 0xFFFF:
            raise ValueError("an encryption context key or value is longer than 65535 bytes")
        parts += (_U16.pack(len(k)), k, _U16.pack(len(v)), v)
    out = b"".join(parts)
    if len(out) > MAX_SERIALIZED:
        raise ValueError(f"serialized encryption context is {len(out)} bytes; the limit is 65535")
    return out


def parse_context(raw: bytes) -> dict[str, str]:
    """Parse a complete serialized context (the bytes after the header's aadLen field).

    :raises FormatError: bad count, truncation, trailing bytes, duplicate keys, bad UTF-8.
    """
    if not raw:
        return {}
    reader = Reader(raw)
    try:
        count = reader.u16()
        if count == 0:
            raise FormatError("encryption context has a zero entry count but a non-zero length")
        out: dict[str, str] = {}
        for _ in range(count):
            key = decode_utf8(reader.u16_bytes(), "an encryption context key")
            value = decode_utf8(reader.u16_bytes(), "an encryption context value")
            # Writers sort by UTF-8 bytes; readers accept any order (other languages sort by their
            # own string order) but never a duplicate key (format-spec/message.md §4.3).
            if key in out:
                raise FormatError("encryption context has a duplicate key")
            out[key] = value
    except Incomplete:
        raise FormatError("encryption context is truncated") from None
    if reader.offset != len(raw):
        raise FormatError("encryption context has trailing bytes")
    return out
