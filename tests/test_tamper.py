"""The tamper matrix: every bit flip, truncation and splice of small messages must raise an
envelope error, and the streaming decryptor must never have released plaintext it did not verify.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import envelope
from envelope import (
    AlgorithmSuite,
    AuthenticationError,
    EnvelopeError,
    FormatError,
    NoMatchingKeyError,
    PolicyError,
)
from envelope.format.header import parse_header, serialize_header_body
from envelope.format.suites import CommitmentPolicy
from envelope.materials.materials import DecryptionMaterials, EncryptionMaterials
from envelope.streaming.decryptor import MessageDecryptor

KEYRING = envelope.RawAESKeyring("tamper-ns", "tamper-key", bytes(range(32)))
MANAGER = envelope.DefaultMaterialsManager(KEYRING)
SUITES = list(AlgorithmSuite)
ALLOW = "REQUIRE_ENCRYPT_ALLOW_DECRYPT"  # decrypt everything; the policy tests come separately
F = 16  # frame length of the framed messages
FRAME_SIZE = F + 32  # seq(4) ‖ IV(12) ‖ ct(F) ‖ tag(16)


def _encrypt_policy(suite: AlgorithmSuite) -> str:
    return ALLOW if suite.is_committing else "FORBID_ENCRYPT_ALLOW_DECRYPT"


@dataclass(frozen=True)
class Sample:
    """A message and where its parts are, so a test knows which plaintext may have been released."""

    suite: AlgorithmSuite
    plaintext: bytes
    message: bytes
    frame_length: int
    header_length: int

    @property
    def regular_frames(self) -> int:
        if not self.frame_length or not self.plaintext:
            return 0
        return (len(self.plaintext) - 1) // self.frame_length

    def allowed_release(self, offset: int) -> int:
        """Plaintext bytes that may have been released before a fault at byte ``offset``: the
        regular frames that end before it. The final frame (or the single block) is only released
        when the message checks out, so never by a failed decrypt."""
        if not self.frame_length:
            return 0
        whole = max(0, offset - self.header_length) // FRAME_SIZE
        return min(whole, self.regular_frames) * self.frame_length


# "one-frame" is a single final frame: the one-shot decrypt's whole-message path (decrypt_rest).
KINDS = {"framed-3": (40, F), "framed-exact-2": (32, F), "one-frame": (10, F), "non-framed": (20, 0), "empty": (0, F)}


@cache
def sample(suite: AlgorithmSuite, kind: str) -> Sample:
    size, frame_length = KINDS[kind]
    plaintext = bytes((7 * i + 1) % 251 + 1 for i in range(size))  # no zero bytes (see the core test)
    message = envelope.encrypt(plaintext, keyring=KEYRING, algorithm=suite, frame_length=frame_length,
                               encryption_context={"purpose": "tamper", "ключ": "значение"},
                               commitment_policy=_encrypt_policy(suite))
    return Sample(suite, plaintext, message, frame_length, parse_header(message).length)


def decrypt_stream_capturing(message: bytes, **options: Any) -> tuple[BaseException | None, bytes]:
    """Run decrypt_stream; return (exception or None, what reached the sink)."""
    sink = io.BytesIO()
    options.setdefault("commitment_policy", ALLOW)
    options.setdefault("keyring", KEYRING)
    try:
        envelope.decrypt_stream(io.BytesIO(message), sink, **options)
    except Exception as exc:  # noqa: BLE001 - the test inspects what escaped
        return exc, sink.getvalue()
    return None, sink.getvalue()


def check_refused(s: Sample, bad: bytes, fault_offset: int, what: str) -> None:
    """``bad`` must be refused by every decrypt path, releasing only authentic frames before the fault."""
    exc, released = decrypt_stream_capturing(bad)
    assert exc is not None, f"{what}: decrypt_stream accepted a tampered message"
    assert isinstance(exc, EnvelopeError), f"{what}: foreign exception {exc!r}"
    assert released == s.plaintext[:len(released)], f"{what}: released bytes that are not the plaintext"
    assert len(released) <= s.allowed_release(fault_offset), f"{what}: released {len(released)} bytes"


def check_refused_oneshot(bad: bytes, what: str) -> EnvelopeError:
    try:
        envelope.decrypt(bad, keyring=KEYRING, commitment_policy=ALLOW)
    except EnvelopeError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{what}: foreign exception {exc!r}")
    pytest.fail(f"{what}: envelope.decrypt returned plaintext for a tampered message")


SAMPLE_IDS = [(suite, kind) for suite in SUITES for kind in KINDS]


def _id(param: tuple[AlgorithmSuite, str]) -> str:
    return f"{param[0].name}-{param[1]}"


@pytest.mark.parametrize("suite_kind", SAMPLE_IDS, ids=_id)
def test_untampered_samples_decrypt(suite_kind: tuple[AlgorithmSuite, str]) -> None:
    # The control for everything below: the same calls succeed on the authentic message.
    s = sample(*suite_kind)
    exc, released = decrypt_stream_capturing(s.message)
    assert exc is None and released == s.plaintext
    assert envelope.decrypt(s.message, keyring=KEYRING, commitment_policy=ALLOW)[0] == s.plaintext


FLIP_IDS = [(suite, kind) for suite, kind in SAMPLE_IDS if kind != "framed-exact-2"]


@pytest.mark.parametrize("suite_kind", FLIP_IDS, ids=_id)
def test_every_bit_flip_is_refused(suite_kind: tuple[AlgorithmSuite, str]) -> None:
    s = sample(*suite_kind)
    # The DER signature bytes (after the footer's length) get one bit class each: each costs an
    # ECDSA verification, and which bit is flipped does not matter to it.
    signature_length = {"P-256": 71, "P-384": 103, None: 0}[s.suite.signature_curve]
    signature_start = len(s.message) - signature_length
    for offset in range(len(s.message)):
        bits = range(8) if offset < signature_start else [offset % 8]
        for bit in bits:
            bad = bytearray(s.message)
            bad[offset] ^= 1 << bit
            check_refused(s, bytes(bad), offset, f"bit {bit} of byte {offset}")
        # The one-shot API, one bit class per byte (it shares the core with decrypt_stream).
        bad = bytearray(s.message)
        bad[offset] ^= 1 << (offset % 8)
        check_refused_oneshot(bytes(bad), f"byte {offset}")


@pytest.mark.parametrize("suite_kind", SAMPLE_IDS, ids=_id)
def test_every_truncation_is_refused(suite_kind: tuple[AlgorithmSuite, str]) -> None:
    s = sample(*suite_kind)
    for end in range(len(s.message)):
        cut = s.message[:end]
        check_refused(s, cut, end, f"truncated to {end} bytes")
        exc = check_refused_oneshot(cut, f"truncated to {end} bytes")
        assert isinstance(exc, (AuthenticationError, FormatError)), (end, exc)


@pytest.mark.parametrize("suite_kind", SAMPLE_IDS, ids=_id)
@pytest.mark.parametrize("trailer", [b"\x00", b"x" * 100, b"\xff\xff\xff\xff"], ids=["1-byte", "100-bytes", "marker"])
def test_trailing_bytes_are_refused(suite_kind: tuple[AlgorithmSuite, str], trailer: bytes) -> None:
    s = sample(*suite_kind)
    bad = s.message + trailer
    exc = check_refused_oneshot(bad, "trailing bytes")
    assert isinstance(exc, AuthenticationError)
    exc2, released = decrypt_stream_capturing(bad)
    assert isinstance(exc2, AuthenticationError)
    assert released == s.plaintext[:len(released)]
    # A second message glued on is trailing data too.
    assert isinstance(check_refused_oneshot(s.message + s.message, "two messages"), AuthenticationError)


def _frames(s: Sample) -> tuple[bytes, list[bytes], bytes]:
    """Split a framed message into header, regular frames and the rest (final frame, footer)."""
    h = s.header_length
    frames = [s.message[h + i * FRAME_SIZE:h + (i + 1) * FRAME_SIZE] for i in range(s.regular_frames)]
    return s.message[:h], frames, s.message[h + s.regular_frames * FRAME_SIZE:]


def _splices(s: Sample) -> Iterator[tuple[str, bytes, int]]:
    """(name, message, index of the first wrong frame) for frame-level splices of a 3-frame message."""
    head, (f1, f2), rest = _frames(s)
    yield "reordered", head + f2 + f1 + rest, 0
    yield "duplicated-first", head + f1 + f1 + f2 + rest, 1
    yield "duplicated-second", head + f1 + f2 + f2 + rest, 2
    yield "dropped-middle", head + f1 + rest, 1
    yield "dropped-first", head + f2 + rest, 0
    yield "dropped-final", head + f1 + f2, 2
    yield "final-only", head + rest, 0
    other = envelope.encrypt(s.plaintext, keyring=KEYRING, algorithm=s.suite, frame_length=F,
                             encryption_context={"purpose": "tamper", "ключ": "значение"},
                             commitment_policy=_encrypt_policy(s.suite))
    _, (g1, _g2), other_rest = _frames(replace(s, message=other))
    yield "frame-from-another-message", head + f1 + g1 + rest, 1  # same key, same position
    yield "final-from-another-message", head + f1 + f2 + other_rest, 2


@pytest.mark.parametrize("suite", SUITES, ids=[s.name for s in SUITES])
def test_reordered_duplicated_dropped_and_foreign_frames(suite: AlgorithmSuite) -> None:
    s = sample(suite, "framed-3")
    for name, bad, first_wrong in _splices(s):
        exc, released = decrypt_stream_capturing(bad)
        assert isinstance(exc, AuthenticationError), (name, exc)
        assert released == s.plaintext[:len(released)], name
        assert len(released) <= first_wrong * F, name
        assert isinstance(check_refused_oneshot(bad, name), AuthenticationError), name


@pytest.mark.parametrize("suite", SUITES, ids=[s.name for s in SUITES])
def test_core_zeroes_the_output_of_a_failed_frame(suite: AlgorithmSuite) -> None:
    # The release rule for a caller of update_into: bytes decrypted into the caller's buffer for a
    # frame that then fails must not stay there (format-spec/message.md §10).
    s = sample(suite, "framed-3")
    h = s.header_length
    for offset in range(h, len(s.message)):
        bad = bytearray(s.message)
        bad[offset] ^= 0x01
        core = MessageDecryptor(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT)
        assert core.update(bad[:h]) == b""
        assert core.request is not None
        core.supply_materials(MANAGER.decrypt_materials(core.request))
        out = bytearray(core.output_bound(len(bad) - h))
        with pytest.raises(EnvelopeError):
            core.update_into(bad[h:], out)
            core.finalize()
        allowed = s.allowed_release(offset)
        assert out[:allowed] == s.plaintext[:allowed]
        assert not any(out[allowed:]), f"plaintext of a failed frame left in the buffer (byte {offset})"


@pytest.mark.parametrize("suite", SUITES, ids=[s.name for s in SUITES])
def test_file_object_never_returns_a_failed_frame(suite: AlgorithmSuite) -> None:
    s = sample(suite, "framed-3")
    for offset in range(s.header_length, len(s.message), 3):
        bad = bytearray(s.message)
        bad[offset] ^= 0x80
        got = bytearray()
        with (pytest.raises(EnvelopeError),
              envelope.Decryptor(io.BytesIO(bytes(bad)), keyring=KEYRING, commitment_policy=ALLOW) as f):
            while piece := f.read(5):
                got += piece
        assert got == s.plaintext[:len(got)] and len(got) <= s.allowed_release(offset)


# -- keys, contexts, EDKs ----------------------------------------------------------------------

OTHER_AES = envelope.RawAESKeyring("tamper-ns", "other-key", bytes(range(1, 33)))


@cache
def rsa_pems() -> tuple[bytes, bytes, bytes]:
    """(private, public) of one pair and the private key of a second pair."""
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]
    private = [k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()) for k in keys]
    public = keys[0].public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return private[0], public, private[1]


def rsa_keyring(private: bytes | None = None) -> envelope.RawRSAKeyring:
    own, public, _ = rsa_pems()
    return envelope.RawRSAKeyring("tamper-rsa", "rsa-key", private_key_pem=private or own, public_key_pem=public)


def test_swapped_edks_fail_the_header_tag() -> None:
    multi = envelope.MultiKeyring(generator=KEYRING, children=[OTHER_AES])
    message = envelope.encrypt(b"swap me", keyring=multi, frame_length=F)
    parsed = parse_header(message)
    edks = parsed.header.encrypted_data_keys
    assert len(edks) == 2
    swapped_header = replace(parsed.header, encrypted_data_keys=(edks[1], edks[0]))
    bad = serialize_header_body(swapped_header) + message[len(parsed.body):]
    keyrings: list[envelope.Keyring] = [KEYRING, OTHER_AES, multi]
    for keyring in keyrings:
        with pytest.raises(AuthenticationError):
            envelope.decrypt(bad, keyring=keyring)
    assert envelope.decrypt(message, keyring=OTHER_AES)[0] == b"swap me"


def test_wrong_key_and_wrong_name_are_no_matching_key() -> None:
    message = envelope.encrypt(b"secret", keyring=KEYRING, frame_length=F)
    impostors: list[envelope.Keyring] = [
        envelope.RawAESKeyring("tamper-ns", "tamper-key", bytes(32)),  # same name, other key
        envelope.RawAESKeyring("tamper-ns", "tamper-key", bytes(range(16))),  # other key length
        OTHER_AES,  # other name
        envelope.RawAESKeyring("other-ns", "tamper-key", bytes(range(32))),  # other namespace
        rsa_keyring(),
    ]
    for impostor in impostors:
        with pytest.raises(NoMatchingKeyError) as info:
            envelope.decrypt(message, keyring=impostor)
        assert info.value.errors, impostor
        exc, released = decrypt_stream_capturing(message, keyring=impostor)
        assert isinstance(exc, NoMatchingKeyError) and released == b""


def test_wrong_rsa_private_key() -> None:
    message = envelope.encrypt(b"secret", keyring=rsa_keyring(), frame_length=F)
    assert envelope.decrypt(message, keyring=rsa_keyring())[0] == b"secret"
    with pytest.raises(NoMatchingKeyError):
        envelope.decrypt(message, keyring=rsa_keyring(private=rsa_pems()[2]))


CONTEXT = {"tenant": "acme", "purpose": "test"}


@pytest.mark.parametrize("use_rsa", [False, True], ids=["raw-aes", "raw-rsa"])
def test_wrong_context(use_rsa: bool) -> None:
    keyring = rsa_keyring() if use_rsa else KEYRING
    message = envelope.encrypt(b"payload", keyring=keyring, encryption_context=CONTEXT, frame_length=F)
    assert envelope.decrypt(message, keyring=keyring, encryption_context=CONTEXT)[0] == b"payload"
    assert envelope.decrypt(message, keyring=keyring, encryption_context={"tenant": "acme"})[0] == b"payload"
    # A stored key with a different value: refused before any keyring runs (§10 item 14).
    with pytest.raises(PolicyError):
        envelope.decrypt(message, keyring=keyring, encryption_context={"tenant": "evil"})
    # A key the message does not have is taken as a required key; the header tag (or, for raw
    # AES, the key wrapping, which binds the full context) then fails.
    with pytest.raises((AuthenticationError, NoMatchingKeyError)) as info:
        envelope.decrypt(message, keyring=keyring, encryption_context={"extra": "x"})
    if use_rsa:
        assert isinstance(info.value, AuthenticationError)
    # Changing the stored context in the bytes (same length, so the header still parses).
    bad = message.replace(b"acme", b"acmf")
    assert bad != message
    with pytest.raises((AuthenticationError, NoMatchingKeyError)):
        envelope.decrypt(bad, keyring=keyring)


@pytest.mark.parametrize("suite", [AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
                                   AlgorithmSuite.AES_128_GCM_IV12_TAG16_HKDF_SHA256],
                         ids=lambda s: s.name)
@pytest.mark.parametrize("encode", [base64.b64encode, base64.encodebytes, base64.urlsafe_b64encode],
                         ids=["b64", "mime", "urlsafe"])
def test_base64_message_hints_at_decoding(suite: AlgorithmSuite, encode: Any) -> None:
    message = envelope.encrypt(b"text", keyring=KEYRING, algorithm=suite, commitment_policy=_encrypt_policy(suite))
    encoded = encode(message)
    assert encoded[:2] in (b"AY", b"Ag")
    for attempt in (lambda: envelope.decrypt(encoded, keyring=KEYRING, commitment_policy=ALLOW),
                    lambda: envelope.decrypt_stream(io.BytesIO(encoded), io.BytesIO(), keyring=KEYRING,
                                                    commitment_policy=ALLOW)):
        with pytest.raises(FormatError) as info:
            attempt()
        assert info.value.hint is not None and "base64" in info.value.hint
    # The hint is for base64 only: other junk gets a plain FormatError.
    with pytest.raises(FormatError) as other:
        envelope.decrypt(b"\x07" + message[1:], keyring=KEYRING)
    assert "base64" not in str(other.value)


# -- required encryption context ---------------------------------------------------------------

class CountingKeyring:
    """Wraps a keyring and counts calls, to prove a refusal came before any keyring ran."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.encrypt_calls = 0
        self.decrypt_calls = 0

    def on_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
        self.encrypt_calls += 1
        return self.inner.on_encrypt(materials)  # type: ignore[no-any-return]

    def on_decrypt(self, materials: DecryptionMaterials, edks: Sequence[Any]) -> DecryptionMaterials:
        self.decrypt_calls += 1
        return self.inner.on_decrypt(materials, edks)  # type: ignore[no-any-return]


