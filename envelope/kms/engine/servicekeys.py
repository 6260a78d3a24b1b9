"""AWS managed keys (``alias/aws/<service>``), created on first use of their alias, and key insertion.

Key resolution (`envelope.kms.engine.runtime.Call.key`) creates them; CreateKey inserts through
`insert_new_key` too.
"""

from __future__ import annotations

import json
import re
from typing import Protocol

from ...errors import KeyNotFoundError
from ..model.clock import DAY
from ..model.keys import KeyRecord, generate_material, insert_key, new_key_id
from ..model.sql import Connection
from ..store.partition import Region
from .session import Session

__all__ = ["CallState", "create_service_key", "insert_new_key"]

_SERVICE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class CallState(Protocol):
    """What key creation needs of a call (`envelope.kms.engine.runtime.Call` is one)."""

    session: Session
    region: Region
    conn: Connection
    now: float

    def mark_changed(self) -> None: ...


def insert_new_key(call: CallState, rec: KeyRecord) -> None:
    """Insert a new key and, unless it waits for imported material, its first backing key."""
    insert_key(call.conn, rec)
    if rec.current_version == 1:
        sealed = call.session.partition.sealer.seal(generate_material(rec.key_spec), rec.key_id, 1)
        call.conn.execute("INSERT INTO key_versions (key_id, version, sealed, created, rotation_type) "
                          "VALUES (?, 1, ?, ?, NULL)", (rec.key_id, sealed, rec.created))
    call.mark_changed()


def _service_policy(account: str, region: str, service: str) -> str:
    # The shape of the policy KMS gives AWS managed keys: use only through the service, metadata
    # reads for the account.
    return json.dumps({
        "Version": "2012-10-17", "Id": f"auto-{service}-1",
        "Statement": [
            {"Sid": f"Allow access through {service} for all principals in the account that are "
                    f"authorized to use {service}",
             "Effect": "Allow", "Principal": {"AWS": "*"},
             "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                        "kms:CreateGrant", "kms:DescribeKey"],
             "Resource": "*",
             "Condition": {"StringEquals": {"kms:CallerAccount": account,
                                            "kms:ViaService": f"{service}.{region}.amazonaws.com"}}},
            {"Sid": "Allow direct access to key metadata to the account", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
             "Action": ["kms:Describe*", "kms:Get*", "kms:List*"], "Resource": "*"},
        ]}, indent=2)


def create_service_key(call: CallState, alias_name: str) -> str:
    """Create the AWS managed key behind ``alias/aws/<service>`` (always rotating, not deletable)."""
    service = alias_name[len("alias/aws/"):]
    account, region = call.session.account, call.region.name
    if not _SERVICE.match(service):
        raise KeyNotFoundError(f"Alias arn:aws:kms:{region}:{account}:{alias_name} is not found.")
    key_id = new_key_id(False)
    rec = KeyRecord(
        key_id=key_id, account=account, created=call.now,
        description=f"Default key that protects my {service} data when no other key is defined",
        key_usage="ENCRYPT_DECRYPT", key_spec="SYMMETRIC_DEFAULT", key_state="Enabled", origin="AWS_KMS",
        key_manager="AWS", multi_region=False, primary_region=None, replica_regions=(),
        policy=_service_policy(account, region, service), rotation_enabled=True, rotation_period=365,
        next_rotation=call.now + 365 * DAY, on_demand_count=0, deletion_date=None, pending_window=None,
        valid_to=None, expiration_model=None, fingerprint=None, current_version=1, service=service)
    insert_new_key(call, rec)
    call.conn.execute("INSERT INTO aliases (account, alias_name, key_id, created, updated) "
                      "VALUES (?, ?, ?, ?, ?)", (account, alias_name, key_id, call.now, call.now))
    call.region.aliases[(account, alias_name)] = key_id
    call.region.keys.pop(key_id, None)
    return key_id
