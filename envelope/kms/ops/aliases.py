"""Aliases: create_alias, update_alias, delete_alias, list_aliases (``alias/aws/`` is reserved)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ...errors import KeyNotFoundError
from ..model.clock import to_datetime
from ..model.errors import (
    AlreadyExistsError,
    InvalidAliasNameError,
    InvalidStateError,
    UnsupportedOperationError,
    ValidationError,
)
from ..model.keys import parse_key_ref
from ..model.params import page

if TYPE_CHECKING:
    from ..engine.runtime import Call
    from ..store.partition import KeyEntry

__all__ = ["create_alias", "delete_alias", "list_aliases", "update_alias"]

_NAME = re.compile(r"^alias/[a-zA-Z0-9/_-]{1,250}$")


def _name(call: Call, *, creating: bool) -> str:
    name = call.args.string("AliasName", max_len=256)
    if not _NAME.match(name):
        raise InvalidAliasNameError(f"Alias {name} must start with 'alias/' and contain only "
                                    "alphanumerics, '/', '_' and '-'.")
    if creating and name.startswith("alias/aws/"):
        raise InvalidAliasNameError(f"Alias {name} cannot begin with 'alias/aws/'; that prefix is "
                                    "reserved for AWS managed keys.")
    return name


def _target(call: Call) -> KeyEntry:
    value = call.args.key_id("TargetKeyId")
    call.args.finish()
    if parse_key_ref(value, call.region.name).kind == "alias":
        raise ValidationError("TargetKeyId must be a key id or key ARN, not an alias.")
    entry = call.key(value, service_keys=False)
    if entry.record.account != call.session.account:
        raise KeyNotFoundError(f"Key '{entry.arn}' does not exist")
    if entry.record.key_manager == "AWS":
        raise UnsupportedOperationError(f"{entry.arn} is an AWS managed key; aliases cannot point to it.")
    if entry.record.key_state in ("PendingDeletion", "PendingReplicaDeletion"):
        raise InvalidStateError(f"{entry.arn} is pending deletion.")
    return entry


def create_alias(call: Call) -> dict[str, Any]:
    name = _name(call, creating=True)
    entry = _target(call)
    account = call.session.account
    call.authorize("kms:CreateAlias", entry)
    if call.alias_target(account, name) is not None:
        raise AlreadyExistsError(f"An alias with the name arn:aws:kms:{call.region.name}:{account}:{name} "
                                 "already exists")
    call.conn.execute("INSERT INTO aliases (account, alias_name, key_id, created, updated) VALUES (?, ?, ?, ?, ?)",
                      (account, name, entry.record.key_id, call.now, call.now))
    call.mark_changed()
    return {}


def _kind(entry: KeyEntry) -> tuple[str, bool]:
    rec = entry.record
    return rec.key_usage, rec.key_spec == "SYMMETRIC_DEFAULT"


def update_alias(call: Call) -> dict[str, Any]:
    name = _name(call, creating=True)
    entry = _target(call)
    account = call.session.account
    current = call.alias_target(account, name)
    if current is None:
        raise KeyNotFoundError(f"Alias arn:aws:kms:{call.region.name}:{account}:{name} is not found.")
    old = call.key(current, service_keys=False)
    call.authorize("kms:UpdateAlias", old)
    call.authorize("kms:UpdateAlias", entry)
    if _kind(old) != _kind(entry):
        raise ValidationError("An alias can only move to a key of the same type and key usage.")
    call.conn.execute("UPDATE aliases SET key_id = ?, updated = ? WHERE account = ? AND alias_name = ?",
                      (entry.record.key_id, call.now, account, name))
    call.mark_changed()
    return {}


def delete_alias(call: Call) -> dict[str, Any]:
    name = _name(call, creating=False)
    call.args.finish()
    account = call.session.account
    if name.startswith("alias/aws/"):
        raise InvalidAliasNameError(f"Alias {name} is reserved for an AWS managed key.")
    current = call.alias_target(account, name)
    if current is None:
        raise KeyNotFoundError(f"Alias arn:aws:kms:{call.region.name}:{account}:{name} is not found.")
    entry = call.key(current, service_keys=False)
    call.authorize("kms:DeleteAlias", entry)
    call.conn.execute("DELETE FROM aliases WHERE account = ? AND alias_name = ?", (account, name))
    call.mark_changed()
    return {}


def list_aliases(call: Call) -> dict[str, Any]:
    a = call.args
    key_ref = a.opt_string("KeyId", max_len=2048)
    limit, offset = a.limit(50, 100), a.marker()
    a.finish()
    call.response_elements = False
    call.authorize("kms:ListAliases", None)
    account, region = call.session.account, call.region.name
    if key_ref is not None:
        entry = call.key(key_ref, service_keys=False)
        rows = call.conn.execute("SELECT alias_name, key_id, created, updated FROM aliases WHERE "
                                 "account = ? AND key_id = ? ORDER BY alias_name",
                                 (account, entry.record.key_id)).fetchall()
    else:
        rows = call.conn.execute("SELECT alias_name, key_id, created, updated FROM aliases WHERE "
                                 "account = ? ORDER BY alias_name", (account,)).fetchall()
    items = [{"AliasName": name, "AliasArn": f"arn:aws:kms:{region}:{account}:{name}", "TargetKeyId": key_id,
              "CreationDate": to_datetime(created), "LastUpdatedDate": to_datetime(updated)}
             for name, key_id, created, updated in rows]
    return page(items, offset, limit, "Aliases")
