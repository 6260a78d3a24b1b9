"""Branch key store items and the KMS encryption context built from them (ESDK spec branch-key-store.md).

Both stores keep the same items as the ESDK's DynamoDB key store, so the context KMS binds to a
wrapped key (`enc`) is the item itself: every attribute but `enc`, plus the logical store name.
Parsing an item does not authenticate it; the KMS Decrypt of `enc` under that context does.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ...errors import KeyringError

__all__ = [
    "ACTIVE",
    "BEACON",
    "CUSTOM_PREFIX",
    "HIERARCHY_VERSION",
    "VERSION_PREFIX",
    "BeaconKeyMaterials",
    "BranchKeyMaterials",
    "Item",
    "Table",
    "custom_context",
    "encryption_context",
    "new_item",
    "timestamp",
    "version_of",
]

Item = dict[str, "str | bytes"]
ACTIVE = "branch:ACTIVE"
BEACON = "beacon:ACTIVE"
VERSION_PREFIX = "branch:version:"
CUSTOM_PREFIX = "aws-crypto-ec:"
HIERARCHY_VERSION = "1"
_REQUIRED = ("branch-key-id", "type", "enc", "kms-arn", "create-time", "hierarchy-version")
_TABLE_NAME_KEY = "tablename"  # the context key holding the logical key store name


class Table(Protocol):
    """Where items live: a DynamoDB table, or the embedded SQLite file. Keys are (branch-key-id, type)."""

    name: str

    def create(self) -> str:
        """Create the table if absent (check its key schema if present); return its ARN or path."""
        ...

    def get(self, branch_key_id: str, item_type: str) -> Item | None:
        ...

    def put_new(self, items: list[Item]) -> None:
        """Write all items in one transaction; fail (KeyringError) if any (id, type) exists."""
        ...

    def put_version(self, decrypt_only: Item, active: Item, old_enc: bytes) -> None:
        """Add a version item and replace the ACTIVE item, only if its `enc` is still ``old_enc``."""
        ...


@dataclass(frozen=True, slots=True)
class BranchKeyMaterials:
    """One version of a branch key, decrypted (spec structures.md "Branch Key Materials")."""

    branch_key_id: str
    version: str  # a UUID string
    branch_key: bytes = dataclasses.field(repr=False)
    encryption_context: Mapping[str, str]  # the custom context, without the aws-crypto-ec: prefix
    branch_key_id_bytes: bytes = dataclasses.field(init=False, repr=False)
    version_bytes: bytes = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "branch_key_id_bytes", self.branch_key_id.encode("utf-8"))
        try:
            object.__setattr__(self, "version_bytes", uuid.UUID(self.version).bytes)
        except ValueError:
            raise KeyringError(f"branch key version {self.version!r} is not a UUID") from None


@dataclass(frozen=True, slots=True)
class BeaconKeyMaterials:
    """A branch key's beacon key, decrypted (searchable encryption uses it)."""

    beacon_key_id: str
    beacon_key: bytes = dataclasses.field(repr=False)
    encryption_context: Mapping[str, str]


def timestamp(now: datetime.datetime | None = None) -> str:
    """ISO 8601 in UTC to the microsecond, as the spec asks for `create-time`."""
    moment = now or datetime.datetime.now(datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_item(branch_key_id: str, item_type: str, kms_arn: str, create_time: str,
             custom_context: Mapping[str, str], version: str | None = None) -> Item:
    """An item without `enc` (added once KMS has wrapped the key under this item's context)."""
    item: Item = {"branch-key-id": branch_key_id, "type": item_type, "create-time": create_time,
                  "kms-arn": kms_arn, "hierarchy-version": HIERARCHY_VERSION}
    if version is not None:
        item["version"] = VERSION_PREFIX + version
    for key, value in custom_context.items():
        item[CUSTOM_PREFIX + key] = value
    return item


def encryption_context(item: Mapping[str, str | bytes], logical_key_store_name: str) -> dict[str, str]:
    """The KMS encryption context of an item (spec "Encryption Context"): every attribute but `enc`,
    and `tablename` = the logical key store name.

    :raises KeyringError: a required attribute is missing or not a string, or an ACTIVE item has
        no `version`.
    """
    missing = [name for name in _REQUIRED if name not in item]
    if missing:
        raise KeyringError(f"branch key store item lacks {', '.join(missing)}")
    context: dict[str, str] = {}
    for name, value in item.items():
        if name == "enc":
            if not isinstance(value, bytes) or not value:
                raise KeyringError("branch key store item's enc is not a non-empty binary value")
            continue
        if not isinstance(value, str):
            raise KeyringError(f"branch key store item attribute {name!r} is not a string")
        context[name] = value
    if not context["branch-key-id"] or not context["type"]:
        raise KeyringError("branch key store item has an empty branch-key-id or type")
    if (context["type"] == ACTIVE) != ("version" in context):
        raise KeyringError("only a branch:ACTIVE item carries a version attribute")
    context[_TABLE_NAME_KEY] = logical_key_store_name
    return context


def version_of(context: Mapping[str, str]) -> str:
    """The branch key version an authenticated context names (spec "Branch Key Materials From
    Authenticated Encryption Context")."""
    item_type = context["type"]
    tagged = context["version"] if item_type == ACTIVE else item_type
    if not tagged.startswith(VERSION_PREFIX):
        raise KeyringError(f"branch key store item type {item_type!r} is not a branch key")
    return tagged[len(VERSION_PREFIX):]


def custom_context(context: Mapping[str, str]) -> dict[str, str]:
    """The custom encryption context: the aws-crypto-ec: attributes, prefix removed."""
    return {k[len(CUSTOM_PREFIX):]: v for k, v in context.items() if k.startswith(CUSTOM_PREFIX)}
