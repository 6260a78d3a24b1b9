"""SigV4 verification: AWS's published examples, botocore-signed requests, and every tampering."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]

from envelope.kms.server.sigv4 import SignatureError, Verifier, signing_key

EXAMPLE_KEY = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
EXAMPLE_TIME = datetime(2015, 8, 30, 12, 36, tzinfo=UTC).timestamp()


def _lookup(access_key_id: str) -> tuple[str, str] | None:
    return (EXAMPLE_KEY[1], "arn:aws:iam::111122223333:user/example") if access_key_id == EXAMPLE_KEY[0] else None


def _auth(scope: str, signed: str, signature: str) -> str:
    return f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{scope}, SignedHeaders={signed}, Signature={signature}"


# From AWS's Signature Version 4 documentation: the test suite's get-vanilla case and the IAM
# ListUsers walk-through (both signed at 20150830T123600Z with the example key).
PUBLISHED = [
    ("GET", "/", "", {"host": ["example.amazonaws.com"], "x-amz-date": ["20150830T123600Z"],
                      "authorization": [_auth("20150830/us-east-1/service/aws4_request", "host;x-amz-date",
                                              "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")]},
     "service"),
    ("GET", "/", "Action=ListUsers&Version=2010-05-08",
     {"host": ["iam.amazonaws.com"], "x-amz-date": ["20150830T123600Z"],
      "content-type": ["application/x-www-form-urlencoded; charset=utf-8"],
      "authorization": [_auth("20150830/us-east-1/iam/aws4_request", "content-type;host;x-amz-date",
                              "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")]},
     "iam"),
]


@pytest.mark.parametrize(("method", "path", "query", "headers", "service"), PUBLISHED,
                         ids=["get-vanilla", "iam-list-users"])
def test_published_examples_verify(method: str, path: str, query: str, headers: dict[str, list[str]],
                                   service: str) -> None:
    verifier = Verifier(_lookup, ["us-east-1"], clock=lambda: EXAMPLE_TIME)
    found = verifier.verify(method, path, query, headers, b"", service)
    assert (found.access_key_id, found.region, found.service) == ("AKIDEXAMPLE", "us-east-1", service)
    assert found.principal == "arn:aws:iam::111122223333:user/example"
    # One more second than five minutes later, the same request has expired.
    late = Verifier(_lookup, ["us-east-1"], clock=lambda: EXAMPLE_TIME + 301)
    with pytest.raises(SignatureError, match="expired"):
        late.verify(method, path, query, headers, b"", service)


def test_one_verifier_keeps_checking_the_time_of_every_request() -> None:
    # The verifier remembers the last X-Amz-Date it parsed: the skew is still checked against the
    # clock on every request, and an impossible date is still refused after a valid one.
    now = [EXAMPLE_TIME]
    verifier = Verifier(_lookup, ["us-east-1"], clock=lambda: now[0])
    method, path, query, headers, service = PUBLISHED[0]
    verifier.verify(method, path, query, headers, b"", service)
    now[0] += 301
    with pytest.raises(SignatureError, match="expired"):
        verifier.verify(method, path, query, headers, b"", service)
    now[0] -= 301
    verifier.verify(method, path, query, headers, b"", service)
    bad = dict(headers, **{"x-amz-date": ["20150830T126000Z"]})  # minute 60
    with pytest.raises(SignatureError) as caught:
        verifier.verify(method, path, query, bad, b"", service)
    assert caught.value.code == "IncompleteSignatureException"


def test_signing_key_matches_the_documented_derivation() -> None:
    # AWS's documented example of the derived signing key (20120215, us-east-1, iam).
    key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


def _signed(url: str, body: bytes, headers: Mapping[str, str], method: str = "POST",
            service: str = "kms") -> tuple[str, str, str, dict[str, list[str]], bytes]:
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    SigV4Auth(Credentials(*EXAMPLE_KEY), service, "us-east-1").add_auth(request)
    parts = urlsplit(request.url)
    got: dict[str, list[str]] = {"host": [parts.netloc]}
    for name, value in request.headers.items():
        got.setdefault(name.lower(), []).append(value)
    return method, parts.path or "/", parts.query, got, body


BOTOCORE_CASES = {
    "json-post": ("https://kms.local:8443/", b'{"KeyId": "alias/a"}', {"X-Amz-Target": "TrentService.Encrypt"}),
    "empty-body": ("http://127.0.0.1:9000/", b"", {"Content-Type": "application/x-amz-json-1.1"}),
    "query-string": ("http://localhost/?b=2&a=1&a=0&c=x%20y&d=", b"", {}),
    "odd-path": ("http://localhost/a/./b/../c%20d/~e", b"{}", {}),
    "header-spaces": ("http://localhost/", b"{}", {"X-Amz-Meta": "  two   spaces  "}),
    "binary-body": ("http://localhost/", bytes(range(256)), {}),
}


@pytest.mark.parametrize("case", list(BOTOCORE_CASES), ids=list(BOTOCORE_CASES))
def test_botocore_signed_requests_verify(case: str) -> None:
    method, path, query, headers, body = _signed(*BOTOCORE_CASES[case])
    Verifier(_lookup, ["us-east-1"]).verify(method, path, query, headers, body, "kms")


@pytest.mark.parametrize("change", ["method", "path", "query", "body", "target", "host", "date-format",
                                    "signature-case", "unsigned-target"])
def test_any_change_to_a_signed_request_is_refused(change: str) -> None:
    method, path, query, headers, body = _signed("http://localhost/?a=1", b'{"KeyId": "k"}',
                                                 {"X-Amz-Target": "TrentService.Encrypt"})
    verifier = Verifier(_lookup, ["us-east-1"])
    if change == "method":
        method = "PUT"
    elif change == "path":
        path = "/other"
    elif change == "query":
        query = "a=2"
    elif change == "body":
        body = b'{"KeyId": "K"}'
    elif change == "target":
        headers["x-amz-target"] = ["TrentService.Decrypt"]
    elif change == "host":
        headers["host"] = ["localhost:1"]
    elif change == "date-format":
        headers["x-amz-date"] = [headers["x-amz-date"][0].replace("T", "t")]
    elif change == "signature-case":
        # Hex case is not significant, but a different digit is.
        auth = headers["authorization"][0]
        last = auth[-1]
        headers["authorization"] = [auth[:-1] + ("0" if last != "0" else "1")]
    elif change == "unsigned-target":
        # Drop x-amz-target from SignedHeaders: the signature no longer covers what was signed.
        headers["authorization"] = [headers["authorization"][0].replace(";x-amz-target", "")]
    with pytest.raises(SignatureError) as exc:
        verifier.verify(method, path, query, headers, body, "kms")
    assert exc.value.code in ("InvalidSignatureException", "IncompleteSignatureException")


def test_uppercase_hex_signature_is_accepted() -> None:
    method, path, query, headers, body = _signed("http://localhost/", b"{}", {})
    auth = headers["authorization"][0]
    prefix, signature = auth.rsplit("=", 1)
    headers["authorization"] = [f"{prefix}={signature.upper()}"]
    Verifier(_lookup, ["us-east-1"]).verify(method, path, query, headers, body, "kms")


@pytest.mark.parametrize(("authorization", "code"), [
    ("Basic dXNlcjpwYXNz", "IncompleteSignatureException"),
    ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kms/aws4_request", "IncompleteSignatureException"),
    ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kms, SignedHeaders=host;x-amz-date, Signature=00",
     "IncompleteSignatureException"),
    (("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kms/aws4_request, SignedHeaders=x-amz-date;host, "
      "Signature=00"), "IncompleteSignatureException"),
    (("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kms/aws4_request, SignedHeaders=x-amz-date, "
      "Signature=00"), "IncompleteSignatureException"),
    (("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150831/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, "
      "Signature=00"), "InvalidSignatureException"),
], ids=["not-sigv4", "missing-fields", "short-scope", "unsorted-signed-headers", "host-not-signed",
        "scope-date-differs"])
def test_malformed_authorization(authorization: str, code: str) -> None:
    headers = {"host": ["localhost"], "x-amz-date": ["20150830T123600Z"], "authorization": [authorization]}
    with pytest.raises(SignatureError) as exc:
        Verifier(_lookup, ["us-east-1"], clock=lambda: EXAMPLE_TIME).verify("POST", "/", "", headers, b"", "kms")
    assert exc.value.code == code


def test_missing_date_and_presigned_urls() -> None:
    verifier = Verifier(_lookup, ["us-east-1"], clock=time.time)
    with pytest.raises(SignatureError) as exc:
        verifier.verify("POST", "/", "X-Amz-Signature=abc", {"host": ["h"]}, b"", "kms")
    assert exc.value.code == "IncompleteSignatureException"
    method, path, query, headers, body = _signed("http://localhost/", b"{}", {})
    del headers["x-amz-date"]
    with pytest.raises(SignatureError) as exc:
        verifier.verify(method, path, query, headers, body, "kms")
    assert exc.value.code == "IncompleteSignatureException"
