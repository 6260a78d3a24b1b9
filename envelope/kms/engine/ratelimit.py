"""Optional request-rate limits: a token bucket per operation (or family) raising ThrottlingException.

Buckets refill on the service clock, so tests that move a ManualClock control throttling exactly.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from ..model.errors import ThrottlingError

__all__ = ["CRYPTOGRAPHIC", "FAMILIES", "RateLimiter"]

# KMS shares one request quota among its cryptographic operations ("cryptographic operations").
CRYPTOGRAPHIC = frozenset({
    "Decrypt", "DeriveSharedSecret", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "GenerateRandom", "ReEncrypt", "Sign",
    "Verify", "VerifyMac",
})
FAMILIES: dict[str, frozenset[str] | None] = {"Cryptographic": CRYPTOGRAPHIC, "*": None}


class RateLimiter:
    """Token buckets keyed by (region, limit name); each holds at most one second of requests.

    :param limits: requests per second by operation name (``"Encrypt"``), family
        (``"Cryptographic"``) or ``"*"`` (every operation). A call must pass every matching bucket.
    """

    def __init__(self, limits: Mapping[str, float]) -> None:
        if not isinstance(limits, Mapping):
            raise TypeError("rate_limits must be a mapping of operation name to requests per second")
        self._limits: dict[str, float] = {}
        for name, rate in limits.items():
            if not isinstance(name, str):
                raise TypeError("rate_limits keys must be operation names")
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0:
                raise ValueError(f"rate limit for {name!r} must be a positive number")
            self._limits[name] = float(rate)
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _names(self, op: str) -> list[str]:
        out = []
        for name in self._limits:
            family = FAMILIES.get(name, frozenset((name,)))
            if family is None or op in family:
                out.append(name)
        return out

    def acquire(self, region: str, op: str, now: float) -> None:
        """Take one token from every bucket that applies to ``op``.

        :raises ThrottlingError: a bucket is empty (no token is taken from any bucket then).
        """
        names = self._names(op)
        if not names:
            return
        with self._lock:
            updated: dict[tuple[str, str], tuple[float, float]] = {}
            for name in names:
                rate = self._limits[name]
                slot = (region, name)
                tokens, last = self._buckets.get(slot, (rate, now))
                tokens = min(rate, tokens + max(0.0, now - last) * rate)
                if tokens < 1.0:
                    raise ThrottlingError(f"Rate exceeded for {op} (limit {name}: {rate:g}/s)")
                updated[slot] = (tokens - 1.0, now)
            self._buckets.update(updated)
