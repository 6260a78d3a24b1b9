"""`envelope.aio.decrypt_range`: the async mirror of ranged decryption (format-spec/operations.md §1)."""

from __future__ import annotations

import io
import os
from typing import Any

import anyio
import pytest

import envelope
from envelope import aio

pytestmark = pytest.mark.anyio

KEYRING = envelope.RawAESKeyring("ns", "ranged", bytes(range(32)))
PLAINTEXT = os.urandom(50_000)
MESSAGE = envelope.encrypt(PLAINTEXT, keyring=KEYRING, frame_length=4096,
                           algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY")
RANGES = [(0, 0), (0, 1), (4095, 2), (8192, 4096), (49_990, 100), (50_000, 1), (60_000, 5), (0, 10**6)]


async def test_bytes_source() -> None:
    for offset, length in RANGES:
        got = await aio.decrypt_range(MESSAGE, offset, length, keyring=KEYRING)
        assert got == PLAINTEXT[offset:offset + length]


async def test_path_sync_file_and_async_file(tmp_path: Any) -> None:
    path = tmp_path / "m.envelope"
    path.write_bytes(MESSAGE)
    assert await aio.decrypt_range(path, 10_000, 300, keyring=KEYRING) == PLAINTEXT[10_000:10_300]
    with path.open("rb") as file:  # a sync file: read in a worker thread
        assert await aio.decrypt_range(file, 49_999, 9, keyring=KEYRING) == PLAINTEXT[49_999:]
    async with await anyio.open_file(path, "rb") as afile:
        assert await aio.decrypt_range(afile, 5, 5, keyring=KEYRING) == PLAINTEXT[5:10]


async def test_tampering_and_refusals() -> None:
    damaged = bytearray(MESSAGE)
    damaged[-100] ^= 1
    with pytest.raises(envelope.AuthenticationError):
        await aio.decrypt_range(bytes(damaged), 49_500, 10, keyring=KEYRING)  # in the final frame
    with pytest.raises(envelope.PolicyError):
        await aio.decrypt_range(envelope.encrypt(b"x", keyring=KEYRING), 0, 1, keyring=KEYRING)
    with pytest.raises(ValueError):
        await aio.decrypt_range(MESSAGE, -1, 1, keyring=KEYRING)
    with pytest.raises(TypeError):
        await aio.decrypt_range(io.StringIO("x"), 0, 1, keyring=KEYRING)
