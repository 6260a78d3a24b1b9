"""The algorithm-suite table and the commitment policies (format-spec/message.md §2, §3).

This module only describes suites; it performs no cryptography.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["AlgorithmSuite", "CommitmentPolicy", "SuiteInfo"]


@dataclass(frozen=True, slots=True)
class SuiteInfo:
    """Everything the format and the crypto layer need to know about one suite."""

    message_format_version: int  # 1 or 2 (format-spec/message.md §4)
    key_length: int  # bytes of the AES key, equal to the KDF input length
    kdf_hash: str | None  # None: the data key is the AES key; else HKDF with this hash
    signature_curve: str | None  # None, "P-256" or "P-384"
    committing: bool


class AlgorithmSuite(enum.IntEnum):
    """The eleven ESDK algorithm suites, named as the ESDK names them; the value is the wire id."""

    AES_128_GCM_IV12_TAG16 = 0x0014
    AES_192_GCM_IV12_TAG16 = 0x0046
    AES_256_GCM_IV12_TAG16 = 0x0078
    AES_128_GCM_IV12_TAG16_HKDF_SHA256 = 0x0114
    AES_192_GCM_IV12_TAG16_HKDF_SHA256 = 0x0146
    AES_256_GCM_IV12_TAG16_HKDF_SHA256 = 0x0178
    AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256 = 0x0214
    AES_192_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384 = 0x0346
    AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384 = 0x0378
    AES_256_GCM_HKDF_SHA512_COMMIT_KEY = 0x0478
    AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384 = 0x0578

    # Cached per member (a plain attribute read after the first): every message reads several of
    # these, and a property call costs a few times an attribute read.

    @functools.cached_property
    def info(self) -> SuiteInfo:
        return _TABLE[self]

    @functools.cached_property
    def message_format_version(self) -> int:
        return _TABLE[self].message_format_version

    @functools.cached_property
    def key_length(self) -> int:
        return _TABLE[self].key_length

    @functools.cached_property
    def kdf_hash(self) -> str | None:
        return _TABLE[self].kdf_hash

    @functools.cached_property
    def signature_curve(self) -> str | None:
        return _TABLE[self].signature_curve

    @functools.cached_property
    def is_signing(self) -> bool:
        return _TABLE[self].signature_curve is not None

    @functools.cached_property
    def is_committing(self) -> bool:
        return _TABLE[self].committing

    @functools.cached_property
    def wire_id(self) -> bytes:
        return int(self).to_bytes(2, "big")

    @classmethod
    def coerce(cls, value: AlgorithmSuite | str | int) -> AlgorithmSuite:
        """Accept a member, its name, or its numeric id; raise ValueError otherwise."""
        if type(value) is str:
            exact = _SUITE_NAMES.get(value)  # the usual spelling, without the case folding below
            if exact is not None:
                return exact
        if isinstance(value, (cls, str)):
            return _by_name(cls, value, "algorithm suite")
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                raise ValueError(f"unknown algorithm suite id 0x{value:04x}") from None
        raise TypeError(f"algorithm must be an AlgorithmSuite, its name or id, not {type(value).__name__}")


_E = TypeVar("_E", bound=enum.Enum)


def _by_name(cls: type[_E], value: _E | str, what: str) -> _E:
    """A member given itself or its name (any case); ValueError listing the names otherwise."""
    if isinstance(value, cls):
        return value
    try:
        return cls[str(value).strip().upper()]
    except KeyError:
        names = ", ".join(m.name for m in cls)
        raise ValueError(f"unknown {what} {value!r}; expected one of {names}") from None


_S = SuiteInfo
_TABLE: dict[AlgorithmSuite, SuiteInfo] = {
    AlgorithmSuite.AES_128_GCM_IV12_TAG16: _S(1, 16, None, None, False),
    AlgorithmSuite.AES_192_GCM_IV12_TAG16: _S(1, 24, None, None, False),
    AlgorithmSuite.AES_256_GCM_IV12_TAG16: _S(1, 32, None, None, False),
    AlgorithmSuite.AES_128_GCM_IV12_TAG16_HKDF_SHA256: _S(1, 16, "sha256", None, False),
    AlgorithmSuite.AES_192_GCM_IV12_TAG16_HKDF_SHA256: _S(1, 24, "sha256", None, False),
    AlgorithmSuite.AES_256_GCM_IV12_TAG16_HKDF_SHA256: _S(1, 32, "sha256", None, False),
    AlgorithmSuite.AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256: _S(1, 16, "sha256", "P-256", False),
    AlgorithmSuite.AES_192_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384: _S(1, 24, "sha384", "P-384", False),
    AlgorithmSuite.AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384: _S(1, 32, "sha384", "P-384", False),
    AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY: _S(2, 32, "sha512", None, True),
    AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384: _S(2, 32, "sha512", "P-384", True),
}


class CommitmentPolicy(enum.Enum):
    """Which suites encrypt may use and decrypt may accept (format-spec/message.md §3)."""

    FORBID_ENCRYPT_ALLOW_DECRYPT = "FORBID_ENCRYPT_ALLOW_DECRYPT"
    REQUIRE_ENCRYPT_ALLOW_DECRYPT = "REQUIRE_ENCRYPT_ALLOW_DECRYPT"
    REQUIRE_ENCRYPT_REQUIRE_DECRYPT = "REQUIRE_ENCRYPT_REQUIRE_DECRYPT"

    @property
    def default_suite(self) -> AlgorithmSuite:
        if self is CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT:
            return AlgorithmSuite.AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384
        return AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384

    # These run for every message. They read the members from module globals and the suite facts
    # from _TABLE: an Enum member read through its class costs ten times a global read (3.11).

    def allows_encrypt(self, suite: AlgorithmSuite) -> bool:
        if self is _FORBID_ENCRYPT:
            return not _TABLE[suite].committing
        return _TABLE[suite].committing

    def allows_decrypt(self, suite: AlgorithmSuite) -> bool:
        if self is _REQUIRE_DECRYPT:
            return _TABLE[suite].committing
        return True

    @classmethod
    def coerce(cls, value: CommitmentPolicy | str | None) -> CommitmentPolicy:
        if value is None:
            return _REQUIRE_DECRYPT
        if isinstance(value, (cls, str)):
            return _by_name(cls, value, "commitment policy")
        raise TypeError(f"commitment_policy must be a CommitmentPolicy or its name, not {type(value).__name__}")


_FORBID_ENCRYPT = CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT
_REQUIRE_DECRYPT = CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT  # the default policy
_SUITE_NAMES: dict[str, AlgorithmSuite] = {suite.name: suite for suite in AlgorithmSuite}
