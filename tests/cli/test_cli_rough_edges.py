"""Regressions for rough edges a new user met: pipes as inputs, compressed messages, which file
failed, empty inputs, hints that name CLI flags, `--output table|off`."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from _cli_helpers import ENVELOPE, PLAIN
from envelope_cli import exits
from envelope_cli.main import main

import envelope


def _feed_fifo(path: Path, data: bytes) -> threading.Thread:
    def write() -> None:
        with open(path, "wb") as fp:  # blocks until the CLI opens the other end
            fp.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_encrypt_a_named_pipe(cli, tmp_path: Path, aes_key: Path) -> None:
    # A pipe's size (0) is not its length: `envelope encrypt <(cmd)` used to fail with
    # "more plaintext than the declared plaintext_length=0".
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = _feed_fifo(fifo, PLAIN)
    r = cli("encrypt", "--aes-key-file", str(aes_key), "fifo", "-o", "out.envelope")
    writer.join(10)
    assert r.code == 0, r.err
    r = cli("decrypt", "--aes-key-file", str(aes_key), "out.envelope", "-o", "-")
    assert r.code == 0, r.err
    assert r.out == PLAIN


def test_decompression_limits_are_flags(cli, tmp_path: Path, aes_key: Path) -> None:
    # More than the library's 16 MiB grace, so the 1000:1 ratio guard applies.
    (tmp_path / "zeros").write_bytes(bytes(17 * 1024 * 1024))
    assert cli("encrypt", "--aes-key-file", str(aes_key), "--compress", "zeros").code == 0
    key = ("--aes-key-file", str(aes_key))
    r = cli("decrypt", *key, "zeros.envelope", "-o", "a")
    assert r.code == 6 and "ratio" in r.err
    assert "--max-compression-ratio" in r.err and "max_compression_ratio" not in r.err
    assert not (tmp_path / "a").exists()
    r = cli("decrypt", *key, "--max-compression-ratio", "0", "zeros.envelope", "-o", "b")
    assert r.code == 0, r.err
    assert (tmp_path / "b").stat().st_size == 17 * 1024 * 1024
    r = cli("decrypt", *key, "--max-compression-ratio", "0", "--max-decompressed-size", "1M", "zeros.envelope",
            "-o", "c")
    assert r.code == 6 and "--max-decompressed-size" in r.err
    assert not (tmp_path / "c").exists()
    assert cli("decrypt", *key, "--max-compression-ratio", "-1", "zeros.envelope").code == 2


def test_error_names_the_file_when_there_are_several(cli, plain: Path, aes_key: Path, tmp_path: Path) -> None:
    key = ("--aes-key-file", str(aes_key))
    assert cli("encrypt", *key, "plain.txt").code == 0
    sealed = (tmp_path / "plain.txt.envelope").read_bytes()
    (tmp_path / "cut.envelope").write_bytes(sealed[: len(sealed) // 2])
    r = cli("decrypt", *key, "plain.txt.envelope", "cut.envelope", "-o", "out/")
    assert r.code == 3
    assert r.err.startswith("envelope: error: cut.envelope: message is truncated")
    r = cli("decrypt", *key, "cut.envelope", "-o", "one")
    assert r.err.startswith("envelope: error: message is truncated")  # one input: no prefix needed
    r = cli("inspect", "plain.txt.envelope", "missing.envelope")
    assert r.code == 4 and r.err.count("missing.envelope") == 1
    Path("short.envelope").write_bytes(sealed[:20])
    r = cli("inspect", "plain.txt.envelope", "short.envelope")
    assert r.code == 3 and "envelope: error: short.envelope: " in r.err


def test_empty_input_is_named_as_such(cli, aes_key: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.envelope").write_bytes(b"")
    r = cli("decrypt", "--aes-key-file", str(aes_key), "empty.envelope")
    assert r.code == 3 and "the input is empty: not an envelope message" in r.err
    assert not (tmp_path / "empty").exists()
    r = cli("inspect", "empty.envelope")
    assert r.code == 3 and "empty" in r.err


def test_library_hints_name_cli_flags(cli, plain: Path, aes_key: Path) -> None:
    key = ("--aes-key-file", str(aes_key))
    assert cli("encrypt", *key, "--algorithm", "AES_256_GCM_IV12_TAG16_HKDF_SHA256", "--commitment-policy",
               "FORBID_ENCRYPT_ALLOW_DECRYPT", "plain.txt", "-o", "legacy.envelope").code == 0
    r = cli("decrypt", *key, "legacy.envelope", "-o", "out")
    assert r.code == 6
    assert "hint: decrypt with --commitment-policy REQUIRE_ENCRYPT_ALLOW_DECRYPT" in r.err
    r = cli("encrypt", *key, "--algorithm", "AES_256_GCM_IV12_TAG16_HKDF_SHA256", "plain.txt", "-o", "x")
    assert r.code == 6 and "--commitment-policy FORBID_ENCRYPT_ALLOW_DECRYPT" in r.err
    assert cli("encrypt", *key, "plain.txt").code == 0
    r = cli("decrypt", *key, "--refuse-signed", "plain.txt.envelope", "-o", "y")
    assert r.code == 6 and "drop --refuse-signed" in r.err


def test_wrong_context_exit_code_is_documented(cli, plain: Path, aes_key: Path) -> None:
    key = ("--aes-key-file", str(aes_key))
    assert cli("encrypt", *key, "-c", "team=hr", "plain.txt").code == 0
    r = cli("decrypt", *key, "-c", "team=finance", "plain.txt.envelope", "-o", "out")
    assert r.code == exits.ExitCode.POLICY
    six = next(line for line in exits.EXIT_CODES_HELP.splitlines() if line.startswith("  6 "))
    three = next(line for line in exits.EXIT_CODES_HELP.splitlines() if line.startswith("  3 "))
    assert "encryption context mismatch" in six and "context" not in three


def test_pending_deletion_hint_on_encrypt(cli, plain: Path) -> None:
    key_id = json.loads(cli("kms", "create-key").out)["KeyMetadata"]["KeyId"]
    assert cli("kms", "schedule-key-deletion", "--key-id", key_id, "--pending-window-in-days", "7").code == 0
    r = cli("encrypt", "--kms-key", key_id, "plain.txt")
    assert r.code == 5 and "pending deletion" in r.err
    assert "hint: " in r.err and "cancel-key-deletion" in r.err


class _Terminal(io.TextIOWrapper):
    def isatty(self) -> bool:
        return True


def test_binary_to_terminal_is_refused_before_any_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        data_dir: Path) -> None:
    monkeypatch.chdir(tmp_path)
    stdout, stderr = _Terminal(io.BytesIO()), io.TextIOWrapper(io.BytesIO(), write_through=True)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"data")))
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    started: list[object] = []
    monkeypatch.setattr("envelope_cli.crypt.make_progress", lambda **kw: started.append(kw))
    assert main(["encrypt", "-"]) == 2
    assert "refusing to write a binary message to the terminal" in stderr.buffer.getvalue().decode()
    assert started == []  # no progress bar, no key made: refused up front
    assert not any(tmp_path.iterdir()) and not any(data_dir.iterdir())


def test_rsa_pem_error_is_one_clean_line(cli, plain: Path) -> None:
    r = cli("encrypt", "--rsa-public-key", "plain.txt", "plain.txt")
    assert r.code == 2
    assert "is not an unencrypted RSA public key PEM" in r.err
    assert "https://" not in r.err and len(r.err.splitlines()) == 1


def test_kms_output_table_and_off(cli) -> None:
    key_id = json.loads(cli("kms", "create-key", "--description", "d").out)["KeyMetadata"]["KeyId"]
    assert cli("kms", "create-alias", "--alias-name", "alias/t", "--target-key-id", key_id).code == 0
    r = cli("kms", "list-aliases", "--output", "table")
    assert r.code == 0, r.err
    lines = r.text.splitlines()
    assert "ListAliases" in lines[1] and "alias/t" in r.text
    assert len({len(line) for line in lines}) == 1  # every line of the box is as wide
    r = cli("kms", "describe-key", "--key-id", "alias/t", "--output", "off")
    assert r.code == 0 and r.out == b""
    assert "--key-id <value>" in cli("kms", "describe-key", "--help").text


def test_aws_pagination_flags(cli) -> None:
    made = [json.loads(cli("kms", "create-key").out)["KeyMetadata"]["KeyId"] for _ in range(5)]
    first = json.loads(cli("kms", "list-keys", "--max-items", "2").out)
    assert [k["KeyId"] for k in first["Keys"]] == made[:2] and "NextToken" in first
    rest = json.loads(cli("kms", "list-keys", "--starting-token", first["NextToken"], "--max-items", "10").out)
    assert [k["KeyId"] for k in rest["Keys"]] == made[2:] and "NextToken" not in rest
    every = json.loads(cli("kms", "list-keys", "--page-size", "2").out)
    assert [k["KeyId"] for k in every["Keys"]] == made and "Truncated" not in every
    # --limit is the service's own parameter: one call, its raw page (as the aws CLI does)
    raw = json.loads(cli("kms", "list-keys", "--limit", "2").out)
    assert len(raw["Keys"]) == 2 and raw["Truncated"] is True
    assert cli("kms", "list-keys", "--max-items", "0").code == 252
    lines = cli("kms", "list-keys", "--max-items", "2", "--output", "text").text.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["KEYS", "KEYS", "NEXTTOKEN"]
    assert lines[-1] == "NEXTTOKEN\t" + first["NextToken"]
    r = cli("kms", "list-keys", "--limit", "2", "--max-items", "3")
    assert r.code == 252 and "--max-items" in r.err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_as_output_is_written_not_replaced(cli, plain: Path, aes_key: Path, tmp_path: Path) -> None:
    # --overwrite used to rename a regular file over the pipe (over /dev/null, as root).
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    received = bytearray()

    def read() -> None:
        with open(fifo, "rb") as fp:
            received.extend(fp.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    r = cli("encrypt", "--aes-key-file", str(aes_key), "plain.txt", "-o", str(fifo), "--overwrite")
    reader.join(10)
    assert r.code == 0, r.err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    (tmp_path / "got.envelope").write_bytes(bytes(received))
    assert cli("decrypt", "--aes-key-file", str(aes_key), "got.envelope", "-o", "-").out == PLAIN


def test_dev_null_is_a_valid_output(cli, plain: Path, aes_key: Path) -> None:
    # Without --overwrite on purpose: a regression fails with "exists" instead of replacing /dev/null.
    key = ("--aes-key-file", str(aes_key))
    assert cli("encrypt", *key, "plain.txt", "-o", os.devnull).code == 0
    assert cli("encrypt", *key, "plain.txt").code == 0
    r = cli("decrypt", *key, "plain.txt.envelope", "-o", os.devnull)
    assert r.code == 0, r.err
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_no_matching_key_hint_names_the_wrapping_keys(cli, plain: Path, aes_key: Path, tmp_path: Path) -> None:
    assert cli("encrypt", "--aes-key-file", str(aes_key), "plain.txt").code == 0
    name = json.loads(cli("inspect", "--output", "json", "plain.txt.envelope").out)["encrypted_data_keys"][0]
    r = cli("decrypt", "plain.txt.envelope", "-o", "out")  # no key flag: embedded KMS discovery only
    assert r.code == 5
    assert f"wrapped by {name['provider_id']} {name['key_id']}" in r.err and "--aes-key-file" in r.err
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(32))
    r = cli("decrypt", "--aes-key-file", str(other), "plain.txt.envelope", "-o", "out")
    assert r.code == 5 and name["key_id"] in r.err.split("hint:")[1]
    assert not (tmp_path / "out").exists()
    # stdin to stdout too: the names come from the header the decrypt parsed, not from the file read again
    r = cli("decrypt", "-", stdin=(tmp_path / "plain.txt.envelope").read_bytes())
    assert r.code == 5 and r.out == b""
    assert f"wrapped by {name['provider_id']} {name['key_id']}" in r.err.split("hint:")[1]


def test_no_matching_key_hint_names_at_most_five_keys(cli, tmp_path: Path) -> None:
    keyrings = [envelope.RawAESKeyring("ns", f"key{n}", os.urandom(32)) for n in range(7)]
    message = envelope.encrypt(PLAIN, keyring=envelope.MultiKeyring(generator=keyrings[0], children=keyrings[1:]))
    (tmp_path / "many.envelope").write_bytes(message)
    r = cli("decrypt", "many.envelope", "-o", "out")
    assert r.code == 5
    hint = r.err.split("hint:")[1]
    assert all(f"ns key{n}" in hint for n in range(5)) and "key5" not in hint
    assert "and 2 more (`envelope inspect` lists them)" in hint


@pytest.mark.skipif(not os.path.exists("/dev/stdout"), reason="needs /dev/stdout")
def test_dev_stdout_redirected_to_a_file(cli, plain: Path, aes_key: Path, tmp_path: Path) -> None:
    # `-o /dev/stdout > out` leads to an existing regular file, so it is that file (issue 12):
    # refused without --overwrite, replaced whole (temporary file and rename) with it.
    assert cli("encrypt", "--aes-key-file", str(aes_key), "plain.txt").code == 0
    out = tmp_path / "redirected"
    for flags, code in (([], 4), (["--overwrite"], 0)):
        with open(out, "wb") as fp:
            done = subprocess.run([*ENVELOPE, "decrypt", "--aes-key-file", str(aes_key), "plain.txt.envelope", "-o",
                                   "/dev/stdout", *flags], stdout=fp, stderr=subprocess.PIPE, cwd=tmp_path,
                                  timeout=60, check=False)
        assert done.returncode == code, done.stderr
    assert b"hint: pass --overwrite" not in done.stderr
    assert out.read_bytes() == PLAIN


def test_audit_lookup_by_alias(cli) -> None:
    key_id = json.loads(cli("kms", "create-key").out)["KeyMetadata"]["KeyId"]
    assert cli("kms", "create-alias", "--alias-name", "alias/audited", "--target-key-id", key_id).code == 0
    assert cli("kms", "disable-key", "--key-id", key_id).code == 0
    by_id = json.loads(cli("kms", "audit", "lookup", "--key-id", key_id, "--event-name", "DisableKey").out)
    by_alias = json.loads(cli("kms", "audit", "lookup", "--key-id", "alias/audited", "--event-name",
                              "DisableKey").out)
    assert len(by_id["Events"]) == 1
    assert by_alias["Events"] == by_id["Events"]  # used to be [] (an alias matched nothing)
    r = cli("kms", "audit", "lookup", "--key-id", "alias/missing")
    assert r.code == 254 and "alias/missing" in r.err


def test_errors_escape_what_a_hostile_header_could_put_on_the_terminal(cli, plain: Path, tmp_path: Path) -> None:
    # A raw key's name travels in clear in the header; the no-key hint quotes it.
    message = envelope.encrypt(PLAIN, keyring=envelope.RawAESKeyring("evil\x1b]0;pwned\x07", "k\x1b[2J", os.urandom(32)))
    (tmp_path / "evil.envelope").write_bytes(message)
    r = cli("decrypt", "evil.envelope", "-o", "out")
    assert r.code == 5
    assert "\x1b" not in r.err and "\x07" not in r.err
    assert "evil\\x1b]0;pwned\\x07" in r.err and "k\\x1b[2J" in r.err
    stream = io.StringIO()
    exits.report(envelope.FormatError("bad \x1b[31mred\r\n"), stream)
    assert stream.getvalue() == "envelope: error: bad \\x1b[31mred\\r\\n\n"
