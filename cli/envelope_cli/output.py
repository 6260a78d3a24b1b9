"""Print a response the way the aws CLI does: JSON (indent 4), text (tab-separated), a table, or
nothing (``off``), after --query.

Bytes print as base64 and datetimes as ISO 8601, as the aws CLI v2 prints blobs and timestamps.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import IO, Any

from .table import render_table

__all__ = ["FORMATS", "emit", "to_jsonable"]

FORMATS = ("json", "text", "table", "off")  # as the aws CLI v2 names them (yaml is not offered)


def to_jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
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
        raise ValueError("--query needs the jmespath package (pip install 'envelope[cli]')") from None
    try:
        return jmespath.search(expression, data)
    except JMESPathError as exc:
        raise ValueError(f"bad --query expression: {exc}") from None


def emit(response: Any, *, fmt: str, query: str | None, stream: IO[str], title: str = "") -> None:
    """Write ``response`` (boto3 shape) to ``stream`` in one of `FORMATS`.

    :param title: the table's title (the aws CLI uses the operation name, e.g. ``ListKeys``).
    """
    data = _query(to_jsonable(response), query)
    if fmt == "off":
        return
    if fmt == "table":
        render_table(title, data, stream)
    elif fmt == "json":
        if query is None and data == {}:
            return  # the aws CLI prints nothing for an empty response
        stream.write(json.dumps(data, indent=4, ensure_ascii=False) + "\n")
    else:
        _text(data, stream, None, None)


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
