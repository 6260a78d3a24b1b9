"""Materials: what a message needs besides its bytes (data key, context, EDKs, signature keys).

Materials are frozen; every change returns a new object, so a keyring cannot alter what another
keyring or a cache already holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from ..format.frozen import cheap_init
from ..format.header import EncryptedDataKey
from ..format.suites import AlgorithmSuite, CommitmentPolicy

__all__ = [
    "DecryptionMaterials",
    "DecryptionRequest",
    "EncryptionMaterials",
    "EncryptionRequest",
    "KeyCheck",
]

# (materials so far, candidate data key) -> does the key belong to the message? See `fits`.
KeyCheck = Callable[["DecryptionMaterials", bytes], bool]


@cheap_init
@dataclass(frozen=True, slots=True)
class EncryptionMaterials:
    """Inputs to encrypt one message.

    ``encryption_context`` is the full context the wrapping keys bind (it includes the signature
    public key and any required keys that will not be stored in the header).
    """

    algorithm: AlgorithmSuite
    encryption_context: Mapping[str, str]
    encrypted_data_keys: tuple[EncryptedDataKey, ...] = ()
    plaintext_data_key: bytes | None = dataclasses.field(default=None, repr=False)
    signing_key: ec.EllipticCurvePrivateKey | None = dataclasses.field(default=None, repr=False)
    required_encryption_context_keys: frozenset[str] = frozenset()

    def with_data_key(self, data_key: bytes, encrypted_data_key: EncryptedDataKey | None = None) -> EncryptionMaterials:
        """Return materials holding a newly generated data key (and optionally its first EDK).

        :raises ValueError: a data key is already set, or its length does not fit the suite.
        """
        if self.plaintext_data_key is not None:
            raise ValueError("encryption materials already hold a data key")
        if len(data_key) != self.algorithm.key_length:
            raise ValueError(f"{self.algorithm.name} needs a {self.algorithm.key_length}-byte data key")
        edks = self.encrypted_data_keys + ((encrypted_data_key,) if encrypted_data_key else ())
        # Direct construction: dataclasses.replace costs more than the rest of a small message.
        return EncryptionMaterials(self.algorithm, self.encryption_context, edks, bytes(data_key),
                                   self.signing_key, self.required_encryption_context_keys)

    def with_encrypted_data_key(self, encrypted_data_key: EncryptedDataKey) -> EncryptionMaterials:
        if self.plaintext_data_key is None:
            raise ValueError("cannot add an encrypted data key before the data key exists")
        return EncryptionMaterials(self.algorithm, self.encryption_context,
                                   self.encrypted_data_keys + (encrypted_data_key,), self.plaintext_data_key,
                                   self.signing_key, self.required_encryption_context_keys)


@cheap_init
@dataclass(frozen=True, slots=True)
class DecryptionMaterials:
    """Inputs to decrypt one message: the unwrapped data key and the signature verification key."""

    algorithm: AlgorithmSuite
    encryption_context: Mapping[str, str]
    plaintext_data_key: bytes | None = dataclasses.field(default=None, repr=False)
    verification_key: str | None = None  # base64 compressed point from the context (§2.4)
    required_encryption_context_keys: frozenset[str] = frozenset()
    # Set by the decryptor for the keyring call only (see `fits`); None in materials a cache keeps.
    key_check: KeyCheck | None = dataclasses.field(default=None, repr=False, compare=False)

    def with_data_key(self, data_key: bytes) -> DecryptionMaterials:
        """Return materials holding the unwrapped data key.

        :raises ValueError: a data key is already set, or its length does not fit the suite.
        """
        if self.plaintext_data_key is not None:
            raise ValueError("decryption materials already hold a data key")
        if len(data_key) != self.algorithm.key_length:
            raise ValueError(f"{self.algorithm.name} needs a {self.algorithm.key_length}-byte data key")
        return DecryptionMaterials(self.algorithm, self.encryption_context, bytes(data_key),
                                   self.verification_key, self.required_encryption_context_keys, self.key_check)

    def fits(self, data_key: bytes) -> bool:
        """Whether ``data_key`` belongs to the message being decrypted (its key commitment, or for
        non-committing suites its header tag, checks out); True when there is nothing to check with.

        For keyrings whose unwrap cannot fail cleanly: RSA PKCS#1 v1.5 decryption with implicit
        rejection returns random bytes for a wrong key, of the data key's length about once in 250
        tries. Such a keyring asks this before accepting a key, so a wrong key counts as "could not
        decrypt" and the next encrypted data key or keyring is tried (format-spec §2.3, §4.5).
        """
        return self.key_check is None or self.key_check(self, data_key)


@cheap_init
@dataclass(frozen=True, slots=True)
class EncryptionRequest:
    """What encrypt asks of a materials manager."""

    encryption_context: Mapping[str, str]
    commitment_policy: CommitmentPolicy
    algorithm: AlgorithmSuite | None = None
    plaintext_length: int | None = None  # None when streaming an unknown length


@cheap_init
@dataclass(frozen=True, slots=True)
class DecryptionRequest:
    """What decrypt asks of a materials manager, from a parsed (not yet authenticated) header."""

    algorithm: AlgorithmSuite
    encrypted_data_keys: Sequence[EncryptedDataKey]
    encryption_context: Mapping[str, str]  # as stored in the header
    commitment_policy: CommitmentPolicy
    reproduced_encryption_context: Mapping[str, str] | None = None
    # The message's own test of a candidate data key, for `DecryptionMaterials.fits`.
    key_check: KeyCheck | None = dataclasses.field(default=None, repr=False, compare=False)