@pytest.mark.parametrize("use_rsa", [False, True], ids=["raw-aes", "raw-rsa"])
def test_required_context_manager(use_rsa: bool) -> None:
    keyring = rsa_keyring() if use_rsa else KEYRING
    manager = envelope.RequiredEncryptionContextManager(["tenant"], keyring=keyring)
    message = envelope.encrypt(b"required", materials_manager=manager,
                               encryption_context={"tenant": "acme-corp", "purpose": "kept"})
    header = parse_header(message).header
    assert dict(header.encryption_context) == {"purpose": "kept", "aws-crypto-public-key": header.encryption_context[
        "aws-crypto-public-key"]}
    assert b"tenant" not in message and b"acme-corp" not in message  # required entries are not stored

    pt, authenticated = envelope.decrypt(message, materials_manager=manager, encryption_context={"tenant": "acme-corp"})
    assert pt == b"required" and "tenant" not in authenticated.encryption_context
    # A plain keyring reads it too, given the required pair.
    assert envelope.decrypt(message, keyring=keyring, encryption_context={"tenant": "acme-corp"})[0] == b"required"

    # Missing at decrypt: the manager refuses before any keyring runs.
    counting = CountingKeyring(keyring)
    strict = envelope.RequiredEncryptionContextManager(["tenant"], keyring=counting)
    with pytest.raises(PolicyError):
        envelope.decrypt(message, materials_manager=strict)
    with pytest.raises(PolicyError):
        envelope.decrypt(message, materials_manager=strict, encryption_context={"purpose": "kept"})
    assert counting.decrypt_calls == 0
    # Wrong value, or not supplied to a plain keyring: the header tag (or the raw AES unwrap) fails.
    attempts: list[dict[str, Any]] = [{"materials_manager": manager, "encryption_context": {"tenant": "evil"}},
                                      {"keyring": keyring}]
    for attempt in attempts:
        with pytest.raises((AuthenticationError, NoMatchingKeyError)) as info:
            envelope.decrypt(message, **attempt)
        if use_rsa:
            assert isinstance(info.value, AuthenticationError)
    # Missing at encrypt: refused before any keyring runs.
    with pytest.raises(PolicyError):
        envelope.encrypt(b"x", materials_manager=strict, encryption_context={"purpose": "only"})
    assert counting.encrypt_calls == 0


