"""The generated KMS operation table: current with the installed botocore, and the facts it states."""

from __future__ import annotations

import pytest

from envelope.kms import LocalKMS
from envelope.kms.model.operations import OPERATIONS


def test_the_committed_table_is_what_the_installed_botocore_generates() -> None:
    pytest.importorskip("botocore", reason="botocore (the test extra) holds the KMS model the table comes from")
    from pathlib import Path

    from envelope.kms.model import generate_operations

    committed = Path(generate_operations.__file__).with_name("operations.py").read_text(encoding="utf-8")
    assert committed == generate_operations._installed(), (
        "envelope/kms/model/operations.py is stale: run python -m envelope.kms.model.generate_operations")


def test_constraints_come_from_the_model() -> None:
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html: AliasName 1-256, pattern
    alias = {m.name: m for m in OPERATIONS["CreateAlias"].members}["AliasName"]
    assert (alias.wire_name, alias.required, alias.min_length, alias.max_length, alias.pattern) == (
        "aliasName", True, 1, 256, "^[a-zA-Z0-9:/_-]+$")
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_GenerateDataKey.html
    gdk = {m.name: m for m in OPERATIONS["GenerateDataKey"].members}
    assert (gdk["NumberOfBytes"].min_value, gdk["NumberOfBytes"].max_value) == (1, 1024)
    assert gdk["KeySpec"].enum == ("AES_256", "AES_128")
    assert gdk["GrantTokens"].max_length == 10 and gdk["GrantTokens"].item is not None
    assert {m.name: m for m in OPERATIONS["Encrypt"].members}["Plaintext"].sensitive


def test_which_key_ids_take_an_alias() -> None:
    # The API reference: "Specify the key ID or key ARN of the KMS key" (EnableKeyRotation, ...) or "The
    # key ARN" (RetireGrant) refuse aliases; "key ID, key ARN, alias name, or alias ARN" (Encrypt, ...)
    # and the silent GenerateMac/VerifyMac pages (cryptographic operations) take them.
    def accepts(op: str, member: str = "KeyId") -> bool | None:
        return {m.name: m for m in OPERATIONS[op].members}[member].accepts_alias

    for op in ("EnableKeyRotation", "PutKeyPolicy", "GetKeyPolicy", "EnableKey", "DisableKey",
               "ScheduleKeyDeletion", "CancelKeyDeletion", "TagResource", "UntagResource", "CreateGrant",
               "ListGrants", "RotateKeyOnDemand", "UpdateKeyDescription", "RetireGrant", "ListAliases"):
        assert accepts(op) is False, op
    assert accepts("CreateAlias", "TargetKeyId") is False
    for op in ("Encrypt", "Decrypt", "GenerateDataKey", "DescribeKey", "GetPublicKey", "Sign", "GenerateMac",
               "VerifyMac"):
        assert accepts(op) is True, op
    assert accepts("ReEncrypt", "DestinationKeyId") is True


def test_iam_action_access_and_paging() -> None:
    assert OPERATIONS["Decrypt"].iam_action == "kms:Decrypt" and OPERATIONS["Decrypt"].method == "decrypt"
    assert OPERATIONS["GenerateDataKeyWithoutPlaintext"].method == "generate_data_key_without_plaintext"
    assert OPERATIONS["ListKeys"].read_only and OPERATIONS["DescribeKey"].read_only
    assert not OPERATIONS["Encrypt"].read_only and not OPERATIONS["CreateKey"].read_only
    paging = OPERATIONS["ListAliases"].paginator
    assert paging is not None and (paging.input_token, paging.output_token, paging.result_key) == (
        "Marker", "NextMarker", "Aliases")
    assert OPERATIONS["Encrypt"].paginator is None
    assert OPERATIONS["Encrypt"].summary == "Encrypts plaintext of up to 4,096 bytes using a KMS key."


def test_every_client_method_is_an_operation_of_the_table() -> None:
    methods = {op.method for op in OPERATIONS.values()}
    public = {name for name, value in vars(LocalKMS).items() if callable(value) and not name.startswith("_")}
    helpers = {"for_principal", "for_region"}
    assert public - helpers <= methods
