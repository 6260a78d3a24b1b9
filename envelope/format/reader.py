"""A bounds-checked cursor over bytes that may still be arriving.

It never allocates more than the caller's buffer holds, and reports how many bytes it still needs
so an incremental parser can wait for them instead of re-parsing on every byte.
"""

from __future__ import annotations

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

    __slots__ = ("_buf", "offset")

    def __init__(self, buf: bytes | bytearray | memoryview, offset: int = 0) -> None:
        self._buf = memoryview(buf)
        self.offset = offset

    def take(self, n: int) -> bytes:
        end = self.offset + n
        if end > len(self._buf):
            raise Incomplete(end)
        out = bytes(self._buf[self.offset:end])
        self.offset = end
        return out

    def slice(self, start: int, end: int) -> bytes:
        """Bytes already read, for example a header body to authenticate."""
        return bytes(self._buf[start:end])

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def u8(self) -> int:
        return self.uint(1)

    def u16(self) -> int:
        return self.uint(2)

    def u32(self) -> int:
        return self.uint(4)

    def u64(self) -> int:
        return self.uint(8)

    def u16_bytes(self) -> bytes:
        """A UInt16 length followed by that many bytes."""
        return self.take(self.u16())


def decode_utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{what} is not valid UTF-8") from None
