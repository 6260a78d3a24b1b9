"""The frame batcher: whole regular frames sealed several per call into one output buffer (one
sink write per batch, not per frame), straight from the caller's buffers, and the final frame
(format-spec/message.md §5.3, §5.4) sealed where it belongs.

`seal_run` seals frames lying back to back in one buffer: the sync driver's one-thread loop and
the threaded pipeline (pipeline.py) read whole frames into reused buffers and seal them so.
`FrameSealer` gathers frames from chunks of any size first, then seals them the same way: the
sync driver over an iterable (or a file without ``readinto``), the sync `Encryptor` file object
(fileobj.py) and the async driver's stream path (envelope.aio.streams). Every call here is
synchronous.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ..format.body import FINAL_FRAME_OVERHEAD, FRAME_OVERHEAD
from .buffers import Outputs
from .encryptor import MessageEncryptor

__all__ = ["FrameSealer", "seal_run"]

Buffer = bytes | bytearray | memoryview


def seal_run(encryptor: MessageEncryptor, data: Buffer, count: int, out: memoryview, *, last: bool) -> int:
    """Seal the first ``count`` bytes of ``data`` as whole regular frames into ``out``; return the
    bytes written. With ``last``, the final frame ends them: the bytes after the last whole frame,
    or a full final frame when ``count`` is a multiple of the frame length (§5.4), and (signed
    suites) the footer. Without it, ``count`` is a multiple of the frame length."""
    n = encryptor.frame_length
    regular = count // n
    if last and regular and count % n == 0:
        regular -= 1
    if regular == 1 and not last and len(data) == n:
        return encryptor.seal_frame_into(data, out)  # one frame, as the one-thread loop seals them
    view = memoryview(data)
    size = 0
    seal = encryptor.seal_frame_into
    for index in range(regular):
        size += seal(view[index * n:(index + 1) * n], out[size:])
    if last:
        size += encryptor.seal_final_into(view[regular * n:count], out[size:])
    return size


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

    def _seal_held(self, count: int, out: memoryview) -> int:
        """Seal ``count`` held regular frames into ``out``: frames lying in one chunk straight from
        it, one frame per call (a run of them could span chunks), lent chunks released as used."""
        n, size = self._n, 0
        for _ in range(count):
            size += seal_run(self._encryptor, self._take(n), n, out[size:], last=False)
            self._sealed()
        return size

    def seal(self, count: int) -> bytes | memoryview:
        """Seal ``count`` regular frames (at most `ready`); return their bytes."""
        if count > self.ready:
            raise RuntimeError("envelope: internal error: sealing frames that are not held")
        n = self._n
        buffer = self._outputs.take(count * (n + FRAME_OVERHEAD))
        out = memoryview(buffer)
        size = self._seal_held(count, out)
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
        size = self._seal_held(count, out)
        last = self._take(self.held) if self.held else bytearray()
        size += seal_run(encryptor, last, len(last), out[size:], last=True)
        self._sealed()
        out.release()
        return self._outputs.result(buffer, size)
