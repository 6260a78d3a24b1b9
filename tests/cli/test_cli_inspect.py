"""`envelope inspect` and the header reader behind it (envelope/inspect.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import envelope
from envelope import read_header

KEYRING = envelope.RawAESKeyring("ns", "name", bytes(32))


def _message(**options: object) -> bytes:
    return envelope.encrypt(b"x" * 5000, keyring=KEYRING, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("source", ["bytes", "file", "short-reads"])
def test_read_header_matches_the_authenticated_header(source: str) -> None:
    message = _message(encryption_context={"a": "b"}, frame_length=1024)
    _, authenticated = envelope.decrypt(message, keyring=KEYRING)
    if source == "bytes":
        header = read_header(message)
    elif source == "file":
        header = read_header(io.BytesIO(message))
    else:
        class Trickle(io.RawIOBase):  # a pipe that returns 7 bytes at a time
            def __init__(self) -> None:
                self.pos = 0

            def read(self, n: int = -1) -> bytes:
                chunk = message[self.pos:self.pos + min(7, n if n > 0 else 7)]
                self.pos += len(chunk)
                return chunk

        header = read_header(Trickle())  # type: ignore[arg-type]
    assert header == authenticated


def test_read_header_reads_only_the_start() -> None:
    message = _message(frame_length=1024) + b"\0" * (1 << 20)
    source = io.BytesIO(message)
    read_header(source)
    assert source.tell() <= 64 * 1024 + 4096


@pytest.mark.parametrize("data,needle", [
    (b"", "ends inside the message header"),
    (b"\x02\x05", "ends inside the message header"),
    (b"hello world, not a message", "not an envelope message"),
    (b"AgV4" + b"A" * 100, "unsupported version 0x41"),
], ids=["empty", "truncated", "text", "base64"])
def test_read_header_errors(data: bytes, needle: str) -> None:
    for source in (data, io.BytesIO(data)):
        with pytest.raises(envelope.FormatError, match=needle):
            read_header(source)


def test_read_header_limit() -> None:
    message = _message(encryption_context={"big": "v" * 5000})
    with pytest.raises(envelope.FormatError, match="longer than the 1000-byte limit"):
        read_header(io.BytesIO(message), max_header_length=1000)
    with pytest.raises(TypeError):
        read_header("text")  # type: ignore[arg-type]


def test_inspect_text_and_json(cli, tmp_path: Path) -> None:
    Path("m.envelope").write_bytes(_message(encryption_context={"purpose": "demo"}, frame_length=4096))
    r = cli("inspect", "m.envelope")
    assert r.code == 0, r.err
    assert "algorithm:       AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384 (0x0578)" in r.text
    assert "frame length:    4096" in r.text
    assert "  purpose = demo" in r.text
    assert "  ns  name" in r.text  # provider and raw key name, without the wrapping IV
    info = json.loads(cli("inspect", "--output", "json", "m.envelope").out)
    assert info["version"] == 2 and info["content_type"] == "framed"
    assert len(bytes.fromhex(info["message_id"])) == 32
    assert info["encrypted_data_keys"] == [{"provider_id": "ns", "key_id": "name"}]


def test_inspect_stdin_and_several_files(cli) -> None:
    message = _message()
    Path("a").write_bytes(message)
    Path("b").write_bytes(_message(algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY"))
    r = cli("inspect", "a", "b")
    assert r.text.startswith("a:\n") and "\nb:\n" in r.text
    r = cli("inspect", "-", stdin=message)
    assert r.code == 0 and "version:         2" in r.text


def test_inspect_errors(cli) -> None:
    Path("text").write_bytes(b"plain words")
    r = cli("inspect", "text")
    assert r.code == 3 and r.err.startswith("envelope: error: not an envelope message")
    assert cli("inspect", "missing").code == 4
