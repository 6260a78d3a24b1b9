"""Wrapping-key flags (--kms-key, --aes-key-file, --rsa-public-key, --rsa-private-key, --recipient,
--identity) to a keyring.

Key flags are repeatable and keep their order: the first key generates the data key and each other
key wraps it too (a MultiKeyring). --region, --key-namespace, --key-name and --rsa-padding qualify
the key flag just before them; given before any key flag they apply to every key.

KMS keys live in the embedded service, or (--endpoint-url, --profile, --kms aws,
$AWS_ENDPOINT_URL_KMS: see clients.py) in AWS KMS or any KMS endpoint, called through boto3.
Discovery decrypt is limited to --discovery-account (in --discovery-partition), as
aws-encryption-cli's discovery-account / discovery-partition; a remote discovery without it is
refused unless --discovery-any-account says so.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization

import envelope

from .clients import default_region, is_remote, kms_client, local_kms
from .ecdh_keys import ecdh_keyring
from .exits import CLIError, ExitCode
from .globalopts import GlobalOptions

__all__ = ["DEFAULT_ALIAS", "KeySpec", "add_key_arguments", "build_keyring", "default_region", "keyring_options",
           "local_kms"]

DEFAULT_ALIAS = "alias/envelope-default"
DEFAULT_NAMESPACE = "envelope"
_MODIFIERS = {"region": ("kms",), "namespace": ("aes", "rsa-public", "rsa-private"),
              "name": ("aes", "rsa-public", "rsa-private"), "padding": ("rsa-public", "rsa-private")}
_FLAG_OF = {"region": "--region", "namespace": "--key-namespace", "name": "--key-name", "padding": "--rsa-padding"}


@dataclass(slots=True)
class KeySpec:
    """One key flag and the qualifiers that followed it."""

    kind: str  # kms | aes | rsa-public | rsa-private
    value: str
    options: dict[str, str] = field(default_factory=dict)


class _AddKey(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        keys = list(getattr(namespace, "keys", None) or [])
        keys.append(KeySpec(self.const, str(values)))
        namespace.keys = keys


class _Qualify(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        keys = getattr(namespace, "keys", None) or []
        if keys:
            last = keys[-1]
            if last.kind not in _MODIFIERS[self.const]:
                parser.error(f"{option_string} does not apply to the {last.kind} key {last.value!r} before it")
            last.options[self.const] = str(values)
        else:
            defaults = dict(getattr(namespace, "key_defaults", None) or {})
            defaults[self.const] = str(values)
            namespace.key_defaults = defaults


def add_key_arguments(parser: argparse.ArgumentParser, *, decrypt: bool) -> None:
    group = parser.add_argument_group(
        "wrapping keys (repeatable, in order; the first generates the data key)",
        "With no key flag, encrypt uses the embedded KMS key alias/envelope-default (created on "
        "first use) and decrypt tries every embedded KMS key the message names. --region, "
        "--key-namespace, --key-name and --rsa-padding qualify the key flag just before them; "
        "before any key flag they apply to all keys.")
    group.add_argument("--kms-key", action=_AddKey, const="kms", metavar="ID|ARN|ALIAS", dest="keys",
                       help="a KMS key: key id, key ARN, alias name (alias/x) or alias ARN; of the embedded "
                            "KMS, or of the endpoint that --endpoint-url, --profile or --kms aws selects")
    group.add_argument("--aes-key-file", action=_AddKey, const="aes", metavar="FILE", dest="keys",
                       help="raw AES key: 16, 24 or 32 bytes, raw or base64")
    group.add_argument("--rsa-public-key", action=_AddKey, const="rsa-public", metavar="PEM", dest="keys",
                       help="RSA public key PEM (encrypt only)")
    group.add_argument("--rsa-private-key", action=_AddKey, const="rsa-private", metavar="PEM", dest="keys",
                       help="RSA private key PEM (decrypts; also encrypts with its public half)")
    group.add_argument("--region", action=_Qualify, const="region", metavar="REGION", dest="key_qualifier",
                       help="region of the KMS for the --kms-key before it "
                            "(default: $AWS_REGION, $AWS_DEFAULT_REGION or us-east-1; an ARN names its own)")
    group.add_argument("--key-namespace", action=_Qualify, const="namespace", metavar="NS", dest="key_qualifier",
                       help=f"raw key provider namespace (default: {DEFAULT_NAMESPACE})")
    group.add_argument("--key-name", action=_Qualify, const="name", metavar="NAME", dest="key_qualifier",
                       help="raw key name (default: a fingerprint of the key, so renaming the key file "
                            "does not matter; set both to interoperate with other ESDK users)")
    group.add_argument("--rsa-padding", action=_Qualify, const="padding", dest="key_qualifier",
                       choices=["PKCS1", "OAEP-SHA1", "OAEP-SHA256", "OAEP-SHA384", "OAEP-SHA512"],
                       help="RSA padding (default: OAEP-SHA256)")
    if decrypt:
        group.add_argument("--identity", action=_AddKey, const="identity", metavar="PRIVATE_KEY", dest="keys",
                           help="EC private key PEM from `envelope keygen`: decrypts messages for its public key")
    else:
        group.add_argument("--recipient", action=_AddKey, const="recipient", metavar="PUBLIC_KEY", dest="keys",
                           help="EC public key (PEM or DER, e.g. from `envelope keygen`): anyone holding it can "
                                "encrypt, only its private key decrypts (raw ECDH, ephemeral sender key)")
    if decrypt:
        group.add_argument("--discovery", action="store_true",
                           help="also try every KMS key the message names (the default when no key flag is "
                                "given)")
        group.add_argument("--discovery-account", action="append", default=[], metavar="ACCOUNT",
                           help="discovery tries only keys of this AWS account (repeatable); required for "
                                "discovery through an endpoint unless --discovery-any-account")
        group.add_argument("--discovery-partition", metavar="PARTITION",
                           help="the partition of --discovery-account (default: aws)")
        group.add_argument("--discovery-any-account", action="store_true",
                           help="let discovery through an endpoint try keys of any account")
    remote = parser.add_argument_group(
        "KMS endpoint (also accepted before the command, as global options)",
        "The embedded KMS is used unless an endpoint or profile is given (or --kms aws, or "
        "$ENVELOPE_KMS=aws); then boto3 calls it with the standard credential chain. See "
        "`envelope --help` for --region, --no-verify-ssl, --ca-bundle and the timeouts.")
    remote.add_argument("--endpoint-url", metavar="URL", help="a KMS endpoint: an `envelope kms serve` or AWS "
                        "($AWS_ENDPOINT_URL_KMS and $AWS_ENDPOINT_URL are read too)")
    remote.add_argument("--profile", metavar="NAME", help="a profile of ~/.aws/config and ~/.aws/credentials")
    remote.add_argument("--kms", choices=["embedded", "aws"], help="which KMS: embedded (default) or aws (boto3)")
    parser.set_defaults(keys=[], key_defaults={})


def keyring_options(args: argparse.Namespace) -> dict[str, Any]:
    """build_keyring's connection and discovery options from a parsed encrypt/decrypt command line."""
    opts = getattr(args, "globals", None)
    connection = opts if isinstance(opts, GlobalOptions) else GlobalOptions()
    # The command's own --endpoint-url/--profile/--kms win over those given before the command.
    for name in ("endpoint_url", "profile", "kms"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(connection, name, value)
    accounts = list(getattr(args, "discovery_account", None) or [])
    partition = getattr(args, "discovery_partition", None)
    if partition is not None and not accounts:
        raise CLIError("--discovery-partition needs --discovery-account", ExitCode.USAGE)
    return {"discovery": bool(getattr(args, "discovery", False)), "connection": connection,
            "discovery_filter": envelope.DiscoveryFilter(partition or "aws", tuple(accounts)) if accounts else None,
            "any_account": bool(getattr(args, "discovery_any_account", False))}


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as fp:
            return fp.read(1024 * 1024)
    except OSError as exc:
        raise CLIError(f"cannot read {what} {path}: {exc.strerror}", ExitCode.IO) from None


def _aes_key(path: str) -> bytes:
    raw = _read(path, "AES key file")
    if len(raw) in (16, 24, 32):
        return raw
    try:
        decoded = base64.b64decode(b"".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) in (16, 24, 32):
        return decoded
    raise CLIError(f"{path} is not an AES key: expected 16, 24 or 32 bytes, raw or base64", ExitCode.USAGE,
                   hint="make one with: head -c 32 /dev/urandom > key.bin")


def _fingerprint(material: bytes, label: bytes) -> str:
    return hashlib.sha256(label + material).hexdigest()[:16]


def _rsa_public_der(pem: bytes, private: bool, path: str) -> bytes:
    try:
        if private:
            public = serialization.load_pem_private_key(pem, password=None).public_key()
        else:
            public = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        # cryptography appends an FAQ link and its parser's internal error name; keep the reason only.
        reason = str(exc).split(" See https://", 1)[0].rstrip(". ")
        raise CLIError(f"{path} is not an unencrypted RSA {'private' if private else 'public'} key PEM: {reason}",
                       ExitCode.USAGE) from None
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _kms_keyring_class() -> Any:
    return envelope.KMSKeyring


def _discovery_class() -> Any:
    return envelope.KMSDiscoveryKeyring


def _client(connection: GlobalOptions | None, region: str) -> Any:
    if connection is None:
        return local_kms(region)
    return kms_client(connection, region)


class _RegionalDiscovery:
    """Decrypt-only: tries each ``aws-kms`` EDK with the KMS of the region its ARN names (the
    embedded one, or boto3 when the connection options say so), within ``discovery_filter``."""

    def __init__(self, default_region: str, connection: GlobalOptions | None = None,
                 discovery_filter: Any = None) -> None:
        self._default_region = default_region
        self._connection = connection
        self._filter = discovery_filter

    def __repr__(self) -> str:
        where = "KMS endpoint" if self._remote else "embedded KMS"
        if self._filter is None:
            return f"{where} discovery"
        return f"{where} discovery (accounts {', '.join(self._filter.account_ids)} in {self._filter.partition})"

    @property
    def _remote(self) -> bool:
        return self._connection is not None and is_remote(self._connection)

    def on_encrypt(self, materials: Any) -> Any:  # pragma: no cover - only used for decryption
        raise envelope.KeyringError("discovery cannot encrypt")

    def on_decrypt(self, materials: Any, encrypted_data_keys: Sequence[Any]) -> Any:
        by_region: dict[str, list[Any]] = {}
        for edk in encrypted_data_keys:
            if edk.provider_id != "aws-kms":
                continue
            parts = bytes(edk.provider_info).decode("utf-8", "replace").split(":")
            region = parts[3] if len(parts) > 5 and parts[3] else self._default_region
            by_region.setdefault(region, []).append(edk)
        errors: list[BaseException | str] = []
        for region, edks in by_region.items():
            try:
                keyring = _discovery_class()(_client(self._connection, region), discovery_filter=self._filter)
                return keyring.on_decrypt(materials, edks)
            except envelope.NoMatchingKeyError as exc:
                errors.extend(exc.errors or [exc])
            except envelope.KMSError as exc:
                errors.append(exc)
        if not by_region:
            which = "KMS" if self._remote else "embedded-KMS"
            errors.append(f"the message has no {which} (aws-kms) encrypted data key")
        raise envelope.NoMatchingKeyError(f"{self!r} could not decrypt the data key", errors)


def _kms_keyring(spec: KeySpec, region: str, decrypt: bool, connection: GlobalOptions | None = None) -> Any:
    key_id = spec.value
    if key_id.startswith("arn:"):
        parts = key_id.split(":")
        region = parts[3] if len(parts) > 5 and parts[3] else region
    client = _client(connection, region)
    if decrypt and (not key_id.startswith("arn:") or ":alias/" in key_id):
        # Encrypted data keys name the key ARN; a keyring matches them only by that ARN.
        key_id = client.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    return _kms_keyring_class()(key_id, client)


def ensure_default_key(region: str) -> str:
    """Return the ARN of alias/envelope-default, creating key and alias on first use."""
    client = local_kms(region)
    try:
        return str(client.describe_key(KeyId=DEFAULT_ALIAS)["KeyMetadata"]["Arn"])
    except envelope.KeyNotFoundError:
        pass
    except envelope.KMSError as exc:
        if exc.code != "NotFoundException":
            raise
    arn = str(client.create_key(Description="envelope CLI default key")["KeyMetadata"]["Arn"])
    try:
        client.create_alias(AliasName=DEFAULT_ALIAS, TargetKeyId=arn)
    except envelope.KMSError as exc:
        if exc.code != "AlreadyExistsException":
            raise
        # Another process created it first: use theirs and retire ours.
        client.schedule_key_deletion(KeyId=arn, PendingWindowInDays=7)
        return str(client.describe_key(KeyId=DEFAULT_ALIAS)["KeyMetadata"]["Arn"])
    return arn


def build_keyring(specs: Sequence[KeySpec], defaults: dict[str, str], *, decrypt: bool,
                  discovery: bool = False, connection: GlobalOptions | None = None,
                  discovery_filter: Any = None, any_account: bool = False) -> tuple[Any, list[str]]:
    """Build the keyring for the key flags; returns it and a description of each key for metadata.

    :param connection: the global options that select the KMS (embedded or boto3); None: embedded.
    :param discovery_filter: an `envelope.DiscoveryFilter` that limits discovery to some accounts.
    :param any_account: allow discovery through an endpoint without a filter.
    """
    specs = list(specs)
    for spec in specs:
        for option, value in defaults.items():
            if spec.kind in _MODIFIERS[option]:
                spec.options.setdefault(option, value)
    remote = connection is not None and is_remote(connection)
    region = defaults.get("region") or (connection.region if connection else None) or default_region()
    keyrings: list[Any] = []
    names: list[str] = []
    if not specs:
        if decrypt:
            discovery = True
        elif remote:
            raise CLIError("name the KMS key to encrypt under with --kms-key", ExitCode.USAGE,
                           hint="envelope creates a default key only in the embedded KMS, never in a remote one")
        else:
            specs = [KeySpec("kms", ensure_default_key(region), {"region": region})]
    if discovery and remote and discovery_filter is None and not any_account:
        # aws-encryption-cli's rule: discovery through a real KMS is limited to the accounts listed.
        raise CLIError("discovery through a KMS endpoint needs --discovery-account ACCOUNT", ExitCode.USAGE,
                       hint="list the accounts whose keys may decrypt (--discovery-account, repeatable), name the "
                            "key with --kms-key, or pass --discovery-any-account")
    for spec in specs:
        if spec.kind == "kms":
            keyrings.append(_kms_keyring(spec, spec.options.get("region", region), decrypt, connection))
            names.append(f"aws-kms:{keyrings[-1].key_id}")
        elif spec.kind in ("recipient", "identity"):
            keyring, name = ecdh_keyring(spec.kind, spec.value, decrypt)
            keyrings.append(keyring)
            names.append(name)
        elif spec.kind == "aes":
            key = _aes_key(spec.value)
            ns = spec.options.get("namespace", DEFAULT_NAMESPACE)
            name = spec.options.get("name") or "aes-" + _fingerprint(key, b"envelope raw AES key\0")
            keyrings.append(envelope.RawAESKeyring(ns, name, key))
            names.append(f"{ns}:{name}")
        else:
            private = spec.kind == "rsa-private"
            pem = _read(spec.value, "RSA key")
            der = _rsa_public_der(pem, private, spec.value)
            ns = spec.options.get("namespace", DEFAULT_NAMESPACE)
            name = spec.options.get("name") or "rsa-" + _fingerprint(der, b"envelope raw RSA key\0")
            padding = spec.options.get("padding", "OAEP-SHA256")
            if private:
                keyrings.append(envelope.RawRSAKeyring(ns, name, private_key_pem=pem, padding=padding))
            else:
                if decrypt:
                    raise CLIError(f"an RSA public key cannot decrypt ({spec.value})", ExitCode.USAGE,
                                   hint="pass the private key with --rsa-private-key")
                keyrings.append(envelope.RawRSAKeyring(ns, name, public_key_pem=pem, padding=padding))
            names.append(f"{ns}:{name}")
    if discovery:
        keyrings.append(_RegionalDiscovery(region, connection, discovery_filter))
        names.append("aws-kms:discovery")
    if len(keyrings) == 1:
        return keyrings[0], names
    if decrypt:
        return envelope.MultiKeyring(children=keyrings), names
    return envelope.MultiKeyring(generator=keyrings[0], children=keyrings[1:]), names
