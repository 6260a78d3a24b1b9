"""The principal store: IAM principals of the partition and their identity policies.

A principal that was never created may still call (it simply has no identity policies); account
roots never have identity policies (IAM does not allow them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from ...errors import KMSError
from ..authz.policy import parse_policy
from ..model.clock import Clock
from ..model.errors import AlreadyExistsError
from ..store.partition import Partition

__all__ = ["PrincipalStore", "identity_arn", "load_identity_policies", "validate_principal"]

_PRINCIPAL = re.compile(r"^arn:aws:(?:iam::\d{12}:(?:root|user/[\w+=,.@/-]+|role/[\w+=,.@/-]+)"
                        r"|sts::\d{12}:assumed-role/[\w+=,.@-]+/[\w+=,.@-]+)$")
_POLICY_NAME = re.compile(r"^[\w+=,.@-]{1,128}$")


def validate_principal(arn: str) -> str:
    """Return ``arn`` if it is an IAM user, role, account root or assumed-role session ARN.

    :raises ValueError: it is not.
    """
    if not isinstance(arn, str):
        raise TypeError("a principal must be an ARN string")
    if not _PRINCIPAL.match(arn):
        raise ValueError(f"not an IAM principal ARN: {arn!r}")
    return arn


def identity_arn(principal: str) -> str:
    """The ARN whose identity policies apply: an assumed-role session uses its role's."""
    if principal.startswith("arn:aws:sts::"):
        account, rest = principal[len("arn:aws:sts::"):].split(":", 1)
        return f"arn:aws:iam::{account}:role/{rest.split('/')[1]}"
    return principal


def load_identity_policies(partition: Partition, principal: str) -> tuple[dict[str, object], ...]:
    """The parsed identity policies that apply to a caller."""
    rows = partition.iam.connect().execute(
        "SELECT document FROM identity_policies WHERE arn = ? ORDER BY name", (identity_arn(principal),)).fetchall()
    return tuple(parse_policy(doc, identity=True, stored=True) for (doc,) in rows)


def _no_such(arn: str) -> KMSError:
    return KMSError(f"The principal {arn} does not exist.", code="NoSuchEntityException")


class PrincipalStore:
    """Create principals and attach identity policies (what IAM does for real KMS).

    Changes apply to every client of the partition, in every process, at their next call.
    """

    def __init__(self, partition: Partition, clock: Clock) -> None:
        self._partition = partition
        self._clock = clock

    def _changed(self) -> None:
        self._partition.identity_cache.clear()

    def create(self, arn: str) -> None:
        """Create a principal (user, role or assumed-role session ARN).

        :raises AlreadyExistsError: it exists.
        """
        validate_principal(arn)
        with self._partition.iam.transaction() as conn:
            if conn.execute("SELECT 1 FROM principals WHERE arn = ?", (arn,)).fetchone():
                raise AlreadyExistsError(f"The principal {arn} already exists.")
            conn.execute("INSERT INTO principals (arn, created) VALUES (?, ?)", (arn, self._clock()))
        self._changed()

    def delete(self, arn: str) -> None:
        """Delete a principal and its identity policies."""
        with self._partition.iam.transaction() as conn:
            if conn.execute("DELETE FROM principals WHERE arn = ?", (arn,)).rowcount == 0:
                raise _no_such(arn)
            conn.execute("DELETE FROM identity_policies WHERE arn = ?", (arn,))
        self._changed()

    def list_principals(self) -> list[str]:
        """Every principal ARN, sorted."""
        rows = self._partition.iam.connect().execute("SELECT arn FROM principals ORDER BY arn").fetchall()
        return [arn for (arn,) in rows]

    def exists(self, arn: str) -> bool:
        """Whether the principal was created."""
        conn = self._partition.iam.connect()
        return conn.execute("SELECT 1 FROM principals WHERE arn = ?", (arn,)).fetchone() is not None

    def put_identity_policy(self, arn: str, name: str, document: str | Mapping[str, object]) -> None:
        """Attach (or replace) a named inline identity policy.

        :raises KMSError: ``MalformedPolicyDocumentException`` for a bad policy;
            ``NoSuchEntityException`` if the principal was not created.
        """
        if not isinstance(name, str) or not _POLICY_NAME.match(name):
            raise ValueError("policy names are 1-128 characters of letters, digits and +=,.@_-")
        text = document if isinstance(document, str) else json.dumps(document)
        parse_policy(text, identity=True)
        with self._partition.iam.transaction() as conn:
            if not conn.execute("SELECT 1 FROM principals WHERE arn = ?", (arn,)).fetchone():
                raise _no_such(arn)
            conn.execute("INSERT OR REPLACE INTO identity_policies (arn, name, document) VALUES (?, ?, ?)",
                         (arn, name, text))
        self._changed()

    def get_identity_policy(self, arn: str, name: str) -> str:
        """The text of one identity policy."""
        row = self._partition.iam.connect().execute(
            "SELECT document FROM identity_policies WHERE arn = ? AND name = ?", (arn, name)).fetchone()
        if row is None:
            raise KMSError(f"The policy {name} of {arn} does not exist.", code="NoSuchEntityException")
        return str(row[0])

    def delete_identity_policy(self, arn: str, name: str) -> None:
        """Detach one identity policy."""
        with self._partition.iam.transaction() as conn:
            gone = conn.execute("DELETE FROM identity_policies WHERE arn = ? AND name = ?", (arn, name))
            if gone.rowcount == 0:
                raise KMSError(f"The policy {name} of {arn} does not exist.", code="NoSuchEntityException")
        self._changed()

    def list_identity_policies(self, arn: str) -> list[str]:
        """The names of a principal's identity policies, sorted."""
        rows = self._partition.iam.connect().execute(
            "SELECT name FROM identity_policies WHERE arn = ? ORDER BY name", (arn,)).fetchall()
        return [name for (name,) in rows]
