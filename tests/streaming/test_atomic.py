"""`AtomicOutput` (envelope/streaming/atomic.py): the output appears only on commit, synced
first; an existing target is refused or replaced whole; temporary files are locked while their
writer lives and only dead writers' ones are swept. Killed writers: test_atomic_killed.py."""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

import pytest
from _output_helpers import has_unnamed_files, leftovers

from envelope.streaming import atomic
from envelope.streaming.atomic import AtomicOutput, sweep_leftovers

TEMP_SHAPE = ".{name}.0123456789abcdef.envelope-tmp"


@pytest.fixture(params=["unnamed", "named"])
def kind(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of writing: an O_TMPFILE file, and the named fallback of file systems without it."""
    if request.param == "unnamed" and not has_unnamed_files(tmp_path):
        pytest.skip("needs O_TMPFILE and /proc")
    if request.param == "named":
        monkeypatch.setattr(AtomicOutput, "_open_unnamed", lambda self: None)
    return str(request.param)


def test_appears_only_on_commit_with_its_mode(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "out"
    with AtomicOutput(target, mode=0o640) as output:
        output.file.write(b"complete")
        assert not target.exists()
        assert len(leftovers(tmp_path)) == (0 if kind == "unnamed" else 1)
        output.commit()
    assert target.read_bytes() == b"complete"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["out"]
    with pytest.raises(ValueError, match="already committed"):
        output.commit()


def test_no_commit_leaves_nothing_and_the_old_file_whole(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "out"
    with pytest.raises(KeyError), AtomicOutput(target) as output:
        output.file.write(b"partial")
        raise KeyError("an error in the middle")
    assert os.listdir(tmp_path) == []
    target.write_bytes(b"old")
    with AtomicOutput(target, overwrite=True) as output:
        output.file.write(b"partial")
        output.discard()
        output.discard()  # idempotent
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out"]


def test_existing_target_needs_overwrite_and_is_replaced_whole(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "out"
    target.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        AtomicOutput(target)
    before = target.stat().st_ino
    with AtomicOutput(target, overwrite=True) as output:
        output.file.write(b"new")
        output.commit()
    assert target.read_bytes() == b"new"
    assert target.stat().st_ino != before  # a new file took the name; the old one was never written
    assert os.listdir(tmp_path) == ["out"]


def test_a_target_created_meanwhile_is_kept(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "out"
    with AtomicOutput(target) as output:
        output.file.write(b"ours")
        target.write_bytes(b"someone else's")
        with pytest.raises(FileExistsError):
            output.commit()
    assert target.read_bytes() == b"someone else's"
    assert os.listdir(tmp_path) == ["out"]


def test_a_symlink_leads_to_the_file_it_names(tmp_path: Path, kind: str) -> None:
    (tmp_path / "real").write_bytes(b"old")
    (tmp_path / "link").symlink_to("real")
    with pytest.raises(FileExistsError):
        AtomicOutput(tmp_path / "link")
    with AtomicOutput(tmp_path / "link", overwrite=True) as output:
        output.file.write(b"new")
        output.commit()
    assert (tmp_path / "link").is_symlink() and (tmp_path / "real").read_bytes() == b"new"


def test_a_directory_or_a_device_is_no_file_to_replace(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(IsADirectoryError):
        AtomicOutput(tmp_path / "dir", overwrite=True)
    with pytest.raises(OSError, match="not a regular file"):
        AtomicOutput("/dev/null", overwrite=True)
    with pytest.raises(TypeError, match="target"):
        AtomicOutput(os.fsencode(tmp_path / "x"))  # type: ignore[arg-type]


def test_missing_directories_are_made(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "a" / "b" / "out"
    with AtomicOutput(target) as output:
        output.file.write(b"x")
        output.commit()
    assert target.read_bytes() == b"x"


def test_the_file_is_synced_before_its_name_appears_and_the_directory_after(
        tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out"
    target.write_bytes(b"old")
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("sync directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "sync file")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append("name" if dst == str(target) else "other")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with AtomicOutput(target, overwrite=True) as output:
        output.file.write(b"new")
        output.commit()
    assert events == ["sync file", "name", "sync directory"]
    assert target.read_bytes() == b"new"


def test_sweep_removes_only_dead_writers_own_leftovers(tmp_path: Path) -> None:
    dead = tmp_path / TEMP_SHAPE.format(name="dead")
    dead.write_bytes(b"left by a killed writer")
    alive = tmp_path / TEMP_SHAPE.format(name="alive")
    alive.write_bytes(b"a writer still writing")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"not ours")
    link = tmp_path / TEMP_SHAPE.format(name="link")
    link.symlink_to(elsewhere)
    foreign = [tmp_path / ".x.envelope-tmp", tmp_path / "x.0123456789abcdef.envelope-tmp",
               tmp_path / ".x.0123456789ABCDEF.envelope-tmp"]
    for path in foreign:
        path.write_bytes(b"not our shape")
    with open(alive, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # what a live writer holds
        assert sweep_leftovers(str(tmp_path)) == [str(dead)]
    assert alive.exists() and link.is_symlink() and elsewhere.read_bytes() == b"not ours"
    assert all(path.exists() for path in foreign)


def test_the_temporary_file_is_locked_while_written(tmp_path: Path, kind: str) -> None:
    (tmp_path / "target").write_bytes(b"old")
    with AtomicOutput(tmp_path / "target", overwrite=True) as output:
        output.file.write(b"new")
        assert sweep_leftovers(str(tmp_path)) == []  # in use: never swept
        assert len(leftovers(tmp_path)) == (0 if kind == "unnamed" else 1)
        output.commit()
    assert (tmp_path / "target").read_bytes() == b"new"
    assert leftovers(tmp_path) == []


def test_a_directory_is_swept_on_first_use_and_again_after_a_while(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    dead = tmp_path / TEMP_SHAPE.format(name="dead")
    dead.write_bytes(b"left by a killed writer")
    AtomicOutput(tmp_path / "a").discard()
    assert not dead.exists()
    dead.write_bytes(b"left by a writer killed since")
    AtomicOutput(tmp_path / "b").discard()
    assert dead.exists()  # a batch into one directory lists it once
    directory = os.path.realpath(tmp_path)
    monkeypatch.setitem(atomic._swept, directory, atomic._swept[directory] - atomic._SWEEP_EVERY)
    AtomicOutput(tmp_path / "c").discard()
    assert not dead.exists()
