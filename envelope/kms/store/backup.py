"""Backup and restore of a key store on disk (every region, the principals, the access keys, the audit logs).

A backup is a directory: one SQLite file per database, each a transaction-consistent snapshot
taken with SQLite's online backup API while the store keeps serving (a read transaction is held
on every file first, so the snapshots are of one moment per file and are not restarted by
writers), plus ``envelope-backup.json`` (files, SHA-256, schema versions, the root key id). The
root key is left out unless asked for.

A restore checks everything before it changes anything (checksums, ``PRAGMA integrity_check``,
schema versions, the root key, each region's audit chain), stages the files in the data
directory, writes a marker, then renames them into place. A kill after the marker is finished by
the next opener (`finish_restores`); a kill before it leaves the store as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .audit import AuditLog
from .database import refuse_newer, schema_version
from .datadir import ROOT_KEY_FILE, StoreError, StoreLock, region_of, store_files
from .migrations import read_store_keys
from .rootkey import ROOT_KEY_ENV, ROOT_KEY_FILE_ENV, RootKey, key_path, load_root_key, parse_root_key, write_key_file

__all__ = ["MANIFEST", "backup", "finish_restores", "restore", "verify_backup"]

MANIFEST = "envelope-backup.json"
_FORMAT = "envelope-kms-backup-1"
_STAGE_PREFIX = ".restore-"
_READY = "RESTORE"  # in a staging directory: every file is checked and in place; apply it


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fp:
        for chunk in iter(lambda: fp.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _root_key_id(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT value FROM store_keys WHERE name = 'root_key_id'").fetchone()
    except sqlite3.OperationalError:  # schema 1: no store_keys table
        return None
    return None if row is None else str(row[0])


def backup(directory: Path, dest: Path, *, include_root_key: bool = False, pages: int = 64,
           pause: float = 0.002, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write a consistent snapshot of the store in ``directory`` to the new directory ``dest``.

    The copy runs ``pages`` database pages at a time with ``pause`` seconds between steps, so a
    serving process keeps its latency. ``dest`` appears only when complete (it is written under a
    temporary name, then renamed). Returns the manifest.

    :raises StoreError: no store in ``directory``, ``dest`` exists, or a rotation or restore runs.
    """
    if dest.exists():
        raise StoreError(f"{dest} already exists; a backup is written to a new directory")
    _remove_stale_partials(dest)
    lock = StoreLock(directory, exclusive=False, wait=False)
    try:
        files = store_files(directory)
        if not files:
            raise StoreError(f"{directory} holds no key store to back up")
        root = load_root_key(directory)
        partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
        partial.mkdir(mode=0o700, parents=False)
        try:
            sources: list[tuple[Path, sqlite3.Connection]] = []
            try:
                for path in files:
                    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=30)
                    src.execute("BEGIN")
                    src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts here
                    sources.append((path, src))
                entries = {path.name: _copy(src, partial / path.name, pages, pause) for path, src in sources}
            finally:
                for _, src in sources:
                    src.close()
            manifest: dict[str, Any] = {"format": _FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                        "root_key_id": root.key_id, "root_key_included": include_root_key,
                                        "files": entries}
            if include_root_key:
                write_key_file(partial / ROOT_KEY_FILE, root.key)
            (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            _fsync(partial / MANIFEST)
            os.rename(partial, dest)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    finally:
        lock.release()
    if progress is not None:
        progress(f"backed up {len(files)} files to {dest}")
    return manifest


def _remove_stale_partials(dest: Path) -> None:
    """Remove what a killed backup to ``dest`` left (``.DEST.partial-PID`` of a process now gone)."""
    for stale in dest.parent.glob(f".{dest.name}.partial-*"):
        pid = stale.name.rsplit("-", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, but is another user's
        return True
    return True


def _copy(src: sqlite3.Connection, target_path: Path, pages: int, pause: float) -> dict[str, Any]:
    fd = os.open(target_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    target = sqlite3.connect(target_path, isolation_level=None)
    try:
        src.backup(target, pages=pages, progress=lambda *_: time.sleep(pause) if pause else None)
        # A backup is one self-contained file: no -wal beside it.
        target.execute("PRAGMA journal_mode = DELETE")
        version = schema_version(target)
        root_key_id = _root_key_id(target)
    finally:
        target.close()
    _fsync(target_path)
    return {"sha256": _sha256(target_path), "schema_version": version, "root_key_id": root_key_id}


def _read_manifest(src: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except (OSError, ValueError):
        raise StoreError(f"{src} is not an envelope backup (no readable {MANIFEST})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT or not isinstance(manifest.get("files"), dict):
        raise StoreError(f"{src}/{MANIFEST} is not a backup manifest this build reads")
    return manifest


def _check_file(path: Path, root: RootKey | None) -> None:
    """Integrity, schema version, root key and audit chain of one backed-up file (read-only)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        try:
            result = conn.execute("PRAGMA integrity_check").fetchall()
        except sqlite3.DatabaseError as exc:  # not a database, or a schema SQLite cannot read
            result = [(str(exc),)]
        if result != [("ok",)]:
            raise StoreError(f"{path} fails SQLite's integrity check: {result[0][0]}")
        refuse_newer(schema_version(conn), path)
        if not region_of(path.name):
            return
        recorded = _root_key_id(conn)
        if recorded is None:  # schema 1: an unkeyed chain
            log = AuditLog(lambda: conn)
        else:
            if root is None or recorded != root.key_id:
                raise StoreError(f"{path} is sealed under root key id {recorded}, not the key supplied")
            log = AuditLog(lambda: conn, read_store_keys(conn, root).audit_chain_key)
        verdict = log.verify()
        if not verdict.ok:
            raise StoreError(f"the audit log in {path} does not verify: {verdict.reason}")
    finally:
        conn.close()


def _backup_root_key(src: Path, manifest: dict[str, Any], directory: Path) -> tuple[RootKey | None, bool]:
    """The key the restored store will be opened with, and whether it comes from the backup."""
    wanted = manifest.get("root_key_id")
    in_backup = src / ROOT_KEY_FILE
    if os.environ.get(ROOT_KEY_ENV) or os.environ.get(ROOT_KEY_FILE_ENV):
        root: RootKey | None = load_root_key(directory)
        from_backup = False
    elif in_backup.exists():
        root = RootKey(parse_root_key(in_backup.read_bytes(), str(in_backup)), str(in_backup), in_backup)
        from_backup = True
    elif key_path(directory).exists():
        root = load_root_key(directory)
        from_backup = False
    else:
        root, from_backup = None, False
    if wanted is not None and (root is None or root.key_id != wanted):
        have = "no root key" if root is None else f"the key from {root.source} (id {root.key_id})"
        raise StoreError(f"the backup in {src} was sealed under root key id {wanted}, and {have} is not it; "
                         "nothing was changed",
                         hint=f"copy the store's {ROOT_KEY_FILE} into {directory} (mode 0600) or set "
                              f"{ROOT_KEY_ENV} / {ROOT_KEY_FILE_ENV}; or restore a backup made with --include-root-key")
    return root, from_backup


def verify_backup(src: Path, directory: Path) -> tuple[dict[str, Any], RootKey | None, bool]:
    """Check a backup without changing anything: manifest, checksums, integrity, root key, audit chains.

    Returns the manifest, the root key the restored store will use, and whether it is the backup's.

    :raises StoreError: naming the first problem found.
    """
    manifest = _read_manifest(src)
    root, from_backup = _backup_root_key(src, manifest, directory)
    for name, entry in sorted(manifest["files"].items()):
        path = src / name
        if not (region_of(name) or name in ("iam.sqlite3", "access-keys.sqlite3")) or not path.is_file():
            raise StoreError(f"{src}: {name} is listed in the manifest but is not a store file here")
        if not isinstance(entry, dict) or _sha256(path) != entry.get("sha256"):
            raise StoreError(f"{path} does not match its checksum in the manifest (damaged or altered)")
        try:
            _check_file(path, root)
        except sqlite3.Error as exc:
            raise StoreError(f"{path} cannot be read as a store file: {exc}") from None
    return manifest, root, from_backup


def restore(src: Path, directory: Path, *, force: bool = False) -> dict[str, Any]:
    """Replace the store in ``directory`` with the backup in ``src``, all at once; return the manifest.

    :raises StoreError: the backup does not check out, the directory holds a store and ``force``
        is False, or the store is in use. Nothing was changed then.
    """
    manifest, root, from_backup = verify_backup(src, directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = StoreLock(directory, exclusive=True, wait=False)
    try:
        _finish(directory)
        existing = store_files(directory)
        if existing and not force:
            raise StoreError(f"{directory} already holds a key store ({', '.join(p.name for p in existing)}); "
                             "nothing was changed", hint="pass --force to replace it with the backup")
        stage = directory / f"{_STAGE_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"
        stage.mkdir(mode=0o700)
        try:
            for name in manifest["files"]:
                shutil.copyfile(src / name, stage / name)
                os.chmod(stage / name, 0o600)
                if _sha256(stage / name) != manifest["files"][name]["sha256"]:
                    raise StoreError(f"{src / name} changed while it was being restored; nothing was changed")
                _fsync(stage / name)
            if from_backup and root is not None:
                write_key_file(stage / ROOT_KEY_FILE, root.key)
            plan = {"files": sorted(manifest["files"]), "remove": [p.name for p in existing
                                                                   if p.name not in manifest["files"]]}
            (stage / _READY).write_text(json.dumps(plan))
            _fsync(stage / _READY)
            _fsync(stage)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        _apply(directory, stage)
    finally:
        lock.release()
    return manifest


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _apply(directory: Path, stage: Path) -> None:
    """Move a ready staging directory's files into place (idempotent: a kill may repeat it)."""
    plan = json.loads((stage / _READY).read_text())
    for name in plan["files"] + plan["remove"]:
        staged = stage / name
        if name in plan["remove"] or staged.exists():
            # The old file's WAL must never be read beside the new file.
            _unlink(directory / f"{name}-wal")
            _unlink(directory / f"{name}-shm")
        if name in plan["remove"]:
            _unlink(directory / name)
        elif staged.exists():
            os.replace(staged, directory / name)
    if (stage / ROOT_KEY_FILE).exists():
        os.replace(stage / ROOT_KEY_FILE, directory / ROOT_KEY_FILE)
    _fsync(directory)
    shutil.rmtree(stage)


def _finish(directory: Path) -> None:
    for stage in directory.glob(f"{_STAGE_PREFIX}*"):
        if (stage / _READY).exists():
            _apply(directory, stage)
        else:
            shutil.rmtree(stage, ignore_errors=True)


def finish_restores(directory: Path, lock: StoreLock) -> None:
    """Finish (or discard, if not yet ready) a restore a kill interrupted; called by every opener.

    Takes ``lock`` exclusively only when there is something to do.
    """
    if not any(directory.glob(f"{_STAGE_PREFIX}*")):
        return
    lock.change(exclusive=True)
    try:
        _finish(directory)
    finally:
        lock.change(exclusive=False)

