"""Print a response the way the aws CLI does, after --query: json (indent 4), text (tab-separated),
table, yaml and yaml-stream (aws CLI v2, PyYAML), or nothing (``off``).

Bytes print as base64 and datetimes as ISO 8601, as the aws CLI prints blobs and timestamps
(v2's default timestamp format; v1 with ``cli_timestamp_format = iso8601``). A paginated response
(`paging.Pages`) prints as awscli's formatters print one: merged for json/yaml/table, page by
page for text and yaml-stream, with the NextToken after the items.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import IO, Any

from .exits import CLIError, ExitCode
from .table import render_table

__all__ = ["FORMATS", "emit", "to_jsonable"]

# https://docs.aws.amazon.com/cli/latest/userguide/cli-usage-output-format.html
FORMATS = ("json", "text", "table", "yaml", "yaml-stream", "off")


def to_jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def _query(data: Any, expression: str | None) -> Any:
    if expression is None:
        return data
    try:
        import jmespath  # type: ignore[import-untyped]
        from jmespath.exceptions import JMESPathError  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - jmespath is in the cli extra
        raise ValueError("--query needs the jmespath package (pip install 'envelope-crypto[cli]')") from None
    try:
        return jmespath.search(expression, data)
    except JMESPathError as exc:
        raise ValueError(f"bad --query expression: {exc}") from None


def _yaml(data: Any, stream: IO[str]) -> None:
    try:
        import yaml
    except ImportError:
        raise CLIError("--output yaml needs PyYAML", ExitCode.AWS_CONFIG,
                       hint="pip install 'envelope-crypto[cli]' (or pip install pyyaml)") from None
    # Block style, keys in the response's order, lists at their key's indent: aws CLI v2's layout.
    yaml.safe_dump(data, stream, default_flow_style=False, sort_keys=False, allow_unicode=True)


def emit(response: Any, *, fmt: str, query: str | None, stream: IO[str], title: str = "",
         color: str = "off") -> None:
    """Write ``response`` (boto3 shape, or `paging.Pages`) to ``stream`` in one of `FORMATS`.

    :param title: the table's title (the aws CLI uses the operation name, e.g. ``ListKeys``).
    :param color: the table's colours: on, off or auto (on when ``stream`` is a terminal).
    """
    if fmt == "off":
        return
    pages = response if hasattr(response, "page_result") else None
    if pages is not None and fmt in ("text", "yaml-stream"):
        for index, page in enumerate(pages):
            _emit_one(pages.page_result(index, page), fmt, query, stream, title, color)
        token = pages.resume_token
        if token is not None:
            # awscli's TextFormatter: the token on a line of its own after the pages.
            _emit_one({"NextToken": {"NextToken": token}} if fmt == "text" else {"NextToken": token},
                      fmt, query, stream, title, color)
        return
    _emit_one(pages.full() if pages is not None else response, fmt, query, stream, title, color)


def _emit_one(response: Any, fmt: str, query: str | None, stream: IO[str], title: str, color: str) -> None:
    data = _query(to_jsonable(response), query)
    if fmt == "text":
        _text(data, stream, None, None)
    elif data == {}:
        return  # awscli prints nothing for an empty response (json, table, yaml)
    elif fmt == "table":
        render_table(title, data, stream, color=color)
    elif fmt == "json":
        stream.write(json.dumps(data, indent=4, ensure_ascii=False) + "\n")
    elif fmt == "yaml-stream":
        _yaml([data], stream)  # one list item per page, so a reader can act on each page as it comes
    else:
        _yaml(data, stream)


def _scalar(value: Any) -> str:
    return "None" if value is None else str(value)


# The aws CLI's text format (awscli/text.py): scalars of a dict on one tab-separated line (prefixed
# by the upper-cased key that led there), then each nested value under its own identifier.
def _text(item: Any, stream: IO[str], identifier: str | None, scalar_keys: list[str] | None) -> None:
    if isinstance(item, dict):
        _text_dict(item, stream, identifier, scalar_keys)
    elif isinstance(item, list):
        _text_list(item, stream, identifier)
    else:
        stream.write(_scalar(item) + "\n")


def _text_list(items: list[Any], stream: IO[str], identifier: str | None) -> None:
    if not items:
        return
    if any(isinstance(e, dict) for e in items):
        keys = sorted({k for e in items if isinstance(e, dict) for k, v in e.items()
                       if not isinstance(v, (dict, list))})
        for element in items:
            _text(element, stream, identifier, keys)
    elif any(isinstance(e, list) for e in items):
        scalars = [e for e in items if not isinstance(e, list)]
        if scalars:
            _text_scalars(scalars, stream, identifier)
        for element in items:
            if isinstance(element, list):
                _text(element, stream, identifier, None)
    else:
        _text_scalars(items, stream, identifier)


def _text_scalars(items: list[Any], stream: IO[str], identifier: str | None) -> None:
    if identifier is not None:
        for element in items:
            stream.write(f"{identifier.upper()}\t{_scalar(element)}\n")
    else:
        stream.write("\t".join(_scalar(e) for e in items) + "\n")


def _text_dict(item: dict[str, Any], stream: IO[str], identifier: str | None, scalar_keys: list[str] | None) -> None:
    scalars: list[str] = []
    nested: list[tuple[str, Any]] = []
    if scalar_keys is None:
        for key, value in sorted(item.items()):
            if isinstance(value, (dict, list)):
                nested.append((key, value))
            else:
                scalars.append(_scalar(value))
    else:
        scalars = [_scalar(item.get(k, "")) for k in scalar_keys]
        nested = [(k, item[k]) for k in sorted(set(item) - set(scalar_keys))]
    if scalars:
        if identifier is not None:
            scalars.insert(0, identifier.upper())
        stream.write("\t".join(scalars) + "\n")
    for key, value in nested:
        _text(value, stream, key, None)
