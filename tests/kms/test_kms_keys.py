"""Key management through LocalKMS: metadata shape, key references, states, aliases, tags, policies."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

import envelope.kms
from envelope.errors import KeyNotFoundError, KMSError
from envelope.kms import LocalKMS
from envelope.kms.model.errors import AlreadyExistsError, ValidationError

ACCOUNT = "111122223333"


def test_public_names_are_pinned() -> None:
    assert envelope.kms.__all__ == sorted(envelope.kms.__all__) == [
        "LocalKMS", "ManualClock", "StoreError", "backup", "default_data_dir", "restore", "rotate_root_key"]


def test_create_key_metadata_shape(kms: LocalKMS) -> None:
    meta = kms.create_key(Description="d", Tags=[{"TagKey": "team", "TagValue": "x"}])["KeyMetadata"]
    assert set(meta) == {"AWSAccountId", "KeyId", "Arn", "CreationDate", "Enabled", "Description", "KeyUsage",
                         "KeyState", "Origin", "KeyManager", "CustomerMasterKeySpec", "KeySpec",
                         "EncryptionAlgorithms", "MultiRegion"}
    assert meta["Arn"] == f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{meta['KeyId']}"
    assert isinstance(meta["CreationDate"], datetime) and meta["CreationDate"].tzinfo is not None
    assert (meta["KeyState"], meta["Enabled"], meta["KeyManager"], meta["Origin"]) == ("Enabled", True, "CUSTOMER", "AWS_KMS")
    assert kms.describe_key(KeyId=meta["KeyId"])["KeyMetadata"] == meta
    assert kms.list_resource_tags(KeyId=meta["KeyId"]) == {"Tags": [{"TagKey": "team", "TagValue": "x"}],
                                                           "Truncated": False}


def test_key_reference_forms(kms: LocalKMS, key_id: str) -> None:
    arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}"
    kms.create_alias(AliasName="alias/app", TargetKeyId=key_id)
    for ref in (key_id, arn, "alias/app", f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/app"):
        assert kms.describe_key(KeyId=ref)["KeyMetadata"]["Arn"] == arn


@pytest.mark.parametrize("ref", ["alias/missing", "00000000-0000-0000-0000-000000000000", "not-a-key",
                                 "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"])
def test_unknown_keys_are_not_found(kms: LocalKMS, ref: str) -> None:
    with pytest.raises(KeyNotFoundError) as exc:
        kms.describe_key(KeyId=ref)
    assert exc.value.code == "NotFoundException"
    assert exc.value.response == {"Error": {"Code": "NotFoundException", "Message": str(exc.value)}}


def test_exceptions_namespace_like_boto3(kms: LocalKMS) -> None:
    with pytest.raises(kms.exceptions.NotFoundException):
        kms.describe_key(KeyId="alias/nope")
    assert issubclass(kms.exceptions.ValidationException, KMSError)


def test_list_keys_paginates(kms: LocalKMS) -> None:
    made = [kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(5)]
    first = kms.list_keys(Limit=2)
    assert first["Truncated"] is True and len(first["Keys"]) == 2
    seen = [k["KeyId"] for k in first["Keys"]]
    marker = first["NextMarker"]
    while marker:
        page = kms.list_keys(Limit=2, Marker=marker)
        seen += [k["KeyId"] for k in page["Keys"]]
        marker = page.get("NextMarker")
    assert seen == made
    with pytest.raises(KMSError) as exc:
        kms.list_keys(Marker="!!")
    assert exc.value.code == "InvalidMarkerException"


def test_other_accounts_keys_are_invisible(kms: LocalKMS, key_id: str) -> None:
    other = kms.for_principal("arn:aws:iam::444455556666:root")
    assert other.list_keys()["Keys"] == []
    with pytest.raises(KeyNotFoundError):
        other.describe_key(KeyId=key_id)


def test_update_description_enable_disable(kms: LocalKMS, key_id: str) -> None:
    kms.update_key_description(KeyId=key_id, Description="new")
    kms.disable_key(KeyId=key_id)
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (meta["Description"], meta["KeyState"], meta["Enabled"]) == ("new", "Disabled", False)
    kms.enable_key(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"KeySpec": "ECC_NIST_P256", "KeyUsage": "ENCRYPT_DECRYPT"}, "ValidationException"),
    ({"KeySpec": "NOPE"}, "ValidationException"),
    # KeyUsage may be left out only where ENCRYPT_DECRYPT fits (symmetric and RSA keys).
    ({"KeySpec": "HMAC_256"}, "ValidationException"),
    ({"KeySpec": "ECC_NIST_P256"}, "ValidationException"),
    ({"Policy": "{not json"}, "MalformedPolicyDocumentException"),
    ({"Tags": [{"TagKey": "aws:x", "TagValue": "y"}]}, "TagException"),
    ({"Origin": "AWS_CLOUDHSM"}, "CustomKeyStoreNotFoundException"),
])
def test_create_key_rejects(kms: LocalKMS, kwargs: dict[str, object], code: str) -> None:
    with pytest.raises(KMSError) as exc:
        kms.create_key(**kwargs)
    assert exc.value.code == code


@pytest.mark.parametrize("spec", ["SYMMETRIC_DEFAULT", "RSA_2048"])
def test_key_usage_defaults_to_encrypt_decrypt(kms: LocalKMS, spec: str) -> None:
    assert kms.create_key(KeySpec=spec)["KeyMetadata"]["KeyUsage"] == "ENCRYPT_DECRYPT"


def test_create_key_policy_lockout_check(kms: LocalKMS) -> None:
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/Other"},
        "Action": "kms:*", "Resource": "*"}]})
    with pytest.raises(KMSError) as exc:
        kms.create_key(Policy=policy)
    assert exc.value.code == "MalformedPolicyDocumentException"
    assert kms.create_key(Policy=policy, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]["KeyState"] == "Enabled"


def test_tags(kms: LocalKMS, key_id: str) -> None:
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "b", "TagValue": "2"}, {"TagKey": "a", "TagValue": "1"}])
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "a", "TagValue": "one"}])
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "a", "TagValue": "one"},
                                                             {"TagKey": "b", "TagValue": "2"}]
    kms.untag_resource(KeyId=key_id, TagKeys=["a"])
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "b", "TagValue": "2"}]


def test_aliases(kms: LocalKMS, key_id: str) -> None:
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/app", TargetKeyId=key_id)
    with pytest.raises(AlreadyExistsError):
        kms.create_alias(AliasName="alias/app", TargetKeyId=other)
    listed = [a for a in kms.list_aliases()["Aliases"] if "TargetKeyId" in a]  # not the predefined ones
    assert [(a["AliasName"], a["TargetKeyId"]) for a in listed] == [("alias/app", key_id)]
    assert listed[0]["AliasArn"] == f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/app"
    kms.update_alias(AliasName="alias/app", TargetKeyId=other)
    assert kms.describe_key(KeyId="alias/app")["KeyMetadata"]["KeyId"] == other
    assert kms.list_aliases(KeyId=key_id)["Aliases"] == []
    kms.delete_alias(AliasName="alias/app")
    with pytest.raises(KeyNotFoundError):
        kms.describe_key(KeyId="alias/app")


def test_alias_cannot_move_to_a_different_key_type(kms: LocalKMS, key_id: str) -> None:
    signing = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/x", TargetKeyId=key_id)
    with pytest.raises(ValidationError):
        kms.update_alias(AliasName="alias/x", TargetKeyId=signing)


def test_key_policies(kms: LocalKMS, key_id: str) -> None:
    got = kms.get_key_policy(KeyId=key_id, PolicyName="default")
    assert got["PolicyName"] == "default"
    assert json.loads(got["Policy"])["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert kms.list_key_policies(KeyId=key_id) == {"PolicyNames": ["default"], "Truncated": False}
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "app", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/App"},
         "Action": "kms:Decrypt", "Resource": "*"}]})
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == policy
    lockout = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/App"}, "Action": "kms:*",
         "Resource": "*"}]})
    with pytest.raises(KMSError) as exc:
        kms.put_key_policy(KeyId=key_id, Policy=lockout)
    assert exc.value.code == "MalformedPolicyDocumentException"
    kms.put_key_policy(KeyId=key_id, Policy=lockout, BypassPolicyLockoutSafetyCheck=True)
    with pytest.raises(KMSError) as exc:
        kms.put_key_policy(KeyId=key_id, Policy=policy)
    assert exc.value.code == "AccessDeniedException"


def test_service_managed_keys(kms: LocalKMS) -> None:
    meta = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert meta["KeyManager"] == "AWS" and meta["KeyState"] == "Enabled"
    assert kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["KeyId"] == meta["KeyId"]  # created once
    assert kms.get_key_rotation_status(KeyId=meta["KeyId"])["KeyRotationEnabled"] is True
    # Usable only through the service, as AWS managed key policies say.
    with pytest.raises(KMSError) as exc:
        kms.encrypt(KeyId="alias/aws/s3", Plaintext=b"x")
    assert exc.value.code == "AccessDeniedException"
    via = kms.for_principal(f"arn:aws:iam::{ACCOUNT}:role/App", via_service="s3.us-east-1.amazonaws.com")
    blob = via.encrypt(KeyId="alias/aws/s3", Plaintext=b"x")["CiphertextBlob"]
    assert via.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    for call in (lambda: kms.schedule_key_deletion(KeyId=meta["KeyId"]),
                 lambda: kms.disable_key(KeyId=meta["KeyId"]),
                 lambda: kms.put_key_policy(KeyId=meta["KeyId"], Policy="{}"),
                 lambda: kms.disable_key_rotation(KeyId=meta["KeyId"])):
        with pytest.raises(KMSError) as exc:
            call()
        assert exc.value.code in ("AccessDeniedException", "UnsupportedOperationException")
    with pytest.raises(KMSError) as exc:
        kms.create_alias(AliasName="alias/mine", TargetKeyId=meta["KeyId"])
    assert exc.value.code in ("AccessDeniedException", "UnsupportedOperationException")
