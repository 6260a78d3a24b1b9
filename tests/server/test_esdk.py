"""The aws-encryption-sdk's KMS master key provider, pointed at `kms serve`, interoperates with envelope.

envelope encrypts with KMSKeyring over LocalKMS (in this process, same data directory) and the
ESDK decrypts through the endpoint; then the ESDK encrypts through the endpoint and envelope
decrypts, both over LocalKMS directly and with KMSKeyring over a boto3 client of the endpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import envelope
from envelope import KMSKeyring  # not yet re-exported as envelope.KMSKeyring
from envelope.kms import LocalKMS

if TYPE_CHECKING:
    from .conftest import Endpoint

aws_encryption_sdk = pytest.importorskip("aws_encryption_sdk")
CONTEXT = {"purpose": "interop", "tenant": "t-42"}


def _botocore_session(endpoint: Endpoint, tmp_path: Path) -> Any:
    """A botocore session whose KMS clients use the endpoint: the ESDK creates clients from it.

    ESDK 4.0.7 takes ``botocore_session=`` and builds each regional client from it, so the
    endpoint comes from the session's profile (``endpoint_url``, honoured by botocore >= 1.31).
    """
    import botocore.session  # type: ignore[import-untyped]

    config = tmp_path / "aws-config"
    config.write_text(f"[default]\nregion = us-east-1\nendpoint_url = {endpoint.url}\n"
                      f"aws_access_key_id = {endpoint.access_key_id}\n"
                      f"aws_secret_access_key = {endpoint.secret}\n")
    session = botocore.session.Session()
    session.set_config_variable("config_file", str(config))
    session.set_config_variable("credentials_file", "/dev/null")
    return session


@pytest.fixture
def key_arn(endpoint: Endpoint) -> str:
    return str(endpoint.client().create_key(Description="esdk interop")["KeyMetadata"]["Arn"])


def _esdk_client() -> Any:
    return aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=aws_encryption_sdk.CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)


@pytest.mark.parametrize("size", [0, 1, 70_000], ids=["empty", "one-byte", "multi-frame"])
def test_esdk_decrypts_what_envelope_encrypted(endpoint: Endpoint, key_arn: str, tmp_path: Path,
                                               size: int) -> None:
    plaintext = bytes(i % 251 for i in range(size))
    local = LocalKMS(endpoint.data_dir)
    message = envelope.encrypt(plaintext, keyring=KMSKeyring(key_arn, client=local),
                               encryption_context=CONTEXT, frame_length=4096)
    provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(
        key_ids=[key_arn], botocore_session=_botocore_session(endpoint, tmp_path))
    decrypted, header = _esdk_client().decrypt(source=message, key_provider=provider)
    assert decrypted == plaintext
    assert {k: header.encryption_context[k] for k in CONTEXT} == CONTEXT
    # The ESDK's Decrypt went through the endpoint: the access log has it.
    assert any(r.get("operation") == "Decrypt" and r["status"] == 200 and "AwsEncryptionSdkPython" in r["user_agent"]
               for r in endpoint.access_log())


def test_envelope_decrypts_what_esdk_encrypted(endpoint: Endpoint, key_arn: str, tmp_path: Path) -> None:
    plaintext = b"from the ESDK, through the endpoint" * 100
    provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(
        key_ids=[key_arn], botocore_session=_botocore_session(endpoint, tmp_path))
    message, _ = _esdk_client().encrypt(source=plaintext, key_provider=provider, encryption_context=CONTEXT)

    over_local, header = envelope.decrypt(message, keyring=KMSKeyring(key_arn, client=LocalKMS(endpoint.data_dir)))
    assert over_local == plaintext and header.encryption_context["tenant"] == "t-42"
    over_http, _ = envelope.decrypt(message, keyring=KMSKeyring(key_arn, client=endpoint.client()),
                                    encryption_context=CONTEXT)
    assert over_http == plaintext


def test_esdk_refuses_a_tampered_context(endpoint: Endpoint, key_arn: str, tmp_path: Path) -> None:
    local = LocalKMS(endpoint.data_dir)
    message = envelope.encrypt(b"data", keyring=KMSKeyring(key_arn, client=local),
                               encryption_context=CONTEXT)
    provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(
        key_ids=[key_arn], botocore_session=_botocore_session(endpoint, tmp_path))
    # Swap one context value byte in the serialized header: the KMS decrypt of the data key (or the
    # header authentication) must fail, never yield plaintext.
    tampered = message.replace(b"t-42", b"t-43", 1)
    assert tampered != message
    with pytest.raises(aws_encryption_sdk.exceptions.AWSEncryptionSDKClientError):
        _esdk_client().decrypt(source=tampered, key_provider=provider)
