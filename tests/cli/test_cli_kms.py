"""`envelope kms` beyond the tutorial: asymmetric, HMAC, multi-Region, import, output, errors, audit."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def _json(result) -> dict[str, Any]:
    assert result.code == 0, result.err
    parsed: dict[str, Any] = json.loads(result.out)
    return parsed


def test_sign_verify_and_public_key(cli) -> None:
    key = _json(cli("kms", "create-key", "--key-spec", "RSA_2048", "--key-usage", "SIGN_VERIFY"))["KeyMetadata"]
    Path("msg").write_bytes(b"release 1.0")
    signed = _json(cli("kms", "sign", "--key-id", key["KeyId"], "--message", "fileb://msg", "--message-type", "RAW",
                       "--signing-algorithm", "RSASSA_PSS_SHA_256"))
    Path("sig").write_bytes(base64.b64decode(signed["Signature"]))
    ok = _json(cli("kms", "verify", "--key-id", key["KeyId"], "--message", "fileb://msg", "--signature",
                   "fileb://sig", "--signing-algorithm", "RSASSA_PSS_SHA_256"))
    assert ok["SignatureValid"] is True
    Path("msg2").write_bytes(b"release 2.0")
    r = cli("kms", "verify", "--key-id", key["KeyId"], "--message", "fileb://msg2", "--signature", "fileb://sig",
            "--signing-algorithm", "RSASSA_PSS_SHA_256")
    assert r.code == 254 and "KMSInvalidSignatureException" in r.err
    der = base64.b64decode(_json(cli("kms", "get-public-key", "--key-id", key["KeyId"]))["PublicKey"])
    public = serialization.load_der_public_key(der)
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(Path("sig").read_bytes(), b"release 1.0",
                  padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH), hashes.SHA256())


def test_generate_and_verify_mac(cli) -> None:
    key = _json(cli("kms", "create-key", "--key-spec", "HMAC_256", "--key-usage", "GENERATE_VERIFY_MAC"))
    key_id = key["KeyMetadata"]["KeyId"]
    raw = ["--cli-binary-format", "raw-in-base64-out"]
    mac = _json(cli("kms", "generate-mac", "--key-id", key_id, "--message", "hello", "--mac-algorithm",
                    "HMAC_SHA_256", *raw))["Mac"]
    ok = _json(cli("kms", "verify-mac", "--key-id", key_id, "--message", "aGVsbG8=", "--mac-algorithm",
                   "HMAC_SHA_256", "--mac", mac))
    assert ok["MacValid"] is True


def test_multi_region_replica_decrypts(cli) -> None:
    key = _json(cli("kms", "create-key", "--multi-region"))["KeyMetadata"]
    assert key["KeyId"].startswith("mrk-") and key["MultiRegion"] is True
    _json(cli("kms", "replicate-key", "--key-id", key["KeyId"], "--replica-region", "eu-west-1"))
    blob = _json(cli("kms", "encrypt", "--key-id", key["KeyId"], "--plaintext", "c2VjcmV0"))["CiphertextBlob"]
    Path("ct").write_bytes(base64.b64decode(blob))
    r = cli("kms", "decrypt", "--ciphertext-blob", "fileb://ct", "--region", "eu-west-1", "--output", "text",
            "--query", "Plaintext")
    assert r.code == 0, r.err
    assert base64.b64decode(r.text) == b"secret"
    # global options before the operation name work too
    r = cli("kms", "--region", "eu-west-1", "--output", "text", "describe-key", "--key-id", key["KeyId"],
            "--query", "KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType")
    assert r.text.strip() == "REPLICA"


def test_import_key_material(cli) -> None:
    key_id = _json(cli("kms", "create-key", "--origin", "EXTERNAL"))["KeyMetadata"]["KeyId"]
    params = _json(cli("kms", "get-parameters-for-import", "--key-id", key_id, "--wrapping-algorithm",
                       "RSAES_OAEP_SHA_256", "--wrapping-key-spec", "RSA_2048"))
    public = serialization.load_der_public_key(base64.b64decode(params["PublicKey"]))
    assert isinstance(public, rsa.RSAPublicKey)
    material = bytes(range(32))
    wrapped = public.encrypt(material, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    Path("token").write_bytes(base64.b64decode(params["ImportToken"]))
    Path("wrapped").write_bytes(wrapped)
    r = cli("kms", "import-key-material", "--key-id", key_id, "--import-token", "fileb://token",
            "--encrypted-key-material", "fileb://wrapped", "--expiration-model", "KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert r.code == 0, r.err
    assert _json(cli("kms", "describe-key", "--key-id", key_id))["KeyMetadata"]["KeyState"] == "Enabled"
    assert cli("kms", "encrypt", "--key-id", key_id, "--plaintext", "aGk=").code == 0


def test_text_output_and_queries(cli) -> None:
    ids = [_json(cli("kms", "create-key", "--description", f"k{n}"))["KeyMetadata"]["KeyId"] for n in range(3)]
    cli("kms", "create-alias", "--alias-name", "alias/one", "--target-key-id", ids[0])
    cli("kms", "create-alias", "--alias-name", "alias/two", "--target-key-id", ids[1])
    # --page-size pages, but the CLI pages through everything (like the aws CLI); the service's own
    # --limit turns that off and shows the raw page (as the aws CLI's manual pagination args do)
    listed = _json(cli("kms", "list-keys", "--page-size", "1"))
    assert sorted(k["KeyId"] for k in listed["Keys"]) == sorted(ids)
    assert "NextMarker" not in listed and "Truncated" not in listed
    raw = _json(cli("kms", "list-keys", "--limit", "1"))
    assert len(raw["Keys"]) == 1 and raw["Truncated"] is True and "NextMarker" in raw
    # a filter expression
    r = cli("kms", "list-aliases", "--query", "Aliases[?AliasName=='alias/two'].TargetKeyId", "--output", "text")
    assert r.text == ids[1] + "\n"
    # a multi-select hash
    r = cli("kms", "describe-key", "--key-id", "alias/one", "--query", "KeyMetadata.{Id:KeyId,State:KeyState}")
    assert json.loads(r.out) == {"Id": ids[0], "State": "Enabled"}
    # text output of a list of objects: one row per object, columns sorted by key
    r = cli("kms", "list-aliases", "--key-id", ids[0], "--output", "text")
    (line,) = r.text.splitlines()
    fields = line.split("\t")
    assert fields[0] == "ALIASES" and "alias/one" in fields and ids[0] in fields
    # a query that matches nothing prints null (json) / None (text), as the aws CLI does
    assert cli("kms", "describe-key", "--key-id", ids[2], "--query", "Nope").text == "null\n"
    assert cli("kms", "describe-key", "--key-id", ids[2], "--query", "Nope", "--output", "text").text == "None\n"
    r = cli("kms", "list-keys", "--query", "Keys[?")
    assert r.code == 252 and "bad --query expression" in r.err


# The aws CLI's return codes: https://docs.aws.amazon.com/cli/latest/topic/return-codes.html
@pytest.mark.parametrize("argv,code,message", [
    (["describe-key", "--key-id", "alias/missing"], 254,
     "An error occurred (NotFoundException) when calling the DescribeKey operation"),
    (["encrypt", "--key-id", "alias/x", "--plaintext", "not base64!"], 252, "--plaintext: not valid base64"),
    (["encrypt", "--key-id", "alias/x", "--plaintext", "fileb://missing.bin"], 252,
     "Unable to load paramfile missing.bin"),
    (["put-key-policy", "--key-id", "k", "--policy", "file://missing.json"], 252,
     "Unable to load paramfile missing.json"),
    (["encrypt", "--key-id", "alias/x", "--plaintext", "aGk=", "--encryption-context", "novalue"], 252,
     "expected K=V,K2=V2 or JSON"),
    (["describe-key"], 252, "the following arguments are required: --key-id"),
    (["frobnicate-key"], 252, "invalid choice"),
    (["list-keys", "--output", "xml"], 252, "invalid choice"),
], ids=["kms-error", "bad-base64", "missing-fileb", "missing-file", "bad-map", "missing-flag", "bad-op",
        "bad-output"])
def test_errors(cli, argv: list[str], code: int, message: str) -> None:
    r = cli("kms", *argv)
    assert r.code == code
    assert message in r.err


def test_base64_hint_for_blobs(cli) -> None:
    r = cli("kms", "encrypt", "--key-id", "alias/x", "--plaintext", "hello world")
    assert "hint: pass fileb://FILE" in r.err


def test_json_parameters_and_tags(cli) -> None:
    key_id = _json(cli("kms", "create-key", "--tags", '[{"TagKey": "a", "TagValue": "1"}]'))["KeyMetadata"]["KeyId"]
    cli("kms", "tag-resource", "--key-id", key_id, "--tags", "TagKey=b,TagValue=2", "TagKey=c,TagValue=3")
    tags = _json(cli("kms", "list-resource-tags", "--key-id", key_id))["Tags"]
    assert sorted((t["TagKey"], t["TagValue"]) for t in tags) == [("a", "1"), ("b", "2"), ("c", "3")]
    cli("kms", "untag-resource", "--key-id", key_id, "--tag-keys", "a", "b")
    assert [t["TagKey"] for t in _json(cli("kms", "list-resource-tags", "--key-id", key_id))["Tags"]] == ["c"]
    enc = _json(cli("kms", "encrypt", "--key-id", key_id, "--plaintext", "aGk=", "--encryption-context",
                    '{"x": "y,z"}'))
    Path("ct").write_bytes(base64.b64decode(enc["CiphertextBlob"]))
    assert cli("kms", "decrypt", "--ciphertext-blob", "fileb://ct", "--encryption-context", '{"x": "y,z"}').code == 0


def test_caller_identity_principal(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVELOPE_PRINCIPAL", "arn:aws:iam::444455556666:role/Ops")
    ident = _json(cli("sts", "get-caller-identity"))
    assert ident == {"UserId": "Ops", "Account": "444455556666", "Arn": "arn:aws:iam::444455556666:role/Ops"}
    r = cli("sts", "get-caller-identity", "--principal", "nonsense")
    assert r.code == 252 and "hint: for example arn:aws:iam::" in r.err


def test_audit_detects_tampering(cli, data_dir: Path) -> None:
    key_id = _json(cli("kms", "create-key"))["KeyMetadata"]["KeyId"]
    cli("kms", "describe-key", "--key-id", key_id)
    head = _json(cli("kms", "audit", "head"))
    assert head["SequenceNumber"] == 2
    assert _json(cli("kms", "audit", "verify", "--anchor", head["Anchor"]))["Valid"] is True
    cli("kms", "audit", "export", "--outfile", "events.jsonl")
    names = [json.loads(line)["eventName"] for line in Path("events.jsonl").read_text().splitlines()]
    assert names == ["CreateKey", "DescribeKey"]
    (db,) = data_dir.glob("*us-east-1*.sqlite3")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_events SET body = replace(body, 'DescribeKey', 'ListKeys') WHERE seq = 2")
    r = cli("kms", "audit", "verify")
    assert r.code == 255  # the aws CLI's "command failed"
    assert json.loads(r.out)["Valid"] is False


def test_audit_lookup_filters(cli) -> None:
    app = "arn:aws:iam::111122223333:role/App"
    key_id = _json(cli("kms", "create-key"))["KeyMetadata"]["KeyId"]
    cli("kms", "describe-key", "--key-id", key_id, "--principal", app)  # denied: App has no permission
    for _ in range(3):
        cli("kms", "describe-key", "--key-id", key_id)
    events = _json(cli("kms", "audit", "lookup", "--max-results", "2"))["Events"]
    assert len(events) == 2 and events[0]["sequenceNumber"] > events[1]["sequenceNumber"]  # newest first
    denied = _json(cli("kms", "audit", "lookup", "--principal-arn", app))["Events"]
    assert [e["errorCode"] for e in denied] == ["AccessDeniedException"]
    assert _json(cli("kms", "audit", "lookup", "--end-time", "2000-01-01T00:00:00Z"))["Events"] == []
    assert len(_json(cli("kms", "audit", "lookup", "--start-time", "0"))["Events"]) == 5
    r = cli("kms", "audit", "lookup", "--start-time", "yesterday")
    assert r.code == 252 and "not a time" in r.err
    names = cli("kms", "audit", "lookup", "--query", "Events[].eventName", "--output", "text").text.split()
    assert names == ["DescribeKey"] * 4 + ["CreateKey"]
