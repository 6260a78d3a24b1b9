"""The caching materials manager: reuses data keys from a CryptoCache within usage limits (ESDK caching CMM).

Concurrent misses for one entry are coalesced into a single call to the underlying manager.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import threading
import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..format.context import serialize_context
from ..format.header import EncryptedDataKey
from ..format.suites import AlgorithmSuite, CommitmentPolicy
from ..keyrings.base import Keyring
from .base import MaterialsManager
from .cache import CryptoCache, UsageLimits
from .default import DefaultMaterialsManager
from .materials import DecryptionMaterials, DecryptionRequest, EncryptionMaterials, EncryptionRequest

__all__ = [
    "CachingMaterialsManager",
    "CachingStats",
    "MAX_BYTES_PER_KEY",
    "MAX_MESSAGES_PER_KEY",
    "decryption_cache_id",
    "encryption_cache_id",
]

# ESDK caching-cmm.md "Limit Messages" / "Limit Bytes": the defaults and the largest values allowed.
MAX_MESSAGES_PER_KEY = 2 ** 32
MAX_BYTES_PER_KEY = 2 ** 63 - 1

_EDK_HASHES_END = bytes(64)  # caching-cmm.md Appendix A: "512 zero bits" after the EDK hashes

# The suites each policy lets a cache hit encrypt with, and the decryptions it may cache (a KDF
# suite the policy accepts), as tables: one lookup instead of two enum property calls per hit.
_IDENTITY_KDF_SUITES = frozenset(s for s in AlgorithmSuite if s.kdf_hash is None)
_ENCRYPT_SUITES = {policy: frozenset(s for s in AlgorithmSuite if policy.allows_encrypt(s))
                   for policy in CommitmentPolicy}
_CACHEABLE_DECRYPT_SUITES = {policy: frozenset(s for s in AlgorithmSuite
                                               if s.kdf_hash is not None and policy.allows_decrypt(s))
                             for policy in CommitmentPolicy}

_T = TypeVar("_T")


def _sha512(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()


def encryption_cache_id(partition: str, encryption_context: Mapping[str, str],
                        algorithm: AlgorithmSuite | None) -> bytes:
    """The cache identifier of an encryption request (ESDK caching-cmm.md, Appendix A)."""
    return _encryption_id(_sha512(partition.encode("utf-8")), algorithm, tuple(encryption_context.items()))


def decryption_cache_id(partition: str, algorithm: AlgorithmSuite, encrypted_data_keys: Sequence[EncryptedDataKey],
                        encryption_context: Mapping[str, str]) -> bytes:
    """The cache identifier of a decryption request (ESDK caching-cmm.md, Appendix A)."""
    return _decryption_id(_sha512(partition.encode("utf-8")), algorithm, tuple(encrypted_data_keys),
                          tuple(encryption_context.items()))


# The identifiers are memoized: computing one costs several SHA-512 calls and a serialization,
# which would be most of the cost of a cache hit. The bound caps the memory held by the keys
# (a context or an EDK is at most 64 KiB).
@functools.lru_cache(maxsize=256)
def _encryption_id(partition_digest: bytes, algorithm: AlgorithmSuite | None,
                   context_items: tuple[tuple[str, str], ...]) -> bytes:
    suite_part = b"\x00" if algorithm is None else b"\x01" + algorithm.wire_id
    return _sha512(partition_digest + suite_part + _sha512(serialize_context(dict(context_items))))


@functools.lru_cache(maxsize=256)
def _decryption_id(partition_digest: bytes, algorithm: AlgorithmSuite, edks: tuple[EncryptedDataKey, ...],
                   context_items: tuple[tuple[str, str], ...]) -> bytes:
    edk_hashes = sorted(_sha512(edk.serialize()) for edk in edks)
    return _sha512(partition_digest + algorithm.wire_id + b"".join(edk_hashes) + _EDK_HASHES_END
                   + _sha512(serialize_context(dict(context_items))))


@dataclass(frozen=True, slots=True)
class CachingStats:
    """A snapshot of one caching manager's counters, with its cache's entry counters.

    :ivar hits: requests answered without calling the underlying manager (from a cache entry,
        or, for decryption, with the result of a concurrent identical call).
    :ivar misses: cacheable requests that called the underlying manager.
    :ivar bypassed: requests the rules keep away from the cache (identity-KDF suite, unknown
        plaintext length, a message larger than ``max_bytes``, a refused suite or context).
    :ivar coalesced: requests that waited for a concurrent call for the same entry instead of
        making their own.
    :ivar keyring_calls: calls to the underlying manager (``misses + bypassed``).
    :ivar keyring_calls_saved: calls avoided (equal to ``hits``).
    :ivar evictions, expirations, retirements, entries: the cache's counters
        (shared with every manager using the same cache; see `CacheStats`).
    """

    hits: int = 0
    misses: int = 0
    bypassed: int = 0
    coalesced: int = 0
    keyring_calls: int = 0
    keyring_calls_saved: int = 0
    evictions: int = 0
    expirations: int = 0
    retirements: int = 0
    entries: int = 0


class _Flight(Generic[_T]):
    """One in-progress call to the underlying manager that other threads wait for."""

    __slots__ = ("_done", "error", "result")

    def __init__(self) -> None:
        self._done = threading.Event()
        self.result: _T | None = None
        self.error: BaseException | None = None

    def finish(self) -> None:
        self._done.set()

    def wait(self) -> _T | None:
        self._done.wait()
        if self.error is not None:
            # Waiters share the leader's failure, as concurrent.futures does: retrying at once
            # would only repeat the call the feature exists to avoid.
            raise self.error
        return self.result


class CachingMaterialsManager:
    """Reuses encryption and decryption materials from a cache, so most messages need no keyring call.

    Follows the ESDK caching CMM: an encryption data key is reused for at most ``max_messages``
    messages and ``max_bytes`` plaintext bytes in total (a message that would pass either limit
    gets a fresh data key), and for at most ``max_age`` seconds; decryption materials are kept
    for ``max_age`` seconds. Suites without a KDF (the data key is the AES key) are never cached,
    nor are encryptions of unknown length, as the ESDK specification requires: a stream is cached
    only when its length is passed as ``plaintext_length=`` (compressed messages never are, since
    their encrypted length is not known in advance). For signing suites the signing key is cached
    with the entry, so messages sharing a data key also share a signing key (as in the ESDK).

    Thread-safe: concurrent misses for the same entry make a single call to the underlying manager
    while the other threads wait for it and then share its result (or its error).

    Caching trades key freshness for speed: a cached plaintext data key stays in memory until its
    entry is dropped, and a revoked wrapping key keeps working for cached entries until they expire.

    :param keyring: wrapped in a `DefaultMaterialsManager`; or
    :param materials_manager: the manager to call on a miss.
    :param cache: where entries live (`LocalCache`); caches may be shared by managers.
    :param max_age: seconds an entry may be used, > 0 (measured by the cache's clock).
    :param max_messages: messages per data key, 1 .. 2**32 (default 2**32).
    :param max_bytes: plaintext bytes per data key, 0 .. 2**63-1 (default 2**63-1).
    :param partition: managers sharing a cache share entries only if their partitions are equal;
        default: a random UUID, so entries are private to this manager.
    """

    def __init__(self, *, keyring: Keyring | None = None, materials_manager: MaterialsManager | None = None,
                 cache: CryptoCache, max_age: float, max_messages: int = MAX_MESSAGES_PER_KEY,
                 max_bytes: int = MAX_BYTES_PER_KEY, partition: str | None = None) -> None:
        if (keyring is None) == (materials_manager is None):
            raise TypeError("give exactly one of keyring= or materials_manager=")
        if materials_manager is not None and not hasattr(materials_manager, "get_encryption_materials"):
            raise TypeError("materials_manager must implement get_encryption_materials and decrypt_materials")
        for method in ("get_encryption_materials", "put_encryption_materials", "get_decryption_materials",
                       "put_decryption_materials"):
            if not callable(getattr(cache, method, None)):
                raise TypeError(f"cache must implement the CryptoCache protocol (missing {method})")
        if isinstance(max_age, bool) or not isinstance(max_age, (int, float)):
            raise TypeError("max_age must be a number of seconds")
        if not (max_age > 0 and math.isfinite(max_age)):
            raise ValueError("max_age must be a finite number of seconds greater than 0")
        for name, value, low, high in (("max_messages", max_messages, 1, MAX_MESSAGES_PER_KEY),
                                       ("max_bytes", max_bytes, 0, MAX_BYTES_PER_KEY)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int")
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high}")
        if partition is None:
            partition = str(uuid.uuid4())
        elif not isinstance(partition, str):
            raise TypeError("partition must be a str")
        self.underlying: MaterialsManager = (materials_manager if materials_manager is not None
                                             else DefaultMaterialsManager(keyring))  # type: ignore[arg-type]
        self.cache = cache
        self.max_age = float(max_age)
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.partition = partition
        self._partition_digest = _sha512(partition.encode("utf-8"))
        self._limits = UsageLimits(max_messages, max_bytes)
        self._lock = threading.Lock()  # guards _flights and the counters
        self._flights: dict[Hashable, _Flight[object]] = {}
        self._counts = dict.fromkeys(("hits", "misses", "bypassed", "coalesced"), 0)

    def __repr__(self) -> str:
        return (f"CachingMaterialsManager({self.underlying!r}, cache={self.cache!r}, max_age={self.max_age}, "
                f"max_messages={self.max_messages}, max_bytes={self.max_bytes}, partition={self.partition!r})")

    @property
    def stats(self) -> CachingStats:
        """This manager's counters and its cache's entry counters, as one snapshot."""
        cache_stats = self.cache.stats()
        with self._lock:
            hits, misses, bypassed, coalesced = (self._counts[k] for k in ("hits", "misses", "bypassed", "coalesced"))
        return CachingStats(hits=hits, misses=misses, bypassed=bypassed, coalesced=coalesced,
                            keyring_calls=misses + bypassed, keyring_calls_saved=hits,
                            evictions=cache_stats.evictions, expirations=cache_stats.expirations,
                            retirements=cache_stats.retirements, entries=cache_stats.entries)

    # -- encryption ----------------------------------------------------------------------------

    def get_encryption_materials(self, request: EncryptionRequest) -> EncryptionMaterials:
        length = request.plaintext_length
        suite = request.algorithm
        # caching-cmm.md "Get Encryption Materials": no cache for identity-KDF suites or an
        # unknown length (change 2020-07-13: the byte limit could not be enforced).
        if length is None or length > self.max_bytes or suite in _IDENTITY_KDF_SUITES:
            self._count("bypassed")
            return self.underlying.get_encryption_materials(request)
        if length < 0:
            raise ValueError("plaintext_length must be 0 or more")
        key = _encryption_id(self._partition_digest, suite, tuple(request.encryption_context.items()))
        # A hit is the common case and is kept short (~1 us; bench/bench_caching.py prints it): one
        # cache call (which counts this message against the entry's limits atomically), the policy
        # check of _cached_encryption inlined, one counter.
        materials = self.cache.get_encryption_materials(key, length, self._limits)
        if materials is not None and materials.algorithm in _ENCRYPT_SUITES[request.commitment_policy]:
            with self._lock:
                self._counts["hits"] += 1
            return materials
        return self._encryption_miss(request, key, length)

    def _encryption_miss(self, request: EncryptionRequest, key: bytes, length: int) -> EncryptionMaterials:
        policy = request.commitment_policy

        def fetch() -> EncryptionMaterials:
            # The underlying manager is told the byte limit, not this message's length, because
            # the materials will serve up to max_bytes (change 2020-07-13).
            inner = EncryptionRequest(request.encryption_context, policy, request.algorithm, self.max_bytes)
            materials = self.underlying.get_encryption_materials(inner)
            if materials.algorithm not in _IDENTITY_KDF_SUITES:
                self.cache.put_encryption_materials(key, materials, max_age=self.max_age,
                                                    plaintext_length=length, limits=self._limits)
            return materials

        # Waiters take their share of the new entry through the cache, which counts usage
        # atomically (if it is already used up, one of them makes the next call).
        return self._single_flight((b"e", key, policy), lambda: self._cached_encryption(key, length, policy),
                                   fetch, share_result=False)

    def _cached_encryption(self, key: bytes, length: int, policy: CommitmentPolicy) -> EncryptionMaterials | None:
        materials = self.cache.get_encryption_materials(key, length, self._limits)
        # The identifier omits the commitment policy, so an entry made under another policy (with
        # its default suite) is treated as a miss and replaced.
        if materials is None or materials.algorithm not in _ENCRYPT_SUITES[policy]:
            return None
        return materials

    # -- decryption ----------------------------------------------------------------------------

    def decrypt_materials(self, request: DecryptionRequest) -> DecryptionMaterials:
        suite = request.algorithm
        required = _required_context(request) if request.reproduced_encryption_context else {}
        # A refused suite or a conflicting context goes to the underlying manager, which raises
        # the proper error; a cache hit must never skip a check the underlying manager makes.
        if required is None or suite not in _CACHEABLE_DECRYPT_SUITES[request.commitment_policy]:
            self._count("bypassed")
            return self.underlying.decrypt_materials(request)
        key = _decryption_id(self._partition_digest, suite, tuple(request.encrypted_data_keys),
                             tuple(request.encryption_context.items()))
        materials = self._cached_decryption(key, required)
        if materials is not None:
            with self._lock:
                self._counts["hits"] += 1
            return materials
        return self._decryption_miss(request, key, required)

    def _decryption_miss(self, request: DecryptionRequest, key: bytes,
                         required: dict[str, str]) -> DecryptionMaterials:
        def fetch() -> DecryptionMaterials:
            materials = self.underlying.decrypt_materials(request)
            if materials.key_check is not None:
                # The check belongs to this one message (it holds its header): not to be cached.
                materials = dataclasses.replace(materials, key_check=None)
            self.cache.put_decryption_materials(key, materials, max_age=self.max_age)
            return materials

        # Decryption materials have no usage limits: waiters take the leader's result.
        return self._single_flight((b"d", key, frozenset(required.items())),
                                   lambda: self._cached_decryption(key, required), fetch, share_result=True)

    def _cached_decryption(self, key: bytes, required: dict[str, str]) -> DecryptionMaterials | None:
        materials = self.cache.get_decryption_materials(key)
        if materials is None:
            return None
        # The identifier covers only the stored context; required keys supplied by the caller
        # (format-spec/message.md §4.5) must match the entry's too, or the entry is not ours.
        # (Checked only when either side has some: most messages have none.)
        if required or materials.required_encryption_context_keys:
            if materials.required_encryption_context_keys != frozenset(required):
                return None
            context = materials.encryption_context
            if any(context.get(k) != v for k, v in required.items()):
                return None
        return materials

    # -- single flight and counters ------------------------------------------------------------

    def _single_flight(self, flight_key: Hashable, lookup: Callable[[], _T | None], fetch: Callable[[], _T],
                       *, share_result: bool) -> _T:
        """A cache miss: one thread (the leader) looks once more and else calls ``fetch``; the
        others wait for it, then take its result (``share_result``) or look in the cache again.
        A leader's Exception is raised in its waiters too; after an interrupt they look again,
        and one of them leads."""
        waited = False
        while True:
            flight, leader = self._join(flight_key)
            if leader:
                break
            if not waited:
                waited = True
                self._count("coalesced")
            shared = flight.wait()
            materials = shared if share_result and shared is not None else lookup()
            if materials is not None:
                self._count("hits")
                return materials  # type: ignore[return-value]
        try:
            # Another thread may have stored the entry between our lookup and our join.
            materials = lookup()
            if materials is not None:
                self._count("hits")
            else:
                self._count("misses")
                materials = fetch()
            flight.result = materials
            return materials
        except Exception as exc:
            # Not BaseException: an interrupt belongs to this thread; waiters then retry.
            flight.error = exc
            raise
        finally:
            self._leave(flight_key, flight)

    def _join(self, flight_key: Hashable) -> tuple[_Flight[object], bool]:
        with self._lock:
            flight = self._flights.get(flight_key)
            if flight is not None:
                return flight, False
            flight = _Flight()
            self._flights[flight_key] = flight
            return flight, True

    def _leave(self, flight_key: Hashable, flight: _Flight[object]) -> None:
        with self._lock:
            if self._flights.get(flight_key) is flight:
                del self._flights[flight_key]
        flight.finish()

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1


def _required_context(request: DecryptionRequest) -> dict[str, str] | None:
    """The caller's context pairs that the header does not store; None if a stored value conflicts."""
    stored = request.encryption_context
    required: dict[str, str] = {}
    for key, value in (request.reproduced_encryption_context or {}).items():
        if key in stored:
            if stored[key] != value:
                return None
        else:
            required[key] = value
    return required
