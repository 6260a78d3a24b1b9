"""Policy documents: validation, the read-only parsed form, and the compiled form `authorize` runs.

The grammar is IAM's (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html)
as KMS takes it for key policies and IAM for identity policies: Version, Id, Statement; Sid,
Effect, Principal/NotPrincipal, Action/NotAction, Resource/NotResource, Condition. Pure.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

from ...errors import KMSError
from .conditions import Condition, RequestValues, Template, compile_template, malformed_policy, wildcard
from .conditions import compile_condition as _compile_condition
from .request import Caller

__all__ = ["ACCOUNT_RE", "MAX_POLICY_BYTES", "ROOT_RE", "CompiledPolicy", "Statement", "compiled_policy",
           "default_key_policy", "parse_policy"]

MAX_POLICY_BYTES = 32 * 1024  # KMS key policy size limit
_VERSIONS = ("2012-10-17", "2008-10-17")
_STATEMENT_KEYS = frozenset({"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction",
                             "Resource", "NotResource", "Condition"})
_PRINCIPAL_KINDS = frozenset({"AWS", "Service", "Federated", "CanonicalUser"})



# --- read-only parsed documents ---------------------------------------------------------------

class _FrozenDict(dict[str, object]):
    """A dict that refuses mutation, so a compiled form attached to it can never go stale."""

    __slots__ = ("_compiled",)
    _compiled: CompiledPolicy | None

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
        if self.anything or value in self.exact or any(p.fullmatch(value) for p in self.patterns):
            return True
        for template in self.templates:
            source = template.resolve(values, lambda part: wildcard(part).pattern)
            if source is not None and re.fullmatch(source, value, re.DOTALL):
                return True
        return False


ACCOUNT_RE = re.compile(r"\d{12}")
ROOT_RE = re.compile(r"arn:[\w-]+:iam::(\d{12}):root")


@dataclass(frozen=True, slots=True)
class _PrincipalSpec:
    matcher: _Matcher           # principal ARNs and service names
    roots: frozenset[str]       # accounts named by root ARN or bare account id
    negated: bool               # NotPrincipal


@dataclass(frozen=True, slots=True)
class Statement:
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
class CompiledPolicy:
    statements: tuple[Statement, ...]
    identity: bool              # compiled as an identity policy (no Principal) or a key policy
    conditional: bool = False   # some statement has a Condition or a Resource policy variable
                                # (decisions may depend on the request)


def _compile_statement(raw: object, index: int, *, identity: bool, variables: bool) -> Statement:
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
    return Statement(sid, effect == "Allow", principal, _Matcher.build(actions, fold=True), not_action,
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
        root = ROOT_RE.fullmatch(name)
        if root or ACCOUNT_RE.fullmatch(name):
            roots.add(root.group(1) if root else name)
        else:
            others.append(name)
    return _PrincipalSpec(_Matcher.build(others), frozenset(roots), key == "NotPrincipal")


def _compile_document(doc: object, *, identity: bool, stored: bool = False) -> CompiledPolicy:
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
    compiled: list[Statement] = []
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
    return CompiledPolicy(tuple(compiled), identity, any(stmt.conditions or stmt.resources.templates
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
def _compile_canonical(canonical: str, identity: bool) -> CompiledPolicy:
    return _compile_document(json.loads(canonical), identity=identity)


def compiled_policy(policy: Mapping[str, object], *, identity: bool) -> CompiledPolicy:
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
    if not ACCOUNT_RE.fullmatch(account):
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
