"""`envelope kms` commands, flags, help and paginators come from the service's operation table
(issue 13 item 2, issue 11 item 6): they equal the table's operations and members, and so botocore's
KMS model (what `aws kms` is built from), and cannot drift.

https://docs.aws.amazon.com/cli/latest/userguide/cli-usage-shorthand.html (shorthand syntax)
https://docs.aws.amazon.com/cli/latest/reference/kms/index.html (the aws kms commands)
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import re

import pytest
from envelope_cli.kms_table import OPERATIONS, PAGINATORS
from envelope_cli.main import build_parser

from envelope.kms.model.operations import OPERATIONS as MODEL

botocore_session = pytest.importorskip("botocore.session")
from botocore import xform_name  # type: ignore[import-untyped]

# Commands of `envelope kms` that are not KMS operations, defined by hand on purpose.
NOT_AWS = {"audit", "serve", "create-access-key", "list-access-keys", "delete-access-key", "backup", "restore",
           "rotate-root-key", "migrate", "copy-store"}
PAGING = {"--max-items", "--starting-token", "--page-size"}


def _kms_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    kms = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["kms"]
    return dict(next(a for a in kms._actions if isinstance(a, argparse._SubParsersAction)).choices)


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings
            if s.startswith("--") and not s.startswith("--no-") and s != "--help"}


def test_commands_and_flags_are_the_tables_operations_and_members() -> None:
    parsers = _kms_parsers()
    assert set(parsers) - NOT_AWS == {op.method.replace("_", "-") for op in MODEL.values()}
    assert NOT_AWS <= set(parsers)  # the list of our own commands is exact
    for op in MODEL.values():
        name = op.method.replace("_", "-")
        expected = {"--" + xform_name(m.name, "-") for m in op.members}
        if op.paginator is not None:
            expected |= PAGING
        assert _flags(parsers[name]) == expected, name


def test_commands_are_the_aws_cli_names_of_botocores_model() -> None:
    model = botocore_session.get_session().get_service_model("kms")
    assert set(OPERATIONS) == {xform_name(name, "-") for name in model.operation_names}
    for name in model.operation_names:
        members = model.operation_model(name).input_shape.members
        assert set(OPERATIONS[xform_name(name, "-")].params) == set(members)


def test_paginators_are_botocores() -> None:
    loader = botocore_session.get_session().get_component("data_loader")
    config = loader.load_service_model("kms", "paginators-1")["pagination"]
    assert {xform_name(name, "-") for name in config} == set(PAGINATORS)
    for name, entry in config.items():
        assert PAGINATORS[xform_name(name, "-")] == {k: entry[k] for k in PAGINATORS[xform_name(name, "-")]}


def _first_sentence(doc: str) -> str:
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", doc))).strip()
    return text.split(". ")[0].rstrip(".")


@pytest.mark.parametrize(("command", "operation", "member"), [
    ("encrypt", "Encrypt", "KeyId"), ("create-key", "CreateKey", "KeySpec"),
    ("list-aliases", "ListAliases", "KeyId"), ("create-grant", "CreateGrant", "Constraints"),
])
def test_help_text_is_botocores_documentation(cli, command: str, operation: str, member: str) -> None:
    model = botocore_session.get_session().get_service_model("kms").operation_model(operation)
    r = cli("kms", command, "--help")
    assert r.code == 0
    flat = re.sub(r"\s+", " ", r.text)
    assert _first_sentence(model.documentation) in flat
    assert _first_sentence(model.input_shape.members[member].documentation) in flat


def test_shorthand_tags_context_and_structures(cli) -> None:
    made = cli("kms", "create-key", "--tags", "TagKey=team,TagValue=payments", "TagKey=env,TagValue=prod")
    assert made.code == 0, made.err
    key = json.loads(made.out)["KeyMetadata"]["KeyId"]
    tags = json.loads(cli("kms", "list-resource-tags", "--key-id", key).out)["Tags"]
    assert sorted(tags, key=lambda t: t["TagKey"]) == [{"TagKey": "env", "TagValue": "prod"},
                                                       {"TagKey": "team", "TagValue": "payments"}]
    plaintext = base64.b64encode(b"hello").decode()
    enc = cli("kms", "encrypt", "--key-id", key, "--plaintext", plaintext, "--encryption-context", "a=1,b=2")
    assert enc.code == 0, enc.err
    blob = json.loads(enc.out)["CiphertextBlob"]
    dec = cli("kms", "decrypt", "--ciphertext-blob", blob, "--encryption-context", "b=2,a=1")
    assert json.loads(dec.out)["Plaintext"] == plaintext
    assert cli("kms", "decrypt", "--ciphertext-blob", blob, "--encryption-context", "a=1").code == 254
    grant = cli("kms", "create-grant", "--key-id", key, "--operations", "Decrypt", "Encrypt",
                "--grantee-principal", "arn:aws:iam::111122223333:role/app",
                "--constraints", "EncryptionContextSubset={a=1,b=2}")
    assert grant.code == 0, grant.err
    grants = json.loads(cli("kms", "list-grants", "--key-id", key).out)["Grants"]
    assert grants[0]["Constraints"] == {"EncryptionContextSubset": {"a": "1", "b": "2"}}
    assert sorted(grants[0]["Operations"]) == ["Decrypt", "Encrypt"]


def test_an_operation_the_embedded_service_does_not_serve(cli) -> None:
    r = cli("kms", "describe-custom-key-stores")
    assert r.code == 254
    assert "(UnknownOperationException) when calling the DescribeCustomKeyStores operation" in r.err
