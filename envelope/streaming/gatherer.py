"""The frame gatherer: message bytes arriving in reads or chunks of any size reach the decryptor
as whole frames (format-spec/message.md §5.3), straight from the input where a frame lies inside
one read, through one reused straddle buffer where it does not.

`UnitReader` fills buffers with whole frames from a source with ``readinto``, handing a pipe's
complete frames over early: the threaded pipeline's reader thread (pipeline.Reader, which
envelope.aio's file reader runs too), the sync driver's one-thread encrypt and decrypt (sync.py)
and its `Decryptor` (fileobj.py). `FrameOpener` feeds such buffers, or chunks of any size, to the
decryptor and decrypts into reused output buffers: the sync driver's one-thread decrypt over
files and iterables, its `Decryptor`, and the async driver's stream path (envelope.aio.streams).
The decryptor's own buffer is the last resort for what nobody aligned (frames larger than
limits.MAX_ALIGNED_UNIT, gathered from capped reads so that memory follows the bytes that arrive,
and non-framed bodies).
"""

from __future__ import annotations

from typing import Any

from .buffers import Outputs
from .decryptor import MessageDecryptor

__all__ = ["FrameOpener", "UnitReader"]

Buffer = bytes | bytearray | memoryview


class UnitReader:
    """Fills the caller's buffers from a binary source with whole units (frames, §5.3).

    A regular file fills every buffer. A pipe hands over early, at a unit boundary, whenever a
    read comes up short: a slow producer's frames then move on as soon as they are complete
    instead of waiting for a whole buffer; the partial unit after that boundary (less than one
    unit) is carried into the next buffer. With ``unit`` 0 a buffer is filled until it is full
    or the input ends (what a reader that wants an exact count of bytes needs).
    """

    def __init__(self, source: Any, unit: int = 0, offset: int = 0) -> None:
        """:param source: has ``readinto1`` or ``readinto``.
        :param offset: bytes of the first unit already held elsewhere: the first buffer ends
            that many bytes short, so that unit boundaries fall where the consumer expects."""
        # readinto1 makes at most one system read, so a buffered pipe returns what it has
        # instead of blocking until the whole request is filled.
        self._readinto = getattr(source, "readinto1", None) or source.readinto
        self._carry = bytearray()  # the start of a unit read after the last hand-over
        self.align(unit, offset)

    def align(self, unit: int, offset: int = 0) -> None:
        """From the next `fill` on, hand over at boundaries of ``unit`` bytes (see __init__)."""
        if self._carry:  # pragma: no cover - callers align before reading any unit
            raise RuntimeError("envelope: internal error: aligning with a partial unit held")
        self._unit = unit
        self._offset = offset

    def fill(self, buffer: memoryview) -> tuple[int, bool]:
        """Read into ``buffer``: (bytes in it, whether the input has ended)."""
        offset, self._offset = self._offset, 0
        want = len(buffer) - offset
        carry = self._carry
        total = len(carry)
        if total:
            buffer[:total] = carry
            carry.clear()
        unit, readinto = self._unit, self._readinto
        while total < want:
            n = readinto(buffer[total:want])
            if not n:
                return total, True
            total += n
            if not unit or total == want or n == want - (total - n):
                continue  # a full read: the buffer fills on
            boundary = total - (total + offset) % unit
            if boundary > 0:  # a short read after at least one whole unit: hand them over now
                carry += buffer[boundary:total]  # less than one unit
                return boundary, False
        return total, False


class FrameOpener:
    """Feeds message bytes to a decryptor and returns the authenticated plaintext, decrypted
    into an output buffer (zero-copy input when a chunk holds whole frames).

    Given ``unit`` (a regular frame's size on the wire, format-spec §5.3), chunks are split at
    frame boundaries and a frame that straddles chunks is gathered in one reused buffer, so
    the decryptor is fed whole frames: fed the chunks as they come, it would copy each
    straddling frame twice, into fresh memory (an async iterator's 1 MiB chunks against 1 MiB
    frames: every frame; ~25 ms of GIL-held CPU per 256 MiB). The decryptor takes any split,
    so the boundaries only decide copies, never what is authenticated or released; gathered
    bytes (less than a unit) reach the decryptor at the next boundary or in `finish`.
    """

    def __init__(self, decryptor: MessageDecryptor, outputs: Outputs, unit: int = 0) -> None:
        """:param unit: gather frames of this size (0: feed chunks as they come)."""
        self._decryptor = decryptor
        self._outputs = outputs
        self._unit = unit
        self._due = unit  # bytes from the last frame boundary to the next
        self._frame: memoryview | None = None  # the straddling frame, allocated when first needed
        self._filled = 0

    def start(self) -> bytes | memoryview:
        """The plaintext of the body bytes that came with the header (call first)."""
        out = self.open(b"")
        # The decryptor now holds the start of the next frame (the rest of the body bytes that
        # came with the header): the first boundary is where it wants its frame to end. Past
        # the last frame the hint is not a frame's rest; what is left then is short anyway.
        due = self._decryptor.size_hint()
        self._due = due if 0 < due <= self._unit else self._unit
        return out

    def open(self, *chunks: Buffer) -> bytes | memoryview:
        """The plaintext of ``chunks``, fed in order, in one buffer (one write for the sink)."""
        decryptor = self._decryptor
        size = sum(len(chunk) for chunk in chunks) + self._filled
        buffer = self._outputs.take(decryptor.output_bound(size))
        out = memoryview(buffer)
        n = 0
        for chunk in chunks:
            n += self._feed(chunk, out[n:]) if self._unit else decryptor.update_into(chunk, out[n:])
        out.release()
        return self._outputs.result(buffer, n)

    def finish(self) -> bytes | memoryview:
        """The plaintext of the bytes still gathered, once the input has ended."""
        if not self._filled or self._frame is None:
            return b""
        buffer = self._outputs.take(self._decryptor.output_bound(self._filled))
        out = memoryview(buffer)
        n = self._decryptor.update_into(self._frame[:self._filled], out)
        self._filled = 0
        out.release()
        return self._outputs.result(buffer, n)

    def _feed(self, chunk: Buffer, out: memoryview) -> int:
        """Feed ``chunk`` up to its last frame boundary, completing a gathered frame first;
        gather the bytes after that boundary. Returns the plaintext bytes written to ``out``."""
        decryptor, unit = self._decryptor, self._unit
        view = memoryview(chunk).cast("B")
        if not len(view):
            return decryptor.update_into(view, out)  # may release what the decryptor holds
        n = 0
        if self._filled:
            frame = self._frame
            if frame is None:  # pragma: no cover - _filled counts bytes in the frame
                raise RuntimeError("envelope: internal error: gathered bytes without a buffer")
            take = min(self._due - self._filled, len(view))
            frame[self._filled:self._filled + take] = view[:take]
            self._filled += take
            if self._filled < self._due:
                return 0
            view = view[take:]
            n = decryptor.update_into(frame[:self._due], out)
            self._filled, self._due = 0, unit
        if len(view) >= self._due:
            whole = self._due + (len(view) - self._due) // unit * unit
            n += decryptor.update_into(view[:whole], out[n:])
            view = view[whole:]
            self._due = unit
        if len(view):
            if self._frame is None:
                self._frame = memoryview(bytearray(unit))
            self._frame[:len(view)] = view
            self._filled = len(view)
        return n
