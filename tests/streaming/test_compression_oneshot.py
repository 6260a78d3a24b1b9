"""The one-shot zstd paths (format-spec/message.md §8.2): `Compressor.compress_whole` behind
`envelope.encrypt`, and `decompress_whole` behind `envelope.decrypt`, checked against the
streaming `Decompressor` they must agree with (same bytes, same errors), and end to end through
the sync and async one-shots with authentic messages that carry hand-made zstd payloads."""

from __future__ import annotations

import dataclasses
import io
import random
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envelope
from envelope import AlgorithmSuite, FormatError, PolicyError, aio
from envelope.materials.materials import DecryptionMaterials, DecryptionRequest, EncryptionMaterials, EncryptionRequest
from envelope.streaming import compression
from envelope.streaming.compression import Compressor, Decompressor, decompress_whole

KEYRING = envelope.RawAESKeyring("oneshot-ns", "oneshot-key", bytes(range(32)))
UNSIGNED = AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
SIGNED = AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
MIB = 1024 * 1024
GRACE = 16 * MIB  # the ratio check's grace (§8.2)
_ALPHABET = bytes.maketrans(bytes(range(256)), b"etaoin \n" * 32)


def _text(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n).translate(_ALPHABET)


def _skippable(payload: bytes, nibble: int = 0) -> bytes:
    return (0x184D2A50 | nibble).to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload


def _declared(data: bytes, level: int = 3, **kw: Any) -> bytes:
    return zstandard.ZstdCompressor(level=level, **kw).compress(data)


def _undeclared(data: bytes, level: int = 3) -> bytes:
    obj = zstandard.ZstdCompressor(level=level).compressobj()
    return obj.compress(data) + obj.flush()


def _with_size(frame: bytes, size: int) -> bytes:
    """``frame`` with its header's content size replaced by ``size`` (in a wider field if the
    frame's own cannot hold it)."""
    descriptor = frame[4]
    single = descriptor >> 5 & 1
    width = (0, 2, 4, 8)[descriptor >> 6] or (1 if single else 0)
    if not width:
        raise ValueError("the frame declares no size")
    at = 5 + (0 if single else 1) + (0, 1, 2, 4)[descriptor & 3]
    rest = frame[at + width:]
    if size >= 1 << 8 * width or (width == 2 and size < 256):
        width, flag = (4, 2) if size < 1 << 32 else (8, 3)
        descriptor = descriptor & 0x3F | flag << 6
    value = size - 256 if width == 2 else size
    return frame[:4] + bytes([descriptor]) + frame[5:at] + value.to_bytes(width, "little") + rest


def _streamed(data: bytes, **limits: Any) -> bytes:
    """What the streaming path makes of ``data`` written at once (today's one-shot behaviour)."""
    parts: list[bytes] = []
    decompressor = Decompressor(parts.append, **limits)
    decompressor.write(data)
    decompressor.finish()
    return b"".join(parts)


