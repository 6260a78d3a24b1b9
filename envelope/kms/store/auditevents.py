"""Audit events: the CloudTrail-shaped record of one KMS call, scrubbed of secrets, and its canonical JSON.

Events never hold plaintext, ciphertext, key material, tokens, MACs, messages or signatures.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from json.encoder import c_make_encoder as _c_make_encoder  # type: ignore[attr-defined]
from json.encoder import encode_basestring as _json_str
from typing import NamedTuple

__all__ = ["EVENT_VERSION", "EncodedEvent", "build_event", "canonical", "encode_event", "index_fields", "utc"]

EVENT_VERSION = "1.11"

# Request and response fields that are, or may carry, secrets or bulk data; compared after
# lower-casing. Bytes values are dropped wherever they appear, whatever their name.
_SECRET_FIELDS = frozenset({
    "plaintext", "ciphertextblob", "sourceciphertextblob", "ciphertextforrecipient",
    "privatekeyplaintext", "privatekeyciphertextblob", "publickey", "keymaterial",
    "encryptedkeymaterial", "importtoken", "granttoken", "granttokens", "mac", "message",
    "signature", "keystorepassword", "xksproxyauthenticationcredential", "recipient",
    "responsemetadata", "sharedsecret",
})
# Fields whose values are user-chosen maps: their keys are data, not field names to camelCase.
_DATA_MAPS = frozenset({"encryptioncontext", "encryptioncontextequals", "encryptioncontextsubset",
                        "sourceencryptioncontext", "destinationencryptioncontext"})


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware datetimes")
    return moment.astimezone(UTC)


_DROP = object()
_RULES_MAX = 4096
# field name -> None (a secret: drop it) or (CloudTrail name, whether its value is a data map)
_RULES: dict[str, tuple[str, bool] | None] = {}


def _camel(name: str) -> str:
    if name.isupper():
        return name.lower()
    return name[:1].lower() + name[1:]


def _rule(name: str) -> tuple[str, bool] | None:
    try:
        return _RULES[name]
    except KeyError:
        pass
    lowered = name.lower()
    found = None if lowered in _SECRET_FIELDS else (_camel(name), lowered in _DATA_MAPS)
    if len(_RULES) < _RULES_MAX:  # names come from callers' keyword arguments: stay bounded
        _RULES[name] = found
    return found


def _scrub(value: object, *, data_map: bool = False) -> object:
    """Return a JSON-ready copy without secrets or bytes (``_DROP`` if nothing may be kept)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return value
    if isinstance(value, (str, int, float)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _DROP
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, item in value.items():
            name = key if type(key) is str else str(key)
            if data_map:
                kept = item if type(item) is str else _scrub(item)
                if kept is not _DROP:
                    out[name] = kept
                continue
            rule = _rule(name)
            if rule is None:
                continue
            kept = _scrub(item, data_map=rule[1])
            if kept is not _DROP:
                out[rule[0]] = kept
        return out
    if isinstance(value, datetime):
        return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, (list, tuple, set, frozenset)):
        return [kept for kept in (_scrub(v) for v in value) if kept is not _DROP]
    return str(value)


@functools.lru_cache(maxsize=1024)
def _identity(principal: str) -> dict[str, str]:
    parts = principal.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        if principal.isdigit():
            return _identity(f"arn:aws:iam::{principal}:root")
        return {"type": "AWSService", "invokedBy": principal}
    account, resource = parts[4], parts[5]
    if resource == "root":
        kind, prefix = "Root", ""
    elif resource.startswith(("assumed-role/", "role/")):
        kind, prefix = "AssumedRole", "AROA"
    elif resource.startswith("user/"):
        kind, prefix = "IAMUser", "AIDA"
    else:
        kind, prefix = "Unknown", "AIDA"
    # A stable, opaque principal id derived from the ARN (CloudTrail's ids are opaque too).
    digest = hashlib.sha256(principal.encode()).hexdigest().upper()[:17]
    principal_id = account if kind == "Root" else prefix + digest
    if kind == "AssumedRole" and resource.count("/") >= 2:
        principal_id += ":" + resource.rsplit("/", 1)[1]
    return {"type": kind, "principalId": principal_id, "arn": principal, "accountId": account}


def _resource(arn: str) -> dict[str, str]:
    parts = arn.split(":", 5)
    account = parts[4] if len(parts) == 6 else ""
    kind = "AWS::KMS::Alias" if len(parts) == 6 and parts[5].startswith("alias/") else "AWS::KMS::Key"
    return {"ARN": arn, "accountId": account, "type": kind}


def _uuid4_text(h: str) -> str:
    """32 random hex digits as a version 4 UUID string (what ``str(uuid.uuid4())`` gives)."""
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def _event_ids() -> tuple[str, str]:
    """A request id and an event id: random UUIDs from one read of the OS random source."""
    h = os.urandom(32).hex()
    return _uuid4_text(h[:32]), _uuid4_text(h[32:])


