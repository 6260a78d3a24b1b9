"""KMS keyrings: wrap data keys with a key-management service reached through a boto3-shaped client.

ESDK spec: framework/aws-kms/aws-kms-keyring.md, aws-kms-mrk-aware-symmetric-keyring.md.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..errors import EnvelopeError, KeyringError, KMSError, NoMatchingKeyError
from ..format.header import EncryptedDataKey
from ..materials.materials import DecryptionMaterials, EncryptionMaterials

__all__ = [
    "PROVIDER_ID",
    "KMSClient",
    "KMSKeyARN",
    "KMSKeyring",
    "KMSMRKAwareKeyring",
    "is_mrk_identifier",
    "mrk_match",
    "parse_kms_arn",
]

PROVIDER_ID = "aws-kms"


@runtime_checkable
class KMSClient(Protocol):
    """What a KMS keyring needs: boto3's KMS method shapes (PascalCase arguments and responses).

    Both ``boto3.client("kms")`` and the embedded ``envelope.kms.LocalKMS`` fit.
    """

    def generate_data_key(self, **kwargs: Any) -> Mapping[str, Any]:
        ...

    def encrypt(self, **kwargs: Any) -> Mapping[str, Any]:
        ...

    def decrypt(self, **kwargs: Any) -> Mapping[str, Any]:
        ...


# --- key identifiers (aws-kms-key-arn.md) -----------------------------------------------------

@dataclass(frozen=True, slots=True)
class KMSKeyARN:
    """A parsed KMS ARN: ``arn:<partition>:kms:<region>:<account>:<key|alias>/<id>``."""

    partition: str
    region: str
    account: str
    resource_type: str
    resource_id: str

    def __str__(self) -> str:
        return f"arn:{self.partition}:kms:{self.region}:{self.account}:{self.resource_type}/{self.resource_id}"

    @property
    def is_mrk(self) -> bool:
        """True for a multi-Region key (an alias is never one, whatever its name)."""
        return self.resource_type == "key" and self.resource_id.startswith("mrk-")

    def in_region(self, region: str) -> KMSKeyARN:
        return KMSKeyARN(self.partition, region, self.account, self.resource_type, self.resource_id)


def parse_kms_arn(text: str) -> KMSKeyARN | None:
    """Return the parsed ARN, or None if ``text`` is not a valid KMS ARN."""
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "kms":
        return None
    _, partition, _, region, account, resource = parts
    resource_type, _, resource_id = resource.partition("/")
    if not (partition and region and account and resource_id) or resource_type not in ("key", "alias"):
        return None
    return KMSKeyARN(partition, region, account, resource_type, resource_id)


def _is_valid_identifier(key_id: str) -> bool:
    if key_id.startswith("arn:"):
        return parse_kms_arn(key_id) is not None
    if key_id.startswith("alias/"):
        return len(key_id) > len("alias/")
    return bool(key_id) and ":" not in key_id and "/" not in key_id


def is_mrk_identifier(key_id: str) -> bool:
    """True if ``key_id`` (ARN, alias or key id) names a multi-Region key."""
    if key_id.startswith("arn:"):
        arn = parse_kms_arn(key_id)
        if arn is None:
            raise ValueError("not a valid KMS ARN")
        return arn.is_mrk
    return key_id.startswith("mrk-")


def mrk_match(first: str, second: str) -> bool:
    """aws-kms-mrk-match-for-decrypt.md: identical, or the same multi-Region key in any region."""
    if first == second:
        return True
    if not (is_mrk_identifier(first) and is_mrk_identifier(second)):
        return False
    a, b = parse_kms_arn(first), parse_kms_arn(second)
    if a is None or b is None:  # two different bare mrk- ids (or an id and an ARN): not provably equal
        return False
    return (a.partition, a.account, a.resource_type, a.resource_id) == \
        (b.partition, b.account, b.resource_type, b.resource_id)


# --- calling the client -----------------------------------------------------------------------

_FOREIGN_MESSAGE_LIMIT = 200


def _translate(exc: Exception, secret: bytes | None) -> KMSError:
    """Turn a client's exception into a KMSError that carries its code but never the data key."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, Mapping) else None
    if isinstance(error, Mapping) and error.get("Code"):
        code, message = str(error["Code"]), str(error.get("Message") or "")
    else:
        code, message = type(exc).__name__, str(exc)
    # botocore's ParamValidationError quotes parameter values, which may be the data key.
    if code == "ParamValidationError" or (secret and _mentions(message, secret)):
        message = "details withheld"
    message = message[:_FOREIGN_MESSAGE_LIMIT]
    return KMSError(f"{code}: {message}" if message else code, code=code)


