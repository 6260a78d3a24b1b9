"""Run vectors/manifest.json by its `expect:` field (age testkit style): one test id per vector.

Every entry runs through the sync one-shot and streaming decrypt and their envelope.aio mirrors
(asyncio and trio). Also: the manifest is well formed, matches format-spec/message.md §12 and covers
every §10 item with the error class §12.4 names; the generator reproduces the deterministic vectors
byte for byte; the ESDK package decrypts every positive vector we wrote and agrees with us on the
negative ones, apart from the rules it lacks.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from _esdk_helpers import ESDKRequiredContextCMM, esdk_aes_key, esdk_decrypt, esdk_multi, esdk_rsa_key

import envelope
import envelope.aio
from envelope import AlgorithmSuite

ROOT = Path(__file__).resolve().parent.parent / "vectors"
SPEC = ROOT.parent / "format-spec" / "message.md"
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


# Entry fields that are envelope.decrypt options of the same name (format-spec §12).
DECRYPT_OPTIONS = ("max_encrypted_data_keys", "max_header_length", "decompress", "max_decompressed_size")


def _rule(vector: dict[str, Any]) -> int:
    return int(vector["rule"].removeprefix("§10 item "))


def _options(vector: dict[str, Any]) -> dict[str, Any]:
    keyrings = [_keyring(d) for d in vector["keyrings"]]
    options: dict[str, Any] = {
        "keyring": keyrings[0] if len(keyrings) == 1 else envelope.MultiKeyring(children=keyrings),
        "commitment_policy": vector["commitment_policy"],
    }
    if "decrypt_encryption_context" in vector:
        options["encryption_context"] = vector["decrypt_encryption_context"]
    for name in DECRYPT_OPTIONS:
        if name in vector:
            options[name] = vector[name]
    return options


def _check_plaintext(vector: dict[str, Any], plaintext: bytes) -> None:
    expected = vector["plaintext"]
    if "hex" in expected:
        assert plaintext.hex() == expected["hex"]
    else:
        assert len(plaintext) == expected["length"]
        assert hashlib.sha256(plaintext).hexdigest() == expected["sha256"]


def _decrypt_oneshot(message: bytes, options: dict[str, Any], sink: io.BytesIO) -> envelope.Header:
    plaintext, header = envelope.decrypt(message, **options)
    sink.write(plaintext)
    return header


def _decrypt_streamed(message: bytes, options: dict[str, Any], sink: io.BytesIO) -> envelope.Header:
    # Odd-sized chunks so that frames, the header and the footer straddle reads.
    chunks = (message[i:i + 1000] for i in range(0, len(message), 1000))
    return envelope.decrypt_stream(chunks, sink, **options)


class _AsyncSink:
    def __init__(self, sink: io.BytesIO) -> None:
        self._sink = sink

    async def write(self, data: bytes) -> None:
        self._sink.write(data)


def _aio_driver(backend: str, streamed: bool) -> Callable[[bytes, dict[str, Any], io.BytesIO], envelope.Header]:
    """envelope.aio's one-shot or streaming decrypt, run on one anyio backend."""

    async def chunks(message: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(message), 1000):
            yield message[i:i + 1000]

    async def run(message: bytes, options: dict[str, Any], sink: io.BytesIO) -> envelope.Header:
        if streamed:
            return await envelope.aio.decrypt_stream(chunks(message), _AsyncSink(sink), **options)
        plaintext, header = await envelope.aio.decrypt(message, **options)
        sink.write(plaintext)
        return header

    return lambda message, options, sink: anyio.run(run, message, options, sink, backend=backend)


DRIVERS: dict[str, Callable[[bytes, dict[str, Any], io.BytesIO], envelope.Header]] = {
    "oneshot": _decrypt_oneshot,
    "stream": _decrypt_streamed,
    **{f"aio-{kind}-{backend}": _aio_driver(backend, kind == "stream")
       for backend in ("asyncio", "trio") for kind in ("oneshot", "stream")},
}


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_vector(vector: dict[str, Any], driver: str) -> None:
    message = (ROOT / vector["message"]).read_bytes()
    sink = io.BytesIO()
    if vector["expect"] == "success":
        header = DRIVERS[driver](message, _options(vector), sink)
        _check_plaintext(vector, sink.getvalue())
        assert dict(header.encryption_context) == vector["header_encryption_context"]
        if "algorithm" in vector:
            assert header.algorithm is AlgorithmSuite[vector["algorithm"]]
        return
    with pytest.raises(ERRORS[vector["expect"]]) as caught:
        DRIVERS[driver](message, _options(vector), sink)
    assert type(caught.value) is ERRORS[vector["expect"]]
    if _rule(vector) <= 19:
        # Items 1-19 are decided before the body is read, so not one byte may have been released
        # (the streamed driver may release verified frames before a later body failure, §10).
        assert sink.getvalue() == b""


# -- the manifest itself, against format-spec/message.md §10 and §12 ---------------------------

