"""A pipeline segment in one worker thread: the async stream driver runs a whole message's
crypto (and a sync file's reads or writes) in a thread of its own, joined to the event loop by
two small bounded pipes, instead of one thread hop per batch.

Each side of a pipe waits only when it must (the loop for an item or for room, the worker
likewise), so a busy pipeline passes batches with no thread hop at all: the loop is woken
(a callback queued on it, without waiting for it to run) only when it is waiting, the worker
only when it is waiting.
"""

from __future__ import annotations

import abc
import asyncio
import queue
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import anyio

from ..streaming import pipeline
from .offload import in_thread

__all__ = ["FileInputs", "Inputs", "Pipe", "PipeInputs", "Stopped", "run_segment"]

T = TypeVar("T")
Buffer = bytes | bytearray | memoryview


class Stopped(Exception):
    """Raised in the worker once the segment is being torn down (an error elsewhere, or the
    caller was cancelled); never leaves this package."""


# How long a waiting worker sleeps before it looks at the stop flag unprompted (a safety net:
# `Pipe.wake_worker` wakes it at once).
WAIT_SAFETY_NET_S = 0.25


def _call_soon_on_loop() -> Callable[[Callable[[], object]], object]:
    """``call(fn)``: queue ``fn`` to run on the current event loop, from any thread, without
    waiting for it. ``anyio.from_thread.run_sync`` would block the worker until the loop ran it,
    a round trip per wake: measured with bench/bench_async.py, an async-iterator stream of
    256 MiB (~500 wakes) took 8-19 ms more CPU and 6-17 ms more time that way."""
    try:
        return asyncio.get_running_loop().call_soon_threadsafe
    except RuntimeError:  # no asyncio loop here: trio, anyio's other backend, is running
        import trio  # imported already, since it runs

        return trio.lowlevel.current_trio_token().run_sync_soon


class Pipe(Generic[T]):
    """A bounded FIFO between the event loop and one worker thread.

    The loop side (`aput`, `aget`) never blocks the loop: it takes a short lock, and waits on
    an anyio Event when the pipe is full or empty. The worker side (`put`, `get`) blocks on a
    condition variable. Each side wakes the other only if it is waiting. One loop task and one
    worker thread use a pipe; it is made on the loop, whose lifetime it must not outlive (the
    worker's wake is queued on that loop: run_segment awaits the worker, so the loop runs it).
    """

    def __init__(self, depth: int, stop: threading.Event) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self._depth = depth
        self._stop = stop
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # the worker waits on this
        self._loop_waiting: anyio.Event | None = None  # set when the loop waits
        self._call_soon = _call_soon_on_loop()

    def wake_worker(self) -> None:
        """Wake the worker if it waits, so that it sees the stop flag."""
        with self._lock:
            self._changed.notify_all()

    # -- the loop's side ---------------------------------------------------------------------

    async def aput(self, item: T) -> None:
        while True:
            with self._lock:
                if len(self._items) < self._depth:
                    self._items.append(item)
                    self._changed.notify()
                    return
                event = self._loop_waiting = anyio.Event()
            await event.wait()

    async def aget(self) -> T:
        while True:
            with self._lock:
                if self._items:
                    item = self._items.popleft()
                    self._changed.notify()
                    return item
                event = self._loop_waiting = anyio.Event()
            await event.wait()

    # -- the worker's side -------------------------------------------------------------------

    def _wake_loop(self) -> None:
        # Called with the lock held: queue the waiting event's set() (if any) on the loop. No
        # wake is lost: the loop stores its event and checks the items under the same lock, and
        # waits for nothing else until the event is set. A wake left queued for a task that was
        # cancelled meanwhile sets an event nobody waits for.
        event, self._loop_waiting = self._loop_waiting, None
        if event is not None:
            self._call_soon(event.set)

    def _wait(self) -> None:
        if self._stop.is_set():
            raise Stopped
        # The timeout is a safety net only: wake_worker() notifies when the stop flag is set.
        self._changed.wait(WAIT_SAFETY_NET_S)
        if self._stop.is_set():
            raise Stopped

    def put(self, item: T) -> None:
        with self._lock:
            while len(self._items) >= self._depth:
                self._wait()
            self._items.append(item)
            self._wake_loop()

    def get(self) -> T:
        with self._lock:
            while not self._items:
                self._wait()
            item = self._items.popleft()
            self._wake_loop()
            return item

    def ready(self) -> bool:
        """Whether the pipe holds an item (worker side: for a pipe to the loop, the loop has
        work queued)."""
        return bool(self._items)


class Inputs(abc.ABC):
    """Where the worker takes its input chunks from: `next` returns the next chunk, or None at
    the end. Chunks of `reuses_buffers` inputs go back through `release` once used."""

    reuses_buffers = False

    @abc.abstractmethod
    def next(self) -> Buffer | None:
        """The next chunk, or None once the input has ended."""

    def release(self, chunk: Buffer) -> None:
        """Hand a chunk's buffer back for reuse (a no-op unless `reuses_buffers`)."""

    def more_ready(self) -> bool:
        """Whether `next` would return at once (so that waiting output may wait for it too)."""
        return False

    def close(self) -> None:
        """Stop whatever the input runs (called once the worker is done with it)."""


