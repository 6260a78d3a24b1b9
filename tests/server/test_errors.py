"""Bad requests get KMS-shaped errors with the right status, and the endpoint keeps serving."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import botocore.auth  # type: ignore[import-untyped]
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from .conftest import Endpoint

JSON = "application/x-amz-json-1.1"


def send(endpoint: Endpoint, body: bytes | str, *, target: str | None = "TrentService.ListKeys",
         content_type: str = JSON, sign: bool = True, access_key_id: str | None = None, secret: str | None = None,
         region: str = "us-east-1", service: str = "kms", sent_body: bytes | None = None,
         extra_headers: dict[str, str] | None = None, method: str = "POST", path: str = "/") -> tuple[int, Any]:
    """Sign a request with botocore's SigV4 signer (optionally tampered) and send it raw."""
    data = body.encode() if isinstance(body, str) else body
    headers = {"Content-Type": content_type}
    if target is not None:
        headers["X-Amz-Target"] = target
    headers.update(extra_headers or {})
    request = AWSRequest(method=method, url=endpoint.url + path, data=data, headers=headers)
    if sign:
        SigV4Auth(Credentials(access_key_id or endpoint.access_key_id, secret or endpoint.secret),
                  service, region).add_auth(request)
    parts = urlsplit(endpoint.url)
    assert parts.hostname is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        payload = data if sent_body is None else sent_body
        conn.request(method, path, body=payload, headers=dict(request.headers.items()))
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    if response.getheader("content-type", "").startswith(("application/x-amz-json", "application/json")):
        return response.status, json.loads(raw)
    return response.status, raw.decode()


def kms_error(status_body: tuple[int, Any]) -> tuple[int, str]:
    status, body = status_body
    assert set(body) == {"__type", "message"} and body["message"]
    return status, body["__type"]


@pytest.fixture
def old_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = botocore.auth.get_current_datetime
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: real() - timedelta(minutes=6))
    yield


@pytest.fixture
def future_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = botocore.auth.get_current_datetime
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: real() + timedelta(minutes=6))
    yield


def test_a_correctly_signed_raw_request_works(endpoint: Endpoint) -> None:
    status, body = send(endpoint, "{}")
    assert status == 200 and isinstance(body["Keys"], list)


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"sign": False}, "MissingAuthenticationTokenException"),
    ({"secret": "wrong-secret"}, "InvalidSignatureException"),
    ({"access_key_id": "AKIAIOSFODNN7EXAMPLE"}, "UnrecognizedClientException"),
    ({"sent_body": b'{"Limit": 1}'}, "InvalidSignatureException"),
    ({"region": "eu-west-1"}, "InvalidSignatureException"),
    ({"service": "s3"}, "InvalidSignatureException"),
    ({"extra_headers": {"X-Amz-Content-Sha256": "0" * 64}}, "InvalidSignatureException"),
    ({"extra_headers": {"X-Amz-Security-Token": "token"}}, "UnrecognizedClientException"),
], ids=["unsigned", "wrong-secret", "unknown-access-key", "body-changed-after-signing", "other-region",
        "other-service", "content-sha256-mismatch", "session-token"])
def test_authentication_failures(endpoint: Endpoint, kwargs: dict[str, Any], expected: str) -> None:
    assert kms_error(send(endpoint, "{}", **kwargs)) == (400, expected)


@pytest.mark.parametrize("clock", ["old_clock", "future_clock"], ids=["six-minutes-old", "six-minutes-ahead"])
def test_clock_skew_beyond_five_minutes_is_refused(endpoint: Endpoint, request: pytest.FixtureRequest,
                                                   clock: str) -> None:
    request.getfixturevalue(clock)
    status, body = send(endpoint, "{}")
    assert (status, body["__type"]) == (400, "InvalidSignatureException")
    assert "Signature expired" in body["message"]


def test_malformed_authorization_header(endpoint: Endpoint) -> None:
    bad = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/kms/aws4_request",
           "X-Amz-Date": "20260101T000000Z"}
    assert kms_error(send(endpoint, "{}", sign=False, extra_headers=bad)) == (400, "IncompleteSignatureException")


def test_an_inactive_or_deleted_access_key_is_refused_at_once(endpoint: Endpoint) -> None:
    from envelope.kms.server import AccessKeys

    keys = AccessKeys(endpoint.data_dir)
    created = keys.create()["AccessKey"]
    auth = {"access_key_id": created["AccessKeyId"], "secret": created["SecretAccessKey"]}
    assert send(endpoint, "{}", **auth)[0] == 200
    keys.update(created["AccessKeyId"], "Inactive")
    assert kms_error(send(endpoint, "{}", **auth)) == (400, "UnrecognizedClientException")
    keys.update(created["AccessKeyId"], "Active")
    assert send(endpoint, "{}", **auth)[0] == 200
    keys.delete(created["AccessKeyId"])
    keys.close()
    assert kms_error(send(endpoint, "{}", **auth)) == (400, "UnrecognizedClientException")


