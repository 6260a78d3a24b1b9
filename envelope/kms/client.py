"""LocalKMS: the embedded key-management service behind a boto3-shaped KMS client.

Methods take boto3's PascalCase keyword arguments and return boto3's response dicts; failures
raise KMSError subclasses whose ``.code`` and ``.response`` match botocore's ClientError. The
methods are not written here: one per operation of the table (`model.operations`) that has a
handler (`ops.registry`), each the same dispatch (`engine.runtime.execute` with the operation's
precomputed plan); `ops.api` declares them, with typed requests, for type checkers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from ..errors import KMSError
from .engine.principals import PrincipalStore, validate_principal
from .engine.ratelimit import RateLimiter
from .engine.runtime import Plan, execute, record_rejected
from .engine.session import Session
from .model.clock import as_clock
from .model.errors import _BY_CODE
from .model.regions import check_region
from .ops.api import ClientAPI
from .ops.registry import PLANS
from .store.audit import AuditLog
from .store.backend import database_url
from .store.partition import Region, open_partition

__all__ = ["SERVED", "LocalKMS"]

_ACCOUNT = re.compile(r"^\d{12}$")


class LocalKMS(ClientAPI):
    """A KMS client bound to one region, account and calling principal, over a local store.

    The store is SQLite, one file per region in a data directory: ``path`` if given, else
    ``$ENVELOPE_DATA_DIR``, else the per-user data directory (``~/.local/share/envelope`` on
    Linux). ``path=":memory:"`` gives a private in-memory store shared only by the clients derived
    from this one with `for_principal` / `for_region`. Key material is sealed under a root key
    held outside the database (``$ENVELOPE_KMS_ROOT_KEY``, the file ``$ENVELOPE_KMS_ROOT_KEY_FILE``
    names, or ``kms-root.key`` (0600) in the data directory; see `envelope.kms.store.rootkey`).
    Opening a store that is newer than this build, or sealed under another root key, raises
    `StoreError`; an older one is migrated.

    :param principal: the caller's ARN; default the account root ``arn:aws:iam::<account>:root``.
    :param clock: a callable returning epoch seconds (or an aware datetime): the service's time
        for rotation, deletion windows, import expiry, rate limits and audit event times.
    :param rate_limits: requests per second by operation (``{"Encrypt": 100}``), by family
        (``"Cryptographic"``) or for all (``"*"``); beyond them calls raise ThrottlingException.
    :param via_service: the ``kms:ViaService`` value of calls (as if made by that AWS service).
    :param database: a ``postgresql://`` URL (default ``$ENVELOPE_KMS_DATABASE``): the regions and
        principals live in that PostgreSQL database, shared by every instance pointed at it, and
        the data directory holds only the root key (every instance needs the same one).

    Every call, allowed, denied or failed, appends exactly one event to `audit`. Deliberate
    differences from AWS KMS: grants take effect at once (grant tokens are only validated); key
    material can be imported into symmetric keys only; custom key stores, ``Recipient``
    attestation, KEY_AGREEMENT and SM2/ML-DSA keys are not supported; a principal never created
    in `principals` may still call, with only what key policies and grants give it.
    """

    exceptions = SimpleNamespace(**{code: cls for code, cls in _BY_CODE.items()})

    def __init__(self, path: str | os.PathLike[str] | None = None, region: str = "us-east-1",
                 account: str = "111122223333", principal: str | None = None,
                 clock: Callable[[], float | datetime] | None = None,
                 rate_limits: Mapping[str, float] | None = None, *, via_service: str | None = None,
                 database: str | None = None) -> None:
        if not isinstance(account, str) or not _ACCOUNT.match(account):
            raise ValueError("account must be a 12-digit account id")
        check_region(region)  # before the data directory, its root key or a database file is made
        partition = open_partition(path, None if path == ":memory:" else database_url(database))
        partition.region(region)
        caller = validate_principal(principal) if principal is not None else f"arn:aws:iam::{account}:root"
        limiter = RateLimiter(rate_limits) if rate_limits else None
        self._session = Session(partition, region, account, caller, via_service, as_clock(clock), limiter)

    @classmethod
    def _from_session(cls, session: Session) -> LocalKMS:
        client = cls.__new__(cls)
        session.partition.region(session.region)
        client._session = session
        return client

    def for_principal(self, principal: str, *, account: str | None = None, via_service: str | None = None,
                      source_ip: str | None = None, user_agent: str | None = None,
                      secure_transport: bool | None = None) -> LocalKMS:
        """A client for another caller over the same store, region and clock.

        :param account: the caller's account; default: the account in ``principal``'s ARN.
        :param source_ip: recorded in audit events (``sourceIPAddress``), e.g. by a local endpoint;
            policies see it as ``aws:SourceIp``.
        :param user_agent: recorded in audit events (``userAgent``); policies see ``aws:UserAgent``.
        :param secure_transport: ``aws:SecureTransport`` (whether the call came over TLS); default
            as this client's (in-process calls count as secure).
        """
        validate_principal(principal)
        s = self._session
        own = account or principal.split(":")[4]
        return self._from_session(replace(s, account=own, principal=principal, via_service=via_service,
                                          source_ip=source_ip or s.source_ip,
                                          user_agent=user_agent or s.user_agent,
                                          secure_transport=(s.secure_transport if secure_transport is None
                                                            else secure_transport)))

    def for_region(self, region: str) -> LocalKMS:
        """A client for the same caller in another region of the same store."""
        return self._from_session(replace(self._session, region=region))

    @property
    def region(self) -> str:
        """The region this client calls."""
        return self._session.region

    @property
    def account(self) -> str:
        """The caller's account id."""
        return self._session.account

    @property
    def principal(self) -> str:
        """The caller's ARN."""
        return self._session.principal

    @property
    def data_dir(self) -> str | None:
        """The data directory, or None for an in-memory store."""
        directory = self._session.partition.directory
        return None if directory is None else str(directory)

    @property
    def audit(self) -> AuditLog:
        """The audit log of this client's region."""
        return self._session.partition.region(self._session.region).audit

    def _region_state(self) -> Region:
        """This client's region: its database and caches (the endpoint's group commit uses it)."""
        return self._session.partition.region(self._session.region)

    @property
    def principals(self) -> PrincipalStore:
        """The partition's principals and their identity policies."""
        return PrincipalStore(self._session.partition, self._session.clock)

    def _audit_rejected(self, operation: str, code: str, message: str, params: Mapping[str, Any]) -> None:
        """Audit a request the endpoint refused before dispatch (its caller is authenticated)."""
        record_rejected(self._session, operation, params, KMSError(message, code=code))

    def _dispatch(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Run an operation by its API name ("GenerateDataKey") with boto3's keyword arguments:
        the path every method and the endpoint take.

        :raises KeyError: the operation is not served (the endpoint checks `SERVED` first).
        """
        return execute(self._session, PLANS[operation], params)


def _method(plan: Plan) -> Callable[..., dict[str, Any]]:
    """LocalKMS's method for one operation: check the arguments, run the engine; nothing else."""
    def method(self: LocalKMS, **kwargs: Any) -> dict[str, Any]:
        return execute(self._session, plan, kwargs)

    op = plan.operation
    method.__name__ = op.method
    method.__qualname__ = f"LocalKMS.{op.method}"
    method.__doc__ = f"KMS {op.name}: {op.summary}\n\nboto3's ``{op.method}`` arguments and response shape."
    return method


# The methods come from the operation table (one per served operation, boto3's names); their
# typed declarations are `ops.api.ClientAPI`, generated from the same table.
for _plan in PLANS.values():
    setattr(LocalKMS, _plan.operation.method, _method(_plan))
del _plan

# Operation name -> boto3 method name of every operation LocalKMS serves.
SERVED: Mapping[str, str] = {name: plan.operation.method for name, plan in PLANS.items()}
