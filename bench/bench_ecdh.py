"""Raw ECDH keyring benchmark: 1 KiB messages encrypted + decrypted per CPU second, envelope's raw
ECDH keyring beside its raw AES keyring and beside the reference (MPL) raw ECDH keyring.

Run: ``.venv/bin/python bench/bench_ecdh.py [--seconds 0.5] [--rounds 3] [--stat best] [--json out.json]``.
Every row uses the unsigned committing suite 0x0478, so the rows differ only in the keyring. Rows
run interleaved in rounds in one process; rates count CPU seconds (``time.process_time``). One
"round trip" is one encrypt plus one decrypt of a fresh message; the ratio lines compare those.
Encrypt uses the ephemeral scheme (a new key pair and one ECDH per message) or the static one
(one ECDH, precomputed by envelope); decrypt uses discovery (one ECDH per message) or static.
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
SUITE = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY"
CURVES = ("ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521")

Op = Callable[[bytes], bytes]


@dataclass
class Row:
    name: str
    label: str
    build: Callable[[], tuple[Op, Op]]
    rates: list[float] = field(default_factory=list)
    error: str | None = None
    ops: tuple[Op, Op] | None = None


def _pems(curve: str) -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key({"ECC_NIST_P256": ec.SECP256R1(), "ECC_NIST_P384": ec.SECP384R1(),
                                   "ECC_NIST_P521": ec.SECP521R1()}[curve])
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def _envelope_ops(encrypting: Any, decrypting: Any) -> tuple[Op, Op]:
    import envelope

    return (lambda data: envelope.encrypt(data, keyring=encrypting, algorithm=SUITE),
            lambda message: envelope.decrypt(message, keyring=decrypting)[0])


def envelope_aes() -> tuple[Op, Op]:
    import envelope

    keyring = envelope.RawAESKeyring("bench", "key", bytes(range(32)))
    return _envelope_ops(keyring, keyring)


def envelope_ecdh(curve: str, scheme: str) -> Callable[[], tuple[Op, Op]]:
    def build() -> tuple[Op, Op]:
        import envelope

        private, public = _pems(curve)
        if scheme == "ephemeral":
            return _envelope_ops(envelope.RawECDHKeyring.ephemeral(public, curve),
                                 envelope.RawECDHKeyring.discovery(private, curve))
        sender_private, _ = _pems(curve)
        keyring = envelope.RawECDHKeyring.static(sender_private, public, curve)
        return _envelope_ops(keyring, keyring)

    return build


def _mpl() -> tuple[Any, Any, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import aws_encryption_sdk
        from aws_cryptographic_material_providers.mpl import AwsCryptographicMaterialProviders
        from aws_cryptographic_material_providers.mpl.config import MaterialProvidersConfig
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=aws_encryption_sdk.CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    return aws_encryption_sdk, client, AwsCryptographicMaterialProviders(MaterialProvidersConfig())


def _mpl_ops(encrypting: Any, decrypting: Any) -> tuple[Op, Op]:
    sdk, client, _ = _mpl()
    algorithm = sdk.Algorithm[SUITE]
    return (lambda data: bytes(client.encrypt(source=data, keyring=encrypting, algorithm=algorithm)[0]),
            lambda message: bytes(client.decrypt(source=message, keyring=decrypting)[0]))


def mpl_aes() -> tuple[Op, Op]:
    from aws_cryptographic_material_providers.mpl.models import AesWrappingAlg, CreateRawAesKeyringInput

    _, _, mpl = _mpl()
    keyring = mpl.create_raw_aes_keyring(CreateRawAesKeyringInput(
        key_namespace="bench", key_name="key", wrapping_key=bytes(range(32)),
        wrapping_alg=AesWrappingAlg.ALG_AES256_GCM_IV12_TAG16))
    return _mpl_ops(keyring, keyring)


def mpl_ecdh(curve: str, scheme: str) -> Callable[[], tuple[Op, Op]]:
    def build() -> tuple[Op, Op]:
        from aws_cryptographic_material_providers.mpl.models import (
            CreateRawEcdhKeyringInput,
            EphemeralPrivateKeyToStaticPublicKeyInput,
            PublicKeyDiscoveryInput,
            RawEcdhStaticConfigurationsEphemeralPrivateKeyToStaticPublicKey,
            RawEcdhStaticConfigurationsPublicKeyDiscovery,
            RawEcdhStaticConfigurationsRawPrivateKeyToStaticPublicKey,
            RawPrivateKeyToStaticPublicKeyInput,
        )
        from aws_cryptography_primitives.smithygenerated.aws_cryptography_primitives.models import ECDHCurveSpec

        _, _, mpl = _mpl()
        private, public = _pems(curve)

        def keyring(config: Any) -> Any:
            return mpl.create_raw_ecdh_keyring(CreateRawEcdhKeyringInput(
                curve_spec=getattr(ECDHCurveSpec, curve), key_agreement_scheme=config))

        if scheme == "ephemeral":
            return _mpl_ops(
                keyring(RawEcdhStaticConfigurationsEphemeralPrivateKeyToStaticPublicKey(
                    EphemeralPrivateKeyToStaticPublicKeyInput(recipient_public_key=public))),
                keyring(RawEcdhStaticConfigurationsPublicKeyDiscovery(
                    PublicKeyDiscoveryInput(recipient_static_private_key=private))))
        sender_private, _ = _pems(curve)
        static = keyring(RawEcdhStaticConfigurationsRawPrivateKeyToStaticPublicKey(
            RawPrivateKeyToStaticPublicKeyInput(sender_static_private_key=sender_private,
                                                recipient_public_key=public)))
        return _mpl_ops(static, static)

    return build


def rows() -> list[Row]:
    table = [Row("envelope-aes", "envelope, raw AES keyring", envelope_aes),
             Row("mpl-aes", "MPL (ESDK 4.x), raw AES keyring", mpl_aes)]
    for curve in CURVES:
        short = curve[-4:].lower()
        table += [Row(f"envelope-ecdh-ephemeral-{short}", f"envelope, raw ECDH ephemeral -> discovery, {curve}",
                      envelope_ecdh(curve, "ephemeral")),
                  Row(f"mpl-ecdh-ephemeral-{short}", f"MPL, raw ECDH ephemeral -> discovery, {curve}",
                      mpl_ecdh(curve, "ephemeral"))]
    table += [Row("envelope-ecdh-static-p256", "envelope, raw ECDH static -> static, ECC_NIST_P256",
                  envelope_ecdh("ECC_NIST_P256", "static")),
              Row("mpl-ecdh-static-p256", "MPL, raw ECDH static -> static, ECC_NIST_P256",
                  mpl_ecdh("ECC_NIST_P256", "static"))]
    return table


def measure(row: Row, seconds: float) -> None:
    if row.error is not None:
        return
    try:
        if row.ops is None:
            row.ops = row.build()
            if row.ops[1](row.ops[0](MESSAGE)) != MESSAGE:
                raise RuntimeError("round trip failed")
        encrypt, decrypt = row.ops
        row.rates.append(calls_per_cpu_second(lambda: decrypt(encrypt(MESSAGE)), seconds, batch=10))
    except ImportError as exc:  # a peer that is not installed posts no number
        row.error = f"not installed ({exc.name})"
    except Exception as exc:  # noqa: BLE001 - a failing row posts its error instead of a number
        row.error = f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=0.5, help="CPU seconds per row and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stat", choices=("median", "best"), default="median")
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

    print(f"1 KiB messages, encrypt + decrypt round trips per CPU second, suite {SUITE}, "
          f"{args.stat} of {args.rounds} rounds of {args.seconds:g} s")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    result: dict[str, Any] = {"rows": {}, "ratios": {}, "stat": args.stat}
    for row in table:
        if row.error is not None or not row.rates:
            print(f"{row.label:<62} {'-':>10}  ({row.error})")
            result["rows"][row.name] = {"label": row.label, "error": row.error}
            continue
        rate = pick(row.rates)
        print(f"{row.label:<62} {rate:>10,.0f}")
        result["rows"][row.name] = {"label": row.label, "round_trips_per_s": rate, "error": None}

    def ratio(label: str, a: str, b: str) -> None:
        ra, rb = result["rows"].get(a), result["rows"].get(b)
        if not ra or not rb or ra["error"] or rb["error"]:
            return
        value = ra["round_trips_per_s"] / rb["round_trips_per_s"]
        print(f"{label:<62} {value:9.2f}x")
        result["ratios"][label] = value

    print()
    for curve in CURVES:
        short = curve[-4:].lower()
        ratio(f"envelope ECDH ephemeral {short} / envelope raw AES", f"envelope-ecdh-ephemeral-{short}",
              "envelope-aes")
        ratio(f"envelope ECDH ephemeral {short} / MPL ECDH ephemeral {short}", f"envelope-ecdh-ephemeral-{short}",
              f"mpl-ecdh-ephemeral-{short}")
    ratio("envelope ECDH static p256 / envelope raw AES", "envelope-ecdh-static-p256", "envelope-aes")
    ratio("envelope ECDH static p256 / MPL ECDH static p256", "envelope-ecdh-static-p256", "mpl-ecdh-static-p256")
    ratio("envelope raw AES / MPL raw AES", "envelope-aes", "mpl-aes")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 1 if any(row.error and not row.error.startswith("not installed") for row in table) else 0


if __name__ == "__main__":
    sys.exit(main())