# -- limits and policies -----------------------------------------------------------------------

def test_max_encrypted_data_keys() -> None:
    third = envelope.RawAESKeyring("tamper-ns", "third-key", bytes(range(2, 34)))
    multi = envelope.MultiKeyring(generator=KEYRING, children=[OTHER_AES, third])
    message = envelope.encrypt(b"three edks", keyring=multi, frame_length=F)
    assert len(parse_header(message).header.encrypted_data_keys) == 3
    assert envelope.decrypt(message, keyring=KEYRING, max_encrypted_data_keys=3)[0] == b"three edks"
    counting = CountingKeyring(KEYRING)
    for limit in (1, 2):
        with pytest.raises(PolicyError):
            envelope.decrypt(message, keyring=counting, max_encrypted_data_keys=limit)
        exc, released = decrypt_stream_capturing(message, keyring=counting, max_encrypted_data_keys=limit)
        assert isinstance(exc, PolicyError) and released == b""
    assert counting.decrypt_calls == 0
    with pytest.raises(PolicyError):
        envelope.encrypt(b"x", keyring=multi, max_encrypted_data_keys=2)
    assert len(parse_header(envelope.encrypt(b"x", keyring=multi, max_encrypted_data_keys=3)).header
               .encrypted_data_keys) == 3
    for bad_limit in (0, -1):
        with pytest.raises(ValueError):
            envelope.decrypt(message, keyring=KEYRING, max_encrypted_data_keys=bad_limit)
        with pytest.raises(ValueError):
            envelope.encrypt(b"x", keyring=KEYRING, max_encrypted_data_keys=bad_limit)


