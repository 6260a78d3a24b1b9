"""The ASGI application of `envelope kms serve`: SigV4-authenticated KMS JSON and STS query endpoints.

Every request is authenticated before its body is interpreted; service calls run on LocalKMS as
the access key's principal. Bodies, blobs and secrets never reach the access log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from json.encoder import c_make_encoder as _c_make_encoder  # type: ignore[attr-defined]
from json.encoder import encode_basestring_ascii as _json_ascii
from typing import IO, Any
from urllib.parse import parse_qs

from ...errors import KMSError
from ..authz.condkeys import user_id
from ..client import LocalKMS
from ..model.operations import OPERATIONS as MODEL
from ..model.validation import REQUIRED_MEMBERS, validate
from .accesskeys import AccessKeys
from .group import GroupCommit
from .protocol import (
    JSON_CONTENT_TYPE,
    OPERATIONS,
    TARGET_PREFIX,
    ProtocolError,
    decode_request,
    encode_response,
    error_body,
    error_status,
    sts_error,
    sts_identity,
)
from .sigv4 import SignatureError, Verifier

__all__ = ["AccessLog", "DEFAULT_MAX_BODY", "KMSApp"]

DEFAULT_MAX_BODY = 256 * 1024  # KMS requests are small: a 4 KiB plaintext, a 32 KiB policy
_MAX_OPERATION = 128  # characters of an X-Amz-Target operation kept in logs and audit events
# Headers a request must sign when it carries them: a KMS request's target names its operation.
_MUST_SIGN = {"kms": ("x-amz-target",)}
_CONTENT_TYPES = {t: t.encode() for t in (JSON_CONTENT_TYPE, "application/json", "text/xml", "text/plain")}
_log = logging.getLogger("envelope.kms.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _not_json(value: object) -> object:
    raise TypeError(f"envelope: internal error: cannot log {type(value).__name__}")


# json.dumps(record, separators=(",", ":")) builds a JSONEncoder and a C encoder per call; build
# the C encoder once (records are flat dicts of str, int, float and None: no cycles to check).
_ENCODE = None if _c_make_encoder is None else _c_make_encoder(
    None, _not_json, _json_ascii, None, ":", ",", False, False, True)


class AccessLog:
    """Structured access log: one JSON object per request, per line, flushed as written.

    Records who called what and how it ended (address, user agent, access key id, principal,
    operation, status, error code, sizes, duration); never bodies, blobs or secrets.
    """

    def __init__(self, stream: IO[str] | None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, record: dict[str, object]) -> None:
        if self._stream is None:
            return
        if _ENCODE is None:
            line = json.dumps(record, separators=(",", ":")) + "\n"
        else:
            line = "".join(_ENCODE(record, 0)) + "\n"
        with self._lock:
            self._stream.write(line)
            self._stream.flush()


def _request_id() -> str:
    """A random version 4 UUID string, as ``str(uuid.uuid4())`` (without building a UUID object)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


_second_text: tuple[int, str] = (0, "")


def _log_time() -> str:
    """Now in UTC as ``2026-01-31T12:00:00.123Z`` (the second's text is cached: one per second)."""
    global _second_text
    now = time.time()
    second = int(now)
    cached = _second_text  # one read: another thread may swap the pair, never tear it
    if cached[0] != second:
        cached = _second_text = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{int((now - second) * 1000):03d}Z"


