"""Backup and restore of a key store on disk (issue 12 item 5)."""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _kms_store_helpers import check_messages, release

from envelope.kms import LocalKMS, StoreError, backup, restore
from envelope.kms.store import backup as backup_module

ROOT = Path(__file__).resolve().parents[2]

# A writer in another process: encrypt calls (each one a committed write and audit event) until killed.
_WRITER = textwrap.dedent("""
    import sys
    from envelope.kms import LocalKMS
    kms = LocalKMS(sys.argv[1])
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    print("ready", flush=True)
    while True:
        kms.encrypt(KeyId=key_id, Plaintext=b"load")
""")


def _messages(directory: Path, count: int = 3) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for region in ("us-east-1", "eu-west-1"):
        kms = LocalKMS(directory, region=region)
        for i in range(count):
            key_id = kms.create_key()["KeyMetadata"]["KeyId"]
            blob = kms.encrypt(KeyId=key_id, Plaintext=f"{region} {i}".encode())["CiphertextBlob"]
            out.append({"region": region, "ciphertext": base64.b64encode(blob).decode(),
                        "plaintext": f"{region} {i}", "context": {}})
    kms.principals.create("arn:aws:iam::111122223333:user/backup")
    return out


def test_backup_under_load_restores_into_a_fresh_directory(tmp_path: Path) -> None:
    store, dest, fresh = tmp_path / "store", tmp_path / "backup", tmp_path / "fresh"
    messages = _messages(store)
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(store)], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == b"ready\n"
        manifest = backup(store, dest, pages=4, pause=0.001)  # small steps: many writes land meanwhile
    finally:
        writer.kill()
        writer.wait()
    assert not (dest / "kms-root.key").exists() and manifest["root_key_included"] is False
    assert sorted(manifest["files"]) == ["iam.sqlite3", "kms-eu-west-1.sqlite3", "kms-us-east-1.sqlite3"]
    assert not list(dest.glob("*-wal"))
    # A fresh machine: the operator supplies the root key kept apart from the backup.
    fresh.mkdir(mode=0o700)
    shutil.copyfile(store / "kms-root.key", fresh / "kms-root.key")
    restore(dest, fresh)
    check_messages(fresh, messages)
    assert LocalKMS(fresh).principals.list_principals() == ["arn:aws:iam::111122223333:user/backup"]
    release()


def test_restore_without_the_root_key_is_refused(tmp_path: Path) -> None:
    store, dest, fresh = tmp_path / "store", tmp_path / "backup", tmp_path / "fresh"
    _messages(store, 1)
    backup(store, dest)
    with pytest.raises(StoreError, match="was sealed under root key id") as exc:
        restore(dest, fresh)
    assert "--include-root-key" in (exc.value.hint or "")
    assert not fresh.exists() or not any(fresh.iterdir())


def test_root_key_included_on_request(tmp_path: Path) -> None:
    store, dest, fresh = tmp_path / "store", tmp_path / "backup", tmp_path / "fresh"
    messages = _messages(store, 1)
    backup(store, dest, include_root_key=True)
    assert (dest / "kms-root.key").stat().st_mode & 0o777 == 0o600
    restore(dest, fresh)
    check_messages(fresh, messages)


def test_restore_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    store, dest = tmp_path / "store", tmp_path / "backup"
    messages = _messages(store, 1)
    backup(store, dest)
    kms = LocalKMS(store)
    later = kms.create_key()["KeyMetadata"]["KeyId"]
    del kms
    release()
    with pytest.raises(StoreError, match="already holds a key store") as exc:
        restore(dest, store)
    assert "--force" in (exc.value.hint or "")
    restore(dest, store, force=True)
    check_messages(store, messages)
    with pytest.raises(Exception, match="not found|does not exist"):
        LocalKMS(store).describe_key(KeyId=later)
    release()


def test_restore_while_the_store_is_in_use_is_refused(tmp_path: Path) -> None:
    store, dest = tmp_path / "store", tmp_path / "backup"
    _messages(store, 1)
    backup(store, dest)
    kms = LocalKMS(store)
    with pytest.raises(StoreError, match="in use"):
        restore(dest, store, force=True)
    del kms
    release()


