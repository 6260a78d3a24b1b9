"""`envelope kms backup`, `restore` and `rotate-root-key`: the key store's operator commands.

They work on a data directory (``--data-dir``, else ``$ENVELOPE_DATA_DIR``, else the per-user
default), not through the service's API: none of them is an AWS KMS operation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_commands", "data_dir"]

DATABASE_ENV = "ENVELOPE_KMS_DATABASE"  # envelope.kms.store.backend.DATABASE_ENV (not imported: startup time)
_DATA_DIR_HELP = "the KMS data directory (default: $ENVELOPE_DATA_DIR or ~/.local/share/envelope)"


def data_dir(args: argparse.Namespace) -> Path:
    """The data directory the command works on (resolved)."""
    from envelope.kms import default_data_dir

    given = getattr(args, "data_dir", None)
    return (Path(given) if given else default_data_dir()).expanduser().resolve()


def _print(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=4) + "\n")
    sys.stdout.flush()


_PG_HINTS = {
    "backup": "back up a PostgreSQL store with PostgreSQL's tools: pg_dump -Fc DBNAME > kms.dump (one consistent "
              "snapshot of every region's schema), and keep the root key apart",
    "restore": "restore a PostgreSQL store with pg_restore -d DBNAME kms.dump, then run `envelope kms migrate`",
    "rotate-root-key": "root-key rotation is implemented for the data directory's SQLite store only; a "
                       "PostgreSQL store stays sealed under its root key (the same on every instance)",
}


def refuse_postgres(command: str) -> None:
    """These commands work on a data directory's SQLite files; a PostgreSQL store is refused with a hint.

    :raises StoreError: ``--database`` / ``$ENVELOPE_KMS_DATABASE`` names a PostgreSQL store.
    """
    from envelope.kms import StoreError

    url = os.environ.get(DATABASE_ENV) or ""
    if url.startswith(("postgresql://", "postgres://")):
        raise StoreError(f"`envelope kms {command}` works on the SQLite files of a data directory, and the "
                         f"store here is PostgreSQL (--database or ${DATABASE_ENV}); nothing was done",
                         hint=_PG_HINTS[command])


def _run_backup(args: argparse.Namespace) -> int:
    from envelope.kms import backup

    refuse_postgres("backup")
    if args.include_root_key:
        print("envelope: warning: the backup includes the root key: whoever reads it can open every key "
              "in it; keep it apart from other backups, encrypted and access-controlled", file=sys.stderr)
    dest = Path(args.dest).expanduser().resolve()
    manifest = backup(data_dir(args), dest, include_root_key=args.include_root_key)
    _print({"Backup": str(dest), "Created": manifest["created"], "RootKeyId": manifest["root_key_id"],
            "RootKeyIncluded": manifest["root_key_included"], "Files": sorted(manifest["files"])})
    return 0


def _run_restore(args: argparse.Namespace) -> int:
    from envelope.kms import restore

    refuse_postgres("restore")
    source = Path(args.src).expanduser().resolve()
    manifest = restore(source, data_dir(args), force=args.force)
    _print({"Restored": str(source), "DataDir": str(data_dir(args)), "Created": manifest["created"],
            "RootKeyId": manifest["root_key_id"], "Files": sorted(manifest["files"])})
    return 0


def _run_rotate(args: argparse.Namespace) -> int:
    from envelope.kms import rotate_root_key

    refuse_postgres("rotate-root-key")
    key_id = rotate_root_key(data_dir(args))
    _print({"DataDir": str(data_dir(args)), "RootKeyId": key_id})
    return 0


def add_commands(kms_subparsers: Any) -> None:
    """Register ``backup``, ``restore`` and ``rotate-root-key`` on the `envelope kms` sub-parsers."""
    fmt = argparse.RawDescriptionHelpFormatter
    backup = kms_subparsers.add_parser(
        "backup", help="write a consistent snapshot of the key store to a new directory (safe while serving)",
        formatter_class=fmt,
        description="Copy every region, the principals, the access keys and the audit logs with SQLite's\n"
                    "online backup API, while a server may keep serving. The root key is left out unless\n"
                    "--include-root-key: keep it apart, a backup without it cannot be opened.\n"
                    "SQLite store only: a PostgreSQL store (--database) is backed up with pg_dump.")
    backup.add_argument("dest", metavar="DEST", help="the backup directory to create (must not exist)")
    backup.add_argument("--include-root-key", action="store_true",
                        help="also copy the root key into the backup (a warning is printed)")
    backup.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    backup.set_defaults(run=_run_backup)

    restore = kms_subparsers.add_parser(
        "restore", help="replace the key store with a backup (checked first; atomic)", formatter_class=fmt,
        description="Check the backup (checksums, PRAGMA integrity_check, schema version, root key, audit\n"
                    "chains) before anything changes, then put it in place all at once. The root key must be\n"
                    "in the backup, in the data directory, or in ENVELOPE_KMS_ROOT_KEY(_FILE). Stop any\n"
                    "server on the data directory first. SQLite store only (PostgreSQL: pg_restore).")
    restore.add_argument("src", metavar="SRC", help="a directory written by `envelope kms backup`")
    restore.add_argument("--force", action="store_true", help="replace an existing key store")
    restore.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    restore.set_defaults(run=_run_restore)

    rotate = kms_subparsers.add_parser(
        "rotate-root-key", help="re-seal every key and secret under a new root key (crash-safe)",
        formatter_class=fmt,
        description="Write a new root key beside the old one, re-seal each database under it (one\n"
                    "transaction each), then replace the old key file. A kill at any point is finished by\n"
                    "the next command or server start. Stop any server on the data directory first.\n"
                    "SQLite store only: refused for a PostgreSQL store (--database).")
    rotate.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    rotate.set_defaults(run=_run_rotate)
