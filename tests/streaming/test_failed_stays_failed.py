"""A failed decryptor stays failed (issue 12, item 2): after any error, every later call on the
same object raises the same class of error and releases nothing: the sans-IO core, the zstd
`Decompressor`, `envelope.Decryptor` and `envelope.aio.AsyncDecryptor` (asyncio and trio).

Before, a caller that retried could read on: after trailing data the final frame was dropped
and the next read reported a clean end of message; after a decompression limit the next read
went on decompressing past the missing piece."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import zstandard
from _lifetime_helpers import flip

import envelope
import envelope.aio
from envelope.crypto.aead import AEAD
from envelope.streaming.compression import Decompressor
from envelope.streaming.decryptor import MessageDecryptor
from envelope.streaming.session import supply

KEYRING = envelope.RawAESKeyring("fail-ns", "fail-key", bytes(range(32)))
OTHER = envelope.RawAESKeyring("fail-ns", "other-key", bytes(range(1, 33)))
FRAME = 4096
PLAINTEXT = bytes(range(256)) * 64  # 16 KiB: four regular frames and an empty final one
UNSIGNED = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY"


def _message(**options: Any) -> bytes:
    return envelope.encrypt(PLAINTEXT, keyring=KEYRING, frame_length=FRAME, encryption_context={"a": "b"},
                            **options)


# name -> (message, decrypt options, keyring, the error class)
def _cases() -> dict[str, tuple[bytes, dict[str, Any], envelope.Keyring, type[Exception]]]:
    signed, unsigned = _message(), _message(algorithm=UNSIGNED)
    text = b"compressible text " * 4096
    compressed = envelope.encrypt(text, keyring=KEYRING, compression="zstd", frame_length=FRAME)
    return {
        "tampered-frame": (flip(unsigned, -3 * FRAME), {}, KEYRING, envelope.AuthenticationError),
        "tampered-signature": (flip(signed, -5), {}, KEYRING, envelope.AuthenticationError),
        "truncated": (unsigned[:-FRAME // 2], {}, KEYRING, envelope.AuthenticationError),
        "trailing-data": (unsigned + b"\0", {}, KEYRING, envelope.AuthenticationError),
        "wrong-context": (unsigned, {"encryption_context": {"a": "c"}}, KEYRING, envelope.PolicyError),
        "no-key": (unsigned, {}, OTHER, envelope.NoMatchingKeyError),
        "decompression-limit": (compressed, {"max_decompressed_size": 20_000}, KEYRING, envelope.PolicyError),
    }


CASES = _cases()


def _chunks(data: bytes, size: int = 1000) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("read", ["read", "read1000", "readinto", "readall", "header"])
def test_decryptor_stays_failed(case: str, read: str) -> None:
    data, options, keyring, error = CASES[case]
    reader = envelope.Decryptor(_chunks(data), keyring=keyring, **options)
    calls: dict[str, Callable[[], object]] = {
        "read": reader.read, "read1000": lambda: reader.read(1000), "readinto": lambda: reader.readinto(bytearray(10)),
        "readall": reader.readall, "header": lambda: reader.header}
    with pytest.raises(error):
        while reader.read(1000):
            pass
    for _ in range(3):
        with pytest.raises(error):
            calls[read]()


@pytest.mark.parametrize("case", list(CASES))
def test_decryptor_stays_failed_in_mid_read(case: str) -> None:
    """A read that asks for less than a chunk holds the rest as ready plaintext: that is dropped
    with the error too, not handed out by the next read."""
    data, options, keyring, error = CASES[case]
    reader = envelope.Decryptor(io.BytesIO(data), keyring=keyring, **options)
    with pytest.raises(error):
        while reader.read(1):
            pass
    with pytest.raises(error):
        reader.read(1)


def _core_for(data: bytes, options: dict[str, Any], keyring: envelope.Keyring) -> tuple[MessageDecryptor, type | None]:
    """A core fed the message in chunks up to its first error; the error's class (or None)."""
    context = options.get("encryption_context")
    core = MessageDecryptor(encryption_context=context)
    try:
        for chunk in _chunks(data):
            core.update(chunk)
            if core.needs_materials:
                supply(core, envelope.DefaultMaterialsManager(keyring))
                core.update(b"")
        core.finalize()
    except envelope.EnvelopeError as exc:
        return core, type(exc)
    return core, None


CORE_CASES = [c for c in CASES if c != "decompression-limit"]  # the core does not decompress


