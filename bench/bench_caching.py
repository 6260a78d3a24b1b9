"""Data-key caching benchmark: 1 KiB messages per second, cached vs uncached, beside the ESDK's caching CMM.

Run: ``.venv/bin/python bench/bench_caching.py [--seconds 1.0] [--rounds 5] [--json out.json]``.
Rows run interleaved in rounds (A, B, C, ..., then again) and the table shows the median round, so
load from other processes hits one round of every row; the ratio lines are what to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MESSAGE = os.urandom(1024)
WRAPPING_KEY = bytes(range(32))
COMMIT = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY"
SIGNED = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"
DECRYPT_SET = 200  # distinct messages decrypted in turn (they share data keys when made with caching)

Op = Callable[[bytes], bytes]


@dataclass
class Row:
    name: str
    label: str
    build: Callable[[], tuple[Op, Op]]
    encrypt_rates: list[float] = field(default_factory=list)
    decrypt_rates: list[float] = field(default_factory=list)
    error: str | None = None
    ops: tuple[Op, Op] | None = None
    messages: list[bytes] = field(default_factory=list)


# -- builders ------------------------------------------------------------------------------------

def _envelope_ops(keyring: Any, algorithm: str, *, cached: bool, max_messages: int) -> tuple[Op, Op]:
    import envelope
    from envelope.materials.cache import LocalCache
    from envelope.materials.caching import CachingMaterialsManager

    if cached:
        source: dict[str, Any] = {"materials_manager": CachingMaterialsManager(
            keyring=keyring, cache=LocalCache(100), max_age=600.0, max_messages=max_messages)}
    else:
        source = {"keyring": keyring}

    def encrypt(data: bytes) -> bytes:
        return envelope.encrypt(data, algorithm=algorithm, **source)

    def decrypt(message: bytes) -> bytes:
        return envelope.decrypt(message, **source)[0]

    return encrypt, decrypt


def envelope_raw(algorithm: str, cached: bool, max_messages: int) -> Callable[[], tuple[Op, Op]]:
    def build() -> tuple[Op, Op]:
        import envelope

        return _envelope_ops(envelope.RawAESKeyring("bench", "key", WRAPPING_KEY), algorithm, cached=cached,
                             max_messages=max_messages)

    return build


KMS_LATENCY = 0.0  # seconds added to each LocalKMS call by --kms-latency-ms (a network round trip)


class _Delayed:
    """A KMS client that sleeps before each cryptographic call, as a remote service's round trip would."""

    def __init__(self, client: Any, seconds: float) -> None:
        self._client = client
        self._seconds = seconds

    def _call(self, name: str, kwargs: dict[str, Any]) -> Any:
        time.sleep(self._seconds)
        return getattr(self._client, name)(**kwargs)

    def generate_data_key(self, **kwargs: Any) -> Any:
        return self._call("generate_data_key", kwargs)

    def encrypt(self, **kwargs: Any) -> Any:
        return self._call("encrypt", kwargs)

    def decrypt(self, **kwargs: Any) -> Any:
        return self._call("decrypt", kwargs)


def envelope_kms(algorithm: str, cached: bool, max_messages: int, store: str) -> Callable[[], tuple[Op, Op]]:
    """A KMS keyring over LocalKMS: ``store`` "memory" (the test store) or "file" (SQLite files in a
    fresh data directory, as a deployment has them)."""

    def build() -> tuple[Op, Op]:
        from envelope.keyrings.kms import KMSKeyring
        from envelope.kms import LocalKMS

        kms = LocalKMS(path=":memory:" if store == "memory" else tempfile.mkdtemp(prefix="bench-kms-"))
        arn = kms.create_key(Description="bench")["KeyMetadata"]["Arn"]
        client = _Delayed(kms, KMS_LATENCY) if KMS_LATENCY else kms
        return _envelope_ops(KMSKeyring(arn, client=client), algorithm, cached=cached, max_messages=max_messages)

    return build


