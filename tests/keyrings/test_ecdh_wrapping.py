"""The ECDH EDK module on its own, as the KMS ECDH keyring will use it: the shared secret comes
from a callback (there, KMS DeriveSharedSecret), and its failures are collected (format-spec/raw-ecdh.md)."""

from __future__ import annotations

import os

import pytest

from envelope import EncryptedDataKey, KMSError, NoMatchingKeyError
from envelope.crypto import ecdh
from envelope.keyrings.ecdh_wrapping import ECDHProviderInfo, fixed_info, unwrap_first, wrap, wrapped_length

CURVE = ecdh.curve_named("ECC_NIST_P384")


def _edk(provider_id: str = "aws-kms-ecdh") -> tuple[EncryptedDataKey, bytes, bytes, bytes]:
    recipient = ecdh.compress(ecdh.generate_private_key(CURVE).public_key())
    sender = ecdh.compress(ecdh.generate_private_key(CURVE).public_key())
    secret, data_key = os.urandom(48), os.urandom(32)
    ciphertext = wrap(secret, fixed_info(CURVE, sender, recipient, b""), data_key)
    assert len(ciphertext) == wrapped_length(32) == 112
    info = ECDHProviderInfo(recipient, sender)
    assert ECDHProviderInfo.parse(info.serialize(), CURVE) == info
    return EncryptedDataKey(provider_id, info.serialize(), ciphertext), secret, data_key, sender


@pytest.mark.parametrize("provider_id", ["raw-ecdh", "aws-kms-ecdh"])
def test_secret_from_a_callback(provider_id: str) -> None:
    edk, secret, data_key, sender = _edk(provider_id)
    peers: list[bytes] = []

    def secret_with(peer: bytes) -> bytes:
        peers.append(peer)
        return secret

    assert unwrap_first("x", "kr", CURVE, [edk], b"", 32, lambda keys: keys.sender, secret_with) == data_key
    assert peers == [sender]


def test_a_failing_secret_source_is_collected_and_the_next_edk_tried() -> None:
    first, _, _, _ = _edk()
    second, secret, data_key, _ = _edk()
    calls = iter([KMSError("AccessDeniedException: no", code="AccessDeniedException"), secret])

    def secret_with(peer: bytes) -> bytes:
        result = next(calls)
        if isinstance(result, Exception):
            raise result
        assert isinstance(result, bytes)
        return result

    assert unwrap_first("x", "kr", CURVE, [first, second], b"", 32, lambda k: k.sender, secret_with) == data_key

    def denied(peer: bytes) -> bytes:
        raise KMSError("AccessDeniedException: no", code="AccessDeniedException")

    with pytest.raises(NoMatchingKeyError, match="AccessDeniedException") as caught:
        unwrap_first("kms ECDH keyring could not decrypt", "kr", CURVE, [first], b"", 32, lambda k: k.sender, denied)
    assert str(caught.value).startswith("kms ECDH keyring could not decrypt")
