"""The seekable `envelope.aio.AsyncDecryptor` (format-spec/operations.md §1): ``await seekable()``,
``await seek()``, ``tell()``, checked against the ESDK package's full decrypt."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _aio_helpers import agen
from _esdk_helpers import esdk_aes_key, esdk_decrypt, esdk_encrypt, policy_for

import envelope
from envelope import aio
from envelope.format.body import FRAME_OVERHEAD
from envelope.format.header import parse_header

pytestmark = pytest.mark.anyio

KEY = bytes(range(32))
KEYRING = envelope.RawAESKeyring("ns", "seek", KEY)
ESDK_KEY = esdk_aes_key("ns", "seek", KEY)
UNSIGNED = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY"
PLAINTEXT = os.urandom(20_000)


def _message(plaintext: bytes = PLAINTEXT, frame_length: int = 1000, **options: Any) -> bytes:
    return envelope.encrypt(plaintext, keyring=KEYRING, frame_length=frame_length,
                            **({"algorithm": UNSIGNED} | options))


class AsyncSeekable:
    """An object with async seek and read (no readinto, not an AsyncFile) that records every
    span it gives out."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self._file = io.BytesIO(data)
        self._file.seek(offset)
        self.spans: list[tuple[int, int]] = []

    async def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        await anyio.lowlevel.checkpoint()
        return self._file.seek(offset, whence)

    async def read(self, size: int = -1) -> bytes:
        await anyio.lowlevel.checkpoint()
        start = self._file.tell()
        data = self._file.read(size)
        self.spans.append((start, len(data)))
        return data

    @property
    def read_bytes(self) -> int:
        return sum(n for _, n in self.spans)


def _edges(size: int, frame_length: int) -> list[int]:
    edges = {0, 1, frame_length - 1, frame_length, frame_length + 1, 2 * frame_length, size - frame_length - 1,
             size - frame_length, size - 1, size, size + 1, size + frame_length}
    rng = random.Random(size * 7 + frame_length)
    return sorted({e for e in edges if e >= 0} | {rng.randrange(size + 2) for _ in range(8)})


async def _check_slices(decryptor: aio.AsyncDecryptor, full: bytes, frame_length: int) -> None:
    """Seek to every edge and read several lengths; each read equals the slice of ``full``."""
    for offset in _edges(len(full), frame_length):
        for length in (1, frame_length, frame_length + 3, 3 * frame_length, -1):
            assert await decryptor.seek(offset) == offset
            got = await decryptor.aread(length)
            want = full[offset:] if length < 0 else full[offset:offset + length]
            assert got == want, (offset, length)
            assert decryptor.tell() == offset + len(want)


# The ESDK writes frame lengths that are multiples of 128 only.
WRITERS = [("envelope", 100), ("envelope", 4096), ("esdk", 128), ("esdk", 4096)]
SUITES = [envelope.AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
          envelope.AlgorithmSuite.AES_128_GCM_IV12_TAG16_HKDF_SHA256,
          envelope.AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384]


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
@pytest.mark.parametrize(("writer", "frame_length"), WRITERS, ids=[f"{w}-{n}" for w, n in WRITERS])
async def test_seeks_read_the_slices_of_the_esdk_decrypt(suite: envelope.AlgorithmSuite, writer: str,
                                                         frame_length: int) -> None:
    plaintext = PLAINTEXT[:3 * frame_length + 17] if frame_length > 1000 else PLAINTEXT[:9_000]
    policy = policy_for(suite)
    if writer == "esdk":
        message = esdk_encrypt(plaintext, ESDK_KEY, suite, frame_length)
    else:
        message = envelope.encrypt(plaintext, keyring=KEYRING, algorithm=suite, frame_length=frame_length,
                                   commitment_policy=policy)
    full, _ = esdk_decrypt(message, ESDK_KEY)
    async with aio.AsyncDecryptor(message, keyring=KEYRING, commitment_policy=policy,
                                  allow_unverified_signature=True) as decryptor:
        assert await decryptor.seekable()
        await _check_slices(decryptor, full, frame_length)
        assert await decryptor.seek(0, io.SEEK_END) == len(full)
        assert await decryptor.aread(10) == b""


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "sync-file", "async-file", "async-seek"])
async def test_every_seekable_source(kind: str, tmp_path: Path) -> None:
    message = _message()
    path = tmp_path / "m.envelope"
    path.write_bytes(b"prefix" + message)  # the message starts inside the file: offsets are the message's
    async with await anyio.open_file(path, "rb") as afile:
        with open(path, "rb") as file:  # noqa: ASYNC230 - a sync file source is read in worker threads
            await afile.seek(6)
            file.seek(6)
            source: Any = {"bytes": message, "bytearray": bytearray(message), "sync-file": file, "async-file": afile,
                      "async-seek": AsyncSeekable(b"prefix" + message, 6)}[kind]
            async with aio.AsyncDecryptor(source, keyring=KEYRING) as decryptor:
                assert await decryptor.aread(5) == PLAINTEXT[:5]  # in order first, then at random
                assert decryptor.tell() == 5
                await _check_slices(decryptor, PLAINTEXT, 1000)
                assert await decryptor.seek(0, io.SEEK_END) == len(PLAINTEXT)
                assert await decryptor.seek(-10, io.SEEK_CUR) == len(PLAINTEXT) - 10
                assert await decryptor.aread() == PLAINTEXT[-10:]


