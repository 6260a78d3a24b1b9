"""The real aws CLI (awscli from PyPI) against `kms serve`: a tutorial-style sequence."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .conftest import Endpoint

pytest.importorskip("awscli")


def aws(endpoint: Endpoint, *args: str, expect_ok: bool = True) -> Any:
    proc = subprocess.run([sys.executable, "-m", "awscli", *args, "--endpoint-url", endpoint.url,
                           "--output", "json"], capture_output=True, text=True, env=endpoint.cli_env(),
                          timeout=60, check=False)
    if not expect_ok:
        assert proc.returncode != 0, proc.stdout
        return proc.stderr
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def test_tutorial_sequence(endpoint: Endpoint, tmp_path: Path) -> None:
    identity = aws(endpoint, "sts", "get-caller-identity")
    assert identity["Arn"] == "arn:aws:iam::111122223333:root" and identity["Account"] == "111122223333"

    key = aws(endpoint, "kms", "create-key", "--description", "tutorial key")["KeyMetadata"]
    assert key["KeyState"] == "Enabled"
    aws(endpoint, "kms", "create-alias", "--alias-name", "alias/tutorial", "--target-key-id", key["KeyId"])

    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"the launch code is 0000\n")
    encrypted = aws(endpoint, "kms", "encrypt", "--key-id", "alias/tutorial", "--plaintext", f"fileb://{secret}",
                    "--encryption-context", "project=apollo,stage=test")
    assert encrypted["KeyId"] == key["Arn"]
    blob = tmp_path / "secret.enc"
    blob.write_bytes(base64.b64decode(encrypted["CiphertextBlob"]))

    decrypted = aws(endpoint, "kms", "decrypt", "--ciphertext-blob", f"fileb://{blob}",
                    "--encryption-context", "project=apollo,stage=test")
    assert base64.b64decode(decrypted["Plaintext"]) == secret.read_bytes()
    assert decrypted["KeyId"] == key["Arn"]

    wrong = aws(endpoint, "kms", "decrypt", "--ciphertext-blob", f"fileb://{blob}",
                "--encryption-context", "project=apollo,stage=prod", expect_ok=False)
    assert "InvalidCiphertextException" in wrong

    scheduled = aws(endpoint, "kms", "schedule-key-deletion", "--key-id", key["KeyId"],
                    "--pending-window-in-days", "7")
    assert scheduled["KeyState"] == "PendingDeletion" and scheduled["PendingWindowInDays"] == 7
    # awscli v1's default timestamp format is "none": the epoch seconds the service sent.
    assert 6.9 * 86400 < scheduled["DeletionDate"] - time.time() < 7.1 * 86400
    described = aws(endpoint, "kms", "describe-key", "--key-id", "alias/tutorial")["KeyMetadata"]
    assert described["KeyState"] == "PendingDeletion"
    refused = aws(endpoint, "kms", "encrypt", "--key-id", "alias/tutorial", "--plaintext", f"fileb://{secret}",
                  expect_ok=False)
    assert "KMSInvalidStateException" in refused


def test_cli_with_a_wrong_secret_is_refused(endpoint: Endpoint) -> None:
    env = endpoint.cli_env()
    env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
    proc = subprocess.run([sys.executable, "-m", "awscli", "kms", "list-keys", "--endpoint-url", endpoint.url],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode != 0 and "InvalidSignatureException" in proc.stderr
