"""Who is calling, where, and on which clock: the binding every service call runs under."""

from __future__ import annotations

from dataclasses import dataclass

from ..model.clock import Clock
from ..store.partition import Partition
from .ratelimit import RateLimiter

__all__ = ["Session"]


@dataclass(frozen=True, slots=True)
class Session:
    """Who is calling, where, and on which clock: what a LocalKMS client is bound to."""

    partition: Partition
    region: str
    account: str
    principal: str
    via_service: str | None
    clock: Clock
    limiter: RateLimiter | None
    source_ip: str = "127.0.0.1"
    user_agent: str = "envelope"
    # aws:SecureTransport. In-process calls never cross a network, so they count as secure;
    # the server says whether its request came over TLS.
    secure_transport: bool = True
