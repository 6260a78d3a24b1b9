"""The cryptographic materials cache: the CryptoCache protocol and LocalCache, a thread-safe LRU.

The cache stores materials it is given; it does not check that they belong to the key they are
stored under (the caching materials manager computes the keys, see `envelope.materials.caching`).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .materials import DecryptionMaterials, EncryptionMaterials

__all__ = ["CacheStats", "CryptoCache", "LocalCache", "UsageLimits"]

# The ESDK's local cache checks this many least recently used entries for expiry on each get and
# put (its "entry pruning tail size"; aws-encryption-sdk-specification local-cryptographic-materials-cache.md).
_PRUNE_TAIL = 10


@dataclass(frozen=True, slots=True)
class UsageLimits:
    """How much one cached data key may encrypt: messages and plaintext bytes in total."""

    max_messages: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of a cache's counters (all counts since the cache was made).

    :ivar hits: lookups answered with cached materials.
    :ivar misses: lookups that found no usable entry (absent, expired or used up).
    :ivar evictions: entries dropped to stay within capacity (least recently used first).
    :ivar expirations: entries dropped because their max age had passed.
    :ivar retirements: encryption entries dropped because a message would pass a usage limit.
    :ivar entries: entries held now.
    """

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    expirations: int = 0
    retirements: int = 0
    entries: int = 0


@runtime_checkable
class CryptoCache(Protocol):
    """Where a caching materials manager keeps materials (ESDK "cryptographic materials cache").

    Implementations must be safe to call from many threads, and a `get_encryption_materials`
    that returns materials must have recorded the message against the entry's usage in the same
    atomic step, so concurrent callers can never together pass a usage limit.
    """

    def get_encryption_materials(self, key: bytes, plaintext_length: int,
                                 limits: UsageLimits) -> EncryptionMaterials | None:
        """Return the live entry's materials and count one message of ``plaintext_length`` bytes
        against it, or None if there is no live entry or the message would pass ``limits``."""
        ...

    def put_encryption_materials(self, key: bytes, materials: EncryptionMaterials, *, max_age: float,
                                 plaintext_length: int, limits: UsageLimits) -> None:
        """Store materials already used for one message of ``plaintext_length`` bytes."""
        ...

    def get_decryption_materials(self, key: bytes) -> DecryptionMaterials | None:
        ...

    def put_decryption_materials(self, key: bytes, materials: DecryptionMaterials, *, max_age: float) -> None:
        ...

    def remove(self, key: bytes) -> None:
        ...

    def clear(self) -> None:
        ...

    def stats(self) -> CacheStats:
        ...


class _Entry:
    __slots__ = ("bytes", "encrypting", "expires_at", "materials", "messages")

    def __init__(self, materials: EncryptionMaterials | DecryptionMaterials, expires_at: float,
                 messages: int = 0, nbytes: int = 0) -> None:
        self.materials = materials
        # A flag rather than an isinstance() test on every lookup (a hit is ~1 us in all).
        self.encrypting = isinstance(materials, EncryptionMaterials)
        self.expires_at = expires_at
        self.messages = messages
        self.bytes = nbytes


