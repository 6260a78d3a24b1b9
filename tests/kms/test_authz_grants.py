"""Grants cannot be used to escalate, and NotPrincipal/NotAction/NotResource mean what IAM says,
through LocalKMS."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from envelope.errors import KMSError
from envelope.kms import LocalKMS

ACCOUNT = "111122223333"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
APP = f"arn:aws:iam::{ACCOUNT}:role/App"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"


def _code(call: Callable[[], object]) -> str:
    with pytest.raises(KMSError) as exc:
        call()
    return str(exc.value.code)


def _denied(call: Callable[[], object]) -> None:
    assert _code(call) == "AccessDeniedException"


def _grant(kms: LocalKMS, key: str, grantee: str, ops: list[str], **kwargs: Any) -> dict[str, Any]:
    return kms.create_grant(KeyId=key, GranteePrincipal=grantee, Operations=ops, **kwargs)


# --- CreateGrant through a grant ---------------------------------------------------------------

def test_grantee_may_only_delegate_a_subset_of_its_operations(kms: LocalKMS, key_id: str) -> None:
    # https://docs.aws.amazon.com/kms/latest/developerguide/create-grant-overview.html#grant-creategrant
    _grant(kms, key_id, APP, ["Decrypt", "CreateGrant"])
    app = kms.for_principal(APP)
    for escalation in (["Encrypt"], ["Decrypt", "Encrypt"], ["RetireGrant"], ["DescribeKey"],
                       ["GenerateDataKey"]):
        _denied(lambda ops=escalation: app.create_grant(  # type: ignore[misc]  # a default-bound loop value
            KeyId=key_id, GranteePrincipal=BOB, Operations=ops))
    app.create_grant(KeyId=key_id, GranteePrincipal=BOB, Operations=["Decrypt"])
    app.create_grant(KeyId=key_id, GranteePrincipal=BOB, Operations=["Decrypt", "CreateGrant"])
    # An allowed CreateGrant is not remembered as "allowed" for the next, different request.
    _denied(lambda: app.create_grant(KeyId=key_id, GranteePrincipal=BOB, Operations=["Encrypt"]))


@pytest.mark.parametrize(("child", "allowed"), [
    (None, False),                                                              # unconstrained
    ({"EncryptionContextSubset": {}}, False),
    ({"EncryptionContextSubset": {"other": "x"}}, False),
    ({"EncryptionContextSubset": {"dept": "ops"}}, False),
    ({"EncryptionContextSubset": {"dept": "eng"}}, True),                       # equally strict
    ({"EncryptionContextSubset": {"Dept": "eng"}}, True),                       # keys without case
    ({"EncryptionContextSubset": {"dept": "ENG"}}, False),                      # values exactly
    ({"EncryptionContextSubset": {"dept": "eng", "team": "a"}}, True),          # stricter
    ({"EncryptionContextEquals": {"dept": "eng", "team": "a"}}, True),          # stricter
    ({"EncryptionContextEquals": {"team": "a"}}, False),
])
def test_grantee_may_only_delegate_an_equally_strict_constraint(kms: LocalKMS, key_id: str,
                                                                child: dict[str, Any] | None,
                                                                allowed: bool) -> None:
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_GrantConstraints.html: "If a grant with
    # a grant constraint includes the CreateGrant operation, the constraint requires that any grants
    # created with the CreateGrant permission have an equally strict or stricter encryption context
    # constraint."
    _grant(kms, key_id, APP, ["Decrypt", "CreateGrant"], Constraints={"EncryptionContextSubset": {"dept": "eng"}})
    app = kms.for_principal(APP)
    extra = {} if child is None else {"Constraints": child}
    def create() -> object:
        return app.create_grant(KeyId=key_id, GranteePrincipal=BOB, Operations=["Decrypt"], **extra)

    if allowed:
        create()
    else:
        _denied(create)


def test_equals_constraint_may_only_be_delegated_as_the_same_equals(kms: LocalKMS, key_id: str) -> None:
    _grant(kms, key_id, APP, ["Encrypt", "CreateGrant"], Constraints={"EncryptionContextEquals": {"a": "1"}})
    app = kms.for_principal(APP)
    for weaker in ({"EncryptionContextSubset": {"a": "1"}}, {"EncryptionContextEquals": {"a": "1", "b": "2"}}):
        _denied(lambda c=weaker: app.create_grant(  # type: ignore[misc]  # a default-bound loop value
            KeyId=key_id, GranteePrincipal=BOB, Operations=["Encrypt"],
                                                  Constraints=c))
    app.create_grant(KeyId=key_id, GranteePrincipal=BOB, Operations=["Encrypt"],
                     Constraints={"EncryptionContextEquals": {"A": "1"}})


def test_constraint_does_not_apply_to_describe_key(kms: LocalKMS, key_id: str) -> None:
    # "Grants with grant constraints can include the DescribeKey and RetireGrant operations, but the
    # constraint doesn't apply to these operations." (API_CreateGrant.html, Constraints)
    _grant(kms, key_id, APP, ["DescribeKey", "Encrypt"], Constraints={"EncryptionContextSubset": {"a": "1"}})
    app = kms.for_principal(APP)
    app.describe_key(KeyId=key_id)
    _denied(lambda: app.encrypt(KeyId=key_id, Plaintext=b"x"))
    app.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"a": "1", "b": "2"})


def test_key_policy_grant_conditions_see_the_request(kms: LocalKMS) -> None:
    # kms:GrantOperations / kms:GranteePrincipal / kms:GrantConstraintType (grant-authorization.html)
    key = kms.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": APP}, "Action": "kms:CreateGrant", "Resource": "*",
         "Condition": {"ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt", "Encrypt"]},
                       "StringLike": {"kms:GranteePrincipal": f"arn:aws:iam::{ACCOUNT}:user/*"},
                       "StringEquals": {"kms:GrantConstraintType": "EncryptionContextSubset"}}}]}))
    key_id = key["KeyMetadata"]["KeyId"]
    app = kms.for_principal(APP)
    subset = {"EncryptionContextSubset": {"a": "1"}}
    app.create_grant(KeyId=key_id, GranteePrincipal=BOB, Operations=["Decrypt"], Constraints=subset)
    _denied(lambda: app.create_grant(KeyId=key_id, GranteePrincipal=BOB, Operations=["Decrypt"]))
    _denied(lambda: app.create_grant(KeyId=key_id, GranteePrincipal=APP, Operations=["Decrypt"], Constraints=subset))
    _denied(lambda: app.create_grant(KeyId=key_id, GranteePrincipal=BOB, Operations=["Decrypt", "CreateGrant"],
                                     Constraints=subset))


# --- grant operations and key types ------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "usage", "ops", "ok"), [
    ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", ["GenerateDataKeyPair", "ReEncryptFrom", "DescribeKey"], True),
    ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", ["Sign"], False),
    ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", ["GetPublicKey"], False),
    ("HMAC_256", "GENERATE_VERIFY_MAC", ["GenerateMac", "VerifyMac", "CreateGrant"], True),
    ("HMAC_256", "GENERATE_VERIFY_MAC", ["Encrypt"], False),
    ("RSA_2048", "ENCRYPT_DECRYPT", ["Decrypt", "GetPublicKey", "RetireGrant"], True),
    ("RSA_2048", "ENCRYPT_DECRYPT", ["GenerateDataKey"], False),
    ("ECC_NIST_P256", "SIGN_VERIFY", ["Sign", "Verify", "GetPublicKey"], True),
    ("ECC_NIST_P256", "SIGN_VERIFY", ["Decrypt"], False),
    ("ECC_NIST_P256", "KEY_AGREEMENT", ["DeriveSharedSecret", "GetPublicKey", "DescribeKey"], True),
    ("ECC_NIST_P256", "KEY_AGREEMENT", ["Sign"], False),
])
def test_grant_operations_must_suit_the_key(kms: LocalKMS, spec: str, usage: str, ops: list[str], ok: bool) -> None:
    # https://docs.aws.amazon.com/kms/latest/developerguide/grants.html#terms-grant-operations: "If
    # you specify an unsupported operation, the CreateGrant request fails with a ValidationError".
    key = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"]
    if ok:
        _grant(kms, key, APP, ops)
    else:
        assert _code(lambda: _grant(kms, key, APP, ops)) == "ValidationException"


def test_constraints_only_on_symmetric_encryption_keys(kms: LocalKMS) -> None:
    # "You cannot use an encryption context grant constraint for cryptographic operations with
    # asymmetric KMS keys or HMAC KMS keys." (API_CreateGrant.html, Constraints)
    key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    assert _code(lambda: _grant(kms, key, APP, ["GenerateMac"],
                                Constraints={"EncryptionContextSubset": {"a": "1"}})) == "ValidationException"


# --- RetireGrant ------------------------------------------------------------------------------------

def test_retire_grant_held_through_a_grant_retires_that_grant_only(kms: LocalKMS, key_id: str) -> None:
    # https://docs.aws.amazon.com/kms/latest/developerguide/grant-delete.html: the grantee may retire
    # the grant if it includes RetireGrant; that is no permission over other grants.
    own = _grant(kms, key_id, APP, ["Decrypt", "RetireGrant"])
    victim = _grant(kms, key_id, BOB, ["Decrypt"])
    app = kms.for_principal(APP)
    _denied(lambda: app.retire_grant(KeyId=key_id, GrantId=victim["GrantId"]))
    _denied(lambda: app.retire_grant(GrantToken=victim["GrantToken"]))
    app.retire_grant(GrantToken=own["GrantToken"])
    assert [g["GrantId"] for g in kms.list_grants(KeyId=key_id)["Grants"]] == [victim["GrantId"]]


def test_who_may_retire_a_grant(kms: LocalKMS, key_id: str) -> None:
    # grant-delete.html: the retiring principal, the grantee if the grant allows RetireGrant, the
    # account that created the grant; kms:RetireGrant in a key policy is not effective.
    grant = _grant(kms, key_id, BOB, ["Decrypt"], RetiringPrincipal=APP)
    _denied(lambda: kms.for_principal(BOB).retire_grant(GrantToken=grant["GrantToken"]))
    kms.for_principal(APP).retire_grant(GrantToken=grant["GrantToken"])
    grant = _grant(kms, key_id, BOB, ["Decrypt"])
    kms.retire_grant(KeyId=key_id, GrantId=grant["GrantId"])  # the account root of the grant's account
    # Key-policy kms:RetireGrant alone does not let ALICE retire; an IAM policy in the key's account does.
    key = kms.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "kms:RetireGrant", "Resource": "*"}]}))
    key2 = key["KeyMetadata"]["KeyId"]
    grant = _grant(kms, key2, BOB, ["Decrypt"])
    alice = kms.for_principal(ALICE)
    _denied(lambda: alice.retire_grant(KeyId=key2, GrantId=grant["GrantId"]))
    kms.principals.create(ALICE)
    kms.principals.put_identity_policy(ALICE, "retire", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:RetireGrant", "Resource": "*"}]}))
    alice.retire_grant(KeyId=key2, GrantId=grant["GrantId"])


def test_identity_deny_stops_even_the_retiring_principal(kms: LocalKMS, key_id: str) -> None:
    # grant-delete.html: "To deny permission to retire a grant, you can use a Deny action with the
    # kms:RetireGrant permission in your IAM policies."
    grant = _grant(kms, key_id, BOB, ["Decrypt"], RetiringPrincipal=APP)
    kms.principals.create(APP)
    kms.principals.put_identity_policy(APP, "no-retire", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "kms:RetireGrant", "Resource": "*"}]}))
    _denied(lambda: kms.for_principal(APP).retire_grant(GrantToken=grant["GrantToken"]))


# --- NotPrincipal, NotAction, NotResource -------------------------------------------------------------

def _with_deny(kms: LocalKMS, deny: dict[str, Any]) -> str:
    users = {"Effect": "Allow", "Principal": {"AWS": [BOB, ALICE]}, "Action": "kms:*", "Resource": "*"}
    root = {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}
    text = json.dumps({"Version": "2012-10-17", "Statement": [root, users, {"Effect": "Deny", **deny}]})
    return str(kms.create_key(Policy=text, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]["KeyId"])


def test_not_principal_account_exempts_only_the_account_principal(kms: LocalKMS) -> None:
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html
    key = _with_deny(kms, {"NotPrincipal": {"AWS": ROOT}, "Action": "kms:DescribeKey", "Resource": "*"})
    kms.describe_key(KeyId=key)
    _denied(lambda: kms.for_principal(BOB).describe_key(KeyId=key))
    _denied(lambda: kms.for_principal(ALICE).describe_key(KeyId=key))


def test_not_principal_user_and_account(kms: LocalKMS) -> None:
    # The [Bob, account] example: Bob and the account root are exempt, every other principal is denied.
    key = _with_deny(kms, {"NotPrincipal": {"AWS": [BOB, ROOT]}, "Action": "kms:DescribeKey", "Resource": "*"})
    kms.describe_key(KeyId=key)
    kms.for_principal(BOB).describe_key(KeyId=key)
    _denied(lambda: kms.for_principal(ALICE).describe_key(KeyId=key))


def test_not_principal_without_the_account_does_not_exempt_the_user(kms: LocalKMS) -> None:
    # "When you use NotPrincipal, you must also specify the account ARN of the not-denied principal.
    # Otherwise, the policy might deny access to the entire account containing the principal."
    key = _with_deny(kms, {"NotPrincipal": {"AWS": BOB}, "Action": "kms:DescribeKey", "Resource": "*"})
    _denied(lambda: kms.for_principal(BOB).describe_key(KeyId=key))


def test_not_action_and_not_resource(kms: LocalKMS) -> None:
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html and
    # reference_policies_elements_notresource.html: the statement applies to everything not listed.
    key = _with_deny(kms, {"Principal": {"AWS": BOB}, "NotAction": ["kms:Describe*", "kms:Encrypt"],
                           "Resource": "*"})
    bob = kms.for_principal(BOB)
    bob.describe_key(KeyId=key)
    bob.encrypt(KeyId=key, Plaintext=b"x")
    _denied(lambda: bob.generate_data_key(KeyId=key, NumberOfBytes=32))
    other = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000"
    key = _with_deny(kms, {"Principal": {"AWS": BOB}, "Action": "kms:DescribeKey", "NotResource": other})
    _denied(lambda: bob.describe_key(KeyId=key))
    key = _with_deny(kms, {"Principal": {"AWS": BOB}, "Action": "kms:DescribeKey",
                           "NotResource": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/*"})
    bob.describe_key(KeyId=key)


def test_retiring_principal_in_another_account(kms: LocalKMS, key_id: str) -> None:
    # "Cross-account use: Yes. You can retire a grant on a KMS key in a different AWS account."
    # (https://docs.aws.amazon.com/kms/latest/APIReference/API_RetireGrant.html); the grant token
    # names the key.
    other_root = "arn:aws:iam::444455556666:root"
    outsider = kms.for_principal("arn:aws:iam::444455556666:user/carol")
    grant = _grant(kms, key_id, BOB, ["Decrypt"], RetiringPrincipal=other_root)
    _denied(lambda: outsider.retire_grant(GrantToken=grant["GrantToken"]))
    kms.for_principal(other_root).retire_grant(GrantToken=grant["GrantToken"])
    assert kms.list_grants(KeyId=key_id)["Grants"] == []


def test_key_agreement_through_a_grant(kms: LocalKMS) -> None:
    # DeriveSharedSecret is a grant operation of key agreement keys (grants.html#terms-grant-operations).
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["KeyId"]
    peer = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    app = kms.for_principal(APP)
    _denied(lambda: app.derive_shared_secret(KeyId=key, KeyAgreementAlgorithm="ECDH", PublicKey=peer))
    _grant(kms, key, APP, ["DeriveSharedSecret"])
    assert app.derive_shared_secret(KeyId=key, KeyAgreementAlgorithm="ECDH", PublicKey=peer)["SharedSecret"]
