"""The Keyring protocol (ESDK keyring semantics, format-spec/message.md §7)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..format.header import EncryptedDataKey
from ..materials.materials import DecryptionMaterials, EncryptionMaterials

__all__ = ["Keyring", "keyring_label"]


@runtime_checkable
class Keyring(Protocol):
    """Wraps and unwraps data keys.

    ``on_encrypt`` generates the data key when the materials have none (if it can), and adds the
    encrypted data keys it makes. ``on_decrypt`` returns materials holding the data key, returns
    the materials unchanged if they already hold one, and otherwise raises NoMatchingKeyError whose
    ``errors`` say, for each encrypted data key it tried, why it failed.
    """

    def on_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
        ...

    def on_decrypt(self, materials: DecryptionMaterials,
                   encrypted_data_keys: Sequence[EncryptedDataKey]) -> DecryptionMaterials:
        ...


def keyring_label(keyring: object) -> str:
    """How messages name a keyring: by its key (the keyring's ``str()``, e.g. ``AES key
    'payroll' (namespace 'hr')``), never by a Python repr; a keyring that does not say gets
    its class name."""
    if type(keyring).__str__ is not object.__str__:
        return str(keyring)
    return f"a {type(keyring).__name__}"
