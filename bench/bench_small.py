"""Small-message benchmark: 1 KiB one-shot encrypt and decrypt per second, envelope beside its peers.

Run: ``.venv/bin/python bench/bench_small.py [--seconds 0.5] [--rounds 5] [--stat best] [--json out.json]``.
Rows run interleaved in rounds (A, B, C, ..., then again) in one process and the rate is counted
in CPU seconds (``time.process_time``), which other load on a shared machine disturbs far less
than wall-clock time; compare the ratio lines. Issue 5's target: >= 50,000 messages/s for an
unsigned suite with a raw AES keyring.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from impls import calls_per_cpu_second

MESSAGE = os.urandom(1024)
WRAPPING_KEY = bytes(range(32))
TARGET = 50_000

# (tag, suite name, envelope encrypt policy, decrypt policy): the unsigned suites, committing first.
# 0x0178 and 0x0078 do not commit, so they need the policies that allow that.
SUITES = [
    ("0478", "AES_256_GCM_HKDF_SHA512_COMMIT_KEY", None, None),
    ("0178", "AES_256_GCM_IV12_TAG16_HKDF_SHA256", "FORBID_ENCRYPT_ALLOW_DECRYPT", "REQUIRE_ENCRYPT_ALLOW_DECRYPT"),
    ("0078", "AES_256_GCM_IV12_TAG16", "FORBID_ENCRYPT_ALLOW_DECRYPT", "REQUIRE_ENCRYPT_ALLOW_DECRYPT"),
]

Op = Callable[[bytes], bytes]


@dataclass
class Row:
    name: str
    label: str
    build: Callable[[], tuple[Op, Op]]
    encrypt_rates: list[float] = field(default_factory=list)
    decrypt_rates: list[float] = field(default_factory=list)
    ops: tuple[Op, Op] | None = None
    message: bytes = b""
    error: str | None = None


def envelope_row(suite: str, encrypt_policy: str | None, decrypt_policy: str | None) -> Callable[[], tuple[Op, Op]]:
    def build() -> tuple[Op, Op]:
        import envelope

        keyring = envelope.RawAESKeyring("bench", "key", WRAPPING_KEY)

        def encrypt(data: bytes) -> bytes:
            return envelope.encrypt(data, keyring=keyring, algorithm=suite, commitment_policy=encrypt_policy)

        def decrypt(message: bytes) -> bytes:
            return envelope.decrypt(message, keyring=keyring, commitment_policy=decrypt_policy)[0]

        return encrypt, decrypt

    return build


def esdk_row(suite: str, committing: bool) -> Callable[[], tuple[Op, Op]]:
    """The ESDK's master-key API with a raw AES master key (its fastest one-shot API here)."""

    def build() -> tuple[Op, Op]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import aws_encryption_sdk
            from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy, EncryptionKeyType, WrappingAlgorithm
            from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
            from aws_encryption_sdk.key_providers.raw import RawMasterKey

        policy = (CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT if committing
                  else CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT)
        client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=policy)
        key = RawMasterKey(provider_id="bench", key_id=b"key", wrapping_key=WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
            wrapping_key=WRAPPING_KEY, wrapping_key_type=EncryptionKeyType.SYMMETRIC))
        algorithm = Algorithm[suite]

        def encrypt(data: bytes) -> bytes:
            return client.encrypt(source=data, key_provider=key, algorithm=algorithm)[0]  # type: ignore[no-any-return]

        def decrypt(message: bytes) -> bytes:
            return client.decrypt(source=message, key_provider=key)[0]  # type: ignore[no-any-return]

        return encrypt, decrypt

    return build


def age_row() -> tuple[Op, Op]:
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    recipient = identity.to_public()
    return (lambda data: pyrage.encrypt(data, [recipient]), lambda message: pyrage.decrypt(message, [identity]))


