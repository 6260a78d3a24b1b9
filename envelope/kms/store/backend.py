"""The store interface: what the engine, the server and the tools need from a region's database.

Two implementations: `database.Database` (SQLite, one file per region: the embedded default)
and `postgres.PostgresDatabase` (one PostgreSQL schema per region, shared by any number of
`envelope kms serve` instances). Both give the same semantics:

- ``begin`` starts a write transaction that excludes every other writer of the same region until
  it ends (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: the region's ``meta`` counter row locked
  ``FOR UPDATE``), so a call sees every call committed before it, whichever process made it,
  and the audit chain head, the change counter and due lifecycle work are read and written by
  one writer at a time;
- a group (``open_group``) is one transaction whose calls are savepoints, committed together;
- ``data_version`` changes whenever another connection committed a change (cache validation);
- transient failures surface as KMS errors a client retries (`StoreUnavailableError`).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from ...errors import KMSError
from ..model.sql import Connection

__all__ = ["DATABASE_ENV", "Store", "StoreUnavailableError", "database_url", "is_postgres_url"]

DATABASE_ENV = "ENVELOPE_KMS_DATABASE"


class StoreUnavailableError(KMSError):
    """The database could not be reached or dropped the connection; the call may be retried.

    KMS's DependencyTimeoutException (HTTP 503), which AWS SDKs retry.
    """

    default_code = "DependencyTimeoutException"


class Store(Protocol):
    """One region's (or the principal store's) database; see the module docstring."""

    path: Path | None

    def connect(self) -> Connection: ...

    def begin(self) -> Connection: ...

    def commit(self, conn: Connection) -> None: ...

    def rollback(self, conn: Connection) -> None: ...

    def transaction(self) -> AbstractContextManager[Connection]: ...

    def open_group(self) -> bool: ...

    def commit_group(self) -> None: ...

    def rollback_group(self) -> None: ...

    def data_version(self) -> int: ...

    def close(self) -> None: ...


def is_postgres_url(value: str | os.PathLike[str] | None) -> bool:
    """Whether ``value`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return isinstance(value, str) and value.startswith(("postgresql://", "postgres://"))


def database_url(explicit: str | None = None) -> str | None:
    """The PostgreSQL URL to use: ``explicit``, else ``$ENVELOPE_KMS_DATABASE``, else None (SQLite).

    :raises ValueError: the value is set but is not a ``postgresql://`` URL.
    """
    value = explicit if explicit is not None else os.environ.get(DATABASE_ENV) or None
    if value is not None and not is_postgres_url(value):
        raise ValueError(f"not a PostgreSQL URL (postgresql://...): {value!r}"
                         if explicit is not None else f"{DATABASE_ENV} is not a postgresql:// URL")
    return value
