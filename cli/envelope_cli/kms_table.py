"""The `envelope kms` operations, from the KMS operation table (`envelope.kms.model.operations`).

Nothing here is typed by hand: every operation of the table (generated from botocore's KMS model,
the model `aws kms` is built from) is a sub-command named as `aws kms` names it (boto3's method in
kebab-case: generate-data-key), with one flag per input member (kebab-case of the member:
KeyId -> --key-id), its help from the member's and the operation's documentation summary, and the
operation's paginator. So commands, flags, help and paging cannot drift from the service's table
(`tests/cli/test_cli_table.py` checks both ways).

What the rest of the CLI needs from this module: ``OPERATIONS`` (sub-command -> `Operation`:
client method, summary, parameter kinds, help per parameter), ``PAGINATORS`` (sub-command -> a
botocore paginators-1.json entry), ``api_name`` (the API's name of an operation) and
``operation_model`` (botocore's OperationModel interface: input and output shapes, for
--generate-cli-skeleton).

Parameter kinds (how a flag's text becomes a value, `kms_args.convert`): str, int, bool, blob
(fileb:// or base64), map (``K=V,K2=V2`` or JSON), list (values or a JSON list), tags (a list of
structures: ``TagKey=a,TagValue=b ...`` or JSON), struct (``Name={K=V},Other=x`` or JSON), time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any

from envelope.kms.model.operations import OPERATIONS as MODEL
from envelope.kms.model.shapes import Member
from envelope.kms.model.shapes import Operation as ModelOperation

__all__ = ["OPERATIONS", "PAGINATORS", "Operation", "api_name", "flag_of", "kind_of", "operation_model"]


@dataclass(frozen=True, slots=True)
class Operation:
    method: str  # client method (boto3 name)
    summary: str
    params: dict[str, str]  # member -> kind, "!" appended when required
    name: str  # the API's name (CreateKey)
    help: MappingProxyType[str, str]  # member -> its documentation summary


def flag_of(member: str) -> str:
    """The aws CLI's flag of a member: KeyId -> --key-id (botocore's ``xform_name`` with '-')."""
    return "--" + re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", member).lower()


def kind_of(member: Member) -> str:
    """How the CLI reads a member's value (see the module docstring)."""
    if member.type == "list":
        return "tags" if member.item is not None and member.item.type == "structure" else "list"
    if member.type == "structure":
        return "struct"
    return {"string": "str", "integer": "int", "long": "int", "boolean": "bool", "blob": "blob",
            "map": "map", "timestamp": "time"}.get(member.type, "str")


def _help(member: Member) -> str:
    text = member.summary
    if member.enum:
        text = f"{text} Possible values: {', '.join(member.enum)}.".strip()
    elif member.item is not None and member.item.enum:
        text = f"{text} Possible values: {', '.join(member.item.enum)}.".strip()
    return text


def _operation(op: ModelOperation) -> Operation:
    return Operation(op.method, op.summary,
                     {m.name: kind_of(m) + ("!" if m.required else "") for m in op.members},
                     op.name, MappingProxyType({m.name: _help(m) for m in op.members}))


# aws kms sub-command -> operation, in the table's (alphabetical) order.
OPERATIONS: dict[str, Operation] = {op.method.replace("_", "-"): _operation(op) for op in MODEL.values()}

# The table's paginators (botocore's paginators-1.json entries), by sub-command.
PAGINATORS: dict[str, dict[str, str]] = {
    op.method.replace("_", "-"): {"input_token": op.paginator.input_token,
                                  "output_token": op.paginator.output_token,
                                  "more_results": op.paginator.more_results,
                                  "limit_key": op.paginator.limit_key,
                                  "result_key": op.paginator.result_key}
    for op in MODEL.values() if op.paginator is not None
}


def api_name(operation: str) -> str:
    """The API's operation name: create-key -> CreateKey (the aws CLI's table title and error text)."""
    return OPERATIONS[operation].name


@cache
def operation_model(operation: str) -> Any:
    """The service model's description of ``operation`` (botocore's ``OperationModel``: input and
    output shapes), for --generate-cli-skeleton; from the KMS model botocore ships as data (the
    same model the table is generated from; the table holds no output shapes)."""
    import botocore.session  # type: ignore[import-untyped]

    return botocore.session.get_session().get_service_model("kms").operation_model(api_name(operation))
