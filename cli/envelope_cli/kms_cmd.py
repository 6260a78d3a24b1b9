"""`envelope kms <operation>`, `envelope kms audit ...` and `envelope sts get-caller-identity`.

They drive the embedded service (envelope.kms.LocalKMS), or any KMS endpoint through boto3
(--endpoint-url, --profile, --kms aws), with `aws kms` sub-command names and flags. The global
options (globalopts.py), output (output.py), paging (paging.py), --cli-input-json and skeletons
(cli_input.py) work from the operation table (kms_table.py: the service's own table) alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from typing import Any

import envelope

from .argtypes import positive_int
from .cli_input import input_document, skeleton
from .clients import call, is_remote, kms_client, sts_identity
from .exits import AWS_EXIT_CODES_HELP, CLIError, ExitCode
from .globalopts import GLOBAL_HELP, GlobalOptions
from .kms_args import convert, from_document, parse_time
from .kms_table import OPERATIONS, PAGINATORS, Operation, api_name, flag_of, operation_model
from .output import emit
from .paging import PAGING_FLAGS, paginate

__all__ = ["add_parsers", "client_for", "emit_response"]

_TYPE_HELP = {
    "str": "string (file://FILE reads it from a file)",
    "int": "integer",
    "blob": "binary: fileb://FILE, or base64 text",
    "map": "K=V,K2=V2 or JSON",
    "list": "one or more values, or a JSON list",
    "tags": "TagKey=K,TagValue=V ... or a JSON list",
    "struct": "shorthand (Name={K=V},Other=V) or JSON",
    "time": "ISO 8601 time or epoch seconds",
}

_VALUE = "<value>"  # the aws CLI's placeholder in usage lines: --key-id <value>

KMS_EPILOG = """\
By default the embedded service is called: it keeps its keys in $ENVELOPE_DATA_DIR (default
~/.local/share/envelope), one SQLite file per region, and calls are made as $ENVELOPE_PRINCIPAL (an
IAM ARN; default the account root of account 111122223333), or --principal. With --endpoint-url,
--profile, --kms aws or $AWS_ENDPOINT_URL_KMS, boto3 calls that endpoint (an `envelope kms serve`,
or AWS KMS) with the standard credential chain. Output, --query and file:// / fileb:// work as in
the aws CLI.
"""


def _flag(param: str) -> str:
    return flag_of(param)


def _add_operation(sub: Any, name: str, op: Operation, epilog: str) -> None:
    parser = sub.add_parser(name, help=op.summary, description=f"{op.summary}\n\n(boto3: {op.method})",
                            epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    for param, kind in op.params.items():
        required = kind.endswith("!")
        kind = kind.rstrip("!")
        flag = _flag(param)
        # Required parameters are checked after --cli-input-json/yaml is merged in, as the aws CLI does.
        text = " ".join(filter(None, (op.help.get(param, ""), f"[{_TYPE_HELP.get(kind, kind)}]",
                                      "(required)" if required else "")))
        if kind == "bool":
            parser.add_argument(flag, dest=param, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif kind == "int":
            parser.add_argument(flag, dest=param, type=int, help=text, metavar=_VALUE)
        elif kind in ("list", "tags"):
            parser.add_argument(flag, dest=param, nargs="+", help=text, metavar=_VALUE)
        else:
            parser.add_argument(flag, dest=param, help=text, metavar=_VALUE)
    if name in PAGINATORS:
        # The aws CLI's own pagination flags on list commands (it pages through --limit/--marker).
        parser.add_argument("--max-items", type=positive_int, metavar=_VALUE,
                            help="print at most this many items; if more remain, the output has a NextToken")
        parser.add_argument("--starting-token", metavar=_VALUE, help="the NextToken of an earlier output, "
                                                                      "to continue from there")
        parser.add_argument("--page-size", type=positive_int, metavar=_VALUE,
                            help="items per service call (it changes the calls made, not the output)")
    parser.set_defaults(run=_run_operation, operation=name)


def add_parsers(subparsers: Any, epilog: str) -> None:
    del epilog  # `envelope kms` and `envelope sts` exit with the aws CLI's codes instead
    full_epilog = KMS_EPILOG + "\n" + GLOBAL_HELP + "\n\n" + AWS_EXIT_CODES_HELP
    kms = subparsers.add_parser(
        "kms", help="the embedded key-management service (or any KMS endpoint), like `aws kms`",
        epilog=full_epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Call the embedded key-management service with `aws kms` sub-commands and flags:\n"
                    "a tutorial written for `aws kms` works after replacing `aws` with `envelope`.")
    ops = kms.add_subparsers(dest="operation", metavar="OPERATION", required=True)
    for name, op in OPERATIONS.items():
        _add_operation(ops, name, op, full_epilog)
    _add_audit(ops, full_epilog)
    from .kms_operator import add_commands as add_operator_commands

    add_operator_commands(ops)
    try:  # `kms serve` and its access keys (cli/envelope_cli/kms_serve.py), when present
        from .kms_serve import add_commands
    except ImportError:  # pragma: no cover
        pass
    else:
        add_commands(ops)

    sts = subparsers.add_parser("sts", help="who the CLI acts as (like `aws sts`)", epilog=full_epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sts_ops = sts.add_subparsers(dest="operation", metavar="OPERATION", required=True)
    ident = sts_ops.add_parser("get-caller-identity", help="print the account and principal ARN the CLI acts as",
                               epilog=full_epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    lookup.set_defaults(run=_run_audit_lookup)
    verify = verbs.add_parser("verify", help="recompute the hash chain; exit 255 if it was tampered with",
                              epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    verify.add_argument("--anchor", metavar="SEQ:HASH",
                        help="a head printed earlier by `envelope kms audit head`, to detect truncation")
    verify.set_defaults(run=_run_audit_verify)
    head = verbs.add_parser("head", help="print the newest sequence number and hash (keep it elsewhere as "
                                         "an anchor)", epilog=epilog,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    head.set_defaults(run=_run_audit_head)
    export = verbs.add_parser("export", help="write the events as JSON lines, oldest first", epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("--since", metavar="T", help="only events at or after T (ISO 8601 or epoch seconds)")
    export.add_argument("--until", metavar="T", help="only events at or before T (ISO 8601 or epoch seconds)")
    export.add_argument("--outfile", default="-", help="file to write (default: stdout)")
    export.set_defaults(run=_run_audit_export)
    prune = verbs.add_parser("prune", help="delete the events before T, keeping the rest verifiable",
                             epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
                             description="Verify the chain, then delete the oldest events (those before T); a "
                                         "checkpoint records the last one deleted, so `audit verify` still checks "
                                         "the rest. Export them first if they must be kept.")
    prune.add_argument("--before", metavar="T", required=True, help="ISO 8601 time or epoch seconds")
    prune.set_defaults(run=_run_audit_prune)


def _globals(args: argparse.Namespace) -> GlobalOptions:
    opts = getattr(args, "globals", None)
    return opts if isinstance(opts, GlobalOptions) else GlobalOptions()


def client_for(args: argparse.Namespace) -> Any:
    """The KMS client the global options select (embedded or boto3)."""
    return kms_client(_globals(args))


def _embedded_for(args: argparse.Namespace, what: str) -> Any:
    opts = _globals(args)
    if is_remote(opts):
        raise CLIError(f"{what} reads the embedded service's own store; it cannot go through an endpoint",
                       ExitCode.AWS_USAGE, hint="run it where the service's data directory is (without "
                                                "--endpoint-url, --profile or --kms aws)")
    return kms_client(opts)


def emit_response(args: argparse.Namespace, response: Any, title: str) -> None:
    """Print ``response`` (or `paging.Pages`) in the --output format, after --query."""
    opts = _globals(args)
    emit(response, fmt=opts.output_format, query=opts.query, stream=sys.stdout, title=title,
         color=opts.color or "auto")


def _params(args: argparse.Namespace, op: Operation, opts: GlobalOptions) -> dict[str, Any]:
    raw_in = opts.cli_binary_format == "raw-in-base64-out"
    params: dict[str, Any] = {}
    document = input_document(opts.cli_input_json, opts.cli_input_yaml)
    kinds = {param: kind.rstrip("!") for param, kind in op.params.items()}
    unknown = sorted(set(document) - set(kinds))
    if unknown:
        raise CLIError(f'Unknown parameter in input: "{unknown[0]}", must be one of: {", ".join(kinds)}',
                       ExitCode.AWS_USAGE)
    for param, value in document.items():
        params[param] = from_document(kinds[param], param, value, raw_in=raw_in)
    for param, kind in kinds.items():
        value = getattr(args, param, None)
        if value is not None:  # the command line wins over the input document
            params[param] = convert(kind, _flag(param), value, raw_in=raw_in)
    return params


def _run_operation(args: argparse.Namespace) -> int:
    opts = _globals(args)
    name = args.operation
    op = OPERATIONS[name]
    title = api_name(name)
    if opts.generate_cli_skeleton in ("input", "yaml-input"):
        sys.stdout.write(skeleton(operation_model(name), opts.generate_cli_skeleton))
        return ExitCode.OK
    params = _params(args, op, opts)
    missing = [_flag(p) for p, kind in op.params.items() if kind.endswith("!") and p not in params]
    if missing:
        raise CLIError(f"the following arguments are required: {', '.join(missing)}", ExitCode.AWS_USAGE)
    if opts.generate_cli_skeleton == "output":
        emit_response(args, skeleton(operation_model(name), "output"), title)
        return ExitCode.OK
    config = PAGINATORS.get(name)
    paging = {flag: getattr(args, dest, None) for dest, flag in PAGING_FLAGS.items()}
    given = [flag for flag, value in paging.items() if value is not None]
    if config is not None and (opts.no_paginate or config["input_token"] in params
                               or config["limit_key"] in params):
        # The aws CLI's rule: the service's own --limit/--marker (or --no-paginate) turn its
        # pagination off: one call, its raw page; its pagination flags may not be mixed in.
        if given:
            cause = "--no-paginate" if opts.no_paginate else "--limit/--marker"
            raise CLIError(f"cannot combine {cause} with {', '.join(given)}", ExitCode.AWS_USAGE)
        config = None
    method = getattr(client_for(args), op.method, None)
    if method is None:  # an operation of the table the embedded service does not serve
        raise CLIError(f"An error occurred (UnknownOperationException) when calling the {title} operation: "
                       f"Unknown operation {title}.", ExitCode.AWS_SERVICE,
                       hint="the embedded service does not implement it; use --endpoint-url or --kms aws "
                            "to call AWS KMS")
    if config is None:
        emit_response(args, call(method, params, title), title)
        return ExitCode.OK

    def one_page(**page_params: Any) -> Any:
        return call(method, page_params, title)

    pages = paginate(one_page, config, params, max_items=getattr(args, "max_items", None),
                     starting_token=getattr(args, "starting_token", None), page_size=getattr(args, "page_size", None))
    emit_response(args, pages, title)
    return ExitCode.OK


def _run_caller_identity(args: argparse.Namespace) -> int:
    emit_response(args, sts_identity(_globals(args)), "GetCallerIdentity")
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
    client = _embedded_for(args, "`kms audit lookup`")
    events = client.audit.lookup(start_time=_when("--start-time", args.start_time),
                                 end_time=_when("--end-time", args.end_time), event_name=args.event_name,
                                 key_id=_audit_key_id(client, args.key_id), principal=args.principal_arn,
                                 limit=args.max_results)
    emit_response(args, {"Events": events}, "AuditLookup")
    return ExitCode.OK


def _run_audit_head(args: argparse.Namespace) -> int:
    seq, digest = _embedded_for(args, "`kms audit head`").audit.head()
    emit_response(args, {"SequenceNumber": seq, "Hash": digest, "Anchor": f"{seq}:{digest}"}, "AuditHead")
    return ExitCode.OK


def _run_audit_verify(args: argparse.Namespace) -> int:
    anchor = None
    if args.anchor:
        seq, sep, digest = args.anchor.partition(":")
        if not sep or not seq.isdigit():
            raise CLIError("--anchor must be SEQ:HASH as printed by `envelope kms audit head`", ExitCode.AWS_USAGE)
        anchor = (int(seq), digest)
    result = _embedded_for(args, "`kms audit verify`").audit.verify(anchor=anchor)
    emit_response(args, {"Valid": result.ok, "Count": result.count, "FirstBadSequence": result.first_bad_sequence,
                 "Reason": result.reason}, "AuditVerify")
    return ExitCode.OK if result.ok else ExitCode.AWS_FAILURE


def _run_audit_export(args: argparse.Namespace) -> int:
    audit = _embedded_for(args, "`kms audit export`").audit
    since, until = _when("--since", args.since), _when("--until", args.until)
    if args.outfile == "-":
        audit.export_jsonl(sys.stdout, since=since, until=until)
    else:
        with open(args.outfile, "w", encoding="utf-8") as fp:
            audit.export_jsonl(fp, since=since, until=until)
    return ExitCode.OK


def _run_audit_prune(args: argparse.Namespace) -> int:
    audit = _embedded_for(args, "`kms audit prune`").audit
    pruned = audit.prune(parse_time("--before", args.before), now=time.time())
    checkpoint = audit.checkpoint()
    emit_response(args, {"Pruned": pruned, "PrunedThrough": checkpoint.pruned_through if checkpoint else 0,
                 "PrunedTotal": checkpoint.pruned_count if checkpoint else 0}, "AuditPrune")
    return ExitCode.OK
