"""The root key: its sources, never silently replaced, and rotation (crash-safe). Issue 12 item 4."""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _kms_store_helpers import check_messages, release
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import load_der_public_key

from envelope.kms import LocalKMS, StoreError, rotate_root_key
from envelope.kms.server import AccessKeys

ROOT = Path(__file__).resolve().parents[2]


def _store(directory: Path, regions: tuple[str, ...] = ("us-east-1", "eu-west-1"), keys: int = 2) -> list[dict[str, object]]:
    messages: list[dict[str, object]] = []
    for region in regions:
        kms = LocalKMS(directory, region=region)
        for i in range(keys):
            key_id = kms.create_key()["KeyMetadata"]["KeyId"]
            text = f"{region} message {i}"
            blob = kms.encrypt(KeyId=key_id, Plaintext=text.encode(), EncryptionContext={"i": str(i)})["CiphertextBlob"]
            messages.append({"region": region, "ciphertext": base64.b64encode(blob).decode(), "plaintext": text,
                             "context": {"i": str(i)}})
    release()
    return messages


def test_no_root_key_is_created_beside_an_existing_store(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    _store(directory, keys=1)
    (directory / "kms-root.key").unlink()
    with pytest.raises(StoreError) as exc:
        LocalKMS(directory)
    message = str(exc.value)
    assert str(directory) in message and "kms-root.key is missing" in message and "kms-us-east-1.sqlite3" in message
    assert "restore kms-root.key from your backup" in (exc.value.hint or "")
    assert not (directory / "kms-root.key").exists()
    with pytest.raises(StoreError, match="has no root key"):
        AccessKeys(directory)


def test_a_fresh_directory_gets_a_private_root_key(tmp_path: Path) -> None:
    LocalKMS(tmp_path / "new").create_key()
    assert (tmp_path / "new" / "kms-root.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("form", ["raw", "base64"])
def test_root_key_file_named_by_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    key = os.urandom(32)
    path = tmp_path / "secret" / "root.key"
    path.parent.mkdir()
    path.write_bytes(key if form == "raw" else base64.b64encode(key) + b"\n")
    monkeypatch.setenv("ENVELOPE_KMS_ROOT_KEY_FILE", str(path))
    messages = _store(tmp_path / "store", regions=("us-east-1",), keys=1)
    assert not (tmp_path / "store" / "kms-root.key").exists()
    check_messages(tmp_path / "store", messages)
    # The same key given inline opens the store too.
    monkeypatch.delenv("ENVELOPE_KMS_ROOT_KEY_FILE")
    monkeypatch.setenv("ENVELOPE_KMS_ROOT_KEY", base64.b64encode(key).decode())
    check_messages(tmp_path / "store", messages)


def test_a_missing_root_key_file_named_by_the_environment_is_an_error(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVELOPE_KMS_ROOT_KEY_FILE", str(tmp_path / "absent.key"))
    with pytest.raises(StoreError, match="absent.key, which does not exist"):
        LocalKMS(tmp_path / "store")


def _import(kms: LocalKMS, material: bytes) -> str:
    key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    public = load_der_public_key(params["PublicKey"])
    wrapped = public.encrypt(material, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),  # type: ignore[union-attr]
                                                    algorithm=hashes.SHA256(), label=None))
    kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"], EncryptedKeyMaterial=wrapped,
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    return key_id


def test_rotation_reseals_everything(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    messages = _store(directory)
    kms = LocalKMS(directory)
    material = os.urandom(32)
    imported = _import(kms, material)
    gone = _import(kms, os.urandom(32))
    kms.delete_imported_key_material(KeyId=gone)
    pending = kms.get_parameters_for_import(KeyId=gone, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                            WrappingKeySpec="RSA_2048")
    blob = kms.encrypt(KeyId=imported, Plaintext=b"imported")["CiphertextBlob"]
    anchor = kms.audit.head()
    keys = AccessKeys(directory)
    created = keys.create()["AccessKey"]
    keys.close()
    old_key = (directory / "kms-root.key").read_bytes()
    with pytest.raises(StoreError, match="in use"):
        rotate_root_key(directory)  # this process still holds the store open
    del kms
    release()
    new_id = rotate_root_key(directory)
    assert (directory / "kms-root.key").read_bytes() != old_key
    assert not (directory / "kms-root.key.new").exists()
    check_messages(directory, messages)
    kms = LocalKMS(directory)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"imported"
    # The audit chain key survived (it is sealed, not derived from the current key): anchors hold.
    assert kms.audit.verify(anchor=anchor).ok
    # Pending import parameters were re-sealed, and the deleted material's fingerprint still binds.
    public = load_der_public_key(pending["PublicKey"])
    wrapped = public.encrypt(os.urandom(32), padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),  # type: ignore[union-attr]
                                                          algorithm=hashes.SHA256(), label=None))
    with pytest.raises(Exception, match="not the material previously imported"):
        kms.import_key_material(KeyId=gone, ImportToken=pending["ImportToken"], EncryptedKeyMaterial=wrapped,
                                ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    del kms
    release()
    keys = AccessKeys(directory)
    assert keys.lookup(created["AccessKeyId"]) == (created["SecretAccessKey"], "arn:aws:iam::111122223333:root")
    keys.close()
    assert len(new_id) == 32


def test_rotation_refuses_a_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVELOPE_KMS_ROOT_KEY", base64.b64encode(os.urandom(32)).decode())
    _store(tmp_path / "store", regions=("us-east-1",), keys=1)
    with pytest.raises(StoreError, match="cannot be rotated in place"):
        rotate_root_key(tmp_path / "store")


_ROTATE = textwrap.dedent("""
    import sys
    from pathlib import Path
    from envelope.kms import rotate_root_key
    print("start", flush=True)
    rotate_root_key(Path(sys.argv[1]))
""")


def test_rotation_killed_at_any_point_leaves_a_store_under_one_key(tmp_path: Path) -> None:
    # kill -9 at random points of `rotate_root_key` in a child process; each time the store must
    # open (finishing a half-done rotation) under exactly one key file and decrypt everything.
    directory = tmp_path / "store"
    messages = _store(directory, regions=("us-east-1", "eu-west-1", "ap-south-1"), keys=15)
    rng = random.Random(12)
    keys_seen = set()
    for _ in range(8):
        child = subprocess.Popen([sys.executable, "-c", _ROTATE, str(directory)], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.stdout is not None
        assert child.stdout.readline() == b"start\n"  # imports done: the rotation itself is racing
        time.sleep(rng.uniform(0, 0.08))
        child.send_signal(signal.SIGKILL)
        child.wait()
        check_messages(directory, messages)  # opens: finishes the rotation if it was cut short
        assert sorted(p.name for p in directory.iterdir() if "root" in p.name) == ["kms-root.key"]
        keys_seen.add((directory / "kms-root.key").read_bytes())
    assert len(keys_seen) >= 1
