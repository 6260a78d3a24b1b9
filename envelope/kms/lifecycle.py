"""Key lifecycle on the service clock: rotation, scheduled deletion, import expiry, state checks.

Time-driven transitions are applied lazily: a call that meets a key whose next transition is due
asks the runtime to apply it (in its own committed transaction) and then runs again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import KeyDisabledError
from . import multiregion as _mr
from .clock import DAY, to_datetime
from .errors import InvalidStateError, LimitExceededError, UnsupportedOperationError
from .keys import KeyRecord, generate_material, load_key, update_key
from .params import page
from .sealing import Sealer
from .store import bump_counter

if TYPE_CHECKING:
    from .partition import KeyEntry, Region
    from .runtime import Call, Session

__all__ = [
    "ON_DEMAND_LIMIT", "apply_due", "cancel_key_deletion", "destroy", "disable_key_rotation",
    "due_at", "enable_key_rotation", "get_key_rotation_status", "list_key_rotations",
    "require_enabled", "rotate", "rotate_key_on_demand", "schedule_key_deletion", "sync_replica",
]

ON_DEMAND_LIMIT = 10  # KMS allows 10 on-demand rotations per key
_MAX_CATCH_UP = 64  # automatic rotations applied at once after a long clock jump
sync_replica = _mr.sync_replica


def due_at(rec: KeyRecord, region: str) -> float | None:
    """When the key's next time-driven transition is due (None: nothing scheduled)."""
    times = []
    if rec.key_state == "PendingDeletion" and rec.deletion_date is not None:
        times.append(rec.deletion_date)
    if rec.key_state in ("Enabled", "Disabled"):
        if rec.valid_to is not None:
            times.append(rec.valid_to)
        if rec.rotation_enabled and rec.next_rotation is not None:
            times.append(rec.next_rotation)
    return min(times) if times else None


def require_enabled(entry: KeyEntry) -> None:
    """Refuse cryptographic use of a key that is not Enabled.

    :raises KeyDisabledError: the key is Disabled.
    :raises InvalidStateError: pending deletion, pending import, or pending replica deletion.
    """
    state = entry.record.key_state
    if state == "Enabled":
        return
    if state == "Disabled":
        raise KeyDisabledError(f"{entry.arn} is disabled.")
    if state == "PendingDeletion":
        raise InvalidStateError(f"{entry.arn} is pending deletion.")
    raise InvalidStateError(f"{entry.arn} is {state} and cannot be used.")


def rotate(conn: sqlite3.Connection, sealer: Sealer, rec: KeyRecord, at: float, kind: str) -> int:
    """Add a new backing key (every earlier one is kept) and make it current; returns its version."""
    version = rec.current_version + 1
    material = generate_material(rec.key_spec)
    conn.execute("INSERT INTO key_versions (key_id, version, sealed, created, rotation_type) "
                 "VALUES (?, ?, ?, ?, ?)",
                 (rec.key_id, version, sealer.seal(material, rec.key_id, version), at, kind))
    update_key(conn, rec.key_id, current_version=version)
    return version


def destroy(conn: sqlite3.Connection, key_id: str) -> None:
    """Delete a key and its material for good (the end of the deletion window)."""
    for table in ("key_versions", "aliases", "grants", "tags", "import_params", "keys"):
        conn.execute(f"DELETE FROM {table} WHERE key_id = ?", (key_id,))


_DUE = ("SELECT key_id FROM keys WHERE (key_state = 'PendingDeletion' AND deletion_date <= ?) OR "
        "(key_state IN ('Enabled', 'Disabled') AND ((valid_to IS NOT NULL AND valid_to <= ?) OR "
        "(rotation_enabled = 1 AND next_rotation <= ?)))")


def any_due(conn: sqlite3.Connection, now: float) -> bool:
    """Whether some key of the region has a transition due."""
    return conn.execute(_DUE + " LIMIT 1", (now, now, now)).fetchone() is not None


def apply_due(session: Session, region: Region, now: float) -> None:
    """Apply every due transition of the region in one transaction, then cross-region follow-ups."""
    follow: list[Callable[[], None]] = []
    sealer = session.partition.sealer
    with region.db.transaction() as conn:
        for (key_id,) in conn.execute(_DUE, (now, now, now)).fetchall():
            rec = load_key(conn, key_id)
            if rec is None:
                continue
            follow += _apply_one(conn, sealer, session, region, rec, now)
        bump_counter(conn)
    region.reset_cache()
    for action in follow:
        action()