def _outcome(fn: Callable[..., bytes], data: bytes, **limits: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(data, **limits)
    except (FormatError, PolicyError) as exc:
        return type(exc).__name__, (str(exc), getattr(exc, "hint", None))


def _same_as_streaming(data: bytes, **limits: Any) -> tuple[str, Any]:
    fast = _outcome(decompress_whole, data, **limits)
    assert fast == _outcome(_streamed, data, **limits)
    return fast


class _Spy:
    """Counts the streaming Decompressors made, to tell which path `decompress_whole` took."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made = 0
        spy = self

        class Counting(Decompressor):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                spy.made += 1
                super().__init__(*args, **kwargs)

        monkeypatch.setattr(compression, "Decompressor", Counting)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> _Spy:
    return _Spy(monkeypatch)


# -- decompress_whole against the streaming path ---------------------------------------------------

A, B, C = _text(70_000, 1), _text(300_000, 2), b"short"
GOOD = {
    "declared": (_declared(B), B),
    "declared-checksum": (_declared(B, write_checksum=True), B),
    "declared-windowed": (_declared(_text(MIB), 1), _text(MIB)),  # window below the size: not single-segment
    "undeclared": (_undeclared(B), B),
    "multi-frame": (_declared(A) + _undeclared(B) + _declared(C, 19), A + B + C),
    "skippable": (_skippable(b"meta") + _declared(A) + _skippable(b"", 15) + _undeclared(C) + _skippable(b"x" * 9, 7),
                  A + C),
    "only-skippable": (_skippable(b"nothing here"), b""),
    "empty": (b"", b""),
    "empty-frame": (_declared(b""), b""),  # content size 0: the streaming path decodes it
    "rle": (_declared(bytes(500_000)), bytes(500_000)),
}


@pytest.mark.parametrize("case", sorted(GOOD))
def test_good_streams_match_streaming(case: str, spy: _Spy) -> None:
    payload, expected = GOOD[case]
    assert _same_as_streaming(payload) == ("ok", expected)
    spy.made = 0
    assert decompress_whole(payload) == expected
    # Only a frame that declares 0 bytes needs the streaming path (zstd's one-shot call returns
    # b"" for it without decoding).
    assert spy.made == (1 if case == "empty-frame" else 0)


def _corrupt() -> dict[str, bytes]:
    good = _declared(B, write_checksum=True)
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x55
    unsized = _undeclared(B)
    reserved = bytearray(unsized)
    reserved[6] |= 0b110  # the first block's type becomes 3, reserved (RFC 8878 §3.1.1.2)
    dictionary = zstandard.train_dictionary(2048, [b"entry %d of the samples " % i * 3 for i in range(1000)])
    return {
        "not-zstd": b"plain text, not a zstd stream at all",
        "truncated": good[:-7],
        "truncated-undeclared": unsized[:-1],
        "truncated-header": good[:6],
        "only-magic": good[:4],
        "checksum": bytes(flipped),
        "reserved-block": bytes(reserved),
        "trailing-garbage": good + b"garbage!",
        "trailing-short": good + b"\x28\xb5",
        "skippable-overrun": _declared(A) + _skippable(b"abc")[:-1],
        "dictionary": zstandard.ZstdCompressor(dict_data=zstandard.ZstdCompressionDict(dictionary.as_bytes()))
        .compress(b"entry 5 of the samples " * 40),
        "lying-bigger": _with_size(good, len(B) + 1000),
        "lying-smaller": _with_size(good, len(B) - 1000),
        "lying-one": _with_size(good, 1),
        "lying-huge": _with_size(_declared(_text(MIB), 1), 2**62),
        "lying-windowed": _with_size(_declared(_text(MIB), 1), MIB - 1),
    }


CORRUPT = _corrupt()


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_bad_streams_fail_as_streaming_does(case: str) -> None:
    kind, _ = _same_as_streaming(CORRUPT[case])
    assert kind == "FormatError"


@pytest.mark.parametrize("claim", [256 * MIB, 2**62], ids=["256MiB", "4EiB"])
def test_lying_size_allocates_nothing_near_it(claim: int) -> None:
    """A header that claims far more than its blocks can hold is not believed, even with every
    limit off: the stream goes to the streaming path, which refuses it."""
    payload = _with_size(_declared(_text(MIB), 1), claim)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="compressed plaintext"):
            decompress_whole(payload, max_output=None, max_ratio=None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * MIB


def test_declared_size_zero_with_content_is_decoded() -> None:
    """zstd's one-shot call returns b"" for a declared size of 0 without decoding; that frame must
    not be taken at its word."""
    payload = _with_size(_declared(b"x" * 300), 0)  # single-segment: 1-byte size field
    assert payload != _declared(b"x" * 300)
    assert _same_as_streaming(payload)[0] == "FormatError"


@pytest.mark.parametrize("limit_delta", [-1, 0, 1], ids=["under", "at", "over"])
@pytest.mark.parametrize("case", ["declared", "undeclared", "multi-frame", "skippable"])
def test_max_output_at_the_limit(case: str, limit_delta: int) -> None:
    payload, expected = GOOD[case]
    kind, detail = _same_as_streaming(payload, max_output=len(expected) + limit_delta)
    if limit_delta < 0:
        assert kind == "PolicyError"
        assert "limit" in detail[0]
    else:
        assert (kind, detail) == ("ok", expected)


def test_max_output_zero() -> None:
    assert _same_as_streaming(b"", max_output=0) == ("ok", b"")
    assert _same_as_streaming(_skippable(b"x"), max_output=0) == ("ok", b"")
    assert _same_as_streaming(_declared(b"a"), max_output=0)[0] == "PolicyError"


@pytest.mark.parametrize("size", [GRACE, GRACE + 1, GRACE + 2 * MIB])
@pytest.mark.parametrize("make", [_declared, _undeclared], ids=["declared", "undeclared"])
def test_ratio_grace_and_limit(size: int, make: Callable[[bytes], bytes]) -> None:
    payload = make(bytes(size))
    assert len(payload) * 1000 < GRACE  # zeros: far beyond 1000:1
    kind, detail = _same_as_streaming(payload, max_ratio=1000)
    if size <= GRACE:
        assert (kind, detail) == ("ok", bytes(size))
    else:
        assert kind == "PolicyError"
        assert "ratio" in detail[0]
    assert _same_as_streaming(payload, max_ratio=None) == ("ok", bytes(size))


def test_ratio_boundary() -> None:
    """Ratios on both sides of the stream's own ratio: both paths agree at every one."""
    payload = _declared(bytes(GRACE + MIB))
    exact = (GRACE + MIB) / len(payload)
    outcomes = {ratio: _same_as_streaming(payload, max_ratio=ratio)[0]
                for ratio in (exact * 0.999, exact, exact * 1.001, float(int(exact)), float(int(exact) + 1))}
    assert outcomes[exact * 0.999] == "PolicyError"
    assert outcomes[exact * 1.001] == "ok"


def test_both_limits_pick_the_lower() -> None:
    payload = _declared(bytes(GRACE + 4 * MIB))
    assert "ratio" in _same_as_streaming(payload, max_output=GRACE + 3 * MIB, max_ratio=1000)[1][0]
    assert "limit" in _same_as_streaming(payload, max_output=GRACE // 2, max_ratio=1000)[1][0]


def test_limit_below_the_block_bound_takes_the_streaming_path(spy: _Spy) -> None:
    """An undeclared frame's buffer is sized from its blocks (128 KiB a compressed block): when
    that bound passes a limit the real output meets, the streaming path decides."""
    payload, expected = _undeclared(_text(100_000)), _text(100_000)
    assert decompress_whole(payload, max_output=len(expected)) == expected
    assert spy.made == 1
    spy.made = 0
    assert decompress_whole(payload, max_output=MIB) == expected
    assert spy.made == 0


# -- property: any stream, any limits, the same outcome as streaming ---------------------------------

_piece = st.one_of(
    st.tuples(st.just("declared"), st.integers(0, 40_000), st.integers(-3, 9)),
    st.tuples(st.just("undeclared"), st.integers(0, 40_000), st.integers(-3, 9)),
    st.tuples(st.just("skippable"), st.integers(0, 50), st.integers(0, 15)),
    st.tuples(st.just("zeros"), st.integers(0, 300_000), st.integers(1, 3)),
)


def _build(pieces: list[tuple[str, int, int]], seed: int) -> tuple[bytes, bytes]:
    payload, expected = b"", b""
    for i, (kind, n, arg) in enumerate(pieces):
        data = bytes(n) if kind == "zeros" else _text(n, seed + i)
        if kind == "skippable":
            payload += _skippable(data, arg)
            continue
        payload += _undeclared(data, arg) if kind == "undeclared" else _declared(data, arg)
        expected += data
    return payload, expected


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(_piece, max_size=5), seed=st.integers(0, 1000),
       max_output=st.one_of(st.none(), st.integers(0, 700_000)),
       max_ratio=st.one_of(st.none(), st.floats(0.5, 2000)))
def test_sequences_match_streaming(pieces: list[tuple[str, int, int]], seed: int, max_output: int | None,
                                   max_ratio: float | None) -> None:
    payload, expected = _build(pieces, seed)
    kind, detail = _same_as_streaming(payload, max_output=max_output, max_ratio=max_ratio)
    if kind == "ok":
        assert detail == expected
    if max_output is None or max_output >= len(expected):  # the ratio never binds under 16 MiB
        assert (kind, detail) == ("ok", expected)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_mutations_match_streaming(data: st.DataObject) -> None:
    """Flipped, cut or spliced bytes anywhere in a valid stream (headers included): whatever the
    streaming path says, decompress_whole says too."""
    payload = bytearray(data.draw(st.sampled_from(sorted(GOOD)).map(lambda case: GOOD[case][0])))
    for _ in range(data.draw(st.integers(1, 3))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, max(len(payload) - 1, 0)))
        if action == "flip" and payload:
            payload[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del payload[at:at + data.draw(st.integers(1, 8))]
        else:
            payload[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    _same_as_streaming(bytes(payload), max_output=data.draw(st.one_of(st.none(), st.integers(0, 2 * MIB))))


# -- the compressor's one-shot ---------------------------------------------------------------------


@pytest.mark.parametrize("level", [-7, 1, 3, 9, 19])
def test_compress_whole_writes_one_declared_frame(level: int) -> None:
    data = _text(200_000)
    packed = Compressor(level).compress_whole(data)
    params = zstandard.get_frame_parameters(packed)
    assert params.content_size == len(data)
    assert params.dict_id == 0
    assert params.window_size <= 8 * MIB  # §8.2: SHOULD stay at or below 8 MiB
    assert zstandard.ZstdDecompressor().decompress(packed, allow_extra_data=False) == data  # exactly one frame
    tracker = compression._FrameTracker(record=True)
    tracker.feed(packed)
    assert tracker.complete and tracker.frames == [(0, len(packed), len(data), True)]


@pytest.mark.parametrize("case", ["multi-frame", "skippable", "declared-checksum", "rle"])
@pytest.mark.parametrize("piece", [1, 3, 7, 1000])
def test_recorded_frames_do_not_depend_on_how_the_stream_is_fed(case: str, piece: int) -> None:
    payload = GOOD[case][0]
    whole = compression._FrameTracker(record=True)
    whole.feed(payload)
    pieces = compression._FrameTracker(record=True)
    for i in range(0, len(payload), piece):
        pieces.feed(payload[i:i + piece])
    assert whole.complete and pieces.complete
    assert whole.frames and pieces.frames == whole.frames
    # Each listed frame is exactly one zstd frame of the stream.
    assert b"".join(zstandard.ZstdDecompressor().decompressobj().decompress(payload[a:b])
                    for a, b, _, _ in whole.frames) == GOOD[case][1]


def test_many_frames_take_the_streaming_path(spy: _Spy) -> None:
    # The frame list would grow with the input: past 64 frames the streaming path decodes.
    many = b"".join(_declared(bytes([i]) * 100) for i in range(65))
    tracker = compression._FrameTracker(record=True)
    tracker.feed(many)
    assert tracker.complete and tracker.frames is None
    spy.made = 0
    assert decompress_whole(many) == b"".join(bytes([i]) * 100 for i in range(65))
    assert spy.made == 1


def test_compress_whole_is_not_mixed_with_streaming() -> None:
    compressor = Compressor(3)
    compressor.compress(b"streamed")
    with pytest.raises(RuntimeError, match="internal error"):
        compressor.compress_whole(b"whole")


# -- end to end: the sync and async one-shots ------------------------------------------------------


class _Extending:
    """Adds `envelope:compression = zstd` to the stored context (only envelope itself may): the
    message is authentic whatever zstd bytes it carries."""

    def __init__(self) -> None:
        self.inner = envelope.DefaultMaterialsManager(KEYRING)

    def get_encryption_materials(self, request: EncryptionRequest) -> EncryptionMaterials:
        context = {**request.encryption_context, "envelope:compression": "zstd"}
        return self.inner.get_encryption_materials(dataclasses.replace(request, encryption_context=context))

    def decrypt_materials(self, request: DecryptionRequest) -> DecryptionMaterials:
        return self.inner.decrypt_materials(request)


def _authentic(payload: bytes, suite: AlgorithmSuite = UNSIGNED) -> bytes:
    return envelope.encrypt(payload, materials_manager=_Extending(), algorithm=suite, frame_length=4096)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
@pytest.mark.parametrize("case", ["multi-frame", "skippable", "only-skippable", "empty", "undeclared"])
@pytest.mark.parametrize("suite", [UNSIGNED, SIGNED], ids=["unsigned", "signed"])
async def test_oneshots_decode_crafted_payloads(case: str, suite: AlgorithmSuite) -> None:
    payload, expected = GOOD[case]
    message = _authentic(payload, suite)
    assert envelope.decrypt(message, keyring=KEYRING)[0] == expected
    assert (await aio.decrypt(message, keyring=KEYRING))[0] == expected
    assert envelope.decrypt(message, keyring=KEYRING, decompress=False)[0] == payload
    sink = io.BytesIO()
    envelope.decrypt_stream(io.BytesIO(message), sink, keyring=KEYRING)
    assert sink.getvalue() == expected


@pytest.mark.anyio
@pytest.mark.parametrize("case", ["lying-bigger", "lying-smaller", "lying-huge", "truncated", "not-zstd"])
async def test_oneshots_refuse_crafted_payloads(case: str) -> None:
    message = _authentic(CORRUPT[case])
    with pytest.raises(FormatError, match="compressed plaintext"):
        envelope.decrypt(message, keyring=KEYRING)
    with pytest.raises(FormatError, match="compressed plaintext"):
        await aio.decrypt(message, keyring=KEYRING)


@pytest.mark.anyio
async def test_oneshot_limits_end_to_end() -> None:
    payload, expected = GOOD["multi-frame"]
    message = _authentic(payload)
    assert envelope.decrypt(message, keyring=KEYRING, max_decompressed_size=len(expected))[0] == expected
    with pytest.raises(PolicyError, match="limit"):
        envelope.decrypt(message, keyring=KEYRING, max_decompressed_size=len(expected) - 1)
    with pytest.raises(PolicyError, match="limit"):
        await aio.decrypt(message, keyring=KEYRING, max_decompressed_size=len(expected) - 1)
    bomb = envelope.encrypt(bytes(GRACE + MIB), keyring=KEYRING, algorithm=UNSIGNED, compression="zstd")
    with pytest.raises(PolicyError, match="ratio"):
        envelope.decrypt(bomb, keyring=KEYRING)
    with pytest.raises(PolicyError, match="ratio"):
        await aio.decrypt(bomb, keyring=KEYRING)
    assert len((await aio.decrypt(bomb, keyring=KEYRING, max_compression_ratio=None))[0]) == GRACE + MIB


@pytest.mark.anyio
@pytest.mark.parametrize("n", [0, 1, 4095, 4096, 4097, 300_000])
@pytest.mark.parametrize("suite", [UNSIGNED, SIGNED], ids=["unsigned", "signed"])
async def test_oneshot_round_trips(n: int, suite: AlgorithmSuite, spy: _Spy) -> None:
    data = _text(n)
    for message in (envelope.encrypt(data, keyring=KEYRING, algorithm=suite, compression="zstd", frame_length=4096),
                    await aio.encrypt(data, keyring=KEYRING, algorithm=suite, compression="zstd", frame_length=4096)):
        raw = envelope.decrypt(message, keyring=KEYRING, decompress=False)[0]
        # What a peer sees: one zstd frame that declares its size (zstandard reads it either way).
        assert zstandard.ZstdDecompressor().decompress(raw, allow_extra_data=False) == data
        assert zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True).read() == data
        spy.made = 0
        assert envelope.decrypt(message, keyring=KEYRING)[0] == data
        assert (await aio.decrypt(message, keyring=KEYRING))[0] == data
        assert spy.made == (2 if n == 0 else 0)  # an empty input's frame declares 0 bytes
        sink = io.BytesIO()
        envelope.decrypt_stream(io.BytesIO(message), sink, keyring=KEYRING)
        assert sink.getvalue() == data


def test_streamed_message_decrypts_one_shot_without_the_streaming_path(spy: _Spy) -> None:
    data = _text(3 * MIB + 5)
    sink = io.BytesIO()
    envelope.encrypt_stream(io.BytesIO(data), sink, keyring=KEYRING, compression="zstd", frame_length=65536)
    assert envelope.decrypt(sink.getvalue(), keyring=KEYRING)[0] == data
    assert spy.made == 0

