"""The public API contract: pinned names, argument coercion, misuse errors, the error hierarchy,
and foreign exceptions translated at the boundary.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import os
from functools import cache
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import envelope
import envelope.errors
from envelope import (
    AlgorithmSuite,
    AuthenticationError,
    CommitmentPolicy,
    EnvelopeError,
    FormatError,
    KeyDisabledError,
    KeyNotFoundError,
    KeyringError,
    KMSError,
    NoMatchingKeyError,
    PolicyError,
)
from envelope.format.header import parse_header, serialize_header_body
from envelope.streaming.decryptor import MessageDecryptor

PINNED_ALL = [
    "AlgorithmSuite",
    "AuthenticationError",
    "BranchKeyIdSupplier",
    "BranchKeyStore",
    "CacheStats",
    "CachingMaterialsManager",
    "CachingStats",
    "CommitmentPolicy",
    "CryptoCache",
    "DecryptOptions",
    "DecryptionMaterials",
    "DecryptionRequest",
    "Decryptor",
    "DefaultMaterialsManager",
    "DiscoveryFilter",
    "EncryptOptions",
    "EncryptStreamOptions",
    "EncryptedDataKey",
    "EncryptionMaterials",
    "EncryptionRequest",
    "Encryptor",
    "EnvelopeError",
    "FormatError",
    "Header",
    "HierarchicalKeyring",
    "KMSClient",
    "KMSDiscoveryKeyring",
    "KMSECDHKeyring",
    "KMSError",
    "KMSKeyring",
    "KMSMRKAwareDiscoveryKeyring",
    "KMSMRKAwareKeyring",
    "KMSRSAKeyring",
    "KeyDisabledError",
    "KeyNotFoundError",
    "Keyring",
    "KeyringError",
    "LocalCache",
    "MaterialsManager",
    "MultiKeyring",
    "NoMatchingKeyError",
    "PolicyError",
    "RawAESKeyring",
    "RawECDHKeyring",
    "RawRSAKeyring",
    "RequiredEncryptionContextManager",
    "decrypt",
    "decrypt_file",
    "decrypt_range",
    "decrypt_stream",
    "edk_key_name",
    "encrypt",
    "encrypt_file",
    "encrypt_stream",
    "read_header",
    "rewrap",
]

KEYRING = envelope.RawAESKeyring("api-ns", "api-key", bytes(range(32)))
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


# -- names -------------------------------------------------------------------------------------

def test_all_is_pinned_and_sorted() -> None:
    # Adding or removing a public name is a decision: update this list in the same change.
    assert envelope.__all__ == PINNED_ALL
    assert sorted(envelope.__all__) == envelope.__all__
    assert len(set(envelope.__all__)) == len(envelope.__all__)


@pytest.mark.parametrize("name", PINNED_ALL)
def test_every_exported_name_exists(name: str) -> None:
    assert getattr(envelope, name) is not None


def test_lower_layers_are_not_reexported() -> None:
    for name in ("parse_header", "serialize_context", "MessageDecryptor", "MessageEncryptor", "AEAD", "Reader"):
        assert not hasattr(envelope, name), name
    with pytest.raises(AttributeError):
        envelope.no_such_name  # noqa: B018


def test_errors_all_matches_the_root() -> None:
    assert sorted(envelope.errors.__all__) == envelope.errors.__all__
    for name in envelope.errors.__all__:
        assert getattr(envelope, name) is getattr(envelope.errors, name)


# -- the error hierarchy -----------------------------------------------------------------------

PUBLIC_ERRORS = [getattr(envelope, n) for n in PINNED_ALL
                 if inspect.isclass(getattr(envelope, n)) and issubclass(getattr(envelope, n), BaseException)]


@pytest.mark.parametrize("error", PUBLIC_ERRORS, ids=lambda e: e.__name__)
def test_every_public_error_is_an_envelope_error(error: type[BaseException]) -> None:
    assert issubclass(error, EnvelopeError)


def test_error_tree() -> None:
    # errors.py docstring: the tree users catch by.
    assert {e.__name__ for e in PUBLIC_ERRORS} == {
        "AuthenticationError", "EnvelopeError", "FormatError", "KMSError", "KeyDisabledError",
        "KeyNotFoundError", "KeyringError", "NoMatchingKeyError", "PolicyError"}
    for child in (FormatError, AuthenticationError, NoMatchingKeyError, KeyringError, KMSError, PolicyError):
        assert child.__bases__ == (EnvelopeError,)
    assert issubclass(KeyNotFoundError, KMSError) and issubclass(KeyDisabledError, KMSError)
    assert not issubclass(EnvelopeError, (ValueError, TypeError))  # misuse and failure stay apart


def test_error_attributes() -> None:
    hinted = FormatError("not a message", hint="decode it first")
    assert hinted.hint == "decode it first" and "decode it first" in str(hinted)
    assert FormatError("plain").hint is None and str(FormatError("plain")) == "plain"
    missing = KeyNotFoundError("no such key")
    assert missing.code == "NotFoundException"
    assert missing.response == {"Error": {"Code": "NotFoundException", "Message": "no such key"}}
    assert KeyDisabledError("off").code == "DisabledException"
    assert KMSError("denied", code="AccessDeniedException").code == "AccessDeniedException"
    reasons = NoMatchingKeyError("none", ["a failed", KeyringError("b failed")])
    assert len(reasons.errors) == 2 and "a failed" in str(reasons) and "b failed" in str(reasons)


def test_a_keyring_without_the_messages_key_says_so_once() -> None:
    message = envelope.encrypt(b"x", keyring=envelope.RawAESKeyring("ns", "writer", bytes(32)))
    for reader in (envelope.RawAESKeyring("ns", "reader", bytes(32)),
                   envelope.RawRSAKeyring("ns", "reader", private_key_pem=rsa_pems()[0])):
        with pytest.raises(NoMatchingKeyError) as info:
            envelope.decrypt(message, keyring=reader)
        text = str(info.value)
        assert "the message has no data key wrapped by this key" in text
        assert text.count("'reader'") == 1, text  # named once, by the keyring's repr


# -- algorithm and commitment policy arguments -------------------------------------------------

@pytest.mark.parametrize("suite", list(AlgorithmSuite), ids=lambda s: s.name)
def test_algorithm_takes_a_member_or_its_name(suite: AlgorithmSuite) -> None:
    policy = "REQUIRE_ENCRYPT_ALLOW_DECRYPT" if suite.is_committing else "FORBID_ENCRYPT_ALLOW_DECRYPT"
    for spelling in (suite, suite.name, suite.name.lower()):
        message = envelope.encrypt(b"x", keyring=KEYRING, algorithm=spelling, commitment_policy=policy)
        assert parse_header(message).header.algorithm is suite


@pytest.mark.parametrize("bad", ["AES_256_GCM", "", "COMMIT_KEY", "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P256"])
def test_unknown_algorithm_name_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown algorithm suite"):
        envelope.encrypt(b"x", keyring=KEYRING, algorithm=bad)


@pytest.mark.parametrize("bad", [1.5, b"AES_256_GCM_HKDF_SHA512_COMMIT_KEY", True, object()],
                         ids=["float", "bytes", "bool", "object"])
def test_algorithm_of_the_wrong_type_is_a_type_error(bad: Any) -> None:
    with pytest.raises(TypeError):
        envelope.encrypt(b"x", keyring=KEYRING, algorithm=bad)


def test_default_suite_follows_the_policy() -> None:
    default = parse_header(envelope.encrypt(b"x", keyring=KEYRING)).header.algorithm
    assert default is AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
    forbid = envelope.encrypt(b"x", keyring=KEYRING, commitment_policy="FORBID_ENCRYPT_ALLOW_DECRYPT")
    assert not parse_header(forbid).header.algorithm.is_committing


@pytest.mark.parametrize("policy", list(CommitmentPolicy), ids=lambda p: p.name)
def test_commitment_policy_takes_a_member_or_its_name(policy: CommitmentPolicy) -> None:
    message = envelope.encrypt(b"x", keyring=KEYRING, algorithm=AlgorithmSuite.AES_256_GCM_IV12_TAG16_HKDF_SHA256,
                               commitment_policy="FORBID_ENCRYPT_ALLOW_DECRYPT")
    for spelling in (policy, policy.name, policy.value, policy.name.lower()):
        if policy is CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT:
            with pytest.raises(PolicyError):
                envelope.decrypt(message, keyring=KEYRING, commitment_policy=spelling)
        else:
            assert envelope.decrypt(message, keyring=KEYRING, commitment_policy=spelling)[0] == b"x"


@pytest.mark.parametrize("bad,error", [("REQUIRE", ValueError), ("", ValueError), ("FORBID_ENCRYPT", ValueError),
                                       (1, TypeError), (b"FORBID_ENCRYPT_ALLOW_DECRYPT", TypeError)],
                         ids=["partial", "empty", "prefix", "int", "bytes"])
def test_bad_commitment_policy(bad: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        envelope.encrypt(b"x", keyring=KEYRING, commitment_policy=bad)
    with pytest.raises(error):
        envelope.decrypt(envelope.encrypt(b"x", keyring=KEYRING), keyring=KEYRING, commitment_policy=bad)


# -- misuse: TypeError / ValueError ------------------------------------------------------------

MESSAGE = envelope.encrypt(b"hello", keyring=KEYRING, frame_length=16)

# Misuse on purpose: called through an Any so the type checker lets the wrong types through.
api: Any = envelope

TYPE_ERRORS: list[tuple[str, Any]] = [
    ("encrypt-str", lambda: api.encrypt("hello", keyring=KEYRING)),
    ("encrypt-int", lambda: api.encrypt(5, keyring=KEYRING)),
    ("encrypt-none", lambda: api.encrypt(None, keyring=KEYRING)),
    ("encrypt-list", lambda: api.encrypt([1, 2], keyring=KEYRING)),
    ("decrypt-str", lambda: api.decrypt(MESSAGE.decode("latin-1"), keyring=KEYRING)),
    ("decrypt-none", lambda: api.decrypt(None, keyring=KEYRING)),
    ("no-keyring", lambda: api.encrypt(b"x")),
    ("keyring-and-manager", lambda: api.encrypt(b"x", keyring=KEYRING,
                                                     materials_manager=api.DefaultMaterialsManager(KEYRING))),
    ("decrypt-no-keyring", lambda: api.decrypt(MESSAGE)),
    ("keyring-not-a-keyring", lambda: api.encrypt(b"x", keyring=object())),
    ("manager-not-a-manager", lambda: api.encrypt(b"x", materials_manager=object())),
    ("frame-length-str", lambda: api.encrypt(b"x", keyring=KEYRING, frame_length="16")),
    ("frame-length-float", lambda: api.encrypt(b"x", keyring=KEYRING, frame_length=16.0)),
    ("frame-length-bool", lambda: api.encrypt(b"x", keyring=KEYRING, frame_length=True)),
    ("context-list", lambda: api.encrypt(b"x", keyring=KEYRING, encryption_context=[("a", "b")])),
    ("context-int-value", lambda: api.encrypt(b"x", keyring=KEYRING, encryption_context={"a": 1})),
    ("context-bytes-key", lambda: api.encrypt(b"x", keyring=KEYRING, encryption_context={b"a": "b"})),
    ("decrypt-context-int-value", lambda: api.decrypt(MESSAGE, keyring=KEYRING, encryption_context={"a": 1})),
    ("encrypt_stream-bytes-source", lambda: api.encrypt_stream(b"hello", io.BytesIO(), keyring=KEYRING)),
    ("decrypt_stream-bytes-source", lambda: api.decrypt_stream(MESSAGE, io.BytesIO(), keyring=KEYRING)),
    ("encrypt_stream-str-chunks", lambda: api.encrypt_stream(iter(["a", "b"]), io.BytesIO(), keyring=KEYRING)),
    ("encrypt_stream-text-file", lambda: api.encrypt_stream(io.StringIO("text"), io.BytesIO(), keyring=KEYRING)),
    ("Encryptor-write-str", lambda: api.Encryptor(io.BytesIO(), keyring=KEYRING).write("text")),
    ("unknown-option", lambda: api.encrypt(b"x", keyring=KEYRING, frame_size=16)),
    ("aes-keyring-str-key", lambda: api.RawAESKeyring("ns", "name", "k" * 32)),
    ("aes-keyring-bytes-name", lambda: api.RawAESKeyring("ns", b"name", bytes(32))),
]


@pytest.mark.parametrize("call", [c for _, c in TYPE_ERRORS], ids=[n for n, _ in TYPE_ERRORS])
def test_type_errors(call: Any) -> None:
    with pytest.raises(TypeError):
        call()


@cache
def rsa_pems() -> tuple[bytes, bytes, bytes, bytes]:
    """(private, public) of one 2048-bit pair, another pair's private key, and an encrypted PEM."""
    first, second = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    pkcs8 = serialization.PrivateFormat.PKCS8
    return (first.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption()),
            first.public_key().public_bytes(serialization.Encoding.PEM, SPKI),
            second.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption()),
            first.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.BestAvailableEncryption(b"pw")))


