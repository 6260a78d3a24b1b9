"""Key lifecycle operations: rotation, scheduled deletion, and the state check of cryptographic use.

The time-driven transitions themselves (rotation and deletion when due, import expiry) are
applied lazily by the engine: `envelope.kms.engine.due`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import KeyDisabledError
from ..engine.due import push_to_replicas, rotate
from ..model.clock import DAY, to_datetime
from ..model.errors import InvalidStateError, LimitExceededError, UnsupportedOperationError
from ..model.keys import update_key
from ..model.params import page

if TYPE_CHECKING:
    from ..engine.runtime import Call
    from ..store.partition import KeyEntry

__all__ = [
    "ON_DEMAND_LIMIT", "cancel_key_deletion", "disable_key_rotation", "enable_key_rotation",
    "get_key_rotation_status", "list_key_rotations", "require_enabled", "rotate_key_on_demand",
    "schedule_key_deletion",
]

ON_DEMAND_LIMIT = 10  # KMS allows 10 on-demand rotations per key


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
    period = a.integer("RotationPeriodInDays", 90, 2560)
    a.finish()
    entry = call.subject(service_keys=False)
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
    a.finish()
    entry = call.subject(service_keys=False)
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
        call.after.append(lambda: push_to_replicas(session, name, key_id))


def get_key_rotation_status(call: Call) -> dict[str, Any]:
    a = call.args
    a.finish()
    entry = call.subject()
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
    a.finish()
    entry = call.subject(service_keys=False)
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
    limit, offset = a.limit(100, 1000), a.marker()
    a.finish()
    entry = call.subject()
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
    window = a.integer("PendingWindowInDays", 7, 30)
    a.finish()
    entry = call.subject(service_keys=False)
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
    a.finish()
    entry = call.subject(service_keys=False)
    rec = entry.record
    if rec.key_state not in ("PendingDeletion", "PendingReplicaDeletion"):
        raise InvalidStateError(f"{entry.arn} is not pending deletion.")
    state = "PendingImport" if rec.origin == "EXTERNAL" and rec.current_version == 0 else "Disabled"
    update_key(call.conn, rec.key_id, key_state=state, deletion_date=None, pending_window=None)
    call.mark_changed()
    return {"KeyId": entry.arn}
