"""Group commit for the endpoint: the service calls of one event-loop pass share one SQLite commit.

Each call stays atomic on its own (a savepoint), and each response waits for the commit that
makes its call, and the call's audit event, durable: no caller hears of a call the store could
still lose. One commit per pass instead of one per call saves most of the commit's CPU and I/O.
A background thread checkpoints the WAL (copying pages into the database, with fsyncs), so
the checkpoint SQLite runs in the committing thread when the WAL fills finds little left to do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no multi-worker lock (run.py passes none there)
    fcntl = None  # type: ignore[assignment]

from ..store.partition import Region

__all__ = ["GroupCommit"]

_log = logging.getLogger("envelope.kms.server")
# How often the background thread checkpoints the WAL. Alone, SQLite's automatic checkpoint (in
# the committing thread, once the WAL holds 1000 pages) stalled the loop for 2-30 ms about once
# per 30 groups here. It still runs (only it can restart the WAL while writes go on), but finds
# at most this interval's pages to copy.
CHECKPOINT_INTERVAL_S = 0.1
LOOP_AUTOCHECKPOINT_PAGES = 4000  # 16 MiB of WAL (SQLite's default is 1000)


class GroupCommit:
    """Batches the service calls made on one event loop into one transaction per loop pass.

    Await `turn` (when it returns a future) before a service call, call `join` right before the
    call (with no ``await`` between the two), and await what `join` returns before answering:
    it completes once the call is committed, or raises if the group's commit failed (in any
    served region: that region's part of the group is rolled back, and every call of the group
    is answered as failed).

    :param regions: the regions whose databases take part (calls on others commit alone).
    :param lock_fd: an open lock file held while a group is open, serializing service calls
        across worker processes (SQLite would too, but its busy handler sleeps a millisecond
        and more; waiting on the lock wakes as soon as the other worker's group commits).
    """

    def __init__(self, regions: Sequence[Region], lock_fd: int | None = None) -> None:
        self._regions = tuple(regions)
        self._lock_fd = lock_fd
        self._waiters: list[asyncio.Future[None]] | None = None
        self._turn: list[asyncio.Future[None]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._files = tuple(region for region in self._regions if region.db.path is not None)
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None

    def turn(self) -> asyncio.Future[None] | None:
        """None, or a future to await before `join`: set for one loop pass after each commit.

        A group holds SQLite's write lock from its first call to its commit, and under load the
        next group would begin as soon as one commits; other processes writing to the same files
        (`envelope kms` commands, say), which poll for the lock, could then wait for seconds. The
        pass after a commit, in which the group's answers go out, leaves the lock free for them.
        """
        if self._turn is None:
            return None
        loop = asyncio.get_running_loop()
        self._adopt(loop)
        if self._turn is None:
            return None
        waiter: asyncio.Future[None] = loop.create_future()
        self._turn.append(waiter)
        return waiter

    def join(self) -> asyncio.Future[None]:
        """Join the open group (opening one, committed on the next loop pass); returns its waiter."""
        loop = asyncio.get_running_loop()
        self._adopt(loop)
        waiters = self._waiters
        if waiters is None:
            if self._checkpointer is None and self._files:
                self._start_checkpointer()
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                for region in self._regions:
                    region.db.open_group()
            except BaseException:
                for region in self._regions:
                    region.db.rollback_group()
                if self._lock_fd is not None:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                raise
            waiters = self._waiters = []
            # Queued behind every task already runnable: the calls those make join this group.
            loop.call_soon(self.commit)
        waiter: asyncio.Future[None] = loop.create_future()
        waiters.append(waiter)
        return waiter

    def commit(self) -> None:
        """Commit the open group now (a no-op if none is open) and wake its waiters."""
        waiters = self._waiters
        if waiters is None:
            return
        self._waiters = None
        error = self._commit_databases()
        if self._turn is None and self._loop is not None:
            self._turn = []
            self._loop.call_soon(self._end_turn)
        for waiter in waiters:
            if waiter.done():  # its request was cancelled (the client went away)
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def _commit_databases(self) -> Exception | None:
        error: Exception | None = None
        try:
            for region in self._regions:
                try:
                    region.db.commit_group()
                except Exception as exc:  # noqa: BLE001 - every waiter hears of it
                    region.db.rollback_group()
                    region.reset_cache()  # the cache may hold state of rolled-back calls
                    error = error or exc
        finally:
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        if error is not None:
            _log.error("group commit failed: %s", error)
        return error

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        # A new event loop (an app served again, in tests): the old one's callbacks never run.
        if self._loop is loop:
            return
        if self._waiters is not None:
            self._waiters = None
            self._commit_databases()  # what its calls did stands; nobody is left to answer
        self._turn = None
        self._loop = loop

    def _end_turn(self) -> None:
        turn, self._turn = self._turn, None
        for waiter in turn or ():
            if not waiter.done():
                waiter.set_result(None)

    def close(self) -> None:
        """Commit any open group, stop the checkpoint thread and release the lock file."""
        self.commit()
        self._end_turn()
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _start_checkpointer(self) -> None:
        for region in self._files:  # the loop's connections: see CHECKPOINT_INTERVAL_S
            region.db.connect().execute(f"PRAGMA wal_autocheckpoint = {LOOP_AUTOCHECKPOINT_PAGES}")
        self._checkpointer = threading.Thread(target=self._checkpoint, name="envelope-kms-checkpoint",
                                              daemon=True)
        self._checkpointer.start()

    def _checkpoint(self) -> None:
        try:
            while not self._stop.wait(CHECKPOINT_INTERVAL_S):
                for region in self._files:
                    try:
                        # PASSIVE: copy what no reader needs, without waiting for (or blocking) writers.
                        region.db.connect().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    except sqlite3.Error as exc:
                        _log.warning("WAL checkpoint of %s failed: %s", region.db.path, exc)
        finally:
            for region in self._files:
                region.db.close()  # this thread's connection
