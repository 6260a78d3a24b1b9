"""LocalKMS: the embedded key-management service behind a boto3-shaped KMS client.

Methods take boto3's PascalCase keyword arguments and return boto3's response dicts; failures
raise KMSError subclasses whose ``.code`` and ``.response`` match botocore's ClientError.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from ..errors import KMSError
from .engine.principals import PrincipalStore, validate_principal
from .engine.ratelimit import RateLimiter
from .engine.runtime import Call, execute, record_rejected
from .engine.session import Session
from .model.clock import as_clock
from .model.errors import _BY_CODE
from .model.regions import check_region
from .ops import aliases, asymmetric, grants, imports, keyagreement, keyops, lifecycle, macs, multiregion, symmetric
from .store.audit import AuditLog
from .store.backend import database_url
from .store.partition import Region, open_partition

__all__ = ["LocalKMS"]

_ACCOUNT = re.compile(r"^\d{12}$")
_Op = Callable[[Call], dict[str, Any]]


class LocalKMS:
    """A KMS client bound to one region, account and calling principal, over a local store.

    The store is SQLite, one file per region in a data directory: ``path`` if given, else
    ``$ENVELOPE_DATA_DIR``, else the per-user data directory (``~/.local/share/envelope`` on
    Linux). ``path=":memory:"`` gives a private in-memory store shared only by the clients derived
    from this one with `for_principal` / `for_region`. Key material is sealed under a root key
    held outside the database (``$ENVELOPE_KMS_ROOT_KEY``, the file ``$ENVELOPE_KMS_ROOT_KEY_FILE``
    names, or ``kms-root.key`` (0600) in the data directory; see `envelope.kms.store.rootkey`).
    Opening a store that is newer than this build, or sealed under another root key, raises
    `StoreError`; an older one is migrated.

    :param principal: the caller's ARN; default the account root ``arn:aws:iam::<account>:root``.
    :param clock: a callable returning epoch seconds (or an aware datetime): the service's time
        for rotation, deletion windows, import expiry, rate limits and audit event times.
    :param rate_limits: requests per second by operation (``{"Encrypt": 100}``), by family
        (``"Cryptographic"``) or for all (``"*"``); beyond them calls raise ThrottlingException.
    :param via_service: the ``kms:ViaService`` value of calls (as if made by that AWS service).
    :param database: a ``postgresql://`` URL (default ``$ENVELOPE_KMS_DATABASE``): the regions and
        principals live in that PostgreSQL database, shared by every instance pointed at it, and
        the data directory holds only the root key (every instance needs the same one).

    Every call, allowed, denied or failed, appends exactly one event to `audit`. Deliberate
    differences from AWS KMS: grants take effect at once (grant tokens are only validated); key
    material can be imported into symmetric keys only; custom key stores, ``Recipient``
    attestation, KEY_AGREEMENT and SM2/ML-DSA keys are not supported; a principal never created
    in `principals` may still call, with only what key policies and grants give it.
    """

    exceptions = SimpleNamespace(**{code: cls for code, cls in _BY_CODE.items()})

    def __init__(self, path: str | os.PathLike[str] | None = None, region: str = "us-east-1",
                 account: str = "111122223333", principal: str | None = None,
                 clock: Callable[[], float | datetime] | None = None,
                 rate_limits: Mapping[str, float] | None = None, *, via_service: str | None = None,
                 database: str | None = None) -> None:
        if not isinstance(account, str) or not _ACCOUNT.match(account):
            raise ValueError("account must be a 12-digit account id")
        check_region(region)  # before the data directory, its root key or a database file is made
        partition = open_partition(path, None if path == ":memory:" else database_url(database))
        partition.region(region)
        caller = validate_principal(principal) if principal is not None else f"arn:aws:iam::{account}:root"
        limiter = RateLimiter(rate_limits) if rate_limits else None
        self._session = Session(partition, region, account, caller, via_service, as_clock(clock), limiter)

    @classmethod
    def _from_session(cls, session: Session) -> LocalKMS:
        client = cls.__new__(cls)
        session.partition.region(session.region)
        client._session = session
        return client

    def for_principal(self, principal: str, *, account: str | None = None, via_service: str | None = None,
                      source_ip: str | None = None, user_agent: str | None = None,
                      secure_transport: bool | None = None) -> LocalKMS:
        """A client for another caller over the same store, region and clock.

        :param account: the caller's account; default: the account in ``principal``'s ARN.
        :param source_ip: recorded in audit events (``sourceIPAddress``), e.g. by a local endpoint;
            policies see it as ``aws:SourceIp``.
        :param user_agent: recorded in audit events (``userAgent``); policies see ``aws:UserAgent``.
        :param secure_transport: ``aws:SecureTransport`` (whether the call came over TLS); default
            as this client's (in-process calls count as secure).
        """
        validate_principal(principal)
        s = self._session
        own = account or principal.split(":")[4]
        return self._from_session(replace(s, account=own, principal=principal, via_service=via_service,
                                          source_ip=source_ip or s.source_ip,
                                          user_agent=user_agent or s.user_agent,
                                          secure_transport=(s.secure_transport if secure_transport is None
                                                            else secure_transport)))

    def for_region(self, region: str) -> LocalKMS:
        """A client for the same caller in another region of the same store."""
        return self._from_session(replace(self._session, region=region))

    @property
    def region(self) -> str:
        """The region this client calls."""
        return self._session.region

    @property
    def account(self) -> str:
        """The caller's account id."""
        return self._session.account

    @property
    def principal(self) -> str:
        """The caller's ARN."""
        return self._session.principal

    @property
    def data_dir(self) -> str | None:
        """The data directory, or None for an in-memory store."""
        directory = self._session.partition.directory
        return None if directory is None else str(directory)

    @property
    def audit(self) -> AuditLog:
        """The audit log of this client's region."""
        return self._session.partition.region(self._session.region).audit

    def _region_state(self) -> Region:
        """This client's region: its database and caches (the endpoint's group commit uses it)."""
        return self._session.partition.region(self._session.region)

    @property
    def principals(self) -> PrincipalStore:
        """The partition's principals and their identity policies."""
        return PrincipalStore(self._session.partition, self._session.clock)

    def _audit_rejected(self, operation: str, code: str, message: str, params: Mapping[str, Any]) -> None:
        """Audit a request the endpoint refused before dispatch (its caller is authenticated)."""
        record_rejected(self._session, operation, params, KMSError(message, code=code))

    def _run(self, op: str, kwargs: Mapping[str, Any], fn: _Op, read_only: bool = False) -> dict[str, Any]:
        return execute(self._session, op, kwargs, fn, read_only=read_only)

    # -- keys ------------------------------------------------------------------------------------
    def create_key(self, **kwargs: Any) -> dict[str, Any]:
        """KMS CreateKey: boto3's ``create_key`` arguments and response shape."""
        return self._run("CreateKey", kwargs, keyops.create_key)

    def describe_key(self, **kwargs: Any) -> dict[str, Any]:
        """KMS DescribeKey: boto3's ``describe_key`` arguments and response shape."""
        return self._run("DescribeKey", kwargs, keyops.describe_key, True)

    def list_keys(self, **kwargs: Any) -> dict[str, Any]:
        """KMS ListKeys: boto3's ``list_keys`` arguments and response shape."""
        return self._run("ListKeys", kwargs, keyops.list_keys, True)

    def update_key_description(self, **kwargs: Any) -> dict[str, Any]:
        """KMS UpdateKeyDescription: boto3's ``update_key_description`` arguments and response shape."""
        return self._run("UpdateKeyDescription", kwargs, keyops.update_key_description)

    def enable_key(self, **kwargs: Any) -> dict[str, Any]:
        """KMS EnableKey: boto3's ``enable_key`` arguments and response shape."""
        return self._run("EnableKey", kwargs, keyops.enable_key)

    def disable_key(self, **kwargs: Any) -> dict[str, Any]:
        """KMS DisableKey: boto3's ``disable_key`` arguments and response shape."""
        return self._run("DisableKey", kwargs, keyops.disable_key)

    def schedule_key_deletion(self, **kwargs: Any) -> dict[str, Any]:
        """KMS ScheduleKeyDeletion: boto3's ``schedule_key_deletion`` arguments and response shape."""
        return self._run("ScheduleKeyDeletion", kwargs, lifecycle.schedule_key_deletion)

    def cancel_key_deletion(self, **kwargs: Any) -> dict[str, Any]:
        """KMS CancelKeyDeletion: boto3's ``cancel_key_deletion`` arguments and response shape."""
        return self._run("CancelKeyDeletion", kwargs, lifecycle.cancel_key_deletion)

    def tag_resource(self, **kwargs: Any) -> dict[str, Any]:
        """KMS TagResource: boto3's ``tag_resource`` arguments and response shape."""
        return self._run("TagResource", kwargs, keyops.tag_resource)

    def untag_resource(self, **kwargs: Any) -> dict[str, Any]:
        """KMS UntagResource: boto3's ``untag_resource`` arguments and response shape."""
        return self._run("UntagResource", kwargs, keyops.untag_resource)

    def list_resource_tags(self, **kwargs: Any) -> dict[str, Any]:
        """KMS ListResourceTags: boto3's ``list_resource_tags`` arguments and response shape."""
        return self._run("ListResourceTags", kwargs, keyops.list_resource_tags, True)

    # -- aliases ---------------------------------------------------------------------------------
    def create_alias(self, **kwargs: Any) -> dict[str, Any]:
        """KMS CreateAlias: boto3's ``create_alias`` arguments and response shape."""
        return self._run("CreateAlias", kwargs, aliases.create_alias)

    def update_alias(self, **kwargs: Any) -> dict[str, Any]:
        """KMS UpdateAlias: boto3's ``update_alias`` arguments and response shape."""
        return self._run("UpdateAlias", kwargs, aliases.update_alias)

    def delete_alias(self, **kwargs: Any) -> dict[str, Any]:
        """KMS DeleteAlias: boto3's ``delete_alias`` arguments and response shape."""
        return self._run("DeleteAlias", kwargs, aliases.delete_alias)

    def list_aliases(self, **kwargs: Any) -> dict[str, Any]:
        """KMS ListAliases: boto3's ``list_aliases`` arguments and response shape."""
        return self._run("ListAliases", kwargs, aliases.list_aliases, True)

    # -- policies --------------------------------------------------------------------------------
    def put_key_policy(self, **kwargs: Any) -> dict[str, Any]:
        """KMS PutKeyPolicy: boto3's ``put_key_policy`` arguments and response shape."""
        return self._run("PutKeyPolicy", kwargs, keyops.put_key_policy)

    def get_key_policy(self, **kwargs: Any) -> dict[str, Any]:
        """KMS GetKeyPolicy: boto3's ``get_key_policy`` arguments and response shape."""
        return self._run("GetKeyPolicy", kwargs, keyops.get_key_policy, True)

    def list_key_policies(self, **kwargs: Any) -> dict[str, Any]:
        """KMS ListKeyPolicies: boto3's ``list_key_policies`` arguments and response shape."""
        return self._run("ListKeyPolicies", kwargs, keyops.list_key_policies, True)

    # -- grants ----------------------------------------------------------------------------------
    def create_grant(self, **kwargs: Any) -> dict[str, Any]:
        """KMS CreateGrant: boto3's ``create_grant`` arguments and response shape."""
        return self._run("CreateGrant", kwargs, grants.create_grant)

    def list_grants(self, **kwargs: Any) -> dict[str, Any]:
        """KMS ListGrants: boto3's ``list_grants`` arguments and response shape."""
        return self._run("ListGrants", kwargs, grants.list_grants, True)

    def list_retirable_grants(self, **kwargs: Any) -> dict[str, Any]:
        """KMS ListRetirableGrants: boto3's ``list_retirable_grants`` arguments and response shape."""
        return self._run("ListRetirableGrants", kwargs, grants.list_retirable_grants, True)

    def retire_grant(self, **kwargs: Any) -> dict[str, Any]:
        """KMS RetireGrant: boto3's ``retire_grant`` arguments and response shape."""
        return self._run("RetireGrant", kwargs, grants.retire_grant)

    def revoke_grant(self, **kwargs: Any) -> dict[str, Any]:
        """KMS RevokeGrant: boto3's ``revoke_grant`` arguments and response shape."""
        return self._run("RevokeGrant", kwargs, grants.revoke_grant)

    # -- rotation --------------------------------------------------------------------------------
    def enable_key_rotation(self, **kwargs: Any) -> dict[str, Any]:
        """KMS EnableKeyRotation: boto3's ``enable_key_rotation`` arguments and response shape."""
        return self._run("EnableKeyRotation", kwargs, lifecycle.enable_key_rotation)

    def disable_key_rotation(self, **kwargs: Any) -> dict[str, Any]:
        """KMS DisableKeyRotation: boto3's ``disable_key_rotation`` arguments and response shape."""
        return self._run("DisableKeyRotation", kwargs, lifecycle.disable_key_rotation)

    def get_key_rotation_status(self, **kwargs: Any) -> dict[str, Any]:
        """KMS GetKeyRotationStatus: boto3's ``get_key_rotation_status`` arguments and response shape."""
        return self._run("GetKeyRotationStatus", kwargs, lifecycle.get_key_rotation_status, True)

    def rotate_key_on_demand(self, **kwargs: Any) -> dict[str, Any]:
        """KMS RotateKeyOnDemand: boto3's ``rotate_key_on_demand`` arguments and response shape."""
        return self._run("RotateKeyOnDemand", kwargs, lifecycle.rotate_key_on_demand)

    def list_key_rotations(self, **kwargs: Any) -> dict[str, Any]:
        """KMS ListKeyRotations: boto3's ``list_key_rotations`` arguments and response shape."""
        return self._run("ListKeyRotations", kwargs, lifecycle.list_key_rotations, True)

    # -- cryptography ----------------------------------------------------------------------------
    def encrypt(self, **kwargs: Any) -> dict[str, Any]:
        """KMS Encrypt: boto3's ``encrypt`` arguments and response shape."""
        return self._run("Encrypt", kwargs, symmetric.encrypt)

    def decrypt(self, **kwargs: Any) -> dict[str, Any]:
        """KMS Decrypt: boto3's ``decrypt`` arguments and response shape."""
        return self._run("Decrypt", kwargs, symmetric.decrypt)

    def re_encrypt(self, **kwargs: Any) -> dict[str, Any]:
        """KMS ReEncrypt: boto3's ``re_encrypt`` arguments and response shape."""
        return self._run("ReEncrypt", kwargs, symmetric.re_encrypt)

    def generate_data_key(self, **kwargs: Any) -> dict[str, Any]:
        """KMS GenerateDataKey: boto3's ``generate_data_key`` arguments and response shape."""
        return self._run("GenerateDataKey", kwargs, symmetric.generate_data_key)

    def generate_data_key_without_plaintext(self, **kwargs: Any) -> dict[str, Any]:
        """KMS GenerateDataKeyWithoutPlaintext: boto3's ``generate_data_key_without_plaintext`` arguments and response shape."""
        return self._run("GenerateDataKeyWithoutPlaintext", kwargs, symmetric.generate_data_key_without_plaintext)

    def generate_random(self, **kwargs: Any) -> dict[str, Any]:
        """KMS GenerateRandom: boto3's ``generate_random`` arguments and response shape."""
        return self._run("GenerateRandom", kwargs, symmetric.generate_random)

    def get_public_key(self, **kwargs: Any) -> dict[str, Any]:
        """KMS GetPublicKey: boto3's ``get_public_key`` arguments and response shape."""
        return self._run("GetPublicKey", kwargs, asymmetric.get_public_key, True)

    def sign(self, **kwargs: Any) -> dict[str, Any]:
        """KMS Sign: boto3's ``sign`` arguments and response shape."""
        return self._run("Sign", kwargs, asymmetric.sign)

    def verify(self, **kwargs: Any) -> dict[str, Any]:
        """KMS Verify: boto3's ``verify`` arguments and response shape."""
        return self._run("Verify", kwargs, asymmetric.verify)

    def generate_data_key_pair(self, **kwargs: Any) -> dict[str, Any]:
        """KMS GenerateDataKeyPair: boto3's ``generate_data_key_pair`` arguments and response shape."""
        return self._run("GenerateDataKeyPair", kwargs, asymmetric.generate_data_key_pair)

    def generate_data_key_pair_without_plaintext(self, **kwargs: Any) -> dict[str, Any]:
        """KMS GenerateDataKeyPairWithoutPlaintext: boto3's ``generate_data_key_pair_without_plaintext`` arguments and response shape."""
        return self._run("GenerateDataKeyPairWithoutPlaintext", kwargs,
                         asymmetric.generate_data_key_pair_without_plaintext)

    def derive_shared_secret(self, **kwargs: Any) -> dict[str, Any]:
        """KMS DeriveSharedSecret: boto3's ``derive_shared_secret`` arguments and response shape."""
        return self._run("DeriveSharedSecret", kwargs, keyagreement.derive_shared_secret)

    def generate_mac(self, **kwargs: Any) -> dict[str, Any]:
        """KMS GenerateMac: boto3's ``generate_mac`` arguments and response shape."""
        return self._run("GenerateMac", kwargs, macs.generate_mac)

    def verify_mac(self, **kwargs: Any) -> dict[str, Any]:
        """KMS VerifyMac: boto3's ``verify_mac`` arguments and response shape."""
        return self._run("VerifyMac", kwargs, macs.verify_mac)

    # -- multi-Region and imported material ------------------------------------------------------
    def replicate_key(self, **kwargs: Any) -> dict[str, Any]:
        """KMS ReplicateKey: boto3's ``replicate_key`` arguments and response shape."""
        return self._run("ReplicateKey", kwargs, multiregion.replicate_key)

    def update_primary_region(self, **kwargs: Any) -> dict[str, Any]:
        """KMS UpdatePrimaryRegion: boto3's ``update_primary_region`` arguments and response shape."""
        return self._run("UpdatePrimaryRegion", kwargs, multiregion.update_primary_region)

    def get_parameters_for_import(self, **kwargs: Any) -> dict[str, Any]:
        """KMS GetParametersForImport: boto3's ``get_parameters_for_import`` arguments and response shape."""
        return self._run("GetParametersForImport", kwargs, imports.get_parameters_for_import)

    def import_key_material(self, **kwargs: Any) -> dict[str, Any]:
        """KMS ImportKeyMaterial: boto3's ``import_key_material`` arguments and response shape."""
        return self._run("ImportKeyMaterial", kwargs, imports.import_key_material)

    def delete_imported_key_material(self, **kwargs: Any) -> dict[str, Any]:
        """KMS DeleteImportedKeyMaterial: boto3's ``delete_imported_key_material`` arguments and response shape."""
        return self._run("DeleteImportedKeyMaterial", kwargs, imports.delete_imported_key_material)
