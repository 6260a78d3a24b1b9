"""KMS keyrings over boto3 (moto) and the embedded LocalKMS: wrap, unwrap, discovery, multi-Region."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.exceptions import (  # type: ignore[import-untyped]
    ClientError,
    EndpointConnectionError,
    ParamValidationError,
)
from moto import mock_aws

import envelope
from envelope.errors import KeyringError, KMSError, NoMatchingKeyError
from envelope.format.header import EncryptedDataKey
from envelope.format.suites import AlgorithmSuite
from envelope.keyrings.base import Keyring
from envelope.keyrings.kms import (
    PROVIDER_ID,
    KMSClient,
    KMSKeyring,
    KMSMRKAwareKeyring,
    is_mrk_identifier,
    mrk_match,
    parse_kms_arn,
)
from envelope.keyrings.kms_discovery import DiscoveryFilter, KMSDiscoveryKeyring, KMSMRKAwareDiscoveryKeyring
from envelope.keyrings.multi import MultiKeyring
from envelope.materials.materials import DecryptionMaterials, EncryptionMaterials

SUITE = AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
CONTEXT = {"purpose": "test", "tenant": "t1"}
MOTO_ACCOUNT = "123456789012"


def _enc(suite: AlgorithmSuite = SUITE, context: Mapping[str, str] = CONTEXT) -> EncryptionMaterials:
    return EncryptionMaterials(algorithm=suite, encryption_context=dict(context))


def _dec(suite: AlgorithmSuite = SUITE, context: Mapping[str, str] = CONTEXT) -> DecryptionMaterials:
    return DecryptionMaterials(algorithm=suite, encryption_context=dict(context))


def _roundtrip(encrypt_with: Keyring, decrypt_with: Keyring) -> tuple[EncryptionMaterials, DecryptionMaterials]:
    encrypted = encrypt_with.on_encrypt(_enc())
    decrypted = decrypt_with.on_decrypt(_dec(), encrypted.encrypted_data_keys)
    assert decrypted.plaintext_data_key == encrypted.plaintext_data_key
    return encrypted, decrypted


class _Offline:
    """A client whose region is unreachable: every call raises what botocore raises then."""

    def __init__(self) -> None:
        self.calls = 0

    def _fail(self, **kwargs: Any) -> Mapping[str, Any]:
        self.calls += 1
        raise EndpointConnectionError(endpoint_url="https://kms.unreachable.example")

    generate_data_key = encrypt = decrypt = _fail


class _Scripted:
    """A client that answers with a fixed response (to test how keyrings check responses)."""

    def __init__(self, response: object) -> None:
        self.response = response
        self.requests: list[dict[str, Any]] = []

    def _answer(self, **kwargs: Any) -> Any:
        self.requests.append(kwargs)
        if isinstance(self.response, BaseException):
            raise self.response
        return self.response

    generate_data_key = encrypt = decrypt = _answer


# --- identifiers (aws-kms-key-arn.md, aws-kms-mrk-match-for-decrypt.md) -------------------------

MRK_EAST = f"arn:aws:kms:us-east-1:{MOTO_ACCOUNT}:key/mrk-0123456789abcdef0123456789abcdef"
MRK_WEST = MRK_EAST.replace("us-east-1", "us-west-2")
SRK_EAST = f"arn:aws:kms:us-east-1:{MOTO_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(("text", "valid"), [
    (SRK_EAST, True), (MRK_EAST, True), (f"arn:aws:kms:us-east-1:{MOTO_ACCOUNT}:alias/app", True),
    ("arn:aws:kms:us-east-1:1:key/a/b", True), ("arn:aws:s3:us-east-1:1:key/x", False),
    ("arn::kms:us-east-1:1:key/x", False), ("arn:aws:kms::1:key/x", False), ("arn:aws:kms:r::key/x", False),
    ("arn:aws:kms:r:1:grant/x", False), ("arn:aws:kms:r:1:key/", False), ("arn:aws:kms:r:1:key", False),
    ("alias/app", False), ("", False),
])
def test_parse_kms_arn(text: str, valid: bool) -> None:
    arn = parse_kms_arn(text)
    assert (arn is not None) is valid
    if arn is not None:
        assert str(arn) == text


def test_mrk_identification_and_match() -> None:
    assert is_mrk_identifier(MRK_EAST) and is_mrk_identifier("mrk-abc")
    assert not is_mrk_identifier(SRK_EAST) and not is_mrk_identifier("alias/mrk-looks-like-one")
    assert not is_mrk_identifier(f"arn:aws:kms:us-east-1:{MOTO_ACCOUNT}:alias/mrk-x")
    with pytest.raises(ValueError):
        is_mrk_identifier("arn:aws:kms:broken")
    assert mrk_match(MRK_EAST, MRK_WEST) and mrk_match(SRK_EAST, SRK_EAST)
    assert not mrk_match(SRK_EAST, SRK_EAST.replace("us-east-1", "us-west-2"))
    assert not mrk_match(MRK_EAST, MRK_EAST.replace(MOTO_ACCOUNT, "999999999999"))
    assert not mrk_match(MRK_EAST, MRK_EAST.replace("arn:aws:", "arn:aws-cn:"))
    assert not mrk_match(MRK_EAST, "mrk-0123456789abcdef0123456789abcdef")


def test_constructor_validation() -> None:
    client = _Scripted({})
    for bad in ("", "arn:aws:kms:r:1:grant/x", "alias/", "a:b"):
        with pytest.raises(ValueError):
            KMSKeyring(bad, client)
    with pytest.raises(TypeError):
        KMSKeyring(SRK_EAST, object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        KMSKeyring(SRK_EAST, client, grant_tokens="token")
    with pytest.raises(ValueError):
        DiscoveryFilter("aws", ())
    with pytest.raises(ValueError):
        DiscoveryFilter("", (MOTO_ACCOUNT,))
    with pytest.raises(ValueError):
        KMSMRKAwareDiscoveryKeyring(boto3.client("kms", region_name="us-east-1"), "us-west-2")
    keyring: Keyring = KMSKeyring("alias/app", client)  # protocol conformance, checked by mypy
    discovery: Keyring = KMSDiscoveryKeyring(client)
    assert isinstance(keyring, Keyring) and isinstance(discovery, Keyring)
    assert isinstance(client, KMSClient)


# --- over moto (boto3) ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def aws() -> Iterator[None]:
    # One moto backend for the module (starting one costs ~0.4 s); each test makes its own keys.
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_SESSION_TOKEN", "testing"), ("AWS_DEFAULT_REGION", "us-east-1")):
            patch.setenv(name, value)
        with mock_aws():
            yield


@pytest.fixture(scope="module")
def east(aws: None) -> Any:
    return boto3.client("kms", region_name="us-east-1")


@pytest.fixture(scope="module")
def west(aws: None) -> Any:
    return boto3.client("kms", region_name="us-west-2")


def _key(client: Any, alias: str | None = None) -> str:
    arn: str = client.create_key(Description="keyring test")["KeyMetadata"]["Arn"]
    if alias:
        client.create_alias(AliasName=alias, TargetKeyId=arn)
    return arn


@pytest.mark.parametrize("suite", [AlgorithmSuite.AES_128_GCM_IV12_TAG16,
                                   AlgorithmSuite.AES_192_GCM_IV12_TAG16_HKDF_SHA256,
                                   AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384],
                         ids=lambda s: s.name)
def test_generate_then_decrypt(east: Any, suite: AlgorithmSuite) -> None:
    arn = _key(east)
    keyring = KMSKeyring(arn, east)
    encrypted = keyring.on_encrypt(_enc(suite))
    assert encrypted.plaintext_data_key is not None and len(encrypted.plaintext_data_key) == suite.key_length
    (edk,) = encrypted.encrypted_data_keys
    assert edk.provider_id == PROVIDER_ID and edk.provider_info == arn.encode()
    decrypted = keyring.on_decrypt(_dec(suite), [edk])
    assert decrypted.plaintext_data_key == encrypted.plaintext_data_key


def test_existing_data_key_is_encrypted_and_either_key_decrypts(east: Any) -> None:
    first, second = _key(east), _key(east)
    materials = KMSKeyring(second, east).on_encrypt(KMSKeyring(first, east).on_encrypt(_enc()))
    assert [e.provider_info for e in materials.encrypted_data_keys] == [first.encode(), second.encode()]
    for arn in (first, second):
        out = KMSKeyring(arn, east).on_decrypt(_dec(), materials.encrypted_data_keys)
        assert out.plaintext_data_key == materials.plaintext_data_key


def test_alias_encrypts_but_decrypt_needs_the_arn(east: Any) -> None:
    arn = _key(east, "alias/app")
    encrypted = KMSKeyring("alias/app", east).on_encrypt(_enc())
    assert encrypted.encrypted_data_keys[0].provider_info == arn.encode()
    with pytest.raises(NoMatchingKeyError) as info:
        KMSKeyring("alias/app", east).on_decrypt(_dec(), encrypted.encrypted_data_keys)
    assert "no encrypted data key matches" in str(info.value)
    assert KMSKeyring(arn, east).on_decrypt(_dec(), encrypted.encrypted_data_keys).plaintext_data_key


def test_wrong_context_collects_the_kms_error(east: Any) -> None:
    arn = _key(east)
    encrypted = KMSKeyring(arn, east).on_encrypt(_enc())
    with pytest.raises(NoMatchingKeyError) as info:
        KMSKeyring(arn, east).on_decrypt(_dec(context={"purpose": "other"}), encrypted.encrypted_data_keys)
    (reason,) = info.value.errors
    assert isinstance(reason, KMSError) and arn in str(reason)
    assert reason.code in ("InvalidCiphertextException", "AccessDeniedException")  # moto says the latter


def test_only_matching_edks_are_tried(east: Any) -> None:
    mine, other = _key(east), _key(east)
    foreign = EncryptedDataKey("raw-aes", b"name", b"\x00" * 40)
    encrypted = KMSKeyring(other, east).on_encrypt(_enc())
    client = _Counting(east)
    with pytest.raises(NoMatchingKeyError, match="no encrypted data key matches"):
        KMSKeyring(mine, client).on_decrypt(_dec(), [foreign, *encrypted.encrypted_data_keys])
    assert client.decrypts == 0
    # With an EDK for this key added last, the foreign and other-key EDKs are skipped without calls.
    encrypted = KMSKeyring(mine, east).on_encrypt(encrypted)
    out = KMSKeyring(mine, client).on_decrypt(_dec(), [foreign, *encrypted.encrypted_data_keys])
    assert out.plaintext_data_key == encrypted.plaintext_data_key
    assert client.decrypts == 1


class _Counting:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.decrypts = 0

    def generate_data_key(self, **kwargs: Any) -> Mapping[str, Any]:
        return self.inner.generate_data_key(**kwargs)  # type: ignore[no-any-return]

    def encrypt(self, **kwargs: Any) -> Mapping[str, Any]:
        return self.inner.encrypt(**kwargs)  # type: ignore[no-any-return]

    def decrypt(self, **kwargs: Any) -> Mapping[str, Any]:
        self.decrypts += 1
        return self.inner.decrypt(**kwargs)  # type: ignore[no-any-return]


def test_materials_with_a_key_are_returned_untouched(east: Any) -> None:
    arn = _key(east)
    done = _dec().with_data_key(b"k" * SUITE.key_length)
    client = _Counting(east)
    assert KMSKeyring(arn, client).on_decrypt(done, []) is done
    assert KMSDiscoveryKeyring(client).on_decrypt(done, []) is done
    assert client.decrypts == 0


def test_bad_provider_info_fails_the_call(east: Any) -> None:
    arn = _key(east)
    good = KMSKeyring(arn, east).on_encrypt(_enc()).encrypted_data_keys[0]
    for info in (b"not-an-arn", f"arn:aws:kms:us-east-1:{MOTO_ACCOUNT}:alias/app".encode(), b"\xff\xfe"):
        bad = EncryptedDataKey(PROVIDER_ID, info, b"x")
        for keyring in (KMSKeyring(arn, east), KMSDiscoveryKeyring(east)):
            with pytest.raises(NoMatchingKeyError, match="provider info is not a KMS key ARN"):
                keyring.on_decrypt(_dec(), [bad, good])


def test_grant_tokens_are_sent(east: Any) -> None:
    arn = _key(east)
    response = {"KeyId": arn, "Plaintext": b"p" * 32, "CiphertextBlob": b"c" * 60}
    client = _Scripted(response)
    KMSKeyring(arn, client, grant_tokens=["gt-1"]).on_encrypt(_enc())
    KMSKeyring(arn, client, grant_tokens=["gt-1"]).on_decrypt(
        _dec(), [EncryptedDataKey(PROVIDER_ID, arn.encode(), b"c" * 60)])
    assert [r["GrantTokens"] for r in client.requests] == [["gt-1"], ["gt-1"]]
    assert client.requests[0]["NumberOfBytes"] == 32 and client.requests[0]["EncryptionContext"] == CONTEXT
    assert client.requests[1]["KeyId"] == arn


# --- failures from the client: translated, collected, never foreign -----------------------------

ARN = SRK_EAST
GOOD_EDK = EncryptedDataKey(PROVIDER_ID, ARN.encode(), b"c" * 60)


@pytest.mark.parametrize(("response", "phrase"), [
    ({"KeyId": ARN, "Plaintext": b"p" * 16, "CiphertextBlob": b"c"}, "16-byte"),
    ({"KeyId": "alias/app", "Plaintext": b"p" * 32, "CiphertextBlob": b"c"}, "not a KMS key ARN"),
    ({"KeyId": ARN, "Plaintext": b"p" * 32}, "no CiphertextBlob"),
    ({"KeyId": ARN, "CiphertextBlob": b"c"}, "no Plaintext"),
    ([], "not a response mapping"),
], ids=["short-key", "key-id-not-arn", "no-ciphertext", "no-plaintext", "not-a-mapping"])
def test_bad_generate_responses_are_refused(response: object, phrase: str) -> None:
    with pytest.raises(KeyringError, match=phrase):
        KMSKeyring(ARN, _Scripted(response)).on_encrypt(_enc())


@pytest.mark.parametrize(("response", "phrase"), [
    ({"KeyId": ARN.replace("1234abcd", "ffffffff"), "Plaintext": b"p" * 32}, "answered for key"),
    ({"KeyId": ARN, "Plaintext": b"p" * 31}, "31-byte"),
    ({"KeyId": ARN}, "no Plaintext"),
], ids=["other-key", "short-key", "no-plaintext"])
def test_bad_decrypt_responses_are_collected(response: object, phrase: str) -> None:
    with pytest.raises(NoMatchingKeyError, match=phrase) as info:
        KMSKeyring(ARN, _Scripted(response)).on_decrypt(_dec(), [GOOD_EDK, GOOD_EDK])
    assert len(info.value.errors) == 2 and all(isinstance(e, KeyringError) for e in info.value.errors)


def test_foreign_errors_are_translated() -> None:
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Decrypt")
    with pytest.raises(NoMatchingKeyError) as info:
        KMSKeyring(ARN, _Scripted(denied)).on_decrypt(_dec(), [GOOD_EDK])
    (reason,) = info.value.errors
    assert isinstance(reason, KMSError) and reason.code == "AccessDeniedException"
    offline = _Offline()
    with pytest.raises(KMSError) as raised:
        KMSKeyring(ARN, offline).on_encrypt(_enc())
    assert raised.value.code == "EndpointConnectionError" and "unreachable" in str(raised.value)
    with pytest.raises(KMSError) as raised:
        KMSKeyring(ARN, _Scripted(RuntimeError("boom"))).on_encrypt(_enc().with_data_key(b"k" * 32))
    assert raised.value.code == "RuntimeError"


def test_error_messages_never_carry_the_data_key() -> None:
    data_key = bytes(range(32))
    materials = _enc().with_data_key(data_key)
    for error in (ParamValidationError(report=f"Invalid type for parameter Plaintext, value: {data_key!r}"),
                  ValueError(f"bad plaintext {data_key.hex()}")):
        with pytest.raises(KMSError) as raised:
            KMSKeyring(ARN, _Scripted(error)).on_encrypt(materials)
        assert data_key.hex() not in str(raised.value) and repr(data_key) not in str(raised.value)
        assert "withheld" in str(raised.value)


# --- discovery --------------------------------------------------------------------------------------

def test_discovery_decrypts_any_key_within_the_filter(east: Any) -> None:
    arn = _key(east)
    encrypted = KMSKeyring(arn, east).on_encrypt(_enc())
    for keyring in (KMSDiscoveryKeyring(east), KMSDiscoveryKeyring(east, DiscoveryFilter("aws", (MOTO_ACCOUNT,)))):
        out = keyring.on_decrypt(_dec(), encrypted.encrypted_data_keys)
        assert out.plaintext_data_key == encrypted.plaintext_data_key
    for refused in (DiscoveryFilter("aws", ("999999999999",)), DiscoveryFilter("aws-cn", (MOTO_ACCOUNT,))):
        with pytest.raises(NoMatchingKeyError, match="no encrypted data key matches"):
            KMSDiscoveryKeyring(east, refused).on_decrypt(_dec(), encrypted.encrypted_data_keys)
    with pytest.raises(KeyringError, match="decrypt-only"):
        KMSDiscoveryKeyring(east).on_encrypt(_enc())


def test_mrk_discovery_only_tries_keys_it_can_reach() -> None:
    client = _Scripted({"KeyId": MRK_WEST, "Plaintext": b"p" * 32})
    keyring = KMSMRKAwareDiscoveryKeyring(client, "us-west-2")
    srk = EncryptedDataKey(PROVIDER_ID, SRK_EAST.encode(), b"c")
    mrk = EncryptedDataKey(PROVIDER_ID, MRK_EAST.encode(), b"c")
    out = keyring.on_decrypt(_dec(), [srk, mrk])
    assert out.plaintext_data_key == b"p" * 32
    assert [r["KeyId"] for r in client.requests] == [MRK_WEST]  # the replica in its own region
    with pytest.raises(NoMatchingKeyError):
        keyring.on_decrypt(_dec(), [srk])


def test_mrk_aware_keyring_matches_the_replica() -> None:
    client = _Scripted({"KeyId": MRK_WEST, "Plaintext": b"p" * 32})
    edk = EncryptedDataKey(PROVIDER_ID, MRK_EAST.encode(), b"c")
    assert KMSMRKAwareKeyring(MRK_WEST, client).on_decrypt(_dec(), [edk]).plaintext_data_key == b"p" * 32
    assert client.requests[-1]["KeyId"] == MRK_WEST
    with pytest.raises(NoMatchingKeyError, match="no encrypted data key matches"):
        KMSKeyring(MRK_WEST, client).on_decrypt(_dec(), [edk])


# --- two regions, one offline -------------------------------------------------------------------------

def test_multi_region_survives_an_offline_region(east: Any, west: Any) -> None:
    east_arn, west_arn = _key(east), _key(west)
    writer = MultiKeyring(generator=KMSKeyring(east_arn, east), children=[KMSKeyring(west_arn, west)])
    encrypted = writer.on_encrypt(_enc())
    assert len(encrypted.encrypted_data_keys) == 2
    offline = _Offline()
    reader = MultiKeyring(generator=KMSKeyring(east_arn, offline), children=[KMSKeyring(west_arn, west)])
    out = reader.on_decrypt(_dec(), encrypted.encrypted_data_keys)
    assert out.plaintext_data_key == encrypted.plaintext_data_key and offline.calls == 1
    both_down = MultiKeyring(generator=KMSKeyring(east_arn, offline), children=[KMSKeyring(west_arn, offline)])
    with pytest.raises(NoMatchingKeyError) as info:
        both_down.on_decrypt(_dec(), encrypted.encrypted_data_keys)
    assert "EndpointConnectionError" in str(info.value) and east_arn in str(info.value)


# --- over the embedded LocalKMS ----------------------------------------------------------------------

LOCAL_ACCOUNT = "111122223333"
APP = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/App"


@pytest.fixture
def local(tmp_path: Any) -> Any:
    from envelope.kms import LocalKMS
    return LocalKMS(path=tmp_path, region="us-east-1", account=LOCAL_ACCOUNT)


def test_local_roundtrip_is_audited_without_secrets(local: Any) -> None:
    arn = local.create_key(Description="app")["KeyMetadata"]["Arn"]
    encrypted, _ = _roundtrip(KMSKeyring(arn, local), KMSKeyring(arn, local))
    events = local.audit.lookup(key_id=arn)
    assert [e["eventName"] for e in events] == ["Decrypt", "GenerateDataKey", "CreateKey"]
    assert all(e["requestParameters"]["encryptionContext"] == CONTEXT for e in events[:2])
    data_key = encrypted.plaintext_data_key
    assert data_key is not None
    dump = repr(events)
    assert data_key.hex() not in dump and repr(data_key) not in dump
    assert local.audit.verify().ok


def test_local_access_denied_is_reported(local: Any) -> None:
    arn = local.create_key()["KeyMetadata"]["Arn"]
    encrypted = KMSKeyring(arn, local).on_encrypt(_enc())
    app = local.for_principal(APP)
    with pytest.raises(KMSError) as raised:
        KMSKeyring(arn, app).on_encrypt(_enc())
    assert raised.value.code == "AccessDeniedException" and APP in str(raised.value)
    with pytest.raises(NoMatchingKeyError) as info:
        KMSKeyring(arn, app).on_decrypt(_dec(), encrypted.encrypted_data_keys)
    (reason,) = info.value.errors
    assert isinstance(reason, KMSError) and reason.code == "AccessDeniedException"
    denied = local.audit.lookup(principal=APP)
    assert {e["errorCode"] for e in denied} == {"AccessDeniedException"}


def test_local_grant_with_context_constraint(local: Any) -> None:
    arn = local.create_key()["KeyMetadata"]["Arn"]
    local.create_grant(KeyId=arn, GranteePrincipal=APP, Operations=["Decrypt"],
                       Constraints={"EncryptionContextSubset": {"tenant": "t1"}})
    app = KMSKeyring(arn, local.for_principal(APP))
    ok = KMSKeyring(arn, local).on_encrypt(_enc())
    assert app.on_decrypt(_dec(), ok.encrypted_data_keys).plaintext_data_key == ok.plaintext_data_key
    other_tenant = {"purpose": "test", "tenant": "t2"}
    refused = KMSKeyring(arn, local).on_encrypt(_enc(context=other_tenant))
    with pytest.raises(NoMatchingKeyError) as info:
        app.on_decrypt(_dec(context=other_tenant), refused.encrypted_data_keys)
    assert [getattr(e, "code", None) for e in info.value.errors] == ["AccessDeniedException"]


def test_local_multi_region_key_decrypts_in_the_replica_region(local: Any) -> None:
    west = local.for_region("us-west-2")
    primary = local.create_key(MultiRegion=True)["KeyMetadata"]["Arn"]
    replica = local.replicate_key(KeyId=primary, ReplicaRegion="us-west-2")["ReplicaKeyMetadata"]["Arn"]
    assert mrk_match(primary, replica) and primary != replica
    encrypted = KMSMRKAwareKeyring(primary, local).on_encrypt(_enc())
    for keyring in (KMSMRKAwareKeyring(replica, west), KMSMRKAwareDiscoveryKeyring(west, "us-west-2")):
        out = keyring.on_decrypt(_dec(), encrypted.encrypted_data_keys)
        assert out.plaintext_data_key == encrypted.plaintext_data_key
    with pytest.raises(NoMatchingKeyError):  # a plain KMSKeyring wants the exact ARN
        KMSKeyring(replica, west).on_decrypt(_dec(), encrypted.encrypted_data_keys)
    # The primary's region is offline: the replica still serves the message.
    reader = MultiKeyring(generator=KMSMRKAwareKeyring(primary, _Offline()),
                          children=[KMSMRKAwareKeyring(replica, west)])
    assert reader.on_decrypt(_dec(), encrypted.encrypted_data_keys).plaintext_data_key == \
        encrypted.plaintext_data_key


def test_local_two_regions_one_offline(local: Any) -> None:
    west = local.for_region("us-west-2")
    east_arn = local.create_key()["KeyMetadata"]["Arn"]
    west_arn = west.create_key()["KeyMetadata"]["Arn"]
    writer = MultiKeyring(generator=KMSKeyring(east_arn, local), children=[KMSKeyring(west_arn, west)])
    encrypted = writer.on_encrypt(_enc())
    for down in (_Offline(), local.for_region("eu-west-1")):  # unreachable client; wrong-region store
        reader = MultiKeyring(generator=KMSKeyring(east_arn, down), children=[KMSKeyring(west_arn, west)])
        assert reader.on_decrypt(_dec(), encrypted.encrypted_data_keys).plaintext_data_key == \
            encrypted.plaintext_data_key
    local.disable_key(KeyId=east_arn)
    reader = MultiKeyring(generator=KMSKeyring(east_arn, local), children=[KMSKeyring(west_arn, west)])
    assert reader.on_decrypt(_dec(), encrypted.encrypted_data_keys).plaintext_data_key == \
        encrypted.plaintext_data_key
    west.disable_key(KeyId=west_arn)
    with pytest.raises(NoMatchingKeyError) as info:
        reader.on_decrypt(_dec(), encrypted.encrypted_data_keys)
    assert "DisabledException" in str(info.value)


# --- whole messages: the ESDK as peer (over moto) and LocalKMS end to end --------------------------

def test_esdk_peer_interoperates(east: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the ESDK warns about its own deprecations on import
        import aws_encryption_sdk  # type: ignore[import-untyped]
        from aws_encryption_sdk import CommitmentPolicy as ESDKCommitmentPolicy
    arn = _key(east)
    peer = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=ESDKCommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[arn])
    theirs, _ = peer.encrypt(source=b"from the ESDK", key_provider=provider, encryption_context=CONTEXT)
    plaintext, header = envelope.decrypt(theirs, keyring=KMSKeyring(arn, east))
    assert plaintext == b"from the ESDK" and header.encryption_context["tenant"] == "t1"
    ours = envelope.encrypt(b"from envelope", keyring=KMSKeyring(arn, east), encryption_context=CONTEXT)
    plaintext, _ = peer.decrypt(source=ours, key_provider=provider)
    assert plaintext == b"from envelope"


def test_local_message_survives_an_offline_region(local: Any) -> None:
    west = local.for_region("us-west-2")
    east_arn = local.create_key()["KeyMetadata"]["Arn"]
    west_arn = west.create_key()["KeyMetadata"]["Arn"]
    message = envelope.encrypt(b"payload" * 100, encryption_context=CONTEXT, keyring=MultiKeyring(
        generator=KMSKeyring(east_arn, local), children=[KMSKeyring(west_arn, west)]))
    reader = MultiKeyring(generator=KMSKeyring(east_arn, _Offline()), children=[KMSKeyring(west_arn, west)])
    plaintext, _ = envelope.decrypt(message, keyring=reader)
    assert plaintext == b"payload" * 100
    with pytest.raises(NoMatchingKeyError):
        envelope.decrypt(message, keyring=KMSKeyring(east_arn, _Offline()))
