"""Ranged (random-access) decryption: `envelope.decrypt_range` and the seekable `Decryptor`
(format-spec/operations.md §1), checked against the ESDK package's full decrypt."""

from __future__ import annotations

import io
import os
import random
from typing import Any

import pytest
from _esdk_helpers import esdk_aes_key, esdk_decrypt, esdk_encrypt, policy_for

import envelope
from envelope.format.body import FRAME_OVERHEAD
from envelope.format.header import parse_header

KEY = bytes(range(32))
KEYRING = envelope.RawAESKeyring("ns", "ranged", KEY)
ESDK_KEY = esdk_aes_key("ns", "ranged", KEY)
UNSIGNED = [s for s in envelope.AlgorithmSuite if not s.is_signing]
SIGNED = [s for s in envelope.AlgorithmSuite if s.is_signing]
PLAINTEXT = os.urandom(10_000)


def _ours(plaintext: bytes, suite: envelope.AlgorithmSuite, frame_length: int) -> bytes:
    policy = envelope.CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT if not suite.is_committing else None
    return envelope.encrypt(plaintext, keyring=KEYRING, algorithm=suite, frame_length=frame_length,
                            commitment_policy=policy)


def _ranges(size: int, frame_length: int) -> list[tuple[int, int]]:
    edges = sorted({0, 1, frame_length - 1, frame_length, frame_length + 1, 2 * frame_length, size - frame_length,
                    size - 1, size, size + 1, size + frame_length})
    out = [(max(e, 0), n) for e in edges for n in (0, 1, frame_length, frame_length + 3)]
    rng = random.Random(size * 31 + frame_length)
    out += [(rng.randrange(size + 5), rng.randrange(size + 5)) for _ in range(12)]
    out.append((0, size * 2))
    return out


# The ESDK writes frame lengths that are multiples of 128 only.
WRITERS = [("envelope", n) for n in (1, 100, 4096, 20_000)] + [("esdk", n) for n in (128, 512, 20_480)]


@pytest.mark.parametrize("suite", UNSIGNED, ids=lambda s: s.name)
@pytest.mark.parametrize(("writer", "frame_length"), WRITERS, ids=[f"{w}-{n}" for w, n in WRITERS])
def test_ranges_equal_the_slice_of_the_esdk_decrypt(suite: envelope.AlgorithmSuite, writer: str,
                                                    frame_length: int) -> None:
    plaintext = PLAINTEXT[:3000] if frame_length == 1 else PLAINTEXT
    if writer == "esdk":
        message = esdk_encrypt(plaintext, ESDK_KEY, suite, frame_length)
    else:
        message = _ours(plaintext, suite, frame_length)
    full, _ = esdk_decrypt(message, ESDK_KEY)
    policy = policy_for(suite)
    for offset, length in _ranges(len(full), frame_length):
        got = envelope.decrypt_range(message, offset, length, keyring=KEYRING, commitment_policy=policy)
        assert got == full[offset:offset + length], (offset, length)


