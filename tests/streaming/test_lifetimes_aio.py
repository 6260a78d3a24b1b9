"""Nothing a message makes outlives it, for every envelope.aio entry point (issue 12, item 1), on
asyncio and trio: one-shots, streams (through the worker segment, and through AsyncFiles run by
the sync driver in a worker), the file objects and the file functions; compressed, signed and
unsigned; finished and failed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from _lifetime_helpers import flip, watching
from streaming.test_lifetimes import FRAME, KEYRING, OPTIONS, OUTCOMES, PLAINTEXT, message

import envelope
import envelope.aio

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class _Sink:
    """An async sink that keeps what it is given, or fails once it has taken ``limit`` bytes."""

    def __init__(self, limit: int | None = None) -> None:
        self.parts: list[bytes] = []
        self.limit = limit

    async def write(self, data: Any) -> None:
        if self.limit is not None:
            self.limit -= len(data)
            if self.limit < 0:
                raise OSError(28, "No space left on device")
        self.parts.append(bytes(data))

    def value(self) -> bytes:
        return b"".join(self.parts)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 10_000):
        yield data[i:i + 10_000]


Decrypt = Callable[[bytes, dict[str, Any], Path], Awaitable[None]]


async def _decrypt_oneshot(data: bytes, options: dict[str, Any], tmp: Path) -> None:
    assert (await envelope.aio.decrypt(data, keyring=KEYRING, **options))[0] == PLAINTEXT


async def _decrypt_stream(data: bytes, options: dict[str, Any], tmp: Path) -> None:
    sink = _Sink()
    await envelope.aio.decrypt_stream(_chunks(data), sink, keyring=KEYRING, **options)
    assert sink.value() == PLAINTEXT


async def _decrypt_stream_files(data: bytes, options: dict[str, Any], tmp: Path) -> None:
    (tmp / "in").write_bytes(data)
    async with await anyio.open_file(tmp / "in", "rb") as src, await anyio.open_file(tmp / "out", "wb") as dst:
        await envelope.aio.decrypt_stream(src, dst, keyring=KEYRING, **options)
    assert (tmp / "out").read_bytes() == PLAINTEXT


async def _async_decryptor(data: bytes, options: dict[str, Any], tmp: Path) -> None:
    parts = []
    async with envelope.aio.AsyncDecryptor(_chunks(data), keyring=KEYRING, **options) as reader:
        while part := await reader.aread(50_000):
            parts.append(part)
    assert b"".join(parts) == PLAINTEXT


async def _decrypt_file(data: bytes, options: dict[str, Any], tmp: Path) -> None:
    (tmp / "in").write_bytes(data)
    await envelope.aio.decrypt_file(tmp / "in", tmp / "out", keyring=KEYRING, **options)
    assert (tmp / "out").read_bytes() == PLAINTEXT


DECRYPTS: dict[str, Decrypt] = {"decrypt": _decrypt_oneshot, "decrypt_stream": _decrypt_stream,
                                "decrypt_stream-files": _decrypt_stream_files,
                                "AsyncDecryptor": _async_decryptor, "decrypt_file": _decrypt_file}
CASES = [(option, outcome) for option in ("signed", "unsigned", "compressed") for outcome in OUTCOMES
         if outcome != "limit" or option == "compressed"]


@pytest.mark.parametrize("entry", list(DECRYPTS))
@pytest.mark.parametrize(("option", "outcome"), CASES, ids=[f"{o}-{c}" for o, c in CASES])
async def test_aio_decrypt_leaves_nothing_alive(entry: str, option: str, outcome: str, tmp_path: Path) -> None:
    change, options, error = OUTCOMES[outcome]
    data = change(message(option))
    with watching() as lifetimes:
        if error is None:
            await DECRYPTS[entry](data, options, tmp_path)
        else:
            with pytest.raises(error):
                await DECRYPTS[entry](data, options, tmp_path)
    assert "MessageDecryptor" in lifetimes.made()
    lifetimes.check()


Encrypt = Callable[[Any, dict[str, Any], Path], Awaitable[bytes | None]]


async def _encrypt_oneshot(sink: Any, options: dict[str, Any], tmp: Path) -> bytes | None:
    await sink.write(await envelope.aio.encrypt(PLAINTEXT, keyring=KEYRING, frame_length=FRAME, **options))
    return None


async def _encrypt_stream(sink: Any, options: dict[str, Any], tmp: Path) -> bytes | None:
    await envelope.aio.encrypt_stream(_chunks(PLAINTEXT), sink, keyring=KEYRING, frame_length=FRAME, **options)
    return None


async def _encrypt_stream_files(sink: Any, options: dict[str, Any], tmp: Path) -> bytes | None:
    (tmp / "in").write_bytes(PLAINTEXT)
    if isinstance(sink, _Sink) and sink.limit is not None:  # the failing sink: an AsyncFile cannot fail so
        await envelope.aio.encrypt_stream(_chunks(PLAINTEXT), sink, keyring=KEYRING, frame_length=FRAME, **options)
        return None
    async with await anyio.open_file(tmp / "in", "rb") as src, await anyio.open_file(tmp / "out", "wb") as dst:
        await envelope.aio.encrypt_stream(src, dst, keyring=KEYRING, frame_length=FRAME, **options)
    return (tmp / "out").read_bytes()


async def _async_encryptor(sink: Any, options: dict[str, Any], tmp: Path) -> bytes | None:
    async with envelope.aio.AsyncEncryptor(sink, keyring=KEYRING, frame_length=FRAME, **options) as writer:
        for i in range(0, len(PLAINTEXT), 10_000):
            await writer.awrite(PLAINTEXT[i:i + 10_000])
    return None


async def _encrypt_file(sink: Any, options: dict[str, Any], tmp: Path) -> bytes | None:
    (tmp / "in").write_bytes(PLAINTEXT)
    if isinstance(sink, _Sink) and sink.limit is not None:
        # A file function cannot be given a failing sink: it fails on a source that is a directory.
        await envelope.aio.encrypt_file(tmp, tmp / "out", keyring=KEYRING, frame_length=FRAME, **options)
        return None
    await envelope.aio.encrypt_file(tmp / "in", tmp / "out", keyring=KEYRING, frame_length=FRAME, **options)
    return (tmp / "out").read_bytes()


ENCRYPTS: dict[str, Encrypt] = {"encrypt": _encrypt_oneshot, "encrypt_stream": _encrypt_stream,
                                "encrypt_stream-files": _encrypt_stream_files,
                                "AsyncEncryptor": _async_encryptor, "encrypt_file": _encrypt_file}


@pytest.mark.parametrize("entry", list(ENCRYPTS))
@pytest.mark.parametrize("option", ["signed", "unsigned", "compressed"])
@pytest.mark.parametrize("fails", [False, True], ids=["ok", "fails"])
async def test_aio_encrypt_leaves_nothing_alive(entry: str, option: str, fails: bool, tmp_path: Path) -> None:
    with watching() as lifetimes:
        if not fails:
            sink = _Sink()
            written = await ENCRYPTS[entry](sink, OPTIONS[option], tmp_path)
            assert envelope.decrypt(written or sink.value(), keyring=KEYRING)[0] == PLAINTEXT
            del sink, written
        else:
            with pytest.raises(OSError):
                await ENCRYPTS[entry](_Sink(len(PLAINTEXT) // 3), OPTIONS[option], tmp_path)
    if not (fails and entry == "encrypt_file"):  # that one fails before a message starts
        assert "MessageEncryptor" in lifetimes.made()
    lifetimes.check()


@pytest.mark.parametrize(("option", "outcome", "error"),
                         [("signed", "ok", None), ("unsigned", "ok", None),
                          ("unsigned", "tampered", envelope.AuthenticationError),
                          ("unsigned", "truncated", envelope.AuthenticationError),
                          ("compressed", "ok", envelope.PolicyError)], ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("source", ["bytes", "path"])
async def test_aio_decrypt_range_leaves_nothing_alive(option: str, outcome: str, error: type[Exception] | None,
                                                      source: str, tmp_path: Path) -> None:
    data = message(option)
    if outcome == "tampered":
        data = flip(data, 2000)  # inside the range read
    elif outcome == "truncated":
        data = data[:-50]
    (tmp_path / "in").write_bytes(data)
    where: object = data if source == "bytes" else tmp_path / "in"
    with watching() as lifetimes:
        if error is None:
            got = await envelope.aio.decrypt_range(where, 1000, 50_000, keyring=KEYRING, allow_unverified_signature=True)
            assert got == PLAINTEXT[1000:51_000]
            del got
        else:
            with pytest.raises(error):
                await envelope.aio.decrypt_range(where, 1000, 50_000, keyring=KEYRING)
    assert "MessageDecryptor" in lifetimes.made()
    lifetimes.check()


@pytest.mark.parametrize(("option", "outcome", "error"),
                         [("signed", "ok", None), ("unsigned", "ok", None),
                          ("unsigned", "tampered", envelope.AuthenticationError),
                          ("unsigned", "truncated", envelope.AuthenticationError),
                          ("compressed", "ok", envelope.PolicyError)], ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("source", ["bytes", "AsyncFile"])
async def test_aio_seeking_decryptor_leaves_nothing_alive(option: str, outcome: str, error: type[Exception] | None,
                                                          source: str, tmp_path: Path) -> None:
    data = message(option)
    if outcome == "tampered":
        data = flip(data, -20_000)  # inside the range read
    elif outcome == "truncated":
        data = data[:-50]
    (tmp_path / "in").write_bytes(data)

    async def seek_and_read(where: Any) -> None:
        async with envelope.aio.AsyncDecryptor(where, keyring=KEYRING, allow_unverified_signature=True) as reader:
            await reader.seek(-50_000, 2)
            assert await reader.aread() == PLAINTEXT[-50_000:]

    with watching() as lifetimes:
        async with await anyio.open_file(tmp_path / "in", "rb") as file:
            if error is None:
                await seek_and_read(data if source == "bytes" else file)
            else:
                with pytest.raises(error):
                    await seek_and_read(data if source == "bytes" else file)
            del file
    assert "MessageDecryptor" in lifetimes.made()
    lifetimes.check()
