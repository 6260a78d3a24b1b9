"""The session split the async driver uses: `plan_encryption` (options and request, no keyring
call) and `start_encryption` (from materials), which `new_encryptor` is made of."""

from __future__ import annotations

from typing import Any

import pytest
from _aio_helpers import KEYRING, UNSIGNED

import envelope
from envelope.materials.materials import EncryptionMaterials, EncryptionRequest
from envelope.streaming.decryptor import MessageDecryptor
from envelope.streaming.session import (
    EncryptPlan,
    authenticate_header,
    new_encryptor,
    plan_encryption,
    start_encryption,
)


class _Refusing:
    """A materials manager that must not be called."""

    def get_encryption_materials(self, request: EncryptionRequest) -> EncryptionMaterials:
        raise AssertionError("the materials manager was called")

    def decrypt_materials(self, request: Any) -> Any:
        raise AssertionError("the materials manager was called")


def _materials(plan: EncryptPlan, keyring: envelope.Keyring = KEYRING) -> EncryptionMaterials:
    return envelope.DefaultMaterialsManager(keyring).get_encryption_materials(plan.request)


def test_plan_builds_the_request_without_a_keyring() -> None:
    plan = plan_encryption(encryption_context={"a": "1"}, algorithm=UNSIGNED, frame_length=4096,
                           commitment_policy="REQUIRE_ENCRYPT_ALLOW_DECRYPT", plaintext_length=10)
    assert plan.request.encryption_context == {"a": "1"}
    assert plan.request.algorithm is envelope.AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
    assert plan.request.commitment_policy is envelope.CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT
    assert plan.request.plaintext_length == 10
    assert plan.frame_length == 4096
    compressed = plan_encryption(compression="zstd", plaintext_length=10)
    assert compressed.request.encryption_context == {"envelope:compression": "zstd"}
    assert compressed.request.plaintext_length is None  # the compressed length is unknown
    assert compressed.compression_level == 3


@pytest.mark.parametrize(("options", "error"), [
    ({"frame_length": "big"}, TypeError),
    ({"frame_length": True}, TypeError),
    ({"frame_length": 2**32}, ValueError),
    ({"max_encrypted_data_keys": 0}, ValueError),
    ({"encryption_context": {"envelope:x": "1"}}, ValueError),
    ({"encryption_context": {"a": 1}}, TypeError),
    ({"compression": "gzip"}, ValueError),
    ({"compression_level": 3}, ValueError),
    ({"algorithm": "NO_SUCH_SUITE"}, ValueError),
], ids=["frame-str", "frame-bool", "frame-big", "edks-0", "reserved-prefix", "context-int", "gzip",
        "level-alone", "suite"])
def test_plan_and_new_encryptor_refuse_the_same_options(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        plan_encryption(**options)
    with pytest.raises(error):  # and before any keyring or manager call
        new_encryptor(materials_manager=_Refusing(), **options)


def test_start_from_materials_gives_a_message_like_new_encryptor() -> None:
    plan = plan_encryption(encryption_context={"k": "v"}, algorithm=UNSIGNED, frame_length=100)
    session = start_encryption(plan, _materials(plan))
    message = session.update(b"x" * 250) + session.finalize()
    plaintext, header = envelope.decrypt(message, keyring=KEYRING)
    assert plaintext == b"x" * 250
    assert header.frame_length == 100
    assert header.encryption_context == {"k": "v"}
    # A plan may start several messages: each has its own id and compressor.
    zstd = plan_encryption(compression="zstd", algorithm=UNSIGNED)
    first, second = start_encryption(zstd, _materials(zstd)), start_encryption(zstd, _materials(zstd))
    assert first.compressor is not second.compressor
    assert first.encryptor.message_id != second.encryptor.message_id
    for s in (first, second):
        assert envelope.decrypt(s.update(b"abc" * 100) + s.finalize(), keyring=KEYRING)[0] == b"abc" * 100


def test_start_applies_policy_and_edk_limit() -> None:
    plan = plan_encryption(algorithm=UNSIGNED, max_encrypted_data_keys=1)
    two = envelope.MultiKeyring(generator=KEYRING, children=[KEYRING])
    with pytest.raises(envelope.PolicyError, match="max_encrypted_data_keys"):
        start_encryption(plan, _materials(plan, two))
    legacy = plan_encryption(algorithm="AES_256_GCM_IV12_TAG16_HKDF_SHA256",
                             commitment_policy="FORBID_ENCRYPT_ALLOW_DECRYPT")
    materials = _materials(legacy)
    strict = plan_encryption(algorithm=UNSIGNED)  # REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    with pytest.raises(envelope.PolicyError, match="forbids"):
        start_encryption(strict, materials)


def test_authenticate_header_with_materials_obtained_elsewhere() -> None:
    message = envelope.encrypt(b"payload", keyring=KEYRING, encryption_context={"c": "d"})
    decryptor = MessageDecryptor()
    decryptor.update(message)
    assert decryptor.request is not None
    materials = envelope.DefaultMaterialsManager(KEYRING).decrypt_materials(decryptor.request)
    header = authenticate_header(decryptor, materials)
    assert header.encryption_context["c"] == "d"
    assert decryptor.update(b"") == b"payload"
    decryptor.finalize()
    # The data key of another message: its key commitment does not match.
    other = MessageDecryptor()
    other.update(envelope.encrypt(b"payload", keyring=KEYRING, encryption_context={"c": "d"}))
    with pytest.raises(envelope.AuthenticationError, match="commitment"):
        authenticate_header(other, materials)
