"""The parameter check of every call, built once per operation from the operation table.

Refuses unknown parameter names, values of the wrong Python type and missing required members,
as botocore's ParamValidator does before sending (all TypeError here). Precomputed per operation, so a call
costs one ``isinstance`` per argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..model.shapes import Member, Operation

__all__ = ["ParamCheck", "python_types"]

# The Python values boto3 takes for each model type (botocore's ParamValidator, less file objects
# for blobs).
_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "blob": (bytes, bytearray, memoryview),
    "integer": (int,),
    "long": (int,),
    "boolean": (bool,),
    "timestamp": (datetime, int, float),
    "list": (list, tuple),
    "map": (dict, Mapping),  # dict first: an exact type is checked without the ABC machinery
    "structure": (dict, Mapping),
}
_NAMES = {"string": "a str", "blob": "bytes", "integer": "an int", "long": "an int", "boolean": "a bool",
          "timestamp": "a datetime or epoch seconds", "list": "a list", "map": "a dict", "structure": "a dict"}


def python_types(member: Member) -> tuple[type, ...]:
    """The Python types a member's value may have."""
    return _TYPES.get(member.type, (object,))


class ParamCheck:
    """The names and Python types one operation takes (its members in the table)."""

    __slots__ = ("integers", "names", "operation", "required", "texts", "types")

    def __init__(self, operation: Operation) -> None:
        self.operation = operation.name
        self.names = frozenset(m.name for m in operation.members)
        self.types: dict[str, tuple[type, ...]] = {m.name: python_types(m) for m in operation.members}
        self.texts = {m.name: _NAMES.get(m.type, m.type) for m in operation.members}
        self.integers = tuple(m.name for m in operation.members if m.type in ("integer", "long"))
        self.required = tuple(m.name for m in operation.members if m.required)

    def __call__(self, raw: Mapping[str, Any]) -> None:
        """Check one call's arguments; ``None`` stands for an absent member (as the handlers read it).

        :raises TypeError: naming the operation and the parameter.
        """
        types = self.types
        for name, value in raw.items():
            allowed = types.get(name)
            if allowed is None:
                unknown = sorted(set(raw) - self.names)
                raise TypeError(f"{self.operation}: unknown parameter(s) {', '.join(unknown)}")
            if not isinstance(value, allowed) and value is not None:
                raise TypeError(f"{self.operation}: {name} must be {self.texts[name]}")
        for name in self.required:
            if raw.get(name) is None:
                raise TypeError(f"{self.operation}: missing required parameter {name}")
        for name in self.integers:  # bool is an int subclass; botocore refuses it for integers
            if type(raw.get(name)) is bool:
                raise TypeError(f"{self.operation}: {name} must be {self.texts[name]}")
