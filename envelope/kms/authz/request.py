"""What an authorization decision is asked about: the request, its facts and the caller as policies see them.

Shared by the policy engine (`policy`) and the condition operators (`conditions`); pure values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["AuthorizationRequest", "Caller", "KeyFacts", "RequestFacts"]


class KeyFacts(Protocol):
    """The KMS key a request acts on, as its condition keys see it (the engine reads aliases and
    tags only if a policy asks for them)."""

    @property
    def spec(self) -> str: ...
    @property
    def usage(self) -> str: ...
    @property
    def origin(self) -> str: ...
    @property
    def multi_region(self) -> bool: ...
    @property
    def region_type(self) -> str | None: ...   # PRIMARY or REPLICA for a multi-Region key

    def aliases(self) -> tuple[str, ...]: ...
    def tags(self) -> tuple[tuple[str, str], ...]: ...


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the service knows about one request beyond who asks: its parameters and its transport."""

    params: Mapping[str, object]
    key: KeyFacts | None = None          # None: not a KMS key resource operation
    request_alias: str | None = None     # the alias name the request named the key by
    region: str = ""
    now: float = 0.0
    source_ip: str | None = None
    user_agent: str | None = None
    secure_transport: bool = True
    same_key: Callable[[], bool] | None = None  # ReEncrypt: source and destination are one key


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """One call to authorize: who, which action, on which key, with which request values."""

    principal: str
    action: str
    key_arn: str
    key_account: str
    encryption_context: Mapping[str, str] | None = None
    grant_tokens: tuple[str, ...] = ()
    via_service: str | None = None
    extra_conditions: Mapping[str, object] = field(default_factory=dict)
    # What the condition keys need (parameters, key attributes, transport); None: a bare request,
    # whose parameter keys come from ``extra_conditions`` (see `condkeys`).
    facts: RequestFacts | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """The calling principal as policies see it."""

    account: str
    forms: tuple[str, ...]      # the ARN plus, for an assumed-role session, its role ARN
    is_root: bool
    arn: str                    # aws:PrincipalArn
