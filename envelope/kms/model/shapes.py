"""The types of the KMS operation table: an operation, its input members, its paginator.

Plain frozen data read from the KMS API model (`generate_operations` writes `operations.py`
with them); no behaviour here. Names follow the botocore model (PascalCase members, the
``wire_name`` AWS uses in ValidationException paths).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Member", "Operation", "Paginator"]


@dataclass(frozen=True, slots=True)
class Member:
    """One input member (or list item, map key/value, structure field) and its constraints.

    ``min_length``/``max_length`` bound a string's characters, a blob's bytes or a list's/map's
    entries; ``min_value``/``max_value`` bound an integer. ``accepts_alias`` is set on KeyId
    members only: whether an alias name or alias ARN may name the key.
    """

    name: str
    wire_name: str
    shape: str
    type: str  # string, blob, integer, boolean, timestamp, list, map, structure
    required: bool = False
    min_length: int | None = None
    max_length: int | None = None
    min_value: int | None = None
    max_value: int | None = None
    pattern: str | None = None
    enum: tuple[str, ...] = ()
    sensitive: bool = False
    accepts_alias: bool | None = None
    summary: str = ""
    item: Member | None = None
    key: Member | None = None
    value: Member | None = None
    members: tuple[Member, ...] = ()


@dataclass(frozen=True, slots=True)
class Paginator:
    """How a list operation pages (botocore's ``paginators-1`` entry)."""

    input_token: str
    output_token: str
    limit_key: str
    more_results: str
    result_key: str


@dataclass(frozen=True, slots=True)
class Operation:
    """One KMS operation: names, input members, outputs, errors, IAM action, paging."""

    name: str
    method: str  # boto3's method name
    iam_action: str
    read_only: bool
    summary: str
    members: tuple[Member, ...]
    outputs: tuple[str, ...]
    errors: tuple[str, ...]
    paginator: Paginator | None = None
    deprecated: bool = False