LEGACY = [s for s in SUITES if not s.is_committing]
COMMITTING = [s for s in SUITES if s.is_committing]


@pytest.mark.parametrize("suite", LEGACY, ids=[s.name for s in LEGACY])
def test_commitment_policy_refuses_legacy_suites(suite: AlgorithmSuite) -> None:
    counting = CountingKeyring(KEYRING)
    # Encrypt: the default policy (and REQUIRE_ENCRYPT_ALLOW_DECRYPT) refuse before any keyring runs.
    for policy in (None, "REQUIRE_ENCRYPT_REQUIRE_DECRYPT", "REQUIRE_ENCRYPT_ALLOW_DECRYPT"):
        with pytest.raises(PolicyError):
            envelope.encrypt(b"x", keyring=counting, algorithm=suite, commitment_policy=policy)
    assert counting.encrypt_calls == 0
    message = sample(suite, "framed-3").message
    # Decrypt: the default policy refuses at the header, before any keyring runs.
    with pytest.raises(PolicyError) as info:
        envelope.decrypt(message, keyring=counting)
    assert info.value.hint
    exc, released = decrypt_stream_capturing(message, keyring=counting, commitment_policy=None)
    assert isinstance(exc, PolicyError) and released == b""
    assert counting.decrypt_calls == 0
    for policy in ("REQUIRE_ENCRYPT_ALLOW_DECRYPT", "FORBID_ENCRYPT_ALLOW_DECRYPT"):
        plaintext, _ = envelope.decrypt(message, keyring=KEYRING, commitment_policy=policy)
        assert plaintext == sample(suite, "framed-3").plaintext


