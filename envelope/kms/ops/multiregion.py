"""Multi-Region keys: replicate_key and update_primary_region (replica sync: `envelope.kms.engine.due`).

Each region's copy is its own row in its own database; cross-region work runs after the calling
transaction commits, one database at a time, so no two region databases are ever locked together.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ...errors import KeyNotFoundError
from ..authz.policy import default_key_policy, parse_policy
from ..engine.due import copy_key_versions, key_versions, update_replica_lists
from ..model.errors import AlreadyExistsError, MalformedPolicyDocumentError, UnsupportedOperationError, ValidationError
from ..model.keys import insert_key, load_key, metadata, update_key
from ..model.regions import REGIONS
from ..store.database import bump_counter

if TYPE_CHECKING:
    from ..engine.runtime import Call

__all__ = ["replicate_key", "update_primary_region"]


def replicate_key(call: Call) -> dict[str, Any]:
    a = call.args
    target = a.string("ReplicaRegion", max_len=32)
    policy_text = a.opt_string("Policy", max_len=32768)
    bypass = a.boolean("BypassPolicyLockoutSafetyCheck")
    description = a.opt_string("Description", max_len=8192)
    tags = a.tags()
    a.finish()
    entry = call.subject(service_keys=False)
    rec, here = entry.record, call.region.name
    if not rec.multi_region:
        raise UnsupportedOperationError(f"{entry.arn} is not a multi-Region key.")
    if rec.primary_region != here:
        raise UnsupportedOperationError(f"{entry.arn} is a replica; replicate its primary key.")
    if target not in REGIONS or target == here:
        raise ValidationError(f"ReplicaRegion {target!r} is not a valid region for a replica.")
    partition = call.session.partition
    other = partition.region(target)
    if target in rec.replica_regions or load_key(other.db.connect(), rec.key_id) is not None:
        raise AlreadyExistsError(f"{rec.key_id} already has a replica in {target}.")
    if policy_text is None:
        policy_text = default_key_policy(rec.account)
    else:
        parsed = parse_policy(policy_text)
        replica_arn = other.arn(rec.account, rec.key_id)
        if not bypass and call.would_lock_out(parsed, replica_arn, rec.account):
            raise MalformedPolicyDocumentError("The new key policy will not allow you to update the key "
                                               "policy in the future.")
    replicas = (*rec.replica_regions, target)
    material = rec.origin == "AWS_KMS"
    replica = replace(rec, created=call.now, description=rec.description if description is None else description,
                      key_state="Enabled" if material else "PendingImport", replica_regions=replicas,
                      policy=policy_text, deletion_date=None, pending_window=None,
                      current_version=rec.current_version if material else 0,
                      valid_to=None if not material else rec.valid_to, service=None)
    rows = key_versions(call.conn, rec.key_id) if material else []
    update_key(call.conn, rec.key_id, replica_regions=replicas)
    call.mark_changed()
    session = call.session

    def _create() -> None:
        with other.db.transaction() as conn:
            insert_key(conn, replica)
            copy_key_versions(conn, rows)
            conn.executemany("INSERT OR REPLACE INTO tags (key_id, tag_key, tag_value) VALUES (?, ?, ?)",
                             [(rec.key_id, k, v) for k, v in tags])
            bump_counter(conn)
        other.reset_cache()
        update_replica_lists(session, rec.key_id, here, replicas, skip=(here, target))

    call.after.append(_create)
    return {"ReplicaKeyMetadata": metadata(replica, target), "ReplicaPolicy": policy_text,
            "ReplicaTags": [{"TagKey": k, "TagValue": v} for k, v in tags]}


def update_primary_region(call: Call) -> dict[str, Any]:
    a = call.args
    target = a.string("PrimaryRegion", max_len=32)
    a.finish()
    entry = call.subject(service_keys=False)
    rec, here = entry.record, call.region.name
    if not rec.multi_region:
        raise UnsupportedOperationError(f"{entry.arn} is not a multi-Region key.")
    if rec.primary_region != here:
        raise UnsupportedOperationError(f"{entry.arn} is not the primary key; call this in {rec.primary_region}.")
    if target not in rec.replica_regions:
        raise KeyNotFoundError(f"{rec.key_id} has no replica in {target}.")
    replicas = tuple(r for r in rec.replica_regions if r != target) + (here,)
    update_key(call.conn, rec.key_id, primary_region=target, replica_regions=replicas)
    call.mark_changed()
    session, key_id = call.session, rec.key_id
    call.after.append(lambda: update_replica_lists(session, key_id, target, replicas, skip=(here,)))
    return {}


