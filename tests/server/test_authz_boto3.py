"""Authorization through `envelope kms serve` with boto3: condition keys fed by the request and the
transport, policies refused when they name what cannot be evaluated, grant escalation refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from envelope.kms import LocalKMS
from envelope.kms.server import AccessKeys

if TYPE_CHECKING:
    from .conftest import Endpoint

ACCOUNT = "111122223333"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


def _error(call: Callable[[], object]) -> tuple[str, str]:
    with pytest.raises(ClientError) as exc:
        call()
    return str(exc.value.response["Error"]["Code"]), str(exc.value.response["Error"]["Message"])


def _denied(call: Callable[[], object]) -> None:
    assert _error(call)[0] == "AccessDeniedException"


def _caller(endpoint: Endpoint, principal: str) -> Any:
    keys = AccessKeys(endpoint.data_dir)
    created = keys.create(principal)["AccessKey"]
    keys.close()
    return endpoint.client(access_key_id=created["AccessKeyId"], secret=created["SecretAccessKey"])


def _policy(*statements: dict[str, Any]) -> str:
    root = {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [root, *statements]})


def test_alias_and_tag_conditions_over_the_wire(endpoint: Endpoint) -> None:
    # https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-request-alias
    # and conditions-aws.html (aws:ResourceTag/tag-key).
    role = f"arn:aws:iam::{ACCOUNT}:role/AuthzAlias"
    root, app = endpoint.client(), _caller(endpoint, role)
    key = root.create_key(Policy=_policy(
        {"Effect": "Allow", "Principal": {"AWS": role}, "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"},
        {"Effect": "Deny", "Principal": {"AWS": role}, "Action": "kms:Encrypt", "Resource": "*",
         "Condition": {"StringEquals": {"kms:RequestAlias": "alias/authz-blocked"}}},
        {"Effect": "Deny", "Principal": {"AWS": role}, "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringEquals": {"aws:ResourceTag/env": "prod"}}}))["KeyMetadata"]["KeyId"]
    root.create_alias(AliasName="alias/authz-blocked", TargetKeyId=key)
    _denied(lambda: app.encrypt(KeyId="alias/authz-blocked", Plaintext=b"x"))
    blob = app.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]
    app.decrypt(CiphertextBlob=blob)
    root.tag_resource(KeyId=key, Tags=[{"TagKey": "env", "TagValue": "prod"}])
    _denied(lambda: app.decrypt(CiphertextBlob=blob))


def test_identity_policy_on_resource_aliases_and_key_spec(endpoint: Endpoint) -> None:
    # kms:ResourceAliases (multivalued) allows; kms:KeySpec denies (conditions-kms.html).
    role = f"arn:aws:iam::{ACCOUNT}:role/AuthzAbac"
    store = LocalKMS(endpoint.data_dir).principals
    store.create(role)
    store.put_identity_policy(role, "abac", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["kms:Encrypt", "kms:DescribeKey"], "Resource": "*",
         "Condition": {"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/authz-team*"}}},
        {"Effect": "Deny", "Action": "kms:DescribeKey", "Resource": "*",
         "Condition": {"StringEquals": {"kms:KeySpec": "HMAC_256"}}}]}))
    root, app = endpoint.client(), _caller(endpoint, role)
    key = root.create_key()["KeyMetadata"]["KeyId"]
    _denied(lambda: app.encrypt(KeyId=key, Plaintext=b"x"))
    root.create_alias(AliasName="alias/authz-team", TargetKeyId=key)
    app.encrypt(KeyId=key, Plaintext=b"x")
    hmac = root.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    root.create_alias(AliasName="alias/authz-team-mac", TargetKeyId=hmac)
    _denied(lambda: app.describe_key(KeyId=hmac))


def test_policies_naming_unknown_keys_are_refused(endpoint: Endpoint) -> None:
    # A condition key the service cannot evaluate is refused when the policy is stored.
    root = endpoint.client()
    text = _policy({"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
                    "Condition": {"StringEquals": {"kms:NoSuchKey": "x"}}})
    code, message = _error(lambda: root.create_key(Policy=text))
    assert code == "MalformedPolicyDocumentException" and "kms:NoSuchKey" in message
    key = root.create_key()["KeyMetadata"]["KeyId"]
    code, message = _error(lambda: root.put_key_policy(KeyId=key, PolicyName="default", Policy=text))
    assert code == "MalformedPolicyDocumentException" and "kms:NoSuchKey" in message


def test_grant_escalation_is_refused(endpoint: Endpoint) -> None:
    # https://docs.aws.amazon.com/kms/latest/developerguide/create-grant-overview.html#grant-creategrant
    # and grant-delete.html (RetireGrant through a grant retires that grant only).
    role = f"arn:aws:iam::{ACCOUNT}:role/AuthzGrantee"
    other = f"arn:aws:iam::{ACCOUNT}:role/AuthzOther"
    root, app = endpoint.client(), _caller(endpoint, role)
    key = root.create_key()["KeyMetadata"]["KeyId"]
    root.create_grant(KeyId=key, GranteePrincipal=role, Operations=["Decrypt", "CreateGrant", "RetireGrant"],
                      Constraints={"EncryptionContextSubset": {"dept": "eng"}})
    victim = root.create_grant(KeyId=key, GranteePrincipal=other, Operations=["Encrypt"])
    _denied(lambda: app.create_grant(KeyId=key, GranteePrincipal=other, Operations=["Encrypt"],
                                     Constraints={"EncryptionContextSubset": {"dept": "eng"}}))
    _denied(lambda: app.create_grant(KeyId=key, GranteePrincipal=other, Operations=["Decrypt"]))
    app.create_grant(KeyId=key, GranteePrincipal=other, Operations=["Decrypt"],
                     Constraints={"EncryptionContextSubset": {"dept": "eng", "team": "a"}})
    _denied(lambda: app.retire_grant(KeyId=key, GrantId=victim["GrantId"]))
    code, _ = _error(lambda: root.create_grant(KeyId=key, GranteePrincipal=other, Operations=["Sign"]))
    assert code == "ValidationException"


def test_transport_and_identity_keys_come_from_the_request(endpoint: Endpoint) -> None:
    # aws:SecureTransport (false over this plain-HTTP endpoint), aws:SourceIp (loopback) and
    # aws:userid (what STS GetCallerIdentity shows), IAM User Guide, global condition keys.
    role = f"arn:aws:iam::{ACCOUNT}:role/AuthzTransport"
    root, app = endpoint.client(), _caller(endpoint, role)
    keys = AccessKeys(endpoint.data_dir)
    created = keys.create(role)["AccessKey"]
    keys.close()
    user_id = endpoint.client("sts", access_key_id=created["AccessKeyId"],
                              secret=created["SecretAccessKey"]).get_caller_identity()["UserId"]
    allow = {"Effect": "Allow", "Principal": {"AWS": role}, "Action": ["kms:Encrypt", "kms:DescribeKey"],
             "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"},
                                            "StringEquals": {"aws:userid": user_id}}}
    key = root.create_key(Policy=_policy(allow, {
        "Effect": "Deny", "Principal": {"AWS": role}, "Action": "kms:Encrypt", "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}))["KeyMetadata"]["KeyId"]
    app.describe_key(KeyId=key)
    _denied(lambda: app.encrypt(KeyId=key, Plaintext=b"x"))


def test_not_principal_account_exempts_only_its_root(endpoint: Endpoint) -> None:
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html
    bob = f"arn:aws:iam::{ACCOUNT}:user/authz-bob"
    alice = f"arn:aws:iam::{ACCOUNT}:user/authz-alice"
    root = endpoint.client()
    key = root.create_key(Policy=_policy(
        {"Effect": "Allow", "Principal": {"AWS": [bob, alice]}, "Action": "kms:DescribeKey", "Resource": "*"},
        {"Effect": "Deny", "NotPrincipal": {"AWS": [bob, ROOT]}, "Action": "kms:DescribeKey", "Resource": "*"}),
        BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]["KeyId"]
    root.describe_key(KeyId=key)
    _caller(endpoint, bob).describe_key(KeyId=key)
    _denied(lambda: _caller(endpoint, alice).describe_key(KeyId=key))