@pytest.mark.parametrize("suite", COMMITTING, ids=[s.name for s in COMMITTING])
def test_forbid_policy_refuses_committing_encrypt(suite: AlgorithmSuite) -> None:
    counting = CountingKeyring(KEYRING)
    with pytest.raises(PolicyError):
        envelope.encrypt(b"x", keyring=counting, algorithm=suite, commitment_policy="FORBID_ENCRYPT_ALLOW_DECRYPT")
    assert counting.encrypt_calls == 0
    message = sample(suite, "framed-3").message
    for policy in CommitmentPolicy:  # every policy decrypts committing messages
        plaintext, _ = envelope.decrypt(message, keyring=KEYRING, commitment_policy=policy)
        assert plaintext == sample(suite, "framed-3").plaintext


SIGNED = [s for s in SUITES if s.is_signing]


@pytest.mark.parametrize("suite", SUITES, ids=[s.name for s in SUITES])
def test_allow_signed_false(suite: AlgorithmSuite) -> None:
    s = sample(suite, "framed-3")
    counting = CountingKeyring(KEYRING)
    options = {"keyring": counting, "commitment_policy": ALLOW, "allow_signed": False}
    if not suite.is_signing:
        assert envelope.decrypt(s.message, **options)[0] == s.plaintext  # type: ignore[arg-type]
        return
    with pytest.raises(PolicyError):
        envelope.decrypt(s.message, **options)  # type: ignore[arg-type]
    exc, released = decrypt_stream_capturing(s.message, **options)
    assert isinstance(exc, PolicyError) and released == b""
    with pytest.raises(PolicyError), envelope.Decryptor(io.BytesIO(s.message), **options) as f:  # type: ignore[arg-type]
        f.read()
    assert counting.decrypt_calls == 0


