"""The one-shot paths for whole in-memory messages (`MessageEncryptor.encrypt_whole`,
`MessageDecryptor.decrypt_rest`, `parse_header` on buffers) against the general streaming paths:
same bytes out, and the same refusals for every malformed body.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import pickle
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

import envelope
from envelope import AlgorithmSuite, AuthenticationError, EnvelopeError, FormatError
from envelope.crypto import random as _random
from envelope.format.frozen import cheap_init
from envelope.format.header import EncryptedDataKey, Header, ParsedHeader, parse_header
from envelope.materials.materials import DecryptionMaterials, DecryptionRequest, EncryptionMaterials, EncryptionRequest
from envelope.streaming.decryptor import MessageDecryptor
from envelope.streaming.encryptor import MessageEncryptor
from envelope.streaming.session import EncryptPlan

KEYRING = envelope.RawAESKeyring("whole-ns", "whole-key", bytes(range(32)))
MANAGER = envelope.DefaultMaterialsManager(KEYRING)
ALLOW = envelope.CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT
F = 32
SUITES = list(AlgorithmSuite)


def _policy(suite: AlgorithmSuite) -> envelope.CommitmentPolicy:
    return ALLOW if suite.is_committing else envelope.CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT


@contextmanager
def _seeded(label: bytes) -> Iterator[None]:
    """Deterministic randomness through the private seam vectors/generate.py uses."""
    counter = [0]

    def source(n: int) -> bytes:
        counter[0] += 1
        return hashlib.shake_256(label + counter[0].to_bytes(4, "big")).digest(n)

    saved = _random._source
    _random._source = source
    try:
        yield
    finally:
        _random._source = saved


def _materials(suite: AlgorithmSuite) -> EncryptionMaterials:
    request = EncryptionRequest({"purpose": "whole"}, _policy(suite), suite)
    return MANAGER.get_encryption_materials(request)


# -- encrypt ------------------------------------------------------------------------------------

@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
@pytest.mark.parametrize("size", [0, 1, F - 1, F])
def test_encrypt_whole_is_update_then_finalize(suite: AlgorithmSuite, size: int) -> None:
    plaintext = bytes(range(size))
    with _seeded(b"materials"):
        materials = _materials(suite)
    with _seeded(b"message"):
        whole = MessageEncryptor(materials, F).encrypt_whole(plaintext)
    with _seeded(b"message"):
        general = MessageEncryptor(materials, F)
        streamed = general.update(plaintext) + general.finalize()
    if suite.is_signing:  # ECDSA signatures are randomized: compare all but the footer
        assert len(whole) > len(streamed) - 8 and whole[:-120] == streamed[:-120]
    else:
        assert whole == streamed
    assert envelope.decrypt(whole, materials_manager=MANAGER, commitment_policy=ALLOW)[0] == plaintext


def test_encrypt_whole_refuses_more_than_a_frame_and_a_second_call() -> None:
    materials = _materials(AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY)
    with pytest.raises(ValueError):
        MessageEncryptor(materials, F).encrypt_whole(bytes(F + 1))
    encryptor = MessageEncryptor(materials, F)
    encryptor.encrypt_whole(b"once")
    with pytest.raises(ValueError):
        encryptor.encrypt_whole(b"twice")


def test_encrypt_whole_non_framed() -> None:
    materials = _materials(AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY)
    message = MessageEncryptor(materials, 0).encrypt_whole(b"non-framed body")
    assert envelope.decrypt(message, materials_manager=MANAGER)[0] == b"non-framed body"


# -- decrypt ------------------------------------------------------------------------------------

def _message(suite: AlgorithmSuite, size: int) -> bytes:
    return envelope.encrypt(bytes(range(size)), keyring=KEYRING, algorithm=suite, frame_length=F,
                            commitment_policy=_policy(suite))


def _ready(message: bytes) -> tuple[MessageDecryptor, int]:
    decryptor = MessageDecryptor(commitment_policy=ALLOW)
    start = decryptor.parse_whole_header(message)
    assert decryptor.request is not None
    decryptor.supply_materials(MANAGER.decrypt_materials(decryptor.request))
    return decryptor, start


def _rest_outcome(message: bytes) -> bytes | type[BaseException]:
    decryptor, start = _ready(message)
    try:
        return decryptor.decrypt_rest(memoryview(message)[start:])
    except EnvelopeError as exc:
        return type(exc)


def _streamed_outcome(message: bytes) -> bytes | type[BaseException]:
    decryptor, start = _ready(message)
    try:
        out = decryptor.update(message[start:])
        decryptor.finalize()
    except EnvelopeError as exc:
        return type(exc)
    return out


def _final_frame_edits(message: bytes, start: int) -> Iterator[tuple[str, bytes]]:
    """Malformed bodies for a message whose body is one final frame (§5.3)."""
    head, body = message[:start], message[start:]
    marker, seq, iv, length = struct.unpack_from(">II12sI", body)
    tail = body[24:]

    def frame(seq_: int = seq, iv_: bytes = iv, length_: int = length, rest: bytes = tail) -> bytes:
        return head + struct.pack(">II12sI", marker, seq_, iv_, length_) + rest

    yield "sequence-0", frame(seq_=0)
    yield "sequence-2", frame(seq_=2)
    yield "iv-not-the-sequence", frame(iv_=bytes(11) + b"\x02")
    yield "iv-nonzero-prefix", frame(iv_=b"\x01" + iv[1:])
    yield "length-plus-one", frame(length_=length + 1)
    yield "length-minus-one", frame(length_=length - 1) if length else frame(length_=1)
    yield "length-beyond-frame", frame(length_=F + 1)
    yield "tag-flipped", message[:-1] + bytes([message[-1] ^ 1])
    yield "ciphertext-flipped", frame(rest=bytes([tail[0] ^ 0x80]) + tail[1:])
    yield "trailing-byte", message + b"\x00"
    yield "trailing-message", message + message
    yield "truncated-tag", message[:-1]
    yield "truncated-fields", message[:start + 23]
    yield "no-body", message[:start]
    yield "regular-frame-instead", head + struct.pack(">I12s", 1, iv) + tail


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
@pytest.mark.parametrize("size", [0, 1, F])
def test_decrypt_rest_refuses_what_the_streaming_path_refuses(suite: AlgorithmSuite, size: int) -> None:
    message = _message(suite, size)
    assert _rest_outcome(message) == _streamed_outcome(message) == bytes(range(size))
    start = parse_header(message).length
    for name, bad in _final_frame_edits(message, start):
        rest, streamed = _rest_outcome(bad), _streamed_outcome(bad)
        assert isinstance(rest, type) and issubclass(rest, (AuthenticationError, FormatError)), (name, rest)
        assert rest == streamed, name
        with pytest.raises((AuthenticationError, FormatError)):  # and the public one-shot agrees
            envelope.decrypt(bad, keyring=KEYRING, commitment_policy=ALLOW)


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_one_frame_message_every_bit_flip_and_truncation_is_refused(suite: AlgorithmSuite) -> None:
    # The tamper matrix (tests/test_tamper.py) for the message shape the fast paths serve: the
    # header and one final frame holding 1..frame_length bytes.
    message = envelope.encrypt(b"one frame", keyring=KEYRING, algorithm=suite, frame_length=F,
                               encryption_context={"purpose": "whole"}, commitment_policy=_policy(suite))
    assert envelope.decrypt(message, keyring=KEYRING, commitment_policy=ALLOW)[0] == b"one frame"
    bad_messages = [message[:i] + bytes([message[i] ^ (1 << bit)]) + message[i + 1:]
                    for i in range(len(message)) for bit in range(8)]
    bad_messages += [message[:end] for end in range(len(message))]
    for bad in bad_messages:
        with pytest.raises(EnvelopeError):
            envelope.decrypt(bad, keyring=KEYRING, commitment_policy=ALLOW)


@pytest.mark.parametrize("size", [F + 1, 3 * F])
def test_decrypt_rest_reads_several_frames(size: int) -> None:
    message = _message(AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, size)
    assert _rest_outcome(message) == bytes(range(size))
    assert _rest_outcome(message + b"x") is AuthenticationError
    assert _rest_outcome(message[:-1]) is AuthenticationError


def test_decrypt_rest_releases_nothing_on_failure() -> None:
    message = _message(AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, 10)
    decryptor, start = _ready(message[:-1] + bytes([message[-1] ^ 1]))
    with pytest.raises(AuthenticationError):
        decryptor.decrypt_rest(message[start:-1] + bytes([message[-1] ^ 1]))
    assert not decryptor.done


def test_decrypt_rest_needs_materials_first() -> None:
    message = _message(AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, 10)
    decryptor = MessageDecryptor()
    start = decryptor.parse_whole_header(message)
    with pytest.raises(ValueError):
        decryptor.decrypt_rest(message[start:])


# -- buffers of every kind ----------------------------------------------------------------------

BUFFERS: list[Callable[[bytes], bytes | bytearray | memoryview]] = [
    bytes, bytearray, memoryview, lambda b: memoryview(bytearray(b"..") + b)[2:],
    lambda b: memoryview(b).cast("c")]  # type: ignore[list-item,return-value]  # a view of chars, not ints


@pytest.mark.parametrize("make", BUFFERS, ids=["bytes", "bytearray", "memoryview", "offset-view", "char-view"])
def test_one_shots_take_any_buffer(make: Callable[[bytes], bytes | bytearray | memoryview]) -> None:
    message = envelope.encrypt(make(b"any buffer"), keyring=KEYRING, encryption_context={"k": "v"})
    assert envelope.decrypt(make(message), keyring=KEYRING)[0] == b"any buffer"
    assert parse_header(make(message)) == parse_header(message)


def test_header_longer_than_the_first_copy_parses_from_a_view() -> None:
    # parse_header copies a 64 KiB prefix of a non-bytes buffer first, then up to the limit.
    big = EncryptedDataKey("other", bytes(40_000), bytes(40_000))
    context = {"k": "v"}
    materials = KEYRING.on_encrypt(EncryptionMaterials(AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, context))
    materials = materials.with_encrypted_data_key(big)
    message = MessageEncryptor(materials, F).encrypt_whole(b"big header")
    header_length = parse_header(message).length
    assert header_length > 64 * 1024
    for make in BUFFERS:
        assert parse_header(make(message)) == parse_header(message)
        assert envelope.decrypt(make(message), keyring=KEYRING)[0] == b"big header"
    with pytest.raises(FormatError):
        parse_header(memoryview(message), max_header_length=header_length - 1)
    with pytest.raises(AuthenticationError):  # truncated inside the header, past the first copy
        envelope.decrypt(bytearray(message[:header_length - 10]), keyring=KEYRING)


# -- cheap_init ---------------------------------------------------------------------------------

VALUE_CLASSES = [EncryptedDataKey, Header, ParsedHeader, EncryptionMaterials, DecryptionMaterials,
                 EncryptionRequest, DecryptionRequest, EncryptPlan]


@pytest.mark.parametrize("cls", VALUE_CLASSES, ids=lambda c: c.__name__)
def test_cheap_init_keeps_the_dataclass_contract(cls: type) -> None:
    fields = dataclasses.fields(cls)
    values = {f.name: object() for f in fields}
    by_position, by_name = cls(*values.values()), cls(**values)
    assert by_position == by_name
    assert [getattr(by_name, f.name) for f in fields] == list(values.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(by_name, fields[0].name, None)
    replaced = dataclasses.replace(by_name, **{fields[0].name: 1})
    assert getattr(replaced, fields[0].name) == 1 and type(replaced) is cls
    assert copy.copy(by_name) == by_name and type(copy.copy(by_name)) is cls
    real = cls(*[_example(f.name) for f in fields])
    assert pickle.loads(pickle.dumps(real)) == real and copy.deepcopy(real) == real
    assert hash(real) == hash(cls(*[_example(f.name) for f in fields]))  # all-hashable values here
    required = [f for f in fields if f.default is dataclasses.MISSING]
    with pytest.raises(TypeError):
        cls(*[values[f.name] for f in required[:-1]])  # a missing argument is still an error
    defaults = cls(*[values[f.name] for f in required])
    assert all(getattr(defaults, f.name) == f.default for f in fields if f.default is not dataclasses.MISSING)


def _example(name: str) -> object:
    """A picklable value for a field of that name (only equality matters here)."""
    return (name, 1)


def test_cheap_init_refuses_what_it_cannot_copy() -> None:
    @dataclasses.dataclass
    class Mutable:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Post:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class KeywordOnly:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True, weakref_slot=True)
    class WeakReferable:
        a: int

    for cls in (Mutable, Factory, Post, KeywordOnly, WeakReferable, int):
        with pytest.raises(TypeError):
            cheap_init(cls)
