"""Raw RSA keyring: wraps data keys with a local RSA key (format-spec/message.md §7.2).

RSA wrapping does not bind the encryption context; the header authentication tag still does.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa

from ..crypto.random import random_bytes
from ..errors import KeyringError, NoMatchingKeyError
from ..format.header import EncryptedDataKey
from ..materials.materials import DecryptionMaterials, EncryptionMaterials

__all__ = ["PADDINGS", "RawRSAKeyring"]

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "OAEP-SHA1": hashes.SHA1, "OAEP-SHA256": hashes.SHA256,
    "OAEP-SHA384": hashes.SHA384, "OAEP-SHA512": hashes.SHA512,
}
PADDINGS = ("PKCS1", *_HASHES)


def _padding(name: str) -> asym_padding.AsymmetricPadding:
    if name == "PKCS1":
        return asym_padding.PKCS1v15()
    hash_cls = _HASHES[name]
    # MGF1 uses the same hash as OAEP and the label is empty, as every ESDK does (§7.2).
    return asym_padding.OAEP(mgf=asym_padding.MGF1(hash_cls()), algorithm=hash_cls(), label=None)


def _as_bytes(pem: bytes | str | None) -> bytes | None:
    if pem is None:
        return None
    return pem.encode("ascii") if isinstance(pem, str) else bytes(pem)


class RawRSAKeyring:
    """Wraps data keys under an RSA key pair you hold.

    Encrypting needs ``public_key_pem``; decrypting needs ``private_key_pem`` (the public key is
    never derived from the private one, as the ESDK requires).

    :param padding: ``PKCS1``, ``OAEP-SHA1``, ``OAEP-SHA256`` (default), ``OAEP-SHA384`` or ``OAEP-SHA512``.
    """

    def __init__(self, key_namespace: str, key_name: str, private_key_pem: bytes | str | None = None,
                 public_key_pem: bytes | str | None = None, padding: str = "OAEP-SHA256",
                 password: bytes | None = None) -> None:
        if key_namespace.startswith("aws-kms"):
            raise ValueError("a raw keyring's key_namespace may not start with 'aws-kms'")
        normalized = padding.upper().replace("_", "-")
        if normalized not in PADDINGS:
            raise ValueError(f"unknown RSA padding {padding!r}; expected one of {', '.join(PADDINGS)}")
        if private_key_pem is None and public_key_pem is None:
            raise ValueError("give public_key_pem (to encrypt), private_key_pem (to decrypt), or both")
        self.key_namespace = key_namespace
        self.key_name = key_name
        self.padding = normalized
        self._pad = _padding(normalized)
        self._private: rsa.RSAPrivateKey | None = None
        self._public: rsa.RSAPublicKey | None = None
        try:
            private_pem = _as_bytes(private_key_pem)
            if private_pem is not None:
                key = serialization.load_pem_private_key(private_pem, password=password)
                if not isinstance(key, rsa.RSAPrivateKey):
                    raise ValueError("private_key_pem is not an RSA private key")
                self._private = key
            public_pem = _as_bytes(public_key_pem)
            if public_pem is not None:
                pub = serialization.load_pem_public_key(public_pem)
                if not isinstance(pub, rsa.RSAPublicKey):
                    raise ValueError("public_key_pem is not an RSA public key")
                self._public = pub
        except (ValueError, TypeError) as exc:
            raise ValueError(f"could not load the RSA key: {exc}") from None

    def __repr__(self) -> str:
        return f"RawRSAKeyring({self.key_namespace!r}, {self.key_name!r}, padding={self.padding!r})"

    def __str__(self) -> str:  # how messages name it (never the repr)
        return f"RSA key {self.key_name!r} (namespace {self.key_namespace!r})"

    def on_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
        if self._public is None:
            raise KeyringError(f"{self} has no public key, so it cannot encrypt")
        if materials.plaintext_data_key is None:
            materials = materials.with_data_key(random_bytes(materials.algorithm.key_length))
        data_key = materials.plaintext_data_key
        if data_key is None:  # pragma: no cover
            raise RuntimeError("envelope: internal error: data key missing after generation")
        try:
            wrapped = self._public.encrypt(data_key, self._pad)
        except ValueError as exc:  # key too small for the padding
            raise KeyringError(f"{self} could not wrap the data key: {exc}") from None
        edk = EncryptedDataKey(self.key_namespace, self.key_name.encode("utf-8"), wrapped)
        return materials.with_encrypted_data_key(edk)

    def on_decrypt(self, materials: DecryptionMaterials,
                   encrypted_data_keys: Sequence[EncryptedDataKey]) -> DecryptionMaterials:
        if materials.plaintext_data_key is not None:
            return materials
        if self._private is None:
            raise NoMatchingKeyError("raw RSA keyring could not decrypt", [f"{self} has no private key"])
        name = self.key_name.encode("utf-8")
        errors: list[str] = []
        for index, edk in enumerate(encrypted_data_keys):
            if edk.provider_id != self.key_namespace or edk.provider_info != name:
                continue
            try:
                data_key = self._private.decrypt(edk.ciphertext, self._pad)
            except ValueError:
                errors.append(f"{self}: encrypted data key {index} did not unwrap (wrong key or padding)")
                continue
            if len(data_key) != materials.algorithm.key_length:
                errors.append(f"{self}: encrypted data key {index} unwrapped to the wrong length")
                continue
            # PKCS#1 v1.5 with implicit rejection "unwraps" a wrong key to random bytes, now and
            # then of the right length: accept only a key the message itself confirms.
            if not materials.fits(data_key):
                errors.append(f"{self}: encrypted data key {index} unwrapped to a key that does not fit "
                              "this message (wrong key or padding"
                              + (")" if materials.algorithm.is_committing else ", or a different encryption context)"))
                continue
            return materials.with_data_key(data_key)
        if not errors:
            errors.append(f"{self}: the message has no data key wrapped by this key")
        raise NoMatchingKeyError("raw RSA keyring could not decrypt", errors)
