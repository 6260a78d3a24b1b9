"""Access keys of the KMS endpoint: id -> sealed secret and principal, in ``access-keys.sqlite3``
(or, with a PostgreSQL store, in its ``kms_iam`` schema, shared by every instance).

Secrets are sealed with AES-256-GCM under a key derived from the data directory's KMS root key
(bound to the access key id); they are returned once, by `AccessKeys.create`, and never logged.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag

from ..engine.principals import validate_principal
from ..store.backend import Store, database_url
from ..store.database import Database
from ..store.datadir import ACCESS_KEYS_FILE
from ..store.migrations import ACCESS_KEYS_SCHEMA, prepare_access_keys
from ..store.opening import open_store
from ..store.partition import PG_IAM_SCHEMA_NAME, default_data_dir
from ..store.sealing import access_key_aead

__all__ = ["ACCESS_KEYS_FILE", "AccessKeys"]

DEFAULT_ACCOUNT = "111122223333"  # LocalKMS's default account
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_RECHECK_S = 1.0
# PostgreSQL: the access keys share kms_iam, whose change counter (bumped by a trigger) is what
# other instances' caches check.
_PG_COUNTER = ";INSERT OR IGNORE INTO meta (name, value) VALUES ('change_counter', 0)"


def _user_name(principal: str) -> str:
    resource = principal.split(":", 5)[5]
    return "root" if resource == "root" else resource.rsplit("/", 1)[-1]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AccessKeys:
    """The access keys registered with the endpoint of one data directory.

    :param data_dir: the KMS data directory; default the same one `LocalKMS` uses
        (``$ENVELOPE_DATA_DIR`` or the per-user data directory).
    :param database: a PostgreSQL URL (default ``$ENVELOPE_KMS_DATABASE``; None: the SQLite file).
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, database: str | None = None) -> None:
        directory = (Path(data_dir) if data_dir is not None else default_data_dir()).expanduser().resolve()
        self.path = directory / ACCESS_KEYS_FILE
        self._store_lock, root = open_store(directory)
        self._aead = access_key_aead(root.key)
        self._lock = threading.Lock()
        url = database_url(database)
        self._db: Store
        # Created (SQLite: 0600, WAL), checked against the root key and migrated by the store's rules.
        if url is None:
            self._db = Database(self.path, ACCESS_KEYS_SCHEMA, prepare_access_keys(root))
        else:
            from ..store.postgres import PostgresDatabase, region_schema

            self._db = PostgresDatabase(url.replace("{region}", PG_IAM_SCHEMA_NAME),
                                        region_schema(PG_IAM_SCHEMA_NAME), ACCESS_KEYS_SCHEMA + _PG_COUNTER,
                                        prepare_access_keys(root), counted_tables=("access_keys",))
        self._db.connect()
        self._cache: dict[str, tuple[str, str] | None] = {}
        self._version: int | None = None
        # SQLite's data_version is a cheap local read, checked on every lookup. PostgreSQL's change
        # counter costs a round trip, so it is checked at most once a second: another instance's
        # deletion or deactivation of a key takes effect here within a second (IAM access-key
        # changes are eventually consistent on AWS too).
        self._recheck_s = 0.0 if url is None else _RECHECK_S
        self._checked = -_RECHECK_S

    def close(self) -> None:
        """Close this thread's database connection."""
        with self._lock:
            self._db.close()
            self._store_lock.release()

    def create(self, principal: str | None = None) -> dict[str, Any]:
        """Register a new access key for ``principal`` (default the account root).

        :returns: IAM CreateAccessKey's shape: ``{"AccessKey": {"UserName", "AccessKeyId",
            "Status", "SecretAccessKey", "CreateDate"}}`` plus ``"PrincipalArn"``. The secret is
            shown only here.
        :raises ValueError: ``principal`` is not an IAM user, role, root or assumed-role ARN.
        """
        arn = validate_principal(principal) if principal is not None else f"arn:aws:iam::{DEFAULT_ACCOUNT}:root"
        access_key_id = "AKIA" + "".join(secrets.choice(_B32) for _ in range(16))
        secret = base64.b64encode(secrets.token_bytes(30)).decode()
        nonce = secrets.token_bytes(12)
        sealed = nonce + self._aead.encrypt(nonce, secret.encode(), access_key_id.encode())
        created = time.time()
        with self._lock, self._db.transaction() as conn:
            conn.execute("INSERT INTO access_keys VALUES (?, ?, ?, 'Active', ?)", (access_key_id, sealed, arn, created))
        return {"AccessKey": {"UserName": _user_name(arn), "AccessKeyId": access_key_id,
                              "Status": "Active", "SecretAccessKey": secret,
                              "CreateDate": _iso(created), "PrincipalArn": arn}}

    def list(self) -> dict[str, Any]:
        """IAM ListAccessKeys' shape (without secrets), plus each key's ``PrincipalArn``."""
        with self._lock:
            rows = self._db.connect().execute(
                "SELECT access_key_id, principal, status, created FROM access_keys ORDER BY created").fetchall()
        return {"AccessKeyMetadata": [
            {"UserName": _user_name(arn), "AccessKeyId": akid, "Status": status,
             "CreateDate": _iso(created), "PrincipalArn": arn} for akid, arn, status, created in rows]}

    def delete(self, access_key_id: str) -> None:
        """Remove an access key; requests signed with it fail from then on.

        :raises KeyError: no such access key.
        """
        with self._lock:
            with self._db.transaction() as conn:
                count = conn.execute("DELETE FROM access_keys WHERE access_key_id = ?", (access_key_id,)).rowcount
            self._cache.clear()  # data_version does not change for this connection's own writes
        if count == 0:
            raise KeyError(access_key_id)

    def update(self, access_key_id: str, status: str) -> None:
        """Set a key ``Active`` or ``Inactive`` (an inactive key authenticates nothing).

        :raises KeyError: no such access key.
        """
        if status not in ("Active", "Inactive"):
            raise ValueError("status must be 'Active' or 'Inactive'")
        with self._lock:
            with self._db.transaction() as conn:
                count = conn.execute("UPDATE access_keys SET status = ? WHERE access_key_id = ?",
                                     (status, access_key_id)).rowcount
            self._cache.clear()
        if count == 0:
            raise KeyError(access_key_id)

    def lookup(self, access_key_id: str) -> tuple[str, str] | None:
        """The secret and principal of an active key, else None (cached; sees other processes' changes).

        :raises RuntimeError: a sealed secret does not open (wrong root key or tampering).
        """
        with self._lock:
            # data_version changes when another connection commits: drop the cache then.
            now = time.monotonic()
            if now - self._checked >= self._recheck_s:
                self._checked = now
                version = self._db.data_version()
                if version != self._version:
                    self._cache.clear()
                    self._version = version
            if access_key_id in self._cache:
                return self._cache[access_key_id]
            row = self._db.connect().execute(
                "SELECT sealed_secret, principal, status FROM access_keys WHERE access_key_id = ?",
                (access_key_id,)).fetchone()
            found: tuple[str, str] | None = None
            if row is not None and row[2] == "Active":
                sealed = bytes(row[0])
                try:
                    secret = self._aead.decrypt(sealed[:12], sealed[12:], access_key_id.encode()).decode()
                except InvalidTag:
                    raise RuntimeError("envelope: internal error: an access key secret does not open "
                                       "(wrong root key?)") from None
                found = (secret, str(row[1]))
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[access_key_id] = found
            return found
