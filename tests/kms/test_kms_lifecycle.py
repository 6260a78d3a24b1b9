"""Lifecycle on the injected clock: rotation, scheduled deletion, imported material and its expiry."""

from __future__ import annotations

import os
from collections.abc import Callable

import msgpack  # type: ignore[import-untyped]
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from envelope.errors import KeyDisabledError, KeyNotFoundError, KMSError
from envelope.kms import LocalKMS, ManualClock

DAY = 86400


def _version(blob: bytes) -> int:
    return int(msgpack.unpackb(blob)[3])


def test_automatic_rotation_keeps_old_ciphertexts(kms: LocalKMS, key_id: str, clock: ManualClock) -> None:
    old = kms.encrypt(KeyId=key_id, Plaintext=b"old")["CiphertextBlob"]
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 90
    assert status["NextRotationDate"].timestamp() == pytest.approx(clock() + 90 * DAY)
    clock.advance(days=89)
    assert _version(kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]) == 1
    clock.advance(days=2)
    new = kms.encrypt(KeyId=key_id, Plaintext=b"new")["CiphertextBlob"]
    assert _version(new) == 2
    assert kms.decrypt(CiphertextBlob=old)["Plaintext"] == b"old"
    assert kms.decrypt(CiphertextBlob=new)["Plaintext"] == b"new"
    clock.advance(days=200)  # two more periods elapse: both rotations are applied
    assert _version(kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]) == 4
    rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["AUTOMATIC"] * 3


@pytest.mark.parametrize("days", [89, 2561])
def test_rotation_period_bounds(kms: LocalKMS, key_id: str, days: int) -> None:
    with pytest.raises(KMSError) as exc:
        kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=days)
    assert exc.value.code == "ValidationException"


def test_default_rotation_period_and_disable(kms: LocalKMS, key_id: str, clock: ManualClock) -> None:
    kms.enable_key_rotation(KeyId=key_id)
    assert kms.get_key_rotation_status(KeyId=key_id)["RotationPeriodInDays"] == 365
    kms.disable_key_rotation(KeyId=key_id)
    clock.advance(days=400)
    assert _version(kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]) == 1
    assert kms.get_key_rotation_status(KeyId=key_id) == {"KeyRotationEnabled": False, "KeyId": kms.describe_key(
        KeyId=key_id)["KeyMetadata"]["Arn"]}


def test_on_demand_rotation_and_its_limit(kms: LocalKMS, key_id: str) -> None:
    blobs = [kms.encrypt(KeyId=key_id, Plaintext=b"v1")["CiphertextBlob"]]
    for i in range(10):
        kms.rotate_key_on_demand(KeyId=key_id)
        blobs.append(kms.encrypt(KeyId=key_id, Plaintext=f"v{i + 2}".encode())["CiphertextBlob"])
    assert [_version(b) for b in blobs] == list(range(1, 12))
    assert [kms.decrypt(CiphertextBlob=b)["Plaintext"] for b in blobs] == [f"v{i}".encode() for i in range(1, 12)]
    with pytest.raises(KMSError) as exc:
        kms.rotate_key_on_demand(KeyId=key_id)
    assert exc.value.code == "LimitExceededException"
    assert {r["RotationType"] for r in kms.list_key_rotations(KeyId=key_id)["Rotations"]} == {"ON_DEMAND"}


def test_rotation_is_for_symmetric_keys_only(kms: LocalKMS) -> None:
    arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    call: Callable[[], object]
    for call in (lambda: kms.enable_key_rotation(KeyId=arn), lambda: kms.rotate_key_on_demand(KeyId=arn)):
        with pytest.raises(KMSError) as exc:
            call()
        assert exc.value.code == "UnsupportedOperationException"


def test_rotation_changes_material(disk_kms: LocalKMS) -> None:
    key_id = disk_kms.create_key()["KeyMetadata"]["KeyId"]
    disk_kms.rotate_key_on_demand(KeyId=key_id)
    assert disk_kms.data_dir is not None
    db = disk_kms._region_state().db.connect()  # SQLite or PostgreSQL, as the store is
    sealed = [row[0] for row in db.execute("SELECT sealed FROM key_versions WHERE key_id = ?", (key_id,))]
    assert len(sealed) == 2 and sealed[0] != sealed[1]


def test_schedule_and_cancel_deletion(kms: LocalKMS, key_id: str, clock: ManualClock) -> None:
    out = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert out["KeyState"] == "PendingDeletion" and out["PendingWindowInDays"] == 7
    assert out["DeletionDate"].timestamp() == pytest.approx(clock() + 7 * DAY)
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion" and "DeletionDate" in meta
    with pytest.raises(KMSError) as exc:
        kms.schedule_key_deletion(KeyId=key_id)
    assert exc.value.code == "KMSInvalidStateException"
    kms.cancel_key_deletion(KeyId=key_id)
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "Disabled" and "DeletionDate" not in meta
    with pytest.raises(KeyDisabledError):
        kms.encrypt(KeyId=key_id, Plaintext=b"x")


@pytest.mark.parametrize("days", [6, 31])
def test_deletion_window_bounds(kms: LocalKMS, key_id: str, days: int) -> None:
    with pytest.raises(KMSError) as exc:
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=days)
    assert exc.value.code == "ValidationException"