@pytest.mark.parametrize("damage", ["checksum", "integrity", "audit"])
def test_a_damaged_backup_is_refused_before_anything_changes(tmp_path: Path, damage: str) -> None:
    store, dest = tmp_path / "store", tmp_path / "backup"
    _messages(store, 2)
    backup(store, dest)
    path = dest / "kms-us-east-1.sqlite3"
    if damage == "checksum":
        with path.open("r+b") as fp:
            fp.seek(200)
            fp.write(b"\xff")
        expected = "does not match its checksum"
    else:
        with sqlite3.connect(path) as conn:
            if damage == "integrity":
                # An index that disagrees with its table: PRAGMA integrity_check reports it.
                conn.execute("PRAGMA writable_schema = ON")
                conn.execute("UPDATE sqlite_master SET sql = replace(sql, 'account', 'key_spec') "
                             "WHERE name = 'keys_account'")
                expected = "integrity check"
            else:
                conn.execute("UPDATE audit_events SET body = replace(body, 'CreateKey', 'DeleteKey') WHERE seq = 1")
                expected = "audit log .* does not verify"
        conn.close()
        manifest = json.loads((dest / "envelope-backup.json").read_text())
        manifest["files"][path.name]["sha256"] = backup_module._sha256(path)
        (dest / "envelope-backup.json").write_text(json.dumps(manifest))
    before = sorted((p.name, p.read_bytes()) for p in store.iterdir() if p.suffix == ".sqlite3")
    with pytest.raises(StoreError, match=expected):
        restore(dest, store, force=True)
    assert sorted((p.name, p.read_bytes()) for p in store.iterdir() if p.suffix == ".sqlite3") == before


def test_a_restore_cut_short_is_finished_by_the_next_opener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, dest = tmp_path / "store", tmp_path / "backup"
    messages = _messages(store, 1)
    backup(store, dest)
    LocalKMS(store).create_key()
    release()
    calls = 0
    real = os.replace

    def crash_after_one(src: object, dst: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt  # a kill between two renames
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(backup_module.os, "replace", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        restore(dest, store, force=True)
    monkeypatch.setattr(backup_module.os, "replace", real)
    assert list(store.glob(".restore-*"))
    check_messages(store, messages)  # the opener finished the restore first
    assert not list(store.glob(".restore-*"))
    assert len(LocalKMS(store).list_keys()["Keys"]) == 1
    release()


def test_backup_refuses_an_existing_destination(tmp_path: Path) -> None:
    _messages(tmp_path / "store", 1)
    (tmp_path / "backup").mkdir()
    with pytest.raises(StoreError, match="already exists"):
        backup(tmp_path / "store", tmp_path / "backup")


_RESTORE = textwrap.dedent("""
    import sys
    from pathlib import Path
    from envelope.kms import restore
    print("start", flush=True)
    restore(Path(sys.argv[1]), Path(sys.argv[2]), force=True)
""")
_BACKUP = _RESTORE.replace("from envelope.kms import restore", "from envelope.kms import backup").replace(
    "restore(Path(sys.argv[1]), Path(sys.argv[2]), force=True)", "backup(Path(sys.argv[1]), Path(sys.argv[2]))")


def _killed(code: str, *argv: Path, delay: float) -> None:
    child = subprocess.Popen([sys.executable, "-c", code, *map(str, argv)], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
    assert child.stdout is not None and child.stdout.readline() == b"start\n"
    time.sleep(delay)
    child.kill()
    child.wait()


def test_backup_and_restore_killed_at_random_points(tmp_path: Path) -> None:
    # kill -9 during backup: the store is untouched and no DEST appears half-written. During restore:
    # the next opener sees either the old store or the backup, whole, in every region.
    store, dest = tmp_path / "store", tmp_path / "backup"
    messages = _messages(store, 3)
    rng = random.Random(7)
    for i in range(5):
        _killed(_BACKUP, store, tmp_path / f"b{i}", delay=rng.uniform(0, 0.05))
        assert not (tmp_path / f"b{i}").exists() or (tmp_path / f"b{i}" / "envelope-backup.json").exists()
        if not (tmp_path / f"b{i}").exists():
            backup(store, tmp_path / f"b{i}")  # the next backup to DEST removes what a killed one left
    assert not list(tmp_path.glob(".b*.partial-*"))
    backup(store, dest)
    later = {}
    for region in ("us-east-1", "eu-west-1"):
        later[region] = LocalKMS(store, region=region).create_key()["KeyMetadata"]["KeyId"]
    release()
    for _ in range(5):
        _killed(_RESTORE, dest, store, delay=rng.uniform(0, 0.08))
        check_messages(store, messages)  # opens: finishes or discards the restore first
        kept = set()
        for region, key_id in later.items():
            keys = {k["KeyId"] for k in LocalKMS(store, region=region).list_keys()["Keys"]}
            kept.add(key_id in keys)
        assert len(kept) == 1, "some regions were restored and others not"
        assert not list(store.glob(".restore-*"))
        release()
