"""A key's whole life with `envelope kms` commands only, written as an `aws kms` tutorial would be."""

from __future__ import annotations

import base64
import json
from pathlib import Path

APP = "arn:aws:iam::111122223333:role/App"


def test_key_lifecycle_tutorial(cli, tmp_path: Path) -> None:
    def kms(*argv: str, code: int = 0) -> str:
        r = cli("kms", *argv)
        assert r.code == code, (argv, r.err)
        return str(r.text)

    def value(*argv: str) -> str:
        return kms(*argv, "--output", "text").strip()

    # 1. create a key and give it a friendly name
    key_id = value("create-key", "--description", "tutorial key", "--tags", "TagKey=team,TagValue=blue",
                   "--query", "KeyMetadata.KeyId")
    kms("create-alias", "--alias-name", "alias/tutorial", "--target-key-id", key_id)
    assert value("describe-key", "--key-id", "alias/tutorial", "--query", "KeyMetadata.KeyState") == "Enabled"
    assert value("list-resource-tags", "--key-id", key_id, "--query", "Tags[0].TagValue") == "blue"

    # 2. encrypt a small secret with an encryption context; decrypt it back (no key id needed)
    Path("secret.txt").write_bytes(b"my database password")
    blob = value("encrypt", "--key-id", "alias/tutorial", "--plaintext", "fileb://secret.txt",
                 "--encryption-context", "app=tutorial,stage=test", "--query", "CiphertextBlob")
    Path("secret.enc").write_bytes(base64.b64decode(blob))
    plain = value("decrypt", "--ciphertext-blob", "fileb://secret.enc",
                  "--encryption-context", "app=tutorial,stage=test", "--query", "Plaintext")
    assert base64.b64decode(plain) == b"my database password"
    r = cli("kms", "decrypt", "--ciphertext-blob", "fileb://secret.enc")  # context missing
    assert r.code == 254  # the service returned an error (aws CLI return codes)
    assert "An error occurred (InvalidCiphertextException) when calling the Decrypt operation" in r.err

    # 3. data keys for envelope encryption
    gdk = json.loads(kms("generate-data-key", "--key-id", "alias/tutorial", "--key-spec", "AES_256"))
    assert len(base64.b64decode(gdk["Plaintext"])) == 32
    Path("dk.enc").write_bytes(base64.b64decode(gdk["CiphertextBlob"]))
    again = json.loads(kms("decrypt", "--ciphertext-blob", "fileb://dk.enc"))
    assert again["Plaintext"] == gdk["Plaintext"]

    # 4. re-encrypt under a second key without seeing the plaintext
    second = value("create-key", "--query", "KeyMetadata.Arn")
    moved = json.loads(kms("re-encrypt", "--ciphertext-blob", "fileb://secret.enc", "--source-encryption-context",
                           "app=tutorial,stage=test", "--destination-key-id", second,
                           "--destination-encryption-context", '{"app": "moved"}'))
    assert moved["KeyId"] == second
    Path("moved.enc").write_bytes(base64.b64decode(moved["CiphertextBlob"]))
    out = json.loads(kms("decrypt", "--ciphertext-blob", "fileb://moved.enc", "--encryption-context", "app=moved"))
    assert base64.b64decode(out["Plaintext"]) == b"my database password"

    # 5. rotation: automatic and on demand; old ciphertexts still decrypt
    kms("enable-key-rotation", "--key-id", key_id, "--rotation-period-in-days", "180")
    status = json.loads(kms("get-key-rotation-status", "--key-id", key_id))
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 180
    kms("rotate-key-on-demand", "--key-id", key_id)
    assert len(json.loads(kms("list-key-rotations", "--key-id", key_id))["Rotations"]) == 1
    kms("decrypt", "--ciphertext-blob", "fileb://secret.enc", "--encryption-context", "app=tutorial,stage=test")

    # 6. key policy from a file
    policy = json.loads(value("get-key-policy", "--key-id", key_id, "--policy-name", "default", "--query", "Policy"))
    policy["Statement"].append({"Sid": "AllowApp", "Effect": "Allow", "Principal": {"AWS": APP},
                                "Action": ["kms:Encrypt", "kms:DescribeKey"], "Resource": "*"})
    Path("policy.json").write_text(json.dumps(policy))
    kms("put-key-policy", "--key-id", key_id, "--policy-name", "default", "--policy", "file://policy.json")
    stored = json.loads(value("get-key-policy", "--key-id", key_id, "--query", "Policy"))
    assert [s.get("Sid") for s in stored["Statement"]][-1] == "AllowApp"
    r = cli("kms", "encrypt", "--key-id", key_id, "--plaintext", "aGk=", "--principal", APP)
    assert r.code == 0, r.err
    r = cli("kms", "decrypt", "--ciphertext-blob", "fileb://dk.enc", "--principal", APP)
    assert r.code == 254 and "AccessDeniedException" in r.err

    # 7. grants with an encryption-context constraint
    grant = json.loads(kms("create-grant", "--key-id", key_id, "--grantee-principal", APP, "--operations",
                           "Decrypt", "--constraints", "EncryptionContextSubset={app=tutorial}"))
    grants = json.loads(kms("list-grants", "--key-id", key_id))["Grants"]
    assert [g["GrantId"] for g in grants] == [grant["GrantId"]]
    r = cli("kms", "decrypt", "--ciphertext-blob", "fileb://secret.enc", "--encryption-context",
            "app=tutorial,stage=test", "--principal", APP)
    assert r.code == 0, r.err
    kms("revoke-grant", "--key-id", key_id, "--grant-id", grant["GrantId"])
    assert json.loads(kms("list-grants", "--key-id", key_id))["Grants"] == []

    # 8. disable and enable (DisableKey and EnableKey take a key ID or key ARN, not an alias:
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_DisableKey.html)
    r = cli("kms", "disable-key", "--key-id", "alias/tutorial")
    assert r.code == 254 and "(NotFoundException)" in r.err and "Invalid keyId alias/tutorial" in r.err
    assert f"hint: alias/tutorial is an alias of key {key_id}" in r.err
    kms("disable-key", "--key-id", key_id)
    r = cli("kms", "encrypt", "--key-id", "alias/tutorial", "--plaintext", "aGk=")
    assert r.code == 254 and "(DisabledException)" in r.err
    kms("enable-key", "--key-id", key_id)

    # 9. schedule deletion, change our mind
    deletion = json.loads(kms("schedule-key-deletion", "--key-id", key_id, "--pending-window-in-days", "7"))
    assert deletion["KeyState"] == "PendingDeletion"
    kms("cancel-key-deletion", "--key-id", key_id)
    assert value("describe-key", "--key-id", key_id, "--query", "KeyMetadata.KeyState") == "Disabled"

    # 10. every call above is in the audit log, and the log verifies
    decrypts = json.loads(kms("audit", "lookup", "--event-name", "Decrypt", "--key-id", key_id))["Events"]
    assert decrypts and all(e["eventName"] == "Decrypt" for e in decrypts)
    assert any(e.get("errorCode") == "AccessDeniedException" for e in decrypts)
    assert json.loads(kms("audit", "verify"))["Valid"] is True

    # 11. and the CLI knows who it is
    ident = json.loads(cli("sts", "get-caller-identity").out)
    assert ident["Arn"] == "arn:aws:iam::111122223333:root" and ident["Account"] == "111122223333"