def esdk(algorithm: str, cached: bool, max_messages: int) -> Callable[[], tuple[Op, Op]]:
    """The ESDK's master-key API with a raw AES master key, optionally under its caching CMM."""

    def build() -> tuple[Op, Op]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import aws_encryption_sdk
            from aws_encryption_sdk.identifiers import (
                Algorithm,
                CommitmentPolicy,
                EncryptionKeyType,
                WrappingAlgorithm,
            )
            from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
            from aws_encryption_sdk.key_providers.raw import RawMasterKey

        client = aws_encryption_sdk.EncryptionSDKClient(
            commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
        master_key = RawMasterKey(provider_id="bench", key_id=b"key", wrapping_key=WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
            wrapping_key=WRAPPING_KEY, wrapping_key_type=EncryptionKeyType.SYMMETRIC))
        if cached:
            source: dict[str, Any] = {"materials_manager": aws_encryption_sdk.CachingCryptoMaterialsManager(
                master_key_provider=master_key, cache=aws_encryption_sdk.LocalCryptoMaterialsCache(capacity=100),
                max_age=600.0, max_messages_encrypted=max_messages)}
        else:
            source = {"key_provider": master_key}
        suite = Algorithm[algorithm]

        def encrypt(data: bytes) -> bytes:
            return client.encrypt(source=data, algorithm=suite, **source)[0]  # type: ignore[no-any-return]

        def decrypt(message: bytes) -> bytes:
            return client.decrypt(source=message, **source)[0]  # type: ignore[no-any-return]

        return encrypt, decrypt

    return build


def rows(max_messages: int, signed: bool) -> list[Row]:
    table = []
    suites = [("commit", COMMIT)] + ([("signed", SIGNED)] if signed else [])
    for tag, suite in suites:
        table += [
            Row(f"envelope-raw-{tag}", f"envelope, raw AES keyring, {tag}, uncached",
                envelope_raw(suite, False, max_messages)),
            Row(f"envelope-raw-{tag}-cached", f"envelope, raw AES keyring, {tag}, cached",
                envelope_raw(suite, True, max_messages)),
            Row(f"envelope-kms-{tag}", f"envelope, KMS keyring over LocalKMS (SQLite files), {tag}, uncached",
                envelope_kms(suite, False, max_messages, "file")),
            Row(f"envelope-kms-{tag}-cached", f"envelope, KMS keyring over LocalKMS (SQLite files), {tag}, cached",
                envelope_kms(suite, True, max_messages, "file")),
            Row(f"envelope-kmsmem-{tag}", f"envelope, KMS keyring over LocalKMS (:memory:), {tag}, uncached",
                envelope_kms(suite, False, max_messages, "memory")),
            Row(f"envelope-kmsmem-{tag}-cached", f"envelope, KMS keyring over LocalKMS (:memory:), {tag}, cached",
                envelope_kms(suite, True, max_messages, "memory")),
            Row(f"esdk-{tag}", f"ESDK 4.x master-key API, raw AES, {tag}, uncached", esdk(suite, False, max_messages)),
            Row(f"esdk-{tag}-cached", f"ESDK 4.x CachingCryptoMaterialsManager + LocalCryptoMaterialsCache, {tag}",
                esdk(suite, True, max_messages)),
        ]
    return table


# -- measurement ---------------------------------------------------------------------------------

def _rate(op: Callable[[int], object], seconds: float) -> float:
    """Calls per second of op(i), for about ``seconds`` (at least 20 calls)."""
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        op(count)
        count += 1
        if count >= 20 and time.perf_counter() >= deadline:
            break
    return count / (time.perf_counter() - start)


