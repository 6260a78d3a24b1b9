"""The sync file objects on the shared frame building blocks (issue 15 item 3): `envelope.Encryptor`
seals through the batcher, `envelope.Decryptor` opens through the gatherer.

However the plaintext is cut into writes, the message decrypts to it with envelope and with the
`aws-encryption-sdk`; however it is read back, the same plaintext; a tampered frame releases
none of its plaintext (format-spec/message.md §5.3); and what a Decryptor holds after a read
stays about one batch. The one-thread encrypt, which reads whole frames as the Decryptor does,
is checked over short reads too.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator

import pytest
from _esdk_helpers import esdk_aes_key, esdk_decrypt
from hypothesis import given, settings
from hypothesis import strategies as st

import envelope
from envelope import AlgorithmSuite
from envelope.errors import AuthenticationError
from envelope.format.body import FINAL_FRAME_OVERHEAD, FRAME_OVERHEAD
from envelope.streaming import limits

KEY = bytes(range(32))
KEYRING = envelope.RawAESKeyring("test-ns", "file-objects", KEY)
ESDK_KEY = esdk_aes_key("test-ns", "file-objects", KEY)
UNSIGNED = AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
SIGNED = AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
F = 64
SIZES = [0, 1, F - 1, F, F + 1, 3 * F, 7 * F + 5]


def _plaintext(size: int) -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(size))


def _cut(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """``data`` in pieces of ``sizes`` (cycled; 0 makes an empty piece)."""
    sizes = sizes if any(sizes) else []
    start, index = 0, 0
    while start < len(data):
        size = sizes[index % len(sizes)] if sizes else len(data)
        yield data[start:start + size]
        start += size
        index += 1


def _encrypt(data: bytes, writes: list[int], kinds: list[int], **options: object) -> bytes:
    """Encrypt through an Encryptor, written in pieces of ``writes`` as bytes, bytearray or
    memoryview; each bytearray is overwritten once write returns (the caller reuses it)."""
    sink = io.BytesIO()
    with envelope.Encryptor(sink, keyring=KEYRING, **options) as writer:  # type: ignore[arg-type]
        for index, piece in enumerate(_cut(data, writes)):
            kind = kinds[index % len(kinds)] if kinds else 0
            if kind == 0:
                assert writer.write(piece) == len(piece)
            else:
                reused = bytearray(piece)
                assert writer.write(reused if kind == 1 else memoryview(reused)) == len(piece)
                reused[:] = bytes(len(reused))  # what the Encryptor held must be its own copy
    return sink.getvalue()


@settings(max_examples=40, deadline=None)
@given(size=st.sampled_from(SIZES), writes=st.lists(st.integers(0, 4 * F), max_size=8),
       kinds=st.lists(st.integers(0, 2), max_size=4), signed=st.booleans())
def test_encryptor_output_does_not_depend_on_the_write_sizes(size: int, writes: list[int], kinds: list[int],
                                                            signed: bool) -> None:
    data = _plaintext(size)
    suite = SIGNED if signed else UNSIGNED
    message = _encrypt(data, writes, kinds, algorithm=suite, frame_length=F)
    # Frames at the same places as one write makes (§5.3, §5.4): the same length.
    assert len(message) == len(_encrypt(data, [], [], algorithm=suite, frame_length=F))
    assert envelope.decrypt(message, keyring=KEYRING)[0] == data
    assert esdk_decrypt(message, ESDK_KEY)[0] == data


@pytest.mark.parametrize("options", [{"compression": "zstd"}, {"plaintext_length": 5 * F + 3}, {"frame_length": 0}],
                         ids=["compressed", "declared-length", "non-framed"])
def test_encryptor_general_path_still_takes_any_write_sizes(options: dict[str, object]) -> None:
    data = _plaintext(5 * F + 3)
    frame = {"frame_length": F} if "frame_length" not in options else {}
    message = _encrypt(data, [1, F + 3, 2 * F], [0, 1, 2], algorithm=UNSIGNED, **frame, **options)
    assert envelope.decrypt(message, keyring=KEYRING)[0] == data


class _ShortReads(io.RawIOBase):
    """A pipe-like source: ``readinto`` returns at most ``most`` bytes per call."""

    def __init__(self, data: bytes, most: int) -> None:
        self._data = memoryview(data)
        self._most = most

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._most, len(self._data))
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


@settings(max_examples=30, deadline=None)
@given(size=st.sampled_from([*SIZES, 40 * F + 9]), most=st.integers(1, 5 * F), signed=st.booleans())
def test_encrypt_stream_from_short_reads_frames_as_from_a_whole_file(size: int, most: int, signed: bool) -> None:
    """The one-thread encrypt reads batches of whole frames (UnitReader); a pipe's short reads
    hand them over early, and the frames still fall where one read of everything puts them."""
    data = _plaintext(size)
    suite = SIGNED if signed else UNSIGNED
    short, whole = io.BytesIO(), io.BytesIO()
    envelope.encrypt_stream(_ShortReads(data, most), short, keyring=KEYRING, algorithm=suite, frame_length=F)
    envelope.encrypt_stream(io.BytesIO(data), whole, keyring=KEYRING, algorithm=suite, frame_length=F)
    assert len(short.getvalue()) == len(whole.getvalue())
    assert envelope.decrypt(short.getvalue(), keyring=KEYRING)[0] == data


def _source(kind: str, message: bytes, cuts: list[int]) -> object:
    if kind == "file":
        return io.BytesIO(message)
    if kind == "pipe":
        return _ShortReads(message, max(1, cuts[0] if cuts else 37))
    return iter(list(_cut(message, [c + 1 for c in cuts])))


def _read_all(reader: envelope.Decryptor, sizes: list[int]) -> bytes:
    sizes = sizes if any(sizes) else []
    out = bytearray()
    index = 0
    while True:
        size = sizes[index % len(sizes)] if sizes else -1
        index += 1
        piece = reader.read(size)
        if size and not piece:
            return bytes(out)
        out += piece


@settings(max_examples=60, deadline=None)
@given(size=st.sampled_from([*SIZES, 40 * F + 9]), reads=st.lists(st.integers(0, 5 * F), max_size=6),
       kind=st.sampled_from(["file", "pipe", "iterable"]), cuts=st.lists(st.integers(0, 300), max_size=6),
       signed=st.booleans(), frame=st.sampled_from([F, 3 * F + 1]))
def test_decryptor_returns_the_same_plaintext_whatever_the_read_sizes(size: int, reads: list[int], kind: str,
                                                                     cuts: list[int], signed: bool,
                                                                     frame: int) -> None:
    data = _plaintext(size)
    message = envelope.encrypt(data, keyring=KEYRING, algorithm=SIGNED if signed else UNSIGNED, frame_length=frame)
    with envelope.Decryptor(_source(kind, message, cuts), keyring=KEYRING) as reader:  # type: ignore[arg-type]
        assert _read_all(reader, reads) == data
        assert reader.tell() == len(data)
        assert reader.header.frame_length == frame


def _body_start(message: bytes | bytearray, size: int) -> int:
    """Where the body of an unsigned message of ``size`` bytes in frames of F starts (§5)."""
    regular = (size - 1) // F
    return len(message) - (regular * (F + FRAME_OVERHEAD) + FINAL_FRAME_OVERHEAD + size - regular * F)


def _tampered(size: int, frame: int) -> bytes:
    """An unsigned message of ``size`` bytes with a bit flipped in the ciphertext of regular
    frame ``frame`` (0-based)."""
    message = bytearray(envelope.encrypt(_plaintext(size), keyring=KEYRING, algorithm=UNSIGNED, frame_length=F))
    start = _body_start(message, size) + frame * (F + FRAME_OVERHEAD)
    message[start + 4 + 12 + 5] ^= 1  # past the sequence number and the IV: the ciphertext
    return bytes(message)


@pytest.mark.parametrize("kind", ["file", "pipe", "iterable"])
@pytest.mark.parametrize("frame", [0, 3, 8])
def test_a_tampered_frame_releases_none_of_its_plaintext(kind: str, frame: int) -> None:
    size = 10 * F
    data = _plaintext(size)
    message = _tampered(size, frame)
    got = bytearray()
    with envelope.Decryptor(_source(kind, message, [50]), keyring=KEYRING) as reader:  # type: ignore[arg-type]
        with pytest.raises(AuthenticationError):
            while piece := reader.read(17):
                got += piece
        assert len(got) <= frame * F  # nothing of the tampered frame, nor of any after it
        assert bytes(got) == data[:len(got)]
        with pytest.raises(AuthenticationError):
            reader.read(1)  # latched: the message was rejected
    sink = io.BytesIO()
    with pytest.raises(AuthenticationError):
        envelope.decrypt_stream(_source(kind, message, [50]), sink, keyring=KEYRING)  # type: ignore[arg-type]
    assert len(sink.getvalue()) <= frame * F and data.startswith(sink.getvalue())


@pytest.mark.parametrize("kind", ["file", "pipe", "iterable"])
def test_a_decryptor_holds_about_one_batch_after_a_read(kind: str) -> None:
    frame = 64 * 1024
    data = _plaintext(40 * frame)
    message = envelope.encrypt(data, keyring=KEYRING, algorithm=UNSIGNED, frame_length=frame)
    source = _source(kind, message, [100_000]) if kind != "iterable" else _cut(message, [300_000])
    held = 0
    out = bytearray()
    with envelope.Decryptor(source, keyring=KEYRING) as reader:  # type: ignore[arg-type]
        while piece := reader.read(40_000):
            out += piece
            held = max(held, len(reader._ready))
    assert out == data
    assert held <= limits.READ_SIZE + 2 * frame + 300_000


def test_a_decryptor_over_a_slow_pipe_returns_complete_frames_before_the_rest_arrives() -> None:
    """The producer stalls mid-frame; the frames complete by then are read at once, not after a
    whole batch (or the end of the input) arrives."""
    size = 200 * F
    data = _plaintext(size)
    message = envelope.encrypt(data, keyring=KEYRING, algorithm=UNSIGNED, frame_length=F)
    # Past the decryptor's first read (limits.MIN_HEADER_READ), then 60 frames and a part.
    complete = (limits.MIN_HEADER_READ // (F + FRAME_OVERHEAD) + 60)
    stall = _body_start(message, size) + complete * (F + FRAME_OVERHEAD) + 10
    read_fd, write_fd = os.pipe()
    resumed = threading.Event()
    stalled_out: list[bool] = []

    def produce() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as pipe:
            pipe.write(message[:stall])
            stalled_out.append(not resumed.wait(10))
            pipe.write(message[stall:])

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        with os.fdopen(read_fd, "rb") as source, envelope.Decryptor(source, keyring=KEYRING) as reader:
            early = b""
            while len(early) < complete * F:  # a read returns what is ready: perhaps less
                early += reader.read(complete * F - len(early))
            resumed.set()
            rest = reader.read()
    finally:
        resumed.set()
        producer.join()
    assert stalled_out == [False]  # the early read returned while the producer stalled
    assert early == data[:complete * F]
    assert early + rest == data
