"""Access-control records: grants (their rows and their tokens) and authorization decisions.

Pure values and their row form, shared by the store (which caches them with a key), the
authorization engine (which evaluates them) and the grant operations.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack  # type: ignore[import-untyped]

from .errors import InvalidGrantTokenError
from .sql import Connection

__all__ = ["Decision", "GRANT_COLUMNS", "Grant", "check_grant_tokens", "grant_from_row", "grant_token",
           "load_grants", "parse_grant_token"]

_TOKEN_TAG = "EKGT"
GRANT_COLUMNS = "grant_id, key_id, grantee, retiring, operations, constraints, name, issuing_account, created"


@dataclass(frozen=True, slots=True)
class Grant:
    """A grant on one key: who may call which operations, under which encryption context."""

    grant_id: str
    key_arn: str
    grantee_principal: str
    retiring_principal: str | None
    operations: tuple[str, ...]
    constraints: Mapping[str, Mapping[str, str]] | None
    name: str | None = None
    issuing_account: str = ""
    creation_date: float = 0.0


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome; ``reason`` names the statement or grant that decided.

    ``basis`` is a short machine-readable tag: ``key-policy``, ``identity-policy``, ``grant``,
    ``account-root``, ``explicit-deny-key-policy``, ``explicit-deny-identity-policy``,
    ``no-key-policy-allow`` or ``no-identity-policy-allow``.
    """

    allowed: bool
    reason: str
    basis: str = ""


def load_grants(conn: Connection, key_id: str, key_arn: str) -> tuple[Grant, ...]:
    """The key's grants as policy-engine values."""
    rows = conn.execute(f"SELECT {GRANT_COLUMNS} FROM grants WHERE key_id = ? ORDER BY created, grant_id",
                        (key_id,)).fetchall()
    return tuple(grant_from_row(row, key_arn) for row in rows)


def grant_from_row(row: tuple[Any, ...], key_arn: str) -> Grant:
    constraints = None if row[5] is None else json.loads(row[5])
    return Grant(grant_id=row[0], key_arn=key_arn, grantee_principal=row[2], retiring_principal=row[3],
                 operations=tuple(json.loads(row[4])), constraints=constraints, name=row[6],
                 issuing_account=row[7], creation_date=row[8])


def grant_token(grant_id: str, key_id: str) -> str:
    raw = msgpack.packb([_TOKEN_TAG, grant_id, key_id, os.urandom(8)])
    return base64.urlsafe_b64encode(raw).decode("ascii")


def parse_grant_token(token: str) -> tuple[str, str]:
    try:
        fields = msgpack.unpackb(base64.urlsafe_b64decode(token.encode("ascii")), raw=False)
    except (ValueError, binascii.Error, UnicodeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError, TypeError):
        raise InvalidGrantTokenError("the grant token is not valid") from None
    if (not isinstance(fields, list) or len(fields) != 4 or fields[0] != _TOKEN_TAG
            or not isinstance(fields[1], str) or not isinstance(fields[2], str)):
        raise InvalidGrantTokenError("the grant token is not valid")
    return fields[1], fields[2]


def check_grant_tokens(tokens: tuple[str, ...]) -> None:
    """Reject malformed grant tokens (grants here are effective at once, so tokens only validate)."""
    for token in tokens:
        parse_grant_token(token)
