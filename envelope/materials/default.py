"""The default materials manager: suite selection, signing keys, and one keyring (ESDK default CMM)."""

from __future__ import annotations

from ..crypto.signing import PUBLIC_KEY_CONTEXT_KEY, Signer, generate_signing_key
from ..errors import FormatError, KeyringError, PolicyError
from ..format.context import RESERVED_PREFIX
from ..keyrings.base import Keyring, keyring_label
from .materials import DecryptionMaterials, DecryptionRequest, EncryptionMaterials, EncryptionRequest

__all__ = ["DefaultMaterialsManager"]

_NO_KEYS: frozenset[str] = frozenset()


class DefaultMaterialsManager:
    """Builds materials with one keyring.

    On encrypt it picks the suite (the commitment policy's default unless one is requested),
    makes an ephemeral signing key for signing suites and records its public key in the context.
    On decrypt it applies the commitment policy before calling the keyring, and merges the
    caller's reproduced encryption context (format-spec/message.md §4.5).
    """

    def __init__(self, keyring: Keyring) -> None:
        if not hasattr(keyring, "on_encrypt") or not hasattr(keyring, "on_decrypt"):
            raise TypeError("keyring must implement on_encrypt and on_decrypt")
        self.keyring = keyring

    def __repr__(self) -> str:
        return f"DefaultMaterialsManager({self.keyring!r})"

    def get_encryption_materials(self, request: EncryptionRequest) -> EncryptionMaterials:
        policy = request.commitment_policy
        suite = request.algorithm or policy.default_suite
        if not policy.allows_encrypt(suite):
            raise PolicyError(
                f"commitment policy {policy.name} does not allow encrypting with {suite.name}",
                hint="choose a committing suite, or pass commitment_policy=FORBID_ENCRYPT_ALLOW_DECRYPT "
                     "for non-committing ones")
        context = dict(request.encryption_context)
        for key in context:
            if key.startswith(RESERVED_PREFIX):
                raise ValueError(f"encryption context key {key!r} uses the reserved prefix {RESERVED_PREFIX!r}")
        signing_key = None
        curve = suite.signature_curve
        if curve is not None:
            signing_key = generate_signing_key(curve)
            context[PUBLIC_KEY_CONTEXT_KEY] = Signer(curve, signing_key).public_key
        materials = EncryptionMaterials(suite, context, signing_key=signing_key)
        materials = self.keyring.on_encrypt(materials)
        if materials.plaintext_data_key is None or not materials.encrypted_data_keys:
            raise KeyringError(f"{keyring_label(self.keyring)} returned no data key or no encrypted data key")
        if materials.algorithm is not suite:
            raise KeyringError(f"{keyring_label(self.keyring)} changed the algorithm suite")
        return materials

    def decrypt_materials(self, request: DecryptionRequest) -> DecryptionMaterials:
        policy = request.commitment_policy
        suite = request.algorithm
        if not policy.allows_decrypt(suite):
            raise PolicyError(
                f"commitment policy {policy.name} refuses the non-committing suite {suite.name}",
                hint="decrypt with commitment_policy=REQUIRE_ENCRYPT_ALLOW_DECRYPT to read older messages")
        context = dict(request.encryption_context)
        required = _NO_KEYS
        reproduced = request.reproduced_encryption_context
        if reproduced:
            added = set()
            for key, value in reproduced.items():
                if key in context:
                    if context[key] != value:
                        raise PolicyError(f"encryption context mismatch: the message's value for {key!r} "
                                          "differs from the one given")
                else:
                    # A key the header does not store must have been required at encrypt time; the
                    # header tag then proves it (format-spec/message.md §4.5).
                    context[key] = value
                    added.add(key)
            required = frozenset(added)
        verification_key = context.get(PUBLIC_KEY_CONTEXT_KEY)
        signing = suite.is_signing
        if signing and verification_key is None:
            raise FormatError(f"signed suite {suite.name} but the message has no signature public key")
        if not signing and verification_key is not None:
            raise FormatError(f"unsigned suite {suite.name} but the message carries a signature public key")
        materials = DecryptionMaterials(suite, context, None, verification_key, required, request.key_check)
        materials = self.keyring.on_decrypt(materials, request.encrypted_data_keys)
        if materials.plaintext_data_key is None:
            raise KeyringError(f"{keyring_label(self.keyring)} returned no data key")
        return materials
