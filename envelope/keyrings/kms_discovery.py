"""KMS discovery keyrings: decrypt-only, they try whatever KMS key each EDK names (within a filter).

ESDK spec: framework/aws-kms/aws-kms-discovery-keyring.md and
aws-kms-mrk-aware-symmetric-region-discovery-keyring.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import KeyringError
from ..format.header import EncryptedDataKey
from ..materials.materials import DecryptionMaterials, EncryptionMaterials
from .kms import KMSClient, KMSKeyARN, _check_client, _decrypt_edks, _grant_token_tuple

__all__ = ["DiscoveryFilter", "KMSDiscoveryKeyring", "KMSMRKAwareDiscoveryKeyring"]


@dataclass(frozen=True, slots=True)
class DiscoveryFilter:
    """Limits discovery to keys of these accounts in this partition (e.g. ``"aws"``)."""

    partition: str
    account_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.partition, str) or not self.partition:
            raise ValueError("a discovery filter needs a partition")
        if isinstance(self.account_ids, str):
            raise TypeError("account_ids must be a sequence of account ids, not one string")
        accounts = tuple(self.account_ids)
        if not accounts or not all(isinstance(a, str) and a for a in accounts):
            raise ValueError("a discovery filter needs at least one non-empty account id")
        object.__setattr__(self, "account_ids", accounts)

    def admits(self, arn: KMSKeyARN) -> bool:
        return arn.partition == self.partition and arn.account in self.account_ids


class KMSDiscoveryKeyring:
    """Decrypts any ``aws-kms`` EDK whose key the client can use (and the filter admits).

    It calls Decrypt with the key ARN stored in each EDK, so it works for keys it was never told
    about; use a filter to limit which accounts' keys it will trust. It cannot encrypt.

    :raises NoMatchingKeyError: from ``on_decrypt``, listing why each admitted EDK failed.
    """

    def __init__(self, client: KMSClient, discovery_filter: DiscoveryFilter | None = None,
                 grant_tokens: Sequence[str] = ()) -> None:
        _check_client(client, ("decrypt",))
        if discovery_filter is not None and not isinstance(discovery_filter, DiscoveryFilter):
            raise TypeError("discovery_filter must be a DiscoveryFilter")
        self.client = client
        self.discovery_filter = discovery_filter
        self.grant_tokens = _grant_token_tuple(grant_tokens)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(discovery_filter={self.discovery_filter!r})"

    def __str__(self) -> str:  # how messages name it (never the repr)
        return "KMS discovery (any KMS key the message names)"

    def on_encrypt(self, materials: EncryptionMaterials) -> EncryptionMaterials:
        raise KeyringError(f"{type(self).__name__} is decrypt-only; configure a KMSKeyring to encrypt")

    def on_decrypt(self, materials: DecryptionMaterials,
                   encrypted_data_keys: Sequence[EncryptedDataKey]) -> DecryptionMaterials:
        return _decrypt_edks(repr(self), self.client, materials, encrypted_data_keys, self.grant_tokens,
                             self._select)

    def _select(self, provider_info: str, arn: KMSKeyARN) -> str | None:
        if self.discovery_filter is not None and not self.discovery_filter.admits(arn):
            return None
        return provider_info


class KMSMRKAwareDiscoveryKeyring(KMSDiscoveryKeyring):
    """A discovery keyring bound to one region that decrypts multi-Region EDKs from any region.

    A single-Region key's EDK is tried only if the key lives in ``region``; a multi-Region key's
    EDK is decrypted with the same key's replica in ``region``.

    :param region: the client's region; if the client reports one (boto3's ``meta.region_name``
        or a ``region`` attribute) it must agree.
    """

    def __init__(self, client: KMSClient, region: str, discovery_filter: DiscoveryFilter | None = None,
                 grant_tokens: Sequence[str] = ()) -> None:
        super().__init__(client, discovery_filter, grant_tokens)
        if not isinstance(region, str) or not region:
            raise ValueError("region must be a non-empty string")
        reported = _client_region(client)
        if reported is not None and reported != region:
            raise ValueError(f"the client is in region {reported!r}, not {region!r}")
        self.region = region

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.region!r}, discovery_filter={self.discovery_filter!r})"

    def __str__(self) -> str:  # how messages name it (never the repr)
        return f"KMS discovery in {self.region} (any KMS key the message names)"

    def _select(self, provider_info: str, arn: KMSKeyARN) -> str | None:
        if self.discovery_filter is not None and not self.discovery_filter.admits(arn):
            return None
        if arn.is_mrk:
            return str(arn.in_region(self.region))
        return provider_info if arn.region == self.region else None


def _client_region(client: object) -> str | None:
    meta = getattr(client, "meta", None)
    region = getattr(meta, "region_name", None) if meta is not None else None
    if region is None:
        region = getattr(client, "region", None)
    return region if isinstance(region, str) and region else None