# -- hostile sizes -----------------------------------------------------------------------------

def test_decrypt_stream_memory_follows_the_data_not_the_declared_frame_length() -> None:
    import tracemalloc

    frame_length = 8 * 1024 * 1024  # kept moderate: 2**32 - 1 really does exhaust memory
    message = envelope.encrypt(b"hello", keyring=KEYRING, frame_length=frame_length,
                               algorithm=AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY)
    assert len(message) < 300
    assert envelope.decrypt(message, keyring=KEYRING)[0] == b"hello"
    tracemalloc.start()
    try:
        exc, released = decrypt_stream_capturing(message)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert exc is None and released == b"hello"
    assert peak < 1024 * 1024, f"decrypt_stream allocated {peak} bytes for a {len(message)}-byte message"


def test_unknown_extension_is_refused_before_any_plaintext() -> None:
    # format-spec §8.1: readers fail closed on an `envelope:` key they do not implement. Callers
    # cannot set such keys, so the message is built with the core directly.
    from envelope.materials.materials import EncryptionRequest
    from envelope.streaming.encryptor import MessageEncryptor

    for context in ({"envelope:unknown": "1"}, {"envelope:compression": "gzip"}):
        request = EncryptionRequest(context, CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT, None, None)
        core = MessageEncryptor(MANAGER.get_encryption_materials(request), F)
        message = core.update(bytes(100)) + core.finalize()
        with pytest.raises(FormatError):
            envelope.decrypt(message, keyring=KEYRING)
        exc, released = decrypt_stream_capturing(message)
        assert isinstance(exc, FormatError) and released == b""


