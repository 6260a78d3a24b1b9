"""The options of every entry point are typed: mypy rejects a misspelt or mistyped option in user
code (checked by running mypy on snippets), and at run time an unknown name is a TypeError."""

from __future__ import annotations

import io
import os
import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from _aio_helpers import ListSink, agen

import envelope
from envelope import aio

KEYRING = envelope.RawAESKeyring("typing-ns", "typing-key", bytes(range(32)))

# Correct calls of every entry point, each option spelt as documented: mypy must accept all.
GOOD = """
import io
from anyio.abc import ByteReceiveStream, ByteSendStream
import envelope
import envelope.aio

kr = envelope.RawAESKeyring("ns", "name", bytes(32))
msg = envelope.encrypt(b"x", keyring=kr, frame_length=4096, encryption_context={"a": "b"},
                       algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY", compression="zstd", compression_level=3,
                       commitment_policy=envelope.CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
                       max_encrypted_data_keys=2)
pt, header = envelope.decrypt(msg, keyring=kr, encryption_context={"a": "b"}, allow_signed=False,
                              max_decompressed_size=10, max_compression_ratio=None, decompress=True,
                              max_header_length=4096)
envelope.encrypt_stream(io.BytesIO(b"x"), io.BytesIO(), keyring=kr, plaintext_length=1, frame_length=4096)
envelope.decrypt_stream(io.BytesIO(msg), io.BytesIO(), keyring=kr, allow_signed=True)
envelope.Encryptor(io.BytesIO(), keyring=kr, frame_length=4096)
envelope.Decryptor(io.BytesIO(msg), keyring=kr, encryption_context={})
envelope.encrypt_file("a", "b", keyring=kr, overwrite=True, frame_length=4096)
envelope.decrypt_file("b", "c", keyring=kr, overwrite=False, allow_signed=False)
options: envelope.EncryptOptions = {"frame_length": 4096}
envelope.encrypt(b"x", keyring=kr, **options)

async def main(source: ByteReceiveStream, sink: ByteSendStream) -> None:
    await envelope.aio.encrypt(b"x", keyring=kr, frame_length=4096)
    await envelope.aio.decrypt(msg, keyring=kr, allow_signed=False)
    await envelope.aio.encrypt_file("a", "b", keyring=kr, frame_length=4096, overwrite=True)
    await envelope.aio.decrypt_file("b", "c", keyring=kr, max_decompressed_size=1)
    await envelope.aio.encrypt_stream(source, sink, keyring=kr, frame_length=4096, plaintext_length=1)
    await envelope.aio.decrypt_stream(source, sink, keyring=kr, decompress=False)
    envelope.aio.AsyncEncryptor(sink, keyring=kr, frame_length=4096)
    envelope.aio.AsyncDecryptor(source, keyring=kr, allow_signed=False)
    reader = envelope.aio.AsyncDecryptor(msg, keyring=kr, allow_unverified_signature=True)
    seekable: bool = await reader.seekable()
    position: int = await reader.seek(0, io.SEEK_END) + reader.tell()
"""

# Misuse, one per line, each marked with the error mypy must report on that line.
BAD = """
import io
from anyio.abc import ByteReceiveStream, ByteSendStream
import envelope
import envelope.aio

kr = envelope.RawAESKeyring("ns", "name", bytes(32))
envelope.encrypt(b"x", keyring=kr, frame_lenght=4096)  # E: call-arg
envelope.encrypt(b"x", keyring=kr, frame_length="4096")  # E: arg-type
envelope.encrypt(b"x", keyring=kr, compression="gzip")  # E: arg-type
envelope.encrypt(b"x", keyring=kr, plaintext_length=1)  # E: call-arg
envelope.encrypt(b"x", keyring=kr, allow_signed=False)  # E: call-arg
envelope.decrypt(b"x", keyring=kr, frame_length=4096)  # E: call-arg
envelope.decrypt(b"x", keyring=kr, allow_singed=False)  # E: call-arg
envelope.encrypt_stream(io.BytesIO(), io.BytesIO(), keyring=kr, frame_lenght=1)  # E: call-arg
envelope.decrypt_stream(io.BytesIO(), io.BytesIO(), keyring=kr, encryption_contxt={})  # E: call-arg
envelope.Encryptor(io.BytesIO(), keyring=kr, frame_lenght=1)  # E: call-arg
envelope.Decryptor(io.BytesIO(), keyring=kr, decompres=False)  # E: call-arg
envelope.encrypt_file("a", "b", keyring=kr, frame_lenght=1)  # E: call-arg
envelope.decrypt_file("a", "b", keyring=kr, overwrites=True)  # E: call-arg

async def main(source: ByteReceiveStream, sink: ByteSendStream) -> None:
    await envelope.aio.encrypt(b"x", keyring=kr, frame_lenght=4096)  # E: call-arg
    await envelope.aio.decrypt(b"x", keyring=kr, frame_length=4096)  # E: call-arg
    await envelope.aio.encrypt_stream(source, sink, keyring=kr, frame_lenght=1)  # E: call-arg
    await envelope.aio.decrypt_stream(source, sink, keyring=kr, alow_signed=1)  # E: call-arg
    await envelope.aio.encrypt_file("a", "b", keyring=kr, frame_lenght=1)  # E: call-arg
    await envelope.aio.decrypt_file("a", "b", keyring=kr, frame_length=1)  # E: call-arg
    envelope.aio.AsyncEncryptor(sink, keyring=kr, frame_lenght=1)  # E: call-arg
    envelope.aio.AsyncDecryptor(source, keyring=kr, frame_length=1)  # E: call-arg
    await envelope.aio.AsyncDecryptor(b"x", keyring=kr).seek("0")  # E: arg-type
"""


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[int, str]]]:
    """Run mypy --strict once on both snippets: {file name: [(line, error code), ...]}."""
    api = pytest.importorskip("mypy.api")
    root = tmp_path_factory.mktemp("typing")
    (root / "good.py").write_text(textwrap.dedent(GOOD))
    (root / "bad.py").write_text(textwrap.dedent(BAD))
    out, err, _ = api.run(["--strict", "--no-error-summary", "--show-error-codes", "--no-incremental",
                           "--cache-dir", os.devnull, "--config-file", "", "--follow-imports", "silent",
                           str(root / "good.py"), str(root / "bad.py")])
    assert not err, err
    report: dict[str, list[tuple[int, str]]] = {"good.py": [], "bad.py": []}
    for line in out.splitlines():
        if ": note: " in line:
            continue
        match = re.match(r"(.*?):(\d+): error: .*\[([a-z-]+)\]$", line)
        assert match, f"unexpected mypy output: {line}"
        report[Path(match[1]).name].append((int(match[2]), match[3]))
    return report


