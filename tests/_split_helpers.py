"""Cutting bytes into pieces at chosen positions, for tests that feed a stream in any chunking."""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["split_at"]


def split_at(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    """``data`` in pieces cut at ``cuts`` (positions, any order, repeats make empty pieces)."""
    start = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        yield data[start:cut]
        start = cut
    yield data[start:]
