"""A rich progress bar (bytes, rate, ETA) for long work on a terminal; silent otherwise."""

from __future__ import annotations

import sys
from typing import IO, Any

__all__ = ["Counting", "Progress", "make_progress"]

# Below this much input a bar would only flicker.
_MIN_BYTES = 8 * 1024 * 1024


class Progress:
    """Counts bytes read through `wrap`; the base class draws nothing."""

    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def stop(self) -> None:
        pass

    def wrap(self, source: IO[bytes]) -> Counting:
        return Counting(source, self)


class _RichProgress(Progress):
    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn, TransferSpeedColumn
        from rich.progress import Progress as Bar

        self._bar = Bar(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                        TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self._task: Any = None

    def start(self, description: str, total: int | None) -> None:
        self._bar.start()
        self._task = self._bar.add_task(description, total=total)

    def advance(self, n: int) -> None:
        self._bar.advance(self._task, n)

    def stop(self) -> None:
        self._bar.stop()


class Counting:
    """A read-only file wrapper that counts the bytes through it and reports them to a Progress."""

    def __init__(self, raw: IO[bytes], progress: Progress) -> None:
        self._raw = raw
        self._progress = progress
        self.count = 0

    def readinto(self, buffer: Any) -> int:
        readinto = getattr(self._raw, "readinto", None)
        if readinto is None:
            data = self._raw.read(len(buffer))
            n = len(data)
            memoryview(buffer)[:n] = data
        else:
            n = readinto(buffer) or 0
        self.count += n
        self._progress.advance(n)
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.count += len(data)
        self._progress.advance(len(data))
        return data


def make_progress(*, quiet: bool, total: int | None) -> Progress:
    """A drawing bar only when stderr is a terminal, -q is absent and the work is long enough."""
    if quiet or not sys.stderr.isatty() or (total is not None and total < _MIN_BYTES):
        return Progress()
    try:
        return _RichProgress()
    except ImportError:  # rich is in the cli extra; without it, no bar
        return Progress()