@cache
def ec_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


VALUE_ERRORS: list[tuple[str, Any]] = [
    ("frame-length-negative", lambda: api.encrypt(b"x", keyring=KEYRING, frame_length=-1)),
    ("frame-length-2^32", lambda: api.encrypt(b"x", keyring=KEYRING, frame_length=2**32)),
    ("reserved-context-key", lambda: api.encrypt(b"x", keyring=KEYRING,
                                                      encryption_context={"aws-crypto-public-key": "x"})),
    ("envelope-context-key", lambda: api.encrypt(b"x", keyring=KEYRING,
                                                      encryption_context={"envelope:compression": "zstd"})),
    ("aes-key-length", lambda: api.RawAESKeyring("ns", "name", bytes(31))),
    ("aes-namespace-aws-kms", lambda: api.RawAESKeyring("aws-kms", "name", bytes(32))),
    ("rsa-namespace-aws-kms", lambda: api.RawRSAKeyring("aws-kms-x", "name", public_key_pem=rsa_pems()[1])),
    ("rsa-no-key", lambda: api.RawRSAKeyring("ns", "name")),
    ("rsa-bad-padding", lambda: api.RawRSAKeyring("ns", "name", public_key_pem=rsa_pems()[1], padding="OAEP-MD5")),
    ("rsa-garbage-pem", lambda: api.RawRSAKeyring("ns", "name", private_key_pem=b"-----BEGIN nothing")),
    ("rsa-ec-key", lambda: api.RawRSAKeyring("ns", "name", private_key_pem=ec_pem())),
    ("rsa-private-as-public", lambda: api.RawRSAKeyring("ns", "name", public_key_pem=rsa_pems()[0])),
    ("rsa-encrypted-pem-no-password", lambda: api.RawRSAKeyring("ns", "name", private_key_pem=rsa_pems()[3])),
    ("multi-keyring-empty", lambda: api.MultiKeyring()),
    ("required-context-no-keys", lambda: api.RequiredEncryptionContextManager([], keyring=KEYRING)),
]


