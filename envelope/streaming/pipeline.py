"""Threaded file-to-file pipelines for the sync driver: reader, crypto and writer on their own threads.

AES-GCM into reused buffers, file reads and writes, and hashlib on large buffers all release
the GIL, so a reader thread, the calling thread (AES) and a back thread (signature hash, then
write) use both cores without processes. Output order and bytes are identical to the
single-threaded path; buffers are recycled through small pools, so memory stays a few frames.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from ..crypto.signing import HashLike
from ..format.body import FINAL_FRAME_OVERHEAD, FRAME_OVERHEAD
from .batcher import seal_run
from .buffers import Pool
from .decryptor import MessageDecryptor
from .encryptor import MessageEncryptor
from .gatherer import UnitReader
from .limits import HANDOFF_BYTES, POOL_DEPTH, whole_units

__all__ = ["BackThread", "HashOnBack", "Reader", "decrypt_body", "encrypt_body", "usable_cpus"]

_STOP = object()


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity, capped by a cgroup v2 CPU quota if any.

    The pipeline pays only with a second CPU: pinned to one (``taskset``, or a container with a
    one-CPU quota), its threads take turns and their hand-offs cost ~8% against one thread
    (bench/bench_parallel.py; with two free CPUs it is 1.25-1.45x faster than one thread).
    """
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    count = len(affinity) if affinity else (os.cpu_count() or 1)
    quota = _cgroup_cpu_quota()
    return count if quota is None else max(1, min(count, int(quota)))


_CPU_MAX = "/sys/fs/cgroup/cpu.max"


@functools.cache
def _cgroup_cpu_quota() -> float | None:
    """CPUs' worth of time the cgroup v2 quota allows (``cpu.max``: "quota period", or "max"), or
    None without one. Read once: a process's quota seldom changes, and this runs per stream."""
    try:
        with open(_CPU_MAX, encoding="ascii") as f:
            quota, period = f.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None


