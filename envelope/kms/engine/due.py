"""Time-driven key transitions, applied lazily, and keeping multi-Region replicas in sync.

A call that meets a key whose next transition (rotation, end of the deletion window, expiry of
imported material) is due asks the runtime to apply it: `apply_due` runs in its own committed
transaction, then the call runs again. Cross-region follow-ups (a replica's material, the
primary's replica list) run after it, one region database at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..model.clock import DAY
from ..model.keys import KeyRecord, generate_material, load_key, update_key
from ..model.sql import Connection
from ..store.database import bump_counter
from ..store.partition import Region
from ..store.sealing import Sealer
from .session import Session

__all__ = ["any_due", "apply_due", "copy_key_versions", "destroy", "due_at", "forget_replica", "key_versions",
           "push_to_replicas", "rotate", "sync_replica", "update_replica_lists"]

_MAX_CATCH_UP = 64  # automatic rotations applied at once after a long clock jump


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


def rotate(conn: Connection, sealer: Sealer, rec: KeyRecord, at: float, kind: str) -> int:
    """Add a new backing key (every earlier one is kept) and make it current; returns its version."""
    version = rec.current_version + 1
    material = generate_material(rec.key_spec)
    conn.execute("INSERT INTO key_versions (key_id, version, sealed, created, rotation_type) "
                 "VALUES (?, ?, ?, ?, ?)",
                 (rec.key_id, version, sealer.seal(material, rec.key_id, version), at, kind))
    update_key(conn, rec.key_id, current_version=version)
    return version


def destroy(conn: Connection, key_id: str) -> None:
    """Delete a key and its material for good (the end of the deletion window)."""
    for table in ("key_versions", "aliases", "grants", "tags", "import_params", "keys"):
        conn.execute(f"DELETE FROM {table} WHERE key_id = ?", (key_id,))


_DUE = ("SELECT key_id FROM keys WHERE (key_state = 'PendingDeletion' AND deletion_date <= ?) OR "
        "(key_state IN ('Enabled', 'Disabled') AND ((valid_to IS NOT NULL AND valid_to <= ?) OR "
        "(rotation_enabled = 1 AND next_rotation <= ?)))")


def any_due(conn: Connection, now: float) -> bool:
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


def _apply_one(conn: Connection, sealer: Sealer, session: Session, region: Region,
               rec: KeyRecord, now: float) -> list[Callable[[], None]]:
    name = region.name
    replica = rec.multi_region and rec.primary_region not in (None, name)
    if rec.key_state == "PendingDeletion":
        destroy(conn, rec.key_id)
        if replica and rec.primary_region is not None:
            primary = rec.primary_region
            return [lambda: forget_replica(session, primary, rec.key_id, name, now)]
        return []
    if rec.valid_to is not None and rec.valid_to <= now:
        # Imported material expired: KMS deletes it and the key waits for a new import.
        conn.execute("DELETE FROM key_versions WHERE key_id = ?", (rec.key_id,))
        update_key(conn, rec.key_id, key_state="PendingImport", valid_to=None, current_version=0)
        return []
    if rec.rotation_enabled and rec.next_rotation is not None and rec.next_rotation <= now:
        if replica:
            return [lambda: sync_replica(session, region, rec.key_id)]
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
            return [lambda: push_to_replicas(session, name, rec.key_id)]
    return []


def key_versions(conn: Connection, key_id: str) -> list[tuple[Any, ...]]:
    """A key's sealed material rows, oldest first, as `copy_key_versions` takes them."""
    return conn.execute("SELECT key_id, version, sealed, created, rotation_type FROM key_versions "
                        "WHERE key_id = ? ORDER BY version", (key_id,)).fetchall()


def copy_key_versions(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    # Sealing binds key id and version, not region, so sealed rows copy as they are.
    conn.executemany("INSERT OR IGNORE INTO key_versions (key_id, version, sealed, created, rotation_type) "
                     "VALUES (?, ?, ?, ?, ?)", rows)


def update_replica_lists(session: Session, key_id: str, primary: str, replicas: tuple[str, ...],
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


def sync_replica(session: Session, region: Region, key_id: str, *, settle_primary: bool = True) -> None:
    """Bring one replica up to date with its primary: material versions and rotation settings."""
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
            rows = key_versions(conn, key_id)
    with region.db.transaction() as conn:
        current = load_key(conn, key_id)
        if current is not None:
            if primary is None:
                # The primary is gone: stop asking it (rotation is driven from the primary).
                update_key(conn, key_id, rotation_enabled=False, next_rotation=None)
            else:
                copy_key_versions(conn, rows)
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
    update_replica_lists(session, key_id, primary_region, replicas, skip=(primary_region,))