@pytest.mark.parametrize("call", [c for _, c in VALUE_ERRORS], ids=[n for n, _ in VALUE_ERRORS])
def test_value_errors(call: Any) -> None:
    with pytest.raises(ValueError):
        call()


# -- keyrings: reasons and foreign exceptions --------------------------------------------------

def test_no_matching_key_lists_one_reason_per_keyring() -> None:
    members = [envelope.RawAESKeyring("api-ns", f"other-{i}", bytes([i]) * 32) for i in range(3)]
    multi = envelope.MultiKeyring(generator=members[0], children=members[1:])
    with pytest.raises(NoMatchingKeyError) as info:
        envelope.decrypt(MESSAGE, keyring=multi)
    errors = info.value.errors
    assert len(errors) == 3
    for member, reason in zip(members, errors):
        assert member.key_name in str(reason)
    # Every keyring also fails when one EDK matches by name but not by key.
    impostor = envelope.RawAESKeyring("api-ns", "api-key", bytes(32))
    with pytest.raises(NoMatchingKeyError) as info:
        envelope.decrypt(MESSAGE, keyring=envelope.MultiKeyring(children=[members[0], impostor]))
    assert len(info.value.errors) == 2


def test_multi_keyring_decrypts_with_any_member() -> None:
    members = [envelope.RawAESKeyring("api-ns", f"member-{i}", bytes([i + 1]) * 32) for i in range(3)]
    message = envelope.encrypt(b"shared", keyring=envelope.MultiKeyring(generator=members[0], children=members[1:]))
    assert len(parse_header(message).header.encrypted_data_keys) == 3
    for member in members:
        assert envelope.decrypt(message, keyring=member)[0] == b"shared"


