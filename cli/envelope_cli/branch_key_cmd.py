"""`envelope branch-key <operation>`: the hierarchical keyring's branch key store, operations named as the
ESDK's KeyStore names them (CreateKeyStore -> create-key-store, GetActiveBranchKey -> get-active-branch-key).

The store is the embedded one (a SQLite file in the data directory) unless --ddb-table-name names the
ESDK's DynamoDB table (boto3 with the usual AWS configuration). KMS is the one the global options
select (--kms, --endpoint-url, --profile, --region): the embedded service by default. The get-*
commands print a key's id, version and encryption context, never its plaintext.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import envelope

from .clients import kms_client, region_of
from .exits import CLIError, ExitCode
from .globalopts import GlobalOptions
from .output import FORMATS, emit

__all__ = ["add_parsers"]

EPILOG = """\
The embedded store lives in $ENVELOPE_DATA_DIR/branch-keys.sqlite3 (or --path); with --ddb-table-name it
is the ESDK's DynamoDB key store (--ddb-endpoint-url for a local DynamoDB). KMS: the embedded service,
or boto3 with --kms aws / --endpoint-url / --profile. Either way the items are the ESDK's, so its
KeyStore and `envelope` share branch keys.
"""

# operation -> its help (the ESDK KeyStore operation it mirrors)
_OPERATIONS: dict[str, str] = {
    "create-key-store": "create the key store's table (CreateKeyStore)",
    "create-key": "create a branch key and its beacon key; prints the branch key id (CreateKey)",
    "version-key": "rotate a branch key: a new ACTIVE version, old versions still decrypt (VersionKey)",
    "get-active-branch-key": "the ACTIVE version of a branch key (GetActiveBranchKey)",
    "get-branch-key-version": "one version of a branch key (GetBranchKeyVersion)",
    "get-beacon-key": "a branch key's beacon key (GetBeaconKey)",
}


def _context(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    context: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"not KEY=VALUE: {pair!r}", ExitCode.USAGE)
        context[key] = value
    return context


def add_parsers(subparsers: Any, epilog: str) -> None:
    full_epilog = EPILOG + "\n" + epilog
    group = subparsers.add_parser("branch-key", help="branch keys for the hierarchical keyring (the ESDK key store)",
                                  description=__doc__, epilog=full_epilog,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    ops = group.add_subparsers(dest="operation", metavar="OPERATION", required=True)
    for name, text in _OPERATIONS.items():
        parser = ops.add_parser(name, help=text, description=text, epilog=full_epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--kms-key-id", required=True, metavar="ARN", help="the KMS key ARN protecting the store")
        parser.add_argument("--logical-key-store-name", required=True, metavar="NAME",
                            help="the name bound into every branch key's encryption context")
        parser.add_argument("--path", help="the embedded store's SQLite file (default: in the data directory)")
        parser.add_argument("--ddb-table-name", metavar="TABLE", help="use the ESDK's DynamoDB key store instead")
        parser.add_argument("--ddb-endpoint-url", metavar="URL", help="with --ddb-table-name: the DynamoDB endpoint")
        parser.add_argument("--output", choices=FORMATS, default="json", help="output format (default: json)")
        parser.add_argument("--query", metavar="JMESPATH", help="JMESPath expression applied to the response")
        if name != "create-key-store":
            parser.add_argument("--branch-key-id", required=name != "create-key", metavar="ID",
                                help="the branch key" + (" (default: a new UUID; needs --encryption-context)"
                                                         if name == "create-key" else ""))
        if name == "create-key":
            parser.add_argument("--encryption-context", nargs="+", metavar="KEY=VALUE",
                                help="custom encryption context bound to every version of the key")
        if name == "get-branch-key-version":
            parser.add_argument("--branch-key-version", required=True, metavar="UUID", help="the version (a UUID)")
        parser.set_defaults(run=_run)


def _store(args: argparse.Namespace) -> envelope.BranchKeyStore:
    opts = getattr(args, "globals", None)
    if not isinstance(opts, GlobalOptions):
        opts = GlobalOptions()
    kms = kms_client(opts)
    if args.ddb_table_name is None:
        if args.ddb_endpoint_url:
            raise CLIError("--ddb-endpoint-url needs --ddb-table-name", ExitCode.USAGE)
        return envelope.BranchKeyStore.embedded(args.kms_key_id, kms_client=kms,
                                                logical_key_store_name=args.logical_key_store_name, path=args.path)
    if args.path:
        raise CLIError("--path is for the embedded store; drop it with --ddb-table-name", ExitCode.USAGE)
    try:
        import boto3  # type: ignore[import-untyped]
    except ImportError:
        raise CLIError("--ddb-table-name needs boto3", ExitCode.USAGE, hint="pip install 'envelope-crypto[boto3]'") from None
    ddb = boto3.client("dynamodb", region_name=region_of(opts), endpoint_url=args.ddb_endpoint_url)
    return envelope.BranchKeyStore.dynamodb(args.ddb_table_name, args.kms_key_id, kms_client=kms, ddb_client=ddb,
                                            logical_key_store_name=args.logical_key_store_name)


def _run(args: argparse.Namespace) -> int:
    try:
        store = _store(args)
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc), ExitCode.USAGE) from None
    op = args.operation
    response: dict[str, Any]
    if op == "create-key-store":
        response = {"TableArn": store.create_key_store()}
    elif op == "create-key":
        try:
            bk_id = store.create_key(args.branch_key_id, _context(args.encryption_context))
        except ValueError as exc:
            raise CLIError(str(exc), ExitCode.USAGE) from None
        response = {"BranchKeyIdentifier": bk_id}
    elif op == "version-key":
        response = {"BranchKeyIdentifier": args.branch_key_id, "BranchKeyVersion": store.version_key(args.branch_key_id)}
    elif op == "get-beacon-key":
        beacon = store.get_beacon_key(args.branch_key_id)
        response = {"BeaconKeyIdentifier": beacon.beacon_key_id, "EncryptionContext": dict(beacon.encryption_context)}
    else:
        branch = (store.get_active_branch_key(args.branch_key_id) if op == "get-active-branch-key"
                  else store.get_branch_key_version(args.branch_key_id, args.branch_key_version))
        response = {"BranchKeyIdentifier": branch.branch_key_id, "BranchKeyVersion": branch.version,
                    "EncryptionContext": dict(branch.encryption_context)}
    emit(response, fmt=args.output, query=args.query, stream=sys.stdout)
    return 0
