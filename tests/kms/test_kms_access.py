"""Authorization as LocalKMS applies it: principals, identity policies, key policies, grants, limits."""

from __future__ import annotations

import json

import pytest

from envelope.errors import KMSError
from envelope.kms import LocalKMS, ManualClock

ACCOUNT = "111122223333"
APP = f"arn:aws:iam::{ACCOUNT}:role/App"
OTHER = f"arn:aws:iam::{ACCOUNT}:role/Other"


def _allow(actions: list[str], resource: str = "*") -> dict[str, object]:
    return {"Version": "2012-10-17", "Statement": [{"Sid": "s", "Effect": "Allow", "Action": actions,
                                                    "Resource": resource}]}


def _denied(call: object) -> str:
    with pytest.raises(KMSError) as exc:
        call()  # type: ignore[operator]
    assert exc.value.code == "AccessDeniedException"
    return str(exc.value)


def test_identity_policy_through_default_key_policy(kms: LocalKMS, key_id: str) -> None:
    app = kms.for_principal(APP)
    message = _denied(lambda: app.encrypt(KeyId=key_id, Plaintext=b"x"))
    assert APP in message and "kms:Encrypt" in message and key_id in message
    kms.principals.create(APP)
    kms.principals.put_identity_policy(APP, "use", _allow(["kms:Encrypt", "kms:Decrypt"]))
    blob = app.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    assert app.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    _denied(lambda: app.disable_key(KeyId=key_id))
    assert kms.principals.list_identity_policies(APP) == ["use"]
    kms.principals.delete_identity_policy(APP, "use")
    _denied(lambda: app.encrypt(KeyId=key_id, Plaintext=b"x"))


def test_identity_policy_changes_seen_by_other_clients_on_disk(disk_kms: LocalKMS) -> None:
    key_id = disk_kms.create_key()["KeyMetadata"]["KeyId"]
    assert disk_kms.data_dir is not None
    app = LocalKMS(path=disk_kms.data_dir, principal=APP)
    _denied(lambda: app.encrypt(KeyId=key_id, Plaintext=b"x"))
    disk_kms.principals.create(APP)
    disk_kms.principals.put_identity_policy(APP, "use", json.dumps(_allow(["kms:Encrypt"])))
    app.encrypt(KeyId=key_id, Plaintext=b"x")


def test_account_level_actions(kms: LocalKMS) -> None:
    app = kms.for_principal(APP)
    _denied(lambda: app.create_key())
    _denied(lambda: app.list_keys())
    kms.principals.create(APP)
    kms.principals.put_identity_policy(APP, "create", _allow(["kms:CreateKey", "kms:ListKeys"]))
    app.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": APP}, "Action": "kms:*", "Resource": "*"}]}))
    assert len(app.list_keys()["Keys"]) == 1


def test_key_policy_names_a_principal_directly(kms: LocalKMS, key_id: str) -> None:
    kms.put_key_policy(KeyId=key_id, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*",
         "Resource": "*"},
        {"Sid": "app", "Effect": "Allow", "Principal": {"AWS": APP}, "Action": "kms:Encrypt", "Resource": "*",
         "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "a"}}}]}))
    app = kms.for_principal(APP)
    app.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "a"})
    _denied(lambda: app.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "b"}))


def test_explicit_deny_wins(kms: LocalKMS, key_id: str) -> None:
    kms.principals.create(APP)
    kms.principals.put_identity_policy(APP, "all", _allow(["kms:*"]))
    kms.principals.put_identity_policy(APP, "deny", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}]})
    app = kms.for_principal(APP)
    blob = app.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    _denied(lambda: app.decrypt(CiphertextBlob=blob))