class LocalCache:
    """An in-memory, least-recently-used materials cache shared safely by threads.

    Entries expire ``max_age`` seconds after they are stored, by ``clock``; an expired entry is
    never returned. Plaintext data keys stay in process memory until their entry is dropped:
    keep ``capacity`` and the manager's ``max_age`` as small as the workload allows.

    :param capacity: the most entries held at once (0 stores nothing).
    :param clock: seconds as a float, monotonic; default `time.monotonic`. Tests inject a fake.
    """

    def __init__(self, capacity: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError("capacity must be an int")
        if capacity < 0:
            raise ValueError("capacity must be 0 or more")
        if not callable(clock):
            raise TypeError("clock must be a callable returning seconds")
        self.capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()  # least recently used first
        # No entry expires before this time (a lower bound), so until then pruning has nothing
        # to find and is skipped; see _prune.
        self._soonest = math.inf
        self._hits = self._misses = self._evictions = self._expirations = self._retirements = 0

    def __repr__(self) -> str:
        return f"LocalCache(capacity={self.capacity})"

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    # -- the CryptoCache protocol --------------------------------------------------------------

    def get_encryption_materials(self, key: bytes, plaintext_length: int,
                                 limits: UsageLimits) -> EncryptionMaterials | None:
        with self._lock:
            entry = self._live(key)
            if entry is None or not entry.encrypting:
                self._misses += 1
                return None
            messages = entry.messages + 1
            nbytes = entry.bytes + plaintext_length
            if messages > limits.max_messages or nbytes > limits.max_bytes:
                # The ESDK drops an entry once it passes a limit; a fresh data key replaces it.
                del self._entries[key]
                self._retirements += 1
                self._misses += 1
                return None
            entry.messages = messages
            entry.bytes = nbytes
            self._entries.move_to_end(key)
            self._hits += 1
            return entry.materials  # type: ignore[return-value]  # entry.encrypting says so

    def put_encryption_materials(self, key: bytes, materials: EncryptionMaterials, *, max_age: float,
                                 plaintext_length: int, limits: UsageLimits) -> None:
        if plaintext_length > limits.max_bytes:
            raise ValueError("the first message already passes the entry's byte limit")
        # An entry that has reached a limit could serve no further message (or only empty ones):
        # storing it would only hold a plaintext data key in memory for nothing.
        if 1 >= limits.max_messages or plaintext_length >= limits.max_bytes:
            return
        with self._lock:
            self._store(key, _Entry(materials, self._clock() + max_age, 1, plaintext_length))

    def get_decryption_materials(self, key: bytes) -> DecryptionMaterials | None:
        with self._lock:
            entry = self._live(key)
            if entry is None or entry.encrypting:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return entry.materials  # type: ignore[return-value]  # not entry.encrypting

    def put_decryption_materials(self, key: bytes, materials: DecryptionMaterials, *, max_age: float) -> None:
        with self._lock:
            self._store(key, _Entry(materials, self._clock() + max_age))

    def remove(self, key: bytes) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._soonest = math.inf

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(hits=self._hits, misses=self._misses, evictions=self._evictions,
                              expirations=self._expirations, retirements=self._retirements,
                              entries=len(self._entries))

    # -- internals (called with the lock held) -------------------------------------------------

    def _live(self, key: bytes) -> _Entry | None:
        now = self._clock()
        if now >= self._soonest:
            self._prune(now)
        entry = self._entries.get(key)
        if entry is not None and now >= entry.expires_at:
            del self._entries[key]
            self._expirations += 1
            return None
        return entry

    def _store(self, key: bytes, entry: _Entry) -> None:
        now = self._clock()
        if now >= self._soonest:
            self._prune(now)
        entries = self._entries
        entries[key] = entry
        entries.move_to_end(key)
        self._soonest = min(self._soonest, entry.expires_at)
        while len(entries) > self.capacity:
            entries.popitem(last=False)
            self._evictions += 1

    def _prune(self, now: float) -> None:
        # Spec "Pruning": evict the expired entries among the N least recently used.
        entries = self._entries
        expired = [key for key, entry in itertools.islice(entries.items(), _PRUNE_TAIL) if now >= entry.expires_at]
        for key in expired:
            del entries[key]
        self._expirations += len(expired)
        # Refresh the bound that lets _live and _store skip this scan. Only when the cache is
        # small enough for that to cost no more than the scan itself (the usual case: one entry
        # per distinct encryption context); a larger cache keeps its stale bound and is scanned
        # on every call, as the spec describes. Removals elsewhere only leave the bound lower.
        if len(entries) <= _PRUNE_TAIL:
            self._soonest = min((entry.expires_at for entry in entries.values()), default=math.inf)