def aes_row() -> tuple[Op, Op]:
    """One AESGCM call per message (fixed nonce): the per-call limit, not a message format."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes = AESGCM(bytes(32))
    nonce = bytes(12)
    return (lambda data: aes.encrypt(nonce, data, None), lambda message: aes.decrypt(nonce, message, None))


def rows() -> list[Row]:
    table = [Row(f"envelope-{tag}", f"envelope, raw AES keyring, {suite} (0x{tag})", envelope_row(suite, enc, dec))
             for tag, suite, enc, dec in SUITES]
    table += [Row(f"esdk-{tag}", f"ESDK 4.x master-key API, raw AES, {suite} (0x{tag})", esdk_row(suite, tag == "0478"))
              for tag, suite, _, _ in SUITES]
    table += [Row("age", "age via pyrage, bytes API, X25519", age_row),
              Row("aes", "limit: one AESGCM call per message", aes_row)]
    return table


def measure(row: Row, seconds: float) -> None:
    if row.error is not None:
        return
    try:
        if row.ops is None:
            row.ops = row.build()
            row.message = row.ops[0](MESSAGE)
            if row.ops[1](row.message) != MESSAGE:
                raise RuntimeError("round trip failed")
        encrypt, decrypt = row.ops
        message = row.message
        row.encrypt_rates.append(calls_per_cpu_second(lambda: encrypt(MESSAGE), seconds))
        row.decrypt_rates.append(calls_per_cpu_second(lambda: decrypt(message), seconds))
    except ImportError as exc:  # a peer that is not installed posts no number
        row.error = f"not installed ({exc.name})"
    except Exception as exc:  # noqa: BLE001 - a failing row posts its error instead of a number
        row.error = f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=0.5, help="CPU seconds per row, operation and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stat", choices=("median", "best"), default="median",
                        help="report the median round (default) or the best (less disturbed by other load)")
    parser.add_argument("--only", default="", help="substring of row names to run")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    pick = statistics.median if args.stat == "median" else max

    table = [row for row in rows() if args.only in row.name]
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        for row in table:
            measure(row, args.seconds)
    load_after = os.getloadavg()

    print(f"1 KiB one-shot messages per CPU second, {args.stat} of {args.rounds} rounds of {args.seconds:g} s")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"{'row':<80} {'encrypt/s':>10} {'decrypt/s':>10}")
    result: dict[str, Any] = {"rows": {}, "ratios": {}, "stat": args.stat, "load_average": [load_before, load_after]}
    for row in table:
        if row.error is not None or not row.encrypt_rates:
            print(f"{row.label:<80} {'-':>10} {'-':>10}  ({row.error})")
            result["rows"][row.name] = {"label": row.label, "error": row.error}
            continue
        enc, dec = pick(row.encrypt_rates), pick(row.decrypt_rates)
        print(f"{row.label:<80} {enc:>10,.0f} {dec:>10,.0f}")
        result["rows"][row.name] = {"label": row.label, "encrypt_per_s": enc, "decrypt_per_s": dec, "error": None}

    def ratio(label: str, a: str, b: str | None, target: float | None = None) -> None:
        ra = result["rows"].get(a)
        rb = result["rows"].get(b) if b is not None else {"encrypt_per_s": TARGET, "decrypt_per_s": TARGET,
                                                          "error": None}
        if not ra or not rb or ra["error"] or rb["error"]:
            return
        enc = ra["encrypt_per_s"] / rb["encrypt_per_s"]
        dec = ra["decrypt_per_s"] / rb["decrypt_per_s"]
        goal = f"  (target >= {target:g}: {'met' if min(enc, dec) >= target else 'NOT met'})" if target else ""
        print(f"{label:<52} encrypt {enc:6.2f}x  decrypt {dec:6.2f}x{goal}")
        result["ratios"][label] = {"encrypt": enc, "decrypt": dec, "target": target}

    print()
    for tag, _, _, _ in SUITES:
        ratio(f"envelope 0x{tag} / 50,000 per s", f"envelope-{tag}", None, 1.0)
    for tag, _, _, _ in SUITES:
        ratio(f"envelope 0x{tag} / ESDK 0x{tag}", f"envelope-{tag}", f"esdk-{tag}")
    ratio("envelope 0x0478 / age (pyrage)", "envelope-0478", "age")
    ratio("envelope 0x0478 / one AESGCM call", "envelope-0478", "aes")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 1 if any(row.error and not row.error.startswith("not installed") for row in table) else 0


if __name__ == "__main__":
    sys.exit(main())
