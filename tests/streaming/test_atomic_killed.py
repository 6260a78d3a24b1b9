"""Nothing is lost: `encrypt_file`, `decrypt_file`, `rewrap` to a path and their async mirrors,
killed by SIGKILL in the middle, leave the destination absent (or as it was) and, with O_TMPFILE,
no file at all; without it, one locked temporary file that the next call into that directory
removes. An error in the middle (a tampered message) leaves no output either.

A child is stopped at a known point rather than at a time: in the body (its input is a FIFO that
the test stops feeding, and the test waits until the child's temporary output holds data) or
with the whole output written and only the commit left (a hook that reports and waits)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import anyio
import pytest
from _output_helpers import has_unnamed_files, leftovers, open_output_size

import envelope
from envelope import aio

KEYRING = envelope.RawAESKeyring("atomic", "old", bytes(range(32)))
NEW_KEYRING = envelope.RawAESKeyring("atomic", "new", bytes(32))
UNSIGNED = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY"  # an unsigned suite: decrypt releases frames as they authenticate
PLAINTEXT = os.urandom(4 << 20)
OPERATIONS = ["encrypt_file", "decrypt_file", "rewrap", "aio.encrypt_file", "aio.decrypt_file"]

# The child: runs one operation from SOURCE to TARGET, written unnamed or (`named`) as file
# systems without O_TMPFILE make it write; with `hold`, its commit reports and waits to be killed.
_CHILD = textwrap.dedent("""
    import sys, anyio, envelope
    from envelope import aio
    from envelope.streaming import atomic
    operation, source, target, how = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
    if "named" in how:
        atomic.AtomicOutput._open_unnamed = lambda self: None
    if "hold" in how:
        def hold(self):
            print("ready", flush=True)
            sys.stdin.read()
        atomic.AtomicOutput.commit = hold
    old = envelope.RawAESKeyring("atomic", "old", bytes(range(32)))
    new = envelope.RawAESKeyring("atomic", "new", bytes(32))
    options = dict(keyring=old, overwrite=True)
    if operation == "encrypt_file":
        envelope.encrypt_file(source, target, frame_length=4096, **options)
    elif operation == "decrypt_file":
        envelope.decrypt_file(source, target, **options)
    elif operation == "rewrap":
        envelope.rewrap(source, target, keyring=old, new_keyring=new)
    elif operation == "aio.encrypt_file":
        anyio.run(lambda: aio.encrypt_file(source, target, frame_length=4096, **options))
    else:
        anyio.run(lambda: aio.decrypt_file(source, target, **options))
    print("finished", flush=True)
