"""Hierarchical keyring benchmark: 1 KiB messages per CPU second (warm branch-key cache) beside the
raw AES keyring and the MPL's hierarchical keyring, and KMS calls per 10,000 messages for one tenant.

Run: ``.venv/bin/python bench/bench_hierarchy.py [--seconds 0.5] [--rounds 5] [--stat best] [--json out.json]``.
Rows run interleaved in rounds in one process, rates in CPU seconds (bench_small.py's method).
Issue 14's targets: hierarchical >= 0.5x raw AES and >= 10x the MPL's hierarchical keyring; one
KMS call (audit events of the embedded KMS) per 10,000 messages with a 600 s TTL.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_small import MESSAGE, WRAPPING_KEY, Op, Row, measure

SUITE = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY"  # unsigned, so the keyring's cost is not hidden by ECDSA
CONTEXT = {"tenant": "t-1"}
_TMP = tempfile.mkdtemp(prefix="bench-hierarchy-")


def _hierarchy_store() -> tuple[Any, Any, str]:
    import envelope
    from envelope.kms import LocalKMS

    kms = LocalKMS(Path(_TMP) / "kms")
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    store = envelope.BranchKeyStore.embedded(arn, kms_client=kms, logical_key_store_name="bench")
    return kms, store, store.create_key()


def envelope_raw_aes() -> tuple[Op, Op]:
    import envelope

    keyring = envelope.RawAESKeyring("bench", "key", WRAPPING_KEY)
    return (lambda data: envelope.encrypt(data, keyring=keyring, algorithm=SUITE, encryption_context=CONTEXT),
            lambda message: envelope.decrypt(message, keyring=keyring)[0])


def envelope_hierarchy() -> tuple[Op, Op]:
    import envelope

    _, store, branch_key_id = _hierarchy_store()
    keyring = envelope.HierarchicalKeyring(store, branch_key_id=branch_key_id, ttl_seconds=600)
    return (lambda data: envelope.encrypt(data, keyring=keyring, algorithm=SUITE, encryption_context=CONTEXT),
            lambda message: envelope.decrypt(message, keyring=keyring)[0])


def mpl_hierarchy() -> tuple[Op, Op]:
    """The MPL's hierarchical keyring with the ESDK, KeyStore on moto (mock_aws, in process); warm cache."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import aws_encryption_sdk
        import boto3
        from aws_cryptographic_material_providers.keystore import KeyStore
        from aws_cryptographic_material_providers.keystore.config import KeyStoreConfig
        from aws_cryptographic_material_providers.keystore.models import (
            CreateKeyInput,
            CreateKeyStoreInput,
            KMSConfigurationKmsKeyArn,
        )
        from aws_cryptographic_material_providers.mpl import AwsCryptographicMaterialProviders
        from aws_cryptographic_material_providers.mpl.config import MaterialProvidersConfig
        from aws_cryptographic_material_providers.mpl.models import CreateAwsKmsHierarchicalKeyringInput
        from aws_encryption_sdk.identifiers import Algorithm
        from moto import mock_aws

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    mock = mock_aws()
    mock.start()  # left running for the process: the keyring's cache misses would call it
    kms = boto3.client("kms", region_name="us-east-1")
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    store = KeyStore(KeyStoreConfig(ddb_client=boto3.client("dynamodb", region_name="us-east-1"),
                                    ddb_table_name="bench-keystore", logical_key_store_name="bench", kms_client=kms,
                                    kms_configuration=KMSConfigurationKmsKeyArn(arn)))
    store.create_key_store(CreateKeyStoreInput())
    branch_key_id = store.create_key(CreateKeyInput()).branch_key_identifier
    keyring = AwsCryptographicMaterialProviders(MaterialProvidersConfig()).create_aws_kms_hierarchical_keyring(
        CreateAwsKmsHierarchicalKeyringInput(key_store=store, branch_key_id=branch_key_id, ttl_seconds=600))
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=aws_encryption_sdk.CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    algorithm = Algorithm[SUITE]

    def encrypt(data: bytes) -> bytes:
        return client.encrypt(source=data, keyring=keyring, algorithm=algorithm,  # type: ignore[no-any-return]
                              encryption_context=CONTEXT)[0]

    def decrypt(message: bytes) -> bytes:
        return client.decrypt(source=message, keyring=keyring)[0]  # type: ignore[no-any-return]

    return encrypt, decrypt


