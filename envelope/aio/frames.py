"""Batched frame work for the async stream driver: whole frames sealed or opened several per call
(one output buffer and one sink write per batch, not per frame), straight from the source's
chunks and into one reused buffer. Every call here is synchronous; a stream makes them all from
its worker thread (segment.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ..format.body import FINAL_FRAME_OVERHEAD, FRAME_OVERHEAD
from ..streaming.decryptor import MessageDecryptor
from ..streaming.encryptor import MessageEncryptor
from .buffers import Outputs

__all__ = ["FrameOpener", "FrameSealer"]

Buffer = bytes | bytearray | memoryview


class FrameSealer:
    """Gathers plaintext chunks into whole frames and seals them in batches.

    ``bytes`` chunks, and chunks the caller lends (``owned``), are held by reference, so a frame
    that lies inside one chunk is sealed without a copy; other buffers are copied when held,
    since their owner may reuse them once the chunk is handed over. A lent chunk goes back
    through ``release`` once every frame that reads it is sealed. The last 1..frame_length
    bytes are always held back: only `finish` knows which frame is final (format-spec §5.4).
    """

    def __init__(self, encryptor: MessageEncryptor, outputs: Outputs,
                 release: Callable[[Buffer], None] | None = None) -> None:
        if not encryptor.frame_length:
            raise ValueError("FrameSealer needs a framed message")
        self._encryptor = encryptor
        self._n = encryptor.frame_length
        self._release = release
        self._pieces: deque[tuple[memoryview, Buffer | None]] = deque()  # (bytes left, lent chunk)
        self._used: list[Buffer] = []  # lent chunks fully taken, released once sealed
        self.held = 0
        self._gather = bytearray()  # a frame that straddles chunks
        self._outputs = outputs

    def hold(self, chunk: Buffer, owned: bool = False) -> None:
        """Take a chunk of plaintext (on the caller's thread: this never seals)."""
        if not len(chunk):
            if owned and self._release is not None:
                self._release(chunk)
            return
        if owned:
            self._pieces.append((memoryview(chunk).cast("B"), chunk))
        else:
            self._pieces.append((memoryview(chunk if type(chunk) is bytes else bytes(chunk)).cast("B"), None))
        self.held += len(chunk)

    @property
    def ready(self) -> int:
        """Whole frames that `seal` may seal now."""
        return (self.held - 1) // self._n if self.held else 0

    def _take(self, n: int) -> memoryview | bytearray:
        """The next ``n`` held bytes: a view if they lie in one piece, else gathered (a copy)."""
        self.held -= n
        first, lent = self._pieces[0]
        if len(first) >= n:
            if len(first) == n:
                self._pieces.popleft()
                if lent is not None:
                    self._used.append(lent)
            else:
                self._pieces[0] = (first[n:], lent)
            return first[:n]
        gather = self._gather
        gather.clear()
        while len(gather) < n:
            piece, lent = self._pieces.popleft()
            need = n - len(gather)
            gather += piece[:need]
            if len(piece) > need:
                self._pieces.appendleft((piece[need:], lent))
            elif lent is not None:
                self._used.append(lent)
        return gather

    def _sealed(self) -> None:
        """The frames taken so far are sealed: lend back the chunks they used up."""
        if self._release is not None:
            for chunk in self._used:
                self._release(chunk)
        self._used.clear()

    def seal(self, count: int) -> bytes | memoryview:
        """Seal ``count`` regular frames (at most `ready`); return their bytes."""
        if count > self.ready:
            raise RuntimeError("envelope: internal error: sealing frames that are not held")
        n = self._n
        buffer = self._outputs.take(count * (n + FRAME_OVERHEAD))
        out = memoryview(buffer)
        size = 0
        for _ in range(count):
            size += self._encryptor.seal_frame_into(self._take(n), out[size:])
            self._sealed()
        out.release()
        return self._outputs.result(buffer, size)

    def finish(self) -> bytes | memoryview:
        """Seal what is held: the remaining regular frames, the final frame and (signed suites)
        the footer."""
        encryptor = self._encryptor
        n = self._n
        count = self.ready
        buffer = self._outputs.take(count * (n + FRAME_OVERHEAD) + n + FINAL_FRAME_OVERHEAD + encryptor.footer_size)
        out = memoryview(buffer)
        size = 0
        for _ in range(count):
            size += encryptor.seal_frame_into(self._take(n), out[size:])
            self._sealed()
        last = self._take(self.held) if self.held else b""
        size += encryptor.seal_final_into(last, out[size:])
        self._sealed()
        out.release()
        return self._outputs.result(buffer, size)


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
