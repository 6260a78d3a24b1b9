"""Key management operations: create/describe/list keys, enable/disable, descriptions, tags, policies.

Service-managed keys (``alias/aws/<service>``) are created on first use by the engine
(`envelope.kms.engine.servicekeys`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import KeyNotFoundError
from ..authz.policy import default_key_policy, parse_policy
from ..engine.due import any_due, apply_due
from ..engine.runtime import Retry
from ..engine.servicekeys import insert_new_key
from ..model.errors import (
    CustomKeyStoreError,
    InvalidStateError,
    MalformedPolicyDocumentError,
    TagError,
    UnsupportedOperationError,
    ValidationError,
)
from ..model.keys import KEY_SPECS, KeyRecord, key_arn, metadata, new_key_id, update_key
from ..model.params import page

if TYPE_CHECKING:
    from ..engine.runtime import Call

__all__ = [
    "create_key", "describe_key", "disable_key", "enable_key",
    "get_key_policy", "list_key_policies", "list_keys", "list_resource_tags", "put_key_policy",
    "tag_resource", "untag_resource", "update_key_description",
]


_MAX_TAGS = 50  # tags per KMS key (https://docs.aws.amazon.com/kms/latest/developerguide/resource-limits.html)


def _check_tags(tags: list[tuple[str, str]], existing: set[str] | frozenset[str] = frozenset()) -> None:
    """The tag rules the model cannot state (lengths were checked with the model's constraints):
    the reserved ``aws:`` prefix, unique keys, at most 50 per key
    (https://docs.aws.amazon.com/kms/latest/APIReference/API_TagResource.html)."""
    seen: set[str] = set()
    for key, _ in tags:
        if key.lower().startswith("aws:"):
            raise TagError("Tags beginning with aws: are reserved")
        if key in seen:
            raise TagError("Duplicate tag keys are not allowed.")
        seen.add(key)
    if len(seen | existing) > _MAX_TAGS:
        raise TagError(f"A KMS key can have at most {_MAX_TAGS} tags.")


def _check_policy(call: Call, text: str, arn: str, account: str, bypass: bool) -> None:
    parsed = parse_policy(text)
    if not bypass and call.would_lock_out(parsed, arn, account):
        raise MalformedPolicyDocumentError("The new key policy will not allow you to update the key "
                                           "policy in the future.")


def create_key(call: Call) -> dict[str, Any]:
    a = call.args
    policy = a.opt_string("Policy", max_len=32768)
    description = a.opt_string("Description", max_len=8192, allow_empty=True) or ""
    usage = a.choice("KeyUsage", ("ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT"))
    legacy_spec = a.choice("CustomerMasterKeySpec", tuple(KEY_SPECS))
    spec = a.choice("KeySpec", tuple(KEY_SPECS)) or legacy_spec or "SYMMETRIC_DEFAULT"
    origin = a.choice("Origin", ("AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE")) or "AWS_KMS"
    store = a.opt_string("CustomKeyStoreId")
    bypass = a.boolean("BypassPolicyLockoutSafetyCheck")
    tags = a.tags()
    multi_region = a.boolean("MultiRegion")
    a.opt_string("XksKeyId")
    a.finish()
    call.authorize("kms:CreateKey", None)
    info = KEY_SPECS[spec]
    if usage is None:
        # KMS: KeyUsage may be left out only where its default, ENCRYPT_DECRYPT, fits the spec
        # (symmetric encryption and RSA keys); HMAC and ECC keys must say what they are for.
        if "ENCRYPT_DECRYPT" not in info.usages:
            raise ValidationError(f"KeyUsage is required for KeySpec {spec}: one of {', '.join(info.usages)}.")
        usage = "ENCRYPT_DECRYPT"
    if usage not in info.usages:
        raise ValidationError(f"KeyUsage {usage} is not compatible with KeySpec {spec}.")
    if store is not None or origin in ("AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"):
        raise CustomKeyStoreError("custom key stores are not supported by the embedded service")
    if origin == "EXTERNAL" and spec != "SYMMETRIC_DEFAULT":
        raise UnsupportedOperationError("The embedded service imports material for symmetric keys only.")
    _check_tags(tags)
    account, region = call.session.account, call.region.name
    key_id = new_key_id(multi_region)
    arn = key_arn(region, account, key_id)
    if policy is not None:
        _check_policy(call, policy, arn, account, bypass)
    else:
        policy = default_key_policy(account)
    external = origin == "EXTERNAL"
    rec = KeyRecord(
        key_id=key_id, account=account, created=call.now, description=description, key_usage=usage,
        key_spec=spec, key_state="PendingImport" if external else "Enabled", origin=origin,
        key_manager="CUSTOMER", multi_region=multi_region, primary_region=region if multi_region else None,
        replica_regions=(), policy=policy, rotation_enabled=False, rotation_period=None, next_rotation=None,
        on_demand_count=0, deletion_date=None, pending_window=None, valid_to=None,
        expiration_model=None, fingerprint=None, current_version=0 if external else 1, service=None)
    insert_new_key(call, rec)
    call.conn.executemany("INSERT OR REPLACE INTO tags (key_id, tag_key, tag_value) VALUES (?, ?, ?)",
                          [(key_id, k, v) for k, v in tags])
    call.key_arns.append(arn)
    return {"KeyMetadata": metadata(rec, region)}


def _refuse_aws_managed(arn: str, rec: KeyRecord, what: str) -> None:
    # AWS managed keys' policies already deny these; this also covers a caller the policy allows.
    if rec.key_manager == "AWS":
        raise UnsupportedOperationError(f"{arn} is an AWS managed key; {what} is not supported.")


def describe_key(call: Call) -> dict[str, Any]:
    a = call.args
    a.grant_tokens()
    a.finish()
    entry = call.subject()
    return {"KeyMetadata": metadata(entry.record, call.region.name)}


def list_keys(call: Call) -> dict[str, Any]:
    a = call.args
    limit, offset = a.limit(100, 1000), a.marker()
    a.finish()
    call.authorize("kms:ListKeys", None)
    call.response_elements = False
    if call.may_retry and any_due(call.conn, call.now):
        session, region, now = call.session, call.region, call.now
        raise Retry(lambda: apply_due(session, region, now))
    rows = call.conn.execute("SELECT key_id FROM keys WHERE account = ? ORDER BY rowid",
                             (call.session.account,)).fetchall()
    items = [{"KeyId": k, "KeyArn": call.region.arn(call.session.account, k)} for (k,) in rows]
    return page(items, offset, limit, "Keys")


def update_key_description(call: Call) -> dict[str, Any]:
    a = call.args
    description = a.string("Description", max_len=8192, allow_empty=True)
    a.finish()
    entry = call.subject(service_keys=False)
    _refuse_aws_managed(entry.arn, entry.record, "UpdateKeyDescription")
    _not_pending_deletion(entry.arn, entry.record)
    update_key(call.conn, entry.record.key_id, description=description)
    call.mark_changed()
    return {}


def _not_pending_deletion(arn: str, rec: KeyRecord) -> None:
    if rec.key_state in ("PendingDeletion", "PendingReplicaDeletion"):
        raise InvalidStateError(f"{arn} is pending deletion.")


def _set_enabled(call: Call, enabled: bool) -> dict[str, Any]:
    a = call.args
    a.finish()
    entry = call.subject(service_keys=False)
    rec = entry.record
    _refuse_aws_managed(entry.arn, rec, "EnableKey" if enabled else "DisableKey")
    _not_pending_deletion(entry.arn, rec)
    if rec.key_state == "PendingImport":
        raise InvalidStateError(f"{entry.arn} is pending import.")
    update_key(call.conn, rec.key_id, key_state="Enabled" if enabled else "Disabled")
    call.mark_changed()
    return {}


def enable_key(call: Call) -> dict[str, Any]:
    return _set_enabled(call, True)


def disable_key(call: Call) -> dict[str, Any]:
    return _set_enabled(call, False)


def tag_resource(call: Call) -> dict[str, Any]:
    a = call.args
    tags = a.tags()
    a.finish()
    entry = call.subject(service_keys=False)
    _refuse_aws_managed(entry.arn, entry.record, "TagResource")
    _not_pending_deletion(entry.arn, entry.record)
    existing = {row[0] for row in call.conn.execute("SELECT tag_key FROM tags WHERE key_id = ?",
                                                    (entry.record.key_id,))}
    _check_tags(tags, existing)
    call.conn.executemany("INSERT OR REPLACE INTO tags (key_id, tag_key, tag_value) VALUES (?, ?, ?)",
                          [(entry.record.key_id, k, v) for k, v in tags])
    call.mark_changed()
    return {}


def untag_resource(call: Call) -> dict[str, Any]:
    a = call.args
    names = a.strings("TagKeys", required=True)
    a.finish()
    entry = call.subject(service_keys=False)
    _refuse_aws_managed(entry.arn, entry.record, "UntagResource")
    _not_pending_deletion(entry.arn, entry.record)
    call.conn.executemany("DELETE FROM tags WHERE key_id = ? AND tag_key = ?",
                          [(entry.record.key_id, name) for name in names])
    call.mark_changed()
    return {}


def list_resource_tags(call: Call) -> dict[str, Any]:
    a = call.args
    limit, offset = a.limit(50, 50), a.marker()
    a.finish()
    entry = call.subject()
    call.response_elements = False
    rows = call.conn.execute("SELECT tag_key, tag_value FROM tags WHERE key_id = ? ORDER BY tag_key",
                             (entry.record.key_id,)).fetchall()
    return page([{"TagKey": k, "TagValue": v} for k, v in rows], offset, limit, "Tags")


def _policy_name(call: Call) -> None:
    name = call.args.opt_string("PolicyName", max_len=128)
    if name is not None and name != "default":
        raise KeyNotFoundError(f"Policy {name!r} does not exist; a key's only policy is 'default'.")


def put_key_policy(call: Call) -> dict[str, Any]:
    a = call.args
    _policy_name(call)
    text = a.string("Policy", max_len=32768)
    bypass = a.boolean("BypassPolicyLockoutSafetyCheck")
    a.finish()
    entry = call.subject(service_keys=False)
    _refuse_aws_managed(entry.arn, entry.record, "PutKeyPolicy")
    _not_pending_deletion(entry.arn, entry.record)
    _check_policy(call, text, entry.arn, entry.record.account, bypass)
    update_key(call.conn, entry.record.key_id, policy=text)
    call.mark_changed()
    return {}


def get_key_policy(call: Call) -> dict[str, Any]:
    a = call.args
    _policy_name(call)
    a.finish()
    entry = call.subject()
    call.response_elements = False
    return {"Policy": entry.record.policy, "PolicyName": "default"}


def list_key_policies(call: Call) -> dict[str, Any]:
    a = call.args
    limit, offset = a.limit(100, 1000), a.marker()
    a.finish()
    call.subject()  # resolved and authorized: the only policy name is "default"
    return page(["default"], offset, limit, "PolicyNames")
