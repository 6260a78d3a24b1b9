"""Multi-keyring: one generator makes the data key, children add more wrapped copies."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import EnvelopeError, KeyringError, NoMatchingKeyError
from ..format.header import EncryptedDataKey
from ..materials.materials import DecryptionMaterials, EncryptionMaterials
from .base import Keyring, keyring_label

__all__ = ["MultiKeyring"]


class MultiKeyring:
    """Combines keyrings.

    Encrypt: the generator (if given) produces the data key, then every child wraps it, so any one
    of them can decrypt. Decrypt: the generator and then the children are tried in order; the first
    that unwraps a key wins, and if none does, NoMatchingKeyError lists every keyring's reason.
    """

    def __init__(self, generator: Keyring | None = None, children: Sequence[Keyring] = ()) -> None:
        if generator is None and not children:
            raise ValueError("a MultiKeyring needs a generator or at least one child")
        self.generator = generator
        self.children = tuple(children)

    def __repr__(self) -> str:
        return f"MultiKeyring(generator={self.generator!r}, children={list(self.children)!r})"

    def __str__(self) -> str:  # how messages name it (never the repr)
        members = ([self.generator] if self.generator is not None else []) + list(self.children)
        return "keys " + ", ".join(keyring_label(k) for k in members)

    def on_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
        if self.generator is not None:
            materials = self.generator.on_encrypt(materials)
        if materials.plaintext_data_key is None:
            raise KeyringError("MultiKeyring has no generator and the materials have no data key")
        for child in self.children:
            materials = child.on_encrypt(materials)
        return materials

    def on_decrypt(self, materials: DecryptionMaterials,
                   encrypted_data_keys: Sequence[EncryptedDataKey]) -> DecryptionMaterials:
        if materials.plaintext_data_key is not None:
            return materials
        errors: list[BaseException | str] = []
        keyrings = ([self.generator] if self.generator is not None else []) + list(self.children)
        for keyring in keyrings:
            try:
                result = keyring.on_decrypt(materials, encrypted_data_keys)
            except EnvelopeError as exc:
                errors.append(exc)
                continue
            if result.plaintext_data_key is not None:
                return result
            errors.append(f"{keyring_label(keyring)}: no matching encrypted data key")
        raise NoMatchingKeyError("no keyring could decrypt the data key", errors)
