"""The hierarchical keyring and the embedded branch key store over LocalKMS (in process).

ESDK spec: framework/aws-kms/aws-kms-hierarchical-keyring.md, framework/branch-key-store.md.
Byte compatibility with the MPL: tests/server/test_hierarchy_oracle.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode

import envelope
from envelope.errors import KeyringError, KMSError, NoMatchingKeyError
from envelope.format.header import EncryptedDataKey
from envelope.keyrings.base import Keyring
from envelope.keyrings.branchstore.records import encryption_context
from envelope.keyrings.hierarchy import derive_wrapping_key
from envelope.kms import LocalKMS

CONTEXT = {"tenant": "t-1"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def kms(tmp_path: Path) -> LocalKMS:
    return LocalKMS(tmp_path / "kms")


@pytest.fixture
def arn(kms: LocalKMS) -> str:
    return str(kms.create_key()["KeyMetadata"]["Arn"])


@pytest.fixture
def store(kms: LocalKMS, arn: str) -> envelope.BranchKeyStore:
    return envelope.BranchKeyStore.embedded(arn, kms_client=kms, logical_key_store_name="ks")


def _decrypt_calls(kms: LocalKMS) -> int:
    return len(kms.audit.lookup(event_name="Decrypt"))


def test_kdf_is_sp800_108_counter_hmac_sha256() -> None:
    # spec "Branch Key Wrapping": KDF in counter mode, HMAC-SHA256, label "aws-kms-hierarchy", salt as context.
    key, salt = bytes(range(32)), bytes(range(16, 32))
    reference = KBKDFHMAC(algorithm=hashes.SHA256(), mode=Mode.CounterMode, length=32, rlen=4, llen=4,
                          location=CounterLocation.BeforeFixed, label=b"aws-kms-hierarchy", context=salt,
                          fixed=None).derive(key)
    assert derive_wrapping_key(key, salt) == reference


def test_embedded_store_defaults_to_the_kms_data_dir(store: envelope.BranchKeyStore, kms: LocalKMS) -> None:
    assert store.create_key_store() == str(Path(str(kms.data_dir)) / "branch-keys.sqlite3")
    assert (Path(str(kms.data_dir)) / "branch-keys.sqlite3").stat().st_mode & 0o077 == 0


def test_store_items_and_kms_calls(store: envelope.BranchKeyStore, kms: LocalKMS, arn: str) -> None:
    branch_key_id = store.create_key()
    # spec "Wrapped Branch Key Creation": GenerateDataKeyWithoutPlaintext (branch, beacon) and ReEncrypt.
    assert len(kms.audit.lookup(event_name="GenerateDataKeyWithoutPlaintext")) == 2
    assert len(kms.audit.lookup(event_name="ReEncrypt")) == 1
    active = store.table.get(branch_key_id, "branch:ACTIVE")
    assert active is not None
    context = encryption_context(active, "ks")
    version = context["version"].removeprefix("branch:version:")
    assert context == {"branch-key-id": branch_key_id, "type": "branch:ACTIVE", "create-time": active["create-time"],
                       "kms-arn": arn, "hierarchy-version": "1", "version": "branch:version:" + version,
                       "tablename": "ks"}
    assert str(active["create-time"]).endswith("Z") and len(str(active["create-time"])) == 27
    assert store.table.get(branch_key_id, "branch:version:" + version) is not None
    assert store.table.get(branch_key_id, "beacon:ACTIVE") is not None
    materials = store.get_active_branch_key(branch_key_id)
    assert materials.version == version and len(materials.branch_key) == 32
    assert store.get_branch_key_version(branch_key_id, version).branch_key == materials.branch_key
    assert store.get_beacon_key(branch_key_id).beacon_key != materials.branch_key


def test_round_trip_and_rotation(store: envelope.BranchKeyStore) -> None:
    branch_key_id = store.create_key("acme", {"department": "admin"})
    keyring: Keyring = envelope.HierarchicalKeyring(store, branch_key_id=branch_key_id, ttl_seconds=600)
    old = envelope.encrypt(b"v1", keyring=keyring, encryption_context=CONTEXT)
    (edk,) = envelope.read_header(old).encrypted_data_keys
    assert (edk.provider_id, edk.provider_info, len(edk.ciphertext)) == ("aws-kms-hierarchy", b"acme", 92)
    new_version = store.version_key(branch_key_id)
    assert store.get_active_branch_key(branch_key_id).version == new_version
    assert store.get_active_branch_key(branch_key_id).encryption_context == {"department": "admin"}
    fresh = envelope.HierarchicalKeyring(store, branch_key_id=branch_key_id)
    new = envelope.encrypt(b"v2", keyring=fresh, encryption_context=CONTEXT)
    assert envelope.decrypt(old, keyring=fresh)[0] == b"v1"
    assert envelope.decrypt(new, keyring=keyring)[0] == b"v2"
    assert envelope.read_header(new).encrypted_data_keys[0].ciphertext[28:44] != edk.ciphertext[28:44]


def test_one_kms_call_per_ttl(store: envelope.BranchKeyStore, kms: LocalKMS) -> None:
    branch_key_id = store.create_key()
    clock = Clock()
    keyring = envelope.HierarchicalKeyring(store, branch_key_id=branch_key_id, ttl_seconds=600, _clock=clock)
    before = _decrypt_calls(kms)
    for _ in range(20):
        envelope.decrypt(envelope.encrypt(b"x", keyring=keyring, encryption_context=CONTEXT), keyring=keyring)
    assert _decrypt_calls(kms) - before == 1  # the ACTIVE key also serves decryption of its version
    clock.now += 600
    envelope.encrypt(b"x", keyring=keyring)
    assert _decrypt_calls(kms) - before == 1  # at the TTL, still valid (spec: now - created <= ttl)
    clock.now += 0.5
    envelope.encrypt(b"x", keyring=keyring)
    assert _decrypt_calls(kms) - before == 2


class TenantSupplier:
    def get_branch_key_id(self, encryption_context: Mapping[str, str]) -> str:
        return {"a": self.a, "b": self.b}[encryption_context["tenant"]]

    def __init__(self, a: str, b: str) -> None:
        self.a, self.b = a, b


def test_supplier_picks_the_tenants_branch_key(store: envelope.BranchKeyStore) -> None:
    supplier: envelope.BranchKeyIdSupplier = TenantSupplier(store.create_key(), store.create_key())
    keyring = envelope.HierarchicalKeyring(store, branch_key_id_supplier=supplier)
    for tenant, branch_key_id in (("a", supplier.a), ("b", supplier.b)):  # type: ignore[attr-defined]
        message = envelope.encrypt(tenant.encode(), keyring=keyring, encryption_context={"tenant": tenant})
        assert envelope.read_header(message).encrypted_data_keys[0].provider_info == branch_key_id.encode()
        assert envelope.decrypt(message, keyring=keyring)[0] == tenant.encode()
    only_a = envelope.HierarchicalKeyring(store, branch_key_id=supplier.a)  # type: ignore[attr-defined]
    message = envelope.encrypt(b"b", keyring=keyring, encryption_context={"tenant": "b"})
    with pytest.raises(NoMatchingKeyError):
        envelope.decrypt(message, keyring=only_a)
    with pytest.raises(KeyringError, match="supplier failed: KeyError"):
        envelope.encrypt(b"c", keyring=keyring, encryption_context={"tenant": "c"})


def test_wrong_context_or_tampered_edk_fails(store: envelope.BranchKeyStore) -> None:
    branch_key_id = store.create_key()
    keyring = envelope.HierarchicalKeyring(store, branch_key_id=branch_key_id)
    suite = envelope.AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
    materials = keyring.on_encrypt(envelope.EncryptionMaterials(suite, CONTEXT))
    (edk,) = materials.encrypted_data_keys
    request = envelope.DecryptionMaterials(suite, {"tenant": "t-2"})
    with pytest.raises(NoMatchingKeyError, match="did not authenticate"):
        keyring.on_decrypt(request, [edk])
    right = envelope.DecryptionMaterials(suite, CONTEXT)
    flipped = bytearray(edk.ciphertext)
    flipped[50] ^= 1
    with pytest.raises(NoMatchingKeyError, match="did not authenticate"):
        keyring.on_decrypt(right, [EncryptedDataKey(edk.provider_id, edk.provider_info, bytes(flipped))])
    with pytest.raises(NoMatchingKeyError, match="91 bytes"):
        keyring.on_decrypt(right, [EncryptedDataKey(edk.provider_id, edk.provider_info, edk.ciphertext[:-1])])
    unknown_version = edk.ciphertext[:28] + bytes(16) + edk.ciphertext[44:]
    with pytest.raises(NoMatchingKeyError, match="no item"):
        keyring.on_decrypt(right, [EncryptedDataKey(edk.provider_id, edk.provider_info, unknown_version)])
    assert keyring.on_decrypt(right, [edk]).plaintext_data_key == materials.plaintext_data_key


def test_tampered_item_does_not_decrypt(store: envelope.BranchKeyStore, tmp_path: Path) -> None:
    # spec "AWS KMS Branch Key Decryption": every attribute but enc is the KMS encryption context.
    branch_key_id = store.create_key("victim", {"owner": "alice"})
    db = sqlite3.connect(store.create_key_store())
    db.execute("UPDATE branch_keys SET attributes = replace(attributes, 'alice', 'mallory') "
               "WHERE branch_key_id = 'victim'")
    db.commit()
    db.close()
    with pytest.raises(KMSError) as caught:
        store.get_active_branch_key(branch_key_id)
    assert caught.value.code == "InvalidCiphertextException"


def test_store_is_bound_to_its_kms_key_and_name(kms: LocalKMS, arn: str, store: envelope.BranchKeyStore) -> None:
    branch_key_id = store.create_key()
    other_arn = str(kms.create_key()["KeyMetadata"]["Arn"])
    other = envelope.BranchKeyStore.embedded(other_arn, kms_client=kms, logical_key_store_name="ks")
    with pytest.raises(KeyringError, match="protected by"):
        other.get_active_branch_key(branch_key_id)
    renamed = envelope.BranchKeyStore(store.table, arn, kms_client=kms, logical_key_store_name="other")
    with pytest.raises(KMSError):  # the logical name is the context's tablename
        renamed.get_active_branch_key(branch_key_id)
    with pytest.raises(KeyringError, match="already exists"):
        store.create_key(branch_key_id, {"k": "v"})


def test_misuse(kms: LocalKMS, arn: str, store: envelope.BranchKeyStore) -> None:
    with pytest.raises(ValueError, match="key ARN"):
        envelope.BranchKeyStore.embedded("alias/x", kms_client=kms, logical_key_store_name="ks")
    with pytest.raises(TypeError, match="boto3 KMS method"):
        envelope.BranchKeyStore.embedded(arn, kms_client=object(), logical_key_store_name="ks")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="encryption_context"):
        store.create_key("named")
    with pytest.raises(ValueError, match="exactly one"):
        envelope.HierarchicalKeyring(store)
    with pytest.raises(ValueError, match="ttl_seconds"):
        envelope.HierarchicalKeyring(store, branch_key_id="x", ttl_seconds=0)
    with pytest.raises(KeyringError, match="no item"):
        store.version_key("missing")


def test_version_key_refuses_a_concurrent_change(store: envelope.BranchKeyStore) -> None:
    branch_key_id = store.create_key()
    active = store.table.get(branch_key_id, "branch:ACTIVE")
    assert active is not None
    store.version_key(branch_key_id)
    decrypt_only: dict[str, Any] = dict(active, type="branch:version:00000000-0000-4000-8000-000000000000")
    decrypt_only.pop("version")
    with pytest.raises(KeyringError, match="concurrently"):
        store.table.put_version(decrypt_only, active, bytes(active["enc"]))  # type: ignore[arg-type]


def test_cache_is_bounded(store: envelope.BranchKeyStore, kms: LocalKMS) -> None:
    supplier = TenantSupplier(store.create_key(), store.create_key())
    keyring = envelope.HierarchicalKeyring(store, branch_key_id_supplier=supplier, max_cache_entries=2)
    before = _decrypt_calls(kms)
    for tenant in "abab":  # each tenant's ACTIVE entry and version entry fill the two slots
        envelope.encrypt(b"x", keyring=keyring, encryption_context={"tenant": tenant})
    assert _decrypt_calls(kms) - before == 4
    roomy = envelope.HierarchicalKeyring(store, branch_key_id_supplier=supplier, max_cache_entries=4)
    before = _decrypt_calls(kms)
    for tenant in "abab":
        envelope.encrypt(b"x", keyring=roomy, encryption_context={"tenant": tenant})
    assert _decrypt_calls(kms) - before == 2