def _spec_section(number: str) -> str:
    text = SPEC.read_text(encoding="utf-8")
    start = re.search(rf"^#+ {re.escape(number)}\.? ", text, re.MULTILINE)
    assert start is not None, number
    end = re.search(r"^#+ ", text[start.end():], re.MULTILINE)
    return text[start.start():start.end() + end.start() if end else len(text)]


def _table_names(section: str) -> list[str]:
    """First-column `names` of the body rows (not the header row) of the Markdown tables in a section."""
    names: list[str] = []
    in_body = False
    for line in section.splitlines():
        in_body = line.startswith("|") and (in_body or line.startswith("| ---"))
        match = re.match(r"\| `([^`]+)` \|", line)
        if in_body and match:
            names.append(match.group(1))
    return names


SPEC_ENTRY_FIELDS = _table_names(_spec_section("12.2"))
SPEC_KEYRING_FIELDS = _table_names(_spec_section("12.3"))
SPEC_EXPECT = _table_names(_spec_section("12.4"))
SPEC_ITEMS = [int(n) for n in re.findall(r"^(\d+)\. ", _spec_section("10"), re.MULTILINE)]


def test_spec_describes_the_manifest_exactly() -> None:
    assert set(_table_names(_spec_section("12.1"))) == set(MANIFEST)
    assert MANIFEST["manifest"] == {"type": "envelope-message-vectors", "version": 2}
    used = {field for vector in VECTORS for field in vector}
    assert used == set(SPEC_ENTRY_FIELDS), "format-spec §12.2 and the manifest disagree on entry fields"
    assert set(DECRYPT_OPTIONS) < used
    keyring_fields = {f"{d['type']}.{field}" for v in VECTORS for d in v["keyrings"] for field in d}
    assert keyring_fields == set(SPEC_KEYRING_FIELDS), "format-spec §12.3 and the manifest disagree"
    assert SPEC_EXPECT == MANIFEST["expect_values"] == ["success", *ERRORS]


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
        assert vector.get("decompress", True) in (True, False), vector["id"]
        for name in ("max_encrypted_data_keys", "max_header_length", "max_decompressed_size"):
            assert isinstance(vector.get(name, 1), int) and vector.get(name, 1) > 0, vector["id"]
        if vector["expect"] == "success":
            assert "plaintext" in vector and "header_encryption_context" in vector and "rule" not in vector
        else:
            assert "plaintext" not in vector and "header_encryption_context" not in vector, vector["id"]
            assert vector["rule"] == f"§10 item {_rule(vector)}" and _rule(vector) in SPEC_ITEMS, vector["id"]


def _items(text: str) -> set[int]:
    """The §10 item numbers a §12.4 row lists, as in "(§10 items 1-6, 8, 28)"."""
    listed = re.search(r"\(§10 items? ([-\d, ]+)\)", text)
    assert listed is not None, text
    numbers: set[int] = set()
    for part in listed.group(1).split(","):
        low, _, high = part.strip().partition("-")
        numbers.update(range(int(low), int(high or low) + 1))
    return numbers


def test_each_rule_fails_with_the_class_the_spec_names() -> None:
    rows = {m.group(1): _items(m.group(2)) for m in re.finditer(r"^\| `(\w+Error)` \|(.*)\|$",
                                                              _spec_section("12.4"), re.MULTILINE)}
    assert set(rows) == set(ERRORS)
    assert set().union(*rows.values()) == set(SPEC_ITEMS)
    seen = {(_rule(v), v["expect"]) for v in VECTORS if "rule" in v}
    assert seen == {(item, name) for name, items in rows.items() for item in items}


def test_manifest_covers_every_suite_and_failure_kind() -> None:
    ours = {v["algorithm"] for v in VECTORS if v["expect"] == "success" and v["producer"] == "envelope"
            and "algorithm" in v}
    theirs = {v["algorithm"] for v in VECTORS if v["expect"] == "success" and v["producer"] != "envelope"
              and "algorithm" in v}
    assert ours == theirs == set(AlgorithmSuite.__members__)
    assert {v["expect"] for v in VECTORS} == {"success", *ERRORS}
    # "Adding a rule to §10 means adding at least one vector that breaks it" (§12).
    assert SPEC_ITEMS == list(range(1, len(SPEC_ITEMS) + 1)) and len(SPEC_ITEMS) >= 28
    assert {_rule(v) for v in VECTORS if "rule" in v} == set(SPEC_ITEMS)


def test_manifest_covers_compression_and_the_opt_out() -> None:
    compressed = [v for v in VECTORS if v["expect"] == "success"
                  and v["header_encryption_context"].get("envelope:compression") == "zstd"]
    assert {v["producer"] for v in compressed} == {"envelope", "aws-encryption-sdk 4.0.7"}
    assert any(v.get("decompress", True) for v in compressed)
    assert any(not v.get("decompress", True) for v in compressed)
    unknown = [v for v in VECTORS if v["expect"] == "success" and not v.get("decompress", True)
               and any(k.startswith("envelope:") and k != "envelope:compression"
                       for k in v["header_encryption_context"])]
    assert unknown, "no opt-out vector for an unknown envelope: key"


