"""AWS Signature Version 4 verification of HTTP requests (header-signed, as boto3 and the aws CLI send).

Verification proves the sender knew the access key's secret and that the method, path, query,
signed headers and body are the ones it signed, at a time within the allowed clock skew.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

__all__ = ["ALGORITHM", "MAX_SKEW_SECONDS", "SignatureError", "Verified", "Verifier", "signing_key"]

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_SECONDS = 300  # AWS allows 5 minutes either way
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_HEADER_NAMES = {"x-amz-target": "X-Amz-Target"}
_AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z$")
_SPACES = re.compile(r"\s+")


class SignatureError(Exception):
    """A request failed authentication; ``code`` is the AWS error code, ``message`` the text.

    Codes follow what AWS JSON services answer: MissingAuthenticationTokenException (no
    signature), IncompleteSignatureException (malformed), UnrecognizedClientException (unknown or
    inactive access key), InvalidSignatureException (mismatch, expired or wrong scope).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Verified:
    """What a valid signature established: who signed, and for which region and service."""

    access_key_id: str
    principal: str
    region: str
    service: str


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 signing key: HMAC chain over the date, region, service and ``aws4_request``."""
    k = hmac.digest(("AWS4" + secret).encode(), date.encode(), "sha256")
    k = hmac.digest(k, region.encode(), "sha256")
    k = hmac.digest(k, service.encode(), "sha256")
    return hmac.digest(k, b"aws4_request", "sha256")


def _canonical_uri(path: str) -> str:
    if path == "/":
        return path
    # Non-S3 services sign the normalized path, URI-encoded once more (botocore does the same).
    segments: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if segments:
                segments.pop()
            continue
        segments.append(part)
    normalized = "/" + "/".join(segments)
    if path.endswith("/") and normalized != "/":
        normalized += "/"
    return quote(normalized, safe="/~")


def _canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs: list[tuple[str, str]] = []
    for item in query.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def _parse_authorization(value: str) -> tuple[str, list[str], str]:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError("IncompleteSignatureException",
                             "Authorization header requires the AWS4-HMAC-SHA256 algorithm.")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, val = part.strip().partition("=")
        if sep:
            fields[name.strip()] = val.strip()
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if n not in fields]
    if missing:
        raise SignatureError("IncompleteSignatureException",
                             f"Authorization header requires '{missing[0]}' parameter.")
    names = fields["SignedHeaders"]
    signed = names.split(";")
    if not all(signed) or signed != sorted(signed) or names != names.lower():
        raise SignatureError("IncompleteSignatureException", "SignedHeaders is malformed.")
    return fields["Credential"], signed, fields["Signature"]


# An access key lookup: the secret and the principal of an active key, or None.
KeyLookup = Callable[[str], "tuple[str, str] | None"]


class Verifier:
    """Verifies SigV4 ``Authorization`` headers against registered access keys.

    Derived signing keys are cached per (access key, date, region, service); the cache is keyed
    by the secret too, so a deleted and re-created key never reuses a stale entry.

    :param lookup: access key id -> (secret, principal ARN) for active keys, else None.
    :param regions: the regions this endpoint serves; a credential scoped elsewhere is rejected.
    :param clock: epoch seconds (injectable so tests can check the skew window).
    """

    def __init__(self, lookup: KeyLookup, regions: Sequence[str], *,
                 clock: Callable[[], float] = time.time, max_skew: float = MAX_SKEW_SECONDS) -> None:
        self._lookup = lookup
        self._regions = frozenset(regions)
        self._clock = clock
        self._max_skew = max_skew
        self._keys: dict[tuple[str, str, str, str, str], bytes] = {}
        self._signed_at: tuple[str, int] = ("", 0)  # the last valid X-Amz-Date and its epoch seconds

    def verify(self, method: str, path: str, query: str, headers: Mapping[str, Sequence[str]],
               body: bytes, service: str, must_sign: Sequence[str] = ()) -> Verified:
        """Check one request; ``headers`` maps lower-case names to their values in order.

        The payload hash is always the body's SHA-256: ``UNSIGNED-PAYLOAD`` is for Amazon S3 only,
        so a request signed over it fails as a signature mismatch, as it does at AWS KMS.
        ``must_sign``: headers that must be among the signed ones when present (a KMS request's
        ``X-Amz-Target``: unsigned, it could be re-targeted in transit to another operation).

        :raises SignatureError: the request is unsigned, malformed, expired, for another scope,
            signed with an unknown key, or its signature (over the received body) does not match.
        """
        auth = headers.get("authorization")
        if not auth:
            if "X-Amz-Signature=" in query or "x-amz-signature=" in query.lower():
                raise SignatureError("IncompleteSignatureException",
                                     "Query-string (presigned) authentication is not supported.")
            raise SignatureError("MissingAuthenticationTokenException", "Missing Authentication Token")
        credential, signed_headers, signature = _parse_authorization(auth[0])
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            raise SignatureError("IncompleteSignatureException",
                                 f"Credential should be scoped to a valid format: '{credential}'.")
        access_key_id, scope_date, region, scope_service, _ = parts
        if "host" not in signed_headers:
            raise SignatureError("IncompleteSignatureException",
                                 "Signed headers must include the host header.")
        amz_date = _first(headers, "x-amz-date")
        if amz_date is None or not _AMZ_DATE.match(amz_date):
            raise SignatureError("IncompleteSignatureException",
                                 "Authorization header requires existence of a valid X-Amz-Date header.")
        if "x-amz-date" not in signed_headers:
            raise SignatureError("IncompleteSignatureException", "X-Amz-Date must be a signed header.")
        for name in must_sign:
            if name not in signed_headers and name in headers:
                raise SignatureError("IncompleteSignatureException",
                                     f"{_HEADER_NAMES.get(name, name)} must be a signed header.")
        if scope_date != amz_date[:8]:
            raise SignatureError("InvalidSignatureException",
                                 f"Date in Credential scope does not match YYYYMMDD from ISO-8601 "
                                 f"version of date from HTTP: '{scope_date}' != '{amz_date[:8]}'.")
        self._check_time(amz_date)
        if scope_service != service:
            raise SignatureError("InvalidSignatureException",
                                 f"Credential should be scoped to correct service: '{service}'.")
        if region not in self._regions:
            raise SignatureError("InvalidSignatureException",
                                 f"Credential should be scoped to a valid region, not '{region}'.")
        if _first(headers, "x-amz-security-token") is not None:
            # Temporary credentials are never issued here, so no session token can be valid.
            raise SignatureError("UnrecognizedClientException",
                                 "The security token included in the request is invalid.")
        found = self._lookup(access_key_id)
        if found is None:
            raise SignatureError("UnrecognizedClientException",
                                 "The security token included in the request is invalid.")
        secret, principal = found

        body_hash = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
        claimed = _first(headers, "x-amz-content-sha256")
        if claimed is not None and claimed != _UNSIGNED_PAYLOAD and not hmac.compare_digest(claimed, body_hash):
            # The body was changed after signing (or a replay carries another body).
            raise SignatureError("InvalidSignatureException",
                                 "The provided x-amz-content-sha256 header does not match what was computed.")
        payload_hash = body_hash  # never UNSIGNED-PAYLOAD: see the docstring

        canonical_headers = []
        for name in signed_headers:
            values = headers.get(name)
            if values is None:
                raise SignatureError("InvalidSignatureException",
                                     f"The signed header '{name}' is missing from the request.")
            joined = _trim(values[0]) if len(values) == 1 else ",".join([_trim(v) for v in values])
            canonical_headers.append(f"{name}:{joined}\n")
        signed = ";".join(signed_headers)
        canonical_request = "\n".join((method, _canonical_uri(path), _canonical_query(query),
                                       "".join(canonical_headers), signed, payload_hash))
        scope = f"{scope_date}/{region}/{service}/aws4_request"
        string_to_sign = "\n".join((ALGORITHM, amz_date, scope,
                                    hashlib.sha256(canonical_request.encode()).hexdigest()))
        cache_key = (access_key_id, secret, scope_date, region, service)
        key = self._keys.get(cache_key)
        if key is None:
            if len(self._keys) > 4096:
                self._keys.clear()
            key = signing_key(secret, scope_date, region, service)
            self._keys[cache_key] = key
        expected = hmac.digest(key, string_to_sign.encode(), "sha256").hex()
        if not hmac.compare_digest(expected, signature.lower()):
            raise SignatureError("InvalidSignatureException",
                                 "The request signature we calculated does not match the signature you "
                                 "provided. Check your AWS Secret Access Key and signing method. Consult "
                                 "the service documentation for details.")
        return Verified(access_key_id, principal, region, service)

    def _check_time(self, amz_date: str) -> None:
        cached = self._signed_at  # one read: another thread may swap the pair, never tear it
        if cached[0] == amz_date:
            signed_at = cached[1]  # requests signed in the same second share their X-Amz-Date
        else:
            try:
                signed_at = calendar.timegm((int(amz_date[0:4]), int(amz_date[4:6]), int(amz_date[6:8]),
                                             int(amz_date[9:11]), int(amz_date[11:13]), int(amz_date[13:15])))
                datetime(int(amz_date[0:4]), int(amz_date[4:6]), int(amz_date[6:8]),
                         int(amz_date[9:11]), int(amz_date[11:13]), int(amz_date[13:15]))
            except ValueError:
                raise SignatureError("IncompleteSignatureException",
                                     f"X-Amz-Date is not a valid time: '{amz_date}'.") from None
            self._signed_at = (amz_date, signed_at)
        now = self._clock()
        if abs(now - signed_at) > self._max_skew:
            stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
            word = "earlier" if signed_at < now else "later"
            raise SignatureError("InvalidSignatureException",
                                 f"Signature expired: {amz_date} is now {word} than the allowed window "
                                 f"around {stamp} ({self._max_skew // 60:.0f} min.)")


def _trim(value: str) -> str:
    # Canonical header values: trimmed, runs of spaces collapsed (the common case has none).
    if "  " in value or "\t" in value or value != value.strip():
        return _SPACES.sub(" ", value.strip())
    return value


def _first(headers: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None