def measure(row: Row, seconds: float) -> None:
    if row.error is not None:
        return
    try:
        if row.ops is None:
            row.ops = row.build()
            encrypt, decrypt = row.ops
            # The decrypt set is made by the row's own encrypt (warm-up too), so a cached row
            # decrypts messages sharing data keys, as a real reader of a cached writer would.
            row.messages = [encrypt(MESSAGE) for _ in range(DECRYPT_SET)]
            if decrypt(row.messages[0]) != MESSAGE:
                raise RuntimeError("round trip failed")
        encrypt, decrypt = row.ops
        messages = row.messages
        row.encrypt_rates.append(_rate(lambda i: encrypt(MESSAGE), seconds))
        row.decrypt_rates.append(_rate(lambda i: decrypt(messages[i % DECRYPT_SET]), seconds))
    except Exception as exc:  # a row that cannot run (e.g. LocalKMS not built yet) posts no number
        row.error = f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per row, operation and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-messages", type=int, default=1000,
                        help="messages per data key for both caching managers (default 1000)")
    parser.add_argument("--signed", action="store_true", help="also the signed default suite")
    parser.add_argument("--only", default="", help="substring of row names to run")
    parser.add_argument("--stat", choices=("median", "best"), default="median",
                        help="report the median round (default) or the best (less disturbed by other load)")
    parser.add_argument("--kms-latency-ms", type=float, default=0.0,
                        help="add this much sleep to every LocalKMS call, as a network round trip would")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    global KMS_LATENCY
    KMS_LATENCY = args.kms_latency_ms / 1000
    pick = statistics.median if args.stat == "median" else max

    table = [r for r in rows(args.max_messages, args.signed) if args.only in r.name]
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        for row in table:
            measure(row, args.seconds)
    load_after = os.getloadavg()

    print(f"1 KiB messages per second, {args.stat} of {args.rounds} rounds of {args.seconds:g} s; "
          f"max_messages={args.max_messages}, max_age=600 s, cache capacity 100"
          + (f"; LocalKMS calls delayed {args.kms_latency_ms:g} ms" if KMS_LATENCY else ""))
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"{'row':<76} {'encrypt/s':>10} {'decrypt/s':>10}")
    result: dict[str, Any] = {"rows": {}, "ratios": {}, "load_average": [load_before, load_after],
                              "max_messages": args.max_messages, "stat": args.stat,
                              "kms_latency_ms": args.kms_latency_ms}
    for row in table:
        enc = pick(row.encrypt_rates) if row.encrypt_rates else None
        dec = pick(row.decrypt_rates) if row.decrypt_rates else None
        if row.error is not None or enc is None or dec is None:
            print(f"{row.label:<76} {'-':>10} {'-':>10}  ({row.error})")
        else:
            print(f"{row.label:<76} {enc:>10,.0f} {dec:>10,.0f}")
        result["rows"][row.name] = {"label": row.label, "encrypt_per_s": enc, "decrypt_per_s": dec,
                                    "error": row.error}

    def ratio(label: str, a: str, b: str, target: float | None) -> None:
        ra, rb = result["rows"].get(a), result["rows"].get(b)
        if not ra or not rb or ra["error"] or rb["error"]:
            return
        enc = ra["encrypt_per_s"] / rb["encrypt_per_s"]
        dec = ra["decrypt_per_s"] / rb["decrypt_per_s"]
        goal = f"  (target >= {target:g}x: {'met' if min(enc, dec) >= target else 'NOT met'})" if target else ""
        print(f"{label:<60} encrypt {enc:7.1f}x  decrypt {dec:7.1f}x{goal}")
        result["ratios"][label] = {"encrypt": enc, "decrypt": dec, "target": target}

    print()
    for tag in ("commit", "signed"):
        ratio(f"{tag}: envelope cached / uncached, LocalKMS", f"envelope-kms-{tag}-cached", f"envelope-kms-{tag}",
              20 if tag == "commit" else None)
        ratio(f"{tag}: envelope cached / uncached, LocalKMS :memory:", f"envelope-kmsmem-{tag}-cached",
              f"envelope-kmsmem-{tag}", None)
        ratio(f"{tag}: envelope cached / uncached, raw AES", f"envelope-raw-{tag}-cached", f"envelope-raw-{tag}", None)
        ratio(f"{tag}: envelope cached (raw AES) / ESDK caching CMM", f"envelope-raw-{tag}-cached",
              f"esdk-{tag}-cached", 5 if tag == "commit" else None)
        ratio(f"{tag}: envelope cached (LocalKMS) / ESDK caching CMM", f"envelope-kms-{tag}-cached",
              f"esdk-{tag}-cached", None)
        ratio(f"{tag}: ESDK caching CMM / ESDK uncached", f"esdk-{tag}-cached", f"esdk-{tag}", None)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 1 if any(r.error for r in table if "kms" not in r.name) else 0


if __name__ == "__main__":
    sys.exit(main())
