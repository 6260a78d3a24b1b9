"""`envelope kms backup/restore/rotate-root-key` and `audit export/prune` (issue 12 names), as separate runs."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str, env: dict[str, str], code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "envelope_cli.main", *argv], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=False)
    assert done.returncode == code, done.stderr
    return done


def test_operator_commands(tmp_path: Path, data_dir: Path) -> None:
    env = {**os.environ, "ENVELOPE_DATA_DIR": str(data_dir)}
    key_id = json.loads(_run("kms", "create-key", env=env).stdout)["KeyMetadata"]["KeyId"]
    blob = json.loads(_run("kms", "encrypt", "--key-id", key_id, "--plaintext", "c2VjcmV0", env=env).stdout)
    (tmp_path / "ct").write_bytes(base64.b64decode(blob["CiphertextBlob"]))

    out = _run("kms", "audit", "export", "--since", "2000-01-01T00:00:00Z", "--until", "2100-01-01T00:00:00Z",
               env=env).stdout
    assert [json.loads(line)["eventName"] for line in out.splitlines()] == ["CreateKey", "Encrypt"]
    assert _run("kms", "audit", "export", "--until", "2000-01-01T00:00:00Z", env=env).stdout == ""

    made = _run("kms", "backup", str(tmp_path / "bk"), env=env)
    assert json.loads(made.stdout)["RootKeyIncluded"] is False and "warning" not in made.stderr
    keyed = _run("kms", "backup", str(tmp_path / "bk-key"), "--include-root-key", env=env)
    assert "warning: the backup includes the root key" in keyed.stderr
    rotated = json.loads(_run("kms", "rotate-root-key", env=env).stdout)["RootKeyId"]
    assert json.loads(_run("kms", "audit", "verify", env=env).stdout)["Valid"] is True

    refused = _run("kms", "restore", str(tmp_path / "bk-key"), env=env, code=254)
    assert "already holds a key store" in refused.stderr and "--force" in refused.stderr
    # bk was made under the old root key, which the rotation replaced: refused, nothing changed.
    wrong = _run("kms", "restore", str(tmp_path / "bk"), "--force", env=env, code=254)
    assert "was sealed under root key id" in wrong.stderr
    restored = json.loads(_run("kms", "restore", str(tmp_path / "bk-key"), "--force", env=env).stdout)
    assert restored["RootKeyId"] != rotated
    plain = json.loads(_run("kms", "decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'ct'}", env=env).stdout)
    assert base64.b64decode(plain["Plaintext"]) == b"secret"

    pruned = json.loads(_run("kms", "audit", "prune", "--before", "2100-01-01T00:00:00Z", env=env).stdout)
    assert pruned["Pruned"] >= 2
    assert json.loads(_run("kms", "audit", "verify", env=env).stdout)["Valid"] is True
