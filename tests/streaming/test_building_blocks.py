"""The shared frame building blocks (issue 15 item 3): the batcher, the gatherer, the buffer pool
and the limits, and the sync driver's iterable paths built on them.

Sizes around the frame length (0, 1, F-1, F, F+1, kF) and chunkings that split frames anywhere:
what the sync driver writes from an iterable is byte for byte what it writes from a file
(format-spec/message.md §5.3, §5.4: the final frame is full when the length is a multiple of F).
"""

from __future__ import annotations

import io
import os
import threading

import pytest
from _split_helpers import split_at
from hypothesis import given, settings
from hypothesis import strategies as st

import envelope
from envelope import AlgorithmSuite
from envelope.errors import AuthenticationError
from envelope.format.body import FRAME_OVERHEAD
from envelope.streaming import decryptor, limits, pipeline, sync
from envelope.streaming.batcher import seal_run
from envelope.streaming.buffers import Outputs, Pool
from envelope.streaming.gatherer import UnitReader
from envelope.streaming.session import new_encryptor

KEYRING = envelope.RawAESKeyring("test-ns", "blocks-key", bytes(range(32)))
UNSIGNED = AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
SIGNED = AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
F = 64


def _sizes() -> st.SearchStrategy[int]:
    return st.sampled_from([0, 1, F - 1, F, F + 1, 3 * F, 5 * F + 7])


@settings(max_examples=60, deadline=None)
@given(size=_sizes(), cuts=st.lists(st.integers(0, 10_000), max_size=12), signed=st.booleans())
def test_iterable_encrypt_matches_file_encrypt_and_round_trips(size: int, cuts: list[int], signed: bool) -> None:
    data = bytes(i % 251 for i in range(size))
    suite = SIGNED if signed else UNSIGNED
    pieces = io.BytesIO()
    header = envelope.encrypt_stream(split_at(data, cuts), pieces, keyring=KEYRING, algorithm=suite, frame_length=F)
    message = pieces.getvalue()
    # Same length as the file path's message: frames at the same places (§5.3), nothing lost.
    whole = io.BytesIO()
    envelope.encrypt_stream(io.BytesIO(data), whole, keyring=KEYRING, algorithm=suite, frame_length=F)
    assert len(message) == len(whole.getvalue())
    assert envelope.decrypt(message, keyring=KEYRING)[0] == data
    # Decrypt from chunks cut elsewhere: through the gatherer.
    out = io.BytesIO()
    got = envelope.decrypt_stream(split_at(message, [c * 7 for c in cuts]), out, keyring=KEYRING)
    assert out.getvalue() == data
    assert got.message_id == header.message_id


@pytest.mark.parametrize("size", [0, 1, F - 1, F, F + 1, 4 * F])
def test_iterable_decrypt_refuses_truncation_and_tampering(size: int) -> None:
    data = bytes(size)
    message = envelope.encrypt(data, keyring=KEYRING, algorithm=UNSIGNED, frame_length=F)
    with pytest.raises(AuthenticationError):
        envelope.decrypt_stream(iter([message[:-1]]), io.BytesIO(), keyring=KEYRING)
    tampered = bytearray(message)
    tampered[-1] ^= 1  # the final frame's tag
    with pytest.raises(AuthenticationError):
        envelope.decrypt_stream(iter([bytes(tampered)]), io.BytesIO(), keyring=KEYRING)


def test_a_sink_that_keeps_what_it_is_lent_keeps_the_right_bytes() -> None:
    """The iterable paths lend reused buffers to ``write``; a sink that keeps the views (against
    the `io.RawIOBase.write` contract) still sees each batch as it was, since a buffer is reused
    only once nothing holds a view of it."""
    data = bytes(i % 253 for i in range(50 * F + 3))
    kept: list[memoryview] = []
    envelope.encrypt_stream((data[i:i + 100] for i in range(0, len(data), 100)), _Keeper(kept), keyring=KEYRING,
                            algorithm=UNSIGNED, frame_length=F)
    message = b"".join(bytes(view) for view in kept)
    kept.clear()
    envelope.decrypt_stream((message[i:i + 333] for i in range(0, len(message), 333)), _Keeper(kept),
                            keyring=KEYRING)
    assert b"".join(bytes(view) for view in kept) == data


class _Keeper:
    def __init__(self, kept: list[memoryview]) -> None:
        self.kept = kept

    def write(self, data: bytes | memoryview) -> int:
        self.kept.append(data if isinstance(data, memoryview) else memoryview(data))
        return len(data)


