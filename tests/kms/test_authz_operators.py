"""Condition operators and policy variables in the pure policy engine, one rule per case.

Operators: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
Multivalued keys: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
Variables: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from envelope.errors import KMSError
from envelope.kms.authz.policy import authorize, parse_policy
from envelope.kms.authz.request import AuthorizationRequest, RequestFacts

A = "111122223333"
APP = f"arn:aws:iam::{A}:role/App"
ALICE = f"arn:aws:iam::{A}:user/division/alice"
KEY = f"arn:aws:kms:us-east-1:{A}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class _Key:
    """A symmetric encryption key with some aliases (a `KeyFacts`)."""

    alias_names: tuple[str, ...] = ()
    spec: str = "SYMMETRIC_DEFAULT"
    usage: str = "ENCRYPT_DECRYPT"
    origin: str = "AWS_KMS"
    multi_region: bool = False
    region_type: str | None = None

    def aliases(self) -> tuple[str, ...]:
        return self.alias_names

    def tags(self) -> tuple[tuple[str, str], ...]:
        return ()


def _facts(**kwargs: Any) -> RequestFacts:
    key = _Key(tuple(kwargs.pop("aliases", ())))
    base: dict[str, Any] = {"params": {}, "key": key, "region": "us-east-1", "now": NOW,
                            "source_ip": "192.0.2.10", "user_agent": "Boto3/1.0 test"}
    base.update(kwargs)
    return RequestFacts(**base)


def _allowed(condition: Mapping[str, Any], *, principal: str = APP, version: str = "2012-10-17",
             resource: str = "*", context: Mapping[str, str] | None = None, **facts: Any) -> bool:
    policy = parse_policy(json.dumps({"Version": version, "Statement": [
        {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": resource, "Condition": condition}]}),
        identity=True)
    request = AuthorizationRequest(principal, "kms:Encrypt", KEY, A, context, facts=_facts(**facts))
    return authorize(request, None, (policy,), ()).allowed


@pytest.mark.parametrize(("condition", "expected"), [
    # Date: ISO 8601 or epoch seconds on either side.
    ({"DateGreaterThan": {"aws:CurrentTime": "2026-05-31T00:00:00Z"}}, True),
    ({"DateGreaterThan": {"aws:CurrentTime": "2026-06-02"}}, False),
    ({"DateLessThanEquals": {"aws:EpochTime": "2026-06-01T12:00:00Z"}}, True),
    ({"DateEquals": {"aws:CurrentTime": int(NOW)}}, True),
    ({"DateNotEquals": {"aws:CurrentTime": int(NOW)}}, False),
    ({"NumericGreaterThan": {"aws:EpochTime": int(NOW) - 1}}, True),
    # IP: CIDR ranges, IPv4 and IPv6 kept apart.
    ({"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}, True),
    ({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.0.2.10"]}}, True),
    ({"IpAddress": {"aws:SourceIp": "::/0"}}, False),
    ({"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}}, False),
    # String operators on a value that comes from the transport.
    ({"StringLike": {"aws:UserAgent": "Boto3/*"}}, True),
    ({"StringEqualsIgnoreCase": {"aws:RequestedRegion": "US-EAST-1"}}, True),
    ({"StringNotEquals": {"aws:RequestedRegion": "us-east-1"}}, False),
    # ARN operators match each of the six parts on its own: a wildcard does not span a colon.
    ({"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{A}:role/*"}}, True),
    ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/App"}}, True),
    ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*/App"}}, False),
    ({"ArnLike": {"aws:PrincipalArn": "*"}}, True),
    ({"ArnEquals": {"aws:PrincipalArn": APP}}, True),
    ({"ArnNotLike": {"aws:PrincipalArn": f"arn:aws:iam::{A}:user/*"}}, True),
    ({"StringLike": {"aws:PrincipalArn": "arn:aws:*:role/App"}}, True),
    # Bool and Null.
    ({"Bool": {"aws:SecureTransport": "true"}}, True),
    ({"Bool": {"aws:ViaAWSService": "true"}}, False),
    ({"Null": {"aws:PrincipalTag/team": "true"}}, True),
    ({"Null": {"aws:username": "true"}}, True),  # a role has no aws:username
    ({"StringEquals": {"aws:PrincipalType": "AssumedRole"}}, True),
    # ...IfExists: an absent key passes; a present one is compared.
    ({"StringEqualsIfExists": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}, True),
    ({"StringEqualsIfExists": {"aws:RequestedRegion": "eu-west-1"}}, False),
    ({"NumericLessThanIfExists": {"kms:RotationPeriodInDays": 1}}, True),
    # Absent keys: positive operators fail, negated ones hold.
    ({"StringEquals": {"aws:PrincipalOrgID": "o-123"}}, False),
    ({"StringNotEquals": {"aws:PrincipalOrgID": "o-123"}}, True),
    ({"NumericNotEquals": {"kms:RotationPeriodInDays": 1}}, True),
])
def test_operators(condition: Mapping[str, Any], expected: bool) -> None:
    assert _allowed(condition) is expected


@pytest.mark.parametrize(("condition", "aliases", "expected"), [
    ({"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/a"}}, ["alias/a", "alias/b"], True),
    ({"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/a"}}, [], False),
    ({"ForAllValues:StringEquals": {"kms:ResourceAliases": "alias/a"}}, ["alias/a", "alias/b"], False),
    ({"ForAllValues:StringEquals": {"kms:ResourceAliases": ["alias/a", "alias/b"]}}, ["alias/a", "alias/b"], True),
    ({"ForAllValues:StringEquals": {"kms:ResourceAliases": "alias/a"}}, [], True),       # empty set
    ({"ForAllValues:StringNotLike": {"kms:ResourceAliases": "alias/secret-*"}}, ["alias/a"], True),
    ({"ForAllValues:StringNotLike": {"kms:ResourceAliases": "alias/secret-*"}}, ["alias/a", "alias/secret-x"],
     False),
    ({"ForAnyValue:StringNotEquals": {"kms:ResourceAliases": "alias/a"}}, ["alias/a", "alias/b"], True),
    ({"ForAnyValue:StringNotEquals": {"kms:ResourceAliases": "alias/a"}}, ["alias/a"], False),
    ({"ForAnyValue:StringEqualsIfExists": {"kms:ResourceAliases": "alias/a"}}, [], True),
])
def test_set_operators_on_a_multivalued_key(condition: Mapping[str, Any], aliases: list[str],
                                            expected: bool) -> None:
    assert _allowed(condition, aliases=aliases) is expected


def test_parameter_keys_are_present_only_on_their_operations() -> None:
    # kms:RotationPeriodInDays belongs to EnableKeyRotation: on Encrypt it is absent, its default
    # does not apply (conditions-kms.html, each key's "API operations" column).
    assert _allowed({"Null": {"kms:RotationPeriodInDays": "true"}}, params={"RotationPeriodInDays": 90})
    assert _allowed({"Null": {"kms:GrantOperations": "true"}})
    assert _allowed({"StringEquals": {"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}})  # Encrypt's default


@pytest.mark.parametrize(("value", "context", "expected"), [
    ("${aws:username}", {"owner": "alice"}, True),
    ("${aws:username}", {"owner": "bob"}, False),
    ("team-${aws:username}-*", {"owner": "team-alice-x"}, True),
    ("${aws:PrincipalTag/team, 'none'}", {"owner": "none"}, True),
    ("${aws:PrincipalTag/team}", {"owner": ""}, False),
    ("a${*}b", {"owner": "a*b"}, True),
    ("a${*}b", {"owner": "axxb"}, False),
])
def test_policy_variables(value: str, context: Mapping[str, str], expected: bool) -> None:
    operator = "StringLike" if value.endswith("*") or "${*}" in value else "StringEquals"
    assert _allowed({operator: {"kms:EncryptionContext:owner": value}}, principal=ALICE,
                    context=context) is expected


def test_variables_are_literal_text_before_version_2012_10_17() -> None:
    condition = {"StringEquals": {"kms:EncryptionContext:owner": "${aws:username}"}}
    assert not _allowed(condition, principal=ALICE, version="2008-10-17", context={"owner": "alice"})
    assert _allowed(condition, principal=ALICE, version="2008-10-17", context={"owner": "${aws:username}"})


def test_resource_variables() -> None:
    prefix = f"arn:aws:kms:us-east-1:{A}:key/"
    assert _allowed({"StringEquals": {"aws:RequestedRegion": "us-east-1"}},
                    resource=f"arn:aws:kms:${{aws:RequestedRegion}}:{A}:key/*")
    assert not _allowed({"StringEquals": {"aws:RequestedRegion": "us-east-1"}},
                        resource=prefix + "${aws:PrincipalTag/key}")


@pytest.mark.parametrize("document", [
    {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*",
     "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:*:role/App"}}},
    {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "arn:aws:kms:${aws:NoSuchKey}:*"},
    {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "arn:aws:kms:${aws:TagKeys}:*"},
    {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*",
     "Condition": {"StringEquals": {"aws:username": "${aws:username"}}},
])
def test_bad_variables_are_refused(document: Mapping[str, Any]) -> None:
    text = json.dumps({"Version": "2012-10-17", "Statement": [document]})
    if "${aws:username\"" in text:
        # An unterminated "${" is plain text in IAM: accepted and compared literally.
        parse_policy(text, identity=True)
        return
    with pytest.raises(KMSError) as exc:
        parse_policy(text, identity=True)
    assert exc.value.code == "MalformedPolicyDocumentException"


def test_binary_equals_compares_bytes() -> None:
    # BinaryEquals takes base64 in the policy and compares the key's value byte for byte.
    assert _allowed({"BinaryEquals": {"aws:RequestedRegion": "dXMtZWFzdC0x"}})   # b"us-east-1"
    assert not _allowed({"BinaryEquals": {"aws:RequestedRegion": "dXMtZWFzdC0y"}})


def test_variables_in_arn_values() -> None:
    # An ARN value with a variable is still six parts, each matched on its own.
    assert _allowed({"ArnLike": {"aws:PrincipalArn": "arn:aws:i*::${aws:PrincipalAccount}:role/*"}})
    assert not _allowed({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::${aws:PrincipalAccount}:user/*"}})
    with pytest.raises(KMSError):
        _allowed({"ArnLike": {"aws:PrincipalArn": "arn:aws:*${aws:PrincipalAccount}:role/App"}})


def test_create_grant_parameter_keys() -> None:
    # kms:GrantConstraintSourceArn, kms:GranteeServicePrincipal, kms:GrantConstraintType read
    # CreateGrant's parameters (https://docs.aws.amazon.com/kms/latest/developerguide/grant-authorization.html).
    policy = parse_policy(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:CreateGrant", "Resource": "*", "Condition": {
            "StringEquals": {"kms:GranteeServicePrincipal": "logs.amazonaws.com",
                             "kms:GrantConstraintType": "SourceArn"},
            "ArnLike": {"kms:GrantConstraintSourceArn": "arn:aws:logs:*:111122223333:log-group:*"}}}]}),
        identity=True)

    def allowed(params: dict[str, Any]) -> bool:
        request = AuthorizationRequest(APP, "kms:CreateGrant", KEY, A, facts=_facts(params=params))
        return authorize(request, None, (policy,), ()).allowed

    source = {"SourceArn": f"arn:aws:logs:us-east-1:{A}:log-group:app"}
    assert allowed({"GranteeServicePrincipal": "logs.amazonaws.com", "Constraints": source})
    assert not allowed({"GranteeServicePrincipal": "s3.amazonaws.com", "Constraints": source})
    assert not allowed({"GranteeServicePrincipal": "logs.amazonaws.com"})