def _mentions(message: str, secret: bytes) -> bool:
    forms = (repr(secret), secret.hex(), base64.b64encode(secret).decode())
    return any(form in message for form in forms)


def _call_kms(client: object, method: str, secret: bytes | None = None, **kwargs: Any) -> Mapping[str, Any]:
    """Call ``client.<method>(**kwargs)``; any failure comes back as KMSError, never a foreign error.

    :param secret: bytes that must not appear in an error message (the data key).
    """
    try:
        response = getattr(client, method)(**kwargs)
    except KMSError:
        raise
    except EnvelopeError as exc:  # not a KMS error, yet from the service: keep its text, mark it
        raise KMSError(str(exc), code="KMSInternalException") from exc
    except Exception as exc:  # noqa: BLE001 - a foreign client may raise anything; translate it here
        raise _translate(exc, secret) from None
    if not isinstance(response, Mapping):
        raise KeyringError(f"{method} returned {type(response).__name__}, not a response mapping")
    return response


def _bytes_field(response: Mapping[str, Any], name: str, method: str) -> bytes:
    value = response.get(name)
    if not isinstance(value, (bytes, bytearray, memoryview)) or not len(value):
        raise KeyringError(f"{method} response has no {name}")
    return bytes(value)


def _key_arn_field(response: Mapping[str, Any], method: str) -> str:
    key_id = response.get("KeyId")
    arn = parse_kms_arn(key_id) if isinstance(key_id, str) else None
    if arn is None or arn.resource_type != "key":
        raise KeyringError(f"{method} response KeyId is not a KMS key ARN")
    return str(key_id)


def _decrypt_one(client: KMSClient, key_id: str, edk: EncryptedDataKey, materials: DecryptionMaterials,
                 grant_tokens: tuple[str, ...]) -> bytes:
    """Call Decrypt and check the answer (KeyId as requested, plaintext of the suite's length)."""
    kwargs: dict[str, Any] = {"KeyId": key_id, "CiphertextBlob": edk.ciphertext,
                              "EncryptionContext": dict(materials.encryption_context)}
    if grant_tokens:
        kwargs["GrantTokens"] = list(grant_tokens)
    response = _call_kms(client, "decrypt", **kwargs)
    if response.get("KeyId") != key_id:
        raise KeyringError(f"Decrypt answered for key {response.get('KeyId')!r}, not {key_id}")
    plaintext = _bytes_field(response, "Plaintext", "Decrypt")
    if len(plaintext) != materials.algorithm.key_length:
        raise KeyringError(f"Decrypt returned a {len(plaintext)}-byte data key; the suite needs "
                           f"{materials.algorithm.key_length}")
    return plaintext


def _decrypt_edks(owner: str, client: KMSClient, materials: DecryptionMaterials,
                 encrypted_data_keys: Sequence[EncryptedDataKey], grant_tokens: tuple[str, ...],
                 select: Callable[[str, KMSKeyARN], str | None]) -> DecryptionMaterials:
    """The decrypt loop every KMS keyring shares.

    ``select(provider_info, arn)`` returns the KeyId to call Decrypt with, or None to skip the EDK.
    An ``aws-kms`` EDK whose provider info is not a key ARN fails the whole call (spec: "OnDecrypt
    MUST fail"). Every failed attempt is collected into the NoMatchingKeyError.
    """
    if materials.plaintext_data_key is not None:
        return materials
    errors: list[BaseException | str] = []
    for edk in encrypted_data_keys:
        if edk.provider_id != PROVIDER_ID:
            continue
        try:
            info = bytes(edk.provider_info).decode("utf-8")
        except UnicodeDecodeError:
            info = ""
        arn = parse_kms_arn(info)
        if arn is None or arn.resource_type != "key":
            raise NoMatchingKeyError(f"{owner} could not decrypt the data key",
                                     ["an aws-kms encrypted data key's provider info is not a KMS key ARN"])
        key_id = select(info, arn)
        if key_id is None:
            continue
        try:
            return materials.with_data_key(_decrypt_one(client, key_id, edk, materials, grant_tokens))
        except KMSError as exc:
            text = str(exc)
            errors.append(KMSError(f"{info}: {text if text.startswith(exc.code) else f'{exc.code}: {text}'}",
                                   code=exc.code))
        except EnvelopeError as exc:
            errors.append(KeyringError(f"{info}: {exc}"))
    if not errors:
        errors.append("no encrypted data key matches")
    raise NoMatchingKeyError(f"{owner} could not decrypt the data key", errors)


