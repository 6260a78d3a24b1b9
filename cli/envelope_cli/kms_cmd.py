"""`envelope kms <operation>`, `envelope kms audit ...` and `envelope sts get-caller-identity`.

They drive the embedded service (envelope.kms.LocalKMS) with `aws kms` sub-command names and flags.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime
from typing import Any

import envelope

from .argtypes import positive_int
from .exits import CLIError, ExitCode
from .keys import local_kms
from .kms_args import convert, parse_time
from .kms_table import OPERATIONS, PAGINATED, Operation
from .output import FORMATS, emit

__all__ = ["add_parsers", "client_for"]

_TYPE_HELP = {
    "str": "string (file://FILE reads it from a file)",
    "int": "integer",
    "blob": "binary: fileb://FILE, or base64 text",
    "map": "K=V,K2=V2 or JSON",
    "list": "one or more values, or a JSON list",
    "tags": "TagKey=K,TagValue=V ... or a JSON list",
    "struct": "shorthand (EncryptionContextSubset={K=V}) or JSON",
    "time": "ISO 8601 time or epoch seconds",
}

_VALUE = "<value>"  # the aws CLI's placeholder in usage lines: --key-id <value>

KMS_EPILOG = """\
The service keeps its keys in $ENVELOPE_DATA_DIR (default ~/.local/share/envelope), one SQLite file
per region. Calls are made as $ENVELOPE_PRINCIPAL (an IAM ARN; default the account root of account
111122223333), or --principal. Output, --query and file:// / fileb:// work as in the aws CLI.
"""


def _flag(param: str) -> str:
    return "--" + re.sub(r"(?<!^)(?=[A-Z])", "-", param).lower()


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """--region/--output/--query/--principal, accepted before or after the operation name."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--region", default=default, help="region (default: $AWS_REGION, "
                        "$AWS_DEFAULT_REGION or us-east-1)")
    parser.add_argument("--output", choices=FORMATS, default=default, help="output format (default: json)")
    parser.add_argument("--query", default=default, metavar="JMESPATH", help="JMESPath expression applied to the "
                        "response before printing")
    parser.add_argument("--principal", default=default, metavar="ARN",
                        help="call as this IAM principal (default: $ENVELOPE_PRINCIPAL or the account root)")
    parser.add_argument("--cli-binary-format", choices=["base64", "raw-in-base64-out"], default=default,
                        help="how blob arguments given inline are read (default: base64)")