def kms_calls_per(messages: int) -> tuple[int, int]:
    """(KMS audit events, of them Decrypt) while one tenant encrypts and decrypts ``messages`` messages."""
    import envelope

    kms, store, branch_key_id = _hierarchy_store()
    keyring = envelope.HierarchicalKeyring(store, branch_key_id=branch_key_id, ttl_seconds=600)
    before, decrypts = len(kms.audit.lookup()), len(kms.audit.lookup(event_name="Decrypt"))
    for _ in range(messages):
        message = envelope.encrypt(MESSAGE, keyring=keyring, algorithm=SUITE, encryption_context=CONTEXT)
        if envelope.decrypt(message, keyring=keyring)[0] != MESSAGE:
            raise RuntimeError("round trip failed")
    return len(kms.audit.lookup()) - before, len(kms.audit.lookup(event_name="Decrypt")) - decrypts


def rows() -> list[Row]:
    return [Row("raw-aes", f"envelope, raw AES keyring, {SUITE}", lambda: envelope_raw_aes()),
            Row("hierarchy", f"envelope, hierarchical keyring (embedded store, warm), {SUITE}",
                lambda: envelope_hierarchy()),
            Row("mpl-hierarchy", f"MPL hierarchical keyring + ESDK 4.x (warm), {SUITE}", lambda: mpl_hierarchy())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stat", choices=("median", "best"), default="median")
    parser.add_argument("--messages", type=int, default=10_000, help="messages for the KMS-call count")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    pick: Callable[[list[float]], float] = statistics.median if args.stat == "median" else max
    table = rows()
    for _ in range(args.rounds):
        for row in table:
            measure(row, args.seconds)
    print(f"1 KiB messages per CPU second, {args.stat} of {args.rounds} rounds of {args.seconds:g} s")
    print(f"{'row':<90} {'encrypt/s':>10} {'decrypt/s':>10}")
    rates: dict[str, tuple[float, float]] = {}
    failed = False
    for row in table:
        if row.error is not None or not row.encrypt_rates:
            print(f"{row.label:<90} {'-':>10} {'-':>10}  ({row.error})")
            failed = True
            continue
        rates[row.name] = (pick(row.encrypt_rates), pick(row.decrypt_rates))
        print(f"{row.label:<90} {rates[row.name][0]:>10,.0f} {rates[row.name][1]:>10,.0f}")
    result: dict[str, Any] = {"rates": rates, "ratios": {}}
    print()
    for label, a, b, target in (("hierarchy / raw AES", "hierarchy", "raw-aes", 0.5),
                                ("hierarchy / MPL hierarchy", "hierarchy", "mpl-hierarchy", 10.0)):
        if a in rates and b in rates:
            enc, dec = rates[a][0] / rates[b][0], rates[a][1] / rates[b][1]
            verdict = "met" if min(enc, dec) >= target else "NOT met"
            print(f"{label:<30} encrypt {enc:6.2f}x  decrypt {dec:6.2f}x  (target >= {target:g}: {verdict})")
            result["ratios"][label] = {"encrypt": enc, "decrypt": dec, "target": target}
    calls, decrypts = kms_calls_per(args.messages)
    print(f"KMS calls (audit events) for {args.messages:,} messages encrypted and decrypted, one tenant, "
          f"TTL 600 s: {calls} ({decrypts} Decrypt)  (target 1: {'met' if calls == 1 else 'NOT met'})")
    result["kms_calls"] = {"messages": args.messages, "events": calls, "decrypt": decrypts}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