def _apply_one(conn: sqlite3.Connection, sealer: Sealer, session: Session, region: Region,
               rec: KeyRecord, now: float) -> list[Callable[[], None]]:
    name = region.name
    replica = rec.multi_region and rec.primary_region not in (None, name)
    if rec.key_state == "PendingDeletion":
        destroy(conn, rec.key_id)
        if replica and rec.primary_region is not None:
            primary = rec.primary_region
            return [lambda: _mr.forget_replica(session, primary, rec.key_id, name, now)]
        return []
    if rec.valid_to is not None and rec.valid_to <= now:
        # Imported material expired: KMS deletes it and the key waits for a new import.
        conn.execute("DELETE FROM key_versions WHERE key_id = ?", (rec.key_id,))
        update_key(conn, rec.key_id, key_state="PendingImport", valid_to=None, current_version=0)
        return []
    if rec.rotation_enabled and rec.next_rotation is not None and rec.next_rotation <= now:
        if replica:
            return [lambda: _mr.sync_replica(session, region, rec.key_id)]
        period = (rec.rotation_period or 365) * DAY
        when, current = rec.next_rotation, rec
        for _ in range(_MAX_CATCH_UP):
            if when > now:
                break
            version = rotate(conn, sealer, current, when, "AUTOMATIC")
            current = replace(current, current_version=version)
            when += period
        while when <= now:
            when += period
        update_key(conn, rec.key_id, next_rotation=when)
        if rec.replica_regions:
            return [lambda: _mr.push_to_replicas(session, name, rec.key_id)]
    return []


# -- rotation operations -----------------------------------------------------------------------
def _rotatable(entry: KeyEntry, region: str, what: str) -> None:
    rec = entry.record
    if rec.key_spec != "SYMMETRIC_DEFAULT":
        raise UnsupportedOperationError(f"{entry.arn} is not a symmetric encryption key; {what} "
                                        "is supported only for symmetric encryption keys.")
    if rec.origin != "AWS_KMS":
        raise UnsupportedOperationError(f"{entry.arn} has imported key material; {what} is not supported.")
    if rec.multi_region and rec.primary_region != region:
        raise UnsupportedOperationError(f"{entry.arn} is a multi-Region replica key; rotation is "
                                        "managed on its primary key.")


def _state_for_management(entry: KeyEntry) -> None:
    state = entry.record.key_state
    if state == "Disabled":
        raise KeyDisabledError(f"{entry.arn} is disabled.")
    if state != "Enabled":
        raise InvalidStateError(f"{entry.arn} is {state}.")


def enable_key_rotation(call: Call) -> dict[str, Any]:
    a = call.args
    key_ref = a.key_id()
    period = a.integer("RotationPeriodInDays", 90, 2560)
    a.finish()
    entry = call.key(key_ref, service_keys=False)
    call.authorize("kms:EnableKeyRotation", entry)
    if entry.record.key_manager == "AWS":
        raise UnsupportedOperationError("AWS managed keys always rotate; their rotation cannot be changed.")
    _rotatable(entry, call.region.name, "automatic rotation")
    _state_for_management(entry)
    days = period if period is not None else 365
    update_key(call.conn, entry.record.key_id, rotation_enabled=True, rotation_period=days,
               next_rotation=call.now + days * DAY)
    call.mark_changed()
    _push_later(call, entry)
    return {}


def disable_key_rotation(call: Call) -> dict[str, Any]:
    a = call.args
    key_ref = a.key_id()
    a.finish()
    entry = call.key(key_ref, service_keys=False)
    call.authorize("kms:DisableKeyRotation", entry)
    if entry.record.key_manager == "AWS":
        raise UnsupportedOperationError("AWS managed keys always rotate; their rotation cannot be changed.")
    _rotatable(entry, call.region.name, "automatic rotation")
    _state_for_management(entry)
    update_key(call.conn, entry.record.key_id, rotation_enabled=False, next_rotation=None)
    call.mark_changed()
    _push_later(call, entry)
    return {}


def _push_later(call: Call, entry: KeyEntry) -> None:
    if entry.record.replica_regions:
        session, name, key_id = call.session, call.region.name, entry.record.key_id
        call.after.append(lambda: _mr.push_to_replicas(session, name, key_id))


