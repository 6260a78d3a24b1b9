"""Watch every streaming object a message makes, and check that none outlives the message.

Every class defined in envelope.streaming, envelope.aio and envelope.crypto that supports weak
references is instrumented (so a new building block is watched without editing this file): each
instance made while a `Lifetimes` is active is recorded by weak reference. `Lifetimes.check`
then drops nothing itself; the caller deletes its own references, and the check collects,
then fails on any recorded object still alive, on uncollectable garbage, and on a thread that
is still running streaming code or was started meanwhile and is named ``envelope-*``.
"""

from __future__ import annotations

import enum
import functools
import gc
import importlib
import os
import pkgutil
import sys
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import pytest

import envelope
import envelope.aio
import envelope.crypto
import envelope.streaming

# Code that streams a message (a KMS store's own background threads are not a message's).
_STREAMING_DIRS = tuple(os.path.dirname(str(package.__file__)) + os.sep
                        for package in (envelope.streaming, envelope.aio, envelope.crypto))


def _modules() -> Iterator[Any]:
    for package in (envelope.streaming, envelope.aio, envelope.crypto):
        yield package
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            yield importlib.import_module(info.name)


@functools.cache
def watched_classes() -> list[type]:
    """The classes whose instances are watched: defined in those packages, weak-referenceable,
    and neither errors, enums nor protocols (values and types, not streaming state)."""
    found: dict[str, type] = {}
    for module in _modules():
        for obj in vars(module).values():
            if (isinstance(obj, type) and obj.__module__ == module.__name__ and obj.__weakrefoffset__
                    and not issubclass(obj, (BaseException, enum.Enum))
                    and not getattr(obj, "_is_protocol", False)):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return list(found.values())


class Lifetimes:
    """Records a weak reference to every watched object made while active."""

    def __init__(self) -> None:
        self.refs: list[tuple[str, weakref.ref[Any]]] = []
        self._threads_before = set(threading.enumerate())

    def made(self) -> set[str]:
        return {name for name, _ in self.refs}

    def check(self) -> None:
        """Fail if any recorded object, or an envelope thread, outlived the message."""
        gc.collect()
        if any(ref() is not None for _, ref in self.refs):
            for _ in range(2):  # a collection may free objects whose finalizers free more
                gc.collect()
        alive = sorted({name for name, ref in self.refs if ref() is not None})
        assert not alive, f"streaming objects outlived their message: {alive}"
        assert not gc.garbage, f"uncollectable garbage: {gc.garbage[:5]}"
        frames = sys._current_frames()
        busy = []
        for thread in threading.enumerate():
            if thread is threading.current_thread():
                continue
            if thread.name.startswith("envelope-") and thread not in self._threads_before:
                busy.append(thread.name)
                continue
            frame = frames.get(thread.ident) if thread.ident is not None else None
            while frame is not None:
                if frame.f_code.co_filename.startswith(_STREAMING_DIRS):
                    busy.append(f"{thread.name} in {frame.f_code.co_name}")
                    break
                frame = frame.f_back
        assert not busy, f"threads still working for envelope: {busy}"


class _Init(Protocol):
    def __call__(self, obj: Any, /, *args: Any, **kwargs: Any) -> None: ...


def _recording(cls: type, original: _Init, lifetimes: list[Lifetimes]) -> _Init:
    name = cls.__qualname__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if lifetimes and type(self) is cls:
            lifetimes[-1].refs.append((name, weakref.ref(self)))

    return __init__


@contextmanager
def watching() -> Iterator[Lifetimes]:
    """Instrument the watched classes for the duration of the block; yield the record."""
    active: list[Lifetimes] = []
    patch = pytest.MonkeyPatch()
    try:
        for cls in watched_classes():
            patch.setattr(cls, "__init__", _recording(cls, cls.__init__, active))  # type: ignore[misc]
        record = Lifetimes()
        active.append(record)
        yield record
    finally:
        active.clear()
        patch.undo()


def flip(message: bytes, at: int) -> bytes:
    """``message`` with one bit flipped at offset ``at`` (negative: from the end)."""
    data = bytearray(message)
    data[at] ^= 1
    return bytes(data)
