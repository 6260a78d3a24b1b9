"""The KMS JSON 1.1 wire protocol and STS's query protocol: served operations, codecs, error bodies.

Decoding checks only the JSON shape and base64 blobs; parameter values are checked by LocalKMS.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from ..client import SERVED
from ..model.operations import OPERATIONS as MODEL

__all__ = [
    "BLOB_FIELDS",
    "JSON_CONTENT_TYPE",
    "OPERATIONS",
    "ProtocolError",
    "TARGET_PREFIX",
    "decode_request",
    "encode_response",
    "error_body",
    "error_status",
    "sts_error",
    "sts_identity",
]

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "TrentService."
STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"

# Request members that are blobs (base64 in JSON), from the operation table: top level, and nested
# inside a structure member. Response blobs need no table: every bytes value is a blob.
BLOB_FIELDS = frozenset(m.name for op in MODEL.values() for m in op.members if m.type == "blob")
NESTED_BLOB_FIELDS: Mapping[str, frozenset[str]] = {
    m.name: frozenset(f.name for f in m.members if f.type == "blob")
    for op in MODEL.values() for m in op.members if any(f.type == "blob" for f in m.members)
}

# HTTP status of each error code that is not a 400 (the KMS API reference's fault codes).
_STATUS = {"KMSInternalException": 500, "InternalFailure": 500, "DependencyTimeoutException": 503,
           "ServiceUnavailable": 503, "RequestEntityTooLarge": 413, "NotFound": 404,
           "MethodNotAllowed": 405}

# STS (query protocol) names and statuses for the authentication failures.
_STS_CODES = {"MissingAuthenticationTokenException": ("MissingAuthenticationToken", 403),
              "IncompleteSignatureException": ("IncompleteSignature", 400),
              "UnrecognizedClientException": ("InvalidClientTokenId", 403),
              "InvalidSignatureException": ("SignatureDoesNotMatch", 403)}

# "Encrypt" -> "encrypt", "ReEncrypt" -> "re_encrypt", ...: every operation LocalKMS serves.
OPERATIONS: Mapping[str, str] = SERVED


class ProtocolError(Exception):
    """A request that fails before reaching the service: ``code``, ``message``, HTTP ``status``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _blob(name: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise ProtocolError("SerializationException",
                            f"Expected a base64-encoded string for blob member '{name}'.")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("SerializationException",
                            f"Value of member '{name}' is not valid base64.") from None


def decode_request(body: bytes) -> dict[str, Any]:
    """Parse a JSON 1.1 request body into LocalKMS keyword arguments (blobs become bytes).

    :raises ProtocolError: SerializationException for bad JSON, a non-object body or a bad blob.
    """
    if not body.strip():
        return {}
    try:
        params = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise ProtocolError("SerializationException", "The request body is not valid JSON.") from None
    if not isinstance(params, dict):
        raise ProtocolError("SerializationException", "The request body must be a JSON object.")
    for name in BLOB_FIELDS.intersection(params):
        if params[name] is not None:
            params[name] = _blob(name, params[name])
    for outer, inner in NESTED_BLOB_FIELDS.items():
        member = params.get(outer)
        if isinstance(member, dict):
            for name in inner.intersection(member):
                if member[name] is not None:
                    member[name] = _blob(f"{outer}.{name}", member[name])
    return params


def _default(value: object) -> object:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return value.timestamp()  # epoch seconds, as the service sends timestamps
    raise TypeError(f"envelope: internal error: cannot serialize {type(value).__name__}")


def encode_response(result: Mapping[str, Any]) -> bytes:
    """Serialize a LocalKMS response: bytes as base64, datetimes as epoch seconds."""
    if "ResponseMetadata" in result:
        result = {k: v for k, v in result.items() if k != "ResponseMetadata"}
    return json.dumps(result, default=_default, separators=(",", ":")).encode()


def error_status(code: str) -> int:
    """The HTTP status KMS answers an error code with (400 unless listed as a server fault)."""
    return _STATUS.get(code, 400)


def error_body(code: str, message: str) -> bytes:
    """A KMS JSON error body: ``{"__type": code, "message": message}``."""
    return json.dumps({"__type": code, "message": message}).encode()


def sts_error(code: str, message: str, request_id: str) -> tuple[int, bytes]:
    """An STS query-protocol error: the status and the ``ErrorResponse`` XML body."""
    sts_code, status = _STS_CODES.get(code, (code, error_status(code)))
    kind = "Receiver" if status >= 500 else "Sender"
    body = (f'<ErrorResponse xmlns="{STS_NAMESPACE}"><Error><Type>{kind}</Type><Code>{escape(sts_code)}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>")
    return status, body.encode()


def sts_identity(principal: str, user_id: str, request_id: str) -> bytes:
    """The GetCallerIdentity response XML for a principal."""
    account = principal.split(":")[4]
    return (f'<GetCallerIdentityResponse xmlns="{STS_NAMESPACE}"><GetCallerIdentityResult>'
            f"<Arn>{escape(principal)}</Arn><UserId>{escape(user_id)}</UserId><Account>{account}</Account>"
            f"</GetCallerIdentityResult><ResponseMetadata><RequestId>{request_id}</RequestId>"
            f"</ResponseMetadata></GetCallerIdentityResponse>").encode()
