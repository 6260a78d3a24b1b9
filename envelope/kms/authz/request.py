"""What an authorization decision is asked about: the request and the caller as policies see it.

Shared by the policy engine (`policy`) and the condition operators (`conditions`); pure values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["AuthorizationRequest", "Caller"]


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


@dataclass(frozen=True, slots=True)
class Caller:
    """The calling principal as policies see it."""

    account: str
    forms: tuple[str, ...]      # the ARN plus, for an assumed-role session, its role ARN
    is_root: bool
    arn: str                    # aws:PrincipalArn
