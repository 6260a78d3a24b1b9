"""The wire protocol tables agree with botocore's KMS model; the codecs round-trip."""

from __future__ import annotations

import base64
import inspect
import json
from datetime import UTC, datetime
from typing import Any

import botocore.session  # type: ignore[import-untyped]
import pytest

from envelope.kms import LocalKMS
from envelope.kms.server.protocol import (
    BLOB_FIELDS,
    NESTED_BLOB_FIELDS,
    OPERATIONS,
    ProtocolError,
    decode_request,
    encode_response,
    error_status,
)

MODEL = botocore.session.get_session().get_service_model("kms")


def _input_blobs() -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()

    def walk(shape: Any, path: tuple[str, ...]) -> None:
        if shape.type_name == "structure":
            for name, member in shape.members.items():
                walk(member, path + (name,))
        elif shape.type_name == "list":
            walk(shape.member, path + ("[]",))
        elif shape.type_name == "blob":
            found.add(path)

    for name in MODEL.operation_names:
        operation = MODEL.operation_model(name)
        if operation.input_shape is not None:
            walk(operation.input_shape, ())
    return found


def test_blob_tables_match_the_kms_model() -> None:
    ours = {(name,) for name in BLOB_FIELDS} | {(outer, inner) for outer, names in NESTED_BLOB_FIELDS.items()
                                                for inner in names}
    assert ours == _input_blobs()


def test_every_localkms_operation_is_served_under_its_kms_name() -> None:
    assert set(OPERATIONS) <= set(MODEL.operation_names)
    for operation, method in OPERATIONS.items():
        assert callable(getattr(LocalKMS, method)), operation
    assert {"Encrypt", "Decrypt", "GenerateDataKey", "ReEncrypt", "GenerateDataKeyPairWithoutPlaintext",
            "GenerateMac", "ReplicateKey", "ImportKeyMaterial"} <= set(OPERATIONS)
    methods = {n for n in dir(LocalKMS) if not n.startswith("_") and inspect.isfunction(getattr(LocalKMS, n))}
    assert set(OPERATIONS.values()) == methods - {"for_principal", "for_region"}


def test_decode_request_turns_blobs_into_bytes() -> None:
    body = json.dumps({"KeyId": "k", "Plaintext": base64.b64encode(b"\x00\xff").decode(),
                       "Recipient": {"AttestationDocument": "AQI=", "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"},
                       "EncryptionContext": {"Plaintext": "stays text"}}).encode()
    decoded = decode_request(body)
    assert decoded["Plaintext"] == b"\x00\xff" and decoded["Recipient"]["AttestationDocument"] == b"\x01\x02"
    assert decoded["EncryptionContext"] == {"Plaintext": "stays text"}
    assert decode_request(b"") == {} and decode_request(b'{"Plaintext": null}') == {"Plaintext": None}


@pytest.mark.parametrize("body", [b"{", b"[]", b'"text"', b'{"Plaintext": "a"}', b'{"Mac": 1}', b"\xff\xfe",
                                  b"[" * 100_000, b'{"a":' * 100_000],
                         ids=["truncated", "array", "string", "bad-padding", "number-blob", "not-utf8",
                              "deep-array", "deep-object"])
def test_decode_request_refuses_malformed_bodies(body: bytes) -> None:
    with pytest.raises(ProtocolError) as exc:
        decode_request(body)
    assert exc.value.code == "SerializationException" and exc.value.status == 400


def test_encode_response_uses_base64_and_epoch_seconds() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)
    out = json.loads(encode_response({"CiphertextBlob": b"\x01\x02", "KeyMetadata": {"CreationDate": when},
                                      "Rotations": [{"RotationDate": when}], "ResponseMetadata": {"x": 1}}))
    assert out == {"CiphertextBlob": "AQI=", "KeyMetadata": {"CreationDate": when.timestamp()},
                   "Rotations": [{"RotationDate": when.timestamp()}]}


@pytest.mark.parametrize(("code", "status"), [("NotFoundException", 400), ("AccessDeniedException", 400),
                                              ("KMSInternalException", 500), ("DependencyTimeoutException", 503),
                                              ("ThrottlingException", 400)],
                         ids=["not-found", "access-denied", "internal", "dependency-timeout", "throttling"])
def test_error_status(code: str, status: int) -> None:
    assert error_status(code) == status


def test_public_names_are_pinned() -> None:
    from envelope.kms import server

    assert server.__all__ == ["AccessKeys", "DEFAULT_PORT", "KMSApp", "KMSServer", "serve"]
    assert server.__all__ == sorted(server.__all__)
    assert all(hasattr(server, name) for name in server.__all__)
