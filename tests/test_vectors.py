"""Run vectors/manifest.json by its `expect:` field (age testkit style): one test id per vector.

Also: the manifest is well formed, the generator reproduces the deterministic vectors byte for
byte, and the ESDK package decrypts every positive vector we wrote.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from _esdk_helpers import ESDKRequiredContextCMM, esdk_aes_key, esdk_decrypt, esdk_multi, esdk_rsa_key

import envelope
from envelope import AlgorithmSuite

ROOT = Path(__file__).resolve().parent.parent / "vectors"
MANIFEST = json.loads((ROOT / "manifest.json").read_text(encoding="utf-8"))
VECTORS: list[dict[str, Any]] = MANIFEST["vectors"]
ERRORS: dict[str, type[envelope.EnvelopeError]] = {
    "FormatError": envelope.FormatError,
    "AuthenticationError": envelope.AuthenticationError,
    "NoMatchingKeyError": envelope.NoMatchingKeyError,
    "PolicyError": envelope.PolicyError,
}


def _keyring(desc: dict[str, Any]) -> envelope.Keyring:
    if desc["type"] == "raw-aes":
        return envelope.RawAESKeyring(desc["namespace"], desc["name"], bytes.fromhex(desc["key_hex"]))
    if desc["type"] == "raw-rsa":
        return envelope.RawRSAKeyring(desc["namespace"], desc["name"],
                                      private_key_pem=(ROOT / desc["private_key_file"]).read_bytes(),
                                      padding=desc["padding"])
    raise ValueError(f"unknown keyring type {desc['type']!r}")


def _esdk_key(desc: dict[str, Any]) -> Any:
    if desc["type"] == "raw-aes":
        return esdk_aes_key(desc["namespace"], desc["name"], bytes.fromhex(desc["key_hex"]))
    return esdk_rsa_key(desc["namespace"], desc["name"], (ROOT / desc["private_key_file"]).read_bytes(),
                        desc["padding"])


def _options(vector: dict[str, Any]) -> dict[str, Any]:
    keyrings = [_keyring(d) for d in vector["keyrings"]]
    options: dict[str, Any] = {
        "keyring": keyrings[0] if len(keyrings) == 1 else envelope.MultiKeyring(children=keyrings),
        "commitment_policy": vector["commitment_policy"],
    }
    if "decrypt_encryption_context" in vector:
        options["encryption_context"] = vector["decrypt_encryption_context"]
    if "max_encrypted_data_keys" in vector:
        options["max_encrypted_data_keys"] = vector["max_encrypted_data_keys"]
    return options


def _check_plaintext(vector: dict[str, Any], plaintext: bytes) -> None:
    expected = vector["plaintext"]
    if "hex" in expected:
        assert plaintext.hex() == expected["hex"]
    else:
        assert len(plaintext) == expected["length"]
        assert hashlib.sha256(plaintext).hexdigest() == expected["sha256"]


def _decrypt_oneshot(message: bytes, options: dict[str, Any]) -> tuple[bytes, envelope.Header]:
    return envelope.decrypt(message, **options)


def _decrypt_streamed(message: bytes, options: dict[str, Any]) -> tuple[bytes, envelope.Header]:
    # Odd-sized chunks so that frames, the header and the footer straddle reads.
    sink = io.BytesIO()
    chunks = (message[i:i + 1000] for i in range(0, len(message), 1000))
    header = envelope.decrypt_stream(chunks, sink, **options)
    return sink.getvalue(), header


DRIVERS = {"oneshot": _decrypt_oneshot, "stream": _decrypt_streamed}


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_vector(vector: dict[str, Any], driver: str) -> None:
    message = (ROOT / vector["message"]).read_bytes()
    decrypt = DRIVERS[driver]
    if vector["expect"] == "success":
        plaintext, header = decrypt(message, _options(vector))
        _check_plaintext(vector, plaintext)
        assert dict(header.encryption_context) == vector["header_encryption_context"]
        if "algorithm" in vector:
            assert header.algorithm is AlgorithmSuite[vector["algorithm"]]
        return
    with pytest.raises(ERRORS[vector["expect"]]):
        decrypt(message, _options(vector))


# -- the manifest itself ---------------------------------------------------------------------

def test_manifest_is_well_formed() -> None:
    ids = [v["id"] for v in VECTORS]
    assert len(ids) == len(set(ids))
    referenced = {v["message"] for v in VECTORS}
    on_disk = {f"messages/{p.name}" for p in (ROOT / "messages").glob("*.bin")}
    assert referenced == on_disk
    assert sum((ROOT / rel).stat().st_size for rel in on_disk) < 2 * 1024 * 1024
    for vector in VECTORS:
        assert vector["expect"] in ("success", *ERRORS), vector["id"]
        assert vector["commitment_policy"] in envelope.CommitmentPolicy.__members__, vector["id"]
        if vector["expect"] == "success":
            assert "plaintext" in vector and "header_encryption_context" in vector, vector["id"]
        else:
            assert vector["rule"].startswith("§10 item "), vector["id"]


def test_manifest_covers_every_suite_and_failure_kind() -> None:
    ours = {v["algorithm"] for v in VECTORS if v["expect"] == "success" and v["producer"] == "envelope"
            and "algorithm" in v}
    theirs = {v["algorithm"] for v in VECTORS if v["expect"] == "success" and v["producer"] != "envelope"
              and "algorithm" in v}
    assert ours == theirs == set(AlgorithmSuite.__members__)
    assert {v["expect"] for v in VECTORS} == {"success", *ERRORS}
    rules = {int(v["rule"].split()[-1]) for v in VECTORS if "rule" in v}
    # §10 item 12 (header limit) and 19 (envelope: extensions) are covered by other test files.
    assert rules >= set(range(1, 28)) - {12, 19}


def test_generator_reproduces_deterministic_vectors(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("envelope_vectors_generate", ROOT / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    shutil.copytree(ROOT / "keys", tmp_path / "keys")
    generate.Generator(tmp_path).run()
    fresh = {v["id"]: v for v in json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))["vectors"]}
    assert set(fresh) == {v["id"] for v in VECTORS}
    deterministic = [v for v in VECTORS if v["deterministic"]]
    assert len(deterministic) > len(VECTORS) // 3
    for vector in deterministic:
        assert fresh[vector["id"]] == vector
        assert (tmp_path / vector["message"]).read_bytes() == (ROOT / vector["message"]).read_bytes(), vector["id"]


# -- the reference peer reads what we wrote --------------------------------------------------

def _esdk_reachable(vector: dict[str, Any]) -> bool:
    return bool(vector["expect"] == "success" and vector["producer"] == "envelope")


ESDK_VECTORS = [v for v in VECTORS if _esdk_reachable(v)]


@pytest.mark.parametrize("vector", ESDK_VECTORS, ids=[v["id"] for v in ESDK_VECTORS])
def test_esdk_decrypts_our_positive_vectors(vector: dict[str, Any]) -> None:
    message = (ROOT / vector["message"]).read_bytes()
    keys = [_esdk_key(d) for d in vector["keyrings"]]
    provider = keys[0] if len(keys) == 1 else esdk_multi(keys)
    options: dict[str, Any] = {"max_encrypted_data_keys": vector.get("max_encrypted_data_keys")}
    if "decrypt_encryption_context" in vector:
        # Required-context messages: the ESDK checks them through its duck-typed CMM hook.
        options["materials_manager"] = ESDKRequiredContextCMM(provider, vector["decrypt_encryption_context"])
    else:
        options["key_provider"] = provider
    plaintext, context = esdk_decrypt(message, **options)
    _check_plaintext(vector, plaintext)
    assert context == vector["header_encryption_context"]


# ESDK 4.0.7's one-shot decrypt stops reading after the message and ignores what follows (§10 item
# 26 is ours, not its); every other negative vector must fail there too.
ESDK_IGNORES_TRAILING_DATA = {v["id"] for v in VECTORS if v["id"].startswith("fail-trailing-")}
# Decrypt-time context is an MPL-only feature of the ESDK, so those vectors are out of its reach.
ESDK_NEGATIVE = [v for v in VECTORS if v["expect"] != "success" and "decrypt_encryption_context" not in v]


@pytest.mark.parametrize("vector", ESDK_NEGATIVE, ids=[v["id"] for v in ESDK_NEGATIVE])
def test_esdk_rejects_our_negative_vectors(vector: dict[str, Any]) -> None:
    import aws_encryption_sdk
    from cryptography.exceptions import InvalidSignature, InvalidTag

    message = (ROOT / vector["message"]).read_bytes()
    options: dict[str, Any] = {"commitment_policy": aws_encryption_sdk.CommitmentPolicy[vector["commitment_policy"]]}
    if "max_encrypted_data_keys" in vector:
        options["max_encrypted_data_keys"] = vector["max_encrypted_data_keys"]
    client = aws_encryption_sdk.EncryptionSDKClient(**options)
    provider = _esdk_key(vector["keyrings"][0])
    if vector["id"] in ESDK_IGNORES_TRAILING_DATA:
        plaintext, _ = client.decrypt(source=message, key_provider=provider)
        assert len(plaintext) > 0
        return
    with pytest.raises((aws_encryption_sdk.exceptions.AWSEncryptionSDKClientError, InvalidTag, InvalidSignature)):
        client.decrypt(source=message, key_provider=provider)