@pytest.mark.parametrize("count", [0, 1, F - 1, F, F + 1, 3 * F])
def test_seal_run_places_the_final_frame_as_the_one_thread_loop_does(count: int) -> None:
    """``seal_run(..., last=True)`` over a buffer makes the body the sync driver's file path makes."""
    data = bytes(i % 249 for i in range(count))
    reference = io.BytesIO()
    header = envelope.encrypt_stream(io.BytesIO(data), reference, keyring=KEYRING, algorithm=UNSIGNED,
                                     frame_length=F)
    session = new_encryptor(keyring=KEYRING, algorithm=UNSIGNED, frame_length=F)
    encryptor = session.encryptor
    head = encryptor.take_header()
    out = memoryview(bytearray(count + (count // F + 1) * FRAME_OVERHEAD + 64))
    size = seal_run(encryptor, bytearray(data), count, out, last=True)
    message = head + bytes(out[:size])
    assert len(message) == len(reference.getvalue())
    assert header.frame_length == F
    assert envelope.decrypt(message, keyring=KEYRING)[0] == data


def test_pool_lends_at_most_its_depth_and_reports_a_stage_error_while_waiting() -> None:
    pool = Pool(16)
    taken = [pool.take() for _ in range(limits.POOL_DEPTH)]
    assert all(len(buf) == 16 for buf in taken)

    def failed() -> None:
        raise RuntimeError("the back thread failed")

    with pytest.raises(RuntimeError, match="back thread"):
        pool.take(failed)
    pool.put(taken[0])
    assert pool.take(failed) is taken[0]


def test_outputs_reuse_a_buffer_only_once_nothing_holds_it() -> None:
    outputs = Outputs(lend=True)
    first = outputs.take(10)
    view = outputs.result(first, 10)
    kept = view  # a sink that keeps its view
    outputs.give_back(view)
    del view
    outputs.give_back(outputs.result(outputs.take(10), 10))
    assert outputs.take(10) is not first
    assert isinstance(kept, memoryview) and kept.obj is first


def test_the_caps_have_one_home() -> None:
    """Every driver reads the hostile-header caps from limits.py (format-spec §9)."""
    assert limits.MAX_READ_HINT == limits.MAX_TRUSTED_FRAME
    assert limits.MAX_ALIGNED_UNIT == limits.MAX_TRUSTED_FRAME + FRAME_OVERHEAD
    assert vars(decryptor)["MAX_READ_HINT"] is limits.MAX_READ_HINT  # imported, not copied
    assert vars(decryptor)["MIN_HEADER_READ"] is limits.MIN_HEADER_READ
    assert vars(sync)["READ_SIZE"] is limits.READ_SIZE
    assert vars(sync)["MAX_TRUSTED_FRAME"] is limits.MAX_TRUSTED_FRAME
    assert vars(pipeline)["POOL_DEPTH"] is limits.POOL_DEPTH
    assert limits.whole_units(3, 10) == 3 and limits.whole_units(20, 10) == 1
    assert limits.nearest_units(4, 10) == 3 and limits.nearest_units(20, 10) == 1


def test_unit_reader_hands_whole_units_over_early_from_a_slow_pipe() -> None:
    """A pipe whose producer stalls mid-unit: `UnitReader.fill` returns the whole units it has at
    once (not waiting for a full buffer) and carries the partial unit into the next buffer."""
    unit = 100
    data = bytes(i % 241 for i in range(7 * unit + 30))
    read_fd, write_fd = os.pipe()
    handed = threading.Event()

    def produce() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as pipe:
            pipe.write(data[:unit + 50])  # one unit and a half, then the producer stalls
            handed.wait(10)
            pipe.write(data[unit + 50:])

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        with os.fdopen(read_fd, "rb") as source:
            reads = UnitReader(source, unit)
            buffer = memoryview(bytearray(4 * unit))
            got, ended = reads.fill(buffer)
            assert (got, ended) == (unit, False)  # the complete unit, before the stall ends
            assert buffer[:got] == data[:unit]
            handed.set()
            out = bytearray()
            while True:
                got, ended = reads.fill(buffer)
                out += buffer[:got]
                if ended:
                    break
                assert got % unit == 0  # every hand-over before the end is whole units
    finally:
        handed.set()
        producer.join()
    assert bytes(out) == data[unit:]


def test_unit_reader_keeps_boundaries_after_an_offset_and_fills_exactly_without_a_unit() -> None:
    """The first buffer ends ``offset`` bytes short (that much of the first unit is held
    elsewhere), so every later hand-over still ends on a unit boundary; with unit 0 a buffer
    fills until it is full or the input ends."""
    unit, offset = 10, 3
    data = bytes(range(95))

    class Trickle(io.RawIOBase):
        def __init__(self) -> None:
            self.pos = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            n = min(len(buffer), 4, len(data) - self.pos)  # short reads of at most 4 bytes
            buffer[:n] = data[self.pos:self.pos + n]
            self.pos += n
            return n

    reads = UnitReader(Trickle(), unit, offset)
    buffer = memoryview(bytearray(4 * unit))
    position = offset
    out = bytearray()
    while True:
        got, ended = reads.fill(buffer)
        out += buffer[:got]
        position += got
        if ended:
            break
        assert position % unit == 0
    assert bytes(out) == data
    exact = UnitReader(Trickle())
    assert exact.fill(buffer[:25]) == (25, False)
    assert exact.fill(buffer) == (40, False)
    assert exact.fill(buffer) == (30, True)
