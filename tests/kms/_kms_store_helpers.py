"""Helpers shared by the key-store operator tests: stores from the SQL-dump fixtures, and checks."""

from __future__ import annotations

import base64
import gc
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from envelope.kms import LocalKMS

FIXTURES = Path(__file__).parent / "fixtures"


def store_from_fixture(version: int, directory: Path) -> dict[str, Any]:
    """Build the store ``fixtures/store_v{version}`` in ``directory``; return its messages.json."""
    source = FIXTURES / f"store_v{version}"
    directory.mkdir(parents=True)
    for dump in sorted(source.glob("*.sql")):
        conn = sqlite3.connect(directory / f"{dump.stem}.sqlite3")
        conn.executescript(dump.read_text())
        conn.close()
        (directory / f"{dump.stem}.sqlite3").chmod(0o600)
    shutil.copyfile(source / "kms-root.key", directory / "kms-root.key")
    (directory / "kms-root.key").chmod(0o600)
    found: dict[str, Any] = json.loads((source / "messages.json").read_text())
    return found


def check_messages(directory: Path, messages: list[dict[str, Any]]) -> None:
    """Every message decrypts to its plaintext, and every region's audit log verifies."""
    regions = {m["region"] for m in messages}
    for region in regions:
        kms = LocalKMS(directory, region=region)
        for message in (m for m in messages if m["region"] == region):
            out = kms.decrypt(CiphertextBlob=base64.b64decode(message["ciphertext"]),
                              EncryptionContext=message["context"])
            assert out["Plaintext"] == message["plaintext"].encode()
        verdict = kms.audit.verify()
        assert verdict.ok, verdict
    release()


def release() -> None:
    """Drop this process's clients of every store (and their shared locks)."""
    gc.collect()