async def test_a_counting_source_gives_only_the_header_the_touched_frames_and_the_tail() -> None:
    frame_length = 1000
    message = _message(frame_length=frame_length)
    header_length = parse_header(message).length
    unit = frame_length + FRAME_OVERHEAD
    source = AsyncSeekable(message)
    async with aio.AsyncDecryptor(source, keyring=KEYRING) as decryptor:
        assert source.read_bytes == header_length  # the header, exactly: nothing of the body
        await decryptor.seek(4500)
        assert await decryptor.aread(100) == PLAINTEXT[4500:4600]
        assert await decryptor.aread(100) == PLAINTEXT[4600:4700]  # the same frame: kept, not read again
    # The header, frame 5 (0-based 4), and the final frame's 24 fixed bytes: nothing else.
    assert source.read_bytes == header_length + unit + 24
    assert (header_length + 4 * unit, unit) in source.spans


async def test_reads_across_frames_and_to_the_end_read_each_touched_frame_once() -> None:
    frame_length = 1000
    message = _message(frame_length=frame_length)
    header_length = parse_header(message).length
    unit = frame_length + FRAME_OVERHEAD
    source = AsyncSeekable(message)
    decryptor = aio.AsyncDecryptor(source, keyring=KEYRING)
    await decryptor.seek(15_500)
    assert await decryptor.aread(3000) == PLAINTEXT[15_500:18_500]  # frames 16-19 (1-based), one read
    assert await decryptor.aread() == PLAINTEXT[18_500:]  # frame 19 kept; then the final frame
    final = 40 + len(PLAINTEXT) - 19 * frame_length
    assert source.read_bytes == header_length + 24 + 4 * unit + final
    await decryptor.aclose()


@pytest.mark.parametrize("where", ["frame-tag", "sequence", "iv", "header", "final"])
async def test_tampering_inside_the_range_raises_and_stays(where: str) -> None:
    frame_length = 1000
    message = bytearray(_message(frame_length=frame_length))
    unit = frame_length + FRAME_OVERHEAD
    header_length = parse_header(bytes(message)).length
    frame3 = header_length + 2 * unit
    position = {"frame-tag": frame3 + unit - 1, "sequence": frame3 + 3, "iv": frame3 + 10,
                "header": header_length - 1, "final": len(message) - 1}[where]
    message[position] ^= 1
    decryptor = aio.AsyncDecryptor(bytes(message), keyring=KEYRING)
    with pytest.raises(envelope.AuthenticationError):
        await decryptor.seek(19_990 if where == "final" else 2500)
        await decryptor.aread(10)
    for _ in range(2):  # failed for good, even where the frames are intact
        with pytest.raises(envelope.AuthenticationError):
            await decryptor.seek(0)
            await decryptor.aread(10)


async def test_tampering_outside_the_range_is_not_read() -> None:
    message = bytearray(_message())
    message[parse_header(bytes(message)).length + 2 * (1000 + FRAME_OVERHEAD) + 100] ^= 1  # inside frame 3
    async with aio.AsyncDecryptor(bytes(message), keyring=KEYRING) as decryptor:
        await decryptor.seek(5000)
        assert await decryptor.aread(1000) == PLAINTEXT[5000:6000]
        await decryptor.seek(2500)
        with pytest.raises(envelope.AuthenticationError):
            await decryptor.aread(10)


async def test_truncation_and_trailing_data_are_refused_at_the_first_seek() -> None:
    message = _message()
    for broken in (message[:-1], message + b"\x00", message[:-1040]):
        decryptor = aio.AsyncDecryptor(broken, keyring=KEYRING)
        assert await decryptor.seekable()  # the header is fine ...
        with pytest.raises(envelope.AuthenticationError):
            await decryptor.seek(0)  # ... but no final frame ends the message where it ends
        with pytest.raises(envelope.AuthenticationError):
            await decryptor.aread()