class BackThread:
    """The back thread: runs submitted callables in order, remembers the first error."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2 * POOL_DEPTH + 4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="envelope-back", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            if self._error is None:
                try:
                    job()
                except BaseException as exc:  # noqa: BLE001 - handed to the calling thread by check()
                    self._error = exc

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, job: Callable[[], object]) -> None:
        self.check()
        self._queue.put(job)

    @property
    def behind(self) -> bool:
        """Whether submitted jobs are waiting for the back thread (it is the slower side now)."""
        return not self._queue.empty()

    def drain(self) -> None:
        done = threading.Event()
        self._queue.put(done.set)
        while not done.wait(0.05):
            self.check()
        self.check()

    def stop(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()


class HashOnBack:
    """A hash whose updates run on the back thread, in order; digest() waits for them."""

    def __init__(self, inner: HashLike, back: BackThread) -> None:
        self._inner = inner
        self._back = back

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._back.submit(lambda: self._inner.update(data))

    def digest(self) -> bytes:
        self._back.drain()
        return self._inner.digest()


class Reader:
    """The reader thread: fills pooled buffers with whole units (frames), several per buffer,
    through `gatherer.UnitReader` (a pipe hands over early at a unit boundary on a short read).
    Items are (buffer, length, end of input).
    """

    def __init__(self, source: Any, size: int, unit: int, first_offset: int = 0) -> None:
        self.pool = Pool(size)
        self.filled: queue.Queue[Any] = queue.Queue()
        # first_offset: bytes of the first unit already held elsewhere (first buffer only).
        self._units = UnitReader(source, unit, first_offset)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="envelope-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopping:
                buf = self.pool.take()
                if buf is _STOP:
                    return
                total, at_end = self._units.fill(buf)
                self.filled.put((buf, total, at_end))
                if at_end:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread by next()
            self.filled.put(exc)

    def next(self, timeout: float | None = None) -> tuple[memoryview, int, bool]:
        """(buffer, bytes in it, whether the input has ended); `queue.Empty` after ``timeout``
        seconds without one (envelope.aio polls its stop flag so)."""
        item = self.filled.get(timeout=timeout)
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[no-any-return]

    def stop(self) -> None:
        self._stopping = True
        self.pool.put(_STOP)
        self._thread.join()


def _frames_per_chunk(unit: int) -> int:
    """Whole frames per hand-off between threads (limits.HANDOFF_BYTES)."""
    return whole_units(unit, HANDOFF_BYTES)


def encrypt_body(encryptor: MessageEncryptor, source: Any, write: Callable[[memoryview], object],
                 first: bytearray, first_length: int) -> None:
    """Seal every frame after the header; ``first`` holds the first full frame already read."""
    n = encryptor.frame_length
    per_chunk = _frames_per_chunk(n)
    back = BackThread()
    reader = Reader(source, per_chunk * n, n)
    outputs = Pool(per_chunk * (n + FRAME_OVERHEAD) + FINAL_FRAME_OVERHEAD + encryptor.footer_size)
    encryptor.wrap_signature_hash(lambda inner: HashOnBack(inner, back))
    signed = encryptor.footer_size > 0

    def emit(out: memoryview, size: int) -> None:
        if signed:
            # The signature hash is the slowest stage: it gets the back thread to itself, the
            # write happens here, and the buffer returns to the pool once its hash is done.
            write(out[:size])
            back.submit(functools.partial(outputs.put, out))
            return

        def job() -> None:
            write(out[:size])
            outputs.put(out)
        back.submit(job)

    def seal(chunk: memoryview, count: int, last: bool) -> None:
        """Seal ``count`` bytes as whole frames; if ``last``, the final frame ends them (§5.4).
        The footer's signature needs every hash update first: seal_final_into drains the back
        thread through HashOnBack.digest()."""
        out = outputs.take(back.check)
        emit(out, seal_run(encryptor, chunk, count, out, last=last))

    try:
        following, following_length, at_end = reader.next()
        seal(memoryview(first), first_length, last=not following_length)
        while following_length:
            current, count = following, following_length
            if at_end:  # the reader has stopped: this chunk ends the message
                seal(current, count, last=True)
                break
            following, following_length, at_end = reader.next()
            seal(current, count, last=not following_length)
            reader.pool.put(current)  # sealed (and copied into the output) already
        back.drain()
    finally:
        reader.stop()
        back.stop()


def decrypt_body(decryptor: MessageDecryptor, source: Any, write: Callable[[memoryview], object]) -> None:
    """Decrypt everything after the header (materials already supplied) and write it in order."""
    header = decryptor.header
    if header is None or decryptor.needs_materials:  # pragma: no cover
        raise RuntimeError("envelope: internal error: body pipeline before materials")
    frame = header.frame_length + FRAME_OVERHEAD
    # Read whole regular frames, several per buffer, aligned so that each is decrypted in place;
    # the first read completes the frame left over from the header's read (§5.3).
    size = _frames_per_chunk(frame) * frame
    pending = decryptor.pending_bytes
    back = BackThread()
    reader = Reader(source, size, frame, pending)
    outputs = Pool(size + frame + decryptor.output_bound(0))
    decryptor.wrap_signature_hash(lambda inner: HashOnBack(inner, back))
    signed = decryptor.is_signed

    def emit(out: memoryview, count: int) -> None:
        if signed:
            # As in encrypt_body: the back thread hashes, this thread writes (plaintext buffers
            # are not hashed, so they are free again at once).
            write(out[:count])
            outputs.put(out)
            return

        def job() -> None:
            write(out[:count])
            outputs.put(out)
        back.submit(job)

    try:
        out = outputs.take(back.check)
        pending = decryptor.update_into(b"", out)  # body bytes that arrived with the header
        at_end = False
        while True:
            if pending:
                emit(out, pending)
                out = outputs.take(back.check)
            if at_end:
                break
            buf, got, at_end = reader.next()  # the reader stops after a short read
            if not got:
                break
            if len(out) < decryptor.output_bound(got):
                out = memoryview(bytearray(decryptor.output_bound(got)))
            pending = decryptor.update_into(buf[:got], out)
            if signed:
                # This buffer's frames are queued for hashing on the back thread: recycle after.
                back.submit(functools.partial(reader.pool.put, buf))
            else:
                reader.pool.put(buf)
        decryptor.finalize()
        back.drain()
    finally:
        reader.stop()
        back.stop()