def test_sources_bytes_file_and_path(tmp_path: Any) -> None:
    message = envelope.encrypt(PLAINTEXT, keyring=KEYRING, frame_length=1000,
                               algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY")
    path = tmp_path / "m.envelope"
    path.write_bytes(b"prefix" + message)
    with open(path, "rb") as file:
        file.seek(6)  # a message that starts inside the file: offsets are the message's
        assert envelope.decrypt_range(file, 2500, 10, keyring=KEYRING) == PLAINTEXT[2500:2510]
    path.write_bytes(message)
    assert envelope.decrypt_range(str(path), 9990, 100, keyring=KEYRING) == PLAINTEXT[9990:]
    assert envelope.decrypt_range(bytearray(message), 5, 5, keyring=KEYRING) == PLAINTEXT[5:10]


class CountingSource(io.BytesIO):
    """Records every byte span read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.spans: list[tuple[int, int]] = []

    def readinto(self, buffer: Any) -> int:
        start = self.tell()
        n = super().readinto(buffer)
        self.spans.append((start, n))
        return n

    def read(self, size: int | None = -1, /) -> bytes:
        start = self.tell()
        data = super().read(size)
        self.spans.append((start, len(data)))
        return data


def test_reads_only_the_header_touched_frames_and_the_final_frame_fields() -> None:
    frame_length = 1000
    message = envelope.encrypt(PLAINTEXT, keyring=KEYRING, frame_length=frame_length,
                               algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY")
    header_length = parse_header(message).length
    source = CountingSource(message)
    assert envelope.decrypt_range(source, 4500, 100, keyring=KEYRING) == PLAINTEXT[4500:4600]
    read = sum(n for _, n in source.spans)
    # The header, frame 5 (0-based 4), and the final frame's 24 fixed bytes: nothing else.
    assert read == header_length + (frame_length + FRAME_OVERHEAD) + 24
    frame_start = header_length + 4 * (frame_length + FRAME_OVERHEAD)
    assert (frame_start, frame_length + FRAME_OVERHEAD) in source.spans


@pytest.mark.parametrize("where", ["frame-tag", "sequence", "iv", "header", "final"])
def test_tampering_inside_the_range_raises(where: str) -> None:
    frame_length = 1000
    message = bytearray(envelope.encrypt(PLAINTEXT, keyring=KEYRING, frame_length=frame_length,
                                         algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY"))
    size = frame_length + FRAME_OVERHEAD
    header_length = parse_header(bytes(message)).length
    frame3 = header_length + 2 * size
    position = {"frame-tag": frame3 + size - 1, "sequence": frame3 + 3, "iv": frame3 + 10,
                "header": header_length - 1, "final": len(message) - 1}[where]
    message[position] ^= 1
    offset = 9990 if where == "final" else 2500
    with pytest.raises(envelope.AuthenticationError):
        envelope.decrypt_range(bytes(message), offset, 10, keyring=KEYRING)


def test_truncation_and_trailing_data_are_refused() -> None:
    message = envelope.encrypt(PLAINTEXT, keyring=KEYRING, frame_length=1000,
                               algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY")
    for broken in (message[:-1], message[:-1040], message + b"\x00", message[:200]):
        with pytest.raises(envelope.AuthenticationError):
            envelope.decrypt_range(broken, 0, 10**6, keyring=KEYRING)


def test_a_range_outside_the_authenticated_end_cannot_be_served_from_a_forged_end() -> None:
    # Drop the final frame and the last regular frame, keep the file size by appending garbage:
    # the end no longer has a final frame, so the message is refused rather than clipped.
    frame_length = 1000
    message = envelope.encrypt(PLAINTEXT, keyring=KEYRING, frame_length=frame_length,
                               algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY")
    cut = len(message) - 40 - (frame_length + FRAME_OVERHEAD)
    forged = message[:cut] + os.urandom(len(message) - cut)
    with pytest.raises(envelope.AuthenticationError):
        envelope.decrypt_range(forged, 9500, 400, keyring=KEYRING)


def test_signed_messages_need_the_explicit_opt_in() -> None:
    message = envelope.encrypt(PLAINTEXT, keyring=KEYRING, frame_length=1000)
    with pytest.raises(envelope.PolicyError, match="signature"):
        envelope.decrypt_range(message, 0, 10, keyring=KEYRING)
    assert envelope.decrypt_range(message, 995, 10, keyring=KEYRING,
                                  allow_unverified_signature=True) == PLAINTEXT[995:1005]
    assert envelope.decrypt_range(message, 9000, 5000, keyring=KEYRING,
                                  allow_unverified_signature=True) == PLAINTEXT[9000:]


@pytest.mark.parametrize("suite", SIGNED, ids=lambda s: s.name)
def test_signed_esdk_messages_with_the_opt_in(suite: envelope.AlgorithmSuite) -> None:
    message = esdk_encrypt(PLAINTEXT, ESDK_KEY, suite, 768)
    policy = policy_for(suite)
    for offset, length in _ranges(len(PLAINTEXT), 768):
        got = envelope.decrypt_range(message, offset, length, keyring=KEYRING, commitment_policy=policy,
                                     allow_unverified_signature=True)
        assert got == PLAINTEXT[offset:offset + length]


def test_non_framed_and_compressed_messages_are_refused() -> None:
    non_framed = envelope.encrypt(PLAINTEXT, keyring=KEYRING, frame_length=0,
                                  algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY")
    with pytest.raises(envelope.PolicyError, match="non-framed"):
        envelope.decrypt_range(non_framed, 0, 10, keyring=KEYRING)
    compressed = envelope.encrypt(PLAINTEXT, keyring=KEYRING, compression="zstd",
                                  algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY")
    with pytest.raises(envelope.PolicyError, match="compressed"):
        envelope.decrypt_range(compressed, 0, 10, keyring=KEYRING)


def test_bad_ranges_are_refused_like_a_file_would() -> None:
    message = envelope.encrypt(b"x", keyring=KEYRING, algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY")
    with pytest.raises(ValueError):
        envelope.decrypt_range(message, -1, 1, keyring=KEYRING)
    with pytest.raises(ValueError):
        envelope.decrypt_range(message, 0, -1, keyring=KEYRING)
    with pytest.raises(TypeError):
        envelope.decrypt_range(message, 0.5, 1, keyring=KEYRING)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        envelope.decrypt_range(iter([message]), 0, 1, keyring=KEYRING)
    assert envelope.decrypt_range(message, 1, 5, keyring=KEYRING) == b""


def test_empty_message() -> None:
    message = envelope.encrypt(b"", keyring=KEYRING, algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY")
    assert envelope.decrypt_range(message, 0, 10, keyring=KEYRING) == b""


def test_the_encryption_context_is_checked() -> None:
    message = envelope.encrypt(PLAINTEXT, keyring=KEYRING, encryption_context={"a": "b"},
                               algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY")
    with pytest.raises(envelope.PolicyError):
        envelope.decrypt_range(message, 0, 1, keyring=KEYRING, encryption_context={"a": "c"})
    assert envelope.decrypt_range(message, 0, 3, keyring=KEYRING, encryption_context={"a": "b"}) == PLAINTEXT[:3]


# -- the seekable Decryptor ---------------------------------------------------------------------


def test_decryptor_seek_tell_read() -> None:
    message = envelope.encrypt(PLAINTEXT, keyring=KEYRING, frame_length=1000,
                               algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY")
    with envelope.Decryptor(io.BytesIO(message), keyring=KEYRING) as d:
        assert d.seekable()
        assert d.read(10) == PLAINTEXT[:10]
        assert d.tell() == 10
        assert d.seek(4321) == 4321
        assert d.read(2000) == PLAINTEXT[4321:6321]
        assert d.tell() == 6321
        d.seek(-5, io.SEEK_CUR)
        assert d.read(5) == PLAINTEXT[6316:6321]
        assert d.seek(0, io.SEEK_END) == len(PLAINTEXT)
        assert d.read(10) == b""
        d.seek(20_000)
        assert d.read() == b""
        d.seek(-3, io.SEEK_END)
        assert d.read() == PLAINTEXT[-3:]
        with pytest.raises(ValueError):
            d.seek(-1)


def test_decryptor_over_a_stream_is_not_seekable() -> None:
    message = envelope.encrypt(PLAINTEXT, keyring=KEYRING, algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY")
    d = envelope.Decryptor(iter([message]), keyring=KEYRING)
    assert not d.seekable()
    with pytest.raises(io.UnsupportedOperation):
        d.seek(1)
    signed = envelope.Decryptor(io.BytesIO(envelope.encrypt(PLAINTEXT, keyring=KEYRING)), keyring=KEYRING)
    assert not signed.seekable()
    with pytest.raises(envelope.PolicyError):
        signed.seek(1)


def test_decryptor_seek_after_streaming_reads_does_not_ask_for_the_key_again(tmp_path: Any) -> None:
    calls = []

    class Counting(envelope.RawAESKeyring):
        def on_decrypt(self, materials: Any, edks: Any) -> Any:
            calls.append(1)
            return super().on_decrypt(materials, edks)

    keyring = Counting("ns", "ranged", KEY)
    path = tmp_path / "m"
    path.write_bytes(envelope.encrypt(PLAINTEXT, keyring=keyring, frame_length=100,
                                      algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY"))
    with open(path, "rb") as raw, envelope.Decryptor(raw, keyring=keyring) as d:
        assert d.read(150) == PLAINTEXT[:150]
        d.seek(9000)
        assert d.read(50) == PLAINTEXT[9000:9050]
    assert calls == [1]


def test_concurrent_ranges_from_many_threads_share_the_scratch_buffers_safely() -> None:
    """Ranged reads read and open frames in kept buffers (buffers.Scratch): calls on several
    threads at once must each get their own, and every result must stay intact afterwards."""
    import threading

    from envelope.streaming.ranged import SCRATCH

    plaintext = os.urandom(64 * 1024)
    message = _ours(plaintext, UNSIGNED[-1], 1000)
    errors: list[BaseException] = []
    results: list[tuple[int, int, bytes]] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(40):
                offset, length = rng.randrange(len(plaintext)), rng.randrange(5000)
                results.append((offset, length, envelope.decrypt_range(message, offset, length, keyring=KEYRING)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert all(data == plaintext[offset:offset + length] for offset, length, data in results)
    assert sum(len(b) for b in SCRATCH._idle) <= SCRATCH._keep


def test_scratch_keeps_at_most_its_budget_and_prefers_the_larger_buffers() -> None:
    from envelope.streaming.buffers import Scratch

    scratch = Scratch(100)
    small, large = scratch.take(30), scratch.take(80)
    assert len(small) == 30 and len(large) == 80
    scratch.give(small)
    scratch.give(large)  # 110 bytes idle would exceed 100: the small one goes
    assert scratch.take(10) is large
    assert len(scratch.take(10)) == 10  # nothing idle left: a new buffer


def test_a_huge_claimed_frame_length_allocates_only_what_the_message_holds() -> None:
    """A header may claim frames of up to 4 GiB (message.md §5.2, §9): what a range allocates
    follows the bytes the message holds, not the claim."""
    import tracemalloc

    message = envelope.encrypt(b"tiny", keyring=KEYRING, algorithm=UNSIGNED[-1], frame_length=2**32 - 1)
    tracemalloc.start()
    try:
        assert envelope.decrypt_range(message, 1, 2, keyring=KEYRING) == b"in"
        assert envelope.decrypt_range(io.BytesIO(message), 0, 10, keyring=KEYRING) == b"tiny"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024
