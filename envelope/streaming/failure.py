"""A failed streaming object stays failed: the first error it raised is raised again by every
later call, so a caller that retries cannot read on past a rejected frame.

The error is kept as a copy made before it propagates (no traceback, no chained exceptions),
so a failed object holds no frames, buffers or other objects of the call that failed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

__all__ = ["FailureLatch", "latched"]

_F = TypeVar("_F", bound=Callable[..., Any])


class FailureLatch:
    """Remembers the first error of one streaming object and raises it again on demand.

    An `Exception` is raised again as a new instance of the same class with the same message
    and attributes. Anything else (KeyboardInterrupt, SystemExit) may have stopped the object
    half-way through a step, so later calls raise ValueError: the object cannot go on.
    """

    __slots__ = ("error",)

    def __init__(self) -> None:
        #: the recorded error, detached (never raised itself: `check` raises copies)
        self.error: BaseException | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def trip(self, error: BaseException) -> None:
        """Record ``error`` unless an earlier one is recorded already (that one stays)."""
        if self.error is None:
            self.error = _detached(error)

    def check(self) -> None:
        """Raise the recorded error again (a fresh copy), if there is one."""
        if self.error is not None:
            raise _detached(self.error)


def latched(method: _F) -> _F:
    """Make ``method`` (called with positional arguments) a step of a state machine that has a
    ``failure`` latch: once a step failed, every later step raises that error again (issue 12).
    Kept lean: a small message's decrypt makes three such steps."""
    @wraps(method)
    def step(self: Any, *args: Any) -> Any:
        failure = self.failure
        if failure.error is not None:
            failure.check()
        try:
            return method(self, *args)
        except BaseException as exc:
            failure.trip(exc)
            raise
    return cast(_F, step)


def _detached(error: BaseException) -> BaseException:
    """A copy of ``error`` without its traceback, cause or context."""
    if not isinstance(error, Exception):
        return ValueError(f"the stream was interrupted by {type(error).__name__} and cannot go on; start again")
    try:
        # BaseException pickles as (class, args, __dict__): the class, its message and its
        # attributes (an EnvelopeError's hint, a KMSError's code) without the traceback.
        return copy.copy(error)
    except Exception:  # noqa: BLE001 - a foreign class whose constructor does not take its args back
        return type(error).__new__(type(error), *error.args)