def test_generator_reproduces_deterministic_vectors(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("envelope_vectors_generate", ROOT / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    shutil.copytree(ROOT / "keys", tmp_path / "keys")
    generate.Generator(tmp_path).run()
    fresh_manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in fresh_manifest.items() if k != "vectors"} == \
        {k: v for k, v in MANIFEST.items() if k != "vectors"}
    fresh = {v["id"]: v for v in fresh_manifest["vectors"]}
    assert list(fresh) == [v["id"] for v in VECTORS]
    deterministic = [v for v in VECTORS if v["deterministic"]]
    assert len(deterministic) > len(VECTORS) // 3
    for vector in deterministic:
        assert fresh[vector["id"]] == vector
        assert (tmp_path / vector["message"]).read_bytes() == (ROOT / vector["message"]).read_bytes(), vector["id"]


# -- the reference peer against our vectors --------------------------------------------------

def _esdk_read(vector: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    message = (ROOT / vector["message"]).read_bytes()
    keys = [_esdk_key(d) for d in vector["keyrings"]]
    provider = keys[0] if len(keys) == 1 else esdk_multi(keys)
    options: dict[str, Any] = {"max_encrypted_data_keys": vector.get("max_encrypted_data_keys")}
    if "decrypt_encryption_context" in vector:
        # Required-context messages: the ESDK checks them through its duck-typed CMM hook.
        options["materials_manager"] = ESDKRequiredContextCMM(provider, vector["decrypt_encryption_context"])
    else:
        options["key_provider"] = provider
    return esdk_decrypt(message, **options)


def _ours_as_a_peer(vector: dict[str, Any]) -> bytes:
    """What we decrypt with the checks a peer lacks switched off: no header limit, no `envelope:`
    extension applied (the §8.1 opt-out)."""
    options = {k: v for k, v in _options(vector).items() if k not in ("max_header_length", "max_decompressed_size")}
    plaintext, _ = envelope.decrypt((ROOT / vector["message"]).read_bytes(), **options, decompress=False)
    return plaintext


ESDK_VECTORS = [v for v in VECTORS if v["expect"] == "success" and v["producer"] == "envelope"]


@pytest.mark.parametrize("vector", ESDK_VECTORS, ids=[v["id"] for v in ESDK_VECTORS])
def test_esdk_decrypts_our_positive_vectors(vector: dict[str, Any]) -> None:
    plaintext, context = _esdk_read(vector)
    assert context == vector["header_encryption_context"]
    if vector["header_encryption_context"].get("envelope:compression") and vector.get("decompress", True):
        # The peer ignores envelope:compression and returns the zstd bytes (§8.1, §8.2).
        assert plaintext[:4] == b"\x28\xb5\x2f\xfd"
        assert plaintext == _ours_as_a_peer(vector)
    else:
        _check_plaintext(vector, plaintext)


# Rules that ESDK 4.0.7 does not have: a header limit (item 12), `envelope:` extensions (items 19
# and 28), and trailing data (item 26: its one-shot decrypt stops reading after the message).
ESDK_LACKS = {12, 19, 26, 28}
# Decrypt-time context is an MPL-only feature of the ESDK, so those vectors are out of its reach.
ESDK_NEGATIVE = [v for v in VECTORS if v["expect"] != "success" and "decrypt_encryption_context" not in v]


@pytest.mark.parametrize("vector", ESDK_NEGATIVE, ids=[v["id"] for v in ESDK_NEGATIVE])
def test_esdk_agrees_on_our_negative_vectors(vector: dict[str, Any]) -> None:
    import aws_encryption_sdk  # type: ignore[import-untyped]
    from cryptography.exceptions import InvalidSignature, InvalidTag

    message = (ROOT / vector["message"]).read_bytes()
    options: dict[str, Any] = {"commitment_policy": aws_encryption_sdk.CommitmentPolicy[vector["commitment_policy"]]}
    if "max_encrypted_data_keys" in vector:
        options["max_encrypted_data_keys"] = vector["max_encrypted_data_keys"]
    client = aws_encryption_sdk.EncryptionSDKClient(**options)
    provider = _esdk_key(vector["keyrings"][0])
    if _rule(vector) == 26:
        plaintext, _ = client.decrypt(source=message, key_provider=provider)
        assert len(plaintext) > 0
    elif _rule(vector) in ESDK_LACKS:
        # The peer decrypts it, to exactly the bytes we release once our extra check is lifted.
        plaintext, _ = client.decrypt(source=message, key_provider=provider)
        assert bytes(plaintext) == _ours_as_a_peer(vector)
    else:
        with pytest.raises((aws_encryption_sdk.exceptions.AWSEncryptionSDKClientError, InvalidTag,
                            InvalidSignature)):
            client.decrypt(source=message, key_provider=provider)