""")


def _input_for(operation: str) -> bytes:
    if operation.endswith("encrypt_file"):
        return PLAINTEXT
    return envelope.encrypt(PLAINTEXT, keyring=KEYRING, algorithm=UNSIGNED, frame_length=4096)


def _start(operation: str, source: Path, target: Path, how: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _CHILD, operation, str(source), str(target), how],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill(child: subprocess.Popen[bytes]) -> None:
    child.kill()
    child.communicate()
    assert child.returncode == -signal.SIGKILL


def _kill_in_the_body(operation: str, tmp_path: Path, out: Path, how: str) -> None:
    """Feed the child's FIFO input half its data, wait until its temporary output in ``out``
    holds some of it, and kill it there."""
    fifo = tmp_path / "input"
    os.mkfifo(fifo)
    data = _input_for(operation)
    release = threading.Event()

    def feed() -> None:
        # EPIPE once the child is dead; the rest of the input never comes.
        with contextlib.suppress(BrokenPipeError), open(fifo, "wb") as writer:
            writer.write(data[: len(data) // 2])
            release.wait(60)

    feeder = threading.Thread(target=feed)
    feeder.start()
    child = _start(operation, fifo, out / "dst", how)
    try:
        deadline = time.monotonic() + 60  # a guard against a hang, not a timing assertion
        while not open_output_size(child.pid, out):
            if child.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the child wrote no output: {child.communicate()[1]!r}")
            time.sleep(0.01)
        _kill(child)
    finally:
        release.set()
        if child.poll() is None:
            child.kill()
            child.communicate()
        if feeder.is_alive():  # the child never opened the FIFO: open it so the feeder ends
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        feeder.join(60)


def _kill_before_commit(operation: str, source: Path, target: Path, how: str) -> None:
    """Run the child until its output is whole and only the commit is left, and kill it there."""
    child = _start(operation, source, target, how + ",hold")
    try:
        line = child.stdout.readline()  # type: ignore[union-attr]
        if line != b"ready\n":
            raise AssertionError(f"the child did not reach its commit: {line!r} {child.communicate()[1]!r}")
        _kill(child)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


def _check_named_leftover_is_swept(out: Path, expected: list[str]) -> None:
    """One locked temporary file is left while its writer is dead; the next call into the
    directory removes it (this process has not written to ``out`` before)."""
    assert len(leftovers(out)) == 1
    assert leftovers(out)[0].startswith(".dst.")
    assert sorted(set(os.listdir(out)) - set(leftovers(out))) == expected
    envelope.encrypt_file(out.parent / "next-input", out / "next", keyring=KEYRING)
    assert sorted(os.listdir(out)) == sorted([*expected, "next"])


@pytest.fixture
def out(tmp_path: Path) -> Path:
    directory = tmp_path / "out"
    directory.mkdir()
    (tmp_path / "next-input").write_bytes(b"the next call")
    return directory


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to watch the child")
@pytest.mark.parametrize("how", ["unnamed", "named"])
@pytest.mark.parametrize("operation", OPERATIONS)
def test_killed_in_the_body_leaves_no_output(operation: str, how: str, tmp_path: Path, out: Path) -> None:
    if how == "unnamed" and not has_unnamed_files(out):
        pytest.skip("needs O_TMPFILE")
    _kill_in_the_body(operation, tmp_path, out, how)
    assert not (out / "dst").exists()
    if how == "unnamed":
        assert os.listdir(out) == []
    else:
        _check_named_leftover_is_swept(out, [])


@pytest.mark.parametrize("how", ["unnamed", "named"])
@pytest.mark.parametrize("operation", OPERATIONS)
def test_killed_before_commit_leaves_the_destination_as_it_was(operation: str, how: str, tmp_path: Path,
                                                               out: Path) -> None:
    if how == "unnamed" and not has_unnamed_files(out):
        pytest.skip("needs O_TMPFILE")
    source = tmp_path / "input"
    source.write_bytes(_input_for(operation))
    (out / "dst").write_bytes(b"precious")
    _kill_before_commit(operation, source, out / "dst", how)
    assert (out / "dst").read_bytes() == b"precious"
    if how == "unnamed":
        assert os.listdir(out) == ["dst"]
    else:
        _check_named_leftover_is_swept(out, ["dst"])


@pytest.mark.parametrize("how", ["unnamed", "named"])
def test_rewrap_in_place_killed_before_commit_keeps_the_old_message(how: str, out: Path) -> None:
    if how == "unnamed" and not has_unnamed_files(out):
        pytest.skip("needs O_TMPFILE")
    message = _input_for("rewrap")
    (out / "dst").write_bytes(message)
    _kill_before_commit("rewrap", out / "dst", out / "dst", how)
    assert (out / "dst").read_bytes() == message
    if how == "unnamed":
        assert os.listdir(out) == ["dst"]
    else:
        _check_named_leftover_is_swept(out, ["dst"])


def test_the_child_finishes_when_left_alone(tmp_path: Path, out: Path) -> None:
    """The child above really does the work: unhindered, every operation produces its output."""
    for operation in OPERATIONS:
        source = tmp_path / "input"
        source.write_bytes(_input_for(operation))
        child = _start(operation, source, out / "dst", "unnamed")
        stdout, stderr = child.communicate(timeout=120)
        assert stdout == b"finished\n", stderr
        result = (out / "dst").read_bytes()
        if operation == "rewrap":
            assert envelope.decrypt(result, keyring=NEW_KEYRING)[0] == PLAINTEXT
        elif operation.endswith("encrypt_file"):
            assert envelope.decrypt(result, keyring=KEYRING)[0] == PLAINTEXT
        else:
            assert result == PLAINTEXT
        assert os.listdir(out) == ["dst"]


def _tampered() -> bytes:
    message = bytearray(envelope.encrypt(PLAINTEXT[:200_000], keyring=KEYRING, algorithm=UNSIGNED,
                                         frame_length=4096))
    message[-200] ^= 1  # in the last frames: the earlier ones authenticate and are written first
    return bytes(message)


@pytest.mark.parametrize("operation", ["decrypt_file", "aio.decrypt_file", "rewrap"])
def test_an_error_in_the_middle_leaves_no_output(operation: str, tmp_path: Path, out: Path) -> None:
    source = tmp_path / "bad"
    if operation == "rewrap":
        # Rewrap copies an unsigned body without opening its frames: a truncation is its error.
        message = envelope.encrypt(PLAINTEXT[:200_000], keyring=KEYRING, algorithm=UNSIGNED, frame_length=4096)
        source.write_bytes(message[:-100])
    else:
        source.write_bytes(_tampered())
    for existing in (False, True):
        if existing:
            (out / "dst").write_bytes(b"precious")
        with pytest.raises(envelope.AuthenticationError):
            if operation == "decrypt_file":
                envelope.decrypt_file(source, out / "dst", keyring=KEYRING, overwrite=True)
            elif operation == "aio.decrypt_file":
                anyio.run(lambda: aio.decrypt_file(source, out / "dst", keyring=KEYRING, overwrite=True))
            else:
                envelope.rewrap(source, out / "dst", keyring=KEYRING, new_keyring=NEW_KEYRING)
        assert os.listdir(out) == (["dst"] if existing else [])
        if existing:
            assert (out / "dst").read_bytes() == b"precious"
