"""Grants: create, list, retire and revoke (grant records and tokens: `envelope.kms.model.access`)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from ..authz.grantrules import operations_for_key
from ..model.access import GRANT_COLUMNS, Grant, grant_from_row, grant_token, parse_grant_token
from ..model.clock import to_datetime
from ..model.errors import InvalidGrantIdError, ValidationError
from ..model.params import dry_run_stop, page

if TYPE_CHECKING:
    from ..engine.runtime import Call

__all__ = ["OPERATIONS", "create_grant", "list_grants", "list_retirable_grants", "retire_grant", "revoke_grant"]

OPERATIONS = (
    "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
    "ReEncryptTo", "Sign", "Verify", "GetPublicKey", "CreateGrant", "RetireGrant", "DescribeKey",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac",
    "DeriveSharedSecret",
)


def _constraints(raw: Any) -> dict[str, dict[str, str]] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"EncryptionContextEquals", "EncryptionContextSubset"}:
        raise ValidationError("Constraints may hold EncryptionContextEquals and EncryptionContextSubset")
    out: dict[str, dict[str, str]] = {}
    for name, ctx in raw.items():
        if not isinstance(ctx, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in ctx.items()):
            raise TypeError(f"Constraints.{name} must be a dict of str to str")
        out[name] = dict(ctx)
    return out or None


def _check_for_key(key_spec: str, key_usage: str, operations: list[str],
                   constraints: dict[str, dict[str, str]] | None) -> None:
    """A grant may allow only operations its key supports, and encryption-context constraints
    only on a symmetric encryption key (Developer Guide, "Grants in AWS KMS", grant operations:
    https://docs.aws.amazon.com/kms/latest/developerguide/grants.html#terms-grant-operations;
    API reference, GrantConstraints)."""
    supported = operations_for_key(key_spec, key_usage)
    unsupported = [op for op in operations if op not in supported]
    if unsupported:
        raise ValidationError(f"Grant operations {unsupported} are not supported by a KMS key with key spec "
                              f"{key_spec} and key usage {key_usage}.")
    if constraints and key_spec != "SYMMETRIC_DEFAULT":
        raise ValidationError("Encryption context grant constraints are supported only for symmetric "
                              "encryption KMS keys.")


def create_grant(call: Call) -> dict[str, Any]:
    a = call.args
    key_ref = a.key_id()
    grantee = a.string("GranteePrincipal", max_len=256)
    retiring = a.opt_string("RetiringPrincipal", max_len=256)
    operations = a.strings("Operations", required=True)
    constraints = _constraints(a.mapping("Constraints"))
    tokens = a.grant_tokens()
    name = a.opt_string("Name", max_len=256)
    dry = a.dry_run()
    a.finish()
    if not operations or any(op not in OPERATIONS for op in operations):
        raise ValidationError(f"Operations must be a non-empty list drawn from {', '.join(OPERATIONS)}")
    entry = call.key(key_ref, service_keys=False)
    # The condition keys (kms:GrantOperations, kms:GranteePrincipal, ...) and the limits on a grant
    # created through a grant are read from the request's parameters.
    call.authorize("kms:CreateGrant", entry, grant_tokens=tokens)
    _check_for_key(entry.record.key_spec, entry.record.key_usage, operations, constraints)
    dry_run_stop(dry)
    key_id = entry.record.key_id
    ops_json, cons_json = json.dumps(sorted(set(operations))), json.dumps(constraints) if constraints else None
    if name is not None:
        # CreateGrant is idempotent by name for identical grants (KMS API reference, CreateGrant).
        row = call.conn.execute(
            "SELECT grant_id FROM grants WHERE key_id = ? AND name = ? AND grantee = ? AND "
            "retiring IS ? AND operations = ? AND constraints IS ?",
            (key_id, name, grantee, retiring, ops_json, cons_json)).fetchone()
        if row is not None:
            return {"GrantToken": grant_token(row[0], key_id), "GrantId": row[0]}
    grant_id = os.urandom(32).hex()
    call.conn.execute(f"INSERT INTO grants ({GRANT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (grant_id, key_id, grantee, retiring, ops_json, cons_json, name,
                       call.session.account, call.now))
    call.mark_changed()
    return {"GrantToken": grant_token(grant_id, key_id), "GrantId": grant_id}


def _shape(grant: Grant, key_arn: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "KeyId": key_arn, "GrantId": grant.grant_id, "CreationDate": to_datetime(grant.creation_date),
        "GranteePrincipal": grant.grantee_principal, "IssuingAccount": f"arn:aws:iam::{grant.issuing_account}:root",
        "Operations": list(grant.operations),
    }
    if grant.name is not None:
        out["Name"] = grant.name
    if grant.retiring_principal is not None:
        out["RetiringPrincipal"] = grant.retiring_principal
    if grant.constraints:
        out["Constraints"] = {k: dict(v) for k, v in grant.constraints.items()}
    return out


def list_grants(call: Call) -> dict[str, Any]:
    a = call.args
    limit, offset = a.limit(50, 100), a.marker()
    grant_id = a.opt_string("GrantId", max_len=128)
    grantee = a.opt_string("GranteePrincipal", max_len=256)
    a.finish()
    entry = call.subject(service_keys=False)
    call.response_elements = False
    grants = [g for g in entry.grants if (grant_id is None or g.grant_id == grant_id)
              and (grantee is None or g.grantee_principal == grantee)]
    return page([_shape(g, entry.arn) for g in grants], offset, limit, "Grants")


def list_retirable_grants(call: Call) -> dict[str, Any]:
    a = call.args
    retiring = a.string("RetiringPrincipal", max_len=256)
    limit, offset = a.limit(50, 100), a.marker()
    a.finish()
    call.authorize("kms:ListRetirableGrants", None)
    call.response_elements = False
    rows = call.conn.execute(f"SELECT {GRANT_COLUMNS} FROM grants WHERE retiring = ? ORDER BY created, grant_id",
                             (retiring,)).fetchall()
    out = []
    for row in rows:
        owner = call.conn.execute("SELECT account FROM keys WHERE key_id = ?", (row[1],)).fetchone()
        if owner is not None:
            arn = call.region.arn(owner[0], row[1])
            out.append(_shape(grant_from_row(row, arn), arn))
    return page(out, offset, limit, "Grants")


def _delete(call: Call, key_id: str, grant_id: str) -> None:
    gone = call.conn.execute("DELETE FROM grants WHERE key_id = ? AND grant_id = ?", (key_id, grant_id))
    if gone.rowcount == 0:
        raise InvalidGrantIdError(f"Grant {grant_id} does not exist on key {key_id}")
    call.mark_changed()


def retire_grant(call: Call) -> dict[str, Any]:
    a = call.args
    token = a.opt_string("GrantToken", max_len=8192)
    key_ref = a.opt_string("KeyId", max_len=2048)
    grant_id = a.opt_string("GrantId", max_len=128)
    dry = a.dry_run()
    a.finish()
    if token is not None:
        grant_id, key_id = parse_grant_token(token)
        # The token names the key, which may be another account's: RetireGrant works across
        # accounts (API_RetireGrant.html), and the grant decides who may retire it.
        entry = call.key(key_id, service_keys=False, any_account=True)
    elif key_ref is not None and grant_id is not None:
        entry = call.key(key_ref, service_keys=False)
    else:
        raise ValidationError("RetireGrant needs GrantToken, or KeyId and GrantId")
    grant = next((g for g in entry.grants if g.grant_id == grant_id), None)
    if grant is None:
        raise InvalidGrantIdError(f"Grant {grant_id} does not exist on this key")
    call.authorize_retire(entry, grant)
    dry_run_stop(dry)
    _delete(call, entry.record.key_id, grant.grant_id)
    return {"KeyId": entry.arn, "GrantId": grant.grant_id}


def revoke_grant(call: Call) -> dict[str, Any]:
    a = call.args
    grant_id = a.string("GrantId", max_len=128)
    dry = a.dry_run()
    a.finish()
    entry = call.subject(service_keys=False)
    dry_run_stop(dry)
    _delete(call, entry.record.key_id, grant_id)
    return {}
