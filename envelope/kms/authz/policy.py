"""The KMS authorization engine: key policies, identity policies and grants decide each call.

Pure functions, no I/O. Policies are validated once by `parse_policy` and compiled once (cached)
in `document`; this module evaluates them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from ...errors import KMSError
from ..model.access import Decision, Grant
from .conditions import RequestValues
from .document import ACCOUNT_RE, CompiledPolicy, Statement, compiled_policy, default_key_policy, parse_policy
from .grantrules import grant_allows, names
from .request import AuthorizationRequest, Caller, RequestFacts

__all__ = [
    "AuthorizationRequest",
    "Decision",
    "Grant",
    "access_denied",
    "authorize",
    "authorize_retire",
    "default_key_policy",
    "parse_policy",
    "request_independent",
    "would_lock_out",
]


# --- evaluation -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def _caller(principal: str) -> Caller:
    if ACCOUNT_RE.fullmatch(principal):
        return Caller(principal, (f"arn:aws:iam::{principal}:root", principal), True,
                       f"arn:aws:iam::{principal}:root")
    parts = principal.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return Caller("", (principal,), False, principal)  # a service principal
    account, resource = parts[4], parts[5]
    if parts[2] == "sts" and resource.startswith("assumed-role/"):
        role = resource.split("/")[1]
        role_arn = f"arn:{parts[1]}:iam::{account}:role/{role}"
        return Caller(account, (principal, role_arn), False, role_arn)
    return Caller(account, (principal,), resource == "root", principal)


_ANY_KEY = "\x00any key"  # would_lock_out without a key ARN: every Resource element matches


def _applies(stmt: Statement, action: str, resource: str, values: RequestValues) -> bool:
    if stmt.actions(action) == stmt.not_action:
        return False
    if (resource is _ANY_KEY or stmt.resources.match(resource, values)) == stmt.not_resource:
        return False
    return all(cond.test(values) for cond in stmt.conditions)


def _scan(policy: CompiledPolicy, who: Caller, action: str, resource: str,
          values: RequestValues) -> tuple[Statement | None, Statement | None, Statement | None]:
    """Return (deny, direct allow, root-delegating allow) statements that apply, first of each."""
    direct = root = None
    for stmt in policy.statements:
        if stmt.allow and direct is not None:
            continue
        match = stmt.principal_match(who)
        if match is None or not _applies(stmt, action, resource, values):
            continue
        if not stmt.allow:
            return stmt, None, None
        if match == "direct":
            direct = stmt
        elif root is None:
            root = stmt
    return None, direct, root


def authorize(request: AuthorizationRequest, key_policy: Mapping[str, object] | None,
              identity_policies: Sequence[Mapping[str, object]], grants: Sequence[Grant]) -> Decision:
    """Decide one call by KMS rules.

    An explicit Deny (key policy or identity policy) wins. Otherwise the call is allowed when the
    key policy names the caller; or names the caller's account root and (unless the caller is that
    root) an identity policy allows; or a grant allows. A cross-account caller needs the key policy
    and its own identity policy. ``key_policy=None`` marks an account-level action: identity
    policies decide, and the account root is always allowed. Pass what `parse_policy` returned for
    speed; other mappings are compiled by their canonical JSON.
    """
    who = _caller(request.principal)
    action = request.action.lower()
    values = RequestValues(request, who)
    identity_allow: Statement | None = None
    for doc in identity_policies:
        deny, allow, _ = _scan(compiled_policy(doc, identity=True), who, action, request.key_arn, values)
        if deny is not None:
            return Decision(False, f"explicit deny in identity policy statement {deny.sid!r}",
                            "explicit-deny-identity-policy")
        identity_allow = identity_allow or allow
    own_account = who.account == request.key_account
    if key_policy is None:
        if who.is_root and own_account:
            return Decision(True, "allowed: account root", "account-root")
        if identity_allow is not None and own_account:
            return Decision(True, f"allowed by identity policy statement {identity_allow.sid!r}",
                            "identity-policy")
        return Decision(False, "no identity policy allows the action", "no-identity-policy-allow")
    deny, direct, root = _scan(compiled_policy(key_policy, identity=False), who, action, request.key_arn, values)
    if deny is not None:
        return Decision(False, f"explicit deny in key policy statement {deny.sid!r}",
                        "explicit-deny-key-policy")
    key_allow = direct or root
    if key_allow is not None:
        # The caller's own root needs no identity policy (nor does a service principal, which has
        # none); anyone reached through a root statement, or from another account, needs one.
        if (direct is not None and (own_account or not who.account)) or who.is_root:
            return Decision(True, f"allowed by key policy statement {key_allow.sid!r}", "key-policy")
        if identity_allow is not None:
            return Decision(True, f"allowed by key policy statement {key_allow.sid!r} and identity "
                                  f"policy statement {identity_allow.sid!r}", "identity-policy")
    operation = request.action.split(":", 1)[-1]
    for grant in grants:
        if grant_allows(grant, request, who, operation):
            return Decision(True, f"allowed by grant {grant.grant_id}", "grant")
    if key_allow is None:
        return Decision(False, "no key policy statement or grant allows the action", "no-key-policy-allow")
    return Decision(False, f"key policy statement {key_allow.sid!r} delegates to identity policies, "
                           "and none allows the action", "no-identity-policy-allow")


def request_independent(key_policy: Mapping[str, object] | None,
                        identity_policies: Sequence[Mapping[str, object]], grants: Sequence[Grant]) -> bool:
    """Whether `authorize` gives these documents the same decision whatever the request's values.

    True when no statement has a Condition or a Resource policy variable, and no grant has
    constraints or allows CreateGrant (whose request decides what the grant allows): the decision
    then depends only on the principal, the action and the key, so a caller may reuse it for as
    long as these documents are unchanged (the request's values cannot change it).
    """
    if key_policy is not None and compiled_policy(key_policy, identity=False).conditional:
        return False
    if any(compiled_policy(doc, identity=True).conditional for doc in identity_policies):
        return False
    return not any(grant.constraints or "CreateGrant" in grant.operations for grant in grants)


def authorize_retire(request: AuthorizationRequest, grant: Grant,
                     identity_policies: Sequence[Mapping[str, object]]) -> Decision:
    """Decide a RetireGrant call on ``grant``: the grant, not the key policy, says who may.

    Allowed for the grant's retiring principal; its grantee if the grant allows RetireGrant; the
    root of the account that created the grant; and IAM principals of the key's account or of the
    retiring account whose identity policy allows ``kms:RetireGrant``. An explicit Deny in an
    identity policy wins; ``kms:RetireGrant`` in a key policy has no effect
    (https://docs.aws.amazon.com/kms/latest/developerguide/grant-delete.html).
    """
    who = _caller(request.principal)
    values = RequestValues(request, who)
    identity_allow: Statement | None = None
    for doc in identity_policies:
        deny, allow, _ = _scan(compiled_policy(doc, identity=True), who, "kms:retiregrant", request.key_arn, values)
        if deny is not None:
            return Decision(False, f"explicit deny in identity policy statement {deny.sid!r}",
                            "explicit-deny-identity-policy")
        identity_allow = identity_allow or allow
    if names(grant.retiring_principal, who):
        return Decision(True, f"retiring principal of grant {grant.grant_id}", "grant")
    if "RetireGrant" in grant.operations and names(grant.grantee_principal, who):
        return Decision(True, f"grantee of grant {grant.grant_id}, which allows RetireGrant", "grant")
    if who.is_root and who.account == grant.issuing_account:
        return Decision(True, "the account that created the grant", "account-root")
    retiring = grant.retiring_principal or ""
    retiring_account = (retiring if ACCOUNT_RE.fullmatch(retiring)
                        else retiring.split(":")[4] if retiring.count(":") >= 5 else "")
    if identity_allow is not None and who.account in (request.key_account, retiring_account):
        return Decision(True, f"allowed by identity policy statement {identity_allow.sid!r}", "identity-policy")
    return Decision(False, "no grant or identity policy allows the caller to retire the grant",
                    "no-identity-policy-allow")


def would_lock_out(policy: Mapping[str, object], principal: str,
                   identity_policies: Sequence[Mapping[str, object]], *,
                   key_arn: str | None = None, key_account: str | None = None,
                   facts: RequestFacts | None = None) -> bool:
    """Return True if ``policy`` would stop ``principal`` from calling PutKeyPolicy again.

    This is KMS's lockout safety check. Without ``key_arn`` every Resource element is taken to
    name the key. Conditions see ``facts`` (those of the request that sets the policy: its
    transport, its caller; no encryption context), or without them a bare request, so a policy
    that allows PutKeyPolicy only under other conditions counts as a lockout. ``key_account``
    defaults to the principal's account.
    """
    account = key_account if key_account is not None else _caller(principal).account
    request = AuthorizationRequest(principal, "kms:PutKeyPolicy", _ANY_KEY if key_arn is None else key_arn,
                                   account, facts=facts)
    return not authorize(request, policy, identity_policies, ()).allowed


def access_denied(request: AuthorizationRequest, decision: Decision) -> KMSError:
    """Return the AccessDeniedException KMS gives for a refused call (principal, action and key)."""
    if decision.basis == "explicit-deny-key-policy":
        why = "with an explicit deny in a resource-based policy"
    elif decision.basis == "explicit-deny-identity-policy":
        why = "with an explicit deny in an identity-based policy"
    elif decision.basis == "no-identity-policy-allow":
        why = f"because no identity-based policy allows the {request.action} action"
    else:
        why = f"because no resource-based policy allows the {request.action} action"
    return KMSError(f"User: {request.principal} is not authorized to perform: {request.action} on "
                    f"resource: {request.key_arn} {why}", code="AccessDeniedException")

