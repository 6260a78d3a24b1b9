"""Argument values as the aws CLI reads them: file:// and fileb://, base64 blobs, shorthand maps.

Blob parameters take ``fileb://FILE`` (raw bytes) or base64 text (``file://FILE`` holding base64),
or raw text with ``--cli-binary-format raw-in-base64-out``, as in aws CLI v2.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from .exits import CLIError, ExitCode

__all__ = ["convert", "from_document", "parse_time", "read_text_value"]


def _usage(message: str, hint: str | None = None) -> CLIError:
    return CLIError(message, ExitCode.USAGE, hint=hint)


def _read(path: str, binary: bool) -> bytes | str:
    try:
        with open(path, "rb") as fp:
            data = fp.read()
    except OSError as exc:
        # the aws CLI: a parameter file that cannot be read is a bad parameter value (252)
        raise CLIError(f"Unable to load paramfile {path}: {exc.strerror}", ExitCode.USAGE) from None
    if binary:
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _usage(f"{path} is not UTF-8 text", hint="use fileb:// for binary files") from None


def _text_value(value: str) -> str:
    if value.startswith("file://"):
        return str(_read(value[len("file://"):], False))
    if value.startswith("fileb://"):
        data = _read(value[len("fileb://"):], True)
        try:
            return bytes(data).decode("utf-8")  # type: ignore[arg-type]
        except UnicodeDecodeError:
            raise _usage(f"{value} is not UTF-8 text") from None
    return value


def read_text_value(value: str) -> str:
    """A string parameter as the aws CLI reads it: file:// and fileb:// load the file's text."""
    return _text_value(value)


def _blob(flag: str, value: str, raw_in: bool) -> bytes:
    if value.startswith("fileb://"):
        return bytes(_read(value[len("fileb://"):], True))  # type: ignore[arg-type]
    text = _text_value(value)
    if raw_in:
        return text.encode("utf-8")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise _usage(f"{flag}: not valid base64",
                     hint="pass fileb://FILE for a binary file, or --cli-binary-format raw-in-base64-out "
                          "to give raw text") from None


def _shorthand_map(flag: str, text: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for part in _split(text, ","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise _usage(f"{flag}: expected K=V,K2=V2 or JSON, got {text!r}")
        result[key.strip()] = value.strip()
    return result


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside braces and brackets (aws shorthand nests with {} and [])."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def _json(flag: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _usage(f"{flag}: invalid JSON: {exc}") from None


def _map(flag: str, value: str) -> dict[str, str]:
    text = _text_value(value).strip()
    data = _json(flag, text) if text.startswith("{") else _shorthand_map(flag, text)
    if not isinstance(data, dict):
        raise _usage(f"{flag}: expected a map")
    return data


def _struct(flag: str, value: str) -> dict[str, Any]:
    text = _text_value(value).strip()
    if text.startswith("{"):
        data = _json(flag, text)
        if not isinstance(data, dict):
            raise _usage(f"{flag}: expected a JSON object")
        return data
    result: dict[str, Any] = {}
    for part in _split(text, ","):
        key, sep, inner = part.partition("=")
        if not sep:
            raise _usage(f"{flag}: expected Name={{K=V,...}} or JSON, got {text!r}")
        inner = inner.strip()
        result[key.strip()] = _shorthand_map(flag, inner[1:-1]) if inner.startswith("{") else inner
    return result


def _list(flag: str, values: list[str]) -> list[str]:
    if len(values) == 1 and _text_value(values[0]).lstrip().startswith("["):
        data = _json(flag, _text_value(values[0]))
        if not isinstance(data, list):
            raise _usage(f"{flag}: expected a list")
        return [str(v) for v in data]
    return [_text_value(v) for v in values]


def _tags(flag: str, values: list[str]) -> list[dict[str, str]]:
    if len(values) == 1 and _text_value(values[0]).lstrip().startswith("["):
        data = _json(flag, _text_value(values[0]))
        if not isinstance(data, list):
            raise _usage(f"{flag}: expected a JSON list of {{\"TagKey\": ..., \"TagValue\": ...}}")
        return data
    return [_shorthand_map(flag, _text_value(v)) for v in values]


def parse_time(flag: str, value: str) -> datetime:
    text = _text_value(value).strip()
    try:
        return datetime.fromtimestamp(float(text), tz=UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)  # 3.11 reads "Z" and most ISO 8601 forms
    except ValueError:
        raise _usage(f"{flag}: not a time: {text!r} (ISO 8601 or epoch seconds)") from None
    # a time without a zone is UTC, as the aws CLI reads it
    return moment if moment.tzinfo else datetime.combine(moment.date(), moment.time(), UTC)


def from_document(kind: str, name: str, value: Any, *, raw_in: bool) -> Any:
    """A parameter from --cli-input-json/--cli-input-yaml (already in the API's shape) for the client:
    blobs are base64 text (raw text with raw-in-base64-out), times ISO 8601 or epoch seconds."""
    if kind == "blob":
        if not isinstance(value, str):
            raise _usage(f"{name}: expected base64 text")
        if raw_in:
            return value.encode("utf-8")
        try:
            return base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError):
            raise _usage(f"{name}: not valid base64") from None
    if kind == "time" and isinstance(value, (str, int, float)):
        return parse_time(name, str(value))
    return value


def convert(kind: str, flag: str, value: Any, *, raw_in: bool) -> Any:
    """Turn one parsed flag value into the boto3 parameter value for type ``kind``."""
    if kind == "str":
        return _text_value(value)
    if kind in ("int", "bool"):
        return value  # argparse already converted
    if kind == "blob":
        return _blob(flag, value, raw_in)
    if kind == "map":
        return _map(flag, value)
    if kind == "struct":
        return _struct(flag, value)
    if kind == "list":
        return _list(flag, value)
    if kind == "tags":
        return _tags(flag, value)
    if kind == "time":
        return parse_time(flag, value)
    raise RuntimeError(f"envelope: internal error: unknown parameter type {kind!r}")
