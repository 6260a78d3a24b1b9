"""Where output goes (issue 12, item 3): a path that leads to an existing regular file is that
file (refused without --overwrite, replaced whole with it); only character devices, FIFOs and
sockets are written in place; kill -9 at any instant leaves no partial output and no temporary
file that the next run does not remove; a reader going away ends quietly with 141."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from _cli_helpers import ENVELOPE, PLAIN, run_envelope

import envelope

KEY = bytes(range(32))
KEYRING = envelope.RawAESKeyring("envelope", "k", KEY)


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "k"
    path.write_bytes(KEY)
    return path


def _encrypt_args(key: Path, *rest: str) -> list[str]:
    return ["encrypt", "--aes-key-file", str(key), "--key-name", "k", *rest]


def _leftovers(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".envelope-tmp"))


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs /proc")
def test_proc_self_cwd_names_a_regular_file(tmp_path: Path, key: Path) -> None:
    (tmp_path / "plain.txt").write_bytes(PLAIN)
    (tmp_path / "x").write_bytes(b"precious")
    refused = run_envelope(*_encrypt_args(key, "plain.txt", "-o", "/proc/self/cwd/x"), cwd=tmp_path)
    assert refused.returncode == 4 and b"exists" in refused.stderr and b"--overwrite" in refused.stderr
    assert (tmp_path / "x").read_bytes() == b"precious"
    before = os.stat(tmp_path / "x").st_ino
    done = run_envelope(*_encrypt_args(key, "plain.txt", "-o", "/proc/self/cwd/x", "--overwrite"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert envelope.decrypt((tmp_path / "x").read_bytes(), keyring=KEYRING)[0] == PLAIN
    assert os.stat(tmp_path / "x").st_ino != before  # renamed into place, not written in place
    assert _leftovers(tmp_path) == []


def test_symlink_to_a_file_is_that_file(tmp_path: Path, key: Path) -> None:
    (tmp_path / "plain.txt").write_bytes(PLAIN)
    (tmp_path / "real").write_bytes(b"precious")
    (tmp_path / "link").symlink_to("real")
    refused = run_envelope(*_encrypt_args(key, "plain.txt", "-o", "link"), cwd=tmp_path)
    assert refused.returncode == 4
    assert (tmp_path / "real").read_bytes() == b"precious"
    done = run_envelope(*_encrypt_args(key, "plain.txt", "-o", "link", "--overwrite"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "link").is_symlink()  # the link stays; the file it leads to is replaced
    assert envelope.decrypt((tmp_path / "real").read_bytes(), keyring=KEYRING)[0] == PLAIN


def test_a_fifo_and_dev_null_are_written_in_place(tmp_path: Path, key: Path) -> None:
    (tmp_path / "plain.txt").write_bytes(PLAIN)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    done = run_envelope(*_encrypt_args(key, "plain.txt", "-o", str(fifo)), cwd=tmp_path)
    reader.join(30)
    assert done.returncode == 0, done.stderr
    assert envelope.decrypt(received[0], keyring=KEYRING)[0] == PLAIN
    assert fifo.is_fifo()
    assert run_envelope(*_encrypt_args(key, "plain.txt", "-o", "/dev/null"), cwd=tmp_path).returncode == 0


def test_closed_downstream_pipe_ends_quietly_with_141(tmp_path: Path, key: Path) -> None:
    """`envelope decrypt x -o - | head -c1`: exit 141 like other tools, nothing on stderr."""
    (tmp_path / "z.envelope").write_bytes(envelope.encrypt(b"z" * (8 << 20), keyring=KEYRING, frame_length=4096))
    command = " ".join([*ENVELOPE, "decrypt", "--aes-key-file", str(key), "--key-name", "k", "z.envelope",
                        "-o", "-", "2>err", "| head -c1 >first", "; echo ${PIPESTATUS[0]}"])
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, timeout=60, check=False)
    assert done.stdout.strip() == b"141"
    assert (tmp_path / "first").read_bytes() == b"z"
    assert (tmp_path / "err").read_bytes() == b""


# A run killed at the instants no kill -9 loop hits reliably: after an unnamed file got its name
# and before the rename (--overwrite), and in the middle of writing a named one (no O_TMPFILE).
_KILLED_AT = textwrap.dedent("""
    import os, signal, sys
    from envelope_cli import files
    target, where = sys.argv[1], sys.argv[2]
    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    if where == "named":
        files.OutputFile._open_unnamed = lambda self: None
    output = files.OutputFile(target, overwrite=True)
    output.file.write(b"partial")
    output.file.flush()
    if where == "named":
        die()
    os.replace = die
    output.commit()
""")


@pytest.mark.parametrize("where", ["between-link-and-rename", "named"])
def test_next_run_removes_what_a_killed_run_left(tmp_path: Path, key: Path, where: str) -> None:
    if where != "named" and not hasattr(os, "O_TMPFILE"):
        pytest.skip("needs O_TMPFILE")
    target = tmp_path / "out"
    target.write_bytes(b"old")
    killed = subprocess.run([sys.executable, "-c", _KILLED_AT, str(target), where], capture_output=True, timeout=60,
                            check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert target.read_bytes() == b"old"  # never partial
    assert len(_leftovers(tmp_path)) == 1  # the window the OS cannot close
    (tmp_path / "plain.txt").write_bytes(PLAIN)
    done = run_envelope(*_encrypt_args(key, "plain.txt", "-o", "other"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert _leftovers(tmp_path) == []
    assert target.read_bytes() == b"old"


def _kill_loop(tmp_path: Path, argv: list[str], target: Path, check: object) -> None:
    """Run ``argv`` (into ``target``) a few times, each killed by SIGKILL at a random instant of
    its run; after each, the target is whole (old or new, never partial), and once the next run
    has swept the directory no temporary file is left."""
    start = time.monotonic()
    assert run_envelope(*argv, cwd=tmp_path).returncode == 0
    duration = time.monotonic() - start
    rng = random.Random(12)
    for _ in range(5):
        proc = subprocess.Popen([*ENVELOPE, *argv], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, duration))
        proc.kill()
        proc.wait()
        check(target.read_bytes())  # type: ignore[operator]
    assert run_envelope(*argv, cwd=tmp_path).returncode == 0
    check(target.read_bytes())  # type: ignore[operator]
    assert _leftovers(tmp_path) == []


def test_kill9_loop_encrypt_overwrite(tmp_path: Path, key: Path) -> None:
    plaintext = random.Random(1).randbytes(8 << 20)
    (tmp_path / "big").write_bytes(plaintext)
    target = tmp_path / "big.envelope"
    target.write_bytes(b"old")

    def check(data: bytes) -> None:
        assert data == b"old" or envelope.decrypt(data, keyring=KEYRING)[0] == plaintext

    _kill_loop(tmp_path, _encrypt_args(key, "--frame-length", "4K", "big", "--overwrite"), target, check)


def test_kill9_loop_decrypt(tmp_path: Path, key: Path) -> None:
    plaintext = random.Random(2).randbytes(8 << 20)
    (tmp_path / "big.envelope").write_bytes(envelope.encrypt(plaintext, keyring=KEYRING, frame_length=4096))
    target = tmp_path / "big"
    target.write_bytes(b"old")

    def check(data: bytes) -> None:
        assert data in (b"old", plaintext)

    _kill_loop(tmp_path, ["decrypt", "--aes-key-file", str(key), "--key-name", "k", "big.envelope", "--overwrite"],
               target, check)
