"""Multi-Region keys: replicas share id and material, decrypt each other's blobs, follow rotation."""

from __future__ import annotations

import pytest

from envelope.errors import KeyNotFoundError, KMSError
from envelope.kms import LocalKMS, ManualClock

ACCOUNT = "111122223333"


@pytest.fixture(params=["memory", "disk"])
def primary(request: pytest.FixtureRequest, kms: LocalKMS, disk_kms: LocalKMS) -> LocalKMS:
    return kms if request.param == "memory" else disk_kms


def test_replica_decrypts_primary_blobs_and_back(primary: LocalKMS) -> None:
    meta = primary.create_key(MultiRegion=True, Description="mrk")["KeyMetadata"]
    key_id = meta["KeyId"]
    assert key_id.startswith("mrk-") and meta["MultiRegion"] is True
    assert meta["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"
    out = primary.replicate_key(KeyId=key_id, ReplicaRegion="eu-west-1", Description="replica")
    replica_meta = out["ReplicaKeyMetadata"]
    assert replica_meta["Arn"] == f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/{key_id}"
    assert replica_meta["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    west = primary.for_region("eu-west-1")
    described = west.describe_key(KeyId=key_id)["KeyMetadata"]
    assert described["Description"] == "replica" and described["KeyState"] == "Enabled"
    ctx = {"app": "x"}
    blob = primary.encrypt(KeyId=key_id, Plaintext=b"from primary", EncryptionContext=ctx)["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == b"from primary"
    back = west.encrypt(KeyId=key_id, Plaintext=b"from replica")["CiphertextBlob"]
    assert primary.decrypt(CiphertextBlob=back)["Plaintext"] == b"from replica"
    primary_view = primary.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"]
    assert primary_view["ReplicaKeys"] == [{"Arn": replica_meta["Arn"], "Region": "eu-west-1"}]


def test_replica_has_its_own_state_and_aliases(kms: LocalKMS) -> None:
    key_id = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    kms.replicate_key(KeyId=key_id, ReplicaRegion="eu-west-1")
    west = kms.for_region("eu-west-1")
    west.disable_key(KeyId=key_id)
    kms.encrypt(KeyId=key_id, Plaintext=b"x")
    west.create_alias(AliasName="alias/west", TargetKeyId=key_id)
    with pytest.raises(KeyNotFoundError):
        kms.describe_key(KeyId="alias/west")


def test_rotation_on_primary_reaches_replica(kms: LocalKMS, clock: ManualClock) -> None:
    key_id = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    kms.replicate_key(KeyId=key_id, ReplicaRegion="eu-west-1")
    west = kms.for_region("eu-west-1")
    kms.rotate_key_on_demand(KeyId=key_id)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"v2")["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=blob)["Plaintext"] == b"v2"
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    assert west.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    clock.advance(days=91)
    # The replica notices the due rotation, lets the primary rotate, and picks up the material.
    replica_blob = west.encrypt(KeyId=key_id, Plaintext=b"v3")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=replica_blob)["Plaintext"] == b"v3"
    assert len(kms.list_key_rotations(KeyId=key_id)["Rotations"]) == 2
    with pytest.raises(KMSError) as exc:
        west.rotate_key_on_demand(KeyId=key_id)
    assert exc.value.code == "UnsupportedOperationException"


def test_replicate_rules(kms: LocalKMS, key_id: str) -> None:
    with pytest.raises(KMSError) as exc:
        kms.replicate_key(KeyId=key_id, ReplicaRegion="eu-west-1")
    assert exc.value.code == "UnsupportedOperationException"
    mrk = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    kms.replicate_key(KeyId=mrk, ReplicaRegion="eu-west-1")
    with pytest.raises(KMSError) as exc:
        kms.replicate_key(KeyId=mrk, ReplicaRegion="eu-west-1")
    assert exc.value.code == "AlreadyExistsException"
    with pytest.raises(KMSError) as exc:
        kms.replicate_key(KeyId=mrk, ReplicaRegion="us-east-1")
    assert exc.value.code == "ValidationException"
    with pytest.raises(KMSError) as exc:
        kms.for_region("eu-west-1").replicate_key(KeyId=mrk, ReplicaRegion="ap-south-1")
    assert exc.value.code == "UnsupportedOperationException"


def test_update_primary_region(kms: LocalKMS) -> None:
    key_id = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    kms.replicate_key(KeyId=key_id, ReplicaRegion="eu-west-1")
    kms.replicate_key(KeyId=key_id, ReplicaRegion="ap-south-1")
    kms.update_primary_region(KeyId=key_id, PrimaryRegion="eu-west-1")
    for region, kind in (("us-east-1", "REPLICA"), ("eu-west-1", "PRIMARY"), ("ap-south-1", "REPLICA")):
        config = kms.for_region(region).describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"]
        assert config["MultiRegionKeyType"] == kind and config["PrimaryKey"]["Region"] == "eu-west-1"
        assert sorted(r["Region"] for r in config["ReplicaKeys"]) == ["ap-south-1", "us-east-1"]
    kms.for_region("eu-west-1").rotate_key_on_demand(KeyId=key_id)


def test_primary_waits_for_replica_deletion(kms: LocalKMS, clock: ManualClock) -> None:
    key_id = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    kms.replicate_key(KeyId=key_id, ReplicaRegion="eu-west-1")
    out = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert out["KeyState"] == "PendingReplicaDeletion"
    west = kms.for_region("eu-west-1")
    west.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    clock.advance(days=8)
    with pytest.raises(KeyNotFoundError):
        west.describe_key(KeyId=key_id)
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion"
    assert meta["MultiRegionConfiguration"]["ReplicaKeys"] == []
    clock.advance(days=8)
    with pytest.raises(KeyNotFoundError):
        kms.describe_key(KeyId=key_id)