def _grant_token_tuple(grant_tokens: Sequence[str]) -> tuple[str, ...]:
    if isinstance(grant_tokens, str) or not all(isinstance(t, str) and t for t in grant_tokens):
        raise TypeError("grant_tokens must be a sequence of non-empty strings")
    return tuple(grant_tokens)


def _check_client(client: object, methods: Sequence[str] = ("generate_data_key", "encrypt", "decrypt")) -> None:
    """Refuse, at construction, a client lacking the methods a keyring will call."""
    missing = [m for m in methods if not callable(getattr(client, m, None))]
    if client is None or missing:
        raise TypeError(f"client must have the boto3 KMS method shapes; missing: {', '.join(missing)}")


# --- the keyrings ---------------------------------------------------------------------------------

class KMSKeyring:
    """Wraps data keys with one KMS key.

    Encrypt: GenerateDataKey when the materials have no data key, else Encrypt; each adds an EDK
    whose provider info is the key ARN KMS answered with. Decrypt: only EDKs whose provider info
    equals the configured key ARN are tried, so decrypting needs the key configured by ARN (an
    alias or bare key id can encrypt but matches nothing on decrypt, as in the ESDK).

    :param key_id: a key ARN, key id, alias name or alias ARN.
    :param client: any object with boto3's KMS method shapes.
    :param grant_tokens: passed with every call.
    :raises NoMatchingKeyError: from ``on_decrypt``, listing why each matching EDK failed.
    :raises KMSError: from ``on_encrypt`` when the call fails (``.code`` says why).
    """

    def __init__(self, key_id: str, client: KMSClient, grant_tokens: Sequence[str] = ()) -> None:
        if not isinstance(key_id, str):
            raise TypeError("key_id must be a str")
        if not _is_valid_identifier(key_id):
            raise ValueError(f"{key_id!r} is not a KMS key ARN, key id, alias name or alias ARN")
        _check_client(client)
        self.key_id = key_id
        self.client = client
        self.grant_tokens = _grant_token_tuple(grant_tokens)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key_id!r})"

    def __str__(self) -> str:  # how messages name it (never the repr)
        return f"KMS key {self.key_id}"

    def on_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
        kwargs: dict[str, Any] = {"KeyId": self.key_id, "EncryptionContext": dict(materials.encryption_context)}
        if self.grant_tokens:
            kwargs["GrantTokens"] = list(self.grant_tokens)
        data_key = materials.plaintext_data_key
        if data_key is None:
            length = materials.algorithm.key_length
            response = _call_kms(self.client, "generate_data_key", NumberOfBytes=length, **kwargs)
            plaintext = _bytes_field(response, "Plaintext", "GenerateDataKey")
            if len(plaintext) != length:
                raise KeyringError(f"GenerateDataKey returned a {len(plaintext)}-byte key; the suite needs {length}")
            arn = _key_arn_field(response, "GenerateDataKey")
            edk = EncryptedDataKey(PROVIDER_ID, arn.encode("utf-8"),
                                   _bytes_field(response, "CiphertextBlob", "GenerateDataKey"))
            return materials.with_data_key(plaintext, edk)
        response = _call_kms(self.client, "encrypt", data_key, Plaintext=data_key, **kwargs)
        arn = _key_arn_field(response, "Encrypt")
        return materials.with_encrypted_data_key(
            EncryptedDataKey(PROVIDER_ID, arn.encode("utf-8"), _bytes_field(response, "CiphertextBlob", "Encrypt")))

    def on_decrypt(self, materials: DecryptionMaterials,
                   encrypted_data_keys: Sequence[EncryptedDataKey]) -> DecryptionMaterials:
        return _decrypt_edks(repr(self), self.client, materials, encrypted_data_keys, self.grant_tokens,
                            self._select)

    def _select(self, provider_info: str, arn: KMSKeyARN) -> str | None:
        return self.key_id if provider_info == self.key_id else None


class KMSMRKAwareKeyring(KMSKeyring):
    """A KMSKeyring that also decrypts EDKs made by the same multi-Region key in another region.

    Decrypt calls go to the configured key (a replica in this client's region), so a message
    wrapped by ``mrk-...`` in one region decrypts with its replica in another.
    """

    def _select(self, provider_info: str, arn: KMSKeyARN) -> str | None:
        return self.key_id if mrk_match(self.key_id, provider_info) else None
