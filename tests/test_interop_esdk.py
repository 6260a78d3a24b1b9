"""Cross-checks with the `aws-encryption-sdk` package: it encrypts and we decrypt, and the reverse.

The matrix is sampled, not a full product: every suite at every edge size for one frame length,
every frame length for a few suites, every wrapping key kind for one suite.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import Any

import pytest
from _esdk_helpers import (
    AWSEncryptionSDKClientError,
    ESDKRequiredContextCMM,
    esdk_aes_key,
    esdk_algorithm,
    esdk_client,
    esdk_decrypt,
    esdk_encrypt,
    esdk_multi,
    esdk_rsa_key,
    policy_for,
    rsa_private_pem,
    rsa_public_pem,
)
from cryptography.exceptions import InvalidSignature, InvalidTag

import envelope
from envelope import AlgorithmSuite as Suite

ALL_SUITES = list(Suite)
SAMPLE_SUITES = [Suite.AES_128_GCM_IV12_TAG16, Suite.AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384,
                 Suite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, Suite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384]
DEFAULT = Suite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
UNICODE_CONTEXT = {"purpose": "interop", "ünïcödé": "värdë", "emoji 🔑": "𝄞 outside the BMP", "": "empty key"}
PUBLIC_KEY = "aws-crypto-public-key"
ESDK_FAILURES = (AWSEncryptionSDKClientError, InvalidTag, InvalidSignature)  # the ESDK lets the last two escape

# ESDK Python refuses to WRITE a frame length that is not a multiple of 128 (it checks the length
# against the block size in bits, not bytes), so ESDK-written messages use 128 / 4096 / 65536 and
# 0 (non-framed), while we write 1 as well; the ESDK reads any length (format-spec §9).
ESDK_FRAMES = [128, 4096, 65536, 0]
OUR_FRAMES = [1, 4096, 65536, 0]


def _payload(n: int, tag: str = "") -> bytes:
    """Deterministic, non-repeating plaintext (so a frame swap cannot go unnoticed)."""
    seed = f"{n}:{tag}".encode()
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:n])


def _edge_sizes(frame: int) -> list[int]:
    if frame == 0:
        return [0, 1, 4097]
    return sorted({0, 1, frame - 1, frame, frame + 1})


def _stored(context: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in context.items() if k != PUBLIC_KEY}


class Keys:
    """One wrapping key seen from both sides."""

    def __init__(self, ours: envelope.Keyring, theirs: Any) -> None:
        self.ours = ours
        self.theirs = theirs


def _aes(bits: int = 256, name: str = "aes") -> Keys:
    key = _payload(bits // 8, f"key-{name}-{bits}")
    return Keys(envelope.RawAESKeyring("interop", f"{name}-{bits}", key), esdk_aes_key("interop", f"{name}-{bits}", key))


def _rsa(padding: str, index: int = 0) -> Keys:
    private, public = rsa_private_pem(2048, index), rsa_public_pem(2048, index)
    return Keys(envelope.RawRSAKeyring("interop-rsa", f"rsa-{index}", private_key_pem=private,
                                       public_key_pem=public, padding=padding),
                esdk_rsa_key("interop-rsa", f"rsa-{index}", private, padding))


def _ours_encrypt(plaintext: bytes, keyring: Any, suite: Suite, frame: int | None,
                  context: dict[str, str] | None = None) -> bytes:
    return envelope.encrypt(plaintext, keyring=keyring, algorithm=suite, frame_length=frame,
                            encryption_context=context, commitment_policy=policy_for(suite))


def _ours_decrypt(ciphertext: bytes, keyring: Any, **options: Any) -> tuple[bytes, envelope.Header]:
    options.setdefault("commitment_policy", "REQUIRE_ENCRYPT_ALLOW_DECRYPT")
    return envelope.decrypt(ciphertext, keyring=keyring, **options)


def _check_theirs_to_ours(keys: Keys, suite: Suite, frame: int, size: int,
                          context: dict[str, str] | None = None) -> None:
    plaintext = _payload(size, suite.name)
    ciphertext = esdk_encrypt(plaintext, keys.theirs, suite, frame, context)
    out, header = _ours_decrypt(ciphertext, keys.ours)
    assert out == plaintext
    assert header.algorithm is suite
    assert header.frame_length == frame
    assert _stored(dict(header.encryption_context)) == (context or {})


def _check_ours_to_theirs(keys: Keys, suite: Suite, frame: int, size: int,
                          context: dict[str, str] | None = None) -> None:
    plaintext = _payload(size, suite.name)
    ciphertext = _ours_encrypt(plaintext, keys.ours, suite, frame, context)
    out, their_context = esdk_decrypt(ciphertext, keys.theirs)
    assert out == plaintext
    assert _stored(their_context) == (context or {})
    assert (PUBLIC_KEY in their_context) == suite.is_signing


DIRECTIONS: dict[str, Callable[..., None]] = {"esdk-to-ours": _check_theirs_to_ours,
                                              "ours-to-esdk": _check_ours_to_theirs}


@pytest.fixture(scope="module")
def aes256() -> Keys:
    return _aes(256)


# -- every suite at every edge size (one frame length) ---------------------------------------

@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("size", _edge_sizes(4096), ids=lambda n: f"{n}B")
@pytest.mark.parametrize("suite", ALL_SUITES, ids=lambda s: s.name)
def test_every_suite_and_size(aes256: Keys, direction: str, suite: Suite, size: int) -> None:
    DIRECTIONS[direction](aes256, suite, 4096, size, UNICODE_CONTEXT)


# -- every frame length for a few suites -----------------------------------------------------

def _frame_cases(frames: list[int]) -> list[Any]:
    return [pytest.param(suite, frame, size, id=f"{suite.name}-frame{frame}-{size}B")
            for suite in SAMPLE_SUITES for frame in frames for size in _edge_sizes(frame)]


@pytest.mark.parametrize(("suite", "frame", "size"), _frame_cases(ESDK_FRAMES))
def test_esdk_frame_lengths(aes256: Keys, suite: Suite, frame: int, size: int) -> None:
    _check_theirs_to_ours(aes256, suite, frame, size, {"frame": str(frame)})


@pytest.mark.parametrize(("suite", "frame", "size"), _frame_cases(OUR_FRAMES))
def test_our_frame_lengths(aes256: Keys, suite: Suite, frame: int, size: int) -> None:
    _check_ours_to_theirs(aes256, suite, frame, size, {"frame": str(frame)})


def test_esdk_refuses_to_write_odd_frame_lengths(aes256: Keys) -> None:
    # Pins the reason the ESDK-side matrix uses multiples of 128 only.
    with pytest.raises(AWSEncryptionSDKClientError):
        esdk_encrypt(b"x", aes256.theirs, DEFAULT, 100)


@pytest.mark.parametrize(("direction", "suite", "frame"), [
    pytest.param("esdk-to-ours", DEFAULT, 65536, id="esdk-to-ours-default-frame65536"),
    pytest.param("esdk-to-ours", Suite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, 4096, id="esdk-to-ours-0478-frame4096"),
    pytest.param("ours-to-esdk", DEFAULT, 65536, id="ours-to-esdk-default-frame65536"),
    pytest.param("ours-to-esdk", Suite.AES_128_GCM_IV12_TAG16_HKDF_SHA256, 4096, id="ours-to-esdk-0114-frame4096"),
    pytest.param("ours-to-esdk", Suite.AES_256_GCM_IV12_TAG16, 0, id="ours-to-esdk-0078-nonframed"),
])
def test_one_mebibyte(aes256: Keys, direction: str, suite: Suite, frame: int) -> None:
    DIRECTIONS[direction](aes256, suite, frame, 1024 * 1024, {"size": "1MiB"})


def test_our_defaults_read_by_esdk(aes256: Keys) -> None:
    # No suite, frame length or policy given: the default frame (256 KiB) and the signed committing suite.
    plaintext = _payload(3 * 1024 * 1024 + 5, "defaults")
    out, context = esdk_decrypt(envelope.encrypt(plaintext, keyring=aes256.ours), aes256.theirs)
    assert out == plaintext
    assert PUBLIC_KEY in context


def test_esdk_message_streamed_in_small_chunks(aes256: Keys) -> None:
    plaintext = _payload(200_000, "stream")
    ciphertext = esdk_encrypt(plaintext, aes256.theirs, DEFAULT, 4096, {"via": "stream"})
    sink = io.BytesIO()
    chunks = (ciphertext[i:i + 777] for i in range(0, len(ciphertext), 777))
    header = envelope.decrypt_stream(chunks, sink, keyring=aes256.ours)
    assert sink.getvalue() == plaintext
    assert header.encryption_context["via"] == "stream"


# -- encryption contexts ---------------------------------------------------------------------

CONTEXTS = {
    "empty": {},
    "ascii": {"a": "1", "b": "2", "department": "finance"},
    "unicode": UNICODE_CONTEXT,
    # Keys whose UTF-8 order differs from their UTF-16 order: the sort is by UTF-8 bytes (§4.3).
    "utf8-order": {"\uffff": "bmp-last", "\U00010000": "astral", "z": "ascii"},
}


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("suite", [Suite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, DEFAULT,
                                   Suite.AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256], ids=lambda s: s.name)
@pytest.mark.parametrize("context", CONTEXTS, ids=str)
def test_encryption_contexts(aes256: Keys, direction: str, suite: Suite, context: str) -> None:
    DIRECTIONS[direction](aes256, suite, 4096, 5000, CONTEXTS[context])


# -- wrapping keys ---------------------------------------------------------------------------

@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("suite", [DEFAULT, Suite.AES_192_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384], ids=lambda s: s.name)
@pytest.mark.parametrize("bits", [128, 192, 256], ids=lambda b: f"AES-{b}")
def test_raw_aes_key_sizes(direction: str, suite: Suite, bits: int) -> None:
    DIRECTIONS[direction](_aes(bits), suite, 4096, 4097, {"wrapping": f"aes{bits}"})


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("suite", [DEFAULT, Suite.AES_128_GCM_IV12_TAG16], ids=lambda s: s.name)
@pytest.mark.parametrize("padding", ["PKCS1", "OAEP-SHA1", "OAEP-SHA256", "OAEP-SHA384", "OAEP-SHA512"])
def test_raw_rsa_paddings(direction: str, suite: Suite, padding: str) -> None:
    DIRECTIONS[direction](_rsa(padding), suite, 4096, 4097, {"wrapping": padding})


@pytest.mark.parametrize("padding", ["OAEP-SHA1", "OAEP-SHA256"])
def test_rsa_padding_mismatch_fails_both_ways(padding: str) -> None:
    # The EDK does not name its padding, so a keyring with another padding must fail to unwrap.
    sender, receiver = _rsa(padding), _rsa("PKCS1")
    ours = _ours_encrypt(b"secret", sender.ours, DEFAULT, 4096)
    with pytest.raises(ESDK_FAILURES):
        esdk_decrypt(ours, receiver.theirs)
    theirs = esdk_encrypt(b"secret", sender.theirs, DEFAULT, 4096)
    with pytest.raises(envelope.NoMatchingKeyError):
        _ours_decrypt(theirs, receiver.ours)


def _multi_members() -> list[Keys]:
    return [_aes(256, "gen"), _aes(128, "child"), _rsa("OAEP-SHA256", 1)]


@pytest.mark.parametrize("member", [0, 1, 2], ids=["generator-aes256", "child-aes128", "child-rsa"])
@pytest.mark.parametrize("suite", [DEFAULT, Suite.AES_192_GCM_IV12_TAG16_HKDF_SHA256], ids=lambda s: s.name)
def test_multi_esdk_provider_to_our_single_keyrings(suite: Suite, member: int) -> None:
    members = _multi_members()
    plaintext = _payload(9000, "multi")
    ciphertext = esdk_encrypt(plaintext, esdk_multi([m.theirs for m in members]), suite, 4096, {"m": "esdk"})
    out, header = _ours_decrypt(ciphertext, members[member].ours)
    assert out == plaintext
    assert len(header.encrypted_data_keys) == 3


@pytest.mark.parametrize("member", [0, 1, 2], ids=["generator-aes256", "child-aes128", "child-rsa"])
@pytest.mark.parametrize("suite", [DEFAULT, Suite.AES_192_GCM_IV12_TAG16_HKDF_SHA256], ids=lambda s: s.name)
def test_our_multi_keyring_to_esdk_single_keys(suite: Suite, member: int) -> None:
    members = _multi_members()
    keyring = envelope.MultiKeyring(generator=members[0].ours, children=[m.ours for m in members[1:]])
    plaintext = _payload(9000, "multi")
    ciphertext = _ours_encrypt(plaintext, keyring, suite, 4096, {"m": "ours"})
    out, context = esdk_decrypt(ciphertext, members[member].theirs)
    assert out == plaintext
    assert context["m"] == "ours"


def test_max_encrypted_data_keys_both_ways() -> None:
    members = _multi_members()
    ours = _ours_encrypt(b"three edks", envelope.MultiKeyring(generator=members[0].ours,
                                                              children=[m.ours for m in members[1:]]), DEFAULT, 4096)
    theirs = esdk_encrypt(b"three edks", esdk_multi([m.theirs for m in members]), DEFAULT, 4096)
    with pytest.raises(AWSEncryptionSDKClientError):
        esdk_decrypt(ours, members[0].theirs, max_encrypted_data_keys=2)
    with pytest.raises(envelope.PolicyError):
        _ours_decrypt(theirs, members[0].ours, max_encrypted_data_keys=2)
    assert esdk_decrypt(ours, members[0].theirs, max_encrypted_data_keys=3)[0] == b"three edks"
    assert _ours_decrypt(theirs, members[0].ours, max_encrypted_data_keys=3)[0] == b"three edks"


def test_wrong_key_fails_both_ways(aes256: Keys) -> None:
    other = _aes(256, "other-name")
    wrong_bytes = Keys(envelope.RawAESKeyring("interop", "aes-256", bytes(32)),
                       esdk_aes_key("interop", "aes-256", bytes(32)))
    theirs = esdk_encrypt(b"payload", aes256.theirs, DEFAULT, 4096)
    ours = _ours_encrypt(b"payload", aes256.ours, DEFAULT, 4096)
    for keys in (other, wrong_bytes):
        with pytest.raises(envelope.NoMatchingKeyError):
            _ours_decrypt(theirs, keys.ours)
        with pytest.raises(ESDK_FAILURES):
            esdk_decrypt(ours, keys.theirs)


# -- required encryption context and decrypt-time context checks -----------------------------

@pytest.mark.parametrize("suite", [DEFAULT, Suite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY], ids=lambda s: s.name)
def test_required_context_esdk_to_ours(aes256: Keys, suite: Suite) -> None:
    cmm = ESDKRequiredContextCMM(aes256.theirs, {"tenant": "t-42"})
    ciphertext, _ = esdk_client(suite).encrypt(source=b"required", materials_manager=cmm, frame_length=4096,
                                               encryption_context={"tenant": "t-42", "stored": "yes"},
                                               algorithm=esdk_algorithm(suite))
    out, header = _ours_decrypt(ciphertext, aes256.ours, encryption_context={"tenant": "t-42"})
    assert out == b"required"
    assert _stored(dict(header.encryption_context)) == {"stored": "yes"}  # "tenant" is not in the header
    with pytest.raises(envelope.EnvelopeError):
        _ours_decrypt(ciphertext, aes256.ours)
    manager = envelope.RequiredEncryptionContextManager(["tenant"], keyring=aes256.ours)
    with pytest.raises(envelope.PolicyError):
        envelope.decrypt(ciphertext, materials_manager=manager, commitment_policy="REQUIRE_ENCRYPT_ALLOW_DECRYPT")
    out, _ = envelope.decrypt(ciphertext, materials_manager=manager, encryption_context={"tenant": "t-42"},
                              commitment_policy="REQUIRE_ENCRYPT_ALLOW_DECRYPT")
    assert out == b"required"


@pytest.mark.parametrize("keys", ["aes", "rsa"])
def test_required_context_ours_to_esdk(keys: str) -> None:
    pair = _aes(256) if keys == "aes" else _rsa("OAEP-SHA256")
    manager = envelope.RequiredEncryptionContextManager(["tenant"], keyring=pair.ours)
    ciphertext = envelope.encrypt(b"required", materials_manager=manager, frame_length=4096,
                                  encryption_context={"tenant": "t-42", "stored": "yes"})
    out, context = esdk_decrypt(ciphertext, materials_manager=ESDKRequiredContextCMM(pair.theirs, {"tenant": "t-42"}))
    assert out == b"required"
    assert _stored(context) == {"stored": "yes"}
    # Without the required pair the header tag (and for AES the wrapped key) cannot verify.
    with pytest.raises(ESDK_FAILURES):
        esdk_decrypt(ciphertext, pair.theirs)
    with pytest.raises(ESDK_FAILURES):
        esdk_decrypt(ciphertext, materials_manager=ESDKRequiredContextCMM(pair.theirs, {"tenant": "t-43"}))


@pytest.mark.parametrize(("given", "outcome"), [
    pytest.param({"a": "1"}, None, id="subset-matches"),
    pytest.param({"a": "1", "b": "2"}, None, id="all-match"),
    pytest.param({}, None, id="nothing-given"),
    pytest.param({"a": "2"}, envelope.PolicyError, id="value-differs"),
    pytest.param({"a": "1", "b": "3"}, envelope.PolicyError, id="second-value-differs"),
    pytest.param({"c": "3"}, envelope.EnvelopeError, id="key-not-in-header"),
])
@pytest.mark.parametrize("keys", ["aes", "rsa"])
def test_decrypt_context_checks_on_esdk_messages(keys: str, given: dict[str, str],
                                                 outcome: type[Exception] | None) -> None:
    pair = _aes(256) if keys == "aes" else _rsa("OAEP-SHA256")
    ciphertext = esdk_encrypt(b"checked", pair.theirs, DEFAULT, 4096, {"a": "1", "b": "2"})
    if outcome is None:
        assert _ours_decrypt(ciphertext, pair.ours, encryption_context=given)[0] == b"checked"
        return
    with pytest.raises(outcome):
        _ours_decrypt(ciphertext, pair.ours, encryption_context=given)


def test_key_not_in_header_fails_where_expected() -> None:
    # An extra decrypt-time key is treated as required context: the raw AES keyring binds the EC,
    # so its unwrap fails; the raw RSA keyring does not, so the header tag fails instead.
    aes, rsa_ = _aes(256), _rsa("OAEP-SHA256")
    for pair, error in ((aes, envelope.NoMatchingKeyError), (rsa_, envelope.AuthenticationError)):
        ciphertext = esdk_encrypt(b"checked", pair.theirs, DEFAULT, 4096, {"a": "1"})
        with pytest.raises(error):
            _ours_decrypt(ciphertext, pair.ours, encryption_context={"c": "3"})


# -- tampering is caught on both sides -------------------------------------------------------

def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize("where", ["header-tag", "first-frame", "last-byte"])
@pytest.mark.parametrize("suite", [DEFAULT, Suite.AES_256_GCM_IV12_TAG16_HKDF_SHA256], ids=lambda s: s.name)
def test_tampering_detected_both_ways(aes256: Keys, suite: Suite, where: str) -> None:
    plaintext = _payload(5000, "tamper")
    theirs = esdk_encrypt(plaintext, aes256.theirs, suite, 4096)
    ours = _ours_encrypt(plaintext, aes256.ours, suite, 4096)
    for ciphertext, ours_reads in ((theirs, True), (ours, False)):
        header_length = _header_length(ciphertext)
        index = {"header-tag": header_length - 1, "first-frame": header_length + 20, "last-byte": len(ciphertext) - 1}[where]
        damaged = _flip(ciphertext, index)
        if ours_reads:
            with pytest.raises(envelope.AuthenticationError):
                _ours_decrypt(damaged, aes256.ours)
        else:
            with pytest.raises(ESDK_FAILURES):
                esdk_decrypt(damaged, aes256.theirs)


def _header_length(ciphertext: bytes) -> int:
    from envelope.format.header import parse_header

    return parse_header(ciphertext).length
