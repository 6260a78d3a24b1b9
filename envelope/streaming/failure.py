"""A failed streaming object stays failed: the first error it raised is raised again by every
later call, so a caller that retries cannot read on past a rejected frame.

The error is kept as a copy made before it propagates (no traceback, no chained exceptions),
so a failed object holds no frames, buffers or other objects of the call that failed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import wraps
from typing import Concatenate, ParamSpec, Protocol, TypeVar

__all__ = ["FailureLatch", "latched"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


class FailureLatch:
    """Remembers the first error of one streaming object and raises it again on demand.

    An `Exception` is raised again as a new instance of the same class with the same message
    and attributes. Anything else (KeyboardInterrupt, SystemExit) may have stopped the object
    half-way through a step, so later calls raise ValueError: the object cannot go on.
    """

    __slots__ = ("_template",)

    def __init__(self) -> None:
        self._template: BaseException | None = None

    @property
    def failed(self) -> bool:
        return self._template is not None

    def trip(self, error: BaseException) -> None:
        """Record ``error`` unless an earlier one is recorded already (that one stays)."""
        if self._template is None:
            self._template = _detached(error)

    def check(self) -> None:
        """Raise the recorded error again (a fresh copy), if there is one."""
        if self._template is not None:
            raise _detached(self._template)


class _Latched(Protocol):
    failure: FailureLatch


_S = TypeVar("_S", bound=_Latched)


def latched(method: Callable[Concatenate[_S, _P], _R]) -> Callable[Concatenate[_S, _P], _R]:
    """Make ``method`` a step of a state machine with a ``failure`` latch: once a step failed,
    every later step raises that error again (issue 12)."""
    @wraps(method)
    def step(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        self.failure.check()
        try:
            return method(self, *args, **kwargs)
        except BaseException as exc:
            self.failure.trip(exc)
            raise
    return step


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
