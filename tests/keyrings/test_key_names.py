"""Errors name keys as a user knows them (the key's name, the KMS key id), never by a Python repr
such as ``RawAESKeyring('envelope', ...)``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import envelope
from envelope.format.header import EncryptedDataKey
from envelope.keyrings.base import keyring_label
from envelope.kms import LocalKMS
from envelope.materials.materials import DecryptionMaterials, EncryptionMaterials

AES = envelope.RawAESKeyring("team", "payroll-2024", bytes(32))
OTHER = envelope.RawAESKeyring("team", "other", bytes(range(32)))


def _pems() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def _text(exc: BaseException) -> str:
    errors = getattr(exc, "errors", [])
    return " ".join([str(exc), *map(str, errors)])


def _assert_named(exc: BaseException, *names: str) -> None:
    text = _text(exc)
    assert "Keyring(" not in text and "object at 0x" not in text, text
    for name in names:
        assert name in text, (name, text)


def test_raw_keyrings_are_named_by_key() -> None:
    assert str(AES) == "AES key 'payroll-2024' (namespace 'team')"
    assert repr(AES) == "RawAESKeyring('team', 'payroll-2024')"  # repr stays for debugging
    message = envelope.encrypt(b"x", keyring=OTHER)
    with pytest.raises(envelope.NoMatchingKeyError) as info:
        envelope.decrypt(message, keyring=AES)
    _assert_named(info.value, "AES key 'payroll-2024'")


def test_rsa_and_multi_keyrings_are_named_by_key() -> None:
    private, public = _pems()
    encrypt_only = envelope.RawRSAKeyring("ops", "ops-rsa", public_key_pem=public)
    decrypt_only = envelope.RawRSAKeyring("ops", "ops-rsa", private_key_pem=private)
    message = envelope.encrypt(b"x", keyring=OTHER)
    with pytest.raises(envelope.NoMatchingKeyError) as info:
        envelope.decrypt(message, keyring=envelope.MultiKeyring(children=[decrypt_only, AES]))
    _assert_named(info.value, "RSA key 'ops-rsa'", "AES key 'payroll-2024'")
    with pytest.raises(envelope.NoMatchingKeyError) as info:
        envelope.decrypt(message, keyring=encrypt_only)
    _assert_named(info.value, "RSA key 'ops-rsa' (namespace 'ops') has no private key")
    with pytest.raises(envelope.KeyringError) as raised:
        envelope.encrypt(b"x", keyring=envelope.MultiKeyring(generator=AES, children=[decrypt_only]))
    _assert_named(raised.value, "RSA key 'ops-rsa' (namespace 'ops') has no public key")
    assert str(envelope.MultiKeyring(generator=AES, children=[encrypt_only])) == \
        "keys AES key 'payroll-2024' (namespace 'team'), RSA key 'ops-rsa' (namespace 'ops')"


def test_kms_keyring_is_named_by_key_id(tmp_path: Path) -> None:
    arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert str(envelope.KMSKeyring(arn, client=LocalKMS(path=tmp_path))) == f"KMS key {arn}"


class _Silent:
    """A keyring of the user's own that neither wraps nor says what it is."""

    def on_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
        return materials

    def on_decrypt(self, materials: DecryptionMaterials, edks: Sequence[EncryptedDataKey]) -> DecryptionMaterials:
        return materials


def test_a_foreign_keyring_is_named_by_its_class() -> None:
    assert keyring_label(_Silent()) == "a _Silent"
    with pytest.raises(envelope.KeyringError) as raised:
        envelope.encrypt(b"x", keyring=_Silent())
    _assert_named(raised.value, "a _Silent returned no data key")
    message = envelope.encrypt(b"x", keyring=OTHER)
    with pytest.raises(envelope.NoMatchingKeyError) as info:
        envelope.decrypt(message, keyring=envelope.MultiKeyring(children=[_Silent(), AES]))
    _assert_named(info.value, "a _Silent: no matching encrypted data key", "AES key 'payroll-2024'")
