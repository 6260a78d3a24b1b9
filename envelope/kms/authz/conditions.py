"""Policy condition operators (String*, Arn*, Numeric*, Bool, Null, set and IfExists forms).

Compiles the Condition block of a statement and tests it against a request's values; no I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from ...errors import KMSError
from .request import AuthorizationRequest, Caller

__all__ = ["Condition", "RequestValues", "as_text", "compile_condition", "malformed_policy", "wildcard"]


def malformed_policy(message: str) -> NoReturn:
    raise KMSError(f"malformed policy document: {message}", code="MalformedPolicyDocumentException")


@functools.lru_cache(maxsize=4096)
def wildcard(pattern: str) -> re.Pattern[str]:
    """IAM wildcards: ``*`` is any run of characters, ``?`` exactly one."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


@dataclass(frozen=True, slots=True)
class Condition:
    """One compiled condition: a key, an operator and its values; `test` is given the request's values."""

    key: str                    # lower-cased condition key
    kind: str                   # eq, ieq, like, bool, null, num
    negate: bool
    set_op: str                 # "", "all", "any"
    if_exists: bool
    values: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]
    numbers: tuple[float, ...]
    num_cmp: str

    def test(self, present: tuple[str, ...] | None) -> bool:
        if self.kind == "null":
            absent = not present
            return absent if "true" in self.values else not absent
        if not present:
            if self.set_op:
                return self.set_op == "all"
            return self.if_exists or self.negate
        one = self._one
        if self.set_op == "all":
            return all(one(v) != self.negate for v in present)
        if self.set_op == "any":
            return any(one(v) != self.negate for v in present)
        return any(one(v) for v in present) != self.negate

    def _one(self, value: str) -> bool:
        kind = self.kind
        if kind == "eq":
            return value in self.values
        if kind in ("ieq", "bool"):
            return value.lower() in self.values
        if kind == "like":
            return any(p.fullmatch(value) for p in self.patterns)
        try:
            number = float(value)
        except ValueError:
            return False
        return any(_NUM_CMP[self.num_cmp](number, n) for n in self.numbers)


_NUM_CMP: dict[str, Callable[[float, float], bool]] = {
    "Equals": lambda a, b: a == b, "LessThan": lambda a, b: a < b,
    "LessThanEquals": lambda a, b: a <= b, "GreaterThan": lambda a, b: a > b,
    "GreaterThanEquals": lambda a, b: a >= b,
}
# base operator -> (kind, negated, numeric comparison)
_OPERATORS: dict[str, tuple[str, bool, str]] = {
    "StringEquals": ("eq", False, ""), "StringNotEquals": ("eq", True, ""),
    "StringEqualsIgnoreCase": ("ieq", False, ""), "StringNotEqualsIgnoreCase": ("ieq", True, ""),
    "StringLike": ("like", False, ""), "StringNotLike": ("like", True, ""),
    "ArnEquals": ("like", False, ""), "ArnLike": ("like", False, ""),
    "ArnNotEquals": ("like", True, ""), "ArnNotLike": ("like", True, ""),
    "Bool": ("bool", False, ""), "Null": ("null", False, ""),
    "NumericEquals": ("num", False, "Equals"), "NumericNotEquals": ("num", True, "Equals"),
    "NumericLessThan": ("num", False, "LessThan"), "NumericLessThanEquals": ("num", False, "LessThanEquals"),
    "NumericGreaterThan": ("num", False, "GreaterThan"),
    "NumericGreaterThanEquals": ("num", False, "GreaterThanEquals"),
}


def as_text(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def compile_condition(operator: str, key: str, raw: object) -> Condition:
    name, set_op = operator, ""
    for prefix, tag in (("ForAllValues:", "all"), ("ForAnyValue:", "any")):
        if name.startswith(prefix):
            name, set_op = name[len(prefix):], tag
    if_exists = name.endswith("IfExists") and name != "Null"
    base = name[:-len("IfExists")] if if_exists else name
    if base not in _OPERATORS:
        malformed_policy(f"unsupported condition operator {operator!r}")
    kind, negate, num_cmp = _OPERATORS[base]
    items = raw if isinstance(raw, (list, tuple)) else (raw,)
    if not items or not all(isinstance(v, (str, bool, int, float)) for v in items):
        malformed_policy(f"condition {operator} {key!r} needs string, number or boolean values")
    texts = [as_text(v) for v in items]
    if kind in ("ieq", "bool", "null"):
        texts = [t.lower() for t in texts]
    if kind in ("bool", "null") and not set(texts) <= {"true", "false"}:
        malformed_policy(f"condition {operator} {key!r} needs true or false")
    numbers: tuple[float, ...] = ()
    if kind == "num":
        try:
            numbers = tuple(float(t) for t in texts)
        except ValueError:
            malformed_policy(f"condition {operator} {key!r} needs numbers")
    patterns = tuple(wildcard(t) for t in texts) if kind == "like" else ()
    return Condition(key.lower(), kind, negate, set_op, if_exists, frozenset(texts), patterns, numbers, num_cmp)


class RequestValues:
    """Lazily computed request values for condition keys (lower-cased key -> values)."""

    __slots__ = ("_cache", "_caller", "_request")

    def __init__(self, request: AuthorizationRequest, caller: Caller) -> None:
        self._request = request
        self._caller = caller
        self._cache: dict[str, tuple[str, ...] | None] = {}

    def get(self, key: str) -> tuple[str, ...] | None:
        if key not in self._cache:
            self._cache[key] = self._compute(key)
        return self._cache[key]

    def _compute(self, key: str) -> tuple[str, ...] | None:
        request = self._request
        for name, value in request.extra_conditions.items():
            if name.lower() == key:
                return _request_values(value)
        context = request.encryption_context or {}
        if key.startswith("kms:encryptioncontext:"):
            wanted = key[len("kms:encryptioncontext:"):]
            found = tuple(v for k, v in context.items() if k.lower() == wanted)
            return found or None
        if key == "kms:encryptioncontextkeys":
            return tuple(context) or None
        if key == "kms:calleraccount" or key == "aws:principalaccount":
            return (self._caller.account,) if self._caller.account else None
        if key == "aws:principalarn":
            return (self._caller.arn,)
        if key == "kms:viaservice":
            return (request.via_service,) if request.via_service else None
        return None


def _request_values(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(as_text(v) for v in value)
    return (as_text(value),)
