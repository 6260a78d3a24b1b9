"""The service clock: a callable returning epoch seconds (float); tests inject a ManualClock.

A clock returning a timezone-aware ``datetime`` is accepted too and normalized to epoch seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["DAY", "Clock", "ManualClock", "as_clock", "to_datetime"]

DAY = 86400.0

Clock = Callable[[], float]


class ManualClock:
    """A clock that only moves when told to; thread-safe.

    :param start: epoch seconds (or an aware datetime) to start at; default: the current time.
    """

    def __init__(self, start: float | datetime | None = None) -> None:
        if start is None:
            self._now = time.time()
        elif isinstance(start, datetime):
            self._now = _aware(start).timestamp()
        else:
            self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 0.0, *, days: float = 0.0) -> float:
        """Move the clock forward and return the new time in epoch seconds."""
        step = seconds + days * DAY
        if step < 0:
            raise ValueError("a ManualClock only moves forward")
        with self._lock:
            self._now += step
            return self._now


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("clock datetimes must be timezone-aware")
    return value


def as_clock(clock: Callable[[], float | datetime] | None) -> Clock:
    """Normalize a user clock (epoch seconds or aware datetime) into one returning epoch seconds."""
    if clock is None:
        return time.time
    if not callable(clock):
        raise TypeError("clock must be a callable returning epoch seconds or an aware datetime")
    user = clock

    def _seconds() -> float:
        value = user()
        if isinstance(value, datetime):
            return _aware(value).timestamp()
        if isinstance(value, (int, float)):
            return float(value)
        raise TypeError("clock must return epoch seconds or an aware datetime")

    if isinstance(clock, ManualClock):
        return clock
    return _seconds


def to_datetime(epoch: float) -> datetime:
    """Epoch seconds as an aware UTC datetime (boto3 returns aware datetimes for KMS dates)."""
    return datetime.fromtimestamp(epoch, tz=UTC)
