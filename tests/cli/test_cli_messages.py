"""`envelope decrypt --range` and `envelope rewrap` (format-spec/operations.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _cli_helpers import run_envelope

DATA = os.urandom(300_000)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path, Path]:
    paths = tuple(tmp_path / n for n in ("old.key", "new.key", "other.key"))
    for path in paths:
        path.write_bytes(os.urandom(32))
    return paths  # type: ignore[return-value]


@pytest.fixture
def sealed(cli, tmp_path: Path, keys: tuple[Path, Path, Path]) -> Path:
    (tmp_path / "data.bin").write_bytes(DATA)
    r = cli("encrypt", "data.bin", "--aes-key-file", "old.key", "--frame-length", "64K",
            "--algorithm", "AES_256_GCM_HKDF_SHA512_COMMIT_KEY", "-q")
    assert r.code == 0, r.err
    return tmp_path / "data.bin.envelope"


def _key_names(cli, path: Path) -> list[str]:
    info = json.loads(cli("inspect", "--output", "json", str(path)).out)
    return [edk["key_id"] for edk in info["encrypted_data_keys"]]


@pytest.mark.parametrize(("spec", "start", "end"), [("0:10", 0, 10), ("65530:65600", 65530, 65600),
                                                    ("299990:", 299990, None), (":5", 0, 5),
                                                    ("1K:2K", 1024, 2048), ("400000:400010", 400000, 400010)])
def test_decrypt_range_to_stdout_and_file(cli, sealed: Path, spec: str, start: int, end: int | None) -> None:
    r = cli("decrypt", "data.bin.envelope", "--aes-key-file", "old.key", "--range", spec, "-o", "-")
    assert r.code == 0, r.err
    assert r.out == DATA[start:end]
    r = cli("decrypt", "data.bin.envelope", "--aes-key-file", "old.key", "--range", spec, "-o", "part", "-q",
            "--overwrite")
    assert r.code == 0, r.err
    assert (sealed.parent / "part").read_bytes() == DATA[start:end]


def test_decrypt_range_refusals(cli, tmp_path: Path, sealed: Path) -> None:
    r = cli("decrypt", "data.bin.envelope", "--aes-key-file", "old.key", "--range", "5:1", "-o", "-")
    assert r.code == 2 and "ends before it starts" in r.err
    piped = run_envelope("decrypt", "-", "--aes-key-file", "old.key", "--range", "0:1", "-o", "-",
                         stdin=sealed.read_bytes(), cwd=tmp_path)
    assert piped.returncode == 2 and b"seek" in piped.stderr
    cli("encrypt", "data.bin", "--aes-key-file", "old.key", "-o", "signed2.envelope", "-q")
    r = cli("decrypt", "signed2.envelope", "--aes-key-file", "old.key", "--range", "0:1", "-o", "-")
    assert r.code == 6 and "--allow-unverified-signature" in r.err
    r = cli("decrypt", "signed2.envelope", "--aes-key-file", "old.key", "--range", "7:9", "-o", "-",
            "--allow-unverified-signature")
    assert r.code == 0 and r.out == DATA[7:9]


def test_rewrap_in_place_replace_add_remove(cli, sealed: Path, keys: tuple[Path, Path, Path]) -> None:
    before = sealed.read_bytes()
    r = cli("rewrap", "data.bin.envelope", "--aes-key-file", "old.key", "--to", "--aes-key-file", "new.key")
    assert r.code == 0, r.err
    assert cli("decrypt", "data.bin.envelope", "--aes-key-file", "new.key", "-o", "-").out == DATA
    assert cli("decrypt", "data.bin.envelope", "--aes-key-file", "old.key", "-o", "-").code == 5
    assert sealed.read_bytes()[-1000:] == before[-1000:]  # the body is the same bytes
    r = cli("rewrap", "data.bin.envelope", "--aes-key-file", "new.key", "--add", "--to", "--aes-key-file",
            "other.key")
    assert r.code == 0, r.err
    names = _key_names(cli, sealed)
    assert len(names) == 2
    r = cli("rewrap", "data.bin.envelope", "--aes-key-file", "other.key", "--remove-key", names[0])
    assert r.code == 0, r.err
    assert _key_names(cli, sealed) == names[1:]
    assert cli("decrypt", "data.bin.envelope", "--aes-key-file", "other.key", "-o", "-").out == DATA
    assert sorted(p.name for p in sealed.parent.iterdir() if p.name.startswith(".")) == []


def test_rewrap_dry_run_writes_nothing(cli, sealed: Path) -> None:
    before = sealed.read_bytes()
    r = cli("rewrap", "data.bin.envelope", "--aes-key-file", "old.key", "--to", "--aes-key-file", "new.key",
            "--dry-run")
    assert r.code == 0, r.err
    assert sealed.read_bytes() == before
    text = r.out.decode()
    assert "before: envelope aes-" in text and "after:  envelope aes-" in text


def test_rewrap_recursive_and_failures_leave_files_alone(cli, tmp_path: Path, sealed: Path) -> None:
    sub = tmp_path / "dir" / "sub"
    sub.mkdir(parents=True)
    (sub / "a.envelope").write_bytes(sealed.read_bytes())
    (sub / "b.txt").write_bytes(b"not a message")
    r = cli("rewrap", "-r", "dir", "--aes-key-file", "old.key", "--to", "--kms-key", "alias/envelope-default")
    assert r.code == 5 and "not found" in r.err  # --kms-key names an existing key; nothing was written
    cli("kms", "create-alias", "--alias-name", "alias/envelope-default", "--target-key-id",
        json.loads(cli("kms", "create-key").out)["KeyMetadata"]["KeyId"])
    r = cli("rewrap", "-r", "dir", "--aes-key-file", "old.key", "--to", "--kms-key", "alias/envelope-default")
    assert r.code == 0, r.err
    assert cli("decrypt", str(sub / "a.envelope"), "-o", "-").out == DATA  # embedded KMS discovery
    assert (sub / "b.txt").read_bytes() == b"not a message"
    before = (sub / "a.envelope").read_bytes()
    r = cli("rewrap", str(sub / "a.envelope"), "--aes-key-file", "old.key", "--to", "--aes-key-file", "new.key")
    assert r.code == 5
    assert (sub / "a.envelope").read_bytes() == before
    r = cli("rewrap", "data.bin.envelope", "--aes-key-file", "old.key")
    assert r.code == 2 and "--to" in r.err


def test_rewrap_signed_add_is_refused_with_a_cli_hint(cli, tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    (tmp_path / "data.bin").write_bytes(DATA)
    cli("encrypt", "data.bin", "--aes-key-file", "old.key", "-q")
    r = cli("rewrap", "data.bin.envelope", "--aes-key-file", "old.key", "--add", "--to", "--aes-key-file",
            "new.key")
    assert r.code == 6 and "after --to" in r.err
    r = cli("rewrap", "data.bin.envelope", "--aes-key-file", "old.key", "--to", "--aes-key-file", "new.key",
            "--aes-key-file", "other.key")
    assert r.code == 0, r.err
    for key in ("new.key", "other.key"):
        assert cli("decrypt", "data.bin.envelope", "--aes-key-file", key, "-o", "-").out == DATA


def test_rewrap_stdin_to_stdout(cli, sealed: Path) -> None:
    r = cli("rewrap", "-", "--aes-key-file", "old.key", "--to", "--aes-key-file", "new.key",
            stdin=sealed.read_bytes())
    assert r.code == 0, r.err
    assert len(r.out) == len(sealed.read_bytes())
    (sealed.parent / "piped.envelope").write_bytes(r.out)
    assert cli("decrypt", "piped.envelope", "--aes-key-file", "new.key", "-o", "-").out == DATA
