"""The exception hierarchy: every error `envelope` raises on purpose derives from EnvelopeError.

::

    EnvelopeError
    ├── FormatError            bytes that are not a well-formed message (hint for base64 input)
    ├── AuthenticationError    a tag, key commitment, header or signature did not verify;
    │                          truncated message; trailing data
    ├── NoMatchingKeyError     no keyring could produce the data key; .errors lists why
    ├── KeyringError           a keyring was misused or its wrapping call failed
    ├── KMSError               a KMS call failed; .code is the KMS error code
    │   ├── KeyNotFoundError   NotFoundException
    │   └── KeyDisabledError   DisabledException
    └── PolicyError            a rule refused the operation: encryption context mismatch, too many
                               encrypted data keys, commitment policy, usage or size limits

Misuse of the API (wrong argument types or values) raises the built-in TypeError or ValueError.
Decrypt errors are deliberately coarse: they never carry key bytes, plaintext or tags.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AuthenticationError",
    "EnvelopeError",
    "FormatError",
    "KMSError",
    "KeyDisabledError",
    "KeyNotFoundError",
    "KeyringError",
    "NoMatchingKeyError",
    "PolicyError",
]


class EnvelopeError(Exception):
    """Root of every error raised by `envelope`.

    :param hint: an optional line telling the user what to try, shown by the CLI as ``hint:``.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (hint: {self.hint})" if self.hint else text


class FormatError(EnvelopeError):
    """The input is not a well-formed message (or a field is out of its allowed range)."""


class AuthenticationError(EnvelopeError):
    """Authentication failed: tag, key commitment, header, signature, truncation or trailing data."""


class NoMatchingKeyError(EnvelopeError):
    """No keyring could obtain the data key.

    :ivar errors: one entry per keyring (or encrypted data key) that was tried, saying why it failed.
    """

    def __init__(self, message: str, errors: Sequence[BaseException | str] = (), *,
                 hint: str | None = None) -> None:
        self.errors: tuple[BaseException | str, ...] = tuple(errors)
        reasons = "; ".join(str(e) for e in self.errors)
        super().__init__(f"{message}: {reasons}" if reasons else message, hint=hint)


class KeyringError(EnvelopeError):
    """A keyring could not wrap or unwrap a data key for a reason other than "not my key"."""


class KMSError(EnvelopeError):
    """A key-management call failed.

    :ivar code: the KMS error code, e.g. ``"AccessDeniedException"``, as boto3 reports it in
        ``error.response["Error"]["Code"]``.
    """

    default_code = "KMSInternalException"

    def __init__(self, message: str, *, code: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code: str = code or self.default_code
        # boto3's ClientError shape, so code written for botocore's errors reads ours unchanged.
        self.response = {"Error": {"Code": self.code, "Message": message}}


class KeyNotFoundError(KMSError):
    """The key (or alias) does not exist in this region and account."""

    default_code = "NotFoundException"


class KeyDisabledError(KMSError):
    """The key is disabled and refuses cryptographic use."""

    default_code = "DisabledException"


class PolicyError(EnvelopeError):
    """A configured rule refused the operation (context mismatch, EDK limit, commitment, usage limit)."""
