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

    # The encryption context's reads (§4.3); the header parser works on offsets (header.py).

    def u16(self) -> int:
        start = self.offset
        if start + 2 > self._size:
            raise Incomplete(start + 2)
        self.offset = start + 2
        return _U16.unpack_from(self._buf, start)[0]  # type: ignore[no-any-return]

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


def decode_utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{what} is not valid UTF-8") from None
