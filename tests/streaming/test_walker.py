"""The frame walker (envelope/streaming/walker.py): rewrap's check of a body it copies without
opening (format-spec/operations.md §2.2 step 3; message.md §5.2-§5.4), through any chunking."""

from __future__ import annotations

import io
import struct
from typing import IO, cast

import pytest
from _split_helpers import split_at
from hypothesis import given, settings
from hypothesis import strategies as st

import envelope
from envelope import AlgorithmSuite
from envelope.errors import AuthenticationError, FormatError
from envelope.format.body import FRAME_OVERHEAD
from envelope.format.header import parse_header
from envelope.streaming.walker import FrameWalker

KEYRING = envelope.RawAESKeyring("test-ns", "walker-key", bytes(range(32)))
UNSIGNED = AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
SIGNED = AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384


def _message(size: int, frame_length: int, signed: bool = False) -> tuple[bytes, int, int]:
    """A message, where its body starts and where it ends (the footer follows a signed body)."""
    message = envelope.encrypt(bytes(size), keyring=KEYRING, frame_length=frame_length,
                               algorithm=SIGNED if signed else UNSIGNED)
    start = parse_header(message).length
    end = len(message) - (2 + _signature_length(message) if signed else 0)
    return message, start, end


def _signature_length(message: bytes) -> int:
    """The footer's signature length: the tail position whose 2-byte length fits what follows."""
    for n in range(70, 140):
        if struct.unpack(">H", message[-2 - n:-n])[0] == n:
            return n
    raise AssertionError("no footer")


def _walk(body: bytes, frame_length: int, cuts: list[int]) -> tuple[FrameWalker, int]:
    """Feed ``body`` cut at ``cuts``; return the walker and how many bytes it took as the body."""
    walker = FrameWalker(frame_length)
    taken = 0
    for piece in split_at(body, cuts):
        if walker.done:
            break
        taken += walker.feed(piece)
    return walker, taken


@settings(max_examples=60, deadline=None)
@given(size=st.sampled_from([0, 1, 63, 64, 65, 128, 300]), frame_length=st.sampled_from([0, 1, 64, 4096]),
       signed=st.booleans(), cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_the_body_ends_where_the_message_says_whatever_the_chunks(size: int, frame_length: int, signed: bool,
                                                                   cuts: list[int]) -> None:
    message, start, end = _message(size, frame_length, signed)
    walker, taken = _walk(message[start:] + b"after", frame_length, cuts)
    assert walker.done
    assert taken == end - start


@pytest.mark.parametrize("frame_length", [0, 64])
def test_a_truncated_body_never_ends(frame_length: int) -> None:
    message, start, end = _message(200, frame_length)
    for cut in (start + 1, start + 4, end - 17, end - 1):
        walker, taken = _walk(message[start:cut], frame_length, [])
        assert not walker.done and taken == cut - start


def test_frames_out_of_order_and_an_oversized_final_frame_are_refused() -> None:
    message, start, _ = _message(200, 64)
    swapped = bytearray(message[start:])
    size = 64 + FRAME_OVERHEAD
    swapped[:size], swapped[size:2 * size] = swapped[size:2 * size], swapped[:size]
    with pytest.raises(AuthenticationError, match="frame 1 is missing or out of order"):
        _walk(bytes(swapped), 64, [])
    final = bytearray(message[start:])
    at = 3 * size  # 200 bytes in frames of 64: three regular frames, then the final one
    final[at + 20:at + 24] = struct.pack(">I", 65)
    with pytest.raises(FormatError, match="final frame is longer"):
        _walk(bytes(final), 64, [3 * size + 10])  # split inside the final frame's fields


class _Dribble(io.RawIOBase):
    """A source without readinto that returns at most a few bytes per read, as a slow pipe may."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 7) if size >= 0 else 7)

    readinto = None  # type: ignore[assignment]


@pytest.mark.parametrize("signed", [False, True])
def test_rewrap_walks_a_source_that_returns_short_reads(signed: bool) -> None:
    message, _, _ = _message(5000, 128, signed)
    new = envelope.RawAESKeyring("test-ns", "walker-new", bytes(range(1, 33)))
    out = io.BytesIO()
    envelope.rewrap(cast(IO[bytes], _Dribble(message)), out, keyring=KEYRING, new_keyring=new)
    assert envelope.decrypt(out.getvalue(), keyring=new)[0] == bytes(5000)
    with pytest.raises(AuthenticationError):
        envelope.rewrap(cast(IO[bytes], _Dribble(message[:-1])), io.BytesIO(), keyring=KEYRING, new_keyring=new)
