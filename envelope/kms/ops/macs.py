"""HMAC operations: generate_mac and verify_mac with HMAC_224/256/384/512 keys."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

from ..model.errors import InvalidKeyUsageError, InvalidMacError
from ..model.keys import KEY_SPECS
from ..model.params import dry_run_stop
from .lifecycle import require_enabled

if TYPE_CHECKING:
    from ..engine.runtime import Call

__all__ = ["MAC_ALGORITHMS", "generate_mac", "verify_mac"]

MAC_ALGORITHMS = {"HMAC_SHA_224": "sha224", "HMAC_SHA_256": "sha256", "HMAC_SHA_384": "sha384",
                  "HMAC_SHA_512": "sha512"}


def _mac(call: Call, action: str, with_mac: bool) -> tuple[str, str, bytes, bytes]:
    a = call.args
    message = a.blob("Message", hi=4096)
    algorithm = a.choice("MacAlgorithm", tuple(MAC_ALGORITHMS))
    given = a.blob("Mac", hi=6144) if with_mac else b""
    tokens = a.grant_tokens()
    dry = a.dry_run()
    a.finish()
    call.response_elements = False
    if algorithm is None:
        raise TypeError(f"{a.op}: missing required parameter MacAlgorithm")
    entry = call.subject(grant_tokens=tokens)
    require_enabled(entry)
    rec = entry.record
    if rec.key_usage != "GENERATE_VERIFY_MAC":
        raise InvalidKeyUsageError.for_usage(entry.arn, rec.key_usage, action.split(":")[1])
    if algorithm not in KEY_SPECS[rec.key_spec].mac:
        raise InvalidKeyUsageError(f"{algorithm} is not valid for {entry.arn} ({rec.key_spec}).")
    dry_run_stop(dry)
    material = call.material(entry, rec.current_version)
    mac = hmac.new(material, message, getattr(hashlib, MAC_ALGORITHMS[algorithm])).digest()
    return entry.arn, algorithm, mac, given


def generate_mac(call: Call) -> dict[str, Any]:
    arn, algorithm, mac, _ = _mac(call, "kms:GenerateMac", False)
    return {"Mac": mac, "MacAlgorithm": algorithm, "KeyId": arn}


def verify_mac(call: Call) -> dict[str, Any]:
    arn, algorithm, mac, given = _mac(call, "kms:VerifyMac", True)
    if not hmac.compare_digest(mac, given):
        raise InvalidMacError("The MAC does not verify.")
    return {"KeyId": arn, "MacValid": True, "MacAlgorithm": algorithm}