def build_event(*, event_name: str, region: str, account: str, principal: str,
                request_parameters: Mapping[str, object], response_elements: Mapping[str, object] | None,
                error_code: str | None, error_message: str | None, key_arns: Sequence[str],
                event_time: datetime, source_ip: str = "127.0.0.1", user_agent: str = "envelope",
                read_only: bool = False) -> dict[str, object]:
    """Return a CloudTrail-shaped record of one KMS call, with secrets scrubbed.

    Field names are camelCased as CloudTrail writes them (``KeyId`` becomes ``keyId``); the keys
    of encryption contexts are data and stay as given. Plaintext, ciphertext blobs, key material,
    import and grant tokens, MACs, messages and signatures are dropped, and so is any bytes value.
    ``errorCode`` and ``errorMessage`` appear only for a failed call, as in CloudTrail.
    """
    request = _scrub(request_parameters)
    response = None if response_elements is None else _scrub(response_elements)
    request_id, event_id = _event_ids()
    event: dict[str, object] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": dict(_identity(principal)),
        "eventTime": utc(event_time).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "kms.amazonaws.com",
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": user_agent,
        "requestParameters": request,
        "responseElements": response or None,
        "requestID": request_id,
        "eventID": event_id,
        "readOnly": read_only,
        "resources": [_resource(arn) for arn in key_arns],
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    if error_code is not None:
        event["errorCode"] = error_code
        event["errorMessage"] = error_message or ""
    return event


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# JSONEncoder.encode builds this C encoder on every call; build it once (scrubbed events are
# acyclic trees, so the cycle check it would skip is not needed).
_C_CANONICAL = None if _c_make_encoder is None else _c_make_encoder(
    None, _CANONICAL.default, _json_str, None, ":", ",", True, False, True)


def canonical(event: object) -> str:
    """``json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``: what is hashed."""
    if _C_CANONICAL is None or isinstance(event, str):
        return _CANONICAL.encode(event)
    return "".join(_C_CANONICAL(event, 0))


class EncodedEvent(NamedTuple):
    """An event ready to append: its canonical JSON (what is hashed) and the indexed columns."""

    body: str
    ts: float          # eventTime in epoch seconds (whole seconds, as eventTime has)
    event_name: str
    principal: str
    key_arns: str      # " arn1 arn2 " (space-delimited, space-padded), as `index_fields` makes


@functools.lru_cache(maxsize=1024)
def _call_parts(event_name: str, region: str, account: str, principal: str, source_ip: str,
                user_agent: str, read_only: bool) -> tuple[str, str, str, str, str]:
    """The fixed stretches of a caller's canonical event, keys in sorted order (see `encode_event`)."""
    identity = canonical(_identity(principal))
    return ('{"awsRegion":' + _json_str(region),
            ',"eventCategory":"Management","eventID":"',
            '","eventName":' + _json_str(event_name) + ',"eventSource":"kms.amazonaws.com","eventTime":"',
            '","eventType":"AwsApiCall","eventVersion":"' + EVENT_VERSION + '","managementEvent":true,'
            '"readOnly":' + ("true" if read_only else "false") + ',"recipientAccountId":' + _json_str(account)
            + ',"requestID":"',
            ',"sourceIPAddress":' + _json_str(source_ip) + ',"userAgent":' + _json_str(user_agent)
            + ',"userIdentity":' + identity + "}")


@functools.lru_cache(maxsize=1024)
def _resources_json(key_arns: tuple[str, ...]) -> str:
    return canonical([_resource(arn) for arn in key_arns])


_time_text: tuple[int, str] = (0, "1970-01-01T00:00:00Z")


def _event_time(second: int) -> str:
    global _time_text
    last = _time_text  # one read: another thread may swap the pair, never tear it
    if last[0] == second:
        return last[1]
    text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
    _time_text = (second, text)
    return text


def encode_event(*, event_name: str, region: str, account: str, principal: str,
                 request_parameters: Mapping[str, object], response_elements: Mapping[str, object] | None,
                 error_code: str | None, error_message: str | None, key_arns: Sequence[str],
                 now: float, source_ip: str = "127.0.0.1", user_agent: str = "envelope",
                 read_only: bool = False) -> EncodedEvent:
    """Return what `build_event` builds (with ``eventTime`` = ``now`` floored to the second), encoded.

    The body is exactly ``json.dumps(event, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` of that event, assembled from cached fixed parts so that a call pays
    only for the fields that vary (ids, time, request, response, resources).
    """
    if not math.isfinite(now):
        raise ValueError("the event time must be a finite number of epoch seconds")
    second = math.floor(now)
    head, to_name, to_time, to_request, tail = _call_parts(event_name, region, account, principal,
                                                           source_ip, user_agent, read_only)
    request = canonical(_scrub(request_parameters))
    response = None if response_elements is None else _scrub(response_elements)
    arns = tuple(key_arns)
    error = "" if error_code is None else \
        ',"errorCode":' + _json_str(error_code) + ',"errorMessage":' + _json_str(error_message or "")
    request_id, event_id = _event_ids()
    body = "".join((head, error, to_name, event_id, to_time, _event_time(second), to_request,
                    request_id, '","requestParameters":', request, ',"resources":', _resources_json(arns),
                    ',"responseElements":', canonical(response) if response else "null", tail))
    return EncodedEvent(body, float(second), event_name, _principal_column(_identity(principal)),
                        " " + " ".join(arns) + " ")


def _principal_column(identity: Mapping[str, object]) -> str:
    return str(identity.get("arn") or identity.get("invokedBy") or "")


def index_fields(event: Mapping[str, object]) -> tuple[str, str]:
    """Return the principal and the space-delimited resource ARNs that lookups filter on."""
    identity = event.get("userIdentity")
    principal = ""
    if isinstance(identity, Mapping):
        principal = _principal_column(identity)
    resources = event.get("resources")
    arns = [str(r["ARN"]) for r in resources if isinstance(r, Mapping) and "ARN" in r] \
        if isinstance(resources, (list, tuple)) else []
    return principal, " " + " ".join(arns) + " "
