"""Which process a store's connections belong to: a count bumped in every forked child.

A child must never use its parent's database connections (an SQLite handle or a PostgreSQL
socket shared across a fork corrupts both sides' state); each backend compares the generation
it opened its connections in with `generation()` and reopens them after a fork.
"""

from __future__ import annotations

import os

__all__ = ["generation"]

_generation = 0


def _forked() -> None:
    global _generation
    _generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def generation() -> int:
    """This process's fork generation (0 in the process that imported this module first)."""
    return _generation