class KMSApp:
    """An ASGI 3 application serving LocalKMS over the KMS JSON 1.1 protocol, plus STS and /health.

    Routes: ``POST /`` with ``X-Amz-Target: TrentService.<Operation>`` (KMS);
    ``POST /`` with a form body ``Action=GetCallerIdentity`` (STS); ``GET /health``.

    Service calls run on the event loop thread: LocalKMS calls are short, CPU-bound and serialized
    by SQLite's write lock, so a thread hop would only add latency. The calls of one loop pass
    share one commit (`GroupCommit`); each response is sent once its call is committed.

    :param data_dir: the KMS data directory (None: LocalKMS's default).
    :param database: a PostgreSQL URL (default ``$ENVELOPE_KMS_DATABASE``): the store several
        instances share; the data directory then holds only the root key.
    :param regions: the regions served; a request is routed by its credential scope's region.
    :param access_log: where JSON access-log lines go (None: nowhere).
    :param clock: epoch seconds for signature freshness (tests move it).
    :param call_lock: a lock file that serializes service calls across worker processes (Unix).
        SQLite would serialize them anyway, but its busy handler polls with sleeps of 1 ms and
        more; waiting on the lock wakes as soon as the other worker's group of calls commits.
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, regions: Sequence[str] = ("us-east-1",),
                 *, max_body: int = DEFAULT_MAX_BODY, access_log: IO[str] | None = sys.stderr,
                 clock: Callable[[], float] = time.time, account: str = "111122223333",
                 call_lock: str | os.PathLike[str] | None = None, database: str | None = None) -> None:
        if not regions:
            raise ValueError("at least one region must be served")
        if max_body < 1:
            raise ValueError("max_body must be positive")
        self.access_keys = AccessKeys(data_dir, database)
        self._bases = {r: LocalKMS(data_dir, region=r, account=account, database=database) for r in regions}
        self._clients: dict[tuple[str, str, str, str, bool], LocalKMS] = {}
        self.verifier = Verifier(self.access_keys.lookup, list(regions), clock=clock)
        self.max_body = max_body
        self.log = AccessLog(access_log)
        self.regions = tuple(regions)
        lock_fd = None if call_lock is None else os.open(call_lock, os.O_RDWR | os.O_CREAT, 0o600)
        self._group = GroupCommit([kms._region_state() for kms in self._bases.values()], lock_fd)

    def client(self, region: str, principal: str, source_ip: str, user_agent: str,
               secure: bool = False) -> LocalKMS:
        """The LocalKMS client of one region calling as ``principal``; its audit events carry the
        caller's address and user agent, and policies see them and whether the request came over
        TLS (clients are reused: a busy caller keeps all three stable)."""
        slot = (region, principal, source_ip, user_agent, secure)
        found = self._clients.get(slot)
        if found is None:
            if len(self._clients) > 10_000:
                self._clients.clear()
            found = self._bases[region].for_principal(principal, source_ip=source_ip or "unknown",
                                                      user_agent=user_agent or "unknown",
                                                      secure_transport=secure)
            self._clients[slot] = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        request_id = _request_id()
        headers: dict[str, list[str]] = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            found = headers.get(name)
            if found is None:
                headers[name] = [raw_value.decode("latin-1")]
            else:
                found.append(raw_value.decode("latin-1"))
        client = scope.get("client")
        record: dict[str, object] = {
            "time": _log_time(), "request_id": request_id, "remote": client[0] if client else None,
            "method": scope["method"], "path": scope["path"],
            "user_agent": headers.get("user-agent", [""])[0][:256]}
        status, body, content_type = await self._handle(scope, receive, headers, record, request_id)
        record["status"] = status
        if status == 499:  # the client went away before sending its body: nobody to answer
            self.log.write(record)
            return
        record["bytes_out"] = len(body)
        record["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
        # Logged before answering, so a caller that has its answer finds its line in the log.
        self.log.write(record)
        response_headers = [(b"content-type", _CONTENT_TYPES.get(content_type) or content_type.encode()),
                            (b"content-length", str(len(body)).encode()), (b"x-amzn-requestid", request_id.encode())]
        if status == 413:
            # The unread rest of the body cannot be skipped safely: end the connection.
            response_headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._group.close()
                self.access_keys.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _read_body(self, receive: Receive, headers: dict[str, list[str]]) -> bytes | None:
        declared = headers.get("content-length")
        if declared:
            try:
                length = int(declared[0])
            except ValueError:
                raise ProtocolError("SerializationException", "Content-Length is not a number.") from None
            if length > self.max_body:
                raise self._too_large()
        chunks = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks += message.get("body", b"")
            if len(chunks) > self.max_body:
                raise self._too_large()
            if not message.get("more_body", False):
                return bytes(chunks)

    def _too_large(self) -> ProtocolError:
        return ProtocolError("ValidationException",
                             f"The request body exceeds the limit of {self.max_body} bytes.", 413)

    async def _handle(self, scope: Scope, receive: Receive, headers: dict[str, list[str]],
                      record: dict[str, object], request_id: str) -> tuple[int, bytes, str]:
        method, path = scope["method"], scope["path"]
        target = headers.get("x-amz-target", [""])[0]
        content_type = headers.get("content-type", [""])[0]
        is_query = not target and content_type.startswith("application/x-www-form-urlencoded")
        try:
            if path == "/health":
                if method not in ("GET", "HEAD"):
                    raise ProtocolError("MethodNotAllowed", "Use GET /health.", 405)
                return 200, b'{"status":"ok"}', "application/json"
            if method != "POST" or path != "/":
                raise ProtocolError("NotFound", f"No route for {method} {path}.", 404)
            body = await self._read_body(receive, headers)
            if body is None:
                return 499, b"", "text/plain"
            record["bytes_in"] = len(body)
            if is_query:
                return self._sts(scope, headers, body, record, request_id)
            kms, name, params, refused = self._kms_request(scope, headers, body, target, record)
            turn = self._group.turn()
            if turn is not None:  # a group just committed: the store is other writers' for a moment
                await turn
            if refused is not None:
                # Authenticated but refused before dispatch: audited with its error code, as
                # CloudTrail records failed calls; answered once that event is committed.
                committed = self._group.join()
                kms._audit_rejected(str(record["operation"]), refused.code, refused.message, params)
                await committed
                raise refused
            status, payload, committed = self._kms_call(kms, name, params, record)
            # Durable audit: answer only once the call and its audit event are committed.
            await committed
            return status, payload, JSON_CONTENT_TYPE
        except ProtocolError as exc:
            return self._error(exc.code, exc.message, exc.status, is_query, record, request_id)
        except SignatureError as exc:
            return self._error(exc.code, exc.message, error_status(exc.code), is_query, record, request_id)
        except Exception:  # noqa: BLE001 - a bug or a damaged store: answer like the service, keep serving
            _log.exception("internal error")
            return self._error("KMSInternalException", "An internal error occurred.", 500, is_query, record,
                               request_id)

    def _error(self, code: str, message: str, status: int, is_query: bool, record: dict[str, object],
               request_id: str) -> tuple[int, bytes, str]:
        record["error"] = code
        if is_query:
            sts_status, body = sts_error(code, message, request_id)
            return (status if status in (404, 405, 413) else sts_status), body, "text/xml"
        return status, error_body(code, message), JSON_CONTENT_TYPE

    def _authenticate(self, scope: Scope, headers: dict[str, list[str]], body: bytes, service: str,
                      record: dict[str, object]) -> tuple[str, str]:
        query = scope.get("query_string", b"").decode("latin-1")
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").split("?", 1)[0]
        verified = self.verifier.verify(scope["method"], raw_path, query, headers, body, service,
                                        _MUST_SIGN.get(service, ()))
        record["access_key_id"] = verified.access_key_id
        record["principal"] = verified.principal
        record["region"] = verified.region
        return verified.principal, verified.region

    def _kms_request(self, scope: Scope, headers: dict[str, list[str]], body: bytes, target: str,
                     record: dict[str, object]) -> tuple[LocalKMS, str, dict[str, Any], ProtocolError | None]:
        """Authenticate, decode and validate a KMS request: the caller's client, the operation, the
        arguments, and the ProtocolError that refuses the (authenticated) request, if any: the
        caller audits it."""
        if not target.startswith(TARGET_PREFIX):
            raise ProtocolError("UnknownOperationException", "Missing or unknown X-Amz-Target.")
        operation = target[len(TARGET_PREFIX):]
        record["operation"] = operation[:_MAX_OPERATION]
        principal, region = self._authenticate(scope, headers, body, "kms", record)
        client = scope.get("client")
        secure = scope.get("scheme") == "https"
        kms = self.client(region, principal, client[0] if client else "", str(record["user_agent"]), secure)
        if operation not in OPERATIONS:
            unknown = f"Unknown operation {operation[:_MAX_OPERATION]}."
            return kms, "", {}, ProtocolError("UnknownOperationException", unknown)
        try:
            params = decode_request(body)
        except ProtocolError as exc:
            return kms, operation, {}, exc
        for name in REQUIRED_MEMBERS[operation]:  # every served operation is in the model (tested)
            if params.get(name) is None:
                # A raw request without a required member: the service's ValidationException
                # counts it with the other failures. (The constraints of complete requests are
                # checked by LocalKMS, before authorization, like every caller's.)
                try:
                    validate(MODEL[operation], params, require=True)
                except KMSError as exc:
                    return kms, operation, params, ProtocolError(exc.code, exc.response["Error"]["Message"])
        return kms, operation, params, None

    def _kms_call(self, kms: LocalKMS, operation: str, params: dict[str, Any],
                  record: dict[str, object]) -> tuple[int, bytes, asyncio.Future[None]]:
        """Run one KMS call; returns the status, the body and the commit to wait for."""
        committed = self._group.join()  # no await from here to the end of the call
        try:
            result = kms._dispatch(operation, params)  # the same path as LocalKMS's methods
        except KMSError as exc:
            code = exc.code or "KMSInternalException"
            record["error"] = code
            return error_status(code), error_body(code, exc.response["Error"]["Message"]), committed
        except (TypeError, ValueError) as exc:
            # LocalKMS's audit log records these as ValidationException too.
            record["error"] = "ValidationException"
            return 400, error_body("ValidationException", str(exc)), committed
        except Exception:  # noqa: BLE001 - any other failure is the service's, not the caller's
            _log.exception("internal error in %s", record.get("operation"))
            record["error"] = "KMSInternalException"
            return 500, error_body("KMSInternalException", "An internal error occurred."), committed
        return 200, encode_response(result), committed

    def _sts(self, scope: Scope, headers: dict[str, list[str]], body: bytes, record: dict[str, object],
             request_id: str) -> tuple[int, bytes, str]:
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise ProtocolError("MalformedInput", "The request body is not valid form data.") from None
        action = form.get("Action", [""])[0]
        record["operation"] = f"sts:{action}"
        principal, _ = self._authenticate(scope, headers, body, "sts", record)
        if action != "GetCallerIdentity":
            raise ProtocolError("InvalidAction", f"Could not find operation {action} for version "
                                f"{form.get('Version', [''])[0]}.")
        return 200, sts_identity(principal, user_id(principal), request_id), "text/xml"