@pytest.mark.parametrize("padding", ["PKCS1", "OAEP-SHA1", "OAEP-SHA256", "OAEP-SHA384", "OAEP-SHA512"])
def test_rsa_failures_are_envelope_errors(padding: str) -> None:
    private, public, other_private, _ = rsa_pems()
    good = envelope.RawRSAKeyring("api-rsa", "rsa", private_key_pem=private, public_key_pem=public, padding=padding)
    message = envelope.encrypt(b"rsa", keyring=good)
    assert envelope.decrypt(message, keyring=good)[0] == b"rsa"
    wrong_key = envelope.RawRSAKeyring("api-rsa", "rsa", private_key_pem=other_private, padding=padding)
    wrong_padding = envelope.RawRSAKeyring("api-rsa", "rsa", private_key_pem=private,
                                           padding="OAEP-SHA1" if padding != "OAEP-SHA1" else "OAEP-SHA256")
    public_only = envelope.RawRSAKeyring("api-rsa", "rsa", public_key_pem=public, padding=padding)
    # PKCS#1 v1.5 unwrapping uses implicit rejection (cryptography/OpenSSL): a wrong key yields a
    # random "data key", of the right length about once in 250 tries; the keyring checks it
    # against the message (DecryptionMaterials.fits), so this too is "could not decrypt".
    unwrap_failure = NoMatchingKeyError
    for keyring in (wrong_key, wrong_padding, public_only):
        with pytest.raises(unwrap_failure) as info:
            envelope.decrypt(message, keyring=keyring)
        assert info.value.errors
    # A tampered wrapped key (flipped, or one byte short of the modulus size) is a reason to
    # report, never cryptography's ValueError.
    parsed = parse_header(message)
    edk = parsed.header.encrypted_data_keys[0]
    for wrapped in (edk.ciphertext[:-1] + bytes([edk.ciphertext[-1] ^ 1]), edk.ciphertext[:-1]):
        header = dataclasses.replace(parsed.header, encrypted_data_keys=(dataclasses.replace(edk, ciphertext=wrapped),))
        tampered = serialize_header_body(header) + message[len(parsed.body):]
        with pytest.raises(unwrap_failure):
            envelope.decrypt(tampered, keyring=good)
    # Encrypting without a public key is a keyring error.
    with pytest.raises(KeyringError):
        envelope.encrypt(b"x", keyring=envelope.RawRSAKeyring("api-rsa", "rsa", private_key_pem=private))


