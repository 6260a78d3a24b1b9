"""The same boto3 call sequence against moto and LocalKMS: same response keys and error codes.

Where moto is known to be wrong, the expected outcome on each side is written down below, so a
fix in moto (or a regression here) shows up as a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from moto import mock_aws

from envelope.errors import KMSError
from envelope.kms import LocalKMS

Outcome = tuple[str, frozenset[str], frozenset[str]]  # (error code or "ok", response keys, KeyMetadata keys)

# Steps where moto differs from KMS on purpose-worthy points: (moto's outcome, ours).
MOTO_IS_WRONG: dict[str, tuple[str, str]] = {
    # KMS refuses cryptographic use of a disabled key (DisabledException); moto encrypts anyway.
    "encrypt_disabled": ("ok", "DisabledException"),
    # KMS refuses keys pending deletion (KMSInvalidStateException); moto encrypts anyway.
    "encrypt_pending_deletion": ("ok", "KMSInvalidStateException"),
    # PendingWindowInDays must be 7-30; moto accepts 3.
    "schedule_window_3": ("ok", "ValidationException"),
    # alias/aws/ is reserved for AWS managed keys; this moto lets users create it (KMS and older
    # moto answer NotAuthorizedException).
    "create_alias_reserved": ("ok", "NotAuthorizedException"),
}
# Response fields KMS returns that moto leaves out: we return them (a superset is expected).
# moto also puts SigningAlgorithms on every key and EncryptionAlgorithms on HMAC keys, which KMS
# does not; those moto-only metadata fields are ignored when our key correctly has none.
MOTO_SPURIOUS_METADATA = frozenset({"SigningAlgorithms", "EncryptionAlgorithms"})


def _sequence(client: Any) -> dict[str, Outcome]:
    out: dict[str, Outcome] = {}

    def step(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            response = {k: v for k, v in fn().items() if k != "ResponseMetadata"}
        except ClientError as exc:
            out[name] = (exc.response["Error"]["Code"], frozenset(), frozenset())
            return {}
        except KMSError as exc:
            out[name] = (exc.code, frozenset(), frozenset())
            return {}
        out[name] = ("ok", frozenset(response), frozenset(response.get("KeyMetadata", {})))
        return response

    c = client
    kid = step("create_key", lambda: c.create_key(Description="d"))["KeyMetadata"]["KeyId"]
    step("describe_key", lambda: c.describe_key(KeyId=kid))
    ctx = {"purpose": "parity"}
    blob = step("encrypt", lambda: c.encrypt(KeyId=kid, Plaintext=b"x", EncryptionContext=ctx))["CiphertextBlob"]
    step("decrypt", lambda: c.decrypt(CiphertextBlob=blob, EncryptionContext=ctx))
    step("decrypt_wrong_context", lambda: c.decrypt(CiphertextBlob=blob, EncryptionContext={"purpose": "other"}))
    step("generate_data_key", lambda: c.generate_data_key(KeyId=kid, KeySpec="AES_256", EncryptionContext=ctx))
    step("generate_data_key_bytes", lambda: c.generate_data_key(KeyId=kid, NumberOfBytes=64))
    step("generate_data_key_without_plaintext", lambda: c.generate_data_key_without_plaintext(KeyId=kid,
                                                                                              KeySpec="AES_128"))
    step("re_encrypt", lambda: c.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext=ctx, DestinationKeyId=kid))
    step("create_alias", lambda: c.create_alias(AliasName="alias/parity", TargetKeyId=kid))
    step("create_alias_duplicate", lambda: c.create_alias(AliasName="alias/parity", TargetKeyId=kid))
    step("create_alias_reserved", lambda: c.create_alias(AliasName="alias/aws/parity", TargetKeyId=kid))
    step("describe_by_alias", lambda: c.describe_key(KeyId="alias/parity"))
    step("list_aliases", lambda: c.list_aliases(KeyId=kid))
    step("delete_alias_missing", lambda: c.delete_alias(AliasName="alias/none"))
    step("disable_key", lambda: c.disable_key(KeyId=kid))
    step("encrypt_disabled", lambda: c.encrypt(KeyId=kid, Plaintext=b"x"))
    step("enable_key", lambda: c.enable_key(KeyId=kid))
    step("update_key_description", lambda: c.update_key_description(KeyId=kid, Description="new"))
    step("tag_resource", lambda: c.tag_resource(KeyId=kid, Tags=[{"TagKey": "a", "TagValue": "b"}]))
    step("list_resource_tags", lambda: c.list_resource_tags(KeyId=kid))
    step("untag_resource", lambda: c.untag_resource(KeyId=kid, TagKeys=["a"]))
    step("get_key_policy", lambda: c.get_key_policy(KeyId=kid, PolicyName="default"))
    step("list_key_policies", lambda: c.list_key_policies(KeyId=kid))
    step("enable_key_rotation", lambda: c.enable_key_rotation(KeyId=kid))
    step("get_key_rotation_status", lambda: c.get_key_rotation_status(KeyId=kid))
    step("rotate_key_on_demand", lambda: c.rotate_key_on_demand(KeyId=kid))
    step("list_key_rotations", lambda: c.list_key_rotations(KeyId=kid))
    step("disable_key_rotation", lambda: c.disable_key_rotation(KeyId=kid))
    grant = step("create_grant", lambda: c.create_grant(KeyId=kid, GranteePrincipal="arn:aws:iam::111122223333:role/A",
                                                        Operations=["Decrypt"]))
    step("list_grants", lambda: c.list_grants(KeyId=kid))
    step("revoke_grant", lambda: c.revoke_grant(KeyId=kid, GrantId=grant["GrantId"]))
    spare = step("create_spare_key", lambda: c.create_key())["KeyMetadata"]["KeyId"]
    step("schedule_window_3", lambda: c.schedule_key_deletion(KeyId=spare, PendingWindowInDays=3))
    step("schedule_key_deletion", lambda: c.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7))
    step("encrypt_pending_deletion", lambda: c.encrypt(KeyId=kid, Plaintext=b"x"))
    step("cancel_key_deletion", lambda: c.cancel_key_deletion(KeyId=kid))
    step("describe_missing", lambda: c.describe_key(KeyId="alias/missing"))
    signer = step("create_signing_key", lambda: c.create_key(KeySpec="ECC_NIST_P256",
                                                             KeyUsage="SIGN_VERIFY"))["KeyMetadata"]["KeyId"]
    signature = step("sign", lambda: c.sign(KeyId=signer, Message=b"m", SigningAlgorithm="ECDSA_SHA_256"))["Signature"]
    step("verify", lambda: c.verify(KeyId=signer, Message=b"m", Signature=signature, SigningAlgorithm="ECDSA_SHA_256"))
    step("get_public_key", lambda: c.get_public_key(KeyId=signer))
    mac_key = step("create_hmac_key", lambda: c.create_key(KeySpec="HMAC_256",
                                                           KeyUsage="GENERATE_VERIFY_MAC"))["KeyMetadata"]["KeyId"]
    mac = step("generate_mac", lambda: c.generate_mac(KeyId=mac_key, Message=b"m", MacAlgorithm="HMAC_SHA_256"))["Mac"]
    step("verify_mac", lambda: c.verify_mac(KeyId=mac_key, Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_256"))
    step("verify_mac_bad", lambda: c.verify_mac(KeyId=mac_key, Message=b"n", Mac=mac, MacAlgorithm="HMAC_SHA_256"))
    step("generate_random", lambda: c.generate_random(NumberOfBytes=16))
    mrk = step("create_multi_region", lambda: c.create_key(MultiRegion=True))["KeyMetadata"]["KeyId"]
    step("replicate_key", lambda: c.replicate_key(KeyId=mrk, ReplicaRegion="eu-west-1"))
    step("list_keys", lambda: c.list_keys())
    return out


@pytest.fixture(scope="module")
def outcomes() -> tuple[dict[str, Outcome], dict[str, Outcome]]:
    with mock_aws():
        moto = _sequence(boto3.client("kms", region_name="us-east-1", aws_access_key_id="testing",
                                      aws_secret_access_key="testing"))
    ours = _sequence(LocalKMS(path=":memory:"))
    return moto, ours


def test_same_steps_ran(outcomes: tuple[dict[str, Outcome], dict[str, Outcome]]) -> None:
    moto, ours = outcomes
    assert list(moto) == list(ours) and len(ours) > 40


def test_error_codes_match(outcomes: tuple[dict[str, Outcome], dict[str, Outcome]]) -> None:
    moto, ours = outcomes
    for name in ours:
        if name in MOTO_IS_WRONG:
            assert (moto[name][0], ours[name][0]) == MOTO_IS_WRONG[name], name
        else:
            assert moto[name][0] == ours[name][0], name
    assert ours["decrypt_wrong_context"][0] == "InvalidCiphertextException"
    assert ours["describe_missing"][0] == "NotFoundException"


def test_response_keys_cover_motos(outcomes: tuple[dict[str, Outcome], dict[str, Outcome]]) -> None:
    moto, ours = outcomes
    for name, (status, keys, meta) in ours.items():
        if status != "ok" or moto[name][0] != "ok":
            continue
        assert moto[name][1] <= keys, (name, moto[name][1] - keys)
        assert moto[name][2] - MOTO_SPURIOUS_METADATA <= meta, (name, moto[name][2] - meta)