def _add_operation(sub: Any, name: str, op: Operation, epilog: str) -> None:
    parser = sub.add_parser(name, help=op.summary, description=f"{op.summary}\n\n(boto3: {op.method})",
                            epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    for param, kind in op.params.items():
        required = kind.endswith("!")
        kind = kind.rstrip("!")
        flag = _flag(param)
        text = _TYPE_HELP.get(kind, kind) + (" (required)" if required else "")
        if kind == "bool":
            parser.add_argument(flag, dest=param, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif kind == "int":
            parser.add_argument(flag, dest=param, type=int, required=required, help=text, metavar=_VALUE)
        elif kind in ("list", "tags"):
            parser.add_argument(flag, dest=param, nargs="+", required=required, help=text, metavar=_VALUE)
        else:
            parser.add_argument(flag, dest=param, required=required, help=text, metavar=_VALUE)
    if name in PAGINATED:
        # The aws CLI's own pagination flags on list commands (it pages through --limit/--marker).
        parser.add_argument("--max-items", type=positive_int, metavar=_VALUE,
                            help="print at most this many items; if more remain, the output has a NextToken")
        parser.add_argument("--starting-token", metavar=_VALUE, help="the NextToken of an earlier output, "
                                                                      "to continue from there")
        parser.add_argument("--page-size", type=positive_int, metavar=_VALUE,
                            help="items per service call (it changes the calls made, not the output)")
    _global_options(parser, suppress=True)
    parser.set_defaults(run=_run_operation, operation=name)


def add_parsers(subparsers: Any, epilog: str) -> None:
    full_epilog = KMS_EPILOG + "\n" + epilog
    kms = subparsers.add_parser(
        "kms", help="the embedded key-management service, like `aws kms`", epilog=full_epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Call the embedded key-management service with `aws kms` sub-commands and flags:\n"
                    "a tutorial written for `aws kms` works after replacing `aws` with `envelope`.")
    _global_options(kms, suppress=False)
    ops = kms.add_subparsers(dest="operation", metavar="OPERATION", required=True)
    for name, op in OPERATIONS.items():
        _add_operation(ops, name, op, full_epilog)
    _add_audit(ops, full_epilog)
    try:  # `kms serve` and its access keys (cli/envelope_cli/kms_serve.py), when present
        from .kms_serve import add_commands
    except ImportError:  # pragma: no cover
        pass
    else:
        add_commands(ops)

    sts = subparsers.add_parser("sts", help="who the CLI acts as (like `aws sts`)", epilog=full_epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _global_options(sts, suppress=False)
    sts_ops = sts.add_subparsers(dest="operation", metavar="OPERATION", required=True)
    ident = sts_ops.add_parser("get-caller-identity", help="print the account and principal ARN the CLI acts as",
                               epilog=full_epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    _global_options(ident, suppress=True)
    ident.set_defaults(run=_run_caller_identity)


def _add_audit(ops: Any, epilog: str) -> None:
    audit = ops.add_parser("audit", help="look up and verify the audit log (CloudTrail-shaped events)",
                           epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
                           description="Every call, allowed or denied, is recorded in the region's audit log, "
                                       "chained by hash.")
    verbs = audit.add_subparsers(dest="audit_verb", metavar="VERB", required=True)
    lookup = verbs.add_parser("lookup", help="print matching events, newest first", epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    lookup.add_argument("--start-time", help="inclusive lower bound (ISO 8601 or epoch seconds)")
    lookup.add_argument("--end-time", help="inclusive upper bound (ISO 8601 or epoch seconds)")
    lookup.add_argument("--event-name", help="e.g. Decrypt")
    lookup.add_argument("--key-id", help="key id, key ARN or alias among the event's resources")
    lookup.add_argument("--principal-arn", help="the caller's ARN, exactly")
    lookup.add_argument("--max-results", type=int, help="at most this many events")
    _global_options(lookup, suppress=True)
    lookup.set_defaults(run=_run_audit_lookup)
    verify = verbs.add_parser("verify", help="recompute the hash chain; exit 3 if it was tampered with",
                              epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    verify.add_argument("--anchor", metavar="SEQ:HASH",
                        help="a head printed earlier by `envelope kms audit head`, to detect truncation")
    _global_options(verify, suppress=True)
    verify.set_defaults(run=_run_audit_verify)
    head = verbs.add_parser("head", help="print the newest sequence number and hash (keep it elsewhere as "
                                         "an anchor)", epilog=epilog,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    _global_options(head, suppress=True)
    head.set_defaults(run=_run_audit_head)
    export = verbs.add_parser("export", help="write every event as JSON lines, oldest first", epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("--outfile", default="-", help="file to write (default: stdout)")
    _global_options(export, suppress=True)
    export.set_defaults(run=_run_audit_export)


def client_for(args: argparse.Namespace) -> Any:
    return local_kms(args.region, args.principal)


def _emit(args: argparse.Namespace, response: Any, title: str) -> None:
    fmt = args.output or "json"
    token = None
    if fmt == "text" and isinstance(response, dict) and "NextToken" in response:
        # The aws CLI's text output puts the token on a last line of its own: NEXTTOKEN<tab>token.
        response = dict(response)
        token = response.pop("NextToken")
    emit(response, fmt=fmt, query=args.query, stream=sys.stdout, title=title)
    if token is not None and args.query is None:
        emit({"NextToken": {"NextToken": token}}, fmt=fmt, query=None, stream=sys.stdout)


def _pascal(method: str) -> str:
    return "".join(part.capitalize() for part in method.split("_"))


def _run_operation(args: argparse.Namespace) -> int:
    op = OPERATIONS[args.operation]
    raw_in = args.cli_binary_format == "raw-in-base64-out"
    params: dict[str, Any] = {}
    for param, kind in op.params.items():
        value = getattr(args, param, None)
        if value is not None:
            params[param] = convert(kind.rstrip("!"), _flag(param), value, raw_in=raw_in)
    field = PAGINATED.get(args.operation)
    if field is not None and ("Marker" in params or "Limit" in params):
        # The aws CLI's rule: the service's own --limit/--marker turn its pagination off (one call,
        # its raw page), and its pagination flags may not be mixed in.
        given = {"--max-items": args.max_items, "--starting-token": args.starting_token,
                 "--page-size": args.page_size}
        paging = [flag for flag, value in given.items() if value is not None]
        if paging:
            raise CLIError(f"cannot combine --limit/--marker with {', '.join(paging)}", ExitCode.USAGE)
        field = None
    method = getattr(client_for(args), op.method)
    try:
        response = method(**params) if field is None else _all_pages(method, params, field, args)
    except envelope.KMSError as exc:
        raise CLIError(f"An error occurred ({exc.code}) when calling the {_pascal(op.method)} operation: "
                       f"{Exception.__str__(exc)}", ExitCode.KEY, hint=exc.hint) from None
    _emit(args, response, _pascal(op.method))
    return ExitCode.OK


# Small enough for every list operation's Limit range (ListResourceTags takes at most 50).
_MAX_ITEMS_PAGE = 50


def _all_pages(method: Any, params: dict[str, Any], field: str, args: argparse.Namespace) -> dict[str, Any]:
    """Page through a list operation as the aws CLI does: everything, or --max-items with a NextToken.

    A page never holds more than the items still wanted, so the NextToken printed is exactly the
    service's marker for the next item and --starting-token resumes there.
    """
    wanted = args.max_items
    marker = args.starting_token
    items: list[Any] = []
    while True:
        call = dict(params)
        if marker is not None:
            call["Marker"] = marker
        size = args.page_size
        if wanted is not None:
            size = min(size or _MAX_ITEMS_PAGE, wanted - len(items))
        if size is not None:
            call["Limit"] = size
        response = method(**call)
        items.extend(response.get(field, []))
        marker = response.get("NextMarker") if response.get("Truncated") else None
        if marker is None or (wanted is not None and len(items) >= wanted):
            break
    result = {k: v for k, v in response.items() if k not in ("Truncated", "NextMarker")}
    result[field] = items
    if marker is not None:
        result["NextToken"] = marker
    return result


def _run_caller_identity(args: argparse.Namespace) -> int:
    client = client_for(args)
    arn = client.principal
    user_id = client.account if arn.endswith(":root") else arn.rsplit("/", 1)[-1]
    _emit(args, {"UserId": user_id, "Account": client.account, "Arn": arn}, "GetCallerIdentity")
    return ExitCode.OK


def _when(flag: str, value: str | None) -> datetime | None:
    return None if value is None else parse_time(flag, value)


def _audit_key_id(client: Any, key_id: str | None) -> str | None:
    """Events name keys by ARN; an alias (alias/x or its ARN) is resolved to its key's ARN first,
    so ``--key-id alias/x`` finds the key's events instead of silently matching nothing."""
    if key_id is None or not (key_id.startswith("alias/") or ":alias/" in key_id):
        return key_id
    try:
        return str(client.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"])
    except envelope.KMSError as exc:
        raise CLIError(f"--key-id {key_id}: {Exception.__str__(exc)}", ExitCode.KEY,
                       hint="an alias that was deleted or moved no longer names the key; pass the key id") from None


def _run_audit_lookup(args: argparse.Namespace) -> int:
    client = client_for(args)
    events = client.audit.lookup(start_time=_when("--start-time", args.start_time),
                                 end_time=_when("--end-time", args.end_time), event_name=args.event_name,
                                 key_id=_audit_key_id(client, args.key_id), principal=args.principal_arn,
                                 limit=args.max_results)
    _emit(args, {"Events": events}, "AuditLookup")
    return ExitCode.OK


def _run_audit_head(args: argparse.Namespace) -> int:
    seq, digest = client_for(args).audit.head()
    _emit(args, {"SequenceNumber": seq, "Hash": digest, "Anchor": f"{seq}:{digest}"}, "AuditHead")
    return ExitCode.OK


def _run_audit_verify(args: argparse.Namespace) -> int:
    anchor = None
    if args.anchor:
        seq, sep, digest = args.anchor.partition(":")
        if not sep or not seq.isdigit():
            raise CLIError("--anchor must be SEQ:HASH as printed by `envelope kms audit head`", ExitCode.USAGE)
        anchor = (int(seq), digest)
    result = client_for(args).audit.verify(anchor=anchor)
    _emit(args, {"Valid": result.ok, "Count": result.count, "FirstBadSequence": result.first_bad_sequence,
                 "Reason": result.reason}, "AuditVerify")
    return ExitCode.OK if result.ok else ExitCode.AUTHENTICATION


def _run_audit_export(args: argparse.Namespace) -> int:
    audit = client_for(args).audit
    if args.outfile == "-":
        audit.export_jsonl(sys.stdout)
    else:
        with open(args.outfile, "w", encoding="utf-8") as fp:
            audit.export_jsonl(fp)
    return ExitCode.OK
