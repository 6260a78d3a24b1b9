"""A rich progress bar (bytes in binary units, rate, ETA, the file at work) for long work on a
terminal; silent otherwise."""

from __future__ import annotations

import sys
from typing import IO, Any

__all__ = ["Counting", "Progress", "binary_size", "describe_job", "make_progress"]

# Below this much input a bar would only flicker.
_MIN_BYTES = 8 * 1024 * 1024
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def binary_size(n: float) -> str:
    """``n`` bytes in binary units, as ``ls -h`` and ``du -h`` count: 1023 B, 12.0 MiB."""
    unit = 0
    while n >= 1024 and unit < len(_UNITS) - 1:
        n /= 1024
        unit += 1
    return f"{int(n)} B" if unit == 0 else f"{n:.1f} {_UNITS[unit]}"


def describe_job(mode: str, source: str, *, index: int, count: int, size: int | None) -> str:
    """The bar's label for one input: the verb, then (in multi-file runs) which file of how many,
    its name and, when known, its size."""
    label = f"{mode}ing"
    if count > 1:
        label += f" [{index}/{count}] {source}"
    if size is not None:
        label += f" ({binary_size(size)})"
    return label


class Progress:
    """Counts bytes read through `wrap`; the base class draws nothing."""

    def start(self, description: str, total: int | None) -> None:
        pass

    def describe(self, description: str) -> None:
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
        from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        # rich's DownloadColumn and TransferSpeedColumn count in decimal units (MB); these two
        # text columns count as the rest of the CLI does (MiB).
        self._bar = Bar(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[done]}"),
                        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                        console=Console(stderr=True), transient=True)
        self._task: Any = None
        self._total: int | None = None

    def start(self, description: str, total: int | None) -> None:
        self._total = total
        self._bar.start()
        self._task = self._bar.add_task(description, total=total, done=self._done(0), rate="")

    def describe(self, description: str) -> None:
        self._bar.update(self._task, description=description)

    def _done(self, completed: float) -> str:
        done = binary_size(completed)
        return done if self._total is None else f"{done}/{binary_size(self._total)}"

    def advance(self, n: int) -> None:
        self._bar.advance(self._task, n)
        task = self._bar.tasks[0]
        speed = task.speed
        self._bar.update(self._task, done=self._done(task.completed),
                         rate="" if speed is None else f"{binary_size(speed)}/s")

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
