"""Helpers: `envelope kms serve` processes over one PostgreSQL store, and boto3 clients for them."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]

from envelope.kms.server import AccessKeys


class Instance:
    """One `envelope kms serve` process (its own process: kill -9 kills only it)."""

    def __init__(self, data_dir: Path, database: str, regions: tuple[str, ...] = ("us-east-1",)) -> None:
        self.data_dir, self.database, self.regions = data_dir, database, regions
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.start()

    def start(self) -> None:
        command = [sys.executable, "-m", "envelope_cli.main", "kms", "serve", "--port", "0", "--data-dir",
                   str(self.data_dir), "--database", self.database, "--access-log", "off"]
        for region in self.regions:
            command += ["--region", region]
        env = dict(os.environ)
        env.pop("ENVELOPE_KMS_DATABASE", None)
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, env=env)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        line = b""
        while time.monotonic() < deadline and b"\n" not in line:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
        text = line.decode()
        if "listening on " not in text:
            self.kill()
            raise RuntimeError(f"the instance did not start: {text!r}")
        self.url = text.split("listening on ", 1)[1].split()[0]

    def kill(self) -> None:
        """kill -9, then reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def access_key(data_dir: Path, database: str) -> tuple[str, str]:
    keys = AccessKeys(data_dir, database)
    try:
        created = keys.create()["AccessKey"]
    finally:
        keys.close()
    return str(created["AccessKeyId"]), str(created["SecretAccessKey"])


def client(url: str, creds: tuple[str, str], *, attempts: int = 1, region: str = "us-east-1") -> Any:
    return boto3.client("kms", endpoint_url=url, region_name=region, aws_access_key_id=creds[0],
                        aws_secret_access_key=creds[1],
                        config=Config(retries={"max_attempts": attempts, "mode": "standard"},
                                      connect_timeout=5, read_timeout=30, max_pool_connections=20))
