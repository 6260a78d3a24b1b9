"""The frame walker: checks a body's framing as its bytes pass by, without opening a frame
(format-spec/message.md §5; operations.md §2.2 step 3).

Rewrap copies a body it does not decrypt: the tags stay whatever they are (a tampered frame
fails when the message is decrypted), but the copy must not hide a truncated, reordered or
extended body behind a fresh header. The walker follows the frame fields (sequence numbers, the
final-frame marker and the final frame's length) through chunks of any size, and says where
the body ends, so that what follows is the footer (signed suites) or trailing data. It holds at
most the 24 bytes of one frame's fields, whatever the chunks and the frame length.
"""

from __future__ import annotations

import struct

from ..crypto.aead import TAG_LENGTH
from ..errors import AuthenticationError, FormatError
from ..format.body import FINAL_FRAME_MARKER, FRAME_OVERHEAD, MAX_FRAMES

__all__ = ["FrameWalker"]

Buffer = bytes | bytearray | memoryview

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_REGULAR_FIELDS = 4  # a regular frame's sequence number, or the final frame's marker (§5.3, §5.4)
_FINAL_FIELDS = 4 + 4 + 12 + 4  # marker, sequence number, IV, content length (§5.4)
_SINGLE_FIELDS = 12 + 8  # a non-framed body's IV and content length (§5.2)


class FrameWalker:
    """Feed the body's bytes in order with `feed`; `done` once the body has ended."""

    def __init__(self, frame_length: int) -> None:
        self._frame_length = frame_length
        self._sequence = 1
        self._skip = 0  # bytes of the current frame past its fields (content and tag)
        self._fields = bytearray()  # the current frame's fields, gathered when a chunk splits them
        self._need = _REGULAR_FIELDS if frame_length else _SINGLE_FIELDS
        self._final = False  # the fields being gathered (or skipped past) are the last ones
        self.done = False

    def feed(self, data: Buffer) -> int:
        """Walk ``data``; return how many of its bytes belong to the body (all of them until the
        body ends, then the rest is what follows it).

        :raises AuthenticationError: a frame is missing, out of order or past the last sequence number.
        :raises FormatError: the final frame claims more than a frame's length.
        """
        view = memoryview(data).cast("B")
        size = len(view)
        pos = 0
        while pos < size and not self.done:
            if self._skip:
                step = min(self._skip, size - pos)
                pos += step
                self._skip -= step
                self.done = not self._skip and self._final
                continue
            if not self._fields and size - pos >= self._need:
                fields: Buffer = view[pos:pos + self._need]  # the usual case: no copy
                pos += self._need
            else:  # the fields are split across chunks: gather them
                take = min(self._need - len(self._fields), size - pos)
                self._fields += view[pos:pos + take]
                pos += take
                if len(self._fields) < self._need:
                    break
                fields = bytes(self._fields)
            self._fields = bytearray()
            self._walk(fields)
        return pos

    def _walk(self, fields: Buffer) -> None:
        """The fields of the next frame are complete: check them, and skip what follows them."""
        frame_length = self._frame_length
        if not frame_length:  # §5.2: IV, length, then the content and the tag
            self._final = True
            self._skip = _U64.unpack_from(fields, 12)[0] + TAG_LENGTH
            return
        if self._need == _REGULAR_FIELDS:
            if bytes(fields) == FINAL_FRAME_MARKER:
                # The final frame's fields start with the marker: gather the rest of them.
                self._need = _FINAL_FIELDS
                self._fields = bytearray(FINAL_FRAME_MARKER)
                return
            if _U32.unpack_from(fields)[0] != self._sequence:
                raise AuthenticationError(f"frame {self._sequence} is missing or out of order")
            self._sequence += 1
            self._skip = frame_length + FRAME_OVERHEAD - _REGULAR_FIELDS
            return
        # The final frame's marker, sequence number, IV and length (§5.4).
        if _U32.unpack_from(fields, 4)[0] != self._sequence or self._sequence > MAX_FRAMES:
            raise AuthenticationError(f"frame {self._sequence} is missing or out of order")
        length = _U32.unpack_from(fields, 20)[0]
        if length > frame_length:
            raise FormatError(f"final frame is longer ({length}) than the frame length ({frame_length})")
        self._final = True
        self._skip = length + TAG_LENGTH
