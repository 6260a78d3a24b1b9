"""A bounds-checked cursor over bytes that may still be arriving.

It never allocates more than the caller's buffer holds, and reports how many bytes it still needs
so an incremental parser can wait for them instead of re-parsing on every byte.
"""

from __future__ import annotations

import struct

from ..errors import FormatError


class Incomplete(Exception):
    """Raised by `Reader` when the buffer ends before the field does.

    :ivar needed: the smallest total buffer length that could let parsing progress.
    """

    def __init__(self, needed: int) -> None:
        super().__init__(needed)
        self.needed = needed


class Reader:
    """Sequential big-endian reads from a buffer (format-spec/message.md §1)."""

    __slots__ = ("_buf", "_size", "offset")

    def __init__(self, buf: bytes | bytearray | memoryview, offset: int = 0) -> None:
        self._buf = memoryview(buf).cast("B") if not isinstance(buf, bytes) else buf
        self._size = len(self._buf)  # in bytes, whatever the item size of a caller's memoryview
        self.offset = offset

    # Each read checks its own bounds instead of calling a shared helper: a header parse makes
    # about twenty reads, and the extra call per read was a visible part of a small message.

    def take(self, n: int) -> bytes:
        start = self.offset
        end = start + n
        if end > self._size:
            raise Incomplete(end)
        self.offset = end
        return bytes(self._buf[start:end])

    def slice(self, start: int, end: int) -> bytes:
        """Bytes already read, for example a header body to authenticate."""
        return bytes(self._buf[start:end])

    def u8(self) -> int:
        start = self.offset
        if start >= self._size:
            raise Incomplete(start + 1)
        self.offset = start + 1
        return self._buf[start]

    def u16(self) -> int:
        start = self.offset
        if start + 2 > self._size:
            raise Incomplete(start + 2)
        self.offset = start + 2
        return _U16.unpack_from(self._buf, start)[0]  # type: ignore[no-any-return]

    def u32(self) -> int:
        start = self.offset
        if start + 4 > self._size:
            raise Incomplete(start + 4)
        self.offset = start + 4
        return _U32.unpack_from(self._buf, start)[0]  # type: ignore[no-any-return]

    def u64(self) -> int:
        start = self.offset
        if start + 8 > self._size:
            raise Incomplete(start + 8)
        self.offset = start + 8
        return _U64.unpack_from(self._buf, start)[0]  # type: ignore[no-any-return]

    def u16_bytes(self) -> bytes:
        """A UInt16 length followed by that many bytes."""
        start = self.offset
        if start + 2 > self._size:
            raise Incomplete(start + 2)
        end = start + 2 + _U16.unpack_from(self._buf, start)[0]
        if end > self._size:
            raise Incomplete(end)
        self.offset = end
        return bytes(self._buf[start + 2:end])


_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def decode_utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{what} is not valid UTF-8") from None