def test_grants(kms: LocalKMS, key_id: str) -> None:
    app = kms.for_principal(APP)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "a"})["CiphertextBlob"]
    _denied(lambda: app.decrypt(CiphertextBlob=blob, EncryptionContext={"tenant": "a"}))
    grant = kms.create_grant(KeyId=key_id, GranteePrincipal=APP, RetiringPrincipal=OTHER,
                             Operations=["Decrypt", "GenerateDataKey"], Name="app",
                             Constraints={"EncryptionContextSubset": {"tenant": "a"}})
    assert set(grant) == {"GrantToken", "GrantId"}
    # Same name and parameters: the same grant comes back (CreateGrant is idempotent by name).
    assert kms.create_grant(KeyId=key_id, GranteePrincipal=APP, RetiringPrincipal=OTHER,
                            Operations=["Decrypt", "GenerateDataKey"], Name="app",
                            Constraints={"EncryptionContextSubset": {"tenant": "a"}})["GrantId"] == grant["GrantId"]
    tokens = [grant["GrantToken"]]
    assert app.decrypt(CiphertextBlob=blob, EncryptionContext={"tenant": "a"}, GrantTokens=tokens)["Plaintext"] == b"x"
    app.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext={"tenant": "a", "more": "1"})
    _denied(lambda: app.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext={"tenant": "b"}))
    _denied(lambda: app.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "a"}))
    with pytest.raises(KMSError) as exc:
        app.decrypt(CiphertextBlob=blob, EncryptionContext={"tenant": "a"}, GrantTokens=["not-a-token"])
    assert exc.value.code == "InvalidGrantTokenException"
    listed = kms.list_grants(KeyId=key_id)["Grants"]
    assert [(g["GrantId"], g["GranteePrincipal"], g["Operations"]) for g in listed] == [
        (grant["GrantId"], APP, ["Decrypt", "GenerateDataKey"])]
    assert listed[0]["Constraints"] == {"EncryptionContextSubset": {"tenant": "a"}}
    assert [g["GrantId"] for g in kms.list_retirable_grants(RetiringPrincipal=OTHER)["Grants"]] == [grant["GrantId"]]
    # Only the retiring principal (or an authorized caller) retires it.
    _denied(lambda: app.retire_grant(GrantToken=grant["GrantToken"]))
    kms.for_principal(OTHER).retire_grant(GrantToken=grant["GrantToken"])
    _denied(lambda: app.decrypt(CiphertextBlob=blob, EncryptionContext={"tenant": "a"}))
    assert kms.list_grants(KeyId=key_id)["Grants"] == []


def test_revoke_grant_and_equals_constraint(kms: LocalKMS, key_id: str) -> None:
    app = kms.for_principal(APP)
    grant = kms.create_grant(KeyId=key_id, GranteePrincipal=APP, Operations=["Encrypt"],
                             Constraints={"EncryptionContextEquals": {"tenant": "a"}})
    app.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "a"})
    _denied(lambda: app.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "a", "b": "c"}))
    kms.revoke_grant(KeyId=key_id, GrantId=grant["GrantId"])
    _denied(lambda: app.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": "a"}))
    with pytest.raises(KMSError) as exc:
        kms.revoke_grant(KeyId=key_id, GrantId=grant["GrantId"])
    assert exc.value.code == "InvalidGrantIdException"


def test_create_grant_validates_operations(kms: LocalKMS, key_id: str) -> None:
    with pytest.raises(KMSError) as exc:
        kms.create_grant(KeyId=key_id, GranteePrincipal=APP, Operations=["DoEverything"])
    assert exc.value.code == "ValidationException"


def test_cross_account_needs_key_policy_and_identity_policy(kms: LocalKMS, key_id: str) -> None:
    outsider_arn = "arn:aws:iam::444455556666:role/Partner"
    outsider = kms.for_principal(outsider_arn)
    arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}"
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    kms.principals.create(outsider_arn)
    kms.principals.put_identity_policy(outsider_arn, "use", _allow(["kms:Decrypt"], arn))
    _denied(lambda: outsider.decrypt(CiphertextBlob=blob))  # the key policy does not name them
    kms.put_key_policy(KeyId=key_id, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "kms:Decrypt",
         "Resource": "*"}]}))
    assert outsider.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"  # id from the ciphertext, any account
    kms.principals.delete_identity_policy(outsider_arn, "use")
    _denied(lambda: outsider.decrypt(CiphertextBlob=blob))


def test_principal_store(kms: LocalKMS) -> None:
    store = kms.principals
    store.create(APP)
    with pytest.raises(KMSError) as exc:
        store.create(APP)
    assert exc.value.code == "AlreadyExistsException"
    assert store.list_principals() == [APP] and store.exists(APP)
    with pytest.raises(ValueError):
        store.create("arn:aws:s3:::bucket")
    with pytest.raises(KMSError) as exc:
        store.put_identity_policy(OTHER, "p", _allow(["kms:*"]))
    assert exc.value.code == "NoSuchEntityException"
    with pytest.raises(KMSError) as exc:
        store.put_identity_policy(APP, "p", "{bad")
    assert exc.value.code == "MalformedPolicyDocumentException"
    store.put_identity_policy(APP, "p", _allow(["kms:*"]))
    assert json.loads(store.get_identity_policy(APP, "p")) == _allow(["kms:*"])
    store.delete(APP)
    assert store.list_principals() == []


