"""Async keyrings and materials managers are awaited on the loop; sync ones run in worker threads;
tampered input raises envelope's errors through every async entry point."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _aio_helpers import (
    KEYRING,
    OTHER_KEYRING,
    UNSIGNED,
    ListSink,
    NativeAsyncKeyring,
    NativeAsyncManager,
    RecordingKeyring,
    agen,
)

import envelope
from envelope import aio
from envelope.aio import AsyncDefaultMaterialsManager, AsyncKeyring, AsyncMaterialsManager
from envelope.aio import streams as streams_module

pytestmark = pytest.mark.anyio

DATA = bytes(range(256)) * 40


async def _round_trip(entry: str, encrypt_with: dict[str, Any], decrypt_with: dict[str, Any], tmp_path: Path,
                      **options: Any) -> bytes:
    """Encrypt DATA and decrypt it again through one family of entry points."""
    if entry == "one-shot":
        message = await aio.encrypt(DATA, **encrypt_with, **options)
        return (await aio.decrypt(message, **decrypt_with, **options))[0]
    if entry == "stream":
        sink = ListSink()
        await aio.encrypt_stream(agen(DATA, 1000), sink, frame_length=512, **encrypt_with, **options)
        plain = ListSink()
        await aio.decrypt_stream(agen(sink.value(), 700), plain, **decrypt_with, **options)
        return plain.value()
    (tmp_path / "in").write_bytes(DATA)
    await aio.encrypt_file(tmp_path / "in", tmp_path / "sealed", frame_length=512, **encrypt_with, **options)
    await aio.decrypt_file(tmp_path / "sealed", tmp_path / "out", **decrypt_with, **options)
    return (tmp_path / "out").read_bytes()


ENTRIES = ["one-shot", "stream", "file"]


def test_protocol_conformance() -> None:
    keyring: AsyncKeyring = NativeAsyncKeyring()
    manager: AsyncMaterialsManager = NativeAsyncManager()
    default: AsyncMaterialsManager = AsyncDefaultMaterialsManager(KEYRING)
    assert isinstance(keyring, AsyncKeyring)
    assert isinstance(manager, AsyncMaterialsManager)
    assert isinstance(default, AsyncMaterialsManager)
    assert not isinstance(KEYRING, AsyncKeyring)
    with pytest.raises(TypeError, match="keyring"):
        AsyncDefaultMaterialsManager(object())  # type: ignore[arg-type]


@pytest.mark.parametrize("entry", ENTRIES)
async def test_async_keyring_is_awaited_on_the_loop(entry: str, tmp_path: Path) -> None:
    keyring = NativeAsyncKeyring()
    assert await _round_trip(entry, {"keyring": keyring}, {"keyring": keyring}, tmp_path) == DATA
    assert keyring.threads == [threading.get_ident()] * 2


@pytest.mark.parametrize("entry", ENTRIES)
async def test_sync_keyring_runs_in_a_worker_thread(entry: str, tmp_path: Path) -> None:
    keyring = RecordingKeyring()
    assert await _round_trip(entry, {"keyring": keyring}, {"keyring": keyring}, tmp_path) == DATA
    assert len(keyring.threads) == 2
    assert threading.get_ident() not in keyring.threads


@pytest.mark.parametrize("entry", ENTRIES)
async def test_async_materials_manager(entry: str, tmp_path: Path) -> None:
    manager = NativeAsyncManager()
    result = await _round_trip(entry, {"materials_manager": manager}, {"materials_manager": manager}, tmp_path,
                               encryption_context={"tenant": "a"})
    assert result == DATA
    assert manager.calls == ["encrypt", "decrypt"]


@pytest.mark.parametrize("entry", ENTRIES)
async def test_sync_required_context_manager(entry: str, tmp_path: Path) -> None:
    manager = envelope.RequiredEncryptionContextManager(["tenant"], keyring=RecordingKeyring())
    result = await _round_trip(entry, {"materials_manager": manager}, {"materials_manager": manager}, tmp_path,
                               encryption_context={"tenant": "a"})
    assert result == DATA
    with pytest.raises(envelope.PolicyError, match="tenant"):
        await aio.encrypt(DATA, materials_manager=manager)


async def test_async_default_manager_keeps_the_sync_rules() -> None:
    """Same suite choice, signing keys and refusals as DefaultMaterialsManager."""
    keyring = NativeAsyncKeyring()
    message = await aio.encrypt(DATA, keyring=keyring)  # default suite: signed
    header = envelope.decrypt(message, keyring=KEYRING)[1]
    assert header.algorithm is envelope.AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
    assert "aws-crypto-public-key" in header.encryption_context
    with pytest.raises(ValueError, match="reserved"):
        await aio.encrypt(DATA, keyring=keyring, encryption_context={"aws-crypto-x": "1"})
    with pytest.raises(envelope.PolicyError):
        await aio.encrypt(DATA, keyring=keyring, algorithm="AES_256_GCM_IV12_TAG16_HKDF_SHA256")
    with pytest.raises(envelope.PolicyError, match="mismatch"):
        await aio.decrypt(message, keyring=keyring, encryption_context={"aws-crypto-public-key": "other"})


async def test_async_keyring_errors_are_ours() -> None:
    class Broken:
        async def aon_encrypt(self, materials: Any) -> Any:
            return materials  # no data key

        async def aon_decrypt(self, materials: Any, edks: Any) -> Any:
            return materials

    with pytest.raises(envelope.KeyringError, match="no data key"):
        await aio.encrypt(DATA, keyring=Broken())
    message = envelope.encrypt(DATA, keyring=KEYRING)
    with pytest.raises(envelope.KeyringError, match="no data key"):
        await aio.decrypt(message, keyring=Broken())


# -- tampering ---------------------------------------------------------------------------------


def _tampered(kind: str) -> bytes:
    message = bytearray(envelope.encrypt(DATA, keyring=KEYRING, algorithm=UNSIGNED, frame_length=512))
    if kind == "bit-flip":
        message[-100] ^= 1
    elif kind == "truncated":
        del message[-10:]
    elif kind == "trailing":
        message += b"\0"
    elif kind == "header":
        message[0] = 0x7F
    return bytes(message)


TAMPER = [("bit-flip", envelope.AuthenticationError), ("truncated", envelope.AuthenticationError),
          ("trailing", envelope.AuthenticationError), ("header", envelope.FormatError)]


@pytest.mark.parametrize(("kind", "error"), TAMPER, ids=[k for k, _ in TAMPER])
@pytest.mark.parametrize("entry", ENTRIES)
async def test_tampered_messages_raise_our_errors(kind: str, error: type[Exception], entry: str,
                                                  tmp_path: Path) -> None:
    message = _tampered(kind)
    with pytest.raises(error):
        if entry == "one-shot":
            await aio.decrypt(message, keyring=KEYRING)
        elif entry == "stream":
            await aio.decrypt_stream(agen(message, 300), ListSink(), keyring=KEYRING)
        else:
            (tmp_path / "bad").write_bytes(message)
            await aio.decrypt_file(tmp_path / "bad", tmp_path / "out", keyring=KEYRING)
    if entry == "file":
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]  # no output, no temp file


@pytest.mark.parametrize("keyring", [OTHER_KEYRING, NativeAsyncKeyring(OTHER_KEYRING)], ids=["sync", "async"])
async def test_wrong_key(keyring: Any) -> None:
    message = envelope.encrypt(DATA, keyring=KEYRING)
    with pytest.raises(envelope.NoMatchingKeyError):
        await aio.decrypt(message, keyring=keyring)
    with pytest.raises(envelope.NoMatchingKeyError):
        await aio.decrypt_stream(agen(message, 100), ListSink(), keyring=keyring)


async def test_signed_final_frame_waits_for_the_signature() -> None:
    """A bad signature: every regular frame may have been released, the final frame never."""
    message = bytearray(envelope.encrypt(DATA, keyring=KEYRING, frame_length=1000))
    message[-1] ^= 1  # inside the signature
    sink = ListSink()
    with pytest.raises(envelope.AuthenticationError):
        await aio.decrypt_stream(agen(bytes(message), 64), sink, keyring=KEYRING)
    released = sink.value()
    assert released == DATA[:len(released)]
    assert len(released) <= (len(DATA) - 1) // 1000 * 1000


async def test_unsigned_frames_stream_before_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unsigned: a frame's plaintext reaches the sink as soon as it verifies, before the rest
    of the message has even been produced. (While the sink is busy the driver gathers up to a
    batch of input, so the batch is made small here: the message is ten frames.)"""
    monkeypatch.setattr(streams_module, "DECRYPT_BATCH_BYTES", 2000)
    message = envelope.encrypt(DATA, keyring=KEYRING, algorithm=UNSIGNED, frame_length=1000)
    send, receive = anyio.create_memory_object_stream[bytes](0)
    first_seen = anyio.Event()
    consumed_when_seen = 0
    fed = 0

    async def source() -> Any:
        nonlocal fed
        for i in range(0, len(message), 500):
            if first_seen.is_set():
                await anyio.lowlevel.checkpoint()
            yield message[i:i + 500]
            fed = i + 500

    async def consume() -> None:
        nonlocal consumed_when_seen
        async with receive:
            async for _ in receive:
                if not first_seen.is_set():
                    consumed_when_seen = fed
                    first_seen.set()

    async with anyio.create_task_group() as group:
        group.start_soon(consume)
        async with send:
            await aio.decrypt_stream(source(), send, keyring=KEYRING, allow_signed=False)
    assert consumed_when_seen < len(message) // 2
