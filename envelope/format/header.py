"""Message header: encrypted data keys, header body layouts v1 and v2 (format-spec/message.md §4).

`parse_header` checks structure and limits only. It does not verify the header authentication tag
or the key commitment; nothing parsed here may be trusted until the streaming layer has.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field

from ..errors import FormatError, PolicyError
from .context import parse_context, serialize_context
from .reader import Incomplete, Reader, decode_utf8
from .suites import AlgorithmSuite

__all__ = [
    "ContentType",
    "DEFAULT_MAX_HEADER_LENGTH",
    "EncryptedDataKey",
    "Header",
    "HeaderScanner",
    "ParsedHeader",
    "parse_header",
    "serialize_header_auth",
    "serialize_header_body",
]

# §9: a header may not exceed this many bytes unless the caller raises the limit. It bounds what
# an incremental parser buffers before it can authenticate anything.
DEFAULT_MAX_HEADER_LENGTH = 4 * 1024 * 1024
IV_LENGTH = 12
TAG_LENGTH = 16
_V1_TYPE = 0x80
_BASE64_HINT = "the input looks base64-encoded; decode it to binary first (for example: base64 -d)"


class ContentType(enum.IntEnum):
    """Body layout (format-spec/message.md §5)."""

    NON_FRAMED = 0x01
    FRAMED = 0x02


@dataclass(frozen=True, slots=True)
class EncryptedDataKey:
    """One wrapped copy of the data key: who can unwrap it and the wrapped bytes (§4.4)."""

    provider_id: str
    provider_info: bytes
    ciphertext: bytes

    def serialize(self) -> bytes:
        pid = self.provider_id.encode("utf-8")
        info, ciphertext = self.provider_info, self.ciphertext
        if len(pid) > 0xFFFF or len(info) > 0xFFFF or len(ciphertext) > 0xFFFF:
            name = "provider id" if len(pid) > 0xFFFF else "provider info" if len(info) > 0xFFFF else "ciphertext"
            raise ValueError(f"encrypted data key {name} is longer than 65535 bytes")
        return b"".join((_U16.pack(len(pid)), pid, _U16.pack(len(info)), info, _U16.pack(len(ciphertext)), ciphertext))


@dataclass(frozen=True, slots=True)
class Header:
    """A message header as written on the wire, without its authentication fields.

    ``encryption_context`` is the stored context only: keys a required-encryption-context manager
    kept out of the header are not in it.
    """

    version: int
    algorithm: AlgorithmSuite
    message_id: bytes
    encryption_context: Mapping[str, str]
    encrypted_data_keys: tuple[EncryptedDataKey, ...]
    content_type: ContentType
    frame_length: int
    commitment_key: bytes = b""  # v2 "suite data" (§2.3); empty for v1

    @property
    def is_framed(self) -> bool:
        return self.content_type is ContentType.FRAMED


@dataclass(frozen=True, slots=True)
class ParsedHeader:
    """What `parse_header` found: the header, its exact body bytes and its authentication fields."""

    header: Header
    body: bytes = field(repr=False)  # exact bytes authenticated by the header tag (§4.5)
    auth_iv: bytes  # v1: as serialized; v2: twelve zero bytes
    auth_tag: bytes
    length: int  # bytes consumed, header body plus authentication


def serialize_header_body(header: Header) -> bytes:
    """Serialize the header body (everything the header authentication tag covers, §4.1/§4.2)."""
    suite = header.algorithm
    if suite.message_format_version != header.version:
        raise ValueError(f"{suite.name} is written with message format version {suite.message_format_version}")
    ec = serialize_context(header.encryption_context)
    edks = header.encrypted_data_keys
    if not edks:
        raise ValueError("a message needs at least one encrypted data key")
    if len(edks) > 0xFFFF:
        raise ValueError("a message holds at most 65535 encrypted data keys")
    edk_bytes = b"".join([edk.serialize() for edk in edks])
    # The fixed-size fields go through struct (one call for several fields), the variable ones are
    # joined around them.
    if header.version == 2:
        return b"".join((_V2_START.pack(2, suite), header.message_id, _U16.pack(len(ec)), ec,
                         _U16.pack(len(edks)), edk_bytes, _V2_END.pack(header.content_type, header.frame_length),
                         header.commitment_key))
    return b"".join((_V1_START.pack(1, _V1_TYPE, suite), header.message_id, _U16.pack(len(ec)), ec,
                     _U16.pack(len(edks)), edk_bytes,
                     _V1_END.pack(header.content_type, IV_LENGTH, header.frame_length)))


_U16 = struct.Struct(">H")
_V2_START = struct.Struct(">BH")  # version, suite id
_V2_END = struct.Struct(">BI")  # content type, frame length
_V1_START = struct.Struct(">BBH")  # version, type, suite id
_V1_END = struct.Struct(">B4xBI")  # content type, reserved (4 zero bytes), IV length, frame length


def serialize_header_auth(version: int, tag: bytes) -> bytes:
    """v1 writes a zero IV before the tag; v2 writes the tag alone (§4.5)."""
    return (bytes(IV_LENGTH) + tag) if version == 1 else tag


def parse_header(buf: bytes | bytearray | memoryview, *,
                 max_encrypted_data_keys: int | None = None,
                 max_header_length: int = DEFAULT_MAX_HEADER_LENGTH) -> ParsedHeader:
    """Parse a header and its authentication fields from the start of ``buf``.

    :raises Incomplete: ``buf`` ends before the header does (``.needed`` says how far it must grow).
    :raises FormatError: the bytes are not a valid header, or exceed a limit.
    :raises PolicyError: more encrypted data keys than ``max_encrypted_data_keys`` (checked as soon
        as the count is read, before any key is parsed).
    """
    try:
        parsed = _parse(Reader(buf), max_encrypted_data_keys)
    except Incomplete as incomplete:
        if incomplete.needed > max_header_length:
            raise FormatError(f"message header is longer than the {max_header_length}-byte limit") from None
        raise
    if parsed.length > max_header_length:
        raise FormatError(f"message header is longer than the {max_header_length}-byte limit")
    return parsed


# Wire id -> member by plain dict lookup: calling an enum class with a value costs several times
# more, and every message header does it.
_SUITES: dict[int, AlgorithmSuite] = {int(suite): suite for suite in AlgorithmSuite}
_CONTENT_TYPES: dict[int, ContentType] = {int(kind): kind for kind in ContentType}


def _parse(r: Reader, max_edks: int | None) -> ParsedHeader:
    version = r.u8()
    if version == 1:
        if r.u8() != _V1_TYPE:
            raise FormatError("unknown message type in a version 1 header")
        id_length = 16
    elif version == 2:
        id_length = 32
    elif version == 0x41:  # 'A': "AY" or "Ag" is how a v1 or v2 message starts in base64 (§10)
        raise FormatError("not an envelope message: unsupported version 0x41", hint=_BASE64_HINT)
    else:
        raise FormatError(f"not an envelope message: unsupported version 0x{version:02x}")
    suite_id = r.u16()
    suite = _SUITES.get(suite_id)
    if suite is None:
        raise FormatError(f"unknown algorithm suite 0x{suite_id:04x}")
    if suite.message_format_version != version:
        raise FormatError(f"algorithm suite {suite.name} may not appear in a version {version} header")
    message_id = r.take(id_length)
    context = parse_context(r.u16_bytes())
    edk_count = r.u16()
    if edk_count == 0:
        raise FormatError("header has no encrypted data keys")
    if max_edks is not None and edk_count > max_edks:
        raise PolicyError(f"message has {edk_count} encrypted data keys; the limit is {max_edks}")
    edks = []
    for _ in range(edk_count):
        provider_id = decode_utf8(r.u16_bytes(), "an encrypted data key provider id")
        edks.append(EncryptedDataKey(provider_id, r.u16_bytes(), r.u16_bytes()))
    content_type = _CONTENT_TYPES.get(r.u8())
    if content_type is None:
        raise FormatError("unknown content type")
    if version == 1:
        if r.take(4) != b"\x00\x00\x00\x00":
            raise FormatError("reserved header bytes are not zero")
        if r.u8() != IV_LENGTH:
            raise FormatError("header IV length is not 12")
    frame_length = r.u32()
    commitment_key = r.take(32) if version == 2 and suite.is_committing else b""
    if content_type is ContentType.FRAMED and frame_length == 0:
        raise FormatError("framed message with frame length 0")
    if content_type is ContentType.NON_FRAMED and frame_length != 0:
        raise FormatError("non-framed message with a non-zero frame length")
    body_end = r.offset
    auth_iv = r.take(IV_LENGTH) if version == 1 else bytes(IV_LENGTH)
    auth_tag = r.take(TAG_LENGTH)
    header = Header(version, suite, message_id, context, tuple(edks), content_type, frame_length, commitment_key)
    body = r.slice(0, body_end)
    return ParsedHeader(header, body, auth_iv, auth_tag, r.offset)


class HeaderScanner:
    """Finds where a header ends by walking only its length fields, resuming where it stopped.

    An incremental reader asks `scan` after each arrival; only when the whole header is present
    does it run the full `parse_header`, so work stays linear in the header size however the
    bytes are chunked. It checks the limits that bound buffering (header length, EDK count) as
    early as the bytes allow; everything else is left to `parse_header`.
    """

    def __init__(self, *, max_encrypted_data_keys: int | None = None,
                 max_header_length: int = DEFAULT_MAX_HEADER_LENGTH) -> None:
        self._max_edks = max_encrypted_data_keys
        self._max_length = max_header_length
        self._walk = self._fields()
        self.needed = next(self._walk)  # the buffer length at which scanning can go on

    def scan(self, buf: bytes | bytearray | memoryview) -> int | None:
        """Return the full header length once ``buf`` holds it (or once the bytes are invalid, so
        that `parse_header` reports why); None while more bytes are needed."""
        while len(buf) >= self.needed:
            try:
                self.needed = self._walk.send(buf)
            except StopIteration as done:
                length: int = done.value
                return length
            if self.needed > self._max_length:
                raise FormatError(f"message header is longer than the {self._max_length}-byte limit")
        return None

    def _fields(self) -> Generator[int, bytes | bytearray | memoryview, int]:
        buf = yield 1
        version = buf[0]
        if version not in (1, 2):
            return 1  # not a header: parse_header says why
        pos = 2 if version == 1 else 1
        buf = yield pos + 2
        try:
            suite = AlgorithmSuite(int.from_bytes(buf[pos:pos + 2], "big"))
        except ValueError:
            return pos + 2
        pos += 2 + (16 if version == 1 else 32)
        buf = yield pos + 2
        context_end = pos + 2 + int.from_bytes(buf[pos:pos + 2], "big")
        buf = yield context_end + 2
        parse_context(bytes(buf[pos + 2:context_end]))  # a malformed context is reported now, not as truncation
        pos = context_end
        count = int.from_bytes(buf[pos:pos + 2], "big")
        if self._max_edks is not None and count > self._max_edks:
            raise PolicyError(f"message has {count} encrypted data keys; the limit is {self._max_edks}")
        pos += 2
        for _ in range(3 * count):  # provider id, provider info, ciphertext
            buf = yield pos + 2
            pos += 2 + int.from_bytes(buf[pos:pos + 2], "big")
        pos += 1 + (4 + 1 if version == 1 else 0) + 4  # content type, [reserved, IV length], frame length
        pos += 32 if version == 2 and suite.is_committing else 0
        pos += IV_LENGTH + TAG_LENGTH if version == 1 else TAG_LENGTH
        yield pos
        return pos