async def test_what_cannot_seek() -> None:
    signed = _message(algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384")
    decryptor = aio.AsyncDecryptor(signed, keyring=KEYRING)
    assert not await decryptor.seekable()
    with pytest.raises(envelope.PolicyError, match="signature"):
        await decryptor.seek(1)
    assert await decryptor.aread() == PLAINTEXT  # read in order, the signature verified
    for refused, match in ((_message(frame_length=0), "non-framed"), (_message(compression="zstd"), "compressed")):
        decryptor = aio.AsyncDecryptor(refused, keyring=KEYRING)
        assert not await decryptor.seekable()
        with pytest.raises(envelope.PolicyError, match=match):
            await decryptor.seek(0, io.SEEK_END)
        assert await decryptor.aread() == PLAINTEXT
    for unseekable in (agen(_message(), 700), _SyncPipe(_message())):
        stream = aio.AsyncDecryptor(unseekable, keyring=KEYRING)
        assert not await stream.seekable()
        with pytest.raises(io.UnsupportedOperation):
            await stream.seek(0)
        assert await stream.aread() == PLAINTEXT


class _SyncPipe(io.RawIOBase):
    """A sync binary file that cannot seek (a pipe): read in order, in worker threads."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._data.readinto(buffer)


async def test_bad_positions_and_closed() -> None:
    decryptor = aio.AsyncDecryptor(_message(), keyring=KEYRING)
    with pytest.raises(ValueError, match="negative"):
        await decryptor.seek(-1)
    with pytest.raises(ValueError, match="negative"):
        await decryptor.seek(-len(PLAINTEXT) - 1, io.SEEK_END)
    with pytest.raises(ValueError, match="whence"):
        await decryptor.seek(0, 3)
    with pytest.raises(TypeError):
        await decryptor.seek(1.5)  # type: ignore[arg-type]
    assert decryptor.tell() == 0
    assert await decryptor.seek(10**9) == 10**9  # past the end, as a file: reads return b""
    assert await decryptor.aread(10) == b""
    assert await decryptor.aread() == b""
    assert decryptor.tell() == 10**9
    await decryptor.aclose()
    for call in (decryptor.seekable(), decryptor.seek(0), decryptor.aread(1)):
        with pytest.raises(ValueError, match="closed"):
            await call


async def test_seek_after_reads_in_order_asks_for_the_key_once(tmp_path: Path) -> None:
    calls = []

    class Counting(envelope.RawAESKeyring):
        def on_decrypt(self, materials: Any, edks: Any) -> Any:
            calls.append(1)
            return super().on_decrypt(materials, edks)

    keyring = Counting("ns", "seek", KEY)
    path = tmp_path / "m"
    path.write_bytes(_message(frame_length=100))
    async with await anyio.open_file(path, "rb") as file, aio.AsyncDecryptor(file, keyring=keyring) as decryptor:
        assert await decryptor.aread(150) == PLAINTEXT[:150]
        await decryptor.seek(9000)
        assert await decryptor.aread(50) == PLAINTEXT[9000:9050]
    assert calls == [1]


async def test_empty_message() -> None:
    async with aio.AsyncDecryptor(_message(b""), keyring=KEYRING) as decryptor:
        assert await decryptor.seek(0, io.SEEK_END) == 0
        assert await decryptor.aread() == b""


class BlockingSeekable(AsyncSeekable):
    """Reads wait until ``gate`` is set (when ``blocking``): a read in flight can be cancelled."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.blocking = False
        self.waiting = anyio.Event()

    async def read(self, size: int = -1) -> bytes:
        if self.blocking:
            self.waiting.set()
            await anyio.sleep_forever()
        return await super().read(size)


async def test_a_cancelled_read_at_random_leaves_the_decryptor_as_it_was() -> None:
    source = BlockingSeekable(_message())
    decryptor = aio.AsyncDecryptor(source, keyring=KEYRING)
    await decryptor.seek(3000)
    assert await decryptor.aread(10) == PLAINTEXT[3000:3010]
    source.blocking = True
    async with anyio.create_task_group() as group:
        async def read_far() -> None:
            await decryptor.seek(15_000)
            await decryptor.aread(100)

        group.start_soon(read_far)
        await source.waiting.wait()
        group.cancel_scope.cancel()
    source.blocking = False
    assert decryptor.tell() == 15_000
    assert await decryptor.aread(100) == PLAINTEXT[15_000:15_100]
    await decryptor.seek(3010)
    assert await decryptor.aread(10) == PLAINTEXT[3010:3020]
