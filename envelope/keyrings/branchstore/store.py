"""BranchKeyStore: create, version and fetch branch keys protected by one KMS key (ESDK spec
branch-key-store.md). KMS is reached only through a boto3-shaped client.

Every KMS call binds the item's attributes as encryption context, so an item whose attributes were
altered in the table (another key id, version or custom context) no longer decrypts.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ...errors import KeyringError
from ..kms import _bytes_field, _call_kms, _check_client, _grant_token_tuple, mrk_match, parse_kms_arn
from .records import (
    ACTIVE,
    BEACON,
    VERSION_PREFIX,
    BeaconKeyMaterials,
    BranchKeyMaterials,
    Item,
    Table,
    custom_context,
    encryption_context,
    new_item,
    timestamp,
    version_of,
)

__all__ = ["BranchKeyStore", "BranchKeyStoreKMSClient"]

_BRANCH_KEY_LENGTH = 32
_KMS_METHODS = ("generate_data_key_without_plaintext", "re_encrypt", "decrypt")
_EMBEDDED_FILE = "branch-keys.sqlite3"


@runtime_checkable
class BranchKeyStoreKMSClient(Protocol):
    """The KMS methods a branch key store calls, with boto3's shapes (LocalKMS and boto3 fit)."""

    def generate_data_key_without_plaintext(self, **kwargs: Any) -> Mapping[str, Any]:
        ...

    def re_encrypt(self, **kwargs: Any) -> Mapping[str, Any]:
        ...

    def decrypt(self, **kwargs: Any) -> Mapping[str, Any]:
        ...


