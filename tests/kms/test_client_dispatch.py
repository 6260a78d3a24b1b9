"""LocalKMS's methods and the endpoint's dispatch come from the operation table (issue 11 item 6)."""

from __future__ import annotations

import inspect

import pytest

from envelope.kms import LocalKMS
from envelope.kms.model.operations import OPERATIONS
from envelope.kms.ops import generate_api
from envelope.kms.ops.registry import PLANS
from envelope.kms.server.protocol import BLOB_FIELDS
from envelope.kms.server.protocol import OPERATIONS as SERVED_BY_ENDPOINT


def test_the_typed_declarations_are_current() -> None:
    # `ops/api.py` is generated from the table; regenerate with `python -m envelope.kms.ops.generate_api`.
    assert generate_api.main(["--check"]) == 0


def test_every_method_is_an_operation_of_the_table_and_nothing_else() -> None:
    methods = {name for name, value in vars(LocalKMS).items()
               if inspect.isfunction(value) and not name.startswith("_")}
    assert methods - {"for_principal", "for_region"} == {plan.operation.method for plan in PLANS.values()}
    # the endpoint serves exactly these, by the table's operation names
    assert dict(SERVED_BY_ENDPOINT) == {name: OPERATIONS[name].method for name in PLANS}
    # and a handler exists for every operation the client had by hand before the table drove it
    assert {"create_key", "encrypt", "generate_data_key", "list_aliases", "derive_shared_secret",
            "import_key_material", "verify_mac"} <= methods
    assert not hasattr(LocalKMS, "connect_custom_key_store")  # not served: no method


def test_methods_carry_the_table_name_and_summary() -> None:
    method = LocalKMS.generate_data_key
    assert method.__name__ == "generate_data_key"
    assert OPERATIONS["GenerateDataKey"].summary in (method.__doc__ or "")


def test_the_endpoint_decodes_the_table_blob_members() -> None:
    blobs = {m.name for op in OPERATIONS.values() for m in op.members if m.type == "blob"}
    assert BLOB_FIELDS == blobs and {"Plaintext", "CiphertextBlob", "Signature"} <= BLOB_FIELDS


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"KeyId": "k", "KeySpec": "AES_256", "Bogus": 1}, "unknown parameter(s) Bogus"),
    ({"KeyId": 7, "KeySpec": "AES_256"}, "KeyId must be a str"),
    ({"KeyId": "k", "NumberOfBytes": True}, "NumberOfBytes must be an int"),
    ({"KeyId": "k", "NumberOfBytes": "32"}, "NumberOfBytes must be an int"),
    ({"KeyId": "k", "KeySpec": "AES_256", "GrantTokens": "t"}, "GrantTokens must be a list"),
    ({"KeyId": "k", "KeySpec": "AES_256", "EncryptionContext": [("a", "b")]}, "EncryptionContext must be a dict"),
    ({"KeyId": "k", "KeySpec": "AES_256", "DryRun": "yes"}, "DryRun must be a bool"),
])
def test_names_and_types_are_checked_as_botocore_does(kwargs: dict[str, object], message: str) -> None:
    kms = LocalKMS(":memory:")
    with pytest.raises(TypeError, match=f"^GenerateDataKey: {message.replace('(', '.').replace(')', '.')}$"):
        kms.generate_data_key(**kwargs)
    # the refused call is audited as a ValidationException, as before
    assert kms.audit.lookup(limit=1)[0]["errorCode"] == "ValidationException"


def test_positional_arguments_are_refused() -> None:
    with pytest.raises(TypeError):
        LocalKMS(":memory:").list_keys({"Limit": 1})  # type: ignore[call-arg]


def test_blob_members_accept_any_bytes_like_value() -> None:
    kms = LocalKMS(":memory:")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key, Plaintext=bytearray(b"abc"))["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=memoryview(blob))["Plaintext"] == b"abc"


def test_the_engine_reads_the_subject_key_for_single_key_operations() -> None:
    # Call.subject: KeyId from the table, the table's IAM action; the handler never names either.
    plan = PLANS["EnableKeyRotation"]
    assert plan.subject == "KeyId" and plan.claimed == frozenset({"KeyId"})
    assert PLANS["ListKeys"].subject is None and PLANS["CreateKey"].subject is None
    assert PLANS["Decrypt"].subject is None  # Decrypt's KeyId is optional: the ciphertext names the key


def test_a_missing_required_member_is_a_type_error_before_anything_else() -> None:
    kms = LocalKMS(":memory:")
    # botocore refuses it before sending, whatever else is wrong with the call
    with pytest.raises(TypeError, match="^ScheduleKeyDeletion: missing required parameter KeyId$"):
        kms.schedule_key_deletion(PendingWindowInDays=3)
