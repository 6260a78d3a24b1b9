"""What a grant allows: the operations each kind of key takes, grant constraints,
and the limits on grants created through a grant. Pure: no I/O.

Sources: Developer Guide "Grants in AWS KMS" (grant operations and key types,
https://docs.aws.amazon.com/kms/latest/developerguide/grants.html#terms-grant-operations),
"Creating grants" ("Granting CreateGrant permission",
https://docs.aws.amazon.com/kms/latest/developerguide/create-grant-overview.html#grant-creategrant)
and the KMS API reference, GrantConstraints
(https://docs.aws.amazon.com/kms/latest/APIReference/API_GrantConstraints.html).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ..model.access import Grant
from .request import AuthorizationRequest, Caller

__all__ = ["CONSTRAINT_NAMES", "GRANT_OPERATIONS", "constraints_allow", "grant_allows", "names",
           "operations_for_key", "within_parent"]

CONSTRAINT_NAMES = ("EncryptionContextEquals", "EncryptionContextSubset")
_COMMON = ("CreateGrant", "DescribeKey", "RetireGrant")
# Grant operations by key usage (symmetric encryption keys take the data-key operations too).
_BY_USAGE: dict[str, tuple[str, ...]] = {
    "SYMMETRIC": ("Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
                  "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo"),
    "ENCRYPT_DECRYPT": ("Decrypt", "Encrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey"),
    "SIGN_VERIFY": ("Sign", "Verify", "GetPublicKey"),
    "GENERATE_VERIFY_MAC": ("GenerateMac", "VerifyMac"),
    "KEY_AGREEMENT": ("DeriveSharedSecret", "GetPublicKey"),
}
GRANT_OPERATIONS: tuple[str, ...] = tuple(dict.fromkeys(
    op for ops in (*_BY_USAGE.values(), _COMMON) for op in ops))
# Operations whose requests carry an encryption context: only these are subject to a grant's
# encryption-context constraint, and only on symmetric encryption keys (GrantConstraints).
_EC_OPERATIONS = frozenset(_BY_USAGE["SYMMETRIC"])
_ROOT = re.compile(r"arn:[\w-]+:iam::(\d{12}):root")


def operations_for_key(key_spec: str, key_usage: str) -> tuple[str, ...]:
    """The grant operations a key of this spec and usage supports."""
    usage = "SYMMETRIC" if key_spec == "SYMMETRIC_DEFAULT" else key_usage
    return _BY_USAGE.get(usage, ()) + _COMMON


def _folded(context: Mapping[str, str] | None) -> dict[str, str] | None:
    # In a grant constraint the context key is matched without case, the value exactly.
    return None if context is None else {k.lower(): v for k, v in context.items()}


def _satisfies(context: Mapping[str, str], equals: Mapping[str, str] | None,
               subset: Mapping[str, str] | None) -> bool:
    if equals is not None and dict(equals) != dict(context):
        return False
    return subset is None or all(context.get(k) == v for k, v in subset.items())


def constraints_allow(constraints: Mapping[str, Mapping[str, str]] | None, operation: str,
                      context: Mapping[str, str] | None) -> bool:
    """Whether a grant's constraints let ``operation`` run with this encryption context.

    Constraints apply only to operations that take an encryption context; DescribeKey,
    RetireGrant and the like are allowed whatever they say (CreateGrant is checked by
    `within_parent` instead).
    """
    if not constraints or operation not in _EC_OPERATIONS:
        return True
    return _satisfies(_folded(context) or {}, _folded(constraints.get("EncryptionContextEquals")),
                      _folded(constraints.get("EncryptionContextSubset")))


def within_parent(parent: Grant, operations: Sequence[str],
                  constraints: Mapping[str, Mapping[str, str]] | None) -> bool:
    """Whether a grant created through ``parent``'s CreateGrant stays inside it.

    Its operations must be a subset of the parent's, and its encryption-context constraint
    equally strict or stricter: every context the new grant accepts, the parent accepts
    (Developer Guide, "Granting CreateGrant permission"; API reference, GrantConstraints).
    """
    if not operations or not set(operations) <= set(parent.operations):
        return False
    if not parent.constraints:
        return True
    parent_eq = _folded(parent.constraints.get("EncryptionContextEquals"))
    parent_sub = _folded(parent.constraints.get("EncryptionContextSubset"))
    child_eq = _folded((constraints or {}).get("EncryptionContextEquals"))
    child_sub = _folded((constraints or {}).get("EncryptionContextSubset"))
    if child_eq is not None:
        # The child accepts exactly one context (or none, if its own subset contradicts it).
        if child_sub is not None and not _satisfies(child_eq, None, child_sub):
            return True
        return _satisfies(child_eq, parent_eq, parent_sub)
    if child_sub is None or parent_eq is not None:
        # An unconstrained child, or an open-ended one under a parent that takes one context.
        return False
    return all(child_sub.get(k) == v for k, v in (parent_sub or {}).items())


def grant_allows(grant: Grant, request: AuthorizationRequest, who: Caller, operation: str) -> bool:
    """Whether ``grant`` lets the caller run ``operation`` (its API name) in this request."""
    if grant.key_arn != request.key_arn or grant.grantee_principal not in who.forms:
        return False
    if operation not in grant.operations or operation == "RetireGrant":
        return False  # a grant's RetireGrant retires that grant only (authorize_retire)
    if operation == "CreateGrant":
        # The new grant must stay inside this one (create-grant-overview.html#grant-creategrant).
        operations, constraints = _requested_grant(request)
        return within_parent(grant, operations, constraints)
    return constraints_allow(grant.constraints, operation, request.encryption_context)


def _requested_grant(request: AuthorizationRequest) -> tuple[tuple[str, ...], Mapping[str, Mapping[str, str]] | None]:
    """The operations and constraints a CreateGrant request asks for."""
    if request.facts is None:
        ops = request.extra_conditions.get("kms:GrantOperations")
        return (tuple(str(o) for o in ops) if isinstance(ops, (list, tuple)) else ()), None
    params = request.facts.params
    ops = params.get("Operations")
    constraints = params.get("Constraints")
    return ((tuple(str(o) for o in ops) if isinstance(ops, (list, tuple)) else ()),
            constraints if isinstance(constraints, Mapping) else None)


def names(principal: str | None, who: Caller) -> bool:
    """Whether a grant's grantee or retiring principal is the caller (an account names its root)."""
    if principal is None:
        return False
    if principal in who.forms:
        return True
    root = _ROOT.fullmatch(principal)
    return who.is_root and (root.group(1) if root else principal) == who.account