def _default_data_dir() -> Path:
    # The same rule as the embedded KMS's data directory (envelope.kms, which keyrings may not import).
    env = os.environ.get("ENVELOPE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "envelope"


class BranchKeyStore:
    """Branch keys and beacon keys in a table, wrapped by one KMS key.

    Build one with `BranchKeyStore.embedded` (a SQLite file in the data directory, no setup) or
    `BranchKeyStore.dynamodb` (the ESDK key store's table over any boto3 DynamoDB client). Both hold
    the ESDK's items, so keys made by the ESDK's KeyStore are usable here and the reverse.
    Plaintext branch keys are returned to the caller and never stored.
    """

    def __init__(self, table: Table, kms_key_id: str, *, kms_client: BranchKeyStoreKMSClient,
                 logical_key_store_name: str, grant_tokens: Sequence[str] = ()) -> None:
        if not isinstance(kms_key_id, str):
            raise TypeError("kms_key_id must be a str")
        arn = parse_kms_arn(kms_key_id)
        if arn is None or arn.resource_type != "key":
            raise ValueError("kms_key_id must be a KMS key ARN (the ESDK key store refuses aliases and bare ids)")
        if not isinstance(logical_key_store_name, str) or not logical_key_store_name:
            raise ValueError("logical_key_store_name must be a non-empty str")
        _check_client(kms_client, _KMS_METHODS)
        self.table = table
        self.kms_key_id = kms_key_id
        self.kms_client = kms_client
        self.logical_key_store_name = logical_key_store_name
        self.grant_tokens = _grant_token_tuple(grant_tokens)

    @classmethod
    def embedded(cls, kms_key_id: str, *, kms_client: BranchKeyStoreKMSClient, logical_key_store_name: str,
                 path: str | os.PathLike[str] | None = None, grant_tokens: Sequence[str] = ()) -> BranchKeyStore:
        """A store in a SQLite file: ``path``, else ``branch-keys.sqlite3`` in the KMS client's data
        directory (LocalKMS) or in ``$ENVELOPE_DATA_DIR`` (default ``~/.local/share/envelope``)."""
        from .sqlite import SQLiteTable

        if path is None:
            data_dir = getattr(kms_client, "data_dir", None)
            path = Path(data_dir if isinstance(data_dir, (str, os.PathLike)) else _default_data_dir()) / _EMBEDDED_FILE
        return cls(SQLiteTable(Path(path), logical_key_store_name), kms_key_id, kms_client=kms_client,
                   logical_key_store_name=logical_key_store_name, grant_tokens=grant_tokens)

    @classmethod
    def dynamodb(cls, table_name: str, kms_key_id: str, *, kms_client: BranchKeyStoreKMSClient, ddb_client: Any,
                 logical_key_store_name: str, grant_tokens: Sequence[str] = ()) -> BranchKeyStore:
        """The ESDK key store's DynamoDB table ``table_name`` through ``ddb_client`` (boto3's)."""
        from .dynamodb import DynamoDBTable

        return cls(DynamoDBTable(table_name, ddb_client), kms_key_id, kms_client=kms_client,
                   logical_key_store_name=logical_key_store_name, grant_tokens=grant_tokens)

    def __repr__(self) -> str:
        return f"BranchKeyStore({self.table.name!r}, {self.kms_key_id!r}, {self.logical_key_store_name!r})"

    # --- operations (spec "Operations") -------------------------------------------------------

    def create_key_store(self) -> str:
        """Create the table if it does not exist; return its ARN (DynamoDB) or file path (embedded)."""
        return self.table.create()

    def create_key(self, branch_key_id: str | None = None,
                   encryption_context: Mapping[str, str] | None = None) -> str:
        """Create a branch key (first version) and its beacon key; return the branch key id.

        :param branch_key_id: defaults to a new UUID; naming one requires ``encryption_context``.
        :param encryption_context: custom context bound to every version (``aws-crypto-ec:`` items).
        """
        if branch_key_id is not None and not encryption_context:
            raise ValueError("naming the branch key id requires an encryption_context (spec CreateKey)")
        if branch_key_id is not None and (not isinstance(branch_key_id, str) or not branch_key_id):
            raise ValueError("branch_key_id must be a non-empty str")
        custom = dict(encryption_context or {})
        if not all(isinstance(k, str) and isinstance(v, str) and k for k, v in custom.items()):
            raise TypeError("encryption_context keys and values must be non-empty str keys and str values")
        branch_key_id = branch_key_id or str(uuid.uuid4())
        created = timestamp()
        decrypt_only, active = self._wrap_new_version(branch_key_id, created, custom)
        beacon = new_item(branch_key_id, BEACON, self.kms_key_id, created, custom)
        beacon["enc"] = self._generate(beacon)
        self.table.put_new([decrypt_only, active, beacon])
        return branch_key_id

    def version_key(self, branch_key_id: str) -> str:
        """Rotate: make a new version the ACTIVE one (old versions still decrypt); return it."""
        old = self._read(branch_key_id, ACTIVE)
        context = encryption_context(old, self.logical_key_store_name)
        # spec "Authenticating a Keystore item": ReEncrypt under the item's own context proves it.
        _call_kms(self.kms_client, "re_encrypt", **self._with_tokens(
            SourceEncryptionContext=context, SourceKeyId=self.kms_key_id, CiphertextBlob=old["enc"],
            DestinationKeyId=self.kms_key_id, DestinationEncryptionContext=context))
        decrypt_only, active = self._wrap_new_version(branch_key_id, timestamp(), custom_context(context))
        old_enc = old["enc"]
        if not isinstance(old_enc, bytes):
            raise TypeError("envelope: internal error: enc checked as bytes")
        self.table.put_version(decrypt_only, active, old_enc)
        return version_of(encryption_context(active, self.logical_key_store_name))

    def get_active_branch_key(self, branch_key_id: str) -> BranchKeyMaterials:
        """The ACTIVE version of a branch key, decrypted by KMS."""
        return self._branch_materials(self._read(branch_key_id, ACTIVE))

    def get_branch_key_version(self, branch_key_id: str, version: str) -> BranchKeyMaterials:
        """One version of a branch key, decrypted by KMS."""
        if not isinstance(version, str) or not version:
            raise ValueError("version must be a non-empty str")
        return self._branch_materials(self._read(branch_key_id, VERSION_PREFIX + version))

    def get_beacon_key(self, branch_key_id: str) -> BeaconKeyMaterials:
        """The beacon key of a branch key, decrypted by KMS."""
        item = self._read(branch_key_id, BEACON)
        key, context = self._decrypt(item)
        return BeaconKeyMaterials(context["branch-key-id"], key, custom_context(context))

    # --- helpers ------------------------------------------------------------------------------------

    def _with_tokens(self, **kwargs: Any) -> dict[str, Any]:
        if self.grant_tokens:
            kwargs["GrantTokens"] = list(self.grant_tokens)
        return kwargs

    def _generate(self, item: Item) -> bytes:
        context = encryption_context({**item, "enc": b"-"}, self.logical_key_store_name)
        response = _call_kms(self.kms_client, "generate_data_key_without_plaintext", **self._with_tokens(
            KeyId=self.kms_key_id, NumberOfBytes=_BRANCH_KEY_LENGTH, EncryptionContext=context))
        return _bytes_field(response, "CiphertextBlob", "GenerateDataKeyWithoutPlaintext")

    def _wrap_new_version(self, branch_key_id: str, created: str,
                          custom: Mapping[str, str]) -> tuple[Item, Item]:
        """spec "Wrapped Branch Key Creation": GenerateDataKeyWithoutPlaintext under the
        DECRYPT_ONLY context, then ReEncrypt to the ACTIVE context (one key, two items)."""
        version = str(uuid.uuid4())
        decrypt_only = new_item(branch_key_id, VERSION_PREFIX + version, self.kms_key_id, created, custom)
        decrypt_only["enc"] = self._generate(decrypt_only)
        active = new_item(branch_key_id, ACTIVE, self.kms_key_id, created, custom, version=version)
        response = _call_kms(self.kms_client, "re_encrypt", **self._with_tokens(
            SourceEncryptionContext=encryption_context(decrypt_only, self.logical_key_store_name),
            SourceKeyId=self.kms_key_id, CiphertextBlob=decrypt_only["enc"], DestinationKeyId=self.kms_key_id,
            DestinationEncryptionContext=encryption_context({**active, "enc": b"-"}, self.logical_key_store_name)))
        active["enc"] = _bytes_field(response, "CiphertextBlob", "ReEncrypt")
        return decrypt_only, active

    def _read(self, branch_key_id: str, item_type: str) -> Item:
        if not isinstance(branch_key_id, str) or not branch_key_id:
            raise ValueError("branch_key_id must be a non-empty str")
        item = self.table.get(branch_key_id, item_type)
        if item is None:
            raise KeyringError(f"no item {item_type!r} for branch key {branch_key_id!r} in {self.table.name!r}")
        stored_arn = item.get("kms-arn")
        # spec "AWS KMS Branch Key Decryption": the item's kms-arn must be compatible with ours.
        if not isinstance(stored_arn, str) or not mrk_match(self.kms_key_id, stored_arn):
            raise KeyringError(f"branch key {branch_key_id!r} is protected by {stored_arn!r}, not by this "
                               f"store's KMS key {self.kms_key_id}")
        return item

    def _decrypt(self, item: Item) -> tuple[bytes, dict[str, str]]:
        context = encryption_context(item, self.logical_key_store_name)
        response = _call_kms(self.kms_client, "decrypt", **self._with_tokens(
            KeyId=self.kms_key_id, CiphertextBlob=item["enc"], EncryptionContext=context))
        key = _bytes_field(response, "Plaintext", "Decrypt")
        if len(key) != _BRANCH_KEY_LENGTH:
            raise KeyringError(f"Decrypt returned a {len(key)}-byte branch key, not {_BRANCH_KEY_LENGTH}")
        return key, context

    def _branch_materials(self, item: Item) -> BranchKeyMaterials:
        key, context = self._decrypt(item)
        return BranchKeyMaterials(context["branch-key-id"], version_of(context), key, custom_context(context))