class _ImplicitRejection:
    """An RSA private key that answers every unwrap as PKCS#1 v1.5 implicit rejection does for a
    wrong key, made deterministic: random bytes of the data key's length."""

    def __init__(self, length: int = 32) -> None:
        self.length = length

    def decrypt(self, ciphertext: bytes, padding: object) -> bytes:
        return os.urandom(self.length)


def _rejecting_rsa_keyring(namespace: str, name: str) -> envelope.RawRSAKeyring:
    private, public, _, _ = rsa_pems()
    keyring = envelope.RawRSAKeyring(namespace, name, private_key_pem=private, public_key_pem=public, padding="PKCS1")
    keyring._private = _ImplicitRejection()  # type: ignore[assignment]
    return keyring


@pytest.mark.parametrize("algorithm", ["AES_256_GCM_HKDF_SHA512_COMMIT_KEY", "AES_256_GCM_IV12_TAG16_HKDF_SHA256"])
def test_rsa_random_unwrap_is_no_matching_key_and_the_next_keyring_is_tried(algorithm: str) -> None:
    # Committing suites catch the random key by its commitment, the others by the header tag.
    policy: envelope.DecryptOptions = {} if "COMMIT" in algorithm else \
        {"commitment_policy": "REQUIRE_ENCRYPT_ALLOW_DECRYPT"}
    writer_policy = None if "COMMIT" in algorithm else "FORBID_ENCRYPT_ALLOW_DECRYPT"
    rsa_keyring = _rejecting_rsa_keyring("api-rsa", "lying")
    aes_keyring = envelope.RawAESKeyring("api-ns", "aes", bytes(range(32)))
    message = envelope.encrypt(b"payload", keyring=envelope.MultiKeyring(generator=aes_keyring, children=[
        envelope.RawRSAKeyring("api-rsa", "lying", public_key_pem=rsa_pems()[1], padding="PKCS1")]),
        algorithm=algorithm, commitment_policy=writer_policy)
    with pytest.raises(NoMatchingKeyError) as info:
        envelope.decrypt(message, keyring=rsa_keyring, **policy)
    assert any("does not fit this message" in str(reason) for reason in info.value.errors)
    # In a multi-keyring the RSA member's miss no longer ends the search: the AES member decrypts.
    both = envelope.MultiKeyring(children=[rsa_keyring, aes_keyring])
    assert envelope.decrypt(message, keyring=both, **policy)[0] == b"payload"


