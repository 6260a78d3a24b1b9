"""Copy an embedded (SQLite) store into PostgreSQL, then verify the copy.

Every table is copied row for row (keys in creation order, the audit chain with its sequence
numbers and hashes, its checkpoint, and the region's sealed store keys: the audit chain key the
hashes and the checkpoint's MAC are made with, and the imported-material fingerprint key), one
transaction per region, into schemas that must hold no keys and no
audit events yet. Sealed key material and access-key secrets copy as they are: both are sealed
under the root key, which stays outside the database, so the PostgreSQL instances must use the
same root key (the data directory's ``kms-root.key`` or ``$ENVELOPE_KMS_ROOT_KEY``).

Verification: row counts per table; the store keys and the checkpoint equal the source's; the
target's audit chain verifies (under the copied chain key) and ends at the source's head; every version of every key's material opens under the root key and equals the source's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...errors import KMSError
from ..model.sql import Connection
from .backend import Store
from .partition import Partition

__all__ = ["REGION_TABLES", "CopyReport", "copy_store", "verify_copy"]

# Parents before children is not needed (no foreign keys); keys first keeps ListKeys order.
REGION_TABLES = ("keys", "key_versions", "aliases", "grants", "tags", "import_params", "audit_events",
                 "audit_head", "audit_checkpoint", "store_keys")
# Rows the target's opening wrote itself (its own chain head, checkpoint and store keys): replaced.
_REPLACED = ("audit_head", "audit_checkpoint", "store_keys")
IAM_TABLES = ("principals", "identity_policies")
ACCESS_KEY_TABLES = ("access_keys",)
_ORDER = {"keys": "rowid", "audit_events": "seq"}


@dataclass
class CopyReport:
    """What was copied and what the verification found (``ok`` only if every check passed)."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    keys_checked: int = 0
    versions_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "tables": self.counts, "keys_checked": self.keys_checked,
                "key_versions_checked": self.versions_checked, "problems": self.problems}


def _plain(value: object) -> object:
    """A value as compared across stores (a text value in a BLOB column comes back as bytes from PostgreSQL)."""
    if isinstance(value, memoryview):
        return bytes(value)
    return value.encode() if isinstance(value, str) else value


def _columns(conn: Connection, table: str) -> list[str]:
    row = conn.execute(f"SELECT * FROM {table} LIMIT 0")
    return [d[0] for d in row.description]  # type: ignore[attr-defined]


def _rows(conn: Connection, table: str, columns: list[str]) -> list[Any]:
    order = f" ORDER BY {_ORDER[table]}" if table in _ORDER else ""
    return conn.execute(f"SELECT {', '.join(columns)} FROM {table}{order}").fetchall()


def _copy_tables(source: Store, target: Store, tables: tuple[str, ...], name: str,
                 report: CopyReport) -> None:
    src = source.connect()
    counts = report.counts.setdefault(name, {})
    with target.transaction() as dst:
        for table in tables:
            if table in ("keys", "audit_events", "principals", "access_keys") and \
                    dst.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
                raise KMSError(f"the target already holds {table} for {name}: copy into an empty database",
                               code="ValidationException")
            columns = [c for c in _columns(src, table) if c != "rowid"]
            rows = _rows(src, table, columns)
            if table in _REPLACED:
                dst.execute(f"DELETE FROM {table}")
            if rows:
                marks = ", ".join("?" for _ in columns)
                dst.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                                [tuple(r) for r in rows])
            counts[table] = len(rows)
        dst.execute("UPDATE meta SET value = value + 1 WHERE name = 'change_counter'")


def copy_store(source: Partition, target: Partition, access_keys: tuple[Store, Store] | None = None,
               regions: list[str] | None = None) -> CopyReport:
    """Copy every region (or ``regions``), the principals and (given) the access keys; then verify."""
    report = CopyReport()
    names = regions if regions is not None else source.region_names()
    for name in names:
        _copy_tables(source.region(name).db, target.region(name).db, REGION_TABLES, name, report)
        target.reopen(name)  # its chain and fingerprint keys are now the source's
    _copy_tables(source.iam, target.iam, IAM_TABLES, "iam", report)
    if access_keys is not None:
        _copy_tables(access_keys[0], access_keys[1], ACCESS_KEY_TABLES, "access-keys", report)
    verify_copy(source, target, names, report, access_keys)
    return report


def verify_copy(source: Partition, target: Partition, regions: list[str], report: CopyReport,
                access_keys: tuple[Store, Store] | None = None) -> None:
    """Compare counts, the audit chain and every key's material; problems go to ``report``."""
    pairs: list[tuple[str, Store, Store, tuple[str, ...]]] = [
        (name, source.region(name).db, target.region(name).db, REGION_TABLES) for name in regions]
    pairs.append(("iam", source.iam, target.iam, IAM_TABLES))
    if access_keys is not None:
        pairs.append(("access-keys", access_keys[0], access_keys[1], ACCESS_KEY_TABLES))
    for name, src, dst, tables in pairs:
        for table in tables:
            want = src.connect().execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            got = dst.connect().execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            if want != got:
                report.problems.append(f"{name}.{table}: {got} rows copied, {want} in the source")
    for name in regions:
        src_region, dst_region = source.region(name), target.region(name)
        for table, order in (("store_keys", " ORDER BY name"), ("audit_checkpoint", "")):
            want_rows = [tuple(map(_plain, r)) for r in
                         src_region.db.connect().execute(f"SELECT * FROM {table}{order}").fetchall()]
            got_rows = [tuple(map(_plain, r)) for r in
                        dst_region.db.connect().execute(f"SELECT * FROM {table}{order}").fetchall()]
            if want_rows != got_rows:
                report.problems.append(f"{name}.{table}: the copy differs from the source")
        result = dst_region.audit.verify(anchor=src_region.audit.head())
        if not result.ok:
            report.problems.append(f"{name}: the copied audit chain does not verify: {result.reason}")
        sealer = target.sealer
        key_rows = src_region.db.connect().execute(
            "SELECT key_id, version, sealed FROM key_versions ORDER BY key_id, version").fetchall()
        got = {(k, v): bytes(s) for k, v, s in dst_region.db.connect().execute(
            "SELECT key_id, version, sealed FROM key_versions").fetchall()}
        keys: set[str] = set()
        for key_id, version, sealed in key_rows:
            copied = got.get((key_id, version))
            try:
                same = copied is not None and sealer.open(copied, key_id, version) == \
                    source.sealer.open(bytes(sealed), key_id, version)
            except Exception as exc:  # noqa: BLE001 - any failure to open is a finding
                report.problems.append(f"{name}: key {key_id} version {version} does not open: {exc}")
                continue
            if not same:
                report.problems.append(f"{name}: key {key_id} version {version} differs from the source")
            keys.add(key_id)
            report.versions_checked += 1
        report.keys_checked += len(keys)
