"""The SQL connection surface the service's queries use, met by sqlite3 and by the PostgreSQL adapter.

Queries are written once, in SQLite's dialect (``?`` placeholders, ``INSERT OR IGNORE``/``OR
REPLACE``); a store that speaks another dialect translates them behind this surface
(`envelope.kms.store.postgres`), so operations never branch on the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

__all__ = ["Connection", "Cursor"]


class Cursor(Protocol):
    """The result of one statement."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """One database connection (a transaction is begun and ended by the store, not here)."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...
