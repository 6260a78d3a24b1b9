"""Sync `envelope.encrypt_file` / `decrypt_file`: the output appears whole or not at all, an
existing destination is refused unless ``overwrite=True``, the input is never overwritten, and
the async mirrors keep the same contract."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import anyio
import pytest

import envelope
from envelope import aio
from envelope.materials.materials import DecryptionMaterials, EncryptionMaterials

KEYRING = envelope.RawAESKeyring("files-ns", "files-key", bytes(range(32)))
DATA = os.urandom(200_003)


def _names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_round_trip_with_options(tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(DATA)
    header = envelope.encrypt_file(tmp_path / "in", str(tmp_path / "in.env"), keyring=KEYRING,
                                   frame_length=4096, encryption_context={"file": "in"})
    assert header.frame_length == 4096
    assert stat.S_IMODE((tmp_path / "in.env").stat().st_mode) == 0o600
    opened = envelope.decrypt_file(tmp_path / "in.env", tmp_path / "out", keyring=KEYRING,
                                   encryption_context={"file": "in"})
    assert opened.encryption_context["file"] == "in"
    assert (tmp_path / "out").read_bytes() == DATA
    assert _names(tmp_path) == ["in", "in.env", "out"]  # no temporary file left


def test_existing_destination_needs_overwrite_and_the_input_is_never_one(tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(b"new contents")
    (tmp_path / "out").write_bytes(b"old")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        envelope.encrypt_file(tmp_path / "in", tmp_path / "out", keyring=KEYRING)
    assert (tmp_path / "out").read_bytes() == b"old"
    envelope.encrypt_file(tmp_path / "in", tmp_path / "out", keyring=KEYRING, overwrite=True)
    assert envelope.decrypt((tmp_path / "out").read_bytes(), keyring=KEYRING)[0] == b"new contents"
    os.link(tmp_path / "in", tmp_path / "hardlink")
    for dst in ("in", "hardlink"):
        with pytest.raises(ValueError, match="input"):
            envelope.encrypt_file(tmp_path / "in", tmp_path / dst, keyring=KEYRING, overwrite=True)
    assert (tmp_path / "in").read_bytes() == b"new contents"
    assert _names(tmp_path) == ["hardlink", "in", "out"]


def test_tampered_message_leaves_the_destination_as_it_was(tmp_path: Path) -> None:
    message = bytearray(envelope.encrypt(DATA, keyring=KEYRING, frame_length=4096))
    message[-200] ^= 1  # in the last frames: earlier frames authenticate and are written first
    (tmp_path / "bad").write_bytes(message)
    with pytest.raises(envelope.AuthenticationError):
        envelope.decrypt_file(tmp_path / "bad", tmp_path / "out", keyring=KEYRING)
    assert _names(tmp_path) == ["bad"]
    (tmp_path / "out").write_bytes(b"previous")
    with pytest.raises(envelope.AuthenticationError):
        envelope.decrypt_file(tmp_path / "bad", tmp_path / "out", keyring=KEYRING, overwrite=True)
    assert (tmp_path / "out").read_bytes() == b"previous"
    assert _names(tmp_path) == ["bad", "out"]


class _Interrupting:
    """A keyring that interrupts the run (as Ctrl-C would) when the data key is wrapped."""

    def on_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
        raise KeyboardInterrupt

    def on_decrypt(self, materials: DecryptionMaterials, edks: Any) -> DecryptionMaterials:
        raise KeyboardInterrupt


def test_interruption_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(DATA)
    with pytest.raises(KeyboardInterrupt):
        envelope.encrypt_file(tmp_path / "in", tmp_path / "out", keyring=_Interrupting())
    assert _names(tmp_path) == ["in"]


def test_a_destination_created_during_the_work_is_kept(tmp_path: Path) -> None:
    # The check before the work cannot see a file that appears meanwhile; the final move refuses it.
    class Racing:
        def on_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
            (tmp_path / "out").write_bytes(b"someone else's")
            return KEYRING.on_encrypt(materials)

        def on_decrypt(self, materials: DecryptionMaterials, edks: Any) -> DecryptionMaterials:
            return KEYRING.on_decrypt(materials, edks)

    (tmp_path / "in").write_bytes(DATA)
    with pytest.raises(FileExistsError):
        envelope.encrypt_file(tmp_path / "in", tmp_path / "out", keyring=Racing())
    assert (tmp_path / "out").read_bytes() == b"someone else's"
    assert _names(tmp_path) == ["in", "out"]


def test_sync_and_async_files_share_the_contract(tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(DATA)
    envelope.encrypt_file(tmp_path / "in", tmp_path / "sync.env", keyring=KEYRING)

    async def run() -> None:
        await aio.decrypt_file(tmp_path / "sync.env", tmp_path / "out", keyring=KEYRING)
        with pytest.raises(FileExistsError):
            await aio.decrypt_file(tmp_path / "sync.env", tmp_path / "out", keyring=KEYRING)
        await aio.encrypt_file(tmp_path / "in", tmp_path / "async.env", keyring=KEYRING)

    anyio.run(run)
    assert (tmp_path / "out").read_bytes() == DATA
    envelope.decrypt_file(tmp_path / "async.env", tmp_path / "out", keyring=KEYRING, overwrite=True)
    assert (tmp_path / "out").read_bytes() == DATA


def test_bytes_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="paths"):
        envelope.encrypt_file(os.fsencode(tmp_path / "in"), tmp_path / "out", keyring=KEYRING)  # type: ignore[arg-type]
