"""Condition keys through LocalKMS, tried as an attacker would: every key a policy names is either
evaluated from the request or refused when the policy is stored, never read as "absent"."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from envelope.errors import KMSError
from envelope.kms import LocalKMS, ManualClock

ACCOUNT = "111122223333"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
APP = f"arn:aws:iam::{ACCOUNT}:role/App"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


ROOT_ALL = {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}


def _app_may(*actions: str) -> dict[str, Any]:
    return {"Sid": "App", "Effect": "Allow", "Principal": {"AWS": APP}, "Action": list(actions), "Resource": "*"}


def _deny_app(action: str, condition: dict[str, Any]) -> dict[str, Any]:
    return {"Sid": "Deny", "Effect": "Deny", "Principal": {"AWS": APP}, "Action": action, "Resource": "*",
            "Condition": condition}


def _code(call: Callable[[], object]) -> str:
    with pytest.raises(KMSError) as exc:
        call()
    return str(exc.value.code)


def _denied(call: Callable[[], object]) -> None:
    assert _code(call) == "AccessDeniedException"


def _key(kms: LocalKMS, *statements: dict[str, Any], **kwargs: Any) -> str:
    return str(kms.create_key(Policy=_policy(ROOT_ALL, *statements), **kwargs)["KeyMetadata"]["KeyId"])


# --- alias keys ---------------------------------------------------------------------------------

def test_deny_on_request_alias_fires(kms: LocalKMS) -> None:
    # https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-request-alias
    key = _key(kms, _app_may("kms:Encrypt"),
               _deny_app("kms:Encrypt", {"StringEquals": {"kms:RequestAlias": "alias/blocked"}}))
    kms.create_alias(AliasName="alias/blocked", TargetKeyId=key)
    kms.create_alias(AliasName="alias/open", TargetKeyId=key)
    app = kms.for_principal(APP)
    _denied(lambda: app.encrypt(KeyId="alias/blocked", Plaintext=b"x"))
    _denied(lambda: app.encrypt(KeyId=f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/blocked", Plaintext=b"x"))
    app.encrypt(KeyId="alias/open", Plaintext=b"x")
    app.encrypt(KeyId=key, Plaintext=b"x")  # no alias in the request: the key is absent


def test_request_alias_is_absent_when_the_request_names_the_key(kms: LocalKMS) -> None:
    # kms:RequestAlias exists only when the request used an alias (conditions-kms.html).
    key = _key(kms, _app_may("kms:Encrypt"), _deny_app("kms:Encrypt", {"Null": {"kms:RequestAlias": "true"}}))
    kms.create_alias(AliasName="alias/app", TargetKeyId=key)
    app = kms.for_principal(APP)
    _denied(lambda: app.encrypt(KeyId=key, Plaintext=b"x"))
    app.encrypt(KeyId="alias/app", Plaintext=b"x")


def test_allow_on_resource_aliases_matches(kms: LocalKMS) -> None:
    # https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-resource-aliases
    # (multivalued: ForAnyValue), through an identity policy under the default key policy.
    kms.principals.create(APP)
    kms.principals.put_identity_policy(APP, "by-alias", _policy({
        "Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*",
        "Condition": {"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/project-*"}}}))
    key = str(kms.create_key()["KeyMetadata"]["KeyId"])
    other = str(kms.create_key()["KeyMetadata"]["KeyId"])
    kms.create_alias(AliasName="alias/unrelated", TargetKeyId=key)
    kms.create_alias(AliasName="alias/project-x", TargetKeyId=key)
    app = kms.for_principal(APP)
    app.encrypt(KeyId=key, Plaintext=b"x")
    _denied(lambda: app.encrypt(KeyId=other, Plaintext=b"x"))
    kms.delete_alias(AliasName="alias/project-x")
    _denied(lambda: app.encrypt(KeyId=key, Plaintext=b"x"))


def test_for_all_values_on_resource_aliases_holds_for_a_key_without_aliases(kms: LocalKMS) -> None:
    # ForAllValues is true for an empty set: why AWS pairs it with Null (IAM User Guide,
    # reference_policies_condition-single-vs-multi-valued-context-keys.html).
    key = _key(kms, {**_app_may("kms:Encrypt"), "Condition": {
        "ForAllValues:StringLike": {"kms:ResourceAliases": "alias/ok-*"}}})
    app = kms.for_principal(APP)
    app.encrypt(KeyId=key, Plaintext=b"x")
    kms.create_alias(AliasName="alias/bad", TargetKeyId=key)
    _denied(lambda: app.encrypt(KeyId=key, Plaintext=b"x"))


# --- key attributes and request parameters ----------------------------------------------------

def test_deny_on_key_spec_fires_for_the_key_and_for_create_key(kms: LocalKMS) -> None:
    # https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-key-spec
    kms.principals.create(APP)
    kms.principals.put_identity_policy(APP, "keys", _policy(
        {"Effect": "Allow", "Action": ["kms:CreateKey", "kms:DescribeKey"], "Resource": "*"},
        {"Effect": "Deny", "Action": ["kms:CreateKey", "kms:DescribeKey"], "Resource": "*",
         "Condition": {"StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT"}}}))
    app = kms.for_principal(APP)
    # CreateKey without KeySpec has the default SYMMETRIC_DEFAULT: the Deny applies.
    _denied(lambda: app.create_key())
    _denied(lambda: app.create_key(KeySpec="SYMMETRIC_DEFAULT"))
    hmac = app.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    app.describe_key(KeyId=hmac)
    symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
    _denied(lambda: app.describe_key(KeyId=symmetric))


@pytest.mark.parametrize(("condition", "spec", "denied"), [
    ({"StringEquals": {"kms:KeyUsage": "SIGN_VERIFY"}}, "ECC_NIST_P256", True),
    ({"StringEquals": {"kms:KeyUsage": "SIGN_VERIFY"}}, "SYMMETRIC_DEFAULT", False),
    ({"StringEquals": {"kms:KeyOrigin": "AWS_KMS"}}, "SYMMETRIC_DEFAULT", True),
    ({"Bool": {"kms:MultiRegion": "false"}}, "SYMMETRIC_DEFAULT", True),
    ({"Null": {"kms:MultiRegionKeyType": "true"}}, "SYMMETRIC_DEFAULT", True),
    ({"StringEquals": {"kms:CustomerMasterKeySpec": "ECC_NIST_P256"}}, "ECC_NIST_P256", True),
])
def test_key_attribute_keys(kms: LocalKMS, condition: dict[str, Any], spec: str, denied: bool) -> None:
    # "Conditions for KMS keys used in API operations" (conditions-kms.html): the key's own attributes.
    usage = "SIGN_VERIFY" if spec.startswith("ECC") else "ENCRYPT_DECRYPT"
    key = _key(kms, _app_may("kms:DescribeKey"), _deny_app("kms:DescribeKey", condition), KeySpec=spec, KeyUsage=usage)
    app = kms.for_principal(APP)
    if denied:
        _denied(lambda: app.describe_key(KeyId=key))
    else:
        app.describe_key(KeyId=key)


def test_parameter_keys_take_their_defaults(kms: LocalKMS) -> None:
    # "This type of condition works even when the parameter doesn't appear in the request"
    # (conditions-kms.html); RotationPeriodInDays defaults to 365, PendingWindowInDays to 30.
    key = _key(kms, _app_may("kms:EnableKeyRotation", "kms:ScheduleKeyDeletion", "kms:GenerateDataKey"),
               _deny_app("kms:EnableKeyRotation", {"NumericLessThan": {"kms:RotationPeriodInDays": 180}}),
               _deny_app("kms:ScheduleKeyDeletion",
                         {"NumericLessThan": {"kms:ScheduleKeyDeletionPendingWindowInDays": 30}}),
               _deny_app("kms:GenerateDataKey",
                         {"StringNotEquals": {"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}}))
    app = kms.for_principal(APP)
    _denied(lambda: app.enable_key_rotation(KeyId=key, RotationPeriodInDays=90))
    app.enable_key_rotation(KeyId=key)
    app.enable_key_rotation(KeyId=key, RotationPeriodInDays=200)
    app.generate_data_key(KeyId=key, KeySpec="AES_256")  # the data key is encrypted under SYMMETRIC_DEFAULT
    _denied(lambda: app.schedule_key_deletion(KeyId=key, PendingWindowInDays=7))
    app.schedule_key_deletion(KeyId=key)


def test_signing_and_message_type_keys(kms: LocalKMS) -> None:
    # kms:SigningAlgorithm and kms:MessageType (default RAW) on Sign (conditions-kms.html).
    key = _key(kms, _app_may("kms:Sign"),
               _deny_app("kms:Sign", {"StringNotEquals": {"kms:MessageType": "RAW"}}),
               _deny_app("kms:Sign", {"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_384"}}),
               KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    app = kms.for_principal(APP)
    app.sign(KeyId=key, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    _denied(lambda: app.sign(KeyId=key, Message=b"\x00" * 32, MessageType="DIGEST",
                             SigningAlgorithm="ECDSA_SHA_256"))


def test_reencrypt_on_same_key(kms: LocalKMS) -> None:
    # https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-reencrypt-on-same-key
    deny_same = _deny_app("kms:ReEncrypt*", {"Bool": {"kms:ReEncryptOnSameKey": "true"}})
    key = _key(kms, _app_may("kms:ReEncrypt*", "kms:Encrypt"), deny_same)
    other = _key(kms, _app_may("kms:ReEncrypt*"), deny_same)
    kms.create_alias(AliasName="alias/same", TargetKeyId=key)
    app = kms.for_principal(APP)
    blob = app.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]
    _denied(lambda: app.re_encrypt(CiphertextBlob=blob, DestinationKeyId=key))
    _denied(lambda: app.re_encrypt(CiphertextBlob=blob, DestinationKeyId="alias/same"))
    app.re_encrypt(CiphertextBlob=blob, DestinationKeyId=other)


# --- tags ---------------------------------------------------------------------------------------

def test_deny_on_resource_tag_fires(kms: LocalKMS) -> None:
    # https://docs.aws.amazon.com/kms/latest/developerguide/conditions-aws.html (aws:ResourceTag/tag-key)
    key = _key(kms, _app_may("kms:Decrypt", "kms:Encrypt"),
               _deny_app("kms:Decrypt", {"StringEquals": {"aws:ResourceTag/env": "prod"}}))
    app = kms.for_principal(APP)
    blob = app.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]
    app.decrypt(CiphertextBlob=blob)
    kms.tag_resource(KeyId=key, Tags=[{"TagKey": "env", "TagValue": "prod"}])
    _denied(lambda: app.decrypt(CiphertextBlob=blob))
    kms.untag_resource(KeyId=key, TagKeys=["env"])
    app.decrypt(CiphertextBlob=blob)


def test_request_tags_and_tag_keys(kms: LocalKMS) -> None:
    # aws:RequestTag/tag-key and aws:TagKeys exist on CreateKey, TagResource and (TagKeys only)
    # UntagResource (conditions-aws.html).
    kms.principals.create(APP)
    kms.principals.put_identity_policy(APP, "tags", _policy(
        {"Effect": "Allow", "Action": ["kms:CreateKey", "kms:TagResource", "kms:UntagResource"], "Resource": "*"},
        {"Effect": "Deny", "Action": "kms:CreateKey", "Resource": "*",
         "Condition": {"StringNotEquals": {"aws:RequestTag/team": "blue"}}},
        {"Effect": "Deny", "Action": ["kms:TagResource", "kms:UntagResource"], "Resource": "*",
         "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": "owner"}}}))
    app = kms.for_principal(APP)
    _denied(lambda: app.create_key())  # no team tag: the negated condition is true when absent
    _denied(lambda: app.create_key(Tags=[{"TagKey": "team", "TagValue": "red"}]))
    key = app.create_key(Tags=[{"TagKey": "team", "TagValue": "blue"}])["KeyMetadata"]["KeyId"]
    app.tag_resource(KeyId=key, Tags=[{"TagKey": "cost", "TagValue": "1"}])
    _denied(lambda: app.tag_resource(KeyId=key, Tags=[{"TagKey": "owner", "TagValue": "me"}]))
    _denied(lambda: app.untag_resource(KeyId=key, TagKeys=["cost", "owner"]))
    app.untag_resource(KeyId=key, TagKeys=["cost"])


# --- global keys ----------------------------------------------------------------------------------

def test_source_ip_and_secure_transport(kms: LocalKMS) -> None:
    # aws:SourceIp with IpAddress/NotIpAddress, aws:SecureTransport with Bool
    # (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html).
    key = _key(kms, _app_may("kms:Encrypt"),
               _deny_app("kms:Encrypt", {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}}),
               _deny_app("kms:Encrypt", {"Bool": {"aws:SecureTransport": "false"}}))
    _denied(lambda: kms.for_principal(APP).encrypt(KeyId=key, Plaintext=b"x"))  # 127.0.0.1
    kms.for_principal(APP, source_ip="10.1.2.3").encrypt(KeyId=key, Plaintext=b"x")
    kms.for_principal(APP, source_ip="2001:db8::1").encrypt(KeyId=key, Plaintext=b"x")
    _denied(lambda: kms.for_principal(APP, source_ip="10.1.2.3", secure_transport=False)
            .encrypt(KeyId=key, Plaintext=b"x"))


def test_current_time_and_epoch_time(clock: ManualClock) -> None:
    # Date operators take ISO 8601 dates and epoch seconds (IAM condition operators, Date).
    kms = LocalKMS(path=":memory:", clock=clock)
    key = _key(kms, _app_may("kms:Encrypt"),
               _deny_app("kms:Encrypt", {"DateGreaterThan": {"aws:CurrentTime": "2026-01-02T00:00:00Z"}}),
               _deny_app("kms:Encrypt", {"DateLessThan": {"aws:EpochTime": int(clock()) - 10}}))
    app = kms.for_principal(APP)
    app.encrypt(KeyId=key, Plaintext=b"x")
    clock.advance(2 * 86400)
    _denied(lambda: app.encrypt(KeyId=key, Plaintext=b"x"))


def test_principal_keys_and_policy_variables(kms: LocalKMS) -> None:
    # aws:username, aws:PrincipalType and the ${aws:username} policy variable
    # (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html).
    kms.principals.create(ALICE)
    kms.principals.put_identity_policy(ALICE, "own-context", _policy({
        "Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:owner": "${aws:username}",
                                       "aws:PrincipalType": "User"}}}))
    key = str(kms.create_key()["KeyMetadata"]["KeyId"])
    alice = kms.for_principal(ALICE)
    alice.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"owner": "alice"})
    _denied(lambda: alice.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"owner": "bob"}))
    _denied(lambda: alice.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"owner": "${aws:username}"}))


def test_resource_policy_variables(kms: LocalKMS) -> None:
    # A variable in Resource: an absent key without a default matches nothing; a default applies.
    kms.principals.create(ALICE)
    key = str(kms.create_key(Tags=[{"TagKey": "t", "TagValue": "v"}])["KeyMetadata"]["KeyId"])
    arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/"
    kms.principals.put_identity_policy(ALICE, "p", _policy(
        {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": arn + "${aws:PrincipalTag/key}"},
        {"Effect": "Allow", "Action": "kms:DescribeKey", "Resource": arn + "${aws:PrincipalTag/key, '" + key + "'}"}))
    alice = kms.for_principal(ALICE)
    _denied(lambda: alice.encrypt(KeyId=key, Plaintext=b"x"))
    alice.describe_key(KeyId=key)


# --- refusal when stored ----------------------------------------------------------------------------

@pytest.mark.parametrize("condition", [
    {"StringEquals": {"kms:NoSuchKey": "x"}},
    {"StringEquals": {"aws:NoSuchKey": "x"}},
    {"StringEquals": {"s3:x-amz-acl": "private"}},
    {"StringEquals": {"kms:EncryptionContext:": "x"}},
    {"StringEquals": {"kms:EncryptionContext:a": "${aws:NoSuchKey}"}},
    {"StringEquals": {"kms:EncryptionContext:a": "${kms:ResourceAliases}"}},
    {"StringFooBar": {"kms:CallerAccount": ACCOUNT}},
    {"NullIfExists": {"kms:CallerAccount": "true"}},
    {"NumericLessThan": {"kms:RotationPeriodInDays": "soon"}},
    {"DateLessThan": {"aws:CurrentTime": "yesterday"}},
    {"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}},
    {"BinaryEquals": {"kms:CallerAccount": "not base64!"}},
])
def test_policies_a_service_cannot_evaluate_are_refused_wherever_stored(kms: LocalKMS,
                                                                         condition: dict[str, Any]) -> None:
    # The engine evaluates every key and operator it accepts; anything else is refused when the
    # policy is stored (CreateKey, PutKeyPolicy, identity policies), naming what it could not take.
    text = _policy(ROOT_ALL, {**_app_may("kms:Encrypt"), "Condition": condition})
    name = next(iter(next(iter(condition.values()))))
    with pytest.raises(KMSError) as exc:
        kms.create_key(Policy=text)
    assert exc.value.code == "MalformedPolicyDocumentException"
    assert name in str(exc.value) or next(iter(condition)) in str(exc.value)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    assert _code(lambda: kms.put_key_policy(KeyId=key, PolicyName="default", Policy=text)) == \
        "MalformedPolicyDocumentException"
    kms.principals.create(APP)
    identity = _policy({"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*", "Condition": condition})
    assert _code(lambda: kms.principals.put_identity_policy(APP, "p", identity)) == \
        "MalformedPolicyDocumentException"
    assert kms.principals.list_identity_policies(APP) == []


def test_every_documented_kms_key_is_accepted(kms: LocalKMS) -> None:
    # The condition keys of https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html.
    keys = ["kms:BypassPolicyLockoutSafetyCheck", "kms:CallerAccount", "kms:CustomerMasterKeySpec",
            "kms:CustomerMasterKeyUsage", "kms:DataKeyPairSpec", "kms:EncryptionAlgorithm",
            "kms:EncryptionContext:k", "kms:EncryptionContextKeys", "kms:ExpirationModel",
            "kms:GrantConstraintType", "kms:GrantConstraintSourceArn", "kms:GrantIsForAWSResource",
            "kms:GrantOperations", "kms:GranteePrincipal", "kms:GranteeServicePrincipal",
            "kms:RetiringServicePrincipal", "kms:KeyAgreementAlgorithm", "kms:KeyOrigin", "kms:KeySpec", "kms:KeyUsage",
            "kms:MacAlgorithm", "kms:MessageType", "kms:MultiRegion", "kms:MultiRegionKeyType",
            "kms:PrimaryRegion", "kms:ReEncryptOnSameKey", "kms:RequestAlias", "kms:ResourceAliases",
            "kms:ReplicaRegion", "kms:RetiringPrincipal", "kms:RotationPeriodInDays",
            "kms:ScheduleKeyDeletionPendingWindowInDays", "kms:SigningAlgorithm", "kms:ValidTo",
            "kms:ViaService", "kms:WrappingAlgorithm", "kms:WrappingKeySpec",
            "kms:RecipientAttestation:ImageSha384", "kms:RecipientAttestation:PCR0"]
    condition = {"Null": {key: "false" for key in keys}}
    kms.create_key(Policy=_policy(ROOT_ALL, {**_app_may("kms:Encrypt"), "Condition": condition}))


def test_recipient_attestation_is_absent_locally(kms: LocalKMS) -> None:
    # No Nitro enclave attestation reaches a local service: the keys are absent, so a Deny that
    # requires them blocks and an Allow that requires them never matches.
    key = _key(kms, {**_app_may("kms:Decrypt", "kms:Encrypt"), "Condition": {
        "StringEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": "ab" * 48}}})
    _denied(lambda: kms.for_principal(APP).encrypt(KeyId=key, Plaintext=b"x"))


def test_a_stored_policy_the_engine_cannot_evaluate_fails_closed(disk_kms: LocalKMS) -> None:
    # A policy stored by an earlier version may name a key this engine refuses: its Deny applies
    # unconditionally, its Allow is dropped, and the rest of the policy keeps the key manageable.
    key = _key(disk_kms, _app_may("kms:Encrypt", "kms:DescribeKey"))
    legacy = _policy(ROOT_ALL, {**_app_may("kms:Encrypt"), "Condition": {"StringEquals": {"kms:Legacy": "x"}}},
                     _deny_app("kms:DescribeKey", {"StringEquals": {"kms:Legacy": "x"}}))
    with disk_kms._region_state().db.transaction() as conn:  # SQLite or PostgreSQL, as the store is
        conn.execute("UPDATE keys SET policy = ? WHERE key_id = ?", (legacy, key))
        conn.execute("UPDATE meta SET value = value + 1 WHERE name = 'change_counter'")
    app = disk_kms.for_principal(APP)
    _denied(lambda: app.encrypt(KeyId=key, Plaintext=b"x"))
    _denied(lambda: app.describe_key(KeyId=key))
    disk_kms.put_key_policy(KeyId=key, PolicyName="default", Policy=_policy(ROOT_ALL, _app_may("kms:Encrypt")))
    app.encrypt(KeyId=key, Plaintext=b"x")


def test_multi_region_keys_and_replicate_key_policy(kms: LocalKMS) -> None:
    # kms:MultiRegionKeyType is PRIMARY or REPLICA by the key's record in this Region, and
    # kms:ReplicaRegion is ReplicateKey's parameter (conditions-kms.html); ReplicateKey's Policy is
    # refused like any other when it names a key the engine cannot evaluate.
    deny_replica = _deny_app("kms:DescribeKey", {"StringEquals": {"kms:MultiRegionKeyType": "REPLICA"}})
    key = _key(kms, _app_may("kms:DescribeKey"), deny_replica,
               {"Sid": "NoWest", "Effect": "Deny", "Principal": {"AWS": ROOT}, "Action": "kms:ReplicateKey",
                "Resource": "*", "Condition": {"StringEquals": {"kms:ReplicaRegion": "eu-west-2"}}},
               MultiRegion=True)
    bad = _policy(ROOT_ALL, {**_app_may("kms:DescribeKey"), "Condition": {"StringEquals": {"kms:Nope": "x"}}})
    assert _code(lambda: kms.replicate_key(KeyId=key, ReplicaRegion="eu-west-1", Policy=bad)) == \
        "MalformedPolicyDocumentException"
    _denied(lambda: kms.replicate_key(KeyId=key, ReplicaRegion="eu-west-2"))
    kms.replicate_key(KeyId=key, ReplicaRegion="eu-west-1", Policy=_policy(ROOT_ALL, _app_may("kms:DescribeKey"),
                                                                          deny_replica))
    kms.for_principal(APP).describe_key(KeyId=key)
    _denied(lambda: kms.for_principal(APP).for_region("eu-west-1").describe_key(KeyId=key))


def test_lockout_check_sees_the_request(kms: LocalKMS) -> None:
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_PutKeyPolicy.html
    # (BypassPolicyLockoutSafetyCheck): the new policy must let the principal making this request
    # call PutKeyPolicy again, conditions evaluated with this request's context.
    key = str(kms.create_key()["KeyMetadata"]["KeyId"])
    only_from_10 = _policy({**ROOT_ALL, "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}})
    assert _code(lambda: kms.put_key_policy(KeyId=key, PolicyName="default", Policy=only_from_10)) == \
        "MalformedPolicyDocumentException"
    from_10 = kms.for_principal(ROOT, source_ip="10.9.9.9")
    from_10.put_key_policy(KeyId=key, PolicyName="default", Policy=only_from_10)
    _denied(lambda: kms.describe_key(KeyId=key))
    from_10.describe_key(KeyId=key)
