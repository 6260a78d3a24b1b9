"""Symmetric, asymmetric and HMAC operations of LocalKMS, and the ciphertext blob rules."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import msgpack  # type: ignore[import-untyped]
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envelope.errors import KeyDisabledError, KMSError
from envelope.kms import LocalKMS

CTX = {"purpose": "test", "tenant": "a"}


def _code(exc: pytest.ExceptionInfo[KMSError]) -> str:
    assert exc.value.response["Error"]["Code"] == exc.value.code
    return exc.value.code


def test_encrypt_decrypt_round_trip_needs_no_key_id(kms: LocalKMS, key_id: str) -> None:
    out = kms.encrypt(KeyId=key_id, Plaintext=b"secret", EncryptionContext=CTX)
    assert set(out) == {"CiphertextBlob", "KeyId", "EncryptionAlgorithm"}
    assert out["KeyId"].endswith(f":key/{key_id}") and isinstance(out["CiphertextBlob"], bytes)
    back = kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext=CTX)
    assert back == {"KeyId": out["KeyId"], "Plaintext": b"secret", "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    assert b"secret" not in out["CiphertextBlob"]


@pytest.mark.parametrize("given", [{}, {"purpose": "test"}, {**CTX, "extra": "x"}, {"purpose": "test", "tenant": "b"}],
                         ids=["none", "subset", "superset", "changed"])
def test_decrypt_with_a_different_context_fails(kms: LocalKMS, key_id: str, given: dict[str, str]) -> None:
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext=CTX)["CiphertextBlob"]
    with pytest.raises(KMSError) as exc:
        kms.decrypt(CiphertextBlob=blob, EncryptionContext=given)
    assert _code(exc) == "InvalidCiphertextException"


def test_context_binding_has_no_concatenation_collisions(kms: LocalKMS, key_id: str) -> None:
    # moto and LocalStack bind "a"+"bc" and "ab"+"c" identically; we length-prefix.
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"a": "bc"})["CiphertextBlob"]
    with pytest.raises(KMSError) as exc:
        kms.decrypt(CiphertextBlob=blob, EncryptionContext={"ab": "c"})
    assert _code(exc) == "InvalidCiphertextException"


def test_context_order_does_not_matter(kms: LocalKMS, key_id: str) -> None:
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"a": "1", "b": "2"})["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"b": "2", "a": "1"})["Plaintext"] == b"x"


def test_blob_is_self_describing_msgpack(kms: LocalKMS, key_id: str) -> None:
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    fields = msgpack.unpackb(blob)
    assert fields[0] == "EKMS" and fields[1] == 1 and fields[2] == key_id and fields[3] == 1


@pytest.mark.parametrize("mutate", ["flip_tag", "truncate", "garbage", "other_version"])
def test_altered_ciphertext_is_rejected(kms: LocalKMS, key_id: str, mutate: str) -> None:
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"hello")["CiphertextBlob"]
    fields = msgpack.unpackb(blob)
    if mutate == "flip_tag":
        fields[5] = fields[5][:-1] + bytes([fields[5][-1] ^ 1])
        bad = msgpack.packb(fields)
    elif mutate == "truncate":
        bad = blob[:-3]
    elif mutate == "garbage":
        bad = b"\x00" * 40
    else:
        fields[3] = 2
        bad = msgpack.packb(fields)
    with pytest.raises(KMSError) as exc:
        kms.decrypt(CiphertextBlob=bad)
    assert _code(exc) == "InvalidCiphertextException"


def test_decrypt_with_a_different_key_id_is_incorrect_key(kms: LocalKMS, key_id: str) -> None:
    other = kms.create_key()["KeyMetadata"]["Arn"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    with pytest.raises(KMSError) as exc:
        kms.decrypt(CiphertextBlob=blob, KeyId=other)
    assert _code(exc) == "IncorrectKeyException"
    assert kms.decrypt(CiphertextBlob=blob, KeyId=key_id)["Plaintext"] == b"x"


def test_disabled_key_refuses_crypto_and_recovers(kms: LocalKMS, key_id: str) -> None:
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    kms.disable_key(KeyId=key_id)
    with pytest.raises(KeyDisabledError) as exc:
        kms.decrypt(CiphertextBlob=blob)
    assert exc.value.code == "DisabledException"
    with pytest.raises(KeyDisabledError):
        kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    kms.enable_key(KeyId=key_id)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"


def test_pending_deletion_refuses_crypto(kms: LocalKMS, key_id: str) -> None:
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    call: Callable[[], object]
    for call in (lambda: kms.decrypt(CiphertextBlob=blob), lambda: kms.encrypt(KeyId=key_id, Plaintext=b"y")):
        with pytest.raises(KMSError) as exc:
            call()
        assert _code(exc) == "KMSInvalidStateException"


@pytest.mark.parametrize(("kwargs", "size"), [({"KeySpec": "AES_256"}, 32), ({"KeySpec": "AES_128"}, 16),
                                              ({"NumberOfBytes": 1}, 1), ({"NumberOfBytes": 1024}, 1024)])
def test_generate_data_key_sizes(kms: LocalKMS, key_id: str, kwargs: dict[str, object], size: int) -> None:
    out = kms.generate_data_key(KeyId=key_id, EncryptionContext=CTX, **kwargs)
    assert set(out) == {"CiphertextBlob", "Plaintext", "KeyId"} and len(out["Plaintext"]) == size
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext=CTX)["Plaintext"] == out["Plaintext"]


@pytest.mark.parametrize("kwargs", [{}, {"KeySpec": "AES_256", "NumberOfBytes": 32}, {"NumberOfBytes": 0},
                                    {"NumberOfBytes": 1025}], ids=["neither", "both", "zero", "too-many"])
def test_generate_data_key_validation(kms: LocalKMS, key_id: str, kwargs: dict[str, object]) -> None:
    with pytest.raises(KMSError) as exc:
        kms.generate_data_key(KeyId=key_id, **kwargs)
    assert _code(exc) == "ValidationException"


def test_generate_data_key_without_plaintext(kms: LocalKMS, key_id: str) -> None:
    out = kms.generate_data_key_without_plaintext(KeyId=key_id, KeySpec="AES_256")
    assert set(out) == {"CiphertextBlob", "KeyId"}
    assert len(kms.decrypt(CiphertextBlob=out["CiphertextBlob"])["Plaintext"]) == 32


def test_plaintext_limits(kms: LocalKMS, key_id: str) -> None:
    kms.encrypt(KeyId=key_id, Plaintext=b"x" * 4096)
    for bad in (b"", b"x" * 4097):
        with pytest.raises(KMSError) as exc:
            kms.encrypt(KeyId=key_id, Plaintext=bad)
        assert _code(exc) == "ValidationException"


def test_misuse_raises_type_error(kms: LocalKMS, key_id: str) -> None:
    with pytest.raises(TypeError):
        kms.encrypt(KeyId=key_id, Plaintext="text")
    with pytest.raises(TypeError):
        kms.encrypt(KeyId=key_id, Plaintext=b"x", Bogus=1)
    with pytest.raises(TypeError):
        kms.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"a": 1})
    with pytest.raises(TypeError):
        kms.encrypt(Plaintext=b"x")


def test_re_encrypt_moves_between_keys_and_contexts(kms: LocalKMS, key_id: str) -> None:
    dest = kms.create_key()["KeyMetadata"]["Arn"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"move me", EncryptionContext=CTX)["CiphertextBlob"]
    out = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext=CTX, DestinationKeyId=dest,
                         DestinationEncryptionContext={"new": "ctx"})
    assert out["KeyId"] == dest and out["SourceKeyId"].endswith(key_id)
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"new": "ctx"})["Plaintext"] == b"move me"
    with pytest.raises(KMSError) as exc:
        kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=dest)
    assert _code(exc) == "InvalidCiphertextException"


def test_generate_random(kms: LocalKMS) -> None:
    a, b = kms.generate_random(NumberOfBytes=32)["Plaintext"], kms.generate_random(NumberOfBytes=32)["Plaintext"]
    assert len(a) == 32 and a != b
    with pytest.raises(KMSError) as exc:
        kms.generate_random(NumberOfBytes=1025)
    assert _code(exc) == "ValidationException"


@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"])
def test_rsa_encrypt_decrypt(kms: LocalKMS, algorithm: str) -> None:
    arn = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    pub = kms.get_public_key(KeyId=arn)
    assert pub["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
    public = serialization.load_der_public_key(pub["PublicKey"])
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    digest = hashes.SHA1() if algorithm.endswith("1") else hashes.SHA256()
    # Ciphertext made offline with the public key decrypts in the service, as with KMS.
    offline = public.encrypt(b"offline", padding.OAEP(padding.MGF1(digest), digest, None))
    assert kms.decrypt(CiphertextBlob=offline, KeyId=arn, EncryptionAlgorithm=algorithm)["Plaintext"] == b"offline"
    blob = kms.encrypt(KeyId=arn, Plaintext=b"hi", EncryptionAlgorithm=algorithm)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, KeyId=arn, EncryptionAlgorithm=algorithm)["Plaintext"] == b"hi"
    with pytest.raises(KMSError) as exc:
        kms.decrypt(CiphertextBlob=blob)  # no KeyId: treated as a symmetric blob
    assert _code(exc) == "InvalidCiphertextException"
    with pytest.raises(KMSError) as exc:
        kms.encrypt(KeyId=arn, Plaintext=b"hi")  # SYMMETRIC_DEFAULT with an RSA key
    assert _code(exc) == "InvalidKeyUsageException"


@pytest.mark.parametrize(("spec", "algorithm"), [
    ("RSA_2048", "RSASSA_PSS_SHA_256"), ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_512"),
    ("ECC_NIST_P256", "ECDSA_SHA_256"), ("ECC_NIST_P384", "ECDSA_SHA_384"), ("ECC_NIST_P521", "ECDSA_SHA_512"),
    ("ECC_SECG_P256K1", "ECDSA_SHA_256"),
])
def test_sign_verify(kms: LocalKMS, spec: str, algorithm: str) -> None:
    arn = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    sig = kms.sign(KeyId=arn, Message=b"msg", SigningAlgorithm=algorithm)
    assert sig["SigningAlgorithm"] == algorithm
    ok = kms.verify(KeyId=arn, Message=b"msg", Signature=sig["Signature"], SigningAlgorithm=algorithm)
    assert ok["SignatureValid"] is True
    with pytest.raises(KMSError) as exc:
        kms.verify(KeyId=arn, Message=b"msG", Signature=sig["Signature"], SigningAlgorithm=algorithm)
    assert _code(exc) == "KMSInvalidSignatureException"
    # The public key verifies offline too, and DIGEST messages sign the same digest.
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=arn)["PublicKey"])
    bits = algorithm[-3:]
    digest = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}[bits](b"msg").digest()
    dsig = kms.sign(KeyId=arn, Message=digest, MessageType="DIGEST", SigningAlgorithm=algorithm)["Signature"]
    chosen = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[bits]
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(dsig, b"msg", ec.ECDSA(chosen))
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        pad = padding.PSS(padding.MGF1(chosen), chosen.digest_size) if "PSS" in algorithm else padding.PKCS1v15()
        public.verify(dsig, b"msg", pad, chosen)


def test_sign_with_wrong_algorithm_or_usage(kms: LocalKMS, key_id: str) -> None:
    arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    with pytest.raises(KMSError) as exc:
        kms.sign(KeyId=arn, Message=b"m", SigningAlgorithm="ECDSA_SHA_384")
    assert _code(exc) == "InvalidKeyUsageException"
    with pytest.raises(KMSError) as exc:
        kms.sign(KeyId=key_id, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    assert _code(exc) == "UnsupportedOperationException"


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256", "ECC_NIST_P384"])
def test_generate_data_key_pair(kms: LocalKMS, key_id: str, spec: str) -> None:
    out = kms.generate_data_key_pair(KeyId=key_id, KeyPairSpec=spec, EncryptionContext=CTX)
    private = serialization.load_der_private_key(out["PrivateKeyPlaintext"], None)
    assert private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo) == out["PublicKey"]
    again = kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"], EncryptionContext=CTX)["Plaintext"]
    assert again == out["PrivateKeyPlaintext"]
    bare = kms.generate_data_key_pair_without_plaintext(KeyId=key_id, KeyPairSpec=spec)
    assert set(bare) == {"PrivateKeyCiphertextBlob", "PublicKey", "KeyId", "KeyPairSpec"}


@pytest.mark.parametrize(("spec", "algorithm", "length"), [
    ("HMAC_224", "HMAC_SHA_224", 28), ("HMAC_256", "HMAC_SHA_256", 32),
    ("HMAC_384", "HMAC_SHA_384", 48), ("HMAC_512", "HMAC_SHA_512", 64)])
def test_hmac(kms: LocalKMS, spec: str, algorithm: str, length: int) -> None:
    arn = kms.create_key(KeySpec=spec, KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
    assert kms.describe_key(KeyId=arn)["KeyMetadata"]["MacAlgorithms"] == [algorithm]
    mac = kms.generate_mac(KeyId=arn, Message=b"data", MacAlgorithm=algorithm)
    assert len(mac["Mac"]) == length
    assert kms.generate_mac(KeyId=arn, Message=b"data", MacAlgorithm=algorithm)["Mac"] == mac["Mac"]
    assert kms.verify_mac(KeyId=arn, Message=b"data", Mac=mac["Mac"], MacAlgorithm=algorithm)["MacValid"] is True
    with pytest.raises(KMSError) as exc:
        kms.verify_mac(KeyId=arn, Message=b"datA", Mac=mac["Mac"], MacAlgorithm=algorithm)
    assert _code(exc) == "KMSInvalidMacException"
    with pytest.raises(KMSError) as exc:
        kms.encrypt(KeyId=arn, Plaintext=b"x")
    assert _code(exc) == "InvalidKeyUsageException"


def test_dry_run_authorizes_but_does_nothing(kms: LocalKMS, key_id: str) -> None:
    call: Callable[[], object]
    for call in (lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x", DryRun=True),
                 lambda: kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", DryRun=True),
                 lambda: kms.create_grant(KeyId=key_id, GranteePrincipal="arn:aws:iam::111122223333:role/A",
                                          Operations=["Decrypt"], DryRun=True)):
        with pytest.raises(KMSError) as exc:
            call()
        assert _code(exc) == "DryRunOperationException"
    assert kms.list_grants(KeyId=key_id)["Grants"] == []
    denied = kms.for_principal("arn:aws:iam::111122223333:role/Nobody")
    with pytest.raises(KMSError) as exc:
        denied.encrypt(KeyId=key_id, Plaintext=b"x", DryRun=True)
    assert _code(exc) == "AccessDeniedException"


def test_recipient_is_refused(kms: LocalKMS, key_id: str) -> None:
    with pytest.raises(KMSError) as exc:
        kms.generate_data_key(KeyId=key_id, KeySpec="AES_256",
                              Recipient={"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": b"x"})
    assert _code(exc) == "UnsupportedOperationException"


_contexts = st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plaintext=st.binary(min_size=1, max_size=64), context=_contexts, other=_contexts)
def test_round_trip_and_context_binding_property(kms: LocalKMS, key_id: str, plaintext: bytes,
                                                 context: dict[str, str], other: dict[str, str]) -> None:
    blob = kms.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=context)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == plaintext
    if other != context:
        with pytest.raises(KMSError) as exc:
            kms.decrypt(CiphertextBlob=blob, EncryptionContext=other)
        assert _code(exc) == "InvalidCiphertextException"
