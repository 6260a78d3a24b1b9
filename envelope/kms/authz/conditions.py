"""Policy condition operators and policy variables, compiled once and tested against a request.

Operators and their type rules follow the IAM User Guide, "IAM JSON policy elements: Condition
operators" (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html):
String*, Numeric*, Date*, Bool, BinaryEquals, IpAddress/NotIpAddress, Arn*, Null, each (but Null)
with an ``...IfExists`` form, and the ``ForAllValues:``/``ForAnyValue:`` set qualifiers. Policy
variables (``${aws:username}``, ``${aws:PrincipalTag/team, 'none'}``, ``${*}``) follow
"IAM policy elements: Variables and tags". The condition keys themselves and when they are
present come from `condkeys`. No I/O.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import NoReturn

from ...errors import KMSError
from .condkeys import ConditionKey, Values, as_text, lookup
from .request import AuthorizationRequest, Caller

__all__ = ["Condition", "RequestValues", "Template", "as_text", "compile_condition", "compile_template",
           "malformed_policy", "wildcard"]


def malformed_policy(message: str) -> NoReturn:
    raise KMSError(f"malformed policy document: {message}", code="MalformedPolicyDocumentException")


@functools.lru_cache(maxsize=4096)
def wildcard(pattern: str) -> re.Pattern[str]:
    """IAM wildcards: ``*`` is any run of characters, ``?`` exactly one."""
    return re.compile(_wildcard_source(pattern), re.DOTALL)


def _wildcard_source(pattern: str, *, star: str = ".*", one: str = ".") -> str:
    return "".join(star if c == "*" else one if c == "?" else re.escape(c) for c in pattern)


def _arn_source(pattern: str) -> str:
    """ArnLike: each of the six colon-separated parts is matched on its own, so a wildcard in the
    first five never spans a colon; the resource part (the sixth) may contain colons."""
    parts = pattern.split(":", 5)
    if len(parts) < 6:  # "*" (values are checked when the policy is stored)
        return _wildcard_source(pattern)
    return ":".join([_wildcard_source(p, star="[^:]*", one="[^:]") for p in parts[:5]]
                    + [_wildcard_source(parts[5])])


# --- policy variables -------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_VARIABLE_BODY = re.compile(r"^\s*([^\s,']+)\s*(?:,\s*'([^']*)'\s*)?$")
_LITERAL_VARIABLES = {"*": "*", "?": "?", "$": "$"}
# While a resolved value is turned into a regex, the wildcard characters a variable brought in
# are held as private-use characters (which regex escaping leaves alone), then put back escaped.
_HIDE = str.maketrans({"*": "\ue000", "?": "\ue001"})
_SHOW = str.maketrans({"\ue000": "\\*", "\ue001": "\\?"})


@dataclass(frozen=True, slots=True)
class Template:
    """A policy value with variables: literal parts and (key, default) parts, in order."""

    parts: tuple[str | tuple[str, str | None], ...]

    def resolve(self, values: RequestValues, source: Callable[[str], str]) -> str | None:
        """The value as a regex source, or None when a variable is absent and has no default
        (the value then matches nothing).

        ``source`` turns the whole value into a regex source (a plain, wildcard or ARN match);
        the ``*`` and ``?`` a variable brings in (``${*}`` included) stay literal characters.
        """
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            key, default = part
            found = values.get(key) if key else None  # no key: ${*}, ${?}, ${$} give the character
            text = found[0] if found else default
            if text is None:
                return None
            out.append(text.translate(_HIDE))
        return source("".join(out)).translate(_SHOW)


def compile_template(text: str, where: str) -> Template | None:
    """The template of a policy value that uses variables, or None if it uses none.

    :raises KMSError: a variable names a key the engine cannot evaluate, or a multivalued key.
    """
    if "${" not in text:
        return None
    parts: list[str | tuple[str, str | None]] = []
    pos = 0
    for match in _VARIABLE.finditer(text):
        if match.start() > pos:
            parts.append(text[pos:match.start()])
        pos = match.end()
        body = match.group(1).strip()
        if body in _LITERAL_VARIABLES:
            parts.append(("", _LITERAL_VARIABLES[body]))
            continue
        found = _VARIABLE_BODY.match(body)
        if found is None:
            malformed_policy(f"{where}: bad policy variable {match.group(0)!r}")
        key = found.group(1).lower()
        spec = lookup(key)
        if spec is None:
            malformed_policy(f"{where}: policy variable {match.group(0)!r} names condition key "
                             f"{found.group(1)!r}, which this service cannot evaluate")
        if spec[0].multi:
            malformed_policy(f"{where}: policy variable {match.group(0)!r} names a multivalued key")
        parts.append((key, found.group(2)))
    if pos < len(text):
        parts.append(text[pos:])
    return Template(tuple(parts))


# --- operators --------------------------------------------------------------------------------

# base operator -> (kind, negated, comparison)
_OPERATORS: dict[str, tuple[str, bool, str]] = {
    "StringEquals": ("eq", False, ""), "StringNotEquals": ("eq", True, ""),
    "StringEqualsIgnoreCase": ("ieq", False, ""), "StringNotEqualsIgnoreCase": ("ieq", True, ""),
    "StringLike": ("like", False, ""), "StringNotLike": ("like", True, ""),
    "ArnEquals": ("arn", False, ""), "ArnLike": ("arn", False, ""),
    "ArnNotEquals": ("arn", True, ""), "ArnNotLike": ("arn", True, ""),
    "Bool": ("bool", False, ""), "Null": ("null", False, ""),
    "BinaryEquals": ("binary", False, ""),
    "IpAddress": ("ip", False, ""), "NotIpAddress": ("ip", True, ""),
    **{f"Numeric{name}": ("num", negated, cmp) for name, negated, cmp in (
        ("Equals", False, "eq"), ("NotEquals", True, "eq"), ("LessThan", False, "lt"),
        ("LessThanEquals", False, "le"), ("GreaterThan", False, "gt"), ("GreaterThanEquals", False, "ge"))},
    **{f"Date{name}": ("date", negated, cmp) for name, negated, cmp in (
        ("Equals", False, "eq"), ("NotEquals", True, "eq"), ("LessThan", False, "lt"),
        ("LessThanEquals", False, "le"), ("GreaterThan", False, "gt"), ("GreaterThanEquals", False, "ge"))},
}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "eq": lambda a, b: a == b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
}
_TEXT_KINDS = frozenset({"eq", "ieq", "like", "arn"})  # the kinds that take policy variables


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _date(text: str) -> float | None:
    """A date as IAM takes it: an ISO 8601 date or date-time (UTC unless an offset is given), or
    epoch seconds."""
    number = _number(text)
    if number is not None:
        return number
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _binary(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Condition:
    """One compiled condition: a key, an operator and its values; `test` is given the request."""

    key: str                    # lower-cased condition key
    kind: str                   # eq, ieq, like, arn, bool, null, num, date, binary, ip
    negate: bool
    set_op: str                 # "", "all", "any"
    if_exists: bool
    values: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]
    numbers: tuple[float, ...]  # numbers, or dates as epoch seconds
    cmp: str
    spec: ConditionKey          # the key's reader, found once when the policy is compiled
    suffix: str                 # a key family's suffix (the tag key, the context key), lower-cased
    networks: tuple[_Network, ...] = ()
    blobs: frozenset[bytes] = frozenset()
    templates: tuple[Template, ...] = ()  # values with policy variables (resolved per request)

    def test(self, request_values: RequestValues) -> bool:
        present = request_values.read(self.key, self.spec, self.suffix)
        if self.kind == "null":
            absent = not present
            return absent if "true" in self.values else not absent
        if not present:
            if self.if_exists:
                return True
            if self.set_op:
                # ForAllValues holds for an empty set; ForAnyValue needs a value (IAM User Guide,
                # "Multivalued context keys").
                return self.set_op == "all"
            return self.negate
        cond = self._resolved(request_values) if self.templates else self
        one = cond._one
        if self.set_op == "all":
            return all(one(v) != self.negate for v in present)
        if self.set_op == "any":
            return any(one(v) != self.negate for v in present)
        return any(one(v) for v in present) != self.negate

    def _resolved(self, request_values: RequestValues) -> Condition:
        if self.kind in ("like", "arn"):
            source = _arn_source if self.kind == "arn" else _wildcard_source
            found = (t.resolve(request_values, source) for t in self.templates)
            return replace(self, patterns=self.patterns + tuple(re.compile(s, re.DOTALL)
                                                                for s in found if s is not None))
        texts = (t.resolve(request_values, re.escape) for t in self.templates)
        plain = {_unescape(t) for t in texts if t is not None}
        if self.kind == "ieq":
            plain = {t.lower() for t in plain}
        return replace(self, values=self.values | plain)

    def _one(self, value: str) -> bool:
        kind = self.kind
        if kind == "eq":
            return value in self.values
        if kind in ("ieq", "bool"):
            return value.lower() in self.values
        if kind in ("like", "arn"):
            return any(p.fullmatch(value) for p in self.patterns)
        if kind == "num" or kind == "date":
            number = _number(value) if kind == "num" else _date(value)
            if number is None:
                return False
            compare = _COMPARE[self.cmp]
            return any(compare(number, n) for n in self.numbers)
        if kind == "ip":
            address = _address(value)
            return address is not None and any(address.version == n.version and address in n
                                               for n in self.networks)
        return value.encode() in self.blobs  # binary: the key's value as bytes


def _unescape(source: str) -> str:
    return re.sub(r"\\(.)", r"\1", source, flags=re.DOTALL)


def _check_values(operator: str, key: str, kind: str, texts: list[str]) -> None:
    """Refuse values an operator cannot compare (the grammar's type rules)."""
    what = f"condition {operator} {key!r}"
    if kind in ("bool", "null") and not set(texts) <= {"true", "false"}:
        malformed_policy(f"{what} needs true or false")
    if kind == "num" and any(_number(t) is None for t in texts):
        malformed_policy(f"{what} needs numbers")
    if kind == "date" and any(_date(t) is None for t in texts):
        malformed_policy(f"{what} needs ISO 8601 dates or epoch seconds")
    if kind == "binary" and any(_binary(t) is None for t in texts):
        malformed_policy(f"{what} needs base64 values")
    if kind == "ip":
        for text in texts:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                malformed_policy(f"{what} needs IP addresses or CIDR ranges, not {text!r}")


def compile_condition(operator: str, key: str, raw: object, *, variables: bool = True) -> Condition:
    """Compile one ``operator: {key: values}`` entry.

    ``variables``: the policy's version supports policy variables (2012-10-17).

    :raises KMSError: ``MalformedPolicyDocumentException`` for an unknown operator, a condition
        key this service cannot evaluate (named in the message), or values of the wrong type.
    """
    name, set_op = operator, ""
    for prefix, tag in (("ForAllValues:", "all"), ("ForAnyValue:", "any")):
        if name.startswith(prefix):
            name, set_op = name[len(prefix):], tag
    if_exists = name.endswith("IfExists")
    base = name[:-len("IfExists")] if if_exists else name
    if base not in _OPERATORS or (if_exists and base == "Null"):
        malformed_policy(f"unsupported condition operator {operator!r}")
    kind, negate, cmp = _OPERATORS[base]
    lowered = key.lower() if isinstance(key, str) else ""
    found = lookup(lowered)
    if found is None:
        malformed_policy(f"condition key {key!r} is not one this service can evaluate")
    items = raw if isinstance(raw, (list, tuple)) else (raw,)
    if not items or not all(isinstance(v, (str, bool, int, float)) for v in items):
        malformed_policy(f"condition {operator} {key!r} needs string, number or boolean values")
    texts = [as_text(v) for v in items]
    templates: list[Template] = []
    if kind == "arn" and any(t != "*" and _VARIABLE.sub("", t).count(":") < 5 for t in texts):
        # Each of an ARN's six parts is matched on its own: a value with fewer cannot be compared.
        malformed_policy(f"condition {operator} {key!r} needs ARNs (six colon-separated parts) or \"*\"")
    if variables and kind in _TEXT_KINDS:
        static = []
        for text in texts:
            template = compile_template(text, f"condition {operator} {key!r}")
            if template is None:
                static.append(text)
            else:
                templates.append(template)
        texts = static
    if kind in ("ieq", "bool", "null"):
        texts = [t.lower() for t in texts]
    _check_values(operator, key, kind, texts)
    numbers: tuple[float, ...] = ()
    if kind in ("num", "date"):
        parse = _number if kind == "num" else _date
        numbers = tuple(n for n in (parse(t) for t in texts) if n is not None)
    patterns: tuple[re.Pattern[str], ...] = ()
    if kind == "like":
        patterns = tuple(wildcard(t) for t in texts)
    elif kind == "arn":
        patterns = tuple(re.compile(_arn_source(t), re.DOTALL) for t in texts)
    networks = tuple(ipaddress.ip_network(t, strict=False) for t in texts) if kind == "ip" else ()
    blobs = frozenset(b for b in (_binary(t) for t in texts) if b is not None) if kind == "binary" else frozenset()
    return Condition(lowered, kind, negate, set_op, if_exists, frozenset(texts), patterns, numbers, cmp, *found,
                     networks, blobs, tuple(templates))


class RequestValues:
    """Lazily computed request values for condition keys (lower-cased key -> values)."""

    __slots__ = ("_cache", "_caller", "_request")

    def __init__(self, request: AuthorizationRequest, caller: Caller) -> None:
        self._request = request
        self._caller = caller
        self._cache: dict[str, Values] = {}

    def get(self, key: str) -> Values:
        """The values of a (lower-cased) condition key in this request; None: absent."""
        if key in self._cache:
            return self._cache[key]
        found = lookup(key)
        return None if found is None else self.read(key, *found)

    def read(self, key: str, spec: ConditionKey, suffix: str) -> Values:
        """`get` for a key already looked up (compiled conditions hold their key's spec)."""
        cache = self._cache
        if key in cache:
            return cache[key]
        values = cache[key] = spec.values(self._request, self._caller, key, suffix)
        return values
