"""`envelope kms migrate` and `envelope kms copy-store`: the PostgreSQL store's schema and the move
of an embedded (SQLite) store into it; `--database`, accepted by every `envelope kms` command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["DATABASE_HELP", "DatabaseOption", "add_commands"]

DATABASE_ENV = "ENVELOPE_KMS_DATABASE"  # envelope.kms.store.backend.DATABASE_ENV (not imported: startup time)
DATABASE_HELP = ("a postgresql:// URL: the store several `kms serve` instances share "
                 f"(default: ${DATABASE_ENV}; unset: the SQLite files of the data directory)")
_DATA_DIR_HELP = "the KMS data directory, holding the root key (default: $ENVELOPE_DATA_DIR or ~/.local/share/envelope)"


class DatabaseOption(argparse.Action):
    """``--database URL``: sets ``$ENVELOPE_KMS_DATABASE`` for this process, so every client the
    command opens (LocalKMS, the endpoint's access keys) uses that store."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        value = str(values)
        if not value.startswith(("postgresql://", "postgres://")):
            parser.error(f"{option_string}: not a postgresql:// URL")
        os.environ[DATABASE_ENV] = value
        setattr(namespace, self.dest, value)


def _print(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=4) + "\n")
    sys.stdout.flush()


def _regions(args: argparse.Namespace) -> list[str]:
    return list(args.region or [os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"])


def _run_migrate(args: argparse.Namespace) -> int:
    from envelope.kms.server import AccessKeys
    from envelope.kms.store.backend import database_url
    from envelope.kms.store.partition import open_partition
    from envelope.kms.store.postgres import PostgresDatabase

    url = database_url(args.database)
    if url is None:
        print(f"envelope: error: migrate needs --database postgresql://... or ${DATABASE_ENV}", file=sys.stderr)
        return 2
    partition = open_partition(args.data_dir, url)
    names = sorted(set(partition.region_names()) | set(_regions(args)))
    versions: dict[str, int] = {}
    for name in names:
        db = partition.region(name).db
        assert isinstance(db, PostgresDatabase)
        versions[db.schema_name] = db.schema_version()
    assert isinstance(partition.iam, PostgresDatabase)
    versions[partition.iam.schema_name] = partition.iam.schema_version()
    AccessKeys(args.data_dir, url).close()
    _print({"Database": _redacted(url), "Schemas": versions})
    return 0


def _redacted(url: str) -> str:
    """The URL without a password (for output)."""
    head, sep, rest = url.partition("://")
    if "@" in rest:
        auth, _, host = rest.rpartition("@")
        rest = auth.split(":", 1)[0] + "@" + host
    return head + sep + rest


def _run_copy(args: argparse.Namespace) -> int:
    from envelope.kms.server import AccessKeys
    from envelope.kms.store.backend import database_url
    from envelope.kms.store.copy import copy_store
    from envelope.kms.store.partition import open_partition

    url = database_url(args.to)
    if url is None:  # pragma: no cover - argparse requires --to
        return 2
    os.environ.pop(DATABASE_ENV, None)  # the source is the embedded store whatever the environment says
    source = open_partition(args.data_dir)
    target = open_partition(args.data_dir, url)
    source_keys = AccessKeys(args.data_dir, None)
    target_keys = AccessKeys(args.data_dir, url)
    try:
        report = copy_store(source, target, (source_keys._db, target_keys._db), regions=args.region or None)
    finally:
        source_keys.close()
        target_keys.close()
    result = report.as_dict()
    result["To"] = _redacted(url)
    _print(result)
    return 0 if report.ok else 1


def add_commands(kms_subparsers: Any) -> None:
    """Register ``migrate`` and ``copy-store`` on the `envelope kms` sub-parsers."""
    migrate = kms_subparsers.add_parser(
        "migrate", help="create or upgrade the PostgreSQL store's schema (idempotent)",
        description="Create the schemas (one per region, plus kms_iam) of a PostgreSQL store, or upgrade "
                    "them to this version of envelope; safe to run while instances serve.")
    migrate.add_argument("--database", action=DatabaseOption, default=None, metavar="URL", help=DATABASE_HELP)
    migrate.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    migrate.add_argument("--region", action="append", default=None,
                         help="a region to create (repeatable; regions already present are upgraded)")
    migrate.set_defaults(run=_run_migrate)

    copy = kms_subparsers.add_parser(
        "copy-store", help="copy the embedded (SQLite) store into an empty PostgreSQL store and verify it",
        description="Copy keys, aliases, grants, tags, policies, the audit chain, principals and access keys "
                    "of the data directory's SQLite files into PostgreSQL, then verify counts, the audit "
                    "chain and every key's material. Stop the instances using the SQLite store first.")
    copy.add_argument("--to", required=True, action=DatabaseOption, metavar="URL",
                      help="the PostgreSQL store to fill (its schemas are created; they must hold no keys)")
    copy.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    copy.add_argument("--region", action="append", default=None,
                      help="copy only this region (repeatable; default: every region of the data directory)")
    copy.set_defaults(run=_run_copy)