class PipeInputs(Inputs):
    """Chunks the loop reads from an async source and puts into a pipe (None ends them)."""

    def __init__(self, pipe: Pipe[Buffer | None], reuses_buffers: bool,
                 release: Callable[[Buffer], None]) -> None:
        self._pipe = pipe
        self.reuses_buffers = reuses_buffers
        self._release = release

    def next(self) -> Buffer | None:
        return self._pipe.get()

    def more_ready(self) -> bool:
        return self._pipe.ready()

    def release(self, chunk: Buffer) -> None:
        self._release(chunk)


class _StopAware:
    """A sync binary file whose reads raise `Stopped` once the segment is torn down."""

    def __init__(self, file: Any, stop: threading.Event) -> None:
        self._readinto = getattr(file, "readinto1", None) or file.readinto
        self._stop = stop

    def readinto1(self, buffer: Any) -> int:
        if self._stop.is_set():
            raise Stopped
        n: int = self._readinto(buffer)
        return n


class FileInputs(Inputs):
    """A sync binary file (the one under an anyio AsyncFile), read by the sync pipeline's reader
    thread into a few reused buffers, so that reading overlaps the worker's crypto as in the
    sync driver. Reads are ``size`` bytes (the first ``first``), handed over early at a
    ``unit`` (frame) boundary when a pipe has less; the thread stops in `close`."""

    reuses_buffers = True

    def __init__(self, file: Any, size: int, unit: int, stop: threading.Event, first: int | None = None) -> None:
        self._stop = stop
        # The reader's offset is the part of the first unit that is already held elsewhere.
        self._reader = pipeline.Reader(_StopAware(file, stop), size, unit, size - first if first else 0)
        self._buffers: dict[int, memoryview] = {}  # pooled buffer by id of its bytearray
        self._ended = False

    def next(self) -> Buffer | None:
        if self._stop.is_set():
            raise Stopped
        if self._ended:
            return None
        while True:
            try:
                buffer, n, self._ended = self._reader.next(timeout=0.1)
                break
            except queue.Empty:  # a pipe with nothing to read: look at the stop flag meanwhile
                if self._stop.is_set():
                    raise Stopped from None
        if not n:
            self._ended = True
            self._reader.pool.put(buffer)
            return None
        self._buffers[id(buffer.obj)] = buffer
        return buffer[:n]

    def release(self, chunk: Buffer) -> None:
        if isinstance(chunk, memoryview):
            buffer = self._buffers.pop(id(chunk.obj), None)
            if buffer is not None:
                self._reader.pool.put(buffer)

    def more_ready(self) -> bool:
        return not self._reader.filled.empty()

    def close(self) -> None:
        self._reader.stop()


async def run_segment(work: Callable[[], T], *loop_tasks: Callable[[], Awaitable[object]],
                      stop: threading.Event, pipes: tuple[Pipe[Any], ...]) -> T:
    """Run ``work`` in a worker thread of its own while ``loop_tasks`` run on the loop; return
    its result once every task has finished.

    If anything fails or the caller is cancelled, ``stop`` is set and the pipes' waiting worker
    woken, so `work` stops at its next pipe operation or read (raising `Stopped`, which is
    swallowed here); the worker is never abandoned, so no thread outlives the call. The first
    error is raised as itself, not inside an exception group.
    """
    results: list[T] = []

    async def watch() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            stop.set()
            for pipe in pipes:
                pipe.wake_worker()

    def guarded() -> None:
        try:
            results.append(work())
        except Stopped:
            pass

    async def loop_task(task: Callable[[], Awaitable[object]], done: anyio.Event) -> None:
        await task()
        done.set()

    try:
        async with anyio.create_task_group() as group:
            # In the same group as the loop tasks, so that a failing task (or a cancelled
            # caller) sets the stop flag while the worker is still being waited for.
            group.start_soon(watch)
            finished = [anyio.Event() for _ in loop_tasks]
            for task, done in zip(loop_tasks, finished, strict=True):
                group.start_soon(loop_task, task, done)
            # A limiter of its own: the worker waits on the loop's tasks, which may need
            # threads from the default limiter (an AsyncFile sink), so it must not hold one.
            await in_thread(guarded, limiter=anyio.CapacityLimiter(1))
            for done in finished:
                await done.wait()
            group.cancel_scope.cancel()
    except BaseExceptionGroup as failed:
        raise _first_error(failed) from None
    if not results:  # pragma: no cover - Stopped without an error or a cancellation
        raise RuntimeError("envelope: internal error: pipeline segment stopped without a cause")
    return results[0]


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to raise for a failed segment: the first that is not a cancellation."""
    cancelled = anyio.get_cancelled_exc_class()
    flat: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            pending[:0] = list(exc.exceptions)
        else:
            flat.append(exc)
    for exc in flat:
        if not isinstance(exc, cancelled):
            return exc
    return flat[0] if flat else group
