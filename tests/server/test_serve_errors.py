"""`envelope kms serve` failures name what failed (the address, the certificate file) and come
before the endpoint announces itself."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")
from envelope_cli.main import main  # after the skip: serve needs the serve extra


def _serve(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["kms", "serve", "--data-dir", str(tmp_path / "data"), "--access-log", "off", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_port_in_use_names_the_address(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, out, err = _serve(capsys, tmp_path, "--port", str(port))
    assert code == 255  # the aws CLI's "command failed" (envelope kms exits as aws does)
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in err
    assert "listening" not in out


@pytest.mark.parametrize("which", ["certfile", "keyfile"])
def test_missing_tls_file_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path, which: str) -> None:
    present = tmp_path / "present.pem"
    present.write_text("not used")
    missing = tmp_path / "missing.pem"
    files = {"certfile": present, "keyfile": present, which: missing}
    code, out, err = _serve(capsys, tmp_path, "--port", "0", "--certfile", str(files["certfile"]),
                            "--keyfile", str(files["keyfile"]))
    what = "certificate" if which == "certfile" else "key"
    assert code == 255  # the aws CLI's "command failed" (envelope kms exits as aws does)
    assert f"cannot read the TLS {what} file {missing}: No such file or directory" in err
    assert "listening" not in out


def test_unloadable_certificate_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    code, out, err = _serve(capsys, tmp_path, "--port", "0", "--certfile", str(junk), "--keyfile", str(junk))
    assert code == 252  # a usage error, as the aws CLI numbers it
    assert f"the TLS certificate file {junk} and key file {junk} do not load" in err
    assert "listening" not in out
