"""The aws-CLI-shaped output formatter: JSON, text and table, blobs and times."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime

import pytest
from envelope_cli import table as envelope_table
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


# Responses in boto3 shape, named as the aws CLI titles a table (the operation name).
SAMPLES = {
    "DescribeKey": {"KeyMetadata": {"KeyId": "k", "Enabled": True, "KeyUsage": "ENCRYPT_DECRYPT",
                                    "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
                                    "MultiRegionConfiguration": {"MultiRegionKeyType": "PRIMARY",
                                                                 "ReplicaKeys": [{"Arn": "a", "Region": "r"}]}}},
    "ListAliases": {"Aliases": [{"AliasName": "alias/a", "TargetKeyId": "1"}, {"AliasName": "alias/b"}]},
    "ListGrants": {"Grants": [{"GrantId": "g", "Operations": ["Encrypt", "Decrypt"],
                               "Constraints": {"EncryptionContextSubset": {"k": "v"}}},
                              {"GrantId": "h", "Name": "n"}]},
    "Single": {"KeyId": "only-one"},
    "Lists": {"Rows": [[1, 2], [3, 4]], "Mixed": [1, 2]},
    "NestedLists": {"Rows": [[1, 2], [3]], "Mixed": [1, [2, 3]]},
    "Empty": {"Keys": [], "Truncated": False},
    "Wide": {"KeyMetadata": {"Arn": "arn:aws:kms:us-east-1:111122223333:key/" + "x" * 36, "KeyId": "x" * 36,
                             "Description": "d" * 40, "KeyState": "Enabled"}},
    "Unicode": {"Aliases": [{"AliasName": "alias/\u65e5\u672c", "TargetKeyId": "1"}]},
}
# The aws CLI's own table formatter raises on rows of unequal length.
TABLE_SAMPLES = [name for name in SAMPLES if name != "NestedLists"]


@pytest.mark.parametrize("name", list(SAMPLES))
def test_text_matches_the_aws_cli(name: str) -> None:
    awscli_text = pytest.importorskip("awscli.text")
    expected = io.StringIO()
    awscli_text.format_text(SAMPLES[name], expected)
    assert _out(SAMPLES[name], "text") == expected.getvalue()


@pytest.mark.parametrize("width", [80, 400])
@pytest.mark.parametrize("name", TABLE_SAMPLES)
def test_table_matches_the_aws_cli(name: str, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    awscli_table = pytest.importorskip("awscli.table")
    formatter = pytest.importorskip("awscli.formatter")

    monkeypatch.setattr(awscli_table, "determine_terminal_width", lambda default_width=80: width)
    expected = io.StringIO()
    formatter.TableFormatter(argparse.Namespace(color="off", query=None))._format_response(
        name, SAMPLES[name], expected)
    monkeypatch.setattr(envelope_table, "_terminal_width", lambda: width)
    ours = io.StringIO()
    emit(SAMPLES[name], fmt="table", query=None, stream=ours, title=name)
    assert ours.getvalue() == expected.getvalue()


@pytest.mark.parametrize("name", ["DescribeKey", "ListGrants"])
def test_colored_table_matches_the_aws_cli(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # --color on: awscli's ColorizedStyler (bright blue cells, dim yellow nesting bars)
    awscli_table = pytest.importorskip("awscli.table")
    formatter = pytest.importorskip("awscli.formatter")
    monkeypatch.setattr(awscli_table, "determine_terminal_width", lambda default_width=80: 200)
    expected = io.StringIO()
    formatter.TableFormatter(argparse.Namespace(color="on", query=None))._format_response(
        name, SAMPLES[name], expected)
    monkeypatch.setattr(envelope_table, "_terminal_width", lambda: 200)
    ours = io.StringIO()
    emit(SAMPLES[name], fmt="table", query=None, stream=ours, title=name, color="on")
    assert ours.getvalue() == expected.getvalue()
    plain = io.StringIO()
    emit(SAMPLES[name], fmt="table", query=None, stream=plain, title=name, color="auto")  # not a terminal
    assert "\x1b[" not in plain.getvalue()
