"""Output safety: killed, interrupted or failed decrypts leave no partial plaintext; bounded memory."""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from _cli_helpers import ENVELOPE
from _output_helpers import open_output_size

import envelope

KEY = bytes(range(32))
SIZE = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def big_message() -> bytes:
    """64 MiB in 4 KiB frames, unsigned so authenticated frames reach the output as they arrive."""
    keyring = envelope.RawAESKeyring("envelope", "k", KEY)
    plaintext = hashlib.shake_256(b"envelope").digest(1024 * 1024) * (SIZE // (1024 * 1024))
    return envelope.encrypt(plaintext, keyring=keyring, frame_length=4096,
                            algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY")


def _start_decrypt(tmp_path: Path, message: bytes) -> tuple[subprocess.Popen[bytes], Path]:
    """Feed half the message through a pipe and wait until plaintext reached the temporary file.

    Waiting on the child's own progress (not on time) makes "killed mid-decrypt" deterministic.
    """
    key = tmp_path / "key"
    key.write_bytes(KEY)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "plain.bin"
    proc = subprocess.Popen([*ENVELOPE, "decrypt", "--aes-key-file", str(key), "--key-name", "k",
                             "-o", str(target), "-"], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(message[: len(message) // 2])
    proc.stdin.flush()
    for _ in range(2000):
        size = open_output_size(proc.pid, out_dir)
        if size:
            break
        if proc.poll() is not None:
            raise AssertionError(f"decrypt ended early: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        threading.Event().wait(0.01)
    else:
        proc.kill()
        raise AssertionError("no plaintext reached the temporary output")
    return proc, target


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to watch the child")
def test_sigkill_mid_decrypt_leaves_no_plaintext(tmp_path: Path, big_message: bytes) -> None:
    proc, target = _start_decrypt(tmp_path, big_message)
    proc.kill()
    proc.wait()
    proc.stdin.close()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists()
    if hasattr(os, "O_TMPFILE"):
        # the temporary output was never named, so nothing at all is left behind
        assert os.listdir(target.parent) == []


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to watch the child")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_decrypt_cleans_up(tmp_path: Path, big_message: bytes, sig: signal.Signals) -> None:
    proc, target = _start_decrypt(tmp_path, big_message)
    proc.send_signal(sig)
    _, err = proc.communicate()
    assert proc.returncode == 130
    assert b"envelope: interrupted" in err
    assert os.listdir(target.parent) == []


def test_truncated_pipe_input_leaves_no_output(tmp_path: Path, big_message: bytes) -> None:
    key = tmp_path / "key"
    key.write_bytes(KEY)
    target = tmp_path / "plain.bin"
    result = subprocess.run([*ENVELOPE, "decrypt", "--aes-key-file", str(key), "--key-name", "k", "-o",
                             str(target), "-"], input=big_message[: len(big_message) - 100], capture_output=True, check=False)
    assert result.returncode == 3, result.stderr
    assert not target.exists()
    assert sorted(os.listdir(tmp_path)) == ["key"]


@pytest.mark.bigpipe
@pytest.mark.skipif(os.environ.get("ENVELOPE_BIG_TESTS") != "1", reason="set ENVELOPE_BIG_TESTS=1 to run")
def test_one_gib_through_a_pipe_with_bounded_memory(tmp_path: Path) -> None:
    """`envelope encrypt - | envelope decrypt -` on 1 GiB; peak RSS of either process stays small."""
    key = tmp_path / "key"
    key.write_bytes(KEY)
    flags = ["--aes-key-file", str(key)]
    block = hashlib.shake_256(b"big").digest(1024 * 1024)
    total = 1024
    enc = subprocess.Popen([*ENVELOPE, "encrypt", *flags, "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    dec = subprocess.Popen([*ENVELOPE, "decrypt", *flags, "-"], stdin=enc.stdout, stdout=subprocess.PIPE)
    assert enc.stdin is not None and enc.stdout is not None and dec.stdout is not None
    enc.stdout.close()  # the decrypt process owns the read end now

    def feed() -> None:
        for _ in range(total):
            enc.stdin.write(block)  # type: ignore[union-attr]
        enc.stdin.close()  # type: ignore[union-attr]

    writer = threading.Thread(target=feed)
    writer.start()
    digest = hashlib.sha256()
    received = 0
    while chunk := dec.stdout.read(1024 * 1024):
        digest.update(chunk)
        received += len(chunk)
    writer.join()
    assert enc.wait() == 0 and dec.wait() == 0
    expected = hashlib.sha256()
    for _ in range(total):
        expected.update(block)
    assert received == total * len(block)
    assert digest.digest() == expected.digest()
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
    print(f"peak RSS of the largest child: {peak_mib:.0f} MiB")
    assert peak_mib < 256
