"""Round trips around frame boundaries for every suite, through every encrypt and decrypt entry point.

Anything one entry point writes, every other must read, whatever the chunking of the input.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envelope
from envelope import AlgorithmSuite, Header
from envelope.crypto.signing import PUBLIC_KEY_CONTEXT_KEY
from envelope.format.header import parse_header
from envelope.format.suites import CommitmentPolicy
from envelope.materials.materials import EncryptionRequest
from envelope.streaming.decryptor import MessageDecryptor
from envelope.streaming.encryptor import MessageEncryptor

KEYRING = envelope.RawAESKeyring("test-ns", "roundtrip-key", bytes(range(32)))
MANAGER = envelope.DefaultMaterialsManager(KEYRING)
SUITES = list(AlgorithmSuite)
FRAME_LENGTHS = [1, 2, 16, 100, 4096]


def _encrypt_policy(suite: AlgorithmSuite) -> str:
    return "REQUIRE_ENCRYPT_ALLOW_DECRYPT" if suite.is_committing else "FORBID_ENCRYPT_ALLOW_DECRYPT"


def _decrypt_options(suite: AlgorithmSuite) -> dict[str, Any]:
    # Committing suites decrypt under the default (strictest) policy; legacy ones need ALLOW.
    return {} if suite.is_committing else {"commitment_policy": "REQUIRE_ENCRYPT_ALLOW_DECRYPT"}


def boundary_sizes(frame_length: int, k: int = 3) -> list[int]:
    """0, 1, F-1, F, F+1, kF-1, kF, kF+1 (deduplicated, non-negative)."""
    f = frame_length
    return sorted({n for n in (0, 1, f - 1, f, f + 1, k * f - 1, k * f, k * f + 1) if n >= 0})


def _chunks(data: bytes, rnd: random.Random, scale: int) -> Iterator[bytes | bytearray | memoryview]:
    """Split ``data`` at random points: single bytes, small pieces, about one element of ``scale``
    bytes (a frame) and multi-frame pieces, with the occasional empty chunk and non-bytes buffer
    types, so that elements straddle calls at every offset."""
    pos = 0
    scale = max(scale, 1)
    while pos < len(data):
        size = rnd.choice((1, rnd.randint(1, 40), max(1, scale + rnd.randint(-3, 3)), rnd.randint(1, 3 * scale + 100)))
        piece = data[pos:pos + size]
        pos += size
        kind = rnd.randrange(6)
        if kind == 0:
            yield b""
        yield bytearray(piece) if kind == 1 else memoryview(piece) if kind == 2 else piece


class ShortReads(io.RawIOBase):
    """A pipe-like source: every readinto returns a random, possibly tiny, part of what was asked."""

    def __init__(self, data: bytes, rnd: random.Random) -> None:
        super().__init__()
        self._data = memoryview(data)
        self._pos = 0
        self._rnd = rnd

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._data) - self._pos, self._rnd.randint(1, 300))
        view[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


# -- encrypt entry points: (plaintext, rnd, options) -> message bytes ----------------------------

def enc_oneshot(pt: bytes, rnd: random.Random, opts: dict[str, Any]) -> bytes:
    return envelope.encrypt(pt, keyring=KEYRING, **opts)


def enc_stream_bytesio(pt: bytes, rnd: random.Random, opts: dict[str, Any]) -> bytes:
    sink = io.BytesIO()
    header = envelope.encrypt_stream(io.BytesIO(pt), sink, keyring=KEYRING, **opts)
    out = sink.getvalue()
    assert parse_header(out).header == header  # the returned header is the one written
    return out


def enc_stream_short_reads(pt: bytes, rnd: random.Random, opts: dict[str, Any]) -> bytes:
    sink = io.BytesIO()
    envelope.encrypt_stream(ShortReads(pt, rnd), sink, keyring=KEYRING, **opts)
    return sink.getvalue()


def enc_stream_iter(pt: bytes, rnd: random.Random, opts: dict[str, Any]) -> bytes:
    sink = io.BytesIO()
    envelope.encrypt_stream(_chunks(pt, rnd, opts["frame_length"]), sink, keyring=KEYRING, **opts)
    return sink.getvalue()


def enc_file_object(pt: bytes, rnd: random.Random, opts: dict[str, Any]) -> bytes:
    sink = io.BytesIO()
    with envelope.Encryptor(sink, keyring=KEYRING, **opts) as f:
        for chunk in _chunks(pt, rnd, opts["frame_length"]):
            assert f.write(chunk) == len(chunk)
    return sink.getvalue()


def enc_core(pt: bytes, rnd: random.Random, opts: dict[str, Any]) -> bytes:
    # The sans-IO core, driven by hand: materials from the manager, then update/finalize.
    request = EncryptionRequest(opts["encryption_context"], CommitmentPolicy[opts["commitment_policy"]],
                                opts["algorithm"], None)
    core = MessageEncryptor(MANAGER.get_encryption_materials(request), opts["frame_length"])
    out = bytearray()
    for chunk in _chunks(pt, rnd, opts["frame_length"]):
        if rnd.random() < 0.5:
            out += core.update(chunk)
        else:
            bound = core.output_bound(len(chunk))
            buf = bytearray(bound + rnd.randrange(3))
            n = core.update_into(chunk, buf)
            assert n <= bound
            out += buf[:n]
    out += core.finalize()
    return bytes(out)


ENCRYPTORS: dict[str, Callable[[bytes, random.Random, dict[str, Any]], bytes]] = {
    "encrypt": enc_oneshot,
    "encrypt_stream-BytesIO": enc_stream_bytesio,
    "encrypt_stream-short-reads": enc_stream_short_reads,
    "encrypt_stream-iterable": enc_stream_iter,
    "Encryptor": enc_file_object,
    "MessageEncryptor": enc_core,
}


# -- decrypt entry points: (message, rnd, options) -> (plaintext, header) ------------------------

def dec_oneshot(ct: bytes, rnd: random.Random, opts: dict[str, Any], scale: int) -> tuple[bytes, Header]:
    return envelope.decrypt(ct, keyring=KEYRING, **opts)


def dec_stream_bytesio(ct: bytes, rnd: random.Random, opts: dict[str, Any], scale: int) -> tuple[bytes, Header]:
    sink = io.BytesIO()
    header = envelope.decrypt_stream(io.BytesIO(ct), sink, keyring=KEYRING, **opts)
    return sink.getvalue(), header


def dec_stream_short_reads(ct: bytes, rnd: random.Random, opts: dict[str, Any], scale: int) -> tuple[bytes, Header]:
    sink = io.BytesIO()
    header = envelope.decrypt_stream(ShortReads(ct, rnd), sink, keyring=KEYRING, **opts)
    return sink.getvalue(), header


def dec_stream_iter(ct: bytes, rnd: random.Random, opts: dict[str, Any], scale: int) -> tuple[bytes, Header]:
    sink = io.BytesIO()
    header = envelope.decrypt_stream(_chunks(ct, rnd, scale), sink, materials_manager=MANAGER, **opts)
    return sink.getvalue(), header


def dec_file_object(ct: bytes, rnd: random.Random, opts: dict[str, Any], scale: int) -> tuple[bytes, Header]:
    source: Any = io.BytesIO(ct) if rnd.random() < 0.5 else _chunks(ct, rnd, scale)
    out = bytearray()
    with envelope.Decryptor(source, keyring=KEYRING, **opts) as f:
        header = f.header if rnd.random() < 0.5 else None
        while True:
            if rnd.random() < 0.1:
                out += f.readall()
                break
            piece = f.read(rnd.choice((1, rnd.randint(1, 50), rnd.randint(1, 10000))))
            if not piece:
                break
            out += piece
        header = header or f.header
    return bytes(out), header


def dec_core(ct: bytes, rnd: random.Random, opts: dict[str, Any], scale: int) -> tuple[bytes, Header]:
    core = MessageDecryptor(commitment_policy=CommitmentPolicy[opts.get("commitment_policy",
                                                                          "REQUIRE_ENCRYPT_REQUIRE_DECRYPT")],
                            encryption_context=opts.get("encryption_context"))
    out = bytearray()
    header = None
    for chunk in _chunks(ct, rnd, scale):
        if rnd.random() < 0.5:
            out += core.update(chunk)
        else:
            bound = core.output_bound(len(chunk))
            buf = bytearray(bound)
            n = core.update_into(chunk, buf)
            assert n <= bound
            out += buf[:n]
        if core.needs_materials:
            assert core.request is not None
            core.supply_materials(MANAGER.decrypt_materials(core.request))
            header = core.header
            out += core.update(b"")
    assert core.finalize() == b""
    assert core.done and header is not None
    return bytes(out), header


DECRYPTORS: dict[str, Callable[[bytes, random.Random, dict[str, Any], int], tuple[bytes, Header]]] = {
    "decrypt": dec_oneshot,
    "decrypt_stream-BytesIO": dec_stream_bytesio,
    "decrypt_stream-short-reads": dec_stream_short_reads,
    "decrypt_stream-iterable": dec_stream_iter,
    "Decryptor": dec_file_object,
    "MessageDecryptor": dec_core,
}


def roundtrip(suite: AlgorithmSuite, frame_length: int, plaintext: bytes, context: dict[str, str],
              encrypt_with: str, decrypt_with: str, rnd: random.Random) -> None:
    opts = {"algorithm": suite, "frame_length": frame_length, "encryption_context": context,
            "commitment_policy": _encrypt_policy(suite)}
    message = ENCRYPTORS[encrypt_with](plaintext, rnd, opts)
    decrypt_opts = _decrypt_options(suite)
    if rnd.random() < 0.3:
        decrypt_opts["encryption_context"] = context  # the caller may restate the stored context
    # Chunk the message around its element size: a frame is F + 32 bytes on the wire.
    got, header = DECRYPTORS[decrypt_with](message, rnd, decrypt_opts, frame_length + 32)
    assert got == plaintext
    assert header.algorithm is suite
    assert header.frame_length == frame_length
    assert header.version == suite.message_format_version
    stored = dict(header.encryption_context)
    if suite.is_signing:
        assert stored.pop(PUBLIC_KEY_CONTEXT_KEY)
    assert stored == context


# Context keys may be any Unicode text except the reserved prefixes.
_keys = st.text(max_size=12).filter(lambda k: not k.startswith(("aws-crypto-", "envelope:")))
contexts = st.dictionaries(_keys, st.text(max_size=12), max_size=4)


@st.composite
def frame_and_size(draw: st.DrawFn) -> tuple[int, int]:
    frame_length = draw(st.sampled_from(FRAME_LENGTHS))
    k = draw(st.integers(2, 8 if frame_length <= 100 else 3))
    size = draw(st.sampled_from(boundary_sizes(frame_length, k)) | st.integers(0, 2 * frame_length + 3))
    return frame_length, size


@settings(max_examples=1000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(suite=st.sampled_from(SUITES), frame=frame_and_size(), context=contexts,
       encrypt_with=st.sampled_from(sorted(ENCRYPTORS)), decrypt_with=st.sampled_from(sorted(DECRYPTORS)),
       rnd=st.randoms(use_true_random=False))
def test_roundtrip_any_entry_points(suite: AlgorithmSuite, frame: tuple[int, int], context: dict[str, str],
                                    encrypt_with: str, decrypt_with: str, rnd: random.Random) -> None:
    frame_length, size = frame
    roundtrip(suite, frame_length, rnd.randbytes(size), context, encrypt_with, decrypt_with, rnd)


@pytest.mark.parametrize("suite", SUITES, ids=[s.name for s in SUITES])
# 16 KiB and more: file-like sources and sinks go through the threaded pipeline.
@pytest.mark.parametrize("frame_length", [0, *FRAME_LENGTHS, 16384, 65537], ids=lambda f: f"F{f}")
def test_every_suite_at_every_boundary(suite: AlgorithmSuite, frame_length: int) -> None:
    rnd = random.Random(f"{suite.name}/{frame_length}")
    sizes = boundary_sizes(frame_length) if frame_length else [0, 1, 17, 4097]
    for size in sizes:
        plaintext = rnd.randbytes(size)
        context = {"purpose": "boundary", "size": str(size), "ünïcødé ✓": "值"}
        roundtrip(suite, frame_length, plaintext, context, rnd.choice(sorted(ENCRYPTORS)),
                  rnd.choice(sorted(DECRYPTORS)), rnd)


CROSS_SUITES = [AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
                AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
                AlgorithmSuite.AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256,
                AlgorithmSuite.AES_192_GCM_IV12_TAG16]


@pytest.mark.parametrize("decrypt_with", sorted(DECRYPTORS))
@pytest.mark.parametrize("encrypt_with", sorted(ENCRYPTORS))
def test_every_writer_is_read_by_every_reader(encrypt_with: str, decrypt_with: str) -> None:
    rnd = random.Random(f"{encrypt_with}->{decrypt_with}")
    for suite in CROSS_SUITES:
        for frame_length in (1, 16):
            for size in boundary_sizes(frame_length, 6):
                roundtrip(suite, frame_length, rnd.randbytes(size), {"k": "v"}, encrypt_with, decrypt_with, rnd)


@pytest.mark.parametrize("suite", [AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
                                   AlgorithmSuite.AES_256_GCM_IV12_TAG16_HKDF_SHA256],
                         ids=lambda s: s.name)
def test_frame_count_matches_the_spec(suite: AlgorithmSuite) -> None:
    # format-spec/message.md §5.4: P < F gives one final frame; P = kF gives k-1 regular frames and
    # a full final frame (form A); otherwise floor(P/F) regular frames and a short final frame.
    frame_length = 16
    header_length = parse_header(envelope.encrypt(b"", keyring=KEYRING, algorithm=suite, frame_length=16,
                                                  commitment_policy=_encrypt_policy(suite))).length
    footer = 2 + (103 if suite.is_signing else 0)
    for size in boundary_sizes(frame_length, 4):
        message = envelope.encrypt(bytes(size), keyring=KEYRING, algorithm=suite, frame_length=frame_length,
                                   commitment_policy=_encrypt_policy(suite))
        parsed = parse_header(message)
        assert parsed.length == header_length
        regular = (size - 1) // frame_length if size else 0
        final = size - regular * frame_length
        expected = header_length + regular * (frame_length + 32) + (40 + final) + (footer if suite.is_signing else 0)
        assert len(message) == expected, size


def form_b_message(suite: AlgorithmSuite, frame_length: int, plaintext: bytes) -> bytes:
    """A message in form B (format-spec/message.md §5.4): a plaintext that is a multiple of the frame
    length as that many regular frames and an empty final frame, as the reference peer writes it."""
    if len(plaintext) % frame_length:
        raise ValueError("form B needs a whole number of frames")
    request = EncryptionRequest({"form": "B"}, CommitmentPolicy[_encrypt_policy(suite)], suite, None)
    core = MessageEncryptor(MANAGER.get_encryption_materials(request), frame_length)
    out = bytearray(core.take_header())
    buf = memoryview(bytearray(frame_length + 64 + core.footer_size))
    for start in range(0, len(plaintext), frame_length):
        out += buf[:core.seal_frame_into(plaintext[start:start + frame_length], buf)]
    out += buf[:core.seal_final_into(b"", buf)]
    return bytes(out)


@pytest.mark.parametrize("decrypt_with", sorted(DECRYPTORS))
@pytest.mark.parametrize("suite", CROSS_SUITES, ids=[s.name for s in CROSS_SUITES])
def test_every_reader_accepts_an_empty_final_frame(suite: AlgorithmSuite, decrypt_with: str) -> None:
    rnd = random.Random(f"form-b/{suite.name}/{decrypt_with}")
    for frame_length, frames in ((1, 1), (4, 3), (16, 2)):
        plaintext = rnd.randbytes(frame_length * frames)
        message = form_b_message(suite, frame_length, plaintext)
        form_a = ENCRYPTORS["encrypt"](plaintext, rnd, {"algorithm": suite, "frame_length": frame_length,
                                                         "encryption_context": {"form": "B"},
                                                         "commitment_policy": _encrypt_policy(suite)})
        assert len(message) == len(form_a) + 32  # (F + 32) + 40 in place of a full final frame (F + 40)
        got, header = DECRYPTORS[decrypt_with](message, rnd, _decrypt_options(suite), frame_length + 32)
        assert got == plaintext and header.encryption_context["form"] == "B"
