"""The KMS authorization engine: key policies, identity policies and grants decide each call.

Pure functions, no I/O. Policies are validated once by `parse_policy` and compiled once (cached).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

from ...errors import KMSError
from ..model.access import Decision, Grant
from .conditions import Condition, RequestValues, Template, compile_template, malformed_policy, wildcard
from .conditions import compile_condition as _compile_condition
from .grantrules import grant_allows, names
from .request import AuthorizationRequest, Caller

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

MAX_POLICY_BYTES = 32 * 1024  # KMS key policy size limit
_VERSIONS = ("2012-10-17", "2008-10-17")
_STATEMENT_KEYS = frozenset({"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction",
                             "Resource", "NotResource", "Condition"})
_PRINCIPAL_KINDS = frozenset({"AWS", "Service", "Federated", "CanonicalUser"})



# --- read-only parsed documents ---------------------------------------------------------------

class _FrozenDict(dict[str, object]):
    """A dict that refuses mutation, so a compiled form attached to it can never go stale."""

    __slots__ = ("_compiled",)
    _compiled: _CompiledPolicy | None

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("a parsed policy is read-only; parse a new one instead")

    __setitem__ = __delitem__ = clear = pop = popitem = _refuse
    setdefault = update = __ior__ = _refuse

    def __copy__(self) -> dict[str, object]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, object]) -> dict[str, object]:
        thawed: dict[str, object] = json.loads(json.dumps(self))
        return thawed

    def __reduce__(self) -> tuple[object, ...]:
        return (dict, (dict(self),))


def _freeze_dict(value: Mapping[str, object]) -> _FrozenDict:
    frozen = _FrozenDict()
    for k, v in value.items():
        dict.__setitem__(frozen, k, _freeze(v))
    frozen._compiled = None
    return frozen


def _freeze(value: object) -> object:
    if isinstance(value, dict):
        return _freeze_dict(value)
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _strings(value: object, what: str) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else (value,)
    if not items or not all(isinstance(i, str) and i for i in items):
        malformed_policy(f"{what} must be a non-empty string or list of strings")
    return tuple(str(i) for i in items)


# --- compiled forms ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Matcher:
    """Matches a string against literals and wildcard patterns (or anything); Resource values
    may hold policy variables, resolved per request."""

    anything: bool
    exact: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]
    templates: tuple[Template, ...] = ()

    @classmethod
    def build(cls, values: Sequence[str], *, fold: bool = False, variables: str = "") -> _Matcher:
        vals = [v.lower() for v in values] if fold else list(values)
        templates = []
        if variables:
            found = [(v, compile_template(v, variables)) for v in vals]
            templates = [t for _, t in found if t is not None]
            vals = [v for v, t in found if t is None]
        return cls("*" in vals, frozenset(v for v in vals if "*" not in v and "?" not in v),
                   tuple(wildcard(v) for v in vals if ("*" in v or "?" in v) and v != "*"), tuple(templates))

    def __call__(self, value: str) -> bool:
        return self.anything or value in self.exact or any(p.fullmatch(value) for p in self.patterns)

    def match(self, value: str, values: RequestValues) -> bool:
        if self(value):
            return True
        for template in self.templates:
            source = template.resolve(values, lambda part: wildcard(part).pattern)
            if source is not None and re.fullmatch(source, value, re.DOTALL):
                return True
        return False


_ACCOUNT_RE = re.compile(r"\d{12}")
_ROOT_RE = re.compile(r"arn:[\w-]+:iam::(\d{12}):root")


@dataclass(frozen=True, slots=True)
class _PrincipalSpec:
    matcher: _Matcher           # principal ARNs and service names
    roots: frozenset[str]       # accounts named by root ARN or bare account id
    negated: bool               # NotPrincipal


@dataclass(frozen=True, slots=True)
class _Statement:
    sid: str
    allow: bool
    principal: _PrincipalSpec | None
    actions: _Matcher
    not_action: bool
    resources: _Matcher
    not_resource: bool
    conditions: tuple[Condition, ...]

    def principal_match(self, who: Caller) -> str | None:
        """Return "direct", "root" (the caller's account root is named) or None."""
        spec = self.principal
        if spec is None:
            return "direct"  # identity policies apply to whoever they are attached to
        hit = any(spec.matcher(form) for form in who.forms)
        via_root = who.account in spec.roots
        if spec.negated:
            # NotPrincipal exempts a caller only if it names each level the caller is evaluated
            # at: its account, then (unless the caller is that account's root) the user, role or
            # session itself. An account ARN alone exempts the account root only (IAM User
            # Guide, NotPrincipal: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html).
            # With Allow (which IAM no longer supports) an exclusion errs the other way: naming
            # the caller itself is enough to leave it out.
            if self.allow:
                exempt = hit or (via_root and who.is_root)
            else:
                exempt = (via_root and (who.is_root or hit)) if who.account else hit
            return None if exempt else "direct"
        if hit or (via_root and who.is_root):
            return "direct"
        return "root" if via_root else None


@dataclass(frozen=True, slots=True)
class _CompiledPolicy:
    statements: tuple[_Statement, ...]
    identity: bool              # compiled as an identity policy (no Principal) or a key policy
    conditional: bool = False   # some statement has a Condition or a Resource policy variable
                                # (decisions may depend on the request)


def _compile_statement(raw: object, index: int, *, identity: bool, variables: bool) -> _Statement:
    if not isinstance(raw, Mapping):
        malformed_policy("each statement must be an object")
    unknown = set(raw) - _STATEMENT_KEYS
    if unknown:
        malformed_policy(f"unknown statement element {min(unknown)!r}")
    sid = raw.get("Sid", f"#{index}")
    if not isinstance(sid, str):
        malformed_policy("Sid must be a string")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        malformed_policy(f"statement {sid!r}: Effect must be Allow or Deny")
    principal = _compile_principal(raw, sid, identity=identity)
    actions, not_action = _pick_one(raw, "Action", "NotAction", sid, required=True)
    resources, not_resource = _pick_one(raw, "Resource", "NotResource", sid, required=identity)
    conditions: list[Condition] = []
    block = raw.get("Condition", {})
    if not isinstance(block, Mapping):
        malformed_policy(f"statement {sid!r}: Condition must be an object")
    for operator, entries in block.items():
        if not isinstance(entries, Mapping) or not entries:
            malformed_policy(f"statement {sid!r}: condition {operator!r} must map keys to values")
        conditions.extend(_compile_condition(operator, k, v, variables=variables) for k, v in entries.items())
    for action in actions:
        if action != "*" and not re.fullmatch(r"[A-Za-z0-9-]+:[A-Za-z0-9*?]+", action):
            malformed_policy(f"statement {sid!r}: bad action {action!r}")
    resource_matcher = _Matcher.build(resources or ("*",), variables=f"statement {sid!r}: Resource" if variables else "")
    return _Statement(sid, effect == "Allow", principal, _Matcher.build(actions, fold=True), not_action,
                      resource_matcher, not_resource, tuple(conditions))


def _pick_one(raw: Mapping[str, object], name: str, negated: str, sid: str,
              *, required: bool) -> tuple[tuple[str, ...], bool]:
    if name in raw and negated in raw:
        malformed_policy(f"statement {sid!r} has both {name} and {negated}")
    if name in raw:
        return _strings(raw[name], name), False
    if negated in raw:
        return _strings(raw[negated], negated), True
    if required:
        malformed_policy(f"statement {sid!r} needs {name} or {negated}")
    return (), False


def _compile_principal(raw: Mapping[str, object], sid: str, *, identity: bool) -> _PrincipalSpec | None:
    key = "Principal" if "Principal" in raw else "NotPrincipal" if "NotPrincipal" in raw else None
    if identity:
        if key:
            malformed_policy(f"statement {sid!r}: identity policies take no {key}")
        return None
    if key is None or ("Principal" in raw and "NotPrincipal" in raw):
        malformed_policy(f"statement {sid!r} needs exactly one of Principal or NotPrincipal")
    value = raw[key]
    names: list[str] = []
    if value == "*":
        names.append("*")
    elif isinstance(value, Mapping) and value and set(value) <= _PRINCIPAL_KINDS:
        for kind_values in value.values():
            names.extend(_strings(kind_values, key))
    else:
        malformed_policy(f"statement {sid!r}: {key} must be \"*\" or an object of AWS/Service/Federated lists")
    roots = set()
    others = []
    for name in names:
        root = _ROOT_RE.fullmatch(name)
        if root or _ACCOUNT_RE.fullmatch(name):
            roots.add(root.group(1) if root else name)
        else:
            others.append(name)
    return _PrincipalSpec(_Matcher.build(others), frozenset(roots), key == "NotPrincipal")


def _compile_document(doc: object, *, identity: bool, stored: bool = False) -> _CompiledPolicy:
    if not isinstance(doc, Mapping):
        malformed_policy("the document must be a JSON object")
    unknown = set(doc) - {"Version", "Id", "Statement"}
    if unknown:
        malformed_policy(f"unknown top-level element {min(unknown)!r}")
    if "Version" in doc and doc["Version"] not in _VERSIONS:
        malformed_policy("Version must be 2012-10-17 or 2008-10-17")
    if "Id" in doc and not isinstance(doc["Id"], str):
        malformed_policy("Id must be a string")
    statements = doc.get("Statement")
    if isinstance(statements, Mapping):
        statements = (statements,)
    if not isinstance(statements, (list, tuple)) or not statements:
        malformed_policy("Statement must be an object or a non-empty list")
    # Policy variables exist only in version 2012-10-17; without a Version, IAM reads 2008-10-17.
    variables = doc.get("Version") == "2012-10-17"
    compiled: list[_Statement] = []
    for index, raw in enumerate(statements):
        try:
            compiled.append(_compile_statement(raw, index, identity=identity, variables=variables))
        except KMSError:
            if not stored or not isinstance(raw, Mapping):
                raise
            # A policy stored before this engine refused what it cannot evaluate: fail closed. A
            # Deny applies whatever its conditions and resources say; an Allow is dropped.
            if raw.get("Effect") == "Deny":
                bare = {k: v for k, v in raw.items() if k not in ("Condition", "Resource", "NotResource")}
                compiled.append(_compile_statement({**bare, "Resource": "*"}, index, identity=identity,
                                                   variables=False))
    return _CompiledPolicy(tuple(compiled), identity, any(stmt.conditions or stmt.resources.templates
                                                          for stmt in compiled))


@functools.lru_cache(maxsize=1024)
def _parse_cached(text: str, identity: bool, stored: bool) -> _FrozenDict:
    if len(text.encode("utf-8")) > MAX_POLICY_BYTES:
        malformed_policy(f"the policy is larger than {MAX_POLICY_BYTES} bytes")
    try:
        doc = json.loads(text)
    except ValueError:
        malformed_policy("the policy is not valid JSON")
    compiled = _compile_document(doc, identity=identity, stored=stored)  # refuses anything but an object
    frozen = _freeze_dict(doc)
    frozen._compiled = compiled
    return frozen


def parse_policy(text: str, *, identity: bool = False, stored: bool = False) -> dict[str, object]:
    """Validate a key policy (or, with ``identity=True``, an IAM identity policy) and return it.

    The result is read-only (arrays become tuples) and carries its compiled form, so passing it
    to `authorize` costs no recompilation. Parsing is cached by text.

    ``stored=True`` reads a policy already in the store: a statement naming something this
    engine cannot evaluate (a policy stored by an earlier version) fails closed, a Deny applying
    unconditionally and an Allow being dropped, so the key stays manageable by whoever else the
    policy allows instead of becoming unreadable.

    :raises KMSError: ``MalformedPolicyDocumentException`` for bad JSON, a policy over 32 KiB, or
        a bad Version, Statement, Effect, Principal, Action, Resource or Condition (including
        a condition key or operator this engine cannot evaluate, named in the message).
    """
    if not isinstance(text, str):
        raise TypeError("policy text must be a str")
    return _parse_cached(text, identity, stored)


@functools.lru_cache(maxsize=1024)
def _compile_canonical(canonical: str, identity: bool) -> _CompiledPolicy:
    return _compile_document(json.loads(canonical), identity=identity)


def _compiled(policy: Mapping[str, object], *, identity: bool) -> _CompiledPolicy:
    if isinstance(policy, _FrozenDict):
        compiled = policy._compiled
        if compiled is not None and compiled.identity == identity:
            return compiled
    # A plain mapping may be mutated between calls, so it is keyed by its canonical JSON.
    return _compile_canonical(json.dumps(policy, sort_keys=True, default=list), identity)


def default_key_policy(account: str) -> str:
    """Return the JSON text of the policy KMS gives a key created without one.

    It lets the account root do ``kms:*``, which delegates access to the account's IAM policies.
    """
    if not _ACCOUNT_RE.fullmatch(account):
        raise ValueError("account must be a 12-digit account id")
    return json.dumps({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }],
    }, indent=2)


