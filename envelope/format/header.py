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
from .frozen import cheap_init
from .reader import Incomplete
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


@cheap_init
@dataclass(frozen=True, slots=True)
class EncryptedDataKey:
    """One wrapped copy of the data key: who can unwrap it and the wrapped bytes (§4.4)."""

    provider_id: str
    provider_info: bytes
    ciphertext: bytes

    def serialize(self) -> bytes:
        pid = self.provider_id.encode("utf-8")
        info, ciphertext = self.provider_info, self.ciphertext
        try:  # struct refuses a length beyond UInt16: no separate checks on the way
            return b"".join((_U16.pack(len(pid)), pid, _U16.pack(len(info)), info,
                             _U16.pack(len(ciphertext)), ciphertext))
        except struct.error:
            name = "provider id" if len(pid) > 0xFFFF else "provider info" if len(info) > 0xFFFF else "ciphertext"
            raise ValueError(f"encrypted data key {name} is longer than 65535 bytes") from None


@cheap_init
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


@cheap_init
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
    version = header.version
    if suite.message_format_version != version:
        raise ValueError(f"{suite.name} is written with message format version {suite.message_format_version}")
    ec = serialize_context(header.encryption_context)
    edks = header.encrypted_data_keys
    count = len(edks)
    if not count:
        raise ValueError("a message needs at least one encrypted data key")
    if count > 0xFFFF:
        raise ValueError("a message holds at most 65535 encrypted data keys")
    edk_bytes = edks[0].serialize() if count == 1 else b"".join([edk.serialize() for edk in edks])
    # The fixed-size fields go through struct (one call for several fields), the variable ones are
    # joined around them.
    if version == 2:
        return b"".join((_V2_START.pack(2, suite), header.message_id, _U16.pack(len(ec)), ec,
                         _U16.pack(count), edk_bytes, _V2_END.pack(header.content_type, header.frame_length),
                         header.commitment_key))
    return b"".join((_V1_START.pack(1, _V1_TYPE, suite), header.message_id, _U16.pack(len(ec)), ec,
                     _U16.pack(count), edk_bytes,
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
    # `_parse` slices bytes (cheaper than slicing a memoryview, and a header is a dozen slices).
    # Other buffers are copied: a prefix first, and up to the length limit only if the header is
    # longer than that prefix (a header never needs more).
    if type(buf) is bytes:
        view, data = None, buf
    else:
        view = memoryview(buf).cast("B")
        data = bytes(view[:_FIRST_COPY])
    while True:
        try:
            parsed = _parse(data, max_encrypted_data_keys)
            break
        except Incomplete as incomplete:
            if incomplete.needed > max_header_length:
                raise FormatError(f"message header is longer than the {max_header_length}-byte limit") from None
            if view is None or len(data) == len(view):
                raise
            data = bytes(view[:max_header_length])
    if parsed.length > max_header_length:
        raise FormatError(f"message header is longer than the {max_header_length}-byte limit")
    return parsed


_FIRST_COPY = 64 * 1024
# Wire id -> member by plain dict lookup: calling an enum class with a value costs several times
# more, and every message header does it.
_SUITES: dict[int, AlgorithmSuite] = {int(suite): suite for suite in AlgorithmSuite}
_CONTENT_TYPES: dict[int, ContentType] = {int(kind): kind for kind in ContentType}


def _field_end(buf: bytes, pos: int, size: int) -> int:
    """End of the UInt16-length-prefixed field at ``pos`` (§1); Incomplete if ``buf`` stops short."""
    if pos + 2 > size:
        raise Incomplete(pos + 2)
    end: int = pos + 2 + _U16.unpack_from(buf, pos)[0]
    if end > size:
        raise Incomplete(end)
    return end


def _parse(buf: bytes, max_edks: int | None) -> ParsedHeader:
    # Offsets into ``buf`` with explicit bounds checks, and one struct call per run of fixed-size
    # fields: a header is parsed for every message, and for a small one this was the largest
    # Python cost. Every read still checks its bounds first (Incomplete says how far to grow).
    size = len(buf)
    if not size:
        raise Incomplete(1)
    version = buf[0]
    if version == 2:
        pos = 1
    elif version == 1:
        if size < 2:
            raise Incomplete(2)
        if buf[1] != _V1_TYPE:
            raise FormatError("unknown message type in a version 1 header")
        pos = 2
    elif version == 0x41:  # 'A': "AY" or "Ag" is how a v1 or v2 message starts in base64 (§10)
        raise FormatError("not an envelope message: unsupported version 0x41", hint=_BASE64_HINT)
    else:
        raise FormatError(f"not an envelope message: unsupported version 0x{version:02x}")
    if pos + 2 > size:
        raise Incomplete(pos + 2)
    suite_id = _U16.unpack_from(buf, pos)[0]
    suite = _SUITES.get(suite_id)
    if suite is None:
        raise FormatError(f"unknown algorithm suite 0x{suite_id:04x}")
    info = suite.info
    if info.message_format_version != version:
        raise FormatError(f"algorithm suite {suite.name} may not appear in a version {version} header")
    id_start = pos + 2
    pos = id_start + (32 if version == 2 else 16)
    end = _field_end(buf, pos, size)  # the message id, then the context's length and bytes
    message_id = buf[id_start:pos]
    context = parse_context(buf[pos + 2:end]) if end > pos + 2 else {}
    pos = end + 2
    if pos > size:
        raise Incomplete(pos)
    edk_count = _U16.unpack_from(buf, end)[0]
    if edk_count == 0:
        raise FormatError("header has no encrypted data keys")
    if max_edks is not None and edk_count > max_edks:
        raise PolicyError(f"message has {edk_count} encrypted data keys; the limit is {max_edks}")
    edks = []
    for _ in range(edk_count):
        # provider id, provider info, ciphertext: three UInt16-length-prefixed fields (§4.4),
        # read without a call per field (this loop runs for every message).
        if pos + 2 > size:
            raise Incomplete(pos + 2)
        id_end = pos + 2 + _U16.unpack_from(buf, pos)[0]
        if id_end + 2 > size:
            raise Incomplete(id_end + 2)
        info_end = id_end + 2 + _U16.unpack_from(buf, id_end)[0]
        if info_end + 2 > size:
            raise Incomplete(info_end + 2)
        end = info_end + 2 + _U16.unpack_from(buf, info_end)[0]
        if end > size:
            raise Incomplete(end)
        try:
            provider_id = buf[pos + 2:id_end].decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("an encrypted data key provider id is not valid UTF-8") from None
        edks.append(EncryptedDataKey(provider_id, buf[id_end + 2:info_end], buf[info_end + 2:end]))
        pos = end
    if pos >= size:
        raise Incomplete(pos + 1)
    content_type = _CONTENT_TYPES.get(buf[pos])
    if content_type is None:
        raise FormatError("unknown content type")
    if version == 2:
        # content type, frame length, [commitment key (§2.3)], then the tag alone (§4.5)
        commit_length = 32 if info.committing else 0
        body_end = pos + 5 + commit_length
        length = body_end + TAG_LENGTH
        if length > size:
            raise Incomplete(length)
        frame_length = _U32.unpack_from(buf, pos + 1)[0]
        commitment_key = buf[pos + 5:body_end]
        auth_iv = _ZERO_IV
    else:
        # content type, reserved (4 zero bytes), IV length, frame length, then IV and tag (§4.5)
        body_end = pos + 10
        length = body_end + IV_LENGTH + TAG_LENGTH
        if length > size:
            raise Incomplete(length)
        reserved, iv_length, frame_length = _V1_TAIL.unpack_from(buf, pos + 1)
        if reserved:
            raise FormatError("reserved header bytes are not zero")
        if iv_length != IV_LENGTH:
            raise FormatError("header IV length is not 12")
        commitment_key = b""
        auth_iv = buf[body_end:body_end + IV_LENGTH]
    if frame_length == 0 and content_type is _FRAMED:
        raise FormatError("framed message with frame length 0")
    if frame_length != 0 and content_type is _NON_FRAMED:
        raise FormatError("non-framed message with a non-zero frame length")
    header = Header(version, suite, message_id, context, tuple(edks), content_type, frame_length, commitment_key)
    return ParsedHeader(header, buf[:body_end], auth_iv, buf[length - TAG_LENGTH:length], length)


_U32 = struct.Struct(">I")
_FRAMED, _NON_FRAMED = ContentType.FRAMED, ContentType.NON_FRAMED  # globals: cheaper than Enum class reads
_V1_TAIL = struct.Struct(">IBI")  # reserved, IV length, frame length
_ZERO_IV = bytes(IV_LENGTH)  # v2 headers carry no IV: it is all zeros (§4.5)


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
