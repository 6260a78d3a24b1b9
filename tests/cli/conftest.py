"""Fixtures for the `envelope` command line: a private data directory, in-process and subprocess runs."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _cli_helpers import PLAIN
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from envelope_cli.main import main


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bigpipe: 1 GiB through `envelope encrypt | envelope decrypt`; "
                                       "runs only with ENVELOPE_BIG_TESTS=1")


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode("utf-8")


@pytest.fixture(autouse=True)
def data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own embedded-KMS data directory; the user's real one is never touched."""
    path = tmp_path_factory.mktemp("envelope-data")
    monkeypatch.setenv("ENVELOPE_DATA_DIR", str(path))
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "ENVELOPE_PRINCIPAL", "AWS_PROFILE", "AWS_DEFAULT_OUTPUT",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS", "ENVELOPE_KMS"):
        monkeypatch.delenv(name, raising=False)
    # the user's ~/.aws settings (output format, profiles) must not change what the tests see
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return path


class _Stdio(io.TextIOWrapper):
    def __init__(self, data: bytes = b"") -> None:
        super().__init__(io.BytesIO(data), encoding="utf-8", write_through=True)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[object]:
    """Call ``main(argv)`` in-process with captured stdio; ``cli(*argv, stdin=b"")`` -> Result."""
    monkeypatch.chdir(tmp_path)

    def run(*argv: str, stdin: bytes = b"") -> Result:
        streams = _Stdio(stdin), _Stdio(), _Stdio()
        with monkeypatch.context() as m:
            m.setattr(sys, "stdin", streams[0])
            m.setattr(sys, "stdout", streams[1])
            m.setattr(sys, "stderr", streams[2])
            try:
                code = main(list(argv))
            except SystemExit as exc:  # argparse usage errors and --help
                code = int(exc.code or 0)
        out = streams[1].buffer.getvalue()  # type: ignore[attr-defined]
        err = streams[2].buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]
        return Result(code, out, err)

    yield run


@pytest.fixture
def aes_key(tmp_path: Path) -> Path:
    path = tmp_path / "aes.key"
    path.write_bytes(bytes(range(32)))
    return path


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    """``plain.txt`` holding `PLAIN`, in the directory the ``cli`` fixture runs in."""
    path = tmp_path / "plain.txt"
    path.write_bytes(PLAIN)
    return path


@pytest.fixture(scope="session")
def rsa_pems(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    directory = tmp_path_factory.mktemp("rsa")
    private = directory / "private.pem"
    public = directory / "public.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return public, private
