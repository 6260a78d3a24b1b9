"""Fixtures for the KMS endpoint tests: a served data directory (a real `kms serve` subprocess)."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("uvicorn")

REGION = "us-east-1"
_READY = re.compile(r"listening on (\S+)")


@dataclass
class Endpoint:
    """A running `envelope kms serve` and an access key of its account root."""

    url: str
    data_dir: Path
    access_key_id: str
    secret: str
    log_path: Path
    proc: subprocess.Popen[str]

    def client(self, service: str = "kms", *, access_key_id: str | None = None, secret: str | None = None,
               region: str = REGION, **config: Any) -> Any:
        from botocore.config import Config  # type: ignore[import-untyped]

        return boto3.client(service, endpoint_url=self.url, region_name=region,
                            aws_access_key_id=access_key_id or self.access_key_id,
                            aws_secret_access_key=secret or self.secret,
                            config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config))

    def cli_env(self) -> dict[str, str]:
        """Environment for the aws CLI: only this endpoint's credentials, no user configuration."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ENVELOPE_"))}
        env.update(AWS_ACCESS_KEY_ID=self.access_key_id, AWS_SECRET_ACCESS_KEY=self.secret,
                   AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE=os.devnull,
                   AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_PAGER="", AWS_EC2_METADATA_DISABLED="true")
        return env

    def access_log(self) -> list[dict[str, Any]]:
        import json

        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ENVELOPE_"))}
    return env


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m envelope_cli.kms_serve ARGS` (the commands this package adds to `envelope kms`)."""
    return subprocess.run([sys.executable, "-m", "envelope_cli.kms_serve", *args], capture_output=True,
                          text=True, timeout=timeout, env=_clean_env(), check=False)


def start_server(data_dir: Path, log_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """Start `kms serve --port 0` and wait for its "listening on URL" line (30 s at most)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "envelope_cli.kms_serve", "serve", "--port", "0", "--data-dir", str(data_dir),
         "--access-log", str(log_path), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_clean_env())
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            match = _READY.search(line)
            if match:
                return proc, match.group(1)
        if proc.poll() is not None:
            break
    stop_server(proc)
    raise RuntimeError(f"kms serve did not start: {proc.stderr.read() if proc.stderr else ''}")


def stop_server(proc: subprocess.Popen[str], timeout: float = 15) -> int:
    """SIGTERM (graceful shutdown), then SIGKILL if it has not exited within ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return proc.returncode


@pytest.fixture(scope="package")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    import json

    data_dir = tmp_path_factory.mktemp("kms-data")
    created = run_cli("create-access-key", "--data-dir", str(data_dir))
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)["AccessKey"]
    log_path = data_dir / "access.log"
    proc, url = start_server(data_dir, log_path)
    try:
        yield Endpoint(url, data_dir, key["AccessKeyId"], key["SecretAccessKey"], log_path, proc)
    finally:
        stop_server(proc)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    # Never touch the user's data directory, root key or AWS configuration.
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("ENVELOPE_KMS_ROOT_KEY", raising=False)
    monkeypatch.setenv("ENVELOPE_DATA_DIR", str(tmp_path / "default-data"))
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield


@pytest.fixture
def spawn() -> Any:
    """Start extra `kms serve` processes; each is stopped at teardown if the test did not stop it."""
    started: list[subprocess.Popen[str]] = []

    def _spawn(data_dir: Path, log_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
        proc, url = start_server(data_dir, log_path, *extra)
        started.append(proc)
        return proc, url

    _spawn.stop = stop_server  # type: ignore[attr-defined]
    yield _spawn
    for proc in started:
        stop_server(proc)
