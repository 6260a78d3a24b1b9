"""`envelope encrypt` / `envelope decrypt`: every flag and error path, files, directories and pipes."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from _cli_helpers import PLAIN, run_envelope

import envelope


def test_zero_setup_default_kms_key(cli, plain: Path, data_dir: Path) -> None:
    r = cli("encrypt", "plain.txt")
    assert r.code == 0, r.err
    sealed = plain.with_name("plain.txt.envelope")
    header = json.loads(cli("inspect", "--output", "json", str(sealed)).out)
    (edk,) = header["encrypted_data_keys"]
    assert edk["provider_id"] == "aws-kms"
    alias = json.loads(cli("kms", "describe-key", "--key-id", "alias/envelope-default").out)
    assert edk["key_id"] == alias["KeyMetadata"]["Arn"]
    plain.unlink()
    r = cli("decrypt", "plain.txt.envelope")
    assert r.code == 0, r.err
    assert plain.read_bytes() == PLAIN
    # the second encryption reuses the alias instead of making another key
    cli("encrypt", "plain.txt", "-o", "again.envelope")
    assert len(json.loads(cli("kms", "list-keys").out)["Keys"]) == 1


@pytest.mark.parametrize("encoding", ["raw", "base64"], ids=["raw-key", "base64-key"])
def test_aes_key_file(cli, plain: Path, tmp_path: Path, encoding: str) -> None:
    key = tmp_path / "k"
    material = os.urandom(32)
    key.write_bytes(material if encoding == "raw" else base64.b64encode(material) + b"\n")
    assert cli("encrypt", "--aes-key-file", "k", "plain.txt").code == 0
    r = cli("decrypt", "--aes-key-file", "k", "plain.txt.envelope", "-o", "out")
    assert r.code == 0, r.err
    assert (tmp_path / "out").read_bytes() == PLAIN


def test_aes_key_name_is_independent_of_file_name(cli, plain: Path, aes_key: Path, tmp_path: Path) -> None:
    assert cli("encrypt", "--aes-key-file", str(aes_key), "plain.txt").code == 0
    renamed = tmp_path / "renamed.bin"
    renamed.write_bytes(aes_key.read_bytes())
    assert cli("decrypt", "--aes-key-file", "renamed.bin", "plain.txt.envelope", "-o", "out").code == 0


def test_aes_namespace_and_name_must_match(cli, plain: Path, aes_key: Path) -> None:
    args = ["--aes-key-file", str(aes_key), "--key-namespace", "acme", "--key-name", "k1"]
    assert cli("encrypt", *args, "plain.txt").code == 0
    info = json.loads(cli("inspect", "--output", "json", "plain.txt.envelope").out)
    assert info["encrypted_data_keys"] == [{"provider_id": "acme", "key_id": "k1"}]
    assert cli("decrypt", *args, "plain.txt.envelope", "-o", "ok").code == 0
    r = cli("decrypt", "--aes-key-file", str(aes_key), "--key-name", "k2", "plain.txt.envelope", "-o", "bad")
    assert r.code == 5
    assert "hint: the message's data key was wrapped by acme k1;" in r.err


def test_bad_aes_key_file(cli, plain: Path, tmp_path: Path) -> None:
    (tmp_path / "short").write_bytes(b"0123456789")
    r = cli("encrypt", "--aes-key-file", "short", "plain.txt")
    assert r.code == 2
    assert "envelope: error: short is not an AES key" in r.err
    assert "hint:" in r.err


@pytest.mark.parametrize("padding", ["OAEP-SHA256", "OAEP-SHA1", "PKCS1"])
def test_rsa_public_encrypt_private_decrypt(cli, plain: Path, rsa_pems: tuple[Path, Path], padding: str) -> None:
    public, private = rsa_pems
    assert cli("encrypt", "--rsa-public-key", str(public), "--rsa-padding", padding, "plain.txt").code == 0
    r = cli("decrypt", "--rsa-private-key", str(private), "--rsa-padding", padding, "plain.txt.envelope", "-o", "o")
    assert r.code == 0, r.err
    assert Path("o").read_bytes() == PLAIN


def test_rsa_public_key_cannot_decrypt(cli, plain: Path, rsa_pems: tuple[Path, Path]) -> None:
    public, _ = rsa_pems
    cli("encrypt", "--rsa-public-key", str(public), "plain.txt")
    r = cli("decrypt", "--rsa-public-key", str(public), "plain.txt.envelope")
    assert r.code == 2
    assert "--rsa-private-key" in r.err


def test_qualifier_must_fit_the_key_before_it(cli, plain: Path, aes_key: Path) -> None:
    r = cli("encrypt", "--aes-key-file", str(aes_key), "--rsa-padding", "PKCS1", "plain.txt")
    assert r.code == 2
    assert "--rsa-padding does not apply" in r.err


def test_several_keys_make_a_multi_keyring(cli, plain: Path, aes_key: Path, rsa_pems: tuple[Path, Path]) -> None:
    public, private = rsa_pems
    r = cli("encrypt", "--aes-key-file", str(aes_key), "--rsa-public-key", str(public),
            "--kms-key", "alias/envelope-default", "plain.txt")
    # the alias does not exist yet: only the implicit default creates it
    assert r.code == 5 and "hint: check the key id and --region" in r.err
    cli("encrypt", "-q", "plain.txt", "-o", "bootstrap.envelope")  # creates alias/envelope-default
    r = cli("encrypt", "--aes-key-file", str(aes_key), "--rsa-public-key", str(public),
            "--kms-key", "alias/envelope-default", "plain.txt")
    assert r.code == 0, r.err
    info = json.loads(cli("inspect", "--output", "json", "plain.txt.envelope").out)
    assert [e["provider_id"] for e in info["encrypted_data_keys"]] == ["envelope", "envelope", "aws-kms"]
    for n, flags in enumerate((["--aes-key-file", str(aes_key)], ["--rsa-private-key", str(private)],
                               ["--kms-key", "alias/envelope-default"], [])):
        r = cli("decrypt", *flags, "plain.txt.envelope", "-o", f"out{n}")
        assert r.code == 0, (flags, r.err)
        assert Path(f"out{n}").read_bytes() == PLAIN


def test_kms_key_by_id_arn_and_region(cli, plain: Path) -> None:
    created = json.loads(cli("kms", "create-key", "--region", "eu-west-1").out)["KeyMetadata"]
    assert cli("encrypt", "--kms-key", created["KeyId"], "--region", "eu-west-1", "plain.txt").code == 0
    r = cli("decrypt", "--kms-key", created["Arn"], "plain.txt.envelope", "-o", "a")
    assert r.code == 0, r.err
    # the key does not exist in the default region
    r = cli("decrypt", "--kms-key", created["KeyId"], "plain.txt.envelope", "-o", "b")
    assert r.code == 5
    assert "does not exist" in r.err and "hint: check the key id and --region" in r.err
    # --region before any key flag applies to all keys
    r = cli("decrypt", "--region", "eu-west-1", "--kms-key", created["KeyId"], "plain.txt.envelope", "-o", "c")
    assert r.code == 0, r.err


def test_disabled_kms_key_hint(cli, plain: Path) -> None:
    cli("encrypt", "plain.txt")
    key_id = json.loads(cli("kms", "describe-key", "--key-id", "alias/envelope-default").out)["KeyMetadata"]["KeyId"]
    cli("kms", "disable-key", "--key-id", key_id)  # DisableKey takes no alias, as in AWS
    r = cli("decrypt", "plain.txt.envelope", "-o", "out")
    assert r.code == 5
    assert "hint: a KMS key is disabled; enable it with `envelope kms enable-key" in r.err
    assert not Path("out").exists()


def test_encryption_context_pairs_and_required_keys(cli, plain: Path, aes_key: Path) -> None:
    k = ["--aes-key-file", str(aes_key)]
    assert cli("encrypt", *k, "-c", "purpose=test", "-c", "team=blue", "plain.txt").code == 0
    info = json.loads(cli("inspect", "--output", "json", "plain.txt.envelope").out)
    assert info["encryption_context"]["purpose"] == "test"
    assert cli("decrypt", *k, "-c", "purpose=test", "-c", "team", "plain.txt.envelope", "-o", "ok").code == 0
    r = cli("decrypt", *k, "-c", "purpose=prod", "plain.txt.envelope", "-o", "wrong")
    assert r.code in (3, 6)
    assert "hint: `envelope inspect FILE` shows the stored encryption context" in r.err
    r = cli("decrypt", *k, "-c", "owner", "plain.txt.envelope", "-o", "missing")
    assert r.code == 6
    assert "'owner'" in r.err
    assert not Path("wrong").exists() and not Path("missing").exists()


@pytest.mark.parametrize("bad", ["=v", "novalue"], ids=["empty-key", "bare-key-on-encrypt"])
def test_bad_encryption_context_on_encrypt(cli, plain: Path, aes_key: Path, bad: str) -> None:
    r = cli("encrypt", "--aes-key-file", str(aes_key), "-c", bad, "plain.txt")
    assert r.code == 2
    assert "envelope: error: bad encryption context" in r.err


@pytest.mark.parametrize("suite", [
    "AES_256_GCM_HKDF_SHA512_COMMIT_KEY",
    "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384",
], ids=["committing", "committing-signed"])
def test_algorithm(cli, plain: Path, aes_key: Path, suite: str) -> None:
    assert cli("encrypt", "--aes-key-file", str(aes_key), "--algorithm", suite, "plain.txt").code == 0
    assert json.loads(cli("inspect", "--output", "json", "plain.txt.envelope").out)["algorithm"] == suite
    assert cli("decrypt", "--aes-key-file", str(aes_key), "plain.txt.envelope", "-o", "o").code == 0


def test_unknown_algorithm_is_a_usage_error(cli, plain: Path) -> None:
    r = cli("encrypt", "--algorithm", "ROT13", "plain.txt")
    assert r.code == 2
    assert "unknown algorithm suite" in r.err


def test_commitment_policy(cli, plain: Path, aes_key: Path) -> None:
    k = ["--aes-key-file", str(aes_key)]
    legacy = "AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384"
    r = cli("encrypt", *k, "--algorithm", legacy, "plain.txt")
    assert r.code == 6  # the default policy requires committing suites
    assert cli("encrypt", *k, "--commitment-policy", "FORBID_ENCRYPT_ALLOW_DECRYPT", "--algorithm", legacy,
               "plain.txt").code == 0
    assert cli("decrypt", *k, "plain.txt.envelope", "-o", "refused").code == 6
    r = cli("decrypt", *k, "--commitment-policy", "REQUIRE_ENCRYPT_ALLOW_DECRYPT", "plain.txt.envelope", "-o", "ok")
    assert r.code == 0, r.err


@pytest.mark.parametrize("flag,expected", [("4096", 4096), ("64K", 65536), ("1m", 1048576)],
                         ids=["bytes", "kib", "mib"])
def test_frame_length(cli, plain: Path, aes_key: Path, flag: str, expected: int) -> None:
    assert cli("encrypt", "--aes-key-file", str(aes_key), "--frame-length", flag, "plain.txt").code == 0
    assert json.loads(cli("inspect", "--output", "json", "plain.txt.envelope").out)["frame_length"] == expected
    assert cli("decrypt", "--aes-key-file", str(aes_key), "plain.txt.envelope", "-o", "o").code == 0
    assert Path("o").read_bytes() == PLAIN


def test_bad_frame_length(cli, plain: Path) -> None:
    assert cli("encrypt", "--frame-length", "big", "plain.txt").code == 2


def test_max_encrypted_data_keys(cli, plain: Path, aes_key: Path, rsa_pems: tuple[Path, Path]) -> None:
    public, _ = rsa_pems
    two = ["--aes-key-file", str(aes_key), "--rsa-public-key", str(public)]
    assert cli("encrypt", *two, "--max-encrypted-data-keys", "1", "plain.txt").code == 6
    assert cli("encrypt", *two, "plain.txt").code == 0
    r = cli("decrypt", "--aes-key-file", str(aes_key), "--max-encrypted-data-keys", "1", "plain.txt.envelope",
            "-o", "o")
    assert r.code == 6
    assert cli("encrypt", "--max-encrypted-data-keys", "0", "plain.txt").code == 2


def test_compress(cli, plain: Path, aes_key: Path) -> None:
    k = ["--aes-key-file", str(aes_key)]
    assert cli("encrypt", *k, "--compress", "--compression-level", "9", "plain.txt").code == 0
    sealed = Path("plain.txt.envelope")
    assert sealed.stat().st_size < len(PLAIN) // 10
    assert json.loads(cli("inspect", "--output", "json", str(sealed)).out)["encryption_context"][
        "envelope:compression"] == "zstd"
    assert cli("decrypt", *k, str(sealed), "-o", "o").code == 0
    assert Path("o").read_bytes() == PLAIN
    assert cli("encrypt", *k, "--compression-level", "3", "plain.txt", "-o", "x").code == 2


def test_refuse_signed(cli, plain: Path, aes_key: Path) -> None:
    k = ["--aes-key-file", str(aes_key)]
    cli("encrypt", *k, "plain.txt")
    r = cli("decrypt", *k, "--refuse-signed", "plain.txt.envelope", "-o", "o")
    assert r.code == 6
    assert not Path("o").exists()
    cli("encrypt", *k, "--algorithm", "AES_256_GCM_HKDF_SHA512_COMMIT_KEY", "plain.txt", "-o", "unsigned.envelope")
    assert cli("decrypt", *k, "--refuse-signed", "unsigned.envelope", "-o", "o").code == 0


def test_suffix(cli, plain: Path, aes_key: Path) -> None:
    k = ["--aes-key-file", str(aes_key)]
    assert cli("encrypt", *k, "--suffix", ".sealed", "plain.txt").code == 0
    assert Path("plain.txt.sealed").exists()
    plain.unlink()
    assert cli("decrypt", *k, "--suffix", ".sealed", "plain.txt.sealed").code == 0
    assert plain.read_bytes() == PLAIN
    # without the suffix the output gets .decrypted
    assert cli("decrypt", *k, "plain.txt.sealed").code == 0
    assert Path("plain.txt.sealed.decrypted").read_bytes() == PLAIN


def test_never_clobber_without_overwrite(cli, plain: Path, aes_key: Path) -> None:
    k = ["--aes-key-file", str(aes_key)]
    Path("plain.txt.envelope").write_bytes(b"precious")
    r = cli("encrypt", *k, "plain.txt")
    assert r.code == 4
    assert "hint: pass --overwrite" in r.err
    assert Path("plain.txt.envelope").read_bytes() == b"precious"
    assert cli("encrypt", *k, "--overwrite", "plain.txt").code == 0
    assert cli("decrypt", *k, "plain.txt.envelope", "-o", "plain.txt").code == 4
    assert cli("decrypt", *k, "--overwrite", "plain.txt.envelope", "-o", "plain.txt").code == 0
    assert plain.read_bytes() == PLAIN


def test_never_overwrite_the_input(cli, plain: Path, aes_key: Path) -> None:
    r = cli("encrypt", "--aes-key-file", str(aes_key), "--overwrite", "plain.txt", "-o", "plain.txt")
    assert r.code == 2
    assert "refusing to overwrite the input" in r.err
    os.symlink("plain.txt", "soft")
    os.link("plain.txt", "hard")
    for alias in ("soft", "hard"):
        r = cli("encrypt", "--aes-key-file", str(aes_key), "--overwrite", "plain.txt", "-o", alias)
        assert r.code == 2 and "refusing to overwrite the input" in r.err
    assert plain.read_bytes() == PLAIN


def test_several_files_and_output_directory(cli, tmp_path: Path, aes_key: Path) -> None:
    k = ["--aes-key-file", str(aes_key)]
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(name.encode() * 100)
    assert cli("encrypt", *k, "a", "b", "-o", "sealed/").code == 0
    assert sorted(os.listdir("sealed")) == ["a.envelope", "b.envelope"]
    assert cli("decrypt", *k, "sealed/a.envelope", "sealed/b.envelope", "-o", "opened").code == 0  # made
    assert (tmp_path / "opened" / "b").read_bytes() == b"b" * 100
    assert cli("encrypt", *k, "a", "b", "-o", "-").code == 2
    r = cli("encrypt", *k, "a", "b", "-o", "a")  # an existing file cannot take several outputs
    assert r.code == 2 and "is a file" in r.err


def test_recursive_directories(cli, tmp_path: Path, aes_key: Path) -> None:
    k = ["--aes-key-file", str(aes_key)]
    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    files = {"top.txt": b"1", "sub/mid.txt": b"22", "sub/deeper/low.bin": b"333"}
    for name, data in files.items():
        (tree / name).write_bytes(data)
    r = cli("encrypt", *k, "tree")
    assert r.code == 2 and "hint: pass -r" in r.err
    assert cli("encrypt", *k, "-r", "tree", "-o", "vault").code == 0
    assert sorted(str(p.relative_to("vault")) for p in Path("vault").rglob("*.envelope")) == [
        "sub/deeper/low.bin.envelope", "sub/mid.txt.envelope", "top.txt.envelope"]
    assert cli("encrypt", *k, "-r", "tree").code == 0  # beside each file
    assert cli("encrypt", *k, "-r", "tree").code == 4  # second run: outputs exist
    assert cli("decrypt", *k, "-r", "vault", "-o", "restored").code == 0
    for name, data in files.items():
        assert (tmp_path / "restored" / name).read_bytes() == data


def test_metadata_output(cli, plain: Path, aes_key: Path) -> None:
    k = ["--aes-key-file", str(aes_key)]
    r = cli("encrypt", *k, "-c", "a=b", "--metadata-output", "meta.jsonl", "plain.txt")
    assert r.code == 0
    cli("decrypt", *k, "--metadata-output", "meta.jsonl", "plain.txt.envelope", "-o", "o")
    enc, dec = (json.loads(line) for line in Path("meta.jsonl").read_text().splitlines())
    assert enc["mode"] == "encrypt" and dec["mode"] == "decrypt"
    assert enc["input_bytes"] == len(PLAIN) == dec["output_bytes"]
    assert enc["output_bytes"] == Path("plain.txt.envelope").stat().st_size == dec["input_bytes"]
    assert enc["header"]["message_id"] == dec["header"]["message_id"]
    assert enc["header"]["encryption_context"]["a"] == "b"
    assert enc["keys"] == dec["keys"] and enc["keys"][0].startswith("envelope:aes-")
    r = cli("encrypt", *k, "--metadata-output", "-", "plain.txt", "-o", "p2")
    assert json.loads(r.out)["output"] == "p2"


def test_stdin_to_stdout_in_process(cli, aes_key: Path) -> None:
    k = ["--aes-key-file", str(aes_key)]
    sealed = cli("encrypt", *k, "-", stdin=PLAIN)
    assert sealed.code == 0
    opened = cli("decrypt", *k, "-", stdin=sealed.out)
    assert opened.code == 0 and opened.out == PLAIN
    assert cli("decrypt", *k, "-", "-o", "file.out", stdin=sealed.out).code == 0
    assert Path("file.out").read_bytes() == PLAIN


def test_pipe_between_processes(tmp_path: Path, aes_key: Path) -> None:
    k = ["--aes-key-file", str(aes_key)]
    data = os.urandom(3 * 1024 * 1024 + 5)
    sealed = run_envelope("encrypt", *k, "--frame-length", "64K", "-", stdin=data)
    assert sealed.returncode == 0, sealed.stderr
    opened = run_envelope("decrypt", *k, "-", stdin=sealed.stdout)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == data
    assert opened.stderr == b""  # no progress bar when stderr is not a terminal


def test_base64_input_hint(cli, plain: Path, aes_key: Path) -> None:
    cli("encrypt", "--aes-key-file", str(aes_key), "plain.txt")
    Path("b64").write_bytes(base64.b64encode(Path("plain.txt.envelope").read_bytes()))
    r = cli("decrypt", "--aes-key-file", str(aes_key), "b64", "-o", "o")
    assert r.code == 3
    assert "hint: the input looks base64-encoded" in r.err


@pytest.mark.parametrize("where", ["header", "body", "end"])
def test_tampered_or_truncated_message(cli, plain: Path, aes_key: Path, where: str) -> None:
    k = ["--aes-key-file", str(aes_key)]
    cli("encrypt", *k, "--frame-length", "1K", "plain.txt")
    data = bytearray(Path("plain.txt.envelope").read_bytes())
    if where == "header":
        data[40] ^= 1
    elif where == "body":
        data[len(data) // 2] ^= 1
    else:
        del data[-10:]
    Path("bad.envelope").write_bytes(data)
    r = cli("decrypt", *k, "bad.envelope", "-o", "o")
    assert r.code in (3, 5), r.err  # a flipped header bit may also hide the key
    assert r.err.startswith("envelope: error: ")
    assert not Path("o").exists()
    assert [n for n in os.listdir(".") if "tmp" in n] == []


def test_missing_input_and_unreadable_output_dir(cli, aes_key: Path, tmp_path: Path) -> None:
    r = cli("encrypt", "--aes-key-file", str(aes_key), "nope.txt")
    assert r.code == 4 and "no such file: nope.txt" in r.err
    Path("in").write_bytes(b"x")
    Path("ro").mkdir()
    os.chmod("ro", 0o500)
    try:
        r = cli("encrypt", "--aes-key-file", str(aes_key), "in", "-o", "ro/in.envelope")
        if os.geteuid() != 0:  # root ignores directory permissions
            assert r.code == 4
    finally:
        os.chmod("ro", 0o700)


def test_usage_errors_exit_2(cli) -> None:
    assert cli("encrypt").code == 2
    assert cli("frobnicate").code == 2
    assert cli("decrypt", "-", "-").code == 2


def test_caching_flag(cli, tmp_path: Path, aes_key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from envelope.materials.cache import LocalCache
    from envelope.materials.caching import CachingMaterialsManager

    # The CLI uses the public names; provide them whether or not this build exports them yet.
    monkeypatch.setattr(envelope, "CachingMaterialsManager", CachingMaterialsManager, raising=False)
    monkeypatch.setattr(envelope, "LocalCache", LocalCache, raising=False)
    k = ["--aes-key-file", str(aes_key)]
    for name in "abc":
        (tmp_path / name).write_bytes(name.encode())
    r = cli("encrypt", *k, "--caching", "60", "a", "b", "c", "-o", "out/")
    assert r.code == 0, r.err
    assert cli("decrypt", *k, "--caching", "60", "out/a.envelope", "out/b.envelope", "-o", "back/").code == 0
    assert (tmp_path / "back" / "b").read_bytes() == b"b"
    assert cli("encrypt", *k, "--caching", "0", "a", "-o", "zero").code == 2


def test_caching_flag_without_the_public_names(cli, tmp_path: Path, aes_key: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(envelope, "CachingMaterialsManager", raising=False)
    (tmp_path / "a").write_bytes(b"a")
    r = cli("encrypt", "--aes-key-file", str(aes_key), "--caching", "60", "a")
    assert r.code == 2 and "--caching needs envelope.CachingMaterialsManager" in r.err


def test_discovery_flag_adds_the_embedded_kms(cli, plain: Path, aes_key: Path, tmp_path: Path) -> None:
    cli("encrypt", "plain.txt")  # embedded KMS default key only
    other = tmp_path / "other.key"
    other.write_bytes(b"\1" * 32)
    assert cli("decrypt", "--aes-key-file", str(other), "plain.txt.envelope", "-o", "a").code == 5
    r = cli("decrypt", "--aes-key-file", str(other), "--discovery", "plain.txt.envelope", "-o", "b")
    assert r.code == 0, r.err
    assert Path("b").read_bytes() == PLAIN


def test_zero_flag_decrypt_finds_keys_in_any_region(cli, plain: Path) -> None:
    arn = json.loads(cli("kms", "create-key", "--region", "ap-south-1").out)["KeyMetadata"]["Arn"]
    assert cli("encrypt", "--kms-key", arn, "plain.txt").code == 0
    r = cli("decrypt", "plain.txt.envelope", "-o", "out")
    assert r.code == 0, r.err
    assert Path("out").read_bytes() == PLAIN


def test_zero_flag_decrypt_of_a_raw_key_message(cli, plain: Path, aes_key: Path) -> None:
    cli("encrypt", "--aes-key-file", str(aes_key), "plain.txt")
    r = cli("decrypt", "plain.txt.envelope", "-o", "out")
    assert r.code == 5
    assert "no embedded-KMS (aws-kms) encrypted data key" in r.err
    assert "hint: the message's data key was wrapped by envelope aes-" in r.err and "--aes-key-file" in r.err
