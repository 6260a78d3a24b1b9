"""Request validation as AWS KMS answers it, driven by the generated operation table.

Checks the model's length, range, pattern and enum constraints of every member present, and
raises one ValidationException counting every failure, in AWS's words:
``1 validation error detected: Value 'x y' at 'aliasName' failed to satisfy constraint: Member
must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$`` (several joined by ``; ``).
Missing members (unless ``require``: the endpoint's raw requests) and wrong Python types are not
judged here: the handlers raise TypeError for those, as botocore does before sending. Values of
blobs, collections and sensitive members are never echoed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import KeyNotFoundError, ValidationError
from .operations import OPERATIONS
from .shapes import Member, Operation

__all__ = ["KEY_ONLY_MEMBERS", "REQUIRED_MEMBERS", "is_alias", "key_only_error", "validate"]

# Member paths in messages are AWS's: camelCase, list items as ``tags.1.member.tagKey``.
_PATTERNS: dict[str, re.Pattern[str]] = {}


def _pattern(text: str) -> re.Pattern[str]:
    found = _PATTERNS.get(text)
    if found is None:
        found = _PATTERNS[text] = re.compile(text)
    return found


def _shown(member: Member, value: object) -> str:
    if member.sensitive or member.type not in ("string", "integer"):
        return "Value"
    return f"Value '{value}'"


def _fail(member: Member, value: object, path: str, rule: str, errors: list[str]) -> None:
    errors.append(f"{_shown(member, value)} at '{path}' failed to satisfy constraint: Member must {rule}")


def _length(member: Member, value: object, size: int, path: str, errors: list[str]) -> None:
    if member.min_length is not None and size < member.min_length:
        _fail(member, value, path, f"have length greater than or equal to {member.min_length}", errors)
    if member.max_length is not None and size > member.max_length:
        _fail(member, value, path, f"have length less than or equal to {member.max_length}", errors)


def _check(member: Member, value: object, path: str, errors: list[str]) -> None:
    kind = member.type
    if kind == "string":
        if not isinstance(value, str):
            return
        _length(member, value, len(value), path, errors)
        if member.pattern is not None and _pattern(member.pattern).search(value) is None:
            _fail(member, value, path, f"satisfy regular expression pattern: {member.pattern}", errors)
        if member.enum and value not in member.enum:
            _fail(member, value, path, f"satisfy enum value set: [{', '.join(member.enum)}]", errors)
    elif kind == "blob":
        if isinstance(value, (bytes, bytearray, memoryview)):
            _length(member, value, len(value), path, errors)
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return
        if member.min_value is not None and value < member.min_value:
            _fail(member, value, path, f"have value greater than or equal to {member.min_value}", errors)
        if member.max_value is not None and value > member.max_value:
            _fail(member, value, path, f"have value less than or equal to {member.max_value}", errors)
    elif kind == "list":
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            return
        _length(member, value, len(value), path, errors)
        item = member.item
        if item is not None:
            for index, entry in enumerate(value, 1):
                _check(item, entry, f"{path}.{index}.member", errors)
    elif kind == "map":
        if not isinstance(value, Mapping):
            return
        _length(member, value, len(value), path, errors)
        for key, entry in value.items():
            if member.key is not None:
                _check(member.key, key, f"{path}.{key}.key", errors)
            if member.value is not None:
                _check(member.value, entry, f"{path}.{key}.value", errors)
    elif kind == "structure" and isinstance(value, Mapping):
        for field in member.members:
            found = value.get(field.name)
            if found is not None:
                _check(field, found, f"{path}.{field.wire_name}", errors)


def _constrained(member: Member) -> bool:
    """Whether a member (or anything inside it) has a constraint to check."""
    return (member.min_length is not None or member.max_length is not None or member.min_value is not None
            or member.max_value is not None or member.pattern is not None or bool(member.enum)
            or any(_constrained(inner) for inner in (member.item, member.key, member.value) if inner is not None)
            or any(_constrained(field) for field in member.members))


class _Step:
    """One member worth checking, with what the common case (a valid scalar) needs at hand."""

    __slots__ = ("enum", "hi", "index", "kind", "lo", "member", "search")

    def __init__(self, index: int, member: Member) -> None:
        self.index = index
        self.member = member
        # Strings and blobs are accepted inline when valid; anything else goes to _check.
        self.kind: Any = {"string": str, "blob": bytes}.get(member.type)  # str, bytes or None
        self.lo = member.min_length if member.min_length is not None else 0
        self.hi = member.max_length if member.max_length is not None else 1 << 62
        self.search = None if member.pattern is None else _pattern(member.pattern).search
        self.enum = frozenset(member.enum) if member.enum else None


# Per operation: the members worth checking, by name.
_PLANS: dict[str, dict[str, _Step]] = {}


def _plan(operation: Operation) -> dict[str, _Step]:
    found = _PLANS.get(operation.name)
    if found is None:
        found = _PLANS[operation.name] = {m.name: _Step(i, m) for i, m in enumerate(operation.members)
                                          if _constrained(m)}
    return found


def validate(operation: Operation, raw: Mapping[str, Any], *, require: bool = False) -> None:
    """Check the members present in ``raw`` against the operation's model constraints.

    :param require: also refuse missing required members, as the service does for a raw request
        (``Value null at 'keyId' failed to satisfy constraint: Member must not be null``); SDKs
        (and LocalKMS, with TypeError) refuse those before sending.
    :raises ValidationError: AWS's ValidationException text, counting every failure (listed in
        the model's member order).
    """
    plan = _PLANS.get(operation.name) or _plan(operation)
    failed: list[tuple[int, list[str]]] | None = None
    if require:
        for index, member in enumerate(operation.members):
            if member.required and raw.get(member.name) is None:
                failed = failed or []
                text = f"Value null at '{member.wire_name}' failed to satisfy constraint: Member must not be null"
                failed.append((index, [text]))
    for name, value in raw.items():
        step = plan.get(name)
        if step is None:
            continue
        if type(value) is step.kind and step.lo <= len(value) <= step.hi:
            search, enum = step.search, step.enum
            if (search is None or search(value) is not None) and (enum is None or value in enum):
                continue  # the common case: a valid string or blob
        if value is None:
            continue
        errors: list[str] = []
        _check(step.member, value, step.member.wire_name, errors)
        if errors:
            failed = failed or []
            failed.append((step.index, errors))
    if failed:
        failed.sort(key=lambda item: item[0])
        texts = [text for _, errors in failed for text in errors]
        count = len(texts)
        raise ValidationError(f"{count} validation error{'' if count == 1 else 's'} detected: "
                              + "; ".join(texts))


# Operation name -> its required members (a raw request may leave them out; see validate).
REQUIRED_MEMBERS: Mapping[str, tuple[str, ...]] = {
    op.name: tuple(m.name for m in op.members if m.required) for op in OPERATIONS.values()
}

# Operation name -> its KeyId members that take only a key ID or key ARN (see generate_operations).
KEY_ONLY_MEMBERS: Mapping[str, tuple[str, ...]] = {
    op.name: names for op in OPERATIONS.values()
    if (names := tuple(m.name for m in op.members if m.accepts_alias is False))
}


def is_alias(value: str) -> bool:
    """Whether a KeyId value names an alias (an alias name or an alias ARN)."""
    return value.startswith("alias/") or (value.startswith("arn:") and ":alias/" in value)


def key_only_error(value: str, target: str | None) -> KeyNotFoundError:
    """AWS's answer to an alias where only a key ID or key ARN is accepted, with a hint.

    AWS answers ``NotFoundException: Invalid keyId <value>``; the hint (never part of the
    message, so the AWS shape is unchanged) names the key the alias points to.
    """
    if target is None:
        hint = f"{value} is an alias; this operation takes a key ID or key ARN, not an alias"
    else:
        hint = f"{value} is an alias of key {target}; this operation takes a key ID or key ARN: use {target}"
    return KeyNotFoundError(f"Invalid keyId {value}", hint=hint)
