"""AWS KMS's answers to invalid requests, through LocalKMS in-process and through `kms serve` with boto3.

Each rule cites the AWS page it follows. Messages are compared whole: code written against AWS
reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from envelope.errors import KMSError
from envelope.kms import LocalKMS
from envelope.kms.server import AccessKeys

ACCOUNT = "111122223333"


@pytest.fixture(params=["local", "server"])
def via(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """A factory of clients for one principal: LocalKMS, or boto3 against the shared endpoint."""
    if request.param == "local":
        base = LocalKMS(path=":memory:")
        yield lambda principal=None: base if principal is None else base.for_principal(principal)
        return
    endpoint = request.getfixturevalue("endpoint")

    def server(principal: str | None = None) -> Any:
        if principal is None:
            return endpoint.client()
        keys = AccessKeys(endpoint.data_dir)
        created = keys.create(principal)["AccessKey"]
        keys.close()
        return endpoint.client(access_key_id=created["AccessKeyId"], secret=created["SecretAccessKey"])

    yield server


@pytest.fixture
def kms(via: Callable[..., Any]) -> Any:
    return via()


def _error(call: Callable[[], object]) -> tuple[str, str]:
    """The (code, message) a call fails with: a KMSError in-process, a ClientError from boto3."""
    with pytest.raises((KMSError, ClientError)) as exc:
        call()
    error = exc.value.response["Error"]
    return error["Code"], error["Message"]


# -- validation from the model's constraints ------------------------------------------------------
# https://docs.aws.amazon.com/kms/latest/APIReference/CommonErrors.html (ValidationException) with
# each member's constraints from the API reference page of its operation.

def test_pattern_constraint(kms: Any) -> None:
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html: AliasName pattern
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    assert _error(lambda: kms.create_alias(AliasName="alias/x y", TargetKeyId=key_id)) == (
        "ValidationException", ("1 validation error detected: Value 'alias/x y' at 'aliasName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"))


def test_length_constraint(kms: Any) -> None:
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_DescribeKey.html: KeyId 1-2048 characters
    long_id = "k" * 2049
    assert _error(lambda: kms.describe_key(KeyId=long_id)) == (
        "ValidationException", (f"1 validation error detected: Value '{long_id}' at 'keyId' failed to satisfy "
        "constraint: Member must have length less than or equal to 2048"))


def test_range_and_enum_constraints_are_counted_together(kms: Any) -> None:
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_GenerateDataKey.html: NumberOfBytes 1-1024,
    # KeySpec AES_256 | AES_128
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    assert _error(lambda: kms.generate_data_key(KeyId=key_id, NumberOfBytes=2000)) == (
        "ValidationException", ("1 validation error detected: Value '2000' at 'numberOfBytes' failed to satisfy "
        "constraint: Member must have value less than or equal to 1024"))
    assert _error(lambda: kms.generate_data_key(KeyId=key_id, NumberOfBytes=2000, KeySpec="AES_512")) == (
        "ValidationException", ("2 validation errors detected: Value '2000' at 'numberOfBytes' failed to satisfy "
        "constraint: Member must have value less than or equal to 1024; Value 'AES_512' at 'keySpec' failed to "
        "satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]"))


def test_sensitive_and_nested_members(kms: Any) -> None:
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_Encrypt.html: Plaintext 1-4096 bytes (sensitive:
    # its value is never echoed); https://docs.aws.amazon.com/kms/latest/APIReference/API_Tag.html: TagKey
    # 1-128 characters, as a list member path
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    assert _error(lambda: kms.encrypt(KeyId=key_id, Plaintext=b"p" * 4097)) == (
        "ValidationException", ("1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096"))
    tag = "t" * 129
    assert _error(lambda: kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "ok", "TagValue": ""},
                                                                {"TagKey": tag, "TagValue": "v"}])) == (
        "ValidationException", (f"1 validation error detected: Value '{tag}' at 'tags.2.member.tagKey' failed to "
        "satisfy constraint: Member must have length less than or equal to 128"))


def test_validation_comes_before_authorization(via: Callable[..., Any]) -> None:
    # AWS validates a request before it authorizes it: a caller with no permission on the key still
    # hears of the invalid parameter (https://docs.aws.amazon.com/kms/latest/APIReference/CommonErrors.html).
    key_id = via().create_key()["KeyMetadata"]["KeyId"]
    stranger = via(f"arn:aws:iam::{ACCOUNT}:role/Stranger")
    assert _error(lambda: stranger.generate_data_key(KeyId=key_id, KeySpec="AES_512"))[0] == "ValidationException"
    assert _error(lambda: stranger.generate_data_key(KeyId=key_id, KeySpec="AES_256"))[0] == "AccessDeniedException"


# -- KeyId parameters that take only a key ID or key ARN ------------------------------------------

# Operations whose KeyId page says "Specify the key ID or key ARN of the KMS key" (the generated
# table's accepts_alias=False), with the other arguments botocore requires.
KEY_ONLY_CALLS: dict[str, dict[str, Any]] = {
    "cancel_key_deletion": {}, "disable_key": {}, "enable_key": {}, "disable_key_rotation": {},
    "enable_key_rotation": {}, "get_key_rotation_status": {}, "rotate_key_on_demand": {},
    "list_key_rotations": {}, "get_key_policy": {}, "list_key_policies": {},
    "put_key_policy": {"Policy": "{}"}, "schedule_key_deletion": {},
    "update_key_description": {"Description": "d"}, "list_resource_tags": {},
    "tag_resource": {"Tags": [{"TagKey": "k", "TagValue": "v"}]}, "untag_resource": {"TagKeys": ["k"]},
    "create_grant": {"GranteePrincipal": f"arn:aws:iam::{ACCOUNT}:role/App", "Operations": ["Decrypt"]},
    "list_grants": {}, "revoke_grant": {"GrantId": "0" * 64}, "retire_grant": {"GrantId": "0" * 64},
    "get_parameters_for_import": {"WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"},
    "import_key_material": {"ImportToken": b"t", "EncryptedKeyMaterial": b"m"},
    "delete_imported_key_material": {}, "replicate_key": {"ReplicaRegion": "us-west-2"},
    "update_primary_region": {"PrimaryRegion": "us-west-2"}, "list_aliases": {},
}


def test_the_key_only_list_is_the_tables() -> None:
    from envelope.kms.model.operations import OPERATIONS
    from envelope.kms.model.validation import KEY_ONLY_MEMBERS

    implemented = {op.method for op in OPERATIONS.values() if hasattr(LocalKMS, op.method)}
    by_table = {OPERATIONS[name].method for name, members in KEY_ONLY_MEMBERS.items() if "KeyId" in members}
    assert set(KEY_ONLY_CALLS) == by_table & implemented


@pytest.mark.parametrize("method", sorted(KEY_ONLY_CALLS))
def test_alias_refused_where_only_a_key_id_is_taken(via: Callable[..., Any], method: str) -> None:
    # e.g. https://docs.aws.amazon.com/kms/latest/APIReference/API_EnableKeyRotation.html: "Specify the key
    # ID or key ARN of the KMS key"; AWS answers an alias with NotFoundException "Invalid keyId <alias>".
    kms = via()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    alias = f"alias/only-{method.replace('_', '-')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    for value in (alias, f"arn:aws:kms:us-east-1:{ACCOUNT}:{alias}"):
        assert _error(lambda v=value: getattr(kms, method)(  # type: ignore[misc]  # a default-bound loop value
            KeyId=v, **KEY_ONLY_CALLS[method])) == (
            "NotFoundException", f"Invalid keyId {value}")
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyState"] == "Enabled"  # nothing changed


def test_key_only_refusal_hints_at_the_key_in_process() -> None:
    # The hint is ours, outside AWS's message (the CLI prints it as "hint:"); another account's
    # alias is never looked up.
    kms = LocalKMS(path=":memory:")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/app", TargetKeyId=key_id)
    with pytest.raises(KMSError) as exc:
        kms.enable_key_rotation(KeyId="alias/app")
    assert exc.value.response["Error"]["Message"] == "Invalid keyId alias/app"
    assert exc.value.hint == (f"alias/app is an alias of key {key_id}; this operation takes a key ID or "
                              f"key ARN: use {key_id}")
    with pytest.raises(KMSError) as exc:
        kms.enable_key_rotation(KeyId="arn:aws:kms:us-east-1:444455556666:alias/app")
    assert key_id not in (exc.value.hint or "")
    event = kms.audit.lookup(event_name="EnableKeyRotation")[-1]  # newest first
    assert (event["errorCode"], event["errorMessage"]) == ("NotFoundException", "Invalid keyId alias/app")


def test_target_key_id_refuses_an_alias(kms: Any) -> None:
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html: TargetKeyId "Specify the
    # key ID or key ARN of the KMS key".
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/first-target", TargetKeyId=key_id)
    assert _error(lambda: kms.create_alias(AliasName="alias/second", TargetKeyId="alias/first-target")) == (
        "NotFoundException", "Invalid keyId alias/first-target")


# -- alias names --------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "expected"), [
    ("app", ("ValidationException", ('Alias must start with the prefix "alias/". Please see '
                                    "http://docs.aws.amazon.com/kms/latest/developerguide/programming-aliases.html"))),
    ("alias/aws/mine", ("NotAuthorizedException", "")),
    ("alias/my:app", ("ValidationException", "alias/my:app contains invalid characters for an alias")),
], ids=["no-prefix", "reserved", "colon"])
def test_alias_names(kms: Any, name: str, expected: tuple[str, str]) -> None:
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html (AliasName): "must begin with
    # alias/", "cannot begin with alias/aws/"; the same rules for UpdateAlias and (prefixes) DeleteAlias.
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    assert _error(lambda: kms.create_alias(AliasName=name, TargetKeyId=key_id)) == expected
    assert _error(lambda: kms.update_alias(AliasName=name, TargetKeyId=key_id)) == expected
    if ":" not in name:
        assert _error(lambda: kms.delete_alias(AliasName=name)) == expected


def test_list_aliases_includes_the_predefined_aliases(kms: Any) -> None:
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_ListAliases.html: "The response might include
    # several aliases that do not have a TargetKeyId field. These are predefined aliases that AWS has
    # created but has not yet associated with a KMS key."
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/zz-listed", TargetKeyId=key_id)
    kms.describe_key(KeyId="alias/aws/s3")  # its AWS managed key now exists
    pages, marker = [], None
    while True:
        page = kms.list_aliases(Limit=5, **({"Marker": marker} if marker else {}))
        assert len(page["Aliases"]) <= 5
        pages.append(page["Aliases"])
        if not page["Truncated"]:
            break
        marker = page["NextMarker"]
    listed = [alias for page in pages for alias in page]
    names = [alias["AliasName"] for alias in listed]
    assert names == sorted(names) and len(names) == len(set(names)) and len(pages) > 1
    predefined = {a["AliasName"]: a for a in listed if a["AliasName"].startswith("alias/aws/")}
    assert {"alias/aws/acm", "alias/aws/ebs", "alias/aws/rds", "alias/aws/s3", "alias/aws/xray"} <= set(predefined)
    assert "TargetKeyId" not in predefined["alias/aws/acm"]
    assert predefined["alias/aws/acm"]["AliasArn"] == f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/aws/acm"
    assert "TargetKeyId" in predefined["alias/aws/s3"]
    # With a KeyId, only that key's aliases.
    assert [a["AliasName"] for a in kms.list_aliases(KeyId=key_id)["Aliases"]] == ["alias/zz-listed"]


# -- tags ---------------------------------------------------------------------------------------

def test_tag_rules(kms: Any) -> None:
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_TagResource.html (TagException) and the
    # quota of 50 tags per key (https://docs.aws.amazon.com/kms/latest/developerguide/resource-limits.html).
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    duplicate = [{"TagKey": "team", "TagValue": "a"}, {"TagKey": "team", "TagValue": "b"}]
    assert _error(lambda: kms.tag_resource(KeyId=key_id, Tags=duplicate)) == (
        "TagException", "Duplicate tag keys are not allowed.")
    assert _error(lambda: kms.create_key(Tags=duplicate)) == ("TagException", "Duplicate tag keys are not allowed.")
    assert _error(lambda: kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "aws:x", "TagValue": "v"}])) == (
        "TagException", "Tags beginning with aws: are reserved")
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": f"k{i}", "TagValue": "v"} for i in range(49)])
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "k0", "TagValue": "again"}, {"TagKey": "last", "TagValue": ""}])
    assert _error(lambda: kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "one-more", "TagValue": "v"}])) == (
        "TagException", "A KMS key can have at most 50 tags.")
    many = [{"TagKey": f"k{i}", "TagValue": "v"} for i in range(51)]
    assert _error(lambda: kms.create_key(Tags=many)) == ("TagException", "A KMS key can have at most 50 tags.")


# -- key usage ----------------------------------------------------------------------------------

def test_wrong_key_usage(kms: Any) -> None:
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_Encrypt.html (InvalidKeyUsageException)
    signing = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    assert _error(lambda: kms.encrypt(KeyId=signing, Plaintext=b"x")) == (
        "InvalidKeyUsageException", f"{signing} key usage is SIGN_VERIFY which is not valid for Encrypt.")
    mac = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
    assert _error(lambda: kms.generate_data_key(KeyId=mac, KeySpec="AES_256")) == (
        "InvalidKeyUsageException", f"{mac} key usage is GENERATE_VERIFY_MAC which is not valid for GenerateDataKey.")


# -- the endpoint ---------------------------------------------------------------------------------

def _post(endpoint: Any, body: bytes, *, target: str = "TrentService.ListKeys", payload_hash: str | None = None,
          sign_target: bool = True) -> tuple[int, dict[str, Any]]:
    """POST a KMS request signed by hand (SigV4 over the given payload hash and signed headers)."""
    import hashlib
    import hmac
    import http.client
    import json
    import time
    from urllib.parse import urlsplit

    from envelope.kms.server.sigv4 import signing_key

    url = urlsplit(endpoint.url)
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    digest = payload_hash or hashlib.sha256(body).hexdigest()
    headers = {"host": url.netloc, "x-amz-date": amz_date, "x-amz-target": target,
               "content-type": "application/x-amz-json-1.1", "x-amz-content-sha256": digest}
    signed = sorted(name for name in headers if sign_target or name != "x-amz-target")
    canonical = "\n".join(["POST", "/", "", "".join(f"{n}:{headers[n]}\n" for n in signed), ";".join(signed), digest])
    scope = f"{amz_date[:8]}/us-east-1/kms/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(signing_key(endpoint.secret, amz_date[:8], "us-east-1", "kms"), to_sign.encode(),
                         "sha256").hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={endpoint.access_key_id}/{scope}, "
                                f"SignedHeaders={';'.join(signed)}, Signature={signature}")
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request("POST", "/", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def test_hand_signed_requests_are_accepted(endpoint: Any) -> None:
    # The control for the refusals below: the same signing, done right, lists keys.
    status, body = _post(endpoint, b"{}")
    assert status == 200 and "Keys" in body


def test_unsigned_payload_is_refused(endpoint: Any) -> None:
    # UNSIGNED-PAYLOAD is an Amazon S3 option (https://docs.aws.amazon.com/AmazonS3/latest/API/
    # sig-v4-header-based-auth.html); KMS signs the payload's hash, so the signature does not match.
    status, body = _post(endpoint, b"{}", payload_hash="UNSIGNED-PAYLOAD")
    assert status == 400 and body["__type"] == "InvalidSignatureException"
    assert body["message"].startswith("The request signature we calculated does not match")


def test_unsigned_target_is_refused(endpoint: Any) -> None:
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html: the signed headers
    # must cover what the request means; an unsigned X-Amz-Target could be changed in transit.
    status, body = _post(endpoint, b"{}", sign_target=False)
    assert (status, body["__type"]) == (400, "IncompleteSignatureException")
    assert body["message"] == "X-Amz-Target must be a signed header."


@pytest.mark.parametrize(("target", "body", "code"), [
    ("TrentService.ListKeys", b"{not json", "SerializationException"),
    ("TrentService.NoSuchOperation", b"{}", "UnknownOperationException"),
    ("TrentService.Encrypt", b'{"KeyId": "k", "Plaintext": "not base64!"}', "SerializationException"),
], ids=["bad-json", "unknown-operation", "bad-blob"])
def test_refusals_before_dispatch_are_audited(endpoint: Any, target: str, body: bytes, code: str) -> None:
    # CloudTrail records failed calls with their errorCode
    # (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html).
    audit = LocalKMS(endpoint.data_dir).audit
    before = audit.head()[0]
    status, answer = _post(endpoint, body, target=target)
    assert (status, answer["__type"]) == (400, code)
    events = [e for e in audit.lookup(limit=50) if int(str(e["sequenceNumber"])) > before]
    mine = [e for e in events if e.get("errorCode") == code and e["eventName"] == target.split(".", 1)[1]]
    assert mine and mine[0]["userIdentity"]["arn"] == f"arn:aws:iam::{ACCOUNT}:root"  # type: ignore[index]
    assert audit.verify().ok


def test_missing_members_of_a_raw_request(endpoint: Any) -> None:
    # SDKs refuse a missing required member before sending; the service, given such a request, answers
    # with the model's "must not be null" (https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html:
    # AliasName and TargetKeyId are required), counted with the other failures, and audits it.
    status, answer = _post(endpoint, b'{"AliasName": "alias/x y"}', target="TrentService.CreateAlias")
    assert (status, answer["__type"]) == (400, "ValidationException")
    assert answer["message"] == (
        "2 validation errors detected: Value 'alias/x y' at 'aliasName' failed to satisfy constraint: Member must "
        "satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$; Value null at 'targetKeyId' failed to satisfy "
        "constraint: Member must not be null")
    event = LocalKMS(endpoint.data_dir).audit.lookup(event_name="CreateAlias", limit=1)[0]
    assert event.get("errorCode") == "ValidationException"
