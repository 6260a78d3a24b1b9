"""The audit chain's hashes and its checkpoint: keyed chaining, the unkeyed schema-1 prefix, pruning.

Record ``seq`` has hash ``HMAC-SHA256(K, "{seq}\\n{previous hash}\\n{body}")`` where ``K`` is the
region's audit chain key, derived with HKDF from the root key when the chain was started (or
keyed, for a schema-1 log) and kept in the database sealed under the root key. Rotating the root
key re-seals ``K`` and leaves it unchanged, so hashes, checkpoints and anchors kept elsewhere stay
valid. Someone who can write the database but does not hold the root key cannot compute ``K``,
so cannot rewrite a record (or the checkpoint) consistently.

The checkpoint row (MACed under ``K``) records where keying began (records up to ``keyed_after``
were chained by plain SHA-256 before schema 2) and what was pruned (the last pruned sequence
number and its hash, the number pruned): the remaining chain starts from it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from ..model.sql import Connection

__all__ = ["CHECKPOINT_SCHEMA", "GENESIS_HASH", "Checkpoint", "chain_hash", "read_checkpoint",
           "start_keyed_chain", "write_checkpoint"]

GENESIS_HASH = "0" * 64  # the "previous hash" of the first record

CHECKPOINT_SCHEMA = """CREATE TABLE IF NOT EXISTS audit_checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    keyed_after INTEGER NOT NULL,
    keyed_hash TEXT NOT NULL,
    pruned_through INTEGER NOT NULL,
    pruned_hash TEXT NOT NULL,
    pruned_count INTEGER NOT NULL,
    pruned_at REAL,
    mac TEXT NOT NULL)"""


def chain_hash(key: bytes | None, seq: int, previous: str, body: str) -> str:
    """The hash of one record: HMAC-SHA256 under ``key``, or SHA-256 (``key=None``: unkeyed)."""
    data = f"{seq}\n{previous}\n{body}".encode()
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.digest(key, data, "sha256").hex()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where the keyed chain begins and what was pruned (see the module docstring)."""

    keyed_after: int
    keyed_hash: str
    pruned_through: int = 0
    pruned_hash: str = GENESIS_HASH
    pruned_count: int = 0
    pruned_at: float | None = None

    def mac(self, key: bytes) -> str:
        text = (f"envelope-audit-checkpoint-v1\n{self.keyed_after}\n{self.keyed_hash}\n{self.pruned_through}\n"
                f"{self.pruned_hash}\n{self.pruned_count}\n{self.pruned_at!r}")
        return hmac.digest(key, text.encode(), "sha256").hex()

    def hash_key(self, key: bytes, seq: int) -> bytes | None:
        """The key that chains record ``seq`` (None: a schema-1 record, plain SHA-256)."""
        return None if seq <= self.keyed_after else key


def read_checkpoint(conn: Connection, key: bytes) -> Checkpoint | None:
    """The checkpoint, or None if it is missing or its MAC does not match (a damaged log)."""
    row = conn.execute("SELECT keyed_after, keyed_hash, pruned_through, pruned_hash, pruned_count, pruned_at, "
                       "mac FROM audit_checkpoint WHERE id = 1").fetchone()
    if row is None:
        return None
    found = Checkpoint(int(row[0]), str(row[1]), int(row[2]), str(row[3]), int(row[4]),
                       None if row[5] is None else float(row[5]))
    return found if hmac.compare_digest(found.mac(key), str(row[6])) else None


def write_checkpoint(conn: Connection, key: bytes, checkpoint: Checkpoint) -> None:
    """Store the checkpoint (inside the caller's write transaction)."""
    conn.execute("INSERT OR REPLACE INTO audit_checkpoint VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
                 (checkpoint.keyed_after, checkpoint.keyed_hash, checkpoint.pruned_through, checkpoint.pruned_hash,
                  checkpoint.pruned_count, checkpoint.pruned_at, checkpoint.mac(key)))


def start_keyed_chain(conn: Connection, key: bytes) -> None:
    """Key the chain from its current head on (a new log: from the start), in the caller's transaction.

    Records already there (a schema-1 log) stay chained by SHA-256; the checkpoint MACs their
    head, so they cannot be rewritten either without the root key.
    """
    conn.execute(CHECKPOINT_SCHEMA)
    row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    seq, digest = (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))
    write_checkpoint(conn, key, Checkpoint(seq, digest))