# --- evaluation -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def _caller(principal: str) -> Caller:
    if _ACCOUNT_RE.fullmatch(principal):
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


def _applies(stmt: _Statement, action: str, resource: str, values: RequestValues) -> bool:
    if stmt.actions(action) == stmt.not_action:
        return False
    if (resource is _ANY_KEY or stmt.resources.match(resource, values)) == stmt.not_resource:
        return False
    return all(cond.test(values) for cond in stmt.conditions)


def _scan(policy: _CompiledPolicy, who: Caller, action: str, resource: str,
          values: RequestValues) -> tuple[_Statement | None, _Statement | None, _Statement | None]:
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
    identity_allow: _Statement | None = None
    for doc in identity_policies:
        deny, allow, _ = _scan(_compiled(doc, identity=True), who, action, request.key_arn, values)
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
    deny, direct, root = _scan(_compiled(key_policy, identity=False), who, action, request.key_arn, values)
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
    if key_policy is not None and _compiled(key_policy, identity=False).conditional:
        return False
    if any(_compiled(doc, identity=True).conditional for doc in identity_policies):
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
    identity_allow: _Statement | None = None
    for doc in identity_policies:
        deny, allow, _ = _scan(_compiled(doc, identity=True), who, "kms:retiregrant", request.key_arn, values)
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
    retiring_account = (retiring if _ACCOUNT_RE.fullmatch(retiring)
                        else retiring.split(":")[4] if retiring.count(":") >= 5 else "")
    if identity_allow is not None and who.account in (request.key_account, retiring_account):
        return Decision(True, f"allowed by identity policy statement {identity_allow.sid!r}", "identity-policy")
    return Decision(False, "no grant or identity policy allows the caller to retire the grant",
                    "no-identity-policy-allow")


def would_lock_out(policy: Mapping[str, object], principal: str,
                   identity_policies: Sequence[Mapping[str, object]], *,
                   key_arn: str | None = None, key_account: str | None = None) -> bool:
    """Return True if ``policy`` would stop ``principal`` from calling PutKeyPolicy again.

    This is KMS's lockout safety check. Without ``key_arn`` every Resource element is taken to
    name the key. Conditions are evaluated against a bare request (no encryption context, no
    via-service), so a policy that allows PutKeyPolicy only under such conditions counts as a
    lockout. ``key_account`` defaults to the principal's account.
    """
    account = key_account if key_account is not None else _caller(principal).account
    request = AuthorizationRequest(principal, "kms:PutKeyPolicy", _ANY_KEY if key_arn is None else key_arn,
                                   account)
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