def test_material_is_destroyed_after_the_window(disk_kms: LocalKMS, clock: ManualClock) -> None:
    key_id = disk_kms.create_key()["KeyMetadata"]["KeyId"]
    disk_kms.create_alias(AliasName="alias/doomed", TargetKeyId=key_id)
    blob = disk_kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    disk_kms.schedule_key_deletion(KeyId=key_id)
    clock.advance(days=30, seconds=-1)
    assert disk_kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    clock.advance(seconds=2)
    with pytest.raises(KeyNotFoundError):
        disk_kms.decrypt(CiphertextBlob=blob)
    assert key_id not in [k["KeyId"] for k in disk_kms.list_keys()["Keys"]]
    assert [a for a in disk_kms.list_aliases()["Aliases"] if "TargetKeyId" in a] == []
    assert disk_kms.data_dir is not None
    db = disk_kms._region_state().db.connect()  # SQLite or PostgreSQL, as the store is
    assert db.execute("SELECT count(*) FROM key_versions WHERE key_id = ?", (key_id,)).fetchone() == (0,)


def test_destruction_is_applied_by_list_keys_too(kms: LocalKMS, key_id: str, clock: ManualClock) -> None:
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    clock.advance(days=8)
    assert kms.list_keys()["Keys"] == []


# -- imported key material --------------------------------------------------------------------

def _wrap(params: dict[str, object], material: bytes, algorithm: str) -> bytes:
    public = serialization.load_der_public_key(params["PublicKey"])  # type: ignore[arg-type]
    assert isinstance(public, rsa.RSAPublicKey)
    digest = hashes.SHA1() if algorithm == "RSAES_OAEP_SHA_1" else hashes.SHA256()
    return public.encrypt(material, padding.OAEP(padding.MGF1(digest), digest, None))


def _import(kms: LocalKMS, key_id: str, material: bytes, algorithm: str = "RSAES_OAEP_SHA_256",
            **kwargs: object) -> None:
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec="RSA_2048")
    kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"],
                            EncryptedKeyMaterial=_wrap(params, material, algorithm), **kwargs)


@pytest.fixture
def external(kms: LocalKMS) -> str:
    meta = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
    assert meta["KeyState"] == "PendingImport" and meta["Origin"] == "EXTERNAL"
    return str(meta["KeyId"])


@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"])
def test_import_material(kms: LocalKMS, external: str, algorithm: str) -> None:
    with pytest.raises(KMSError) as exc:
        kms.encrypt(KeyId=external, Plaintext=b"x")
    assert exc.value.code == "KMSInvalidStateException"
    material = os.urandom(32)
    _import(kms, external, material, algorithm)
    meta = kms.describe_key(KeyId=external)["KeyMetadata"]
    assert meta["KeyState"] == "Enabled" and meta["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    blob = kms.encrypt(KeyId=external, Plaintext=b"x")["CiphertextBlob"]
    # Delete and re-import the same material: old ciphertexts decrypt again.
    kms.delete_imported_key_material(KeyId=external)
    assert kms.describe_key(KeyId=external)["KeyMetadata"]["KeyState"] == "PendingImport"
    with pytest.raises(KMSError):
        kms.decrypt(CiphertextBlob=blob)
    _import(kms, external, material, algorithm)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"


def test_reimport_must_be_byte_identical(kms: LocalKMS, external: str) -> None:
    material = os.urandom(32)
    _import(kms, external, material)
    kms.delete_imported_key_material(KeyId=external)
    with pytest.raises(KMSError) as exc:
        _import(kms, external, bytes([material[0] ^ 1]) + material[1:])
    assert exc.value.code == "IncorrectKeyMaterialException"
    with pytest.raises(KMSError) as exc:
        _import(kms, external, os.urandom(16))
    assert exc.value.code == "IncorrectKeyMaterialException"


def test_import_expiry_returns_to_pending_import(kms: LocalKMS, external: str, clock: ManualClock) -> None:
    _import(kms, external, os.urandom(32), ValidTo=clock() + 10 * DAY, ExpirationModel="KEY_MATERIAL_EXPIRES")
    meta = kms.describe_key(KeyId=external)["KeyMetadata"]
    assert meta["ExpirationModel"] == "KEY_MATERIAL_EXPIRES" and meta["ValidTo"].timestamp() == clock() + 10 * DAY
    kms.encrypt(KeyId=external, Plaintext=b"x")
    clock.advance(days=10, seconds=1)
    assert kms.describe_key(KeyId=external)["KeyMetadata"]["KeyState"] == "PendingImport"
    with pytest.raises(KMSError) as exc:
        kms.encrypt(KeyId=external, Plaintext=b"x")
    assert exc.value.code == "KMSInvalidStateException"


def test_import_tokens(kms: LocalKMS, external: str, clock: ManualClock) -> None:
    other = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    params = kms.get_parameters_for_import(KeyId=external, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    assert params["ParametersValidTo"].timestamp() == clock() + DAY
    wrapped = _wrap(params, os.urandom(32), "RSAES_OAEP_SHA_256")
    for token, code in ((b"junk", "InvalidImportTokenException"),):
        with pytest.raises(KMSError) as exc:
            kms.import_key_material(KeyId=external, ImportToken=token, EncryptedKeyMaterial=wrapped)
        assert exc.value.code == code
    with pytest.raises(KMSError) as exc:
        kms.import_key_material(KeyId=other, ImportToken=params["ImportToken"], EncryptedKeyMaterial=wrapped)
    assert exc.value.code == "InvalidImportTokenException"
    clock.advance(days=1, seconds=1)
    with pytest.raises(KMSError) as exc:
        kms.import_key_material(KeyId=external, ImportToken=params["ImportToken"], EncryptedKeyMaterial=wrapped)
    assert exc.value.code == "ExpiredImportTokenException"


def test_import_only_for_external_keys(kms: LocalKMS, key_id: str) -> None:
    with pytest.raises(KMSError) as exc:
        kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    assert exc.value.code == "UnsupportedOperationException"
