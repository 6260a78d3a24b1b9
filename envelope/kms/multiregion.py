"""Multi-Region keys: replicate_key, update_primary_region, and keeping replicas' material in sync.

Each region's copy is its own row in its own database; cross-region work runs after the calling
transaction commits, one database at a time, so no two region databases are ever locked together.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import KeyNotFoundError
from .errors import AlreadyExistsError, MalformedPolicyDocumentError, UnsupportedOperationError, ValidationError
from .keys import KeyRecord, insert_key, load_key, metadata, update_key
from .partition import _REGION_NAME
from .policy import default_key_policy, parse_policy, would_lock_out
from .store import bump_counter

if TYPE_CHECKING:
    from .partition import Region
    from .runtime import Call, Session

__all__ = ["forget_replica", "push_to_replicas", "replicate_key", "sync_replica", "update_primary_region"]


def _versions(conn: sqlite3.Connection, key_id: str) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT key_id, version, sealed, created, rotation_type FROM key_versions "
                        "WHERE key_id = ? ORDER BY version", (key_id,)).fetchall()


def _copy_versions(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    # Sealing binds key id and version, not region, so sealed rows copy as they are.
    conn.executemany("INSERT OR IGNORE INTO key_versions (key_id, version, sealed, created, rotation_type) "
                     "VALUES (?, ?, ?, ?, ?)", rows)


def replicate_key(call: Call) -> dict[str, Any]:
    a = call.args
    key_ref = a.key_id()
    target = a.string("ReplicaRegion", max_len=32)
    policy_text = a.opt_string("Policy", max_len=32768)
    bypass = a.boolean("BypassPolicyLockoutSafetyCheck")
    description = a.opt_string("Description", max_len=8192)
    tags = a.tags()
    a.finish()
    entry = call.key(key_ref, service_keys=False)
    call.authorize("kms:ReplicateKey", entry)
    rec, here = entry.record, call.region.name
    if not rec.multi_region:
        raise UnsupportedOperationError(f"{entry.arn} is not a multi-Region key.")
    if rec.primary_region != here:
        raise UnsupportedOperationError(f"{entry.arn} is a replica; replicate its primary key.")
    if not _REGION_NAME.match(target) or target == here:
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
        if not bypass and would_lock_out(parsed, call.session.principal, call.identity_policies(),
                                         key_arn=replica_arn, key_account=rec.account):
            raise MalformedPolicyDocumentError("The new key policy will not allow you to update the key "
                                               "policy in the future.")
    replicas = (*rec.replica_regions, target)
    material = rec.origin == "AWS_KMS"
    replica = replace(rec, created=call.now, description=rec.description if description is None else description,
                      key_state="Enabled" if material else "PendingImport", replica_regions=replicas,
                      policy=policy_text, deletion_date=None, pending_window=None,
                      current_version=rec.current_version if material else 0,
                      valid_to=None if not material else rec.valid_to, service=None)
    rows = _versions(call.conn, rec.key_id) if material else []
    update_key(call.conn, rec.key_id, replica_regions=replicas)
    call.mark_changed()
    session = call.session

    def _create() -> None:
        with other.db.transaction() as conn:
            insert_key(conn, replica)
            _copy_versions(conn, rows)
            conn.executemany("INSERT OR REPLACE INTO tags (key_id, tag_key, tag_value) VALUES (?, ?, ?)",
                             [(rec.key_id, k, v) for k, v in tags])
            bump_counter(conn)
        other.reset_cache()
        _update_lists(session, rec.key_id, here, replicas, skip=(here, target))

    call.after.append(_create)
    return {"ReplicaKeyMetadata": metadata(replica, target), "ReplicaPolicy": policy_text,
            "ReplicaTags": [{"TagKey": k, "TagValue": v} for k, v in tags]}


def _update_lists(session: Session, key_id: str, primary: str, replicas: tuple[str, ...],
                  skip: tuple[str, ...] = ()) -> None:
    """Tell every copy (except ``skip``) who the primary is and which replicas exist."""
    partition = session.partition
    for name in (primary, *replicas):
        if name in skip or not partition.region_exists(name):
            continue
        region = partition.region(name)
        with region.db.transaction() as conn:
            if load_key(conn, key_id) is not None:
                update_key(conn, key_id, primary_region=primary, replica_regions=replicas)
                bump_counter(conn)
        region.reset_cache()


def update_primary_region(call: Call) -> dict[str, Any]:
    a = call.args
    key_ref = a.key_id()
    target = a.string("PrimaryRegion", max_len=32)
    a.finish()
    entry = call.key(key_ref, service_keys=False)
    call.authorize("kms:UpdatePrimaryRegion", entry)
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
    call.after.append(lambda: _update_lists(session, key_id, target, replicas, skip=(here,)))
    return {}


def sync_replica(session: Session, region: Region, key_id: str, *, settle_primary: bool = True) -> None:
    """Bring one replica up to date with its primary: material versions and rotation settings."""
    from .lifecycle import apply_due  # lifecycle imports this module
    partition = session.partition
    rec = load_key(region.db.connect(), key_id)
    if rec is None or rec.primary_region is None or rec.primary_region == region.name:
        return
    primary: KeyRecord | None = None
    rows: list[tuple[Any, ...]] = []
    if partition.region_exists(rec.primary_region):
        source = partition.region(rec.primary_region)
        if settle_primary:
            apply_due(session, source, session.clock())
        conn = source.db.connect()
        primary = load_key(conn, key_id)
        if primary is not None and primary.origin == "AWS_KMS":
            rows = _versions(conn, key_id)
    with region.db.transaction() as conn:
        current = load_key(conn, key_id)
        if current is not None:
            if primary is None:
                # The primary is gone: stop asking it (rotation is driven from the primary).
                update_key(conn, key_id, rotation_enabled=False, next_rotation=None)
            else:
                _copy_versions(conn, rows)
                update_key(conn, key_id, rotation_enabled=primary.rotation_enabled,
                           rotation_period=primary.rotation_period, next_rotation=primary.next_rotation,
                           on_demand_count=primary.on_demand_count,
                           current_version=max(current.current_version, primary.current_version)
                           if rows else current.current_version)
            bump_counter(conn)
    region.reset_cache()


def push_to_replicas(session: Session, primary_region: str, key_id: str) -> None:
    """After the primary rotated or changed rotation settings, update each replica."""
    partition = session.partition
    rec = load_key(partition.region(primary_region).db.connect(), key_id)
    if rec is None:
        return
    for name in rec.replica_regions:
        if partition.region_exists(name):
            sync_replica(session, partition.region(name), key_id, settle_primary=False)


def forget_replica(session: Session, primary_region: str, key_id: str, replica_region: str,
                   now: float) -> None:
    """A replica was deleted: drop it from the lists; a primary waiting on it starts its window."""
    from .clock import DAY
    partition = session.partition
    if not partition.region_exists(primary_region):
        return
    region = partition.region(primary_region)
    with region.db.transaction() as conn:
        rec = load_key(conn, key_id)
        if rec is None:
            return
        replicas = tuple(r for r in rec.replica_regions if r != replica_region)
        changes: dict[str, Any] = {"replica_regions": replicas}
        if not replicas and rec.key_state == "PendingReplicaDeletion":
            changes.update(key_state="PendingDeletion", deletion_date=now + (rec.pending_window or 30) * DAY)
        update_key(conn, key_id, **changes)
        bump_counter(conn)
    region.reset_cache()
    _update_lists(session, key_id, primary_region, replicas, skip=(primary_region,))
