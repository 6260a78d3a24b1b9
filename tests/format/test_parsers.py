"""envelope.format: context encoding, header layouts v1/v2, every MUST-reject rule, Incomplete
semantics, bounded allocation, and a fuzz test that only envelope errors (or Incomplete) escape.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envelope
from envelope import AlgorithmSuite, EncryptedDataKey, EnvelopeError, FormatError, Header, PolicyError
from envelope.format.body import frame_iv
from envelope.format.context import parse_context, serialize_context
from envelope.format.header import (
    DEFAULT_MAX_HEADER_LENGTH,
    ContentType,
    parse_header,
    serialize_header_auth,
    serialize_header_body,
)
from envelope.format.reader import Incomplete, Reader
from envelope.format.suites import CommitmentPolicy
from envelope.streaming.decryptor import MessageDecryptor

FUZZ = settings(max_examples=1500, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
KEYRING = envelope.RawAESKeyring("fmt-ns", "fmt-key", bytes(range(32)))
MANAGER = envelope.DefaultMaterialsManager(KEYRING)
V1_SUITES = [s for s in AlgorithmSuite if s.message_format_version == 1]
V2_SUITES = [s for s in AlgorithmSuite if s.message_format_version == 2]


def u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


# -- an independent writer of header bytes, straight from format-spec/message.md §4 --------------

def edk(pid: bytes = b"fmt-ns", info: bytes = b"info", ct: bytes = b"ciphertext") -> bytes:
    return u16(len(pid)) + pid + u16(len(info)) + info + u16(len(ct)) + ct


def ec_bytes(*pairs: tuple[bytes, bytes], count: int | None = None) -> bytes:
    body = b"".join(u16(len(k)) + k + u16(len(v)) + v for k, v in pairs)
    return u16(len(pairs) if count is None else count) + body


def v2_body(*, version: int = 2, suite: int = 0x0478, message_id: bytes = bytes(range(32)), ec: bytes = b"",
            ec_length: int | None = None, edks: tuple[bytes, ...] = (edk(),), edk_count: int | None = None,
            content_type: int = 2, frame_length: int = 4096, suite_data: bytes = bytes(range(32, 64))) -> bytes:
    return b"".join((bytes([version]), u16(suite), message_id, u16(len(ec) if ec_length is None else ec_length),
                     ec, u16(len(edks) if edk_count is None else edk_count), *edks, bytes([content_type]),
                     u32(frame_length), suite_data))


def v1_body(*, version: int = 1, type_: int = 0x80, suite: int = 0x0178, message_id: bytes = bytes(range(16)),
            ec: bytes = b"", edks: tuple[bytes, ...] = (edk(),), edk_count: int | None = None,
            content_type: int = 2, reserved: bytes = bytes(4), iv_length: int = 12,
            frame_length: int = 4096) -> bytes:
    return b"".join((bytes([version, type_]), u16(suite), message_id, u16(len(ec)), ec,
                     u16(len(edks) if edk_count is None else edk_count), *edks, bytes([content_type]), reserved,
                     bytes([iv_length]), u32(frame_length)))


V1_AUTH = bytes(12) + bytes(range(100, 116))
V2_AUTH = bytes(range(100, 116))


# -- encryption context ------------------------------------------------------------------------

def test_empty_context_is_zero_bytes() -> None:
    assert serialize_context({}) == b""
    assert parse_context(b"") == {}


def test_context_spec_example() -> None:
    # format-spec/message.md §4.3 example.
    expected = bytes.fromhex("0002" "000161" "000132" "000162" "000131")
    assert serialize_context({"b": "1", "a": "2"}) == expected
    assert parse_context(expected) == {"a": "2", "b": "1"}


@pytest.mark.parametrize("first,second", [
    ("B", "a"),  # ASCII upper before lower
    ("a", "aa"),  # a prefix sorts first
    ("z", "é"),  # one byte before two
    ("\uff61", "\U0001f600"),  # UTF-8 order; UTF-16 code units would put the emoji first
    ("\u00ff", "\u0100"),  # C3 BF < C4 80
], ids=["case", "prefix", "ascii-vs-latin1", "bmp-vs-astral", "two-byte-boundary"])
def test_context_sorted_by_utf8_bytes(first: str, second: str) -> None:
    raw = serialize_context({second: "2", first: "1"})
    k1 = first.encode()
    assert raw[2:4] == u16(len(k1)) and raw[4:4 + len(k1)] == k1


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=8))
def test_context_roundtrip_and_order(context: dict[str, str]) -> None:
    raw = serialize_context(context)
    assert parse_context(raw) == context
    if not context:
        assert raw == b""
        return
    reader = Reader(raw)
    assert reader.u16() == len(context)
    keys = []
    for _ in context:
        keys.append(reader.u16_bytes())
        reader.u16_bytes()
    assert keys == sorted(k.encode() for k in context)
    assert reader.offset == len(raw)


def test_context_reader_accepts_any_order() -> None:
    raw = ec_bytes((b"b", b"1"), (b"a", b"2"))
    assert parse_context(raw) == {"a": "2", "b": "1"}


@pytest.mark.parametrize("raw", [
    u16(0),
    u16(0) + b"\x00",
    ec_bytes((b"a", b"1"), (b"a", b"2")),
    ec_bytes((b"a", b"1"), count=2),
    ec_bytes((b"a", b"1"))[:-1],
    ec_bytes((b"abc", b"1"))[:5],
    ec_bytes((b"a", b"1")) + b"\x00",
    ec_bytes((b"\xff", b"1")),
    ec_bytes((b"a", b"\xc3")),
    ec_bytes((b"\xed\xa0\x80", b"1")),
    b"\x00",
], ids=["zero-count", "zero-count-with-bytes", "duplicate-key", "count-too-high", "truncated-value",
        "truncated-key", "trailing-byte", "bad-utf8-key", "bad-utf8-value", "surrogate-key", "one-byte"])
def test_context_reader_rejects(raw: bytes) -> None:
    with pytest.raises(FormatError):
        parse_context(raw)


def test_context_65535_limit() -> None:
    # count(2) + keyLen(2) + "k" + valueLen(2) + value = 7 + len(value)
    fits = {"k": "v" * (0xFFFF - 7)}
    raw = serialize_context(fits)
    assert len(raw) == 0xFFFF
    assert parse_context(raw) == fits
    for too_big in ({"k": "v" * (0xFFFF - 6)}, {"k": "v" * 0xFFFF}, {"k" * 0x10000: "v"},
                    {str(i): "" for i in range(0x10000)}):
        with pytest.raises(ValueError):
            serialize_context(too_big)
    # A header may carry the full 65535-byte context.
    header = v2_body(ec=raw) + V2_AUTH
    assert parse_header(header).header.encryption_context == fits
    with pytest.raises(ValueError):
        envelope.encrypt(b"", keyring=KEYRING, encryption_context={"k": "v" * 0xFFFF})


@pytest.mark.parametrize("context", [{"k": 1}, {1: "v"}, {"k": b"v"}], ids=["int-value", "int-key", "bytes-value"])
def test_context_types(context: Any) -> None:
    with pytest.raises(TypeError):
        serialize_context(context)


# -- header layouts ----------------------------------------------------------------------------

edk_strategy = st.builds(EncryptedDataKey, st.text(max_size=8), st.binary(max_size=20), st.binary(max_size=40))


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(suite=st.sampled_from(list(AlgorithmSuite)),
       context=st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=4),
       edks=st.lists(edk_strategy, min_size=1, max_size=4),
       framed=st.booleans(), frame_length=st.integers(1, 2**32 - 1),
       message_id=st.binary(min_size=32, max_size=32), commitment=st.binary(min_size=32, max_size=32),
       tag=st.binary(min_size=16, max_size=16))
def test_header_roundtrip(suite: AlgorithmSuite, context: dict[str, str], edks: list[EncryptedDataKey],
                          framed: bool, frame_length: int, message_id: bytes, commitment: bytes, tag: bytes) -> None:
    version = suite.message_format_version
    header = Header(version=version, algorithm=suite, message_id=message_id[:32 if version == 2 else 16],
                    encryption_context=context, encrypted_data_keys=tuple(edks),
                    content_type=ContentType.FRAMED if framed else ContentType.NON_FRAMED,
                    frame_length=frame_length if framed else 0,
                    commitment_key=commitment if suite.is_committing else b"")
    body = serialize_header_body(header)
    raw = body + serialize_header_auth(version, tag)
    parsed = parse_header(raw + b"body bytes follow")
    assert parsed.header == header
    assert parsed.body == body
    assert parsed.auth_tag == tag and parsed.auth_iv == bytes(12)
    assert parsed.length == len(raw)


@pytest.mark.parametrize("suite", list(AlgorithmSuite), ids=lambda s: s.name)
def test_serializer_matches_the_spec_layout(suite: AlgorithmSuite) -> None:
    ec = {"b": "1", "a": "2"}
    edks = (EncryptedDataKey("fmt-ns", b"info", b"ciphertext"), EncryptedDataKey("ключ", b"", b"x"))
    raw_edks = (edk(), edk("ключ".encode(), b"", b"x"))
    if suite.message_format_version == 2:
        expected = v2_body(suite=suite, ec=serialize_context(ec), edks=raw_edks)
        header = Header(2, suite, bytes(range(32)), ec, edks, ContentType.FRAMED, 4096, bytes(range(32, 64)))
    else:
        expected = v1_body(suite=suite, ec=serialize_context(ec), edks=raw_edks)
        header = Header(1, suite, bytes(range(16)), ec, edks, ContentType.FRAMED, 4096)
    assert serialize_header_body(header) == expected


def test_v1_header_iv_is_read_as_serialized() -> None:
    # format-spec §4.5: the ESDK's own example has a non-zero header IV; the tag check decides.
    iv = bytes(range(1, 13))
    parsed = parse_header(v1_body() + iv + bytes(16))
    assert parsed.auth_iv == iv


@pytest.mark.parametrize("header", [
    Header(2, AlgorithmSuite.AES_256_GCM_IV12_TAG16, bytes(32), {}, (EncryptedDataKey("p", b"", b""),),
           ContentType.FRAMED, 16),
    Header(2, AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, bytes(32), {}, (), ContentType.FRAMED, 16, bytes(32)),
    Header(2, AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, bytes(32), {},
           (EncryptedDataKey("p", bytes(0x10000), b""),), ContentType.FRAMED, 16, bytes(32)),
    Header(2, AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, bytes(32), {},
           (EncryptedDataKey("p", b"", b""),) * 0x10000, ContentType.FRAMED, 16, bytes(32)),
], ids=["wrong-version", "no-edks", "edk-field-too-long", "too-many-edks"])
def test_serializer_refuses(header: Header) -> None:
    with pytest.raises(ValueError):
        serialize_header_body(header)


# -- every MUST-reject rule of the header (format-spec/message.md §4, §10 items 1-12) ------------

REJECTS: list[tuple[str, bytes]] = [
    ("version-0", v2_body(version=0) + V2_AUTH),
    ("version-3", v2_body(version=3) + V2_AUTH),
    ("version-ff", v2_body(version=0xFF) + V2_AUTH),
    ("v1-type-not-80", v1_body(type_=0x81) + V1_AUTH),
    ("v1-type-0", v1_body(type_=0) + V1_AUTH),
    ("suite-0000", v2_body(suite=0) + V2_AUTH),
    ("suite-unknown-v2", v2_body(suite=0x0479) + V2_AUTH),
    ("suite-unknown-v1", v1_body(suite=0x0179) + V1_AUTH),
    ("suite-ffff", v1_body(suite=0xFFFF) + V1_AUTH),
    ("v2-header-v1-suite", v2_body(suite=0x0178) + V2_AUTH),
    ("v1-header-v2-suite", v1_body(suite=0x0478) + V1_AUTH),
    ("ec-zero-count", v2_body(ec=u16(0)) + V2_AUTH),
    ("ec-duplicate-key", v2_body(ec=ec_bytes((b"a", b"1"), (b"a", b"1"))) + V2_AUTH),
    ("ec-bad-utf8", v2_body(ec=ec_bytes((b"\x80", b"1"))) + V2_AUTH),
    ("ec-entry-past-length", v2_body(ec=ec_bytes((b"ab", b"1")), ec_length=6) + V2_AUTH),
    ("ec-trailing-bytes", v1_body(ec=ec_bytes((b"a", b"1")) + b"\x00") + V1_AUTH),
    ("ec-count-too-high", v2_body(ec=ec_bytes((b"a", b"1"), count=3)) + V2_AUTH),
    ("edk-count-0", v2_body(edks=(), edk_count=0) + V2_AUTH),
    ("edk-count-0-v1", v1_body(edks=(), edk_count=0) + V1_AUTH),
    ("edk-provider-bad-utf8", v2_body(edks=(edk(pid=b"\xc3\x28"),)) + V2_AUTH),
    ("content-type-0", v2_body(content_type=0) + V2_AUTH),
    ("content-type-3", v1_body(content_type=3) + V1_AUTH),
    ("content-type-ff", v2_body(content_type=0xFF) + V2_AUTH),
    ("framed-length-0", v2_body(frame_length=0) + V2_AUTH),
    ("framed-length-0-v1", v1_body(frame_length=0) + V1_AUTH),
    ("non-framed-length-1", v2_body(content_type=1, frame_length=1) + V2_AUTH),
    ("non-framed-length-max-v1", v1_body(content_type=1, frame_length=2**32 - 1) + V1_AUTH),
    ("v1-reserved-not-zero", v1_body(reserved=b"\x00\x00\x00\x01") + V1_AUTH),
    ("v1-reserved-ff", v1_body(reserved=b"\xff" * 4) + V1_AUTH),
    ("v1-iv-length-0", v1_body(iv_length=0) + V1_AUTH),
    ("v1-iv-length-16", v1_body(iv_length=16) + V1_AUTH),
]


@pytest.mark.parametrize("raw", [r for _, r in REJECTS], ids=[n for n, _ in REJECTS])
def test_header_must_reject(raw: bytes) -> None:
    with pytest.raises(FormatError):
        parse_header(raw)
    # The streaming reader refuses it the same way, whether it arrives whole or byte by byte.
    for step in (len(raw), 1):
        decryptor = MessageDecryptor()
        with pytest.raises(FormatError):
            for i in range(0, len(raw), step):
                decryptor.update(raw[i:i + step])
            decryptor.finalize()


def test_valid_builders_parse() -> None:
    # The control for the rejection table: the unmodified builders give valid headers.
    assert parse_header(v1_body() + V1_AUTH).header.algorithm is AlgorithmSuite.AES_256_GCM_IV12_TAG16_HKDF_SHA256
    assert parse_header(v2_body() + V2_AUTH).header.algorithm is AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
    assert parse_header(v2_body(content_type=1, frame_length=0) + V2_AUTH).header.frame_length == 0
    assert parse_header(v2_body(ec=ec_bytes((b"b", b"1"), (b"a", b"2"))) + V2_AUTH).header.encryption_context == {
        "a": "2", "b": "1"}
    assert len(parse_header(v2_body(edks=(edk(),) * 3) + V2_AUTH).header.encrypted_data_keys) == 3


@pytest.mark.parametrize("prefix", [b"A", b"AY", b"Ag", b"AYAAA", b"AgV4"], ids=lambda p: p.decode())
def test_base64_prefix_gets_a_hint(prefix: bytes) -> None:
    with pytest.raises(FormatError) as info:
        parse_header(prefix + b"A" * 100)
    assert info.value.hint and "base64" in info.value.hint


def test_max_edks_is_checked_as_soon_as_the_count_is_read() -> None:
    raw = v2_body(edks=(edk(), edk(), edk())) + V2_AUTH
    count_end = 1 + 2 + 32 + 2 + 2
    with pytest.raises(PolicyError):
        parse_header(raw[:count_end], max_encrypted_data_keys=2)  # no entry parsed yet
    with pytest.raises(Incomplete):
        parse_header(raw[:count_end], max_encrypted_data_keys=3)
    assert len(parse_header(raw, max_encrypted_data_keys=3).header.encrypted_data_keys) == 3
    decryptor = MessageDecryptor(max_encrypted_data_keys=2)
    with pytest.raises(PolicyError):
        decryptor.update(raw[:count_end])


def test_header_length_limit() -> None:
    raw = v2_body(edks=(edk(info=bytes(1000)),)) + V2_AUTH
    assert parse_header(raw, max_header_length=len(raw)).length == len(raw)
    with pytest.raises(FormatError):
        parse_header(raw, max_header_length=len(raw) - 1)
    with pytest.raises(FormatError):  # the limit applies before the header is complete
        parse_header(raw[:100], max_header_length=99)
    for step in (len(raw), 7):  # and whether the header arrives whole or in pieces
        decryptor = MessageDecryptor(max_header_length=len(raw) - 1)
        with pytest.raises(FormatError):
            for i in range(0, len(raw), step):
                decryptor.update(raw[i:i + step])
    # The default limit is 4 MiB: a header claiming more is refused without waiting for it.
    huge = v2_body(edks=tuple(edk(info=bytes(0xFFFF), ct=bytes(0xFFFF)) for _ in range(33)))
    assert len(huge) > DEFAULT_MAX_HEADER_LENGTH
    with pytest.raises(FormatError):
        parse_header(huge)


# -- Incomplete semantics ----------------------------------------------------------------------

def _valid_headers() -> list[tuple[str, bytes]]:
    ec = ec_bytes((b"a", b"1"), ("ключ".encode(), "значение".encode()))
    two = (edk(), edk(b"other", b"", b"\x00" * 40))
    return [("v1", v1_body(ec=ec, edks=two) + V1_AUTH), ("v2", v2_body(ec=ec, edks=two) + V2_AUTH),
            ("v2-empty-ec", v2_body() + V2_AUTH), ("v1-non-framed", v1_body(content_type=1, frame_length=0) + V1_AUTH)]


@pytest.mark.parametrize("raw", [r for _, r in _valid_headers()], ids=[n for n, _ in _valid_headers()])
def test_every_prefix_is_incomplete(raw: bytes) -> None:
    full = parse_header(raw).length
    assert full == len(raw)
    for n in range(len(raw)):
        with pytest.raises(Incomplete) as info:
            parse_header(raw[:n])
        needed = info.value.needed
        assert n < needed <= len(raw), (n, needed)
        # Giving the parser what it asked for makes progress: it parses or asks for more.
        try:
            parse_header(raw[:needed])
        except Incomplete as again:
            assert again.needed > needed
        else:
            assert needed == len(raw)


# -- fuzzing: only EnvelopeError (or, from parse_header, Incomplete) may escape --------------------

def _drive_decryptor(data: bytes, chunk: int) -> None:
    """Feed ``data`` to a MessageDecryptor in ``chunk``-byte pieces; supply materials when asked."""
    decryptor = MessageDecryptor(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT)
    out = bytearray()
    for i in range(0, len(data), chunk):
        out += decryptor.update(data[i:i + chunk])
        if decryptor.needs_materials:
            assert decryptor.request is not None
            decryptor.supply_materials(MANAGER.decrypt_materials(decryptor.request))
            out += decryptor.update(b"")
    decryptor.finalize()


def _only_envelope_errors(call: Callable[[], object], allow_incomplete: bool) -> None:
    try:
        call()
    except EnvelopeError:
        pass
    except Incomplete:
        if not allow_incomplete:
            raise


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _only_envelope_errors(lambda: parse_header(data), allow_incomplete=True)
    _only_envelope_errors(lambda: parse_header(b"\x02\x04\x78" + data), allow_incomplete=True)
    _only_envelope_errors(lambda: parse_header(b"\x01\x80\x01\x78" + data), allow_incomplete=True)
    _only_envelope_errors(lambda: parse_context(data), allow_incomplete=False)
    _only_envelope_errors(lambda: _drive_decryptor(data, 7), allow_incomplete=False)


def _valid_messages() -> list[bytes]:
    out = []
    for suite, frame_length, size in ((AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384, 16, 40),
                                      (AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, 0, 20),
                                      (AlgorithmSuite.AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256, 16, 33),
                                      (AlgorithmSuite.AES_192_GCM_IV12_TAG16, 5, 11)):
        policy = "REQUIRE_ENCRYPT_ALLOW_DECRYPT" if suite.is_committing else "FORBID_ENCRYPT_ALLOW_DECRYPT"
        out.append(envelope.encrypt(bytes(size), keyring=KEYRING, algorithm=suite, frame_length=frame_length,
                                    encryption_context={"a": "b"}, commitment_policy=policy))
    return out


VALID_MESSAGES = _valid_messages()


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID_MESSAGES)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "insert", "delete", "u16-max", "u32-max", "u64-huge", "truncate"]))
        at = draw(st.integers(0, len(data)))
        if op == "set" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        elif op == "u16-max":
            data[at:at + 2] = b"\xff\xff"
        elif op == "u32-max":
            data[at:at + 4] = b"\xff\xff\xff\xff"
        elif op == "u64-huge":
            data[at:at + 8] = (2**36).to_bytes(8, "big")
        elif op == "truncate":
            del data[at:]
    return bytes(data)


@FUZZ
@given(mutated_messages(), st.sampled_from([1, 13, 64, 100000]))
def test_fuzz_mutated_messages(data: bytes, chunk: int) -> None:
    _only_envelope_errors(lambda: parse_header(data), allow_incomplete=True)
    _only_envelope_errors(lambda: _drive_decryptor(data, chunk), allow_incomplete=False)
    _only_envelope_errors(lambda: envelope.decrypt(data, keyring=KEYRING,
                                                   commitment_policy="REQUIRE_ENCRYPT_ALLOW_DECRYPT"),
                          allow_incomplete=False)


# -- bounded allocation ------------------------------------------------------------------------

@contextmanager
def allocation_peak() -> Iterator[list[int]]:
    """Yield a list that holds the traced allocation peak (bytes) once the block ends."""
    result: list[int] = []
    tracemalloc.start()
    try:
        yield result
    finally:
        result.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


MIB = 1024 * 1024


def test_header_claiming_gigabytes_allocates_little() -> None:
    # Every length field at its maximum: 65535 EDKs of three 65535-byte fields claim ~12.9 GB,
    # and the frame length claims 4 GiB. Only what arrived may be buffered.
    big = u16(0xFFFF)
    claims = [
        v2_body(ec_length=0xFFFF, ec=b""),
        b"\x02\x04\x78" + bytes(32) + u16(0) + u16(0xFFFF) + big + b"p" * 100,
        b"\x02\x04\x78" + bytes(32) + u16(0) + u16(0xFFFF) + (u16(1) + b"p" + big + bytes(0xFFFF) + big) + b"x" * 100,
        v2_body(frame_length=2**32 - 1)[:-10],
    ]
    for raw in claims:
        with allocation_peak() as peak:
            with pytest.raises((Incomplete, FormatError)):
                parse_header(raw)
            decryptor = MessageDecryptor()
            for i in range(0, len(raw), 4096):
                try:
                    decryptor.update(raw[i:i + 4096])
                except FormatError:
                    break
            del decryptor
        assert peak[0] < len(raw) * 3 + MIB, peak


def _authentic_header(frame_length: int) -> bytes:
    message = envelope.encrypt(b"", keyring=KEYRING, algorithm=AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
                               frame_length=frame_length)
    return message[:parse_header(message).length]


def _ready_decryptor(header: bytes, **options: Any) -> MessageDecryptor:
    decryptor = MessageDecryptor(**options)
    assert decryptor.update(header) == b""
    assert decryptor.request is not None
    decryptor.supply_materials(MANAGER.decrypt_materials(decryptor.request))
    return decryptor


@pytest.mark.parametrize("claimed", [2**36, 2**36 - 31, 2**64 - 1, 2**28 + 1], ids=["2^36", "2^36-31", "2^64-1",
                                                                                    "above-default-limit"])
def test_non_framed_length_beyond_the_limit_is_refused_without_allocating(claimed: int) -> None:
    header = _authentic_header(0)
    with allocation_peak() as peak:
        decryptor = _ready_decryptor(header, max_non_framed_length=2**40)
        if claimed == 2**28 + 1:
            decryptor = _ready_decryptor(header)  # the default limit is 256 MiB
        with pytest.raises(FormatError):
            decryptor.update(frame_iv(1) + claimed.to_bytes(8, "big") + bytes(64))
    assert peak[0] < MIB


def test_declared_sizes_do_not_allocate_in_the_core() -> None:
    # A legal but huge non-framed length and a 4 GiB frame length: the core buffers only what
    # arrived, whatever the header or body claims.
    with allocation_peak() as peak:
        decryptor = _ready_decryptor(_authentic_header(0), max_non_framed_length=2**36)
        assert decryptor.update(frame_iv(1) + (2**36 - 32).to_bytes(8, "big") + bytes(1000)) == b""
        decryptor = _ready_decryptor(_authentic_header(2**32 - 1))
        assert decryptor.update(u32(1) + frame_iv(1) + bytes(1000)) == b""
        assert decryptor.output_bound(1000) < 10000
    assert peak[0] < MIB


def _many_edks_header(count: int) -> bytes:
    return v2_body(edks=(edk(b"", b"", b""),) * count) + V2_AUTH


def _count_parsed_bytes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sum, over every parse_header call the decryptor makes, the bytes it was handed."""
    import envelope.streaming.decryptor as decryptor_module

    parsed = [0]
    original = getattr(decryptor_module, "parse_header")  # noqa: B009 - the name the decryptor looks up, not re-exported

    def counting(buf: Any, *args: Any, **kwargs: Any) -> Any:
        parsed[0] += len(buf)
        return original(buf, *args, **kwargs)

    monkeypatch.setattr(decryptor_module, "parse_header", counting)
    return parsed


def test_parse_work_counter_sees_a_one_shot_header(monkeypatch: pytest.MonkeyPatch) -> None:
    # The control for the test below: a header that arrives whole is parsed once.
    parsed = _count_parsed_bytes(monkeypatch)
    raw = _many_edks_header(2000)
    decryptor = MessageDecryptor()
    decryptor.update(raw)
    assert decryptor.needs_materials
    assert parsed[0] == len(raw)


def test_incremental_header_parse_does_linear_work(monkeypatch: pytest.MonkeyPatch) -> None:
    # 65535 empty EDKs make a legal 393 KB header; fed in 64-byte pieces (or read 4 KiB at a time by
    # decrypt_stream) the re-parsing costs seconds to minutes of CPU. Work must stay proportional to
    # the input: here at most four passes over the header's bytes.
    raw = _many_edks_header(2000)
    parsed = _count_parsed_bytes(monkeypatch)
    decryptor = MessageDecryptor()
    for i in range(0, len(raw), 64):
        decryptor.update(raw[i:i + 64])
    assert decryptor.needs_materials
    assert parsed[0] <= 4 * len(raw), f"parsed {parsed[0]} bytes for a {len(raw)}-byte header"
