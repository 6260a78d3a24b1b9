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
    NotAuthorizedError,
    UnsupportedOperationError,
    ValidationError,
)
from ..model.params import page

if TYPE_CHECKING:
    from ..engine.runtime import Call
    from ..store.partition import KeyEntry

__all__ = ["PREDEFINED_ALIASES", "create_alias", "delete_alias", "list_aliases", "update_alias"]

# The aliases AWS predefines in every account and Region for its services' AWS managed keys;
# ListAliases lists them without TargetKeyId until the service first uses its key
# (https://docs.aws.amazon.com/kms/latest/APIReference/API_ListAliases.html).
PREDEFINED_ALIASES = (
    "alias/aws/acm", "alias/aws/dynamodb", "alias/aws/ebs", "alias/aws/elasticfilesystem", "alias/aws/es",
    "alias/aws/glue", "alias/aws/kinesisvideo", "alias/aws/lambda", "alias/aws/rds", "alias/aws/redshift",
    "alias/aws/s3", "alias/aws/secretsmanager", "alias/aws/ssm", "alias/aws/xray",
)
_NAME = re.compile(r"^alias/[a-zA-Z0-9:/_-]+$")


def _name(call: Call, *, creating: bool) -> str:
    """The AliasName, checked as AWS checks it once the model's constraints have passed
    (https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html, AliasName)."""
    name = call.args.string("AliasName", max_len=256)
    if not name.startswith("alias/"):
        raise ValidationError('Alias must start with the prefix "alias/". Please see '
                              "http://docs.aws.amazon.com/kms/latest/developerguide/programming-aliases.html")
    if name.startswith("alias/aws/"):
        # "The alias/aws/ prefix is reserved for Amazon Web Services managed keys": AWS answers a
        # bare NotAuthorizedException, with no message.
        raise NotAuthorizedError("")
    if creating and ":" in name:
        # The model's pattern admits ':' (DeleteAlias takes such names); a new alias cannot.
        raise ValidationError(f"{name} contains invalid characters for an alias")
    if not _NAME.match(name):
        raise InvalidAliasNameError(f"Alias {name} must contain a name after 'alias/'.")
    return name


def _target(call: Call) -> KeyEntry:
    value = call.args.key_id("TargetKeyId")
    call.args.finish()
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
    if key_ref is None:
        # Predefined aliases whose AWS managed key does not exist yet: name and ARN only.
        made = {row[0] for row in rows}
        items += [{"AliasName": name, "AliasArn": f"arn:aws:kms:{region}:{account}:{name}"}
                  for name in PREDEFINED_ALIASES if name not in made]
        items.sort(key=lambda item: item["AliasName"])
    return page(items, offset, limit, "Aliases")
