"""The streaming zstd `Decompressor` (format-spec/message.md §8.2): its frame tracker at every
split of a stream, the size of the pieces it hands on, and its bounds with small pieces."""

from __future__ import annotations

import io
import itertools
import random
import tracemalloc
from collections.abc import Iterator

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

import envelope
from envelope import FormatError, PolicyError
from envelope.streaming.compression import DEFAULT_PIECE_SIZE, Decompressor, _FrameTracker
from envelope.streaming.session import OutputOptions, plaintext_writer

KEYRING = envelope.RawAESKeyring("stream-ns", "stream-key", bytes(range(32)))
MIB = 1024 * 1024
_ALPHABET = bytes.maketrans(bytes(range(256)), b"etaoin \n" * 32)
_MAGIC = (0xFD2FB528).to_bytes(4, "little")


def _text(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n).translate(_ALPHABET)


def _skippable(payload: bytes, nibble: int = 0) -> bytes:
    return (0x184D2A50 | nibble).to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload


def _block(kind: int, size: int, content: bytes, last: bool = False) -> bytes:
    """A block header (RFC 8878 §3.1.1.2: last bit, two type bits, 21 size bits) and content."""
    return (size << 3 | kind << 1 | last).to_bytes(3, "little") + content


def _handmade() -> tuple[bytes, bytes]:
    """A frame of tiny blocks as no zstd library writes them: raw, RLE, empty raw, and a last raw
    block; the header has no content size, and the smallest window."""
    blocks = (_block(0, 3, b"abc") + _block(1, 5, b"x") + _block(0, 0, b"") * 40 + _block(1, 0, b"y")
              + _block(0, 1, b"z", last=True))
    return _MAGIC + bytes([0x00, 0x00]) + blocks, b"abcxxxxxz"


def _undeclared(data: bytes, level: int = 3) -> bytes:
    obj = zstandard.ZstdCompressor(level=level).compressobj()
    return obj.compress(data) + obj.flush()


def _parts() -> list[tuple[bytes, bytes]]:
    """(zstd bytes, what they decode to) for each frame of a stream with one of each kind."""
    text = _text(40_000, 3)
    return [
        (zstandard.ZstdCompressor(level=3).compress(text), text),  # single segment, declared size
        (_skippable(b"meta"), b""),
        (zstandard.ZstdCompressor(level=1, write_checksum=True).compress(_text(300_000, 4)), _text(300_000, 4)),
        (_skippable(b"", 15), b""),
        (_undeclared(_text(200_000, 5)), _text(200_000, 5)),  # several blocks, no size
        _handmade(),
        (zstandard.ZstdCompressor(level=3).compress(bytes(400_000)), bytes(400_000)),  # RLE blocks
        (zstandard.ZstdCompressor(level=3).compress(b""), b""),
        (zstandard.ZstdCompressor(level=19).compress(b"short"), b"short"),  # one-byte content size
    ]


PARTS = _parts()
STREAM = b"".join(frame for frame, _ in PARTS)
PLAIN = b"".join(plain for _, plain in PARTS)
BOUNDARIES = frozenset(itertools.accumulate((len(frame) for frame, _ in PARTS), initial=0))


def _pieces(data: bytes, sizes: list[int]) -> Iterator[memoryview]:
    view = memoryview(data)
    pos = 0
    for size in itertools.cycle(sizes):
        if pos >= len(view):
            return
        yield view[pos:pos + size]
        pos += size


def test_the_stream_is_valid_zstd() -> None:
    # Every part, the hand-made frame too, is a frame zstd itself decodes as expected.
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(STREAM), read_across_frames=True)
    assert reader.read() == PLAIN
    assert len(BOUNDARIES) == len(PARTS) + 1


def _check_tracker(sizes: list[int]) -> None:
    tracker = _FrameTracker()
    fed = 0
    for piece in _pieces(STREAM, sizes):
        tracker.feed(piece)
        fed += len(piece)
        assert tracker.complete == (fed in BOUNDARIES), fed
    assert fed == len(STREAM)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 13, 4096, 1 << 30], ids=lambda n: f"pieces-{n}")
def test_tracker_is_complete_exactly_at_frame_ends(size: int) -> None:
    _check_tracker([size])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 70_000), min_size=1, max_size=20))
def test_tracker_at_random_splits(sizes: list[int]) -> None:
    _check_tracker(sizes)


@pytest.mark.parametrize("size", [1, 2, 3, 1 << 30], ids=lambda n: f"pieces-{n}")
def test_tracker_refuses_the_reserved_block_type(size: int) -> None:
    frame = _MAGIC + bytes([0x00, 0x00]) + _block(0, 2, b"ok") + _block(3, 0, b"", last=True)
    tracker = _FrameTracker()
    with pytest.raises(FormatError, match="reserved"):
        for piece in _pieces(frame, [size]):
            tracker.feed(piece)


