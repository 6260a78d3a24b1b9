"""zstd compression (format-spec/message.md §8): round trips sync and async, the ESDK peer's view,
the decompression-bomb limits, corrupt compressed payloads inside authentic messages, and the
`envelope:` extension rules (readers fail closed, callers cannot set the prefix)."""

from __future__ import annotations

import dataclasses
import io
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from _esdk_helpers import esdk_aes_key, esdk_decrypt, esdk_encrypt

import envelope
from envelope import AlgorithmSuite, FormatError, PolicyError, aio
from envelope.materials.materials import DecryptionMaterials, DecryptionRequest, EncryptionMaterials, EncryptionRequest

KEY = bytes(range(32))
KEYRING = envelope.RawAESKeyring("zstd-ns", "zstd-key", KEY)
UNSIGNED = AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
SIGNED = AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
MIB = 1024 * 1024


_ALPHABET = bytes.maketrans(bytes(range(256)), b"etaoin \n" * 32)


def _text(n: int, seed: int = 1) -> bytes:
    """Compressible but not trivial (3 bits of entropy a byte), and fast to make at any size."""
    return random.Random(seed).randbytes(n).translate(_ALPHABET)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _agen(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


class _Sink:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    async def write(self, data: bytes) -> None:
        self.buffer.write(data)


class ExtendingManager:
    """Adds `envelope:` entries to the stored context, which only envelope itself may do: it
    crafts authentic messages that a reader must still refuse or decode by the rules."""

    def __init__(self, extra: dict[str, str]) -> None:
        self.inner = envelope.DefaultMaterialsManager(KEYRING)
        self.extra = extra

    def get_encryption_materials(self, request: EncryptionRequest) -> EncryptionMaterials:
        context = {**request.encryption_context, **self.extra}
        return self.inner.get_encryption_materials(dataclasses.replace(request, encryption_context=context))

    def decrypt_materials(self, request: DecryptionRequest) -> DecryptionMaterials:
        return self.inner.decrypt_materials(request)


def _authentic(plaintext: bytes, extra: dict[str, str], suite: AlgorithmSuite = UNSIGNED) -> bytes:
    return envelope.encrypt(plaintext, materials_manager=ExtendingManager(extra), algorithm=suite, frame_length=1000)


# -- round trips -------------------------------------------------------------------------------

LEVELS = [-7, 1, 3, 19]
SIZES = [0, 1, 999, 1000, 1001, 50_000]


@pytest.mark.parametrize("level", LEVELS, ids=[f"level{lv}" for lv in LEVELS])
@pytest.mark.parametrize("n", SIZES, ids=[f"n{n}" for n in SIZES])
def test_round_trip_sync(level: int, n: int) -> None:
    data = _text(n)
    message = envelope.encrypt(data, keyring=KEYRING, compression="zstd", compression_level=level, frame_length=1000)
    plaintext, header = envelope.decrypt(message, keyring=KEYRING)
    assert plaintext == data
    assert header.encryption_context["envelope:compression"] == "zstd"
    sink = io.BytesIO()
    envelope.decrypt_stream(io.BytesIO(message), sink, keyring=KEYRING)
    assert sink.getvalue() == data


@pytest.mark.parametrize("level", [1, 19, 20, 22], ids=lambda lv: f"level{lv}")
def test_windows_stay_at_or_below_8_mib(level: int) -> None:
    # §8.2: a writer keeps the window at or below 8 MiB (levels 20-22 default to 32-128 MiB), one-shot
    # and streaming alike. The input is large enough that zstd would not shrink the window to fit it,
    # and repetitive enough that levels 20-22 take a fraction of a second.
    data = random.Random(5).randbytes(4096) * (9 * 256)
    one_shot = envelope.encrypt(data, keyring=KEYRING, algorithm=UNSIGNED, compression="zstd", compression_level=level,
                                frame_length=64 * MIB)
    streamed = io.BytesIO()
    envelope.encrypt_stream(iter([data]), streamed, keyring=KEYRING, algorithm=UNSIGNED, compression="zstd",
                            compression_level=level, frame_length=64 * MIB)
    for message in (one_shot, streamed.getvalue()):
        zstd_bytes, _ = envelope.decrypt(message, keyring=KEYRING, decompress=False)
        assert zstandard.get_frame_parameters(zstd_bytes).window_size <= 8 * MIB
        assert envelope.decrypt(message, keyring=KEYRING)[0] == data


def test_compression_shrinks_and_streams() -> None:
    data = _text(MIB)
    plain = envelope.encrypt(data, keyring=KEYRING, algorithm=UNSIGNED)
    packed = envelope.encrypt(data, keyring=KEYRING, algorithm=UNSIGNED, compression="zstd")
    assert len(packed) < len(plain) // 2
    sink = io.BytesIO()
    with envelope.Encryptor(sink, keyring=KEYRING, compression="zstd", frame_length=4096) as writer:
        for i in range(0, len(data), 10_000):
            writer.write(data[i:i + 10_000])
    with envelope.Decryptor(io.BytesIO(sink.getvalue()), keyring=KEYRING) as reader:
        assert reader.read() == data


@pytest.mark.anyio
@pytest.mark.parametrize("suite", [UNSIGNED, SIGNED], ids=["unsigned", "signed"])
async def test_round_trip_async(suite: AlgorithmSuite, tmp_path: Path) -> None:
    data = _text(300_000)
    message = await aio.encrypt(data, keyring=KEYRING, algorithm=suite, compression="zstd", compression_level=5)
    assert envelope.decrypt(message, keyring=KEYRING)[0] == data
    assert (await aio.decrypt(message, keyring=KEYRING))[0] == data
    sink = _Sink()
    await aio.encrypt_stream(_agen(data, 7000), sink, keyring=KEYRING, algorithm=suite, compression="zstd",
                             frame_length=4096)
    streamed = sink.buffer.getvalue()
    assert envelope.decrypt(streamed, keyring=KEYRING)[0] == data
    out = _Sink()
    await aio.decrypt_stream(_agen(streamed, 5000), out, keyring=KEYRING)
    assert out.buffer.getvalue() == data
    (tmp_path / "in").write_bytes(data)
    await aio.encrypt_file(tmp_path / "in", tmp_path / "in.env", keyring=KEYRING, compression="zstd")
    await aio.decrypt_file(tmp_path / "in.env", tmp_path / "out", keyring=KEYRING)
    assert (tmp_path / "out").read_bytes() == data


@pytest.mark.anyio
async def test_decompress_false_returns_the_zstd_stream() -> None:
    data = _text(20_000)
    message = envelope.encrypt(data, keyring=KEYRING, compression="zstd")
    raw, _ = envelope.decrypt(message, keyring=KEYRING, decompress=False)
    assert raw[:4] == b"\x28\xb5\x2f\xfd"
    assert zstandard.ZstdDecompressor().decompressobj().decompress(raw) == data
    assert (await aio.decrypt(message, keyring=KEYRING, decompress=False))[0] == raw
    sink = _Sink()
    await aio.decrypt_stream(_agen(message, 100), sink, keyring=KEYRING, decompress=False)
    assert sink.buffer.getvalue() == raw


@pytest.mark.parametrize(("options", "error"), [
    ({"compression": "gzip"}, ValueError),
    ({"compression": "zstd", "compression_level": 23}, ValueError),
    ({"compression": "zstd", "compression_level": -8}, ValueError),
    ({"compression": "zstd", "compression_level": True}, TypeError),
    ({"compression_level": 3}, ValueError),
], ids=["unknown", "level-high", "level-low", "level-bool", "level-alone"])
def test_bad_compression_options(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        envelope.encrypt(b"data", keyring=KEYRING, **options)


# -- the ESDK peer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", [UNSIGNED, SIGNED], ids=["unsigned", "signed"])
def test_esdk_decrypts_to_the_zstd_stream(suite: AlgorithmSuite) -> None:
    data = _text(200_000)
    message = envelope.encrypt(data, keyring=KEYRING, algorithm=suite, compression="zstd", frame_length=4096)
    raw, context = esdk_decrypt(message, esdk_aes_key("zstd-ns", "zstd-key", KEY))
    assert context["envelope:compression"] == "zstd"
    assert raw != data
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True)
    assert reader.read() == data


def test_esdk_message_with_the_extension_is_decompressed() -> None:
    """A peer that writes the entry itself (with a zstd plaintext) gets the same treatment."""
    data = _text(30_000)
    packed = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(data)
    message = esdk_encrypt(packed, esdk_aes_key("zstd-ns", "zstd-key", KEY), UNSIGNED, 4096,
                           {"envelope:compression": "zstd"})
    assert envelope.decrypt(message, keyring=KEYRING)[0] == data


# -- bomb limits -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_max_decompressed_size() -> None:
    data = bytes(2 * MIB)
    message = envelope.encrypt(data, keyring=KEYRING, compression="zstd")
    assert envelope.decrypt(message, keyring=KEYRING, max_decompressed_size=2 * MIB)[0] == data
    with pytest.raises(PolicyError, match="limit"):
        envelope.decrypt(message, keyring=KEYRING, max_decompressed_size=2 * MIB - 1)
    with pytest.raises(PolicyError, match="limit"):
        envelope.decrypt_stream(io.BytesIO(message), io.BytesIO(), keyring=KEYRING, max_decompressed_size=MIB)
    with pytest.raises(PolicyError, match="limit"):
        await aio.decrypt(message, keyring=KEYRING, max_decompressed_size=MIB)
    sink = _Sink()
    with pytest.raises(PolicyError, match="limit"):
        await aio.decrypt_stream(_agen(message, 512), sink, keyring=KEYRING, max_decompressed_size=MIB)
    assert sink.buffer.tell() <= MIB  # nothing released beyond the bound


def _bomb() -> bytes:
    return envelope.encrypt(bytes(32 * MIB), keyring=KEYRING, algorithm=UNSIGNED, compression="zstd")


def test_max_compression_ratio() -> None:
    bomb = _bomb()
    assert len(bomb) < 32 * MIB // 1000  # far beyond the default 1000:1
    with pytest.raises(PolicyError, match="ratio"):
        envelope.decrypt(bomb, keyring=KEYRING)
    assert len(envelope.decrypt(bomb, keyring=KEYRING, max_compression_ratio=None)[0]) == 32 * MIB
    # Ordinary text stays far below the ratio, past the 16 MiB grace too.
    text = _text(20 * MIB)
    message = envelope.encrypt(text, keyring=KEYRING, algorithm=UNSIGNED, compression="zstd", compression_level=1)
    assert envelope.decrypt(message, keyring=KEYRING)[0] == text


@pytest.mark.anyio
async def test_max_compression_ratio_async() -> None:
    bomb = _bomb()
    with pytest.raises(PolicyError, match="ratio"):
        await aio.decrypt(bomb, keyring=KEYRING)
    sink = _Sink()
    with pytest.raises(PolicyError, match="ratio"):
        await aio.decrypt_stream(_agen(bomb, 4096), sink, keyring=KEYRING, max_compression_ratio=2000)
    # Released no more than the bound: the 16 MiB grace, then 2000 times the input, plus one chunk.
    assert sink.buffer.tell() <= max(16 * MIB, 2000 * len(bomb)) + MIB


# -- corrupt compressed payloads inside authentic messages -----------------------------------------


def _corrupt_payloads() -> dict[str, bytes]:
    data = _text(50_000)
    good = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(data)
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x55
    descriptor_size = 6  # magic(4) + descriptor(1) + window(1): no content size, no dictionary
    frame = zstandard.ZstdCompressor(level=3, write_content_size=False).compress(data)
    reserved = bytearray(frame)
    reserved[descriptor_size] |= 0b110  # block type 3 is reserved (RFC 8878 §3.1.1.2)
    return {
        "not-zstd": b"plain text, not a zstd stream at all",
        "truncated": good[:-7],
        "only-magic": good[:4],
        "checksum": bytes(flipped),
        "reserved-block": bytes(reserved),
        "trailing-garbage": good + b"garbage!",
    }


CORRUPT = _corrupt_payloads()


@pytest.mark.anyio
@pytest.mark.parametrize("case", sorted(CORRUPT))
@pytest.mark.parametrize("suite", [UNSIGNED, SIGNED], ids=["unsigned", "signed"])
async def test_corrupt_payload_is_a_format_error(case: str, suite: AlgorithmSuite) -> None:
    message = _authentic(CORRUPT[case], {"envelope:compression": "zstd"}, suite)
    # The message itself is authentic: the peer's view decrypts fine.
    assert envelope.decrypt(message, keyring=KEYRING, decompress=False)[0] == CORRUPT[case]
    with pytest.raises(FormatError):
        envelope.decrypt(message, keyring=KEYRING)
    with pytest.raises(FormatError):
        envelope.decrypt_stream(io.BytesIO(message), io.BytesIO(), keyring=KEYRING)
    with pytest.raises(FormatError):
        await aio.decrypt(message, keyring=KEYRING)
    with pytest.raises(FormatError):
        await aio.decrypt_stream(_agen(message, 333), _Sink(), keyring=KEYRING)


# -- the envelope: prefix ----------------------------------------------------------------------------

UNKNOWN = [{"envelope:encoding": "base64"}, {"envelope:compression": "lz4"}, {"envelope:compression": "ZSTD"}]


@pytest.mark.anyio
@pytest.mark.parametrize("extra", UNKNOWN, ids=["unknown-key", "unknown-value", "value-case"])
async def test_unknown_extension_is_refused(extra: dict[str, str]) -> None:
    message = _authentic(b"the writer meant something else", extra)
    with pytest.raises(FormatError, match="extension|compression"):
        envelope.decrypt(message, keyring=KEYRING)
    with pytest.raises(FormatError):
        await aio.decrypt(message, keyring=KEYRING)
    with pytest.raises(FormatError):
        await aio.decrypt_stream(_agen(message, 50), _Sink(), keyring=KEYRING)


@pytest.mark.anyio
@pytest.mark.parametrize("key", ["envelope:compression", "envelope:anything"])
async def test_callers_cannot_set_envelope_keys(key: str, tmp_path: Path) -> None:
    context = {key: "zstd", "ordinary": "ok"}
    with pytest.raises(ValueError, match="envelope:"):
        envelope.encrypt(b"x", keyring=KEYRING, encryption_context=context)
    with pytest.raises(ValueError, match="envelope:"):
        envelope.encrypt_stream(io.BytesIO(b"x"), io.BytesIO(), keyring=KEYRING, encryption_context=context)
    with pytest.raises(ValueError, match="envelope:"):
        envelope.Encryptor(io.BytesIO(), keyring=KEYRING, encryption_context=context)
    with pytest.raises(ValueError, match="envelope:"):
        await aio.encrypt(b"x", keyring=KEYRING, encryption_context=context)
    with pytest.raises(ValueError, match="envelope:"):
        await aio.encrypt_stream(_agen(b"x", 1), _Sink(), keyring=KEYRING, encryption_context=context)
    (tmp_path / "in").write_bytes(b"x")
    with pytest.raises(ValueError, match="envelope:"):
        await aio.encrypt_file(tmp_path / "in", tmp_path / "out", keyring=KEYRING, encryption_context=context)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_zstandard_is_loaded_only_for_compressed_messages() -> None:
    # In a fresh interpreter: this one has zstandard loaded already.
    script = """if True:
        import sys
        import envelope, envelope.aio
        kr = envelope.RawAESKeyring("ns", "k", bytes(32))
        message = envelope.encrypt(b"plain", keyring=kr, encryption_context={"a": "b"})
        assert envelope.decrypt(message, keyring=kr)[0] == b"plain"
        print("zstandard" in sys.modules)
        compressed = envelope.encrypt(b"z" * 1000, keyring=kr, compression="zstd")
        print("zstandard" in sys.modules)
    """
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
