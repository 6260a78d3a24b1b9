"""Request parameters: PascalCase keyword arguments checked like botocore and KMS check them.

A wrong type or an unknown name raises TypeError (botocore rejects those before sending); an
out-of-range value raises ValidationError (the service's ValidationException).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .errors import DryRunOperationError, InvalidMarkerError, UnsupportedOperationError, ValidationError

__all__ = ["Args", "dry_run_stop", "page"]


class Args:
    """The keyword arguments of one call; read each once, then call `finish`."""

    __slots__ = ("_claimed", "_raw", "_used", "op")

    def __init__(self, op: str, raw: Mapping[str, Any], claimed: frozenset[str] = frozenset()) -> None:
        """``claimed``: members the engine reads for the handler (`finish` counts them as read)."""
        self.op = op
        self._raw = raw
        self._claimed = claimed
        self._used: set[str] = set(claimed)

    @property
    def raw(self) -> Mapping[str, Any]:
        """The parameters as given (what policy condition keys read)."""
        return self._raw

    def reset(self) -> None:
        """Forget which parameters were read (the call is about to run again)."""
        self._used = set(self._claimed)

    def finish(self) -> None:
        """Reject parameters the operation does not take."""
        extra = set(self._raw) - self._used
        if extra:
            raise TypeError(f"{self.op}: unknown parameter(s) {', '.join(sorted(extra))}")

    def _get(self, name: str) -> Any:
        self._used.add(name)
        return self._raw.get(name)

    def _missing(self, name: str) -> TypeError:
        return TypeError(f"{self.op}: missing required parameter {name}")

    def string(self, name: str, *, required: bool = True, max_len: int = 8192,
               allow_empty: bool = False) -> str:
        value = self.opt_string(name, max_len=max_len, allow_empty=allow_empty)
        if value is None:
            if required:
                raise self._missing(name)
            return ""
        return value

    def opt_string(self, name: str, *, max_len: int = 8192, allow_empty: bool = False) -> str | None:
        value = self._get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"{self.op}: {name} must be a str")
        if (not value and not allow_empty) or len(value) > max_len:
            lo = 0 if allow_empty else 1
            raise ValidationError(f"1 validation error detected: Value at '{_camel(name)}' failed "
                                  f"to satisfy constraint: length must be between {lo} and {max_len}")
        return value

    def key_id(self, name: str = "KeyId") -> str:
        return self.string(name, max_len=2048)

    def blob(self, name: str, *, lo: int = 1, hi: int = 6144, required: bool = True) -> bytes:
        value = self._get(name)
        if value is None:
            if required:
                raise self._missing(name)
            return b""
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"{self.op}: {name} must be bytes")
        out = bytes(value)
        if not lo <= len(out) <= hi:
            raise ValidationError(f"1 validation error detected: Value at '{_camel(name)}' failed to "
                                  f"satisfy constraint: Member must have length between {lo} and {hi}")
        return out

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise TypeError(f"{self.op}: {name} must be a bool")
        return value

    def integer(self, name: str, lo: int, hi: int) -> int | None:
        value = self._get(name)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{self.op}: {name} must be an int")
        if not lo <= value <= hi:
            raise ValidationError(f"1 validation error detected: Value '{value}' at '{_camel(name)}' "
                                  f"failed to satisfy constraint: Member must have value between "
                                  f"{lo} and {hi}")
        return value

    def choice(self, name: str, allowed: Sequence[str], default: str | None = None) -> str | None:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise TypeError(f"{self.op}: {name} must be a str")
        if value not in allowed:
            raise ValidationError(f"1 validation error detected: Value '{value}' at '{_camel(name)}' "
                                  f"failed to satisfy constraint: Member must satisfy enum value set: "
                                  f"[{', '.join(allowed)}]")
        return value

    def context(self, name: str = "EncryptionContext") -> dict[str, str]:
        value = self._get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise TypeError(f"{self.op}: {name} must be a dict of str to str")
        out: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"{self.op}: {name} keys and values must be str")
            out[k] = v
        return out

    def strings(self, name: str, *, required: bool = False) -> list[str]:
        value = self._get(name)
        if value is None:
            if required:
                raise self._missing(name)
            return []
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise TypeError(f"{self.op}: {name} must be a list of str")
        out = list(value)
        if not all(isinstance(v, str) for v in out):
            raise TypeError(f"{self.op}: {name} must be a list of str")
        return out

    def grant_tokens(self) -> tuple[str, ...]:
        tokens = self.strings("GrantTokens")
        if len(tokens) > 10:
            raise ValidationError("GrantTokens may hold at most 10 tokens")
        return tuple(tokens)

    def mapping(self, name: str) -> Mapping[str, Any] | None:
        value = self._get(name)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise TypeError(f"{self.op}: {name} must be a dict")
        return value

    def tags(self, name: str = "Tags") -> list[tuple[str, str]]:
        value = self._get(name)
        if value is None:
            return []
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise TypeError(f"{self.op}: {name} must be a list of {{'TagKey', 'TagValue'}} dicts")
        out: list[tuple[str, str]] = []
        for item in value:
            if (not isinstance(item, Mapping) or not isinstance(item.get("TagKey"), str)
                    or not isinstance(item.get("TagValue"), str) or set(item) - {"TagKey", "TagValue"}):
                raise TypeError(f"{self.op}: each tag must be {{'TagKey': str, 'TagValue': str}}")
            out.append((item["TagKey"], item["TagValue"]))
        return out

    def timestamp(self, name: str) -> float | None:
        value = self._get(name)
        if value is None:
            return None
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise TypeError(f"{self.op}: {name} must be timezone-aware")
            return value.timestamp()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError(f"{self.op}: {name} must be a datetime or epoch seconds")

    def dry_run(self) -> bool:
        """The DryRun flag: the operation checks authorization, then raises DryRunOperationException."""
        return self.boolean("DryRun")

    def no_recipient(self) -> None:
        """Refuse ``Recipient`` (Nitro Enclaves attestation), which the embedded service cannot verify."""
        if self.mapping("Recipient") is not None:
            raise UnsupportedOperationError("Recipient (attestation documents) is not supported by the "
                                            "embedded key-management service.")

    def limit(self, default: int = 100, hi: int = 1000) -> int:
        value = self.integer("Limit", 1, hi)
        return default if value is None else value

    def marker(self) -> int:
        value = self.opt_string("Marker", max_len=1024)
        if value is None:
            return 0
        try:
            offset = int(base64.urlsafe_b64decode(value.encode("ascii")).decode("ascii"))
        except (ValueError, binascii.Error, UnicodeError):
            raise InvalidMarkerError("the pagination marker is not valid") from None
        if offset < 0:
            raise InvalidMarkerError("the pagination marker is not valid")
        return offset


def dry_run_stop(dry_run: bool) -> None:
    """End a DryRun call once it is authorized and would succeed (KMS's DryRunOperationException)."""
    if dry_run:
        raise DryRunOperationError("The request would have succeeded, but the DryRun option is set.")


def page(items: Sequence[Any], offset: int, limit: int, field: str) -> dict[str, Any]:
    """One page of a list response: ``{field: [...], "Truncated": bool, "NextMarker"?: str}``."""
    chunk = list(items[offset:offset + limit])
    out: dict[str, Any] = {field: chunk, "Truncated": offset + limit < len(items)}
    if out["Truncated"]:
        out["NextMarker"] = base64.urlsafe_b64encode(str(offset + limit).encode("ascii")).decode("ascii")
    return out


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]