@pytest.mark.parametrize("size", [1, 3, 4096, 1 << 30], ids=lambda n: f"pieces-{n}")
def test_decompressor_over_any_split(size: int) -> None:
    parts: list[bytes] = []
    decompressor = Decompressor(parts.append)
    for piece in _pieces(STREAM, [size]):
        decompressor.write(piece)
    decompressor.finish()
    assert b"".join(parts) == PLAIN


def test_decompressor_refuses_every_stream_cut_inside_a_frame() -> None:
    # Around each frame end (and at a few other points): a clean end decodes, any other fails.
    cuts = {n + d for n in BOUNDARIES for d in (-1, 0, 1, 5)} | set(range(0, len(STREAM), 9973))
    for cut in sorted(c for c in cuts if 0 <= c <= len(STREAM)):
        decompressor = Decompressor(lambda _: None)
        decompressor.write(STREAM[:cut])
        if cut in BOUNDARIES:
            decompressor.finish()
        else:
            with pytest.raises(FormatError):
                decompressor.finish()


# -- pieces handed on --------------------------------------------------------------------------------


@pytest.mark.parametrize(("piece_size", "n"), [(1, 20_000), (1000, 300_000), (DEFAULT_PIECE_SIZE, 3 * MIB)],
                         ids=["1", "1000", "default"])
def test_pieces_are_at_most_piece_size(piece_size: int, n: int) -> None:
    data = _text(n)
    parts: list[bytes] = []
    if piece_size == DEFAULT_PIECE_SIZE:
        decompressor = Decompressor(parts.append)
    else:
        decompressor = Decompressor(parts.append, piece_size=piece_size)
    decompressor.write(zstandard.ZstdCompressor(level=1).compress(data))
    decompressor.finish()
    assert b"".join(parts) == data
    assert max(len(p) for p in parts) <= piece_size
    assert len(parts) >= n // piece_size  # split, not gathered


@pytest.mark.parametrize("piece_size", [0, -1])
def test_piece_size_must_be_positive(piece_size: int) -> None:
    with pytest.raises(ValueError, match="piece_size"):
        Decompressor(lambda _: None, piece_size=piece_size)


def test_plaintext_writer_passes_the_piece_size() -> None:
    data = _text(100_000)
    message = envelope.encrypt(data, keyring=KEYRING, compression="zstd")
    raw, header = envelope.decrypt(message, keyring=KEYRING, decompress=False)
    parts: list[bytes | memoryview] = []
    write, finish = plaintext_writer(header, parts.append, OutputOptions(), piece_size=4096)
    write(raw)
    finish()
    assert b"".join(parts) == data
    assert max(len(p) for p in parts) <= 4096


# -- bounds ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("piece_size", [1000, 64 * 1024, DEFAULT_PIECE_SIZE, MIB])
@pytest.mark.parametrize("limit", [MIB - 1, MIB, MIB + 1])
def test_max_output_with_any_piece_size(piece_size: int, limit: int) -> None:
    compressed = zstandard.ZstdCompressor().compress(bytes(2 * MIB))
    released = 0

    def sink(piece: bytes) -> None:
        nonlocal released
        released += len(piece)

    decompressor = Decompressor(sink, max_output=limit, piece_size=piece_size)
    with pytest.raises(PolicyError, match="limit"):
        for piece in _pieces(compressed, [100]):
            decompressor.write(piece)
        decompressor.finish()
    assert limit - piece_size < released <= limit  # nothing beyond the bound, stopped within a piece


def test_ratio_with_small_pieces_releases_nothing_beyond_the_bound() -> None:
    compressed = zstandard.ZstdCompressor().compress(bytes(64 * MIB))
    released = 0

    def sink(piece: bytes) -> None:
        nonlocal released
        released += len(piece)

    decompressor = Decompressor(sink, max_ratio=1000)
    with pytest.raises(PolicyError, match="ratio"):
        for piece in _pieces(compressed, [64]):
            decompressor.write(piece)
        decompressor.finish()
    assert released <= max(16 * MIB, 1000 * decompressor.consumed)


def test_a_bomb_allocates_little_beyond_the_bound() -> None:
    # zstd's output buffer and the piece copied from it: two pieces, far below the 256 MiB.
    compressed = zstandard.ZstdCompressor().compress(bytes(256 * MIB))
    decompressor = Decompressor(lambda _: None, max_output=MIB)
    tracemalloc.start()
    try:
        with pytest.raises(PolicyError, match="limit"):
            decompressor.write(compressed)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * DEFAULT_PIECE_SIZE + 64 * 1024 <= 2 * MIB + 64 * 1024
