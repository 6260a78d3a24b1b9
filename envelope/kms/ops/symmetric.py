"""Symmetric operations: encrypt, decrypt, re_encrypt, generate_data_key(_without_plaintext), random.

Asymmetric keys reach encrypt/decrypt here too and are handed to `asymmetric`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..model.blobs import open_blob, parse_blob
from ..model.errors import IncorrectKeyError, InvalidCiphertextError, InvalidKeyUsageError, ValidationError
from ..model.params import dry_run_stop
from . import asymmetric as _asym
from .keyblobs import seal_for
from .lifecycle import require_enabled

if TYPE_CHECKING:
    from ..engine.runtime import Call
    from ..store.partition import KeyEntry

__all__ = [
    "ALGORITHMS",
    "decrypt",
    "encrypt",
    "generate_data_key",
    "generate_data_key_without_plaintext",
    "generate_random",
    "open_from",
    "re_encrypt",
]

ALGORITHMS = ("SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE")


def _symmetric(entry: KeyEntry, op: str) -> None:
    rec = entry.record
    if rec.key_usage != "ENCRYPT_DECRYPT":
        raise InvalidKeyUsageError.for_usage(entry.arn, rec.key_usage, op)
    if rec.key_spec != "SYMMETRIC_DEFAULT":
        raise InvalidKeyUsageError(f"{entry.arn} key usage is {rec.key_usage} with spec {rec.key_spec}, "
                                   f"which is not valid for {op}.")


def open_from(call: Call, blob: bytes, context: Mapping[str, str], key_ref: str | None,
              action: str, tokens: tuple[str, ...], algorithm: str) -> tuple[KeyEntry, bytes]:
    """Authorize and decrypt a symmetric blob; returns the key and the plaintext."""
    header = parse_blob(blob)
    entry = call.key(header.key_id, any_account=True)
    if key_ref is not None:
        named = call.key(key_ref)
        if named.record.key_id != entry.record.key_id:
            raise IncorrectKeyError("The key ID in the request does not identify a CMK that can perform "
                                    "this operation.")
    call.authorize(action, entry, context=context, grant_tokens=tokens)
    require_enabled(entry)
    if entry.record.key_spec != "SYMMETRIC_DEFAULT":
        raise InvalidCiphertextError("the ciphertext was not produced by a symmetric key")
    return entry, open_blob(call.aead(entry, header.version), header, context)


def encrypt(call: Call) -> dict[str, Any]:
    a = call.args
    plaintext = a.blob("Plaintext", hi=4096)
    context = a.context()
    tokens = a.grant_tokens()
    algorithm = a.choice("EncryptionAlgorithm", ALGORITHMS, "SYMMETRIC_DEFAULT") or "SYMMETRIC_DEFAULT"
    dry = a.dry_run()
    a.finish()
    call.response_elements = False
    entry = call.subject(context=context, grant_tokens=tokens)
    require_enabled(entry)
    dry_run_stop(dry)
    if entry.record.key_usage != "ENCRYPT_DECRYPT":
        _symmetric(entry, "Encrypt")
    if entry.record.key_spec != "SYMMETRIC_DEFAULT":
        blob = _asym.rsa_encrypt(call, entry, plaintext, algorithm, context)
    else:
        if algorithm != "SYMMETRIC_DEFAULT":
            raise InvalidKeyUsageError(f"{algorithm} is not valid for the symmetric key {entry.arn}.")
        _symmetric(entry, "Encrypt")
        blob = seal_for(call, entry, plaintext, context)
    return {"CiphertextBlob": blob, "KeyId": entry.arn, "EncryptionAlgorithm": algorithm}


def decrypt(call: Call) -> dict[str, Any]:
    a = call.args
    blob = a.blob("CiphertextBlob")
    context = a.context()
    tokens = a.grant_tokens()
    key_ref = a.opt_string("KeyId", max_len=2048)
    algorithm = a.choice("EncryptionAlgorithm", ALGORITHMS, "SYMMETRIC_DEFAULT") or "SYMMETRIC_DEFAULT"
    a.no_recipient()
    dry = a.dry_run()
    a.finish()
    call.response_elements = False
    if algorithm != "SYMMETRIC_DEFAULT":
        if key_ref is None:
            raise ValidationError("KeyId is required to decrypt with an asymmetric key.")
        entry = call.key(key_ref)
        call.authorize("kms:Decrypt", entry, context=context, grant_tokens=tokens)
        require_enabled(entry)
        dry_run_stop(dry)
        plaintext = _asym.rsa_decrypt(call, entry, blob, algorithm, context)
    else:
        entry, plaintext = open_from(call, blob, context, key_ref, "kms:Decrypt", tokens, algorithm)
        dry_run_stop(dry)
    return {"KeyId": entry.arn, "Plaintext": plaintext, "EncryptionAlgorithm": algorithm}


def re_encrypt(call: Call) -> dict[str, Any]:
    a = call.args
    blob = a.blob("CiphertextBlob")
    source_context = a.context("SourceEncryptionContext")
    source_ref = a.opt_string("SourceKeyId", max_len=2048)
    dest_ref = a.key_id("DestinationKeyId")
    dest_context = a.context("DestinationEncryptionContext")
    source_alg = a.choice("SourceEncryptionAlgorithm", ALGORITHMS, "SYMMETRIC_DEFAULT") or "SYMMETRIC_DEFAULT"
    dest_alg = a.choice("DestinationEncryptionAlgorithm", ALGORITHMS, "SYMMETRIC_DEFAULT") or "SYMMETRIC_DEFAULT"
    tokens = a.grant_tokens()
    dry = a.dry_run()
    a.finish()
    call.response_elements = False
    if source_alg != "SYMMETRIC_DEFAULT":
        if source_ref is None:
            raise ValidationError("SourceKeyId is required for an asymmetric source key.")
        source = call.key(source_ref)
        call.authorize("kms:ReEncryptFrom", source, context=source_context, grant_tokens=tokens)
        require_enabled(source)
        plaintext = _asym.rsa_decrypt(call, source, blob, source_alg, source_context)
    else:
        source, plaintext = open_from(call, blob, source_context, source_ref, "kms:ReEncryptFrom",
                                      tokens, source_alg)
    dest = call.key(dest_ref)
    call.authorize("kms:ReEncryptTo", dest, context=dest_context, grant_tokens=tokens)
    require_enabled(dest)
    dry_run_stop(dry)
    if dest.record.key_spec != "SYMMETRIC_DEFAULT":
        out = _asym.rsa_encrypt(call, dest, plaintext, dest_alg, dest_context)
    else:
        _symmetric(dest, "ReEncrypt")
        out = seal_for(call, dest, plaintext, dest_context)
    return {"CiphertextBlob": out, "SourceKeyId": source.arn, "KeyId": dest.arn,
            "SourceEncryptionAlgorithm": source_alg, "DestinationEncryptionAlgorithm": dest_alg}


def _data_key(call: Call, action: str) -> tuple[KeyEntry, bytes, bytes]:
    a = call.args
    context = a.context()
    spec = a.choice("KeySpec", ("AES_256", "AES_128"))
    size = a.integer("NumberOfBytes", 1, 1024)
    tokens = a.grant_tokens()
    a.no_recipient()
    dry = a.dry_run()
    a.finish()
    call.response_elements = False
    if (spec is None) == (size is None):
        raise ValidationError("Specify exactly one of KeySpec or NumberOfBytes.")
    entry = call.subject(context=context, grant_tokens=tokens)
    require_enabled(entry)
    _symmetric(entry, action.split(":")[1])
    dry_run_stop(dry)
    plaintext = os.urandom(size if size is not None else (32 if spec == "AES_256" else 16))
    return entry, plaintext, seal_for(call, entry, plaintext, context)


def generate_data_key(call: Call) -> dict[str, Any]:
    entry, plaintext, blob = _data_key(call, "kms:GenerateDataKey")
    return {"CiphertextBlob": blob, "Plaintext": plaintext, "KeyId": entry.arn}


def generate_data_key_without_plaintext(call: Call) -> dict[str, Any]:
    entry, _, blob = _data_key(call, "kms:GenerateDataKeyWithoutPlaintext")
    return {"CiphertextBlob": blob, "KeyId": entry.arn}


def generate_random(call: Call) -> dict[str, Any]:
    a = call.args
    size = a.integer("NumberOfBytes", 1, 1024)
    if a.opt_string("CustomKeyStoreId") is not None:
        from ..model.errors import CustomKeyStoreError
        raise CustomKeyStoreError("custom key stores are not supported")
    a.no_recipient()
    a.finish()
    call.response_elements = False
    call.authorize("kms:GenerateRandom", None)
    if size is None:
        raise ValidationError("NumberOfBytes is required.")
    return {"Plaintext": os.urandom(size)}
