"""The KMS authorization engine: key policies, root delegation, cross-account, grants, conditions."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Mapping, Sequence

import pytest

from envelope.errors import KMSError
from envelope.kms.authz.policy import (
    AuthorizationRequest,
    Decision,
    Grant,
    access_denied,
    authorize,
    default_key_policy,
    parse_policy,
    would_lock_out,
)

A = "111122223333"  # the key's account
B = "444455556666"  # another account
KEY = f"arn:aws:kms:us-east-1:{A}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY = f"arn:aws:kms:us-east-1:{A}:key/ffffffff-12ab-34cd-56ef-1234567890ab"
ROOT_A = f"arn:aws:iam::{A}:root"
ROOT_B = f"arn:aws:iam::{B}:root"
APP = f"arn:aws:iam::{A}:role/App"
ALICE = f"arn:aws:iam::{A}:user/Alice"
PARTNER = f"arn:aws:iam::{B}:role/Partner"


def _key_policy(*statements: Mapping[str, object]) -> dict[str, object]:
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))


def _identity(*statements: Mapping[str, object]) -> dict[str, object]:
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}), identity=True)


def _allow(principal: object, action: object = "kms:*", **extra: object) -> dict[str, object]:
    return {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": "*", **extra}


def _deny(principal: object, action: object = "kms:*", **extra: object) -> dict[str, object]:
    return {"Effect": "Deny", "Principal": principal, "Action": action, "Resource": "*", **extra}


def _request(principal: str, action: str = "kms:Decrypt", *, key: str = KEY,
             context: Mapping[str, str] | None = None, **kwargs: object) -> AuthorizationRequest:
    return AuthorizationRequest(principal, action, key, A, context, **kwargs)  # type: ignore[arg-type]


def _decide(request: AuthorizationRequest, key_policy: Mapping[str, object] | None,
            identity: Sequence[Mapping[str, object]] = (), grants: Sequence[Grant] = ()) -> Decision:
    return authorize(request, key_policy, identity, grants)


DEFAULT = parse_policy(default_key_policy(A))
IDENTITY_ALLOW_ALL = _identity({"Sid": "AllowKMS", "Effect": "Allow", "Action": "kms:*", "Resource": "*"})
IDENTITY_DECRYPT_KEY = _identity({"Sid": "DecryptThisKey", "Effect": "Allow", "Action": "kms:Decrypt",
                                  "Resource": KEY})
KEY_USERS = _key_policy(
    {"Sid": "Root", **_allow({"AWS": ROOT_A})},
    {"Sid": "Users", **_allow({"AWS": [APP]}, ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"])},
)


# --- key policy only, root delegation, identity policies --------------------------------------

@pytest.mark.parametrize(("principal", "action", "key_policy", "identity", "allowed"), [
    (ROOT_A, "kms:Decrypt", DEFAULT, (), True),
    (ROOT_A, "kms:PutKeyPolicy", DEFAULT, (), True),
    (A, "kms:Decrypt", DEFAULT, (), True),
    (APP, "kms:Decrypt", DEFAULT, (), False),
    (APP, "kms:Decrypt", DEFAULT, (IDENTITY_ALLOW_ALL,), True),
    (APP, "kms:Decrypt", DEFAULT, (IDENTITY_DECRYPT_KEY,), True),
    (APP, "kms:Encrypt", DEFAULT, (IDENTITY_DECRYPT_KEY,), False),
    (APP, "kms:GenerateDataKeyWithoutPlaintext", KEY_USERS, (), True),
    (APP, "kms:ScheduleKeyDeletion", KEY_USERS, (), False),
    (APP, "kms:ScheduleKeyDeletion", KEY_USERS, (IDENTITY_ALLOW_ALL,), True),
    (ALICE, "kms:Decrypt", KEY_USERS, (), False),
    (f"arn:aws:sts::{A}:assumed-role/App/session-1", "kms:Encrypt", KEY_USERS, (), True),
    (APP, "kms:Decrypt", _key_policy(_allow("*", "kms:Decrypt")), (), True),
    (APP, "kms:Decrypt", _key_policy(_allow({"AWS": f"arn:aws:iam::{A}:role/*"}, "kms:Decrypt")), (), True),
    (ALICE, "kms:Decrypt", _key_policy(_allow({"AWS": f"arn:aws:iam::{A}:role/*"}, "kms:Decrypt")), (), False),
    (APP, "kms:GetKeyPolicy", _key_policy(_allow({"AWS": APP}, "kms:Get*")), (), True),
    (APP, "kms:PutKeyPolicy", _key_policy(_allow({"AWS": APP}, "kms:Get*")), (), False),
    (APP, "kms:PutKeyPolicy", _key_policy({"Effect": "Allow", "Principal": {"AWS": APP},
                                           "NotAction": "kms:Decrypt", "Resource": "*"}), (), True),
    (APP, "kms:Decrypt", _key_policy({"Effect": "Allow", "Principal": {"AWS": APP},
                                      "NotAction": "kms:Decrypt", "Resource": "*"}), (), False),
    (ALICE, "kms:Decrypt", _key_policy({"Effect": "Allow", "NotPrincipal": {"AWS": APP},
                                        "Action": "kms:*", "Resource": "*"}), (), True),
    (APP, "kms:Decrypt", _key_policy({"Effect": "Allow", "NotPrincipal": {"AWS": APP},
                                      "Action": "kms:*", "Resource": "*"}), (), False),
    (ROOT_A, "kms:Decrypt", _key_policy(_allow({"AWS": APP})), (), False),
    ("cloudtrail.amazonaws.com", "kms:GenerateDataKey",
     _key_policy(_allow({"Service": "cloudtrail.amazonaws.com"}, "kms:GenerateDataKey")), (), True),
], ids=[
    "root-default", "root-admin", "bare-account-id", "role-default-no-iam", "role-default-iam-all",
    "role-default-iam-key-arn", "role-iam-wrong-action", "key-user-wildcard-action", "key-user-not-admin",
    "key-user-admin-via-iam", "unlisted-user", "assumed-role-session", "principal-star",
    "principal-pattern", "principal-pattern-miss", "get-star", "get-star-miss", "notaction-allows",
    "notaction-excludes", "notprincipal-allows", "notprincipal-excludes", "root-not-implied",
    "service-principal",
])
def test_key_policy_and_identity(principal: str, action: str, key_policy: Mapping[str, object],
                                 identity: Sequence[Mapping[str, object]], allowed: bool) -> None:
    decision = _decide(_request(principal, action), key_policy, identity)
    assert decision.allowed is allowed, decision.reason


def test_identity_resource_must_match_key() -> None:
    other = _identity({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": OTHER_KEY})
    pattern = _identity({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": f"arn:aws:kms:*:{A}:key/*"})
    not_resource = _identity({"Effect": "Allow", "Action": "kms:Decrypt", "NotResource": KEY})
    assert not _decide(_request(APP), DEFAULT, [other]).allowed
    assert _decide(_request(APP), DEFAULT, [pattern]).allowed
    assert not _decide(_request(APP), DEFAULT, [not_resource]).allowed
    assert _decide(_request(APP, key=OTHER_KEY), DEFAULT, [not_resource]).allowed


def test_account_level_actions() -> None:
    create = _request(APP, "kms:CreateKey", key="*")
    assert _decide(_request(ROOT_A, "kms:CreateKey", key="*"), None).allowed
    assert not _decide(create, None).allowed
    assert _decide(create, None, [IDENTITY_ALLOW_ALL]).allowed
    assert not _decide(create, None, [IDENTITY_DECRYPT_KEY]).allowed  # resource is a key ARN, not "*"
    assert not _decide(_request(PARTNER, "kms:CreateKey", key="*"), None, [IDENTITY_ALLOW_ALL]).allowed
    denied = _identity({"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
                       {"Sid": "NoCreate", "Effect": "Deny", "Action": "kms:CreateKey", "Resource": "*"})
    decision = _decide(create, None, [denied])
    assert not decision.allowed and "NoCreate" in decision.reason


# --- cross-account ------------------------------------------------------------------------------

CROSS_ROOT = _key_policy({"Sid": "Root", **_allow({"AWS": ROOT_A})},
                         {"Sid": "PartnerAccount", **_allow({"AWS": B}, "kms:Decrypt")})
CROSS_ROLE = _key_policy({"Sid": "Root", **_allow({"AWS": ROOT_A})},
                         {"Sid": "PartnerRole", **_allow({"AWS": PARTNER}, "kms:Decrypt")})


@pytest.mark.parametrize(("principal", "key_policy", "identity", "allowed"), [
    (PARTNER, DEFAULT, (IDENTITY_ALLOW_ALL,), False),
    (PARTNER, CROSS_ROOT, (), False),
    (PARTNER, CROSS_ROOT, (IDENTITY_ALLOW_ALL,), True),
    (PARTNER, CROSS_ROOT, (IDENTITY_DECRYPT_KEY,), True),
    (PARTNER, CROSS_ROLE, (), False),
    (PARTNER, CROSS_ROLE, (IDENTITY_ALLOW_ALL,), True),
    (ROOT_B, CROSS_ROOT, (), True),
    (ROOT_B, CROSS_ROLE, (), False),
    (PARTNER, _key_policy(_allow("*", "kms:Decrypt")), (), False),
    (PARTNER, _key_policy(_allow("*", "kms:Decrypt")), (IDENTITY_ALLOW_ALL,), True),
], ids=["not-in-key-policy", "account-no-iam", "account-iam", "account-iam-key-arn", "role-no-iam",
        "role-iam", "other-root", "other-root-role-only", "star-no-iam", "star-iam"])
def test_cross_account(principal: str, key_policy: Mapping[str, object],
                       identity: Sequence[Mapping[str, object]], allowed: bool) -> None:
    decision = _decide(_request(principal), key_policy, identity)
    assert decision.allowed is allowed, decision.reason


def test_cross_account_action_outside_key_policy() -> None:
    assert not _decide(_request(PARTNER, "kms:Encrypt"), CROSS_ROOT, [IDENTITY_ALLOW_ALL]).allowed


# --- grants ---------------------------------------------------------------------------------------

def _grant(grantee: str = APP, operations: tuple[str, ...] = ("Decrypt", "GenerateDataKey"),
           constraints: Mapping[str, Mapping[str, str]] | None = None, key: str = KEY) -> Grant:
    return Grant("g-1", key, grantee, None, operations, constraints)


@pytest.mark.parametrize(("grant", "principal", "action", "context", "allowed"), [
    (_grant(), APP, "kms:Decrypt", None, True),
    (_grant(), APP, "kms:Encrypt", None, False),
    (_grant(), ALICE, "kms:Decrypt", None, False),
    (_grant(key=OTHER_KEY), APP, "kms:Decrypt", None, False),
    (_grant(PARTNER), PARTNER, "kms:Decrypt", None, True),
    (_grant(constraints={"EncryptionContextEquals": {"dept": "eng"}}), APP, "kms:Decrypt", {"dept": "eng"}, True),
    (_grant(constraints={"EncryptionContextEquals": {"dept": "eng"}}), APP, "kms:Decrypt",
     {"dept": "eng", "x": "y"}, False),
    (_grant(constraints={"EncryptionContextEquals": {"dept": "eng"}}), APP, "kms:Decrypt", {"dept": "ENG"}, False),
    (_grant(constraints={"EncryptionContextEquals": {"dept": "eng"}}), APP, "kms:Decrypt", {"Dept": "eng"}, True),
    (_grant(constraints={"EncryptionContextEquals": {"dept": "eng"}}), APP, "kms:Decrypt", None, False),
    (_grant(constraints={"EncryptionContextSubset": {"dept": "eng"}}), APP, "kms:Decrypt",
     {"dept": "eng", "x": "y"}, True),
    (_grant(constraints={"EncryptionContextSubset": {"dept": "eng"}}), APP, "kms:Decrypt", {"x": "y"}, False),
    (_grant(constraints={"EncryptionContextSubset": {}}), APP, "kms:Decrypt", None, True),
    (_grant(operations=("DescribeKey",), constraints={"EncryptionContextEquals": {"a": "b"}}), APP,
     "kms:DescribeKey", None, True),
], ids=["operation", "other-operation", "other-grantee", "other-key", "cross-account-grantee",
        "equals", "equals-extra-pair", "equals-value-case", "equals-key-case", "equals-no-context",
        "subset", "subset-missing", "subset-empty", "constraints-skip-non-crypto"])
def test_grants(grant: Grant, principal: str, action: str, context: Mapping[str, str] | None,
                allowed: bool) -> None:
    decision = _decide(_request(principal, action, context=context), DEFAULT, (), [grant])
    assert decision.allowed is allowed, decision.reason
    if allowed:
        assert decision.basis == "grant" and "g-1" in decision.reason


# --- explicit deny ------------------------------------------------------------------------------

def test_explicit_deny_in_key_policy_beats_everything() -> None:
    policy = _key_policy({"Sid": "Root", **_allow({"AWS": ROOT_A})},
                         {"Sid": "NoDecrypt", **_deny("*", "kms:Decrypt")})
    for principal in (ROOT_A, APP):
        decision = _decide(_request(principal), policy, [IDENTITY_ALLOW_ALL], [_grant()])
        assert not decision.allowed and decision.basis == "explicit-deny-key-policy"
        assert "NoDecrypt" in decision.reason
    assert _decide(_request(APP, "kms:Encrypt"), policy, [IDENTITY_ALLOW_ALL]).allowed


def test_explicit_deny_in_identity_policy_beats_key_policy_and_grant() -> None:
    identity = _identity({"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
                         {"Sid": "NoDecrypt", "Effect": "Deny", "Action": "kms:Decrypt", "Resource": KEY})
    decision = _decide(_request(APP), KEY_USERS, [identity], [_grant()])
    assert not decision.allowed and decision.basis == "explicit-deny-identity-policy"
    assert _decide(_request(APP, key=OTHER_KEY), DEFAULT, [identity]).allowed


def test_conditional_deny_only_when_condition_holds() -> None:
    policy = _key_policy(_allow({"AWS": APP}),
                         _deny("*", "kms:Decrypt", Condition={"StringNotEquals": {"kms:CallerAccount": A}}))
    assert _decide(_request(APP), policy).allowed
    assert not _decide(_request(PARTNER), policy, [IDENTITY_ALLOW_ALL]).allowed


# --- conditions ---------------------------------------------------------------------------------

def _with(condition: Mapping[str, object]) -> dict[str, object]:
    return _key_policy(_allow({"AWS": APP}, "kms:*", Condition=condition))


CONDITION_CASES: list[tuple[dict[str, object], dict[str, str] | None, dict[str, object], bool]] = [
    ({"StringEquals": {"kms:EncryptionContext:dept": "eng"}}, {"dept": "eng"}, {}, True),
    ({"StringEquals": {"kms:EncryptionContext:dept": "eng"}}, {"dept": "ops"}, {}, False),
    ({"StringEquals": {"kms:EncryptionContext:dept": "eng"}}, None, {}, False),
    ({"StringEquals": {"kms:EncryptionContext:dept": ["eng", "ops"]}}, {"dept": "ops"}, {}, True),
    ({"StringEquals": {"kms:encryptioncontext:Dept": "eng"}}, {"dept": "eng"}, {}, True),
    ({"StringNotEquals": {"kms:EncryptionContext:dept": "eng"}}, {"dept": "ops"}, {}, True),
    ({"StringNotEquals": {"kms:EncryptionContext:dept": "eng"}}, {"dept": "eng"}, {}, False),
    ({"StringNotEquals": {"kms:EncryptionContext:dept": "eng"}}, None, {}, True),
    ({"StringLike": {"kms:EncryptionContext:path": "/data/*"}}, {"path": "/data/x/y"}, {}, True),
    ({"StringLike": {"kms:EncryptionContext:path": "/data/?"}}, {"path": "/data/xy"}, {}, False),
    ({"StringNotLike": {"kms:EncryptionContext:path": "/data/*"}}, {"path": "/tmp/x"}, {}, True),
    ({"StringNotLike": {"kms:EncryptionContext:path": "/data/*"}}, {"path": "/data/x"}, {}, False),
    ({"StringEqualsIgnoreCase": {"kms:EncryptionContext:dept": "ENG"}}, {"dept": "eng"}, {}, True),
    ({"StringEqualsIgnoreCase": {"kms:EncryptionContext:dept": "ENG"}}, {"dept": "ops"}, {}, False),
    ({"StringEqualsIfExists": {"kms:EncryptionContext:dept": "eng"}}, None, {}, True),
    ({"StringEqualsIfExists": {"kms:EncryptionContext:dept": "eng"}}, {"dept": "ops"}, {}, False),
    ({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["a", "b"]}}, {"a": "1"}, {}, True),
    ({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["a", "b"]}}, {"a": "1", "c": "2"}, {}, False),
    ({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["a"]}}, None, {}, True),
    ({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "a"}}, {"a": "1", "c": "2"}, {}, True),
    ({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "a"}}, {"c": "2"}, {}, False),
    ({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "a"}}, None, {}, False),
    ({"ForAllValues:StringNotEquals": {"kms:EncryptionContextKeys": "secret"}}, {"a": "1"}, {}, True),
    ({"ForAllValues:StringNotEquals": {"kms:EncryptionContextKeys": "secret"}}, {"secret": "1"}, {}, False),
    ({"ForAnyValue:StringLike": {"kms:GrantOperations": "Decrypt*"}}, None,
     {"kms:GrantOperations": ["Encrypt", "Decrypt"]}, True),
    ({"ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt", "Encrypt"]}}, None,
     {"kms:GrantOperations": ["Decrypt", "RetireGrant"]}, False),
    ({"StringEquals": {"kms:CallerAccount": A}}, None, {}, True),
    ({"StringEquals": {"kms:CallerAccount": B}}, None, {}, False),
    ({"StringEquals": {"aws:PrincipalArn": APP}}, None, {}, True),
    ({"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}}, None, {"via": "s3.us-east-1.amazonaws.com"}, True),
    ({"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}}, None, {}, False),
    ({"Bool": {"kms:GrantIsForAWSResource": True}}, None, {"kms:GrantIsForAWSResource": True}, True),
    ({"Bool": {"kms:GrantIsForAWSResource": "true"}}, None, {"kms:GrantIsForAWSResource": False}, False),
    ({"Bool": {"kms:GrantIsForAWSResource": "true"}}, None, {}, False),
    ({"Null": {"kms:EncryptionContextKeys": "false"}}, {"a": "1"}, {}, True),
    ({"Null": {"kms:EncryptionContextKeys": "false"}}, None, {}, False),
    ({"Null": {"kms:ViaService": "true"}}, None, {}, True),
    ({"StringEquals": {"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}}, None,
     {"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}, True),
    ({"StringEquals": {"kms:RequestAlias": "alias/app"}}, None, {"kms:RequestAlias": "alias/other"}, False),
    ({"NumericLessThanEquals": {"kms:RotationPeriodInDays": 90}}, None, {"kms:RotationPeriodInDays": 90}, True),
    ({"NumericLessThanEquals": {"kms:RotationPeriodInDays": 90}}, None, {"kms:RotationPeriodInDays": 365}, False),
    ({"StringEquals": {"kms:EncryptionContext:dept": "eng", "kms:CallerAccount": B}}, {"dept": "eng"}, {}, False),
]


@pytest.mark.parametrize(("condition", "context", "extra", "allowed"), CONDITION_CASES,
                         ids=[f"{i}-{next(iter(c[0]))}" for i, c in enumerate(CONDITION_CASES)])
def test_condition_operators(condition: Mapping[str, object], context: Mapping[str, str] | None,
                             extra: Mapping[str, object], allowed: bool) -> None:
    extra = dict(extra)
    via = extra.pop("via", None)
    request = _request(APP, context=context, via_service=via, extra_conditions=extra)
    decision = _decide(request, _with(condition))
    assert decision.allowed is allowed, decision.reason


def test_conditions_in_identity_policies() -> None:
    identity = _identity({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
                          "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "t1"}}})
    assert _decide(_request(APP, context={"tenant": "t1"}), DEFAULT, [identity]).allowed
    assert not _decide(_request(APP, context={"tenant": "t2"}), DEFAULT, [identity]).allowed


# --- parsing --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "not json",
    "[]",
    json.dumps({"Version": "2012-10-17"}),
    json.dumps({"Version": "2099-01-01", "Statement": [_allow("*")]}),
    json.dumps({"Statement": []}),
    json.dumps({"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "kms:*", "Resource": "*"}]}),
    json.dumps({"Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}),
    json.dumps({"Statement": [{"Effect": "Allow", "Principal": "someone", "Action": "kms:*", "Resource": "*"}]}),
    json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"Nobody": "x"}, "Action": "kms:*"}]}),
    json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Resource": "*"}]}),
    json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "NotAction": "kms:X"}]}),
    json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": 7, "Resource": "*"}]}),
    json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "decrypt", "Resource": "*"}]}),
    json.dumps({"Statement": [_allow("*", Condition={"StringSortOf": {"kms:CallerAccount": A}})]}),
    json.dumps({"Statement": [_allow("*", Condition={"StringEquals": "x"})]}),
    json.dumps({"Statement": [_allow("*", Condition={"StringEquals": {"kms:CallerAccount": {"a": 1}}})]}),
    json.dumps({"Statement": [_allow("*", Condition={"Bool": {"kms:GrantIsForAWSResource": "maybe"}})]}),
    json.dumps({"Statement": [_allow("*", Extra=1)]}),
    json.dumps({"Statement": [_allow("*")], "Other": 1}),
    json.dumps({"Statement": [_allow("*")], "Pad": "x" * 33000}),
], ids=["not-json", "not-object", "no-statement", "bad-version", "empty-statement", "bad-effect",
        "no-principal", "bad-principal-string", "bad-principal-kind", "no-action", "action-and-notaction",
        "action-type", "action-shape", "unknown-operator", "condition-shape", "condition-value",
        "bool-value", "unknown-statement-key", "unknown-top-key", "too-large"])
def test_parse_rejects_malformed(text: str) -> None:
    with pytest.raises(KMSError) as info:
        parse_policy(text)
    assert info.value.code == "MalformedPolicyDocumentException"


def test_identity_policy_rejects_principal() -> None:
    with pytest.raises(KMSError):
        parse_policy(json.dumps({"Statement": [_allow("*")]}), identity=True)
    with pytest.raises(KMSError):  # identity statements need a Resource
        parse_policy(json.dumps({"Statement": [{"Effect": "Allow", "Action": "kms:*"}]}), identity=True)


def test_parse_accepts_single_statement_object_and_is_read_only() -> None:
    doc = parse_policy(json.dumps({"Statement": _allow({"AWS": APP}, ["kms:Decrypt"])}))
    with pytest.raises(TypeError):
        doc["Statement"] = ()
    statement = doc["Statement"]
    assert isinstance(statement, Mapping)
    with pytest.raises(TypeError):
        statement["Effect"] = "Deny"  # type: ignore[index]
    assert json.loads(json.dumps(doc))["Statement"]["Action"] == ["kms:Decrypt"]
    for clone in (copy.copy(doc), copy.deepcopy(doc), pickle.loads(pickle.dumps(doc))):
        clone["Id"] = "mutable copy"
        assert clone["Id"] == "mutable copy"
    assert _decide(_request(APP), doc).allowed


def test_plain_mappings_are_evaluated_and_not_cached_stale() -> None:
    policy: dict[str, object] = json.loads(default_key_policy(A))
    assert _decide(_request(ROOT_A), policy).allowed
    policy["Statement"][0]["Principal"] = {"AWS": APP}  # type: ignore[index]
    assert not _decide(_request(ROOT_A), policy).allowed
    assert _decide(_request(APP), policy).allowed


def test_default_key_policy_shape() -> None:
    doc = json.loads(default_key_policy(A))
    assert doc["Statement"] == [{"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                                 "Principal": {"AWS": ROOT_A}, "Action": "kms:*", "Resource": "*"}]
    with pytest.raises(ValueError):
        default_key_policy("not-an-account")


# --- lockout check and AccessDenied -----------------------------------------------------------------

def test_would_lock_out() -> None:
    assert not would_lock_out(DEFAULT, ROOT_A, [])
    assert not would_lock_out(DEFAULT, APP, [IDENTITY_ALLOW_ALL])
    assert would_lock_out(DEFAULT, APP, [])
    assert would_lock_out(KEY_USERS, APP, [])  # App may use the key but not manage it
    users_only = _key_policy(_allow({"AWS": APP}, ["kms:Encrypt", "kms:Decrypt"]))
    assert would_lock_out(users_only, ROOT_A, [])
    admin = _key_policy(_allow({"AWS": APP}, "kms:PutKeyPolicy"))
    assert not would_lock_out(admin, APP, [], key_arn=KEY, key_account=A)
    assert would_lock_out(_key_policy(_allow({"AWS": ROOT_A}), _deny({"AWS": ROOT_A}, "kms:PutKeyPolicy")),
                          ROOT_A, [])
    # A Resource naming the key: fine without a key ARN, and with the right one; not with another.
    this_key = _key_policy({"Effect": "Allow", "Principal": {"AWS": APP}, "Action": "kms:*", "Resource": KEY})
    assert not would_lock_out(this_key, APP, [])
    assert not would_lock_out(this_key, APP, [], key_arn=KEY)
    assert would_lock_out(this_key, APP, [], key_arn=OTHER_KEY)
    key_scoped_iam = _identity({"Effect": "Allow", "Action": "kms:PutKeyPolicy", "Resource": KEY})
    assert not would_lock_out(DEFAULT, APP, [key_scoped_iam])


@pytest.mark.parametrize(("key_policy", "identity", "phrase"), [
    (DEFAULT, (), "no identity-based policy allows the kms:Decrypt action"),
    (_key_policy(_allow({"AWS": ALICE})), (), "no resource-based policy allows the kms:Decrypt action"),
    (_key_policy(_allow({"AWS": APP}), _deny("*", "kms:Decrypt")), (), "explicit deny in a resource-based policy"),
    (DEFAULT, (_identity({"Effect": "Deny", "Action": "kms:*", "Resource": "*"}),),
     "explicit deny in an identity-based policy"),
], ids=["no-iam", "no-key-policy", "key-policy-deny", "identity-deny"])
def test_access_denied_names_principal_action_and_key(key_policy: Mapping[str, object],
                                                      identity: Sequence[Mapping[str, object]],
                                                      phrase: str) -> None:
    request = _request(APP)
    decision = _decide(request, key_policy, identity)
    assert not decision.allowed
    error = access_denied(request, decision)
    assert isinstance(error, KMSError) and error.code == "AccessDeniedException"
    assert error.response["Error"]["Code"] == "AccessDeniedException"
    message = str(error)
    assert APP in message and "kms:Decrypt" in message and KEY in message and phrase in message


def test_a_policy_is_checked_for_its_role() -> None:
    key_policy = parse_policy(json.dumps({"Statement": [_allow({"AWS": APP})]}))
    with pytest.raises(KMSError):  # a key policy (with Principal) cannot serve as an identity policy
        _decide(_request(APP), DEFAULT, [key_policy])
    with pytest.raises(KMSError):  # and an identity policy (no Principal) cannot be a key policy
        _decide(_request(APP), IDENTITY_ALLOW_ALL, [])
