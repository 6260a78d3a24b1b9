"""Rewrap (format-spec/operations.md §2): new data keys, same message id, context and body, with
the ESDK package as the judge of every rewrapped message."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest
from _esdk_helpers import (
    AWSEncryptionSDKClientError,
    esdk_aes_key,
    esdk_decrypt,
    esdk_encrypt,
    esdk_multi,
    policy_for,
)

import envelope
from envelope.format.header import parse_header

OLD_KEY, NEW_KEY, OTHER_KEY = bytes(range(32)), bytes(range(1, 33)), bytes(range(2, 34))
OLD = envelope.RawAESKeyring("ns", "old", OLD_KEY)
NEW = envelope.RawAESKeyring("ns", "new", NEW_KEY)
OTHER = envelope.RawAESKeyring("ns", "other", OTHER_KEY)
ESDK_OLD, ESDK_NEW, ESDK_OTHER = (esdk_aes_key("ns", n, k) for n, k in
                                  (("old", OLD_KEY), ("new", NEW_KEY), ("other", OTHER_KEY)))
PLAINTEXT = os.urandom(5000)
CONTEXT = {"purpose": "rewrap-test"}


def _encrypt(suite: envelope.AlgorithmSuite, frame_length: int, keyring: Any = OLD) -> bytes:
    policy = policy_for(suite) if suite.is_committing else envelope.CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT
    return envelope.encrypt(PLAINTEXT, keyring=keyring, algorithm=suite, frame_length=frame_length,
                            encryption_context=CONTEXT, commitment_policy=policy)


def _rewrap(message: bytes, suite: envelope.AlgorithmSuite, **kwargs: Any) -> tuple[bytes, envelope.Header]:
    out = io.BytesIO()
    header = envelope.rewrap(io.BytesIO(message), out, commitment_policy=policy_for(suite), **kwargs)
    return out.getvalue(), header


def _body(message: bytes) -> bytes:
    return message[parse_header(message).length:]


@pytest.mark.parametrize("suite", list(envelope.AlgorithmSuite), ids=lambda s: s.name)
@pytest.mark.parametrize("frame_length", [0, 128, 4096])
def test_the_esdk_decrypts_every_rewrapped_message_with_the_new_key_only(suite: envelope.AlgorithmSuite,
                                                                         frame_length: int) -> None:
    message = _encrypt(suite, frame_length)
    rewrapped, header = _rewrap(message, suite, keyring=OLD, new_keyring=NEW)
    plaintext, context = esdk_decrypt(rewrapped, ESDK_NEW)
    assert plaintext == PLAINTEXT
    assert {k: v for k, v in context.items() if k != "aws-crypto-public-key"} == CONTEXT
    old = parse_header(message).header
    assert header.message_id == old.message_id and header.frame_length == old.frame_length
    assert [e.provider_info[:3] for e in header.encrypted_data_keys] == [b"new"]
    with pytest.raises(AWSEncryptionSDKClientError):
        esdk_decrypt(rewrapped, ESDK_OLD)
    if not suite.is_signing:
        assert _body(rewrapped) == _body(message)  # byte for byte
    else:
        assert context["aws-crypto-public-key"] != parse_header(message).header.encryption_context[
            "aws-crypto-public-key"]


@pytest.mark.parametrize("suite", [s for s in envelope.AlgorithmSuite if s.is_signing][:1] +
                         [envelope.AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY], ids=lambda s: s.name)
def test_esdk_messages_with_several_keys(suite: envelope.AlgorithmSuite) -> None:
    message = esdk_encrypt(PLAINTEXT, esdk_multi([ESDK_OLD, ESDK_OTHER]), suite, 1024, CONTEXT)
    rewrapped, _ = _rewrap(message, suite, keyring=OTHER, new_keyring=envelope.MultiKeyring(generator=NEW,
                                                                                            children=[OLD]))
    for key in (ESDK_NEW, ESDK_OLD):
        assert esdk_decrypt(rewrapped, key)[0] == PLAINTEXT
    with pytest.raises(AWSEncryptionSDKClientError):
        esdk_decrypt(rewrapped, ESDK_OTHER)


def test_add_and_remove_a_recipient() -> None:
    suite = envelope.AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
    message = _encrypt(suite, 1000)
    added, _ = _rewrap(message, suite, keyring=OLD, new_keyring=NEW, keep_existing=True)
    assert esdk_decrypt(added, ESDK_OLD)[0] == PLAINTEXT
    assert esdk_decrypt(added, ESDK_NEW)[0] == PLAINTEXT
    removed, header = _rewrap(added, suite, keyring=NEW, remove_keys=["old"])
    assert len(header.encrypted_data_keys) == 1
    assert esdk_decrypt(removed, ESDK_NEW)[0] == PLAINTEXT
    with pytest.raises(AWSEncryptionSDKClientError):
        esdk_decrypt(removed, ESDK_OLD)
    assert _body(removed) == _body(message)
    with pytest.raises(envelope.KeyringError, match="no data key wrapped by nobody"):
        _rewrap(added, suite, keyring=NEW, remove_keys=["nobody"])
    with pytest.raises(envelope.KeyringError, match="no data key would be left"):
        _rewrap(message, suite, keyring=OLD, remove_keys=["old"])


def test_signed_messages_cannot_keep_old_keys() -> None:
    message = envelope.encrypt(PLAINTEXT, keyring=OLD)
    with pytest.raises(envelope.PolicyError, match="cannot be kept"):
        envelope.rewrap(io.BytesIO(message), io.BytesIO(), keyring=OLD, new_keyring=NEW, keep_existing=True)


DAMAGES = [(signed, d) for signed in (False, True) for d in ("truncated", "trailing", "reordered")] + [(True, "signature")]


@pytest.mark.parametrize(("signed", "damage"), DAMAGES, ids=[f"{'signed' if s else 'unsigned'}-{d}" for s, d in DAMAGES])
def test_damaged_bodies_are_refused(signed: bool, damage: str) -> None:
    suite = (envelope.AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384 if signed
             else envelope.AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY)
    message = bytearray(_encrypt(suite, 1000))
    start = parse_header(bytes(message)).length
    if damage == "truncated":
        message = message[:-3]
    elif damage == "trailing":
        message += b"\x00"
    elif damage == "reordered":
        message[start + 3] ^= 3  # frame 1 claims another sequence number
    else:
        message[start + 100] ^= 1  # a body byte: only the old signature notices here
    with pytest.raises(envelope.AuthenticationError):
        _rewrap(bytes(message), suite, keyring=OLD, new_keyring=NEW)


def test_a_header_that_does_not_authenticate_is_refused() -> None:
    suite = envelope.AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
    message = bytearray(_encrypt(suite, 1000))
    message[parse_header(bytes(message)).length - 1] ^= 1
    with pytest.raises(envelope.AuthenticationError):
        _rewrap(bytes(message), suite, keyring=OLD, new_keyring=NEW)
    with pytest.raises(envelope.NoMatchingKeyError):
        _rewrap(_encrypt(suite, 1000), suite, keyring=NEW, new_keyring=OTHER)


def test_paths_are_written_atomically_and_in_place(tmp_path: Any) -> None:
    suite = envelope.AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
    path = tmp_path / "m.envelope"
    path.write_bytes(_encrypt(suite, 1000))
    envelope.rewrap(path, path, keyring=OLD, new_keyring=NEW)
    assert envelope.decrypt(path.read_bytes(), keyring=NEW)[0] == PLAINTEXT
    before = path.read_bytes()
    with pytest.raises(envelope.NoMatchingKeyError):
        envelope.rewrap(path, path, keyring=OLD, new_keyring=NEW)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.envelope"]  # no temporary left


def test_required_encryption_context_survives() -> None:
    cmm = envelope.RequiredEncryptionContextManager(keyring=OLD, required_encryption_context_keys=["tenant"])
    message = envelope.encrypt(PLAINTEXT, materials_manager=cmm, encryption_context={"tenant": "a", "x": "y"},
                               algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY")
    out = io.BytesIO()
    header = envelope.rewrap(io.BytesIO(message), out, keyring=OLD, new_keyring=NEW,
                             encryption_context={"tenant": "a"})
    assert "tenant" not in header.encryption_context
    new_cmm = envelope.RequiredEncryptionContextManager(keyring=NEW, required_encryption_context_keys=["tenant"])
    assert envelope.decrypt(out.getvalue(), materials_manager=new_cmm,
                            encryption_context={"tenant": "a"})[0] == PLAINTEXT


def test_misuse() -> None:
    with pytest.raises(TypeError):
        envelope.rewrap(io.BytesIO(), io.BytesIO(), keyring=OLD)
    with pytest.raises(TypeError):
        envelope.rewrap(io.BytesIO(), io.BytesIO(), keyring=OLD, remove_keys="old")


@pytest.mark.parametrize("in_place", [False, True])
def test_signed_messages_of_many_blocks_rewrap_to_a_path(tmp_path: Any, in_place: bool) -> None:
    """A signed rewrap into our own file writes each block at its offset from whichever thread
    has time (rewrap._Blocks): however the writes split, the file holds the blocks in order."""
    suite = envelope.AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
    plaintext = os.urandom(9 * 1024 * 1024 + 123)  # five 2 MiB blocks (limits.HANDOFF_BYTES) and a part
    source = tmp_path / "m.envelope"
    source.write_bytes(envelope.encrypt(plaintext, keyring=OLD, algorithm=suite, frame_length=65536))
    destination = source if in_place else tmp_path / "out.envelope"
    envelope.rewrap(source, destination, keyring=OLD, new_keyring=NEW)
    rewrapped = destination.read_bytes()
    assert esdk_decrypt(rewrapped, ESDK_NEW)[0] == plaintext
    assert envelope.decrypt(rewrapped, keyring=NEW)[0] == plaintext
