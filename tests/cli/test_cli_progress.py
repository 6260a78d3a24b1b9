"""The progress bar: drawn on a terminal for long work, silent with -q or when stderr is not a terminal."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from _cli_helpers import ENVELOPE
from envelope_cli.progress import binary_size, describe_job

pty = pytest.importorskip("pty")


def _stderr_on_a_terminal(argv: list[str], cwd: Path) -> tuple[int, bytes]:
    master, slave = pty.openpty()
    proc = subprocess.Popen([*ENVELOPE, *argv], stderr=slave, stdout=subprocess.DEVNULL, cwd=cwd)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO once the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return proc.wait(), seen


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(b"\x5a" * (12 * 1024 * 1024))  # above the 8 MiB threshold for a bar
    (tmp_path / "k").write_bytes(bytes(32))
    return path


def test_bar_on_a_terminal(big_file: Path) -> None:
    code, seen = _stderr_on_a_terminal(["encrypt", "--aes-key-file", "k", "big.bin"], big_file.parent)
    assert code == 0
    # Binary units, and the input's size: 12 * 2**20 bytes.
    assert b"encrypting (12.0 MiB)" in seen and b"/12.0 MiB" in seen
    assert b"MB" not in seen


def test_bar_names_the_file_in_multi_file_runs(big_file: Path) -> None:
    (big_file.parent / "small").write_bytes(b"x" * 1000)
    code, seen = _stderr_on_a_terminal(["encrypt", "--aes-key-file", "k", "small", "big.bin", "-o", "out/"],
                                       big_file.parent)
    assert code == 0
    assert b"encrypting [2/2] big.bin (12.0 MiB)" in seen and b"/12.0 MiB" in seen


@pytest.mark.parametrize(("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (12 * 2**20, "12.0 MiB"),
                                         (3 * 2**30 + 2**29, "3.5 GiB"), (2**60, "1024.0 PiB")])
def test_binary_units(n: int, text: str) -> None:
    assert binary_size(n) == text


def test_job_labels() -> None:
    assert describe_job("decrypt", "-", index=1, count=1, size=None) == "decrypting"
    assert describe_job("encrypt", "a/b.txt", index=3, count=4, size=2048) == "encrypting [3/4] a/b.txt (2.0 KiB)"


def test_quiet_on_a_terminal(big_file: Path) -> None:
    code, seen = _stderr_on_a_terminal(["encrypt", "-q", "--aes-key-file", "k", "big.bin"], big_file.parent)
    assert code == 0
    assert seen == b""


def test_small_work_draws_nothing(tmp_path: Path) -> None:
    (tmp_path / "small").write_bytes(b"x" * 1000)
    (tmp_path / "k").write_bytes(bytes(32))
    code, seen = _stderr_on_a_terminal(["encrypt", "--aes-key-file", "k", "small"], tmp_path)
    assert code == 0 and seen == b""


def test_refuses_to_write_ciphertext_to_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "k").write_bytes(bytes(32))
    master, slave = pty.openpty()
    proc = subprocess.run([*ENVELOPE, "encrypt", "--aes-key-file", "k", "-"], input=b"data", stdout=slave,
                          stderr=subprocess.PIPE, cwd=tmp_path, check=False)
    os.close(slave)
    os.close(master)
    assert proc.returncode == 2
    assert b"hint: redirect stdout or pass -o FILE" in proc.stderr


def test_reader_going_away_is_quiet(tmp_path: Path) -> None:
    (tmp_path / "k").write_bytes(bytes(32))
    (tmp_path / "z").write_bytes(b"z" * (4 * 1024 * 1024))
    subprocess.run([*ENVELOPE, "encrypt", "--aes-key-file", "k", "--frame-length", "4K", "z"], cwd=tmp_path,
                   check=True)
    proc = subprocess.Popen([*ENVELOPE, "decrypt", "--aes-key-file", "k", "z.envelope", "-o", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10) == b"z" * 10
    proc.stdout.close()  # like `| head -c 10`
    err = proc.stderr.read()
    assert proc.wait() == 141  # SIGPIPE's status (128 + 13), as other tools end (issue 12)
    assert err == b""
