"""KMS error classes: one KMSError subclass per KMS error code, each carrying `.code` and `.response`.

``kms_error(code, message)`` builds the right class for a code; unknown codes give a plain KMSError.
"""

from __future__ import annotations

from ...errors import KeyDisabledError, KeyNotFoundError, KMSError

__all__ = [
    "AccessDeniedError",
    "AlreadyExistsError",
    "CustomKeyStoreError",
    "DryRunOperationError",
    "ExpiredImportTokenError",
    "IncorrectKeyError",
    "IncorrectKeyMaterialError",
    "InvalidAliasNameError",
    "InvalidArnError",
    "InvalidCiphertextError",
    "InvalidGrantIdError",
    "InvalidGrantTokenError",
    "InvalidImportTokenError",
    "InvalidKeyUsageError",
    "InvalidMacError",
    "InvalidMarkerError",
    "InvalidSignatureError",
    "InvalidStateError",
    "KeyDisabledError",
    "KeyNotFoundError",
    "LimitExceededError",
    "MalformedPolicyDocumentError",
    "NotAuthorizedError",
    "TagError",
    "ThrottlingError",
    "UnsupportedOperationError",
    "ValidationError",
    "kms_error",
]


class AccessDeniedError(KMSError):
    """The caller is not authorized (key policy, identity policies and grants all said no)."""

    default_code = "AccessDeniedException"


class AlreadyExistsError(KMSError):
    """An alias (or other named resource) with that name already exists."""

    default_code = "AlreadyExistsException"


class CustomKeyStoreError(KMSError):
    """Custom key stores are not supported by the embedded service."""

    default_code = "CustomKeyStoreNotFoundException"


class DryRunOperationError(KMSError):
    """DryRun=True: the request was authorized and would have succeeded; nothing was done."""

    default_code = "DryRunOperationException"


class ExpiredImportTokenError(KMSError):
    """The import token is older than its 24 hour validity."""

    default_code = "ExpiredImportTokenException"


class IncorrectKeyError(KMSError):
    """Decrypt was given a KeyId that is not the key that encrypted the ciphertext."""

    default_code = "IncorrectKeyException"


class IncorrectKeyMaterialError(KMSError):
    """Re-imported key material is not byte-identical to the material imported before."""

    default_code = "IncorrectKeyMaterialException"


class InvalidAliasNameError(KMSError):
    """An alias name is malformed or uses the reserved ``alias/aws/`` prefix."""

    default_code = "InvalidAliasNameException"


class InvalidArnError(KMSError):
    """A malformed ARN."""

    default_code = "InvalidArnException"


class InvalidCiphertextError(KMSError):
    """The ciphertext is malformed, or its encryption context does not match."""

    default_code = "InvalidCiphertextException"


class InvalidGrantIdError(KMSError):
    """No grant with that id exists on the key."""

    default_code = "InvalidGrantIdException"


class InvalidGrantTokenError(KMSError):
    """A grant token is malformed or names no live grant."""

    default_code = "InvalidGrantTokenException"


class InvalidImportTokenError(KMSError):
    """The import token is malformed or belongs to another key."""

    default_code = "InvalidImportTokenException"


class InvalidKeyUsageError(KMSError):
    """The key's usage or spec does not allow this operation or algorithm."""

    default_code = "InvalidKeyUsageException"

    @classmethod
    def for_usage(cls, arn: str, usage: str, operation: str) -> InvalidKeyUsageError:
        """AWS's text for a key of the wrong usage: ``<arn> key usage is SIGN_VERIFY which is not
        valid for Encrypt.`` (https://docs.aws.amazon.com/kms/latest/APIReference/API_Encrypt.html)."""
        return cls(f"{arn} key usage is {usage} which is not valid for {operation}.")


class InvalidMacError(KMSError):
    """VerifyMac: the MAC does not verify."""

    default_code = "KMSInvalidMacException"


class InvalidMarkerError(KMSError):
    """A pagination marker was not produced by this service."""

    default_code = "InvalidMarkerException"


class InvalidSignatureError(KMSError):
    """Verify: the signature does not verify."""

    default_code = "KMSInvalidSignatureException"


class InvalidStateError(KMSError):
    """The key's state (pending deletion, pending import, ...) does not allow the operation."""

    default_code = "KMSInvalidStateException"


class LimitExceededError(KMSError):
    """A quota was reached (e.g. on-demand rotations per key)."""

    default_code = "LimitExceededException"


class MalformedPolicyDocumentError(KMSError):
    """A key policy is not valid JSON or not a valid policy, or would lock the caller out."""

    default_code = "MalformedPolicyDocumentException"


class NotAuthorizedError(KMSError):
    """AWS's generic refusal of a reserved name (an ``alias/aws/`` alias), sent without a message."""

    default_code = "NotAuthorizedException"


class TagError(KMSError):
    """A tag key or value is invalid."""

    default_code = "TagException"


class ThrottlingError(KMSError):
    """The configured request-rate limit for this operation was exceeded; retry later."""

    default_code = "ThrottlingException"


class UnsupportedOperationError(KMSError):
    """The operation is not supported for this key (e.g. changing an AWS managed key)."""

    default_code = "UnsupportedOperationException"


class ValidationError(KMSError):
    """A parameter is missing, of the wrong type, or out of range (boto3's ValidationException)."""

    default_code = "ValidationException"


_BY_CODE: dict[str, type[KMSError]] = {
    cls.default_code: cls
    for cls in (
        AccessDeniedError, AlreadyExistsError, CustomKeyStoreError, DryRunOperationError,
        ExpiredImportTokenError,
        IncorrectKeyError, IncorrectKeyMaterialError, InvalidAliasNameError, InvalidArnError,
        InvalidCiphertextError, InvalidGrantIdError, InvalidGrantTokenError, InvalidImportTokenError,
        InvalidKeyUsageError, InvalidMacError, InvalidMarkerError, InvalidSignatureError,
        InvalidStateError, KeyDisabledError, KeyNotFoundError, LimitExceededError,
        MalformedPolicyDocumentError, NotAuthorizedError, TagError, ThrottlingError, UnsupportedOperationError,
        ValidationError,
    )
}


def kms_error(code: str, message: str) -> KMSError:
    """Return the exception class registered for ``code`` (a plain KMSError for unknown codes)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return KMSError(message, code=code)
    return cls(message)