def test_encryptor_aborted_by_an_exception_leaves_an_undecryptable_message() -> None:
    sink = io.BytesIO()
    with pytest.raises(ZeroDivisionError), envelope.Encryptor(sink, keyring=KEYRING, frame_length=F) as f:
        f.write(bytes(100))
        raise ZeroDivisionError
    partial = sink.getvalue()
    assert partial  # the header and whole frames were written
    with pytest.raises(AuthenticationError):
        envelope.decrypt(partial, keyring=KEYRING)


# -- the threaded file pipeline (frames of 16 KiB and more, file-like sources) -----------------

BIG_F = 16 * 1024


@cache
def big_sample(suite: AlgorithmSuite) -> Sample:
    plaintext = bytes((7 * i + 1) % 251 + 1 for i in range(2 * BIG_F + 100))  # 2 regular frames + 100 bytes
    message = envelope.encrypt(plaintext, keyring=KEYRING, algorithm=suite, frame_length=BIG_F,
                               commitment_policy=_encrypt_policy(suite))
    return Sample(suite, plaintext, message, BIG_F, parse_header(message).length)


def _big_offsets(s: Sample) -> list[int]:
    """Every header byte, and around every structural boundary of the body: sequence numbers, IVs,
    the first and last ciphertext bytes, tags, the final frame's length field, the footer."""
    h = s.header_length
    frame_size = s.frame_length + 32
    final = h + s.regular_frames * frame_size
    offsets = set(range(h))
    for start in [h + i * frame_size for i in range(s.regular_frames)]:
        offsets |= set(range(start, start + 20)) | set(range(start + frame_size - 20, start + frame_size))
    offsets |= set(range(final, min(final + 30, len(s.message))))
    offsets |= set(range(max(final, len(s.message) - 130), len(s.message)))
    return sorted(offsets)


@pytest.mark.parametrize("suite", SUITES, ids=[s.name for s in SUITES])
def test_pipeline_refuses_flips_and_truncations(suite: AlgorithmSuite) -> None:
    s = big_sample(suite)
    exc, released = decrypt_stream_capturing(s.message)
    assert exc is None and released == s.plaintext
    for offset in _big_offsets(s):
        bad = bytearray(s.message)
        bad[offset] ^= 1 << (offset % 8)
        check_refused(s, bytes(bad), offset, f"pipeline: byte {offset}")
    frame_size = s.frame_length + 32
    cuts = {0, 1, s.header_length - 1, s.header_length, len(s.message) - 1}
    cuts |= {s.header_length + i * frame_size + d for i in range(s.regular_frames + 1) for d in (-1, 0, 1, 4, 24)}
    for end in sorted(c for c in cuts if 0 <= c < len(s.message)):
        check_refused(s, s.message[:end], end, f"pipeline: truncated to {end}")
    for trailer in (b"\x00", bytes(BIG_F + 32), s.message):
        exc, released = decrypt_stream_capturing(s.message + trailer)
        assert isinstance(exc, AuthenticationError), len(trailer)
        assert released == s.plaintext[:len(released)]