@pytest.mark.parametrize(("target", "body", "expected"), [
    ("TrentService.LaunchRockets", "{}", "UnknownOperationException"),
    ("TrentService.CreateCustomKeyStore", '{"CustomKeyStoreName": "x"}', "UnknownOperationException"),
    ("OtherService.ListKeys", "{}", "UnknownOperationException"),
    ("TrentService.ListKeys", "{not json", "SerializationException"),
    ("TrentService.ListKeys", "[1, 2]", "SerializationException"),
    ("TrentService.Encrypt", '{"KeyId": "alias/x", "Plaintext": "***"}', "SerializationException"),
    ("TrentService.Encrypt", '{"KeyId": "alias/x", "Plaintext": 12}', "SerializationException"),
    ("TrentService.GenerateRandom", '{"NumberOfBytes": "many"}', "ValidationException"),
    ("TrentService.GenerateRandom", '{"NumberOfBytes": 5000}', "ValidationException"),
    ("TrentService.ListKeys", '{"Limit": true}', "ValidationException"),
    ("TrentService.Encrypt", '{"Plaintext": "AA=="}', "ValidationException"),
    ("TrentService.DescribeKey", '{"KeyId": "alias/does-not-exist"}', "NotFoundException"),
], ids=["unknown-operation", "unsupported-operation", "wrong-service-prefix", "malformed-json", "json-array",
        "bad-base64", "blob-of-wrong-type", "string-for-int", "int-out-of-range", "bool-for-int",
        "missing-required", "not-found"])
def test_request_errors(endpoint: Endpoint, target: str, body: str, expected: str) -> None:
    assert kms_error(send(endpoint, body, target=target)) == (400, expected)


def test_oversized_body_is_refused_before_it_is_read(endpoint: Endpoint) -> None:
    big = json.dumps({"KeyId": "alias/x", "Plaintext": base64.b64encode(b"x" * 300_000).decode()})
    status, body = send(endpoint, big, target="TrentService.Encrypt")
    assert status == 413 and body["__type"] == "ValidationException" and "limit" in body["message"]


def test_health_and_unknown_routes(endpoint: Endpoint) -> None:
    assert send(endpoint, b"", sign=False, method="GET", path="/health", target=None) == (200, {"status": "ok"})
    assert kms_error(send(endpoint, b"", sign=False, method="GET", path="/", target=None)) == (404, "NotFound")
    assert kms_error(send(endpoint, b"{}", sign=False, method="POST", path="/health")) == (405, "MethodNotAllowed")


@pytest.mark.parametrize(("body", "kwargs", "status", "code"), [
    ("Action=AssumeRole&Version=2011-06-15", {}, 400, "InvalidAction"),
    ("Action=GetCallerIdentity&Version=2011-06-15", {"secret": "wrong"}, 403, "SignatureDoesNotMatch"),
    ("Action=GetCallerIdentity&Version=2011-06-15", {"sign": False}, 403, "MissingAuthenticationToken"),
    ("Action=GetCallerIdentity&Version=2011-06-15", {"service": "kms"}, 403, "SignatureDoesNotMatch"),
], ids=["unknown-action", "wrong-secret", "unsigned", "kms-scoped-credential"])
def test_sts_errors_are_query_protocol_xml(endpoint: Endpoint, body: str, kwargs: dict[str, Any], status: int,
                                          code: str) -> None:
    got_status, text = send(endpoint, body, target=None, content_type="application/x-www-form-urlencoded",
                            service=kwargs.pop("service", "sts"), **kwargs)
    assert got_status == status
    assert f"<Code>{code}</Code>" in text and text.startswith("<ErrorResponse")


def test_the_endpoint_keeps_serving_after_bad_requests(endpoint: Endpoint) -> None:
    for _ in range(3):
        send(endpoint, "{not json")
        send(endpoint, "x" * 300_000)
        send(endpoint, "{}", secret="wrong")
    kms = endpoint.client()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    assert kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=key_id, Plaintext=b"ok")["CiphertextBlob"])["Plaintext"] == b"ok"
    # Failures are in the access log with their codes, and no secret or body is.
    records = endpoint.access_log()
    assert {"SerializationException", "InvalidSignatureException", "ValidationException"} <= {
        r.get("error") for r in records}
    log_text = endpoint.log_path.read_text()
    assert endpoint.secret not in log_text and "b2s=" not in log_text
    assert all(r["status"] in (200, 400, 403, 404, 405, 413) for r in records)