@pytest.mark.parametrize("case", CORE_CASES)
def test_core_stays_failed(case: str) -> None:
    data, options, keyring, error = CASES[case]
    core, raised = _core_for(data, options, keyring)
    assert raised is not None and issubclass(raised, error)
    rest = data[-FRAME:]
    for call in (lambda: core.update(rest), lambda: core.update(b""), core.finalize,
                 lambda: core.update_into(rest, bytearray(2 * FRAME)), lambda: core.decrypt_rest(rest),
                 lambda: core.supply_materials(None)):  # type: ignore[arg-type]
        with pytest.raises(raised):
            call()
    assert core.failure.failed


def test_core_error_is_a_fresh_copy() -> None:
    """Each raise is a new exception without the first one's traceback (which would keep the
    failed call's frames and buffers alive), with the same message and hint."""
    data, options, keyring, _ = CASES["tampered-frame"]
    core, _raised = _core_for(data, options, keyring)
    errors = []
    for _ in range(2):
        try:
            core.finalize()
        except envelope.AuthenticationError as exc:
            errors.append(exc)
    first, second = errors
    assert first is not second and str(first) == str(second)
    for error in errors:  # raised by the latch, not by the frame that failed first
        names = []
        tb = error.__traceback__
        while tb is not None:
            names.append(tb.tb_frame.f_code.co_name)
            tb = tb.tb_next
        assert names[-1] == "check" and "_frame" not in names
        assert error.__context__ is None and error.__cause__ is None


def test_core_interrupted_stays_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt in the middle of a step may leave it half done: later steps refuse."""
    data = _message(algorithm=UNSIGNED)
    core = MessageDecryptor(encryption_context={"a": "b"})
    core.update(data[:2000])
    supply(core, envelope.DefaultMaterialsManager(KEYRING))

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(AEAD, "open_into", interrupted)
        with pytest.raises(KeyboardInterrupt):
            core.update(data[2000:])
    with pytest.raises(ValueError, match="interrupted"):
        core.update(data[2000:])


def test_decompressor_stays_failed() -> None:
    pieces: list[bytes] = []
    decompressor = Decompressor(pieces.append, max_output=1000)
    stream = zstandard.ZstdCompressor().compress(b"x" * 100_000)
    with pytest.raises(envelope.PolicyError):
        decompressor.write(stream)
    received = sum(map(len, pieces))
    calls: tuple[Callable[[], object], ...] = (lambda: decompressor.write(stream), lambda: decompressor.write(b""),
                                               decompressor.finish)
    for call in calls:
        with pytest.raises(envelope.PolicyError):
            call()
    assert sum(map(len, pieces)) == received <= 1000


# -- async ------------------------------------------------------------------------------------


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _async_chunks(data: bytes) -> AsyncIterator[bytes]:
    for chunk in _chunks(data):
        yield chunk


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("read", ["aread", "aread1000", "header", "aenter"])
async def test_async_decryptor_stays_failed(case: str, read: str) -> None:
    data, options, keyring, error = CASES[case]
    reader = envelope.aio.AsyncDecryptor(_async_chunks(data), keyring=keyring, **options)

    async def call() -> object:
        if read == "aread":
            return await reader.aread()
        if read == "aread1000":
            return await reader.aread(1000)
        if read == "aenter":
            return await reader.__aenter__()
        return reader.header

    with pytest.raises(error):
        while await reader.aread(1000):
            pass
    for _ in range(3):
        with pytest.raises(error):
            await call()


def test_seeking_decryptor_stays_failed() -> None:
    """After a seek, reads open only the frames they touch: one that fails a tag fails the
    Decryptor, so a read elsewhere (an intact frame) raises too."""
    plaintext = PLAINTEXT * 128  # 2 MiB: the header's first read (1 MiB) stops short of the end
    data = envelope.encrypt(plaintext, keyring=KEYRING, frame_length=FRAME, algorithm=UNSIGNED)
    tampered = flip(data, -3 * FRAME)  # inside the third frame from the end
    reader = envelope.Decryptor(io.BytesIO(tampered), keyring=KEYRING)
    reader.seek(len(plaintext) - 3 * FRAME)
    with pytest.raises(envelope.AuthenticationError):
        reader.read(2 * FRAME)
    reader.seek(0)  # the first frame is intact
    for call in (lambda: reader.read(10), reader.readall, lambda: reader.readinto(bytearray(10))):
        with pytest.raises(envelope.AuthenticationError):
            call()