def test_assumed_role_sessions_use_the_role_policies(kms: LocalKMS, key_id: str) -> None:
    kms.principals.create(APP)
    kms.principals.put_identity_policy(APP, "use", _allow(["kms:Encrypt"]))
    session = kms.for_principal(f"arn:aws:sts::{ACCOUNT}:assumed-role/App/session-1")
    session.encrypt(KeyId=key_id, Plaintext=b"x")


def test_rate_limits_throttle_and_refill(clock: ManualClock) -> None:
    kms = LocalKMS(path=":memory:", clock=clock, rate_limits={"Encrypt": 3, "Cryptographic": 5})
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    for _ in range(3):
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    with pytest.raises(KMSError) as exc:
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    assert exc.value.code == "ThrottlingException"
    kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    with pytest.raises(kms.exceptions.ThrottlingException):
        kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")  # the shared family bucket is empty
    kms.describe_key(KeyId=key_id)  # not limited
    clock.advance(1.0)
    kms.encrypt(KeyId=key_id, Plaintext=b"x")
    throttled = kms.audit.lookup(event_name="Encrypt")
    assert sum(1 for e in throttled if e.get("errorCode") == "ThrottlingException") == 1


def test_rate_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        LocalKMS(path=":memory:", rate_limits={"Encrypt": 0})
    with pytest.raises(TypeError):
        LocalKMS(path=":memory:", rate_limits=[("Encrypt", 1)])  # type: ignore[arg-type]


# --- cached authorization decisions -------------------------------------------------------------

def _key_policy(*statements: dict[str, object]) -> str:
    root = {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*", "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [root, *statements]})


def test_conditional_decisions_follow_each_request(kms: LocalKMS, key_id: str) -> None:
    kms.put_key_policy(KeyId=key_id, Policy=_key_policy({
        "Sid": "app", "Effect": "Allow", "Principal": {"AWS": APP}, "Action": "kms:GenerateDataKey",
        "Resource": "*", "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "a"}}}))
    app = kms.for_principal(APP)
    for _ in range(2):  # alternate: no decision made for one context may serve the other
        app.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext={"tenant": "a"})
        _denied(lambda: app.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext={"tenant": "b"}))
        _denied(lambda: app.generate_data_key(KeyId=key_id, KeySpec="AES_256"))


def test_key_policy_changes_apply_to_the_next_call(kms: LocalKMS, key_id: str) -> None:
    allow: dict[str, object] = {"Sid": "app", "Effect": "Allow", "Principal": {"AWS": APP}, "Action": "kms:Encrypt",
                                "Resource": "*"}
    app = kms.for_principal(APP)
    _denied(lambda: app.encrypt(KeyId=key_id, Plaintext=b"x"))
    kms.put_key_policy(KeyId=key_id, Policy=_key_policy(allow))
    app.encrypt(KeyId=key_id, Plaintext=b"x")
    app.encrypt(KeyId=key_id, Plaintext=b"x")
    kms.put_key_policy(KeyId=key_id, Policy=_key_policy({**allow, "Effect": "Deny"}))
    _denied(lambda: app.encrypt(KeyId=key_id, Plaintext=b"x"))
    kms.create_grant(KeyId=key_id, GranteePrincipal=OTHER, Operations=["Encrypt"])
    other = kms.for_principal(OTHER)
    other.encrypt(KeyId=key_id, Plaintext=b"x")
    grant_id = kms.list_grants(KeyId=key_id)["Grants"][0]["GrantId"]
    kms.revoke_grant(KeyId=key_id, GrantId=grant_id)
    _denied(lambda: other.encrypt(KeyId=key_id, Plaintext=b"x"))


def test_identity_policy_revoked_by_another_process(disk_kms: LocalKMS) -> None:
    import subprocess
    import sys
    from pathlib import Path

    key_id = disk_kms.create_key()["KeyMetadata"]["KeyId"]
    disk_kms.principals.create(APP)
    disk_kms.principals.put_identity_policy(APP, "use", _allow(["kms:Encrypt"]))
    app = disk_kms.for_principal(APP)
    app.encrypt(KeyId=key_id, Plaintext=b"x")
    app.encrypt(KeyId=key_id, Plaintext=b"x")  # the allow is cached in this process now
    code = ("import sys; from envelope.kms import LocalKMS; "
            "LocalKMS(path=sys.argv[1]).principals.delete_identity_policy(sys.argv[2], 'use')")
    subprocess.run([sys.executable, "-c", code, str(disk_kms.data_dir), APP], check=True,
                   cwd=Path(__file__).resolve().parents[2])
    _denied(lambda: app.encrypt(KeyId=key_id, Plaintext=b"x"))
