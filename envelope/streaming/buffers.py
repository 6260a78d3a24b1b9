"""The buffer pools of the streaming drivers: where frames are read into and sealed or opened into.

Three lending disciplines over one idea, a few reused bytearrays instead of fresh memory per frame:

- `Pool`: the threaded pipeline's (pipeline.py; and envelope.aio's file reader, which runs it).
  Every user gives its buffer back explicitly with `Pool.put` once the next stage is done with
  it; at most `limits.POOL_DEPTH` buffers exist, so a stage that runs ahead waits, and memory
  stays a few hand-offs (format-spec/message.md §9: memory follows the data, never a claim).
- `Outputs`: the output batches of the batcher and the gatherer (batcher.FrameSealer,
  gatherer.FrameOpener) wherever they run: the async driver (envelope.aio.streams), the sync
  driver's iterable paths and one-thread decrypt, its `Encryptor` and `Decryptor` (fileobj.py). A
  batch is lent to a file-like sink's ``write``, which, like `io.RawIOBase.write`, must not keep
  what it is given, and is reclaimed only once nothing else holds a view of it; stream sinks
  (``send``), which may keep every item, get fresh ``bytes``.
- `Scratch`: buffers lent for one synchronous step and kept while idle, up to
  `limits.SCRATCH_KEEP_BYTES`: ranged reads (ranged.py, which `decrypt_range`, a `Decryptor`
  after `seek` and envelope.aio's ranged reads run) read frames into them and open them there.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from .limits import POOL_DEPTH

__all__ = ["Outputs", "Pool", "Scratch"]


class Pool:
    """Up to `POOL_DEPTH` buffers of ``size`` bytes, allocated only when needed, so memory
    follows the data (a short message never pays for a full pool of large frames)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._made = 0
        self.free: queue.Queue[Any] = queue.Queue()

    def take(self, check: Callable[[], None] | None = None) -> Any:
        """A free buffer (a memoryview of ``size`` bytes); with all in use, wait for one, calling
        ``check`` meanwhile (it raises another stage's error instead of waiting forever)."""
        try:
            return self.free.get_nowait()
        except queue.Empty:
            pass
        if self._made < POOL_DEPTH:
            self._made += 1
            return memoryview(bytearray(self._size))
        while True:
            try:
                return self.free.get(timeout=0.05)
            except queue.Empty:
                if check is not None:
                    check()

    def put(self, buf: Any) -> None:
        self.free.put(buf)

# References to a lent view while `Outputs._reclaim` looks at it: the pending deque, the
# parameter and getrefcount's own argument. More means someone still holds the view itself.
_OWN_REFS = 3
# Views whose write returned, waiting to be reclaimed. A thread pool may hold the arguments of
# its last job until it runs the next one, so a view is looked at only after later writes.
_PENDING = 4


def _new(size: int) -> bytearray:
    # One spare byte of capacity, so that the _exported probe never reallocates (a copy).
    buffer = bytearray(size + 1)
    del buffer[-1]
    return buffer


def _exported(buffer: bytearray) -> bool:
    """True if a buffer export of ``buffer`` is still alive (a view the sink kept, or a slice of
    it): CPython refuses to resize an exported bytearray."""
    try:
        buffer.append(0)
    except BufferError:
        return True
    del buffer[-1]
    return False


class Outputs:
    """Where sealed or opened bytes are written before they go to the sink.

    `take` and `result` run in the thread that does the crypto; `give_back` runs once the
    sink's write has returned, in the thread that wrote (the event loop, or the worker when it
    writes an AsyncFile's file itself). A buffer is reused only once nothing but this
    object holds its view or any view or export derived from it, so a sink that breaks the
    contract and keeps what it was lent still keeps intact bytes (its buffer is not reused).
    """

    def __init__(self, lend: bool) -> None:
        self.lend = lend
        self._free: deque[bytearray] = deque()  # append/pop are atomic
        self._pending: deque[memoryview] = deque()

    def take(self, size: int) -> bytearray:
        try:
            buffer = self._free.pop()
        except IndexError:
            return _new(size)
        return buffer if len(buffer) >= size else _new(size)

    def result(self, buffer: bytearray, n: int) -> bytes | memoryview:
        """The first ``n`` bytes of ``buffer`` as they go to the sink: a lent view, or a copy
        (and the buffer is free again at once)."""
        if not n:
            self._free.append(buffer)
            return b""
        if self.lend:
            return memoryview(buffer)[:n]
        data = bytes(memoryview(buffer)[:n])
        self._free.append(buffer)
        return data

    def give_back(self, data: bytes | memoryview) -> None:
        """Called after the sink's write returned: reuse the buffers behind earlier lent views
        that nothing holds any more."""
        if not isinstance(data, memoryview) or not isinstance(data.obj, bytearray):
            return
        self._pending.append(data)
        del data
        while len(self._pending) > 1:
            if not self._reclaim(self._pending[0]) and len(self._pending) <= _PENDING:
                return
            self._pending.popleft()  # reclaimed, or held too long: the buffer is the holder's now

    def _reclaim(self, view: memoryview) -> bool:
        if sys.getrefcount(view) > _OWN_REFS:
            return False
        buffer = view.obj
        if not isinstance(buffer, bytearray):  # pragma: no cover - give_back lends only these
            return True
        try:
            view.release()
        except BufferError:
            return True  # a buffer export of the view is alive: never reuse the buffer
        if not _exported(buffer):
            self._free.append(buffer)
        return True


class Scratch:
    """Buffers lent for the span of one synchronous step (a ranged read opening its frames) and
    kept while idle, ``keep`` bytes in all, so that the next call touches no fresh page.

    Fresh memory costs a page fault per 4 KiB at first touch, more than the AES-GCM of the same
    bytes on these machines (limits.SCRATCH_KEEP_BYTES). Whoever takes a buffer copies out what
    it returns (a view of a given-back buffer is never handed on), so a buffer is reused as soon
    as it is given back. Thread-safe: concurrent calls take different buffers.
    """

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._idle: list[bytearray] = []
        self._lock = threading.Lock()

    def take(self, size: int) -> bytearray:
        """An idle buffer of at least ``size`` bytes, or a new one."""
        if not size:
            return bytearray()
        with self._lock:
            for index, buffer in enumerate(self._idle):
                if len(buffer) >= size:
                    return self._idle.pop(index)
        return bytearray(size)

    def give(self, buffer: bytearray) -> None:
        """Keep ``buffer`` for later calls while the idle total stays within ``keep``; the
        smallest idle buffers make room for a larger one."""
        if not buffer:
            return
        with self._lock:
            idle = self._idle
            idle.append(buffer)
            idle.sort(key=len, reverse=True)
            while sum(len(b) for b in idle) > self._keep:
                idle.pop()
