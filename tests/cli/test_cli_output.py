"""The aws-CLI-shaped output formatter: JSON and text, blobs and times."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from envelope_cli.output import emit


def _out(response: object, fmt: str, query: str | None = None) -> str:
    stream = io.StringIO()
    emit(response, fmt=fmt, query=query, stream=stream)
    return stream.getvalue()


def test_json_blobs_and_times() -> None:
    response = {"CiphertextBlob": b"\x00\xff", "CreationDate": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)}
    assert _out(response, "json") == ('{\n    "CiphertextBlob": "AP8=",\n'
                                      '    "CreationDate": "2026-01-02T03:04:05+00:00"\n}\n')
    assert _out({}, "json") == ""


@pytest.mark.parametrize("response,expected", [
    ({"KeyId": "k", "Enabled": True}, "True\tk\n"),
    ({"Keys": [{"KeyId": "a", "KeyArn": "arn-a"}, {"KeyId": "b"}]}, "KEYS\tarn-a\ta\nKEYS\t\tb\n"),
    ({"KeyMetadata": {"KeyId": "k", "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"]}},
     "KEYMETADATA\tk\nENCRYPTIONALGORITHMS\tSYMMETRIC_DEFAULT\n"),
    ({"PolicyNames": ["default", "other"]}, "POLICYNAMES\tdefault\nPOLICYNAMES\tother\n"),
    ({"Plaintext": b"hi"}, "aGk=\n"),
], ids=["scalars", "list-of-objects", "nested", "scalar-list", "blob"])
def test_text(response: object, expected: str) -> None:
    assert _out(response, "text") == expected


def test_text_after_query() -> None:
    response = {"Aliases": [{"AliasName": "alias/a", "TargetKeyId": "1"}, {"AliasName": "alias/b"}]}
    assert _out(response, "text", "Aliases[].AliasName") == "alias/a\talias/b\n"
    assert _out(response, "text", "Aliases[0].AliasName") == "alias/a\n"


SAMPLES = {
    "describe-key": {"KeyMetadata": {"KeyId": "k", "Enabled": True, "KeyUsage": "ENCRYPT_DECRYPT",
                                     "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
                                     "MultiRegionConfiguration": {"MultiRegionKeyType": "PRIMARY",
                                                                  "ReplicaKeys": [{"Arn": "a", "Region": "r"}]}}},
    "list-aliases": {"Aliases": [{"AliasName": "alias/a", "TargetKeyId": "1"}, {"AliasName": "alias/b"}]},
    "list-grants": {"Grants": [{"GrantId": "g", "Operations": ["Encrypt", "Decrypt"],
                                "Constraints": {"EncryptionContextSubset": {"k": "v"}}}]},
    "nested-lists": {"Rows": [[1, 2], [3]], "Mixed": [1, [2, 3]]},
    "empty": {"Keys": [], "Truncated": False},
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_text_matches_the_aws_cli(name: str) -> None:
    awscli_text = pytest.importorskip("awscli.text")
    expected = io.StringIO()
    awscli_text.format_text(SAMPLES[name], expected)
    assert _out(SAMPLES[name], "text") == expected.getvalue()