def test_mypy_accepts_every_documented_option(mypy_report: dict[str, list[tuple[int, str]]]) -> None:
    assert mypy_report["good.py"] == []


def test_mypy_rejects_misspelt_and_mistyped_options(mypy_report: dict[str, list[tuple[int, str]]]) -> None:
    lines = textwrap.dedent(BAD).splitlines()
    expected = {(n, line.split("# E: ")[1]) for n, line in enumerate(lines, 1) if "# E: " in line}
    assert len(expected) == 22
    assert set(mypy_report["bad.py"]) == expected


# -- run time: an unknown name is a TypeError wherever the options are taken ---------------------

def _sync_calls(tmp_path: Path) -> list[Callable[[], object]]:
    message = envelope.encrypt(b"x", keyring=KEYRING)
    (tmp_path / "in").write_bytes(b"x")
    (tmp_path / "msg").write_bytes(message)
    bad: dict[str, Any] = {"frame_lenght": 4096}
    return [
        lambda: envelope.encrypt(b"x", keyring=KEYRING, **bad),
        lambda: envelope.decrypt(message, keyring=KEYRING, **bad),
        lambda: envelope.encrypt_stream(io.BytesIO(b"x"), io.BytesIO(), keyring=KEYRING, **bad),
        lambda: envelope.decrypt_stream(io.BytesIO(message), io.BytesIO(), keyring=KEYRING, **bad),
        lambda: envelope.Encryptor(io.BytesIO(), keyring=KEYRING, **bad),
        lambda: envelope.Decryptor(io.BytesIO(message), keyring=KEYRING, **bad),
        lambda: envelope.encrypt_file(tmp_path / "in", tmp_path / "out", keyring=KEYRING, **bad),
        lambda: envelope.decrypt_file(tmp_path / "msg", tmp_path / "out", keyring=KEYRING, **bad),
        lambda: envelope.encrypt(b"x", keyring=KEYRING, plaintext_length=1),  # type: ignore[call-arg]
    ]


def test_unknown_option_is_a_type_error_in_every_sync_entry_point(tmp_path: Path) -> None:
    for call in _sync_calls(tmp_path):
        with pytest.raises(TypeError):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "msg"]  # nothing written


def test_unknown_option_is_a_type_error_in_every_async_entry_point(tmp_path: Path) -> None:
    message = envelope.encrypt(b"x", keyring=KEYRING)
    (tmp_path / "in").write_bytes(b"x")
    (tmp_path / "msg").write_bytes(message)
    bad: dict[str, Any] = {"frame_lenght": 4096}

    async def run() -> None:
        calls: list[Callable[[], Any]] = [
            lambda: aio.encrypt(b"x", keyring=KEYRING, **bad),
            lambda: aio.decrypt(message, keyring=KEYRING, **bad),
            lambda: aio.encrypt_stream(agen(b"x", 1), ListSink(), keyring=KEYRING, **bad),
            lambda: aio.decrypt_stream(agen(message, 100), ListSink(), keyring=KEYRING, **bad),
            lambda: aio.encrypt_file(tmp_path / "in", tmp_path / "out", keyring=KEYRING, **bad),
            lambda: aio.decrypt_file(tmp_path / "msg", tmp_path / "out", keyring=KEYRING, **bad),
            lambda: aio.encrypt(b"x", keyring=KEYRING, plaintext_length=1),  # type: ignore[call-arg]
        ]
        for call in calls:
            with pytest.raises(TypeError):
                await call()
        # The file objects check at construction, before their first write or read.
        with pytest.raises(TypeError, match="frame_lenght"):
            aio.AsyncEncryptor(ListSink(), keyring=KEYRING, **bad)
        with pytest.raises(TypeError, match="frame_lenght"):
            aio.AsyncDecryptor(agen(message, 100), keyring=KEYRING, **bad)

    anyio.run(run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "msg"]
