"""`envelope branch-key ...`: the branch key store operations (ESDK KeyStore names) on the embedded store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import envelope
from envelope.kms import LocalKMS


def _arn(cli: Any) -> str:
    result = cli("kms", "create-key", "--query", "KeyMetadata.Arn", "--output", "text")
    assert result.code == 0, result.err
    return str(result.text.strip())


def test_store_operations(cli: Any, data_dir: Path) -> None:
    arn = _arn(cli)
    common = ("--kms-key-id", arn, "--logical-key-store-name", "demo")
    created = cli("branch-key", "create-key-store", *common)
    assert created.code == 0 and json.loads(created.text) == {"TableArn": str(data_dir / "branch-keys.sqlite3")}
    made = cli("branch-key", "create-key", *common, "--branch-key-id", "tenant-a", "--encryption-context", "team=x")
    assert made.code == 0, made.err
    assert json.loads(made.text) == {"BranchKeyIdentifier": "tenant-a"}
    version = json.loads(cli("branch-key", "version-key", *common, "--branch-key-id", "tenant-a").text)
    active = json.loads(cli("branch-key", "get-active-branch-key", *common, "--branch-key-id", "tenant-a").text)
    assert active == {"BranchKeyIdentifier": "tenant-a", "BranchKeyVersion": version["BranchKeyVersion"],
                      "EncryptionContext": {"team": "x"}}
    one = cli("branch-key", "get-branch-key-version", *common, "--branch-key-id", "tenant-a",
              "--branch-key-version", version["BranchKeyVersion"])
    assert json.loads(one.text) == active
    beacon = json.loads(cli("branch-key", "get-beacon-key", *common, "--branch-key-id", "tenant-a").text)
    assert beacon == {"BeaconKeyIdentifier": "tenant-a", "EncryptionContext": {"team": "x"}}
    # the library sees the CLI's keys (same file, same KMS)
    store = envelope.BranchKeyStore.embedded(arn, kms_client=LocalKMS(), logical_key_store_name="demo")
    keyring = envelope.HierarchicalKeyring(store, branch_key_id="tenant-a")
    assert envelope.decrypt(envelope.encrypt(b"hi", keyring=keyring), keyring=keyring)[0] == b"hi"


def test_errors(cli: Any) -> None:
    arn = _arn(cli)
    common = ("--kms-key-id", arn, "--logical-key-store-name", "demo")
    named = cli("branch-key", "create-key", *common, "--branch-key-id", "x")
    assert named.code == 2 and "requires an encryption_context" in named.err
    missing = cli("branch-key", "get-beacon-key", *common, "--branch-key-id", "nope")
    assert missing.code != 0 and "no item 'beacon:ACTIVE'" in missing.err
    alias = cli("branch-key", "create-key", "--kms-key-id", "alias/x", "--logical-key-store-name", "demo")
    assert alias.code == 2 and "key ARN" in alias.err
