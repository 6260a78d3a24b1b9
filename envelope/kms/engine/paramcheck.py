"""The parameter check of every call, built once per operation from the operation table.

Refuses unknown parameter names and values of the wrong Python type, as botocore's
ParamValidator does before sending (both TypeError here). Precomputed per operation, so a call
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
    "map": (Mapping,),
    "structure": (Mapping,),
}
_NAMES = {"string": "a str", "blob": "bytes", "integer": "an int", "long": "an int", "boolean": "a bool",
          "timestamp": "a datetime or epoch seconds", "list": "a list", "map": "a dict", "structure": "a dict"}


def python_types(member: Member) -> tuple[type, ...]:
    """The Python types a member's value may have."""
    return _TYPES.get(member.type, (object,))


class ParamCheck:
    """The names and Python types one operation takes (its members in the table)."""

    __slots__ = ("names", "operation", "types")

    def __init__(self, operation: Operation) -> None:
        self.operation = operation.name
        self.names = frozenset(m.name for m in operation.members)
        self.types: dict[str, tuple[tuple[type, ...], str, bool]] = {
            m.name: (python_types(m), _NAMES.get(m.type, m.type), m.type in ("integer", "long"))
            for m in operation.members}

    def __call__(self, raw: Mapping[str, Any]) -> None:
        """Check one call's arguments; ``None`` stands for an absent member (as the handlers read it).

        :raises TypeError: naming the operation and the parameter.
        """
        types = self.types
        for name, value in raw.items():
            found = types.get(name)
            if found is None:
                unknown = sorted(set(raw) - self.names)
                raise TypeError(f"{self.operation}: unknown parameter(s) {', '.join(unknown)}")
            if value is None:
                continue
            allowed, text, integer = found
            if not isinstance(value, allowed) or (integer and isinstance(value, bool)):
                raise TypeError(f"{self.operation}: {name} must be {text}")