def test_key_check_is_not_kept_in_cached_materials() -> None:
    aes_keyring = envelope.RawAESKeyring("api-ns", "aes", bytes(range(32)))
    manager = envelope.CachingMaterialsManager(keyring=aes_keyring, cache=envelope.LocalCache(capacity=4),
                                               max_age=60.0)
    message = envelope.encrypt(b"cached", keyring=aes_keyring)
    decryptor = MessageDecryptor()
    decryptor.parse_whole_header(message)
    assert decryptor.request is not None and decryptor.request.key_check is not None
    materials = manager.decrypt_materials(decryptor.request)
    assert materials.key_check is None  # it holds the message's header: one message only
    assert envelope.decrypt(message, materials_manager=manager)[0] == b"cached"


def test_rsa_key_too_small_for_the_padding_is_a_keyring_error() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    public = small.public_key().public_bytes(serialization.Encoding.PEM, SPKI)
    # OAEP-SHA512 on a 1024-bit modulus has room for 128 - 2*64 - 2 < 0 bytes.
    keyring = envelope.RawRSAKeyring("api-rsa", "small", public_key_pem=public, padding="OAEP-SHA512")
    with pytest.raises(KeyringError):
        envelope.encrypt(b"x", keyring=keyring)


def test_keyrings_conform_to_the_protocols() -> None:
    keyring: envelope.Keyring = KEYRING
    rsa_keyring: envelope.Keyring = envelope.RawRSAKeyring("ns", "name", public_key_pem=rsa_pems()[1])
    multi: envelope.Keyring = envelope.MultiKeyring(generator=KEYRING)
    manager: envelope.MaterialsManager = envelope.DefaultMaterialsManager(KEYRING)
    required: envelope.MaterialsManager = envelope.RequiredEncryptionContextManager(["k"], keyring=KEYRING)
    for obj in (keyring, rsa_keyring, multi):
        assert isinstance(obj, envelope.Keyring)
    for each in (manager, required):
        assert isinstance(each, envelope.MaterialsManager)


def test_a_keyring_that_returns_nothing_is_refused() -> None:
    class Lazy:
        def on_encrypt(self, materials: Any) -> Any:
            return materials

        def on_decrypt(self, materials: Any, edks: Any) -> Any:
            return materials

    with pytest.raises(KeyringError):
        envelope.encrypt(b"x", keyring=Lazy())
    with pytest.raises(EnvelopeError):
        envelope.decrypt(MESSAGE, keyring=Lazy())

