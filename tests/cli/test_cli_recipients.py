"""`envelope keygen`, `encrypt --recipient` and `decrypt --identity`: the age workflow on raw ECDH,
interoperating with ESDK programs that use the raw ECDH keyring (the MPL, live)."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from typing import Any

import pytest
from _mpl_helpers import EcKeys, mpl_decrypt, mpl_ecdh_discovery, mpl_ecdh_ephemeral, mpl_encrypt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import envelope


def _keygen(cli: Any, name: str, *extra: str) -> tuple[Path, Path]:
    result = cli("keygen", "-o", name, *extra)
    assert result.code == 0, result.err
    assert _recipient_label(Path(name)) in result.err
    return Path(name).resolve(), Path(name + ".pub").resolve()


def _recipient_label(private: Path) -> str:
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    return "recipient:" + base64.b64encode(point).decode()


def _as_mpl_keys(private: Path, curve: str) -> EcKeys:
    keys = EcKeys(curve)
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    keys.key, keys.private_pem = key, private.read_bytes()
    keys.public_der = key.public_key().public_bytes(serialization.Encoding.DER,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
    return keys


@pytest.mark.parametrize(("flag", "curve"), [("P-256", "ECC_NIST_P256"), ("P-521", "ECC_NIST_P521")])
def test_keygen_encrypt_decrypt_and_the_mpl_agrees(cli: Any, plain: Path, flag: str, curve: str) -> None:
    private, public = _keygen(cli, "me.pem", "--curve", flag)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert cli("encrypt", "--recipient", str(public), "plain.txt").code == 0
    message = Path("plain.txt.envelope").read_bytes()
    (edk,) = envelope.read_header(message).encrypted_data_keys
    assert edk.provider_id == "raw-ecdh"
    result = cli("decrypt", "--identity", str(private), "plain.txt.envelope", "-o", "-")
    assert (result.code, result.out) == (0, plain.read_bytes())
    # inspect names the recipient as keygen did.
    label = cli("inspect", "--output", "json", "plain.txt.envelope").out.decode()
    assert _recipient_label(private) in label
    # An ESDK program with the raw ECDH keyring decrypts ours, and we decrypt its messages.
    keys = _as_mpl_keys(private, curve)
    assert mpl_decrypt(message, mpl_ecdh_discovery(keys))[0] == plain.read_bytes()
    Path("theirs.envelope").write_bytes(mpl_encrypt(b"from an ESDK program", mpl_ecdh_ephemeral(keys)))
    result = cli("decrypt", "--identity", str(private), "theirs.envelope", "-o", "-")
    assert (result.code, result.out) == (0, b"from an ESDK program")


def test_several_recipients(cli: Any, plain: Path) -> None:
    alice, alice_pub = _keygen(cli, "alice.pem")
    bob, bob_pub = _keygen(cli, "bob.pem", "--curve", "P-384")
    _, carol_pub = _keygen(cli, "carol.pem")
    assert cli("encrypt", "--recipient", str(alice_pub), "--recipient", str(bob_pub),
               "plain.txt").code == 0
    assert len(envelope.read_header(Path("plain.txt.envelope").read_bytes()).encrypted_data_keys) == 2
    for identity in (alice, bob):
        result = cli("decrypt", "--identity", str(identity), "plain.txt.envelope",
                             "-o", "-")
        assert result.out == plain.read_bytes()
    result = cli("decrypt", "--identity", "carol.pem", "plain.txt.envelope", "-o", "-")
    assert result.code == 5 and "raw ECDH keyring could not decrypt" in result.err
    assert carol_pub.exists()


def test_keygen_refuses_to_overwrite(cli: Any) -> None:
    private, public = _keygen(cli, "me.pem")
    before = private.read_bytes(), public.read_bytes()
    result = cli("keygen", "-o", "me.pem")
    assert result.code == 4 and "already exists" in result.err
    Path("other.pem.pub").write_bytes(b"keep me")
    result = cli("keygen", "-o", "other.pem")
    assert result.code == 4 and not Path("other.pem").exists()  # both files or neither
    assert Path("other.pem.pub").read_bytes() == b"keep me"
    assert (private.read_bytes(), public.read_bytes()) == before
    assert not list(Path(".").glob(".envelope-keygen-*"))


def test_key_misuse_is_a_usage_error(cli: Any, plain: Path, rsa_pems: tuple[Path, Path]) -> None:
    private, public = _keygen(cli, "me.pem")
    rsa_public, rsa_private = rsa_pems
    cases = [
        ("encrypt", "--recipient", str(rsa_public), "plain.txt"),
        ("encrypt", "--recipient", str(private), "plain.txt"),
        ("decrypt", "--identity", str(rsa_private), "plain.txt"),
        ("decrypt", "--identity", str(public), "plain.txt"),
        ("decrypt", "--recipient", str(public), "plain.txt"),  # not a decrypt flag
        ("encrypt", "--identity", str(private), "plain.txt"),  # not an encrypt flag
    ]
    for argv in cases:
        result = cli(*argv)
        assert result.code == 2, (argv, result.err)
        assert "Traceback" not in result.err
    secp256k1 = ec.generate_private_key(ec.SECP256K1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    Path("k1.pub").write_bytes(secp256k1)
    result = cli("encrypt", "--recipient", "k1.pub", "plain.txt")
    assert result.code == 2 and "P-256, P-384 or P-521" in result.err