def get_key_rotation_status(call: Call) -> dict[str, Any]:
    a = call.args
    key_ref = a.key_id()
    a.finish()
    entry = call.key(key_ref)
    call.authorize("kms:GetKeyRotationStatus", entry)
    rec = entry.record
    if rec.key_spec != "SYMMETRIC_DEFAULT":
        raise UnsupportedOperationError(f"{entry.arn} does not support rotation.")
    if rec.key_state == "PendingDeletion":
        raise InvalidStateError(f"{entry.arn} is pending deletion.")
    out: dict[str, Any] = {"KeyRotationEnabled": rec.rotation_enabled, "KeyId": entry.arn}
    if rec.rotation_enabled and rec.rotation_period is not None and rec.next_rotation is not None:
        out["RotationPeriodInDays"] = rec.rotation_period
        out["NextRotationDate"] = to_datetime(rec.next_rotation)
    return out


def rotate_key_on_demand(call: Call) -> dict[str, Any]:
    a = call.args
    key_ref = a.key_id()
    a.finish()
    entry = call.key(key_ref, service_keys=False)
    call.authorize("kms:RotateKeyOnDemand", entry)
    _rotatable(entry, call.region.name, "on-demand rotation")
    _state_for_management(entry)
    rec = entry.record
    if rec.on_demand_count >= ON_DEMAND_LIMIT:
        raise LimitExceededError(f"{entry.arn} has reached the limit of {ON_DEMAND_LIMIT} on-demand rotations.")
    rotate(call.conn, call.session.partition.sealer, rec, call.now, "ON_DEMAND")
    update_key(call.conn, rec.key_id, on_demand_count=rec.on_demand_count + 1)
    call.mark_changed()
    _push_later(call, entry)
    return {"KeyId": entry.arn}


def list_key_rotations(call: Call) -> dict[str, Any]:
    a = call.args
    key_ref = a.key_id()
    limit, offset = a.limit(100, 1000), a.marker()
    a.finish()
    entry = call.key(key_ref)
    call.authorize("kms:ListKeyRotations", entry)
    call.response_elements = False
    _rotatable(entry, call.region.name, "ListKeyRotations")
    rows = call.conn.execute("SELECT created, rotation_type FROM key_versions WHERE key_id = ? "
                             "AND version > 1 ORDER BY version", (entry.record.key_id,)).fetchall()
    items = [{"KeyId": entry.arn, "RotationDate": to_datetime(created), "RotationType": kind}
             for created, kind in rows]
    return page(items, offset, limit, "Rotations")


# -- deletion ----------------------------------------------------------------------------------
def schedule_key_deletion(call: Call) -> dict[str, Any]:
    a = call.args
    key_ref = a.key_id()
    window = a.integer("PendingWindowInDays", 7, 30)
    a.finish()
    entry = call.key(key_ref, service_keys=False)
    call.authorize("kms:ScheduleKeyDeletion", entry)
    rec = entry.record
    if rec.key_manager == "AWS":
        raise UnsupportedOperationError("AWS managed keys cannot be deleted.")
    if rec.key_state in ("PendingDeletion", "PendingReplicaDeletion"):
        raise InvalidStateError(f"{entry.arn} is already {rec.key_state}.")
    days = window if window is not None else 30
    primary_with_replicas = rec.multi_region and rec.primary_region == call.region.name and rec.replica_regions
    if primary_with_replicas:
        # A primary waits for its replicas to be deleted, then starts its own window.
        update_key(call.conn, rec.key_id, key_state="PendingReplicaDeletion", pending_window=days,
                   deletion_date=None)
        call.mark_changed()
        return {"KeyId": entry.arn, "KeyState": "PendingReplicaDeletion", "PendingWindowInDays": days}
    when = call.now + days * DAY
    update_key(call.conn, rec.key_id, key_state="PendingDeletion", deletion_date=when, pending_window=days)
    call.mark_changed()
    return {"KeyId": entry.arn, "DeletionDate": to_datetime(when), "KeyState": "PendingDeletion",
            "PendingWindowInDays": days}


def cancel_key_deletion(call: Call) -> dict[str, Any]:
    a = call.args
    key_ref = a.key_id()
    a.finish()
    entry = call.key(key_ref, service_keys=False)
    call.authorize("kms:CancelKeyDeletion", entry)
    rec = entry.record
    if rec.key_state not in ("PendingDeletion", "PendingReplicaDeletion"):
        raise InvalidStateError(f"{entry.arn} is not pending deletion.")
    state = "PendingImport" if rec.origin == "EXTERNAL" and rec.current_version == 0 else "Disabled"
    update_key(call.conn, rec.key_id, key_state=state, deletion_date=None, pending_window=None)
    call.mark_changed()
    return {"KeyId": entry.arn}
