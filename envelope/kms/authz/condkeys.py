"""The condition keys a policy may name: which are multivalued, when each is present, its values.

A key is present in a request only where AWS puts it in the request context:
https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html (the ``kms:`` keys) and
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html (the
global ``aws:`` keys). A parameter key ("conditions for an API operation request") is present on
its operations even when the parameter is omitted, with the parameter's default; a key-attribute
key ("conditions for KMS keys used in API operations") is present on every KMS key resource
operation. A key this table does not list cannot be evaluated, so a policy naming it is refused
(`lookup`), never read as "absent". Pure: no I/O; the facts come with the request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from .request import AuthorizationRequest, Caller, KeyFacts, RequestFacts

__all__ = ["ConditionKey", "Getter", "Values", "as_text", "lookup", "user_id"]

Values = tuple[str, ...] | None  # a key's values in one request; None: the key is absent


def as_text(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


Getter = Callable[[AuthorizationRequest, Caller, RequestFacts, str], Values]  # (..., key family suffix)
_NO_FACTS = RequestFacts(params={})


@dataclass(frozen=True, slots=True)
class ConditionKey:
    """One condition key (or key family ending in ``:`` or ``/``): multivalued or not, and how to
    read its values from a request."""

    name: str
    multi: bool
    # Read from what only the service knows (parameters, the key, the transport). A request
    # built without facts (the pure engine's callers) gives these in ``extra_conditions``.
    from_facts: bool
    read: Getter

    def values(self, request: AuthorizationRequest, caller: Caller, key: str, suffix: str) -> Values:
        """The key's values in this request (None: absent)."""
        facts = request.facts
        if facts is None:
            if self.from_facts:
                return _given(request, key)
            facts = _NO_FACTS
        return self.read(request, caller, facts, suffix) or None


def _given(request: AuthorizationRequest, key: str) -> Values:
    for name, value in request.extra_conditions.items():
        if name.lower() == key:
            if isinstance(value, (list, tuple, set, frozenset)):
                return tuple(as_text(v) for v in value) or None
            return _one(value)
    return None


# --- readers -----------------------------------------------------------------------------------

def _action(request: AuthorizationRequest) -> str:
    return request.action.split(":", 1)[-1].lower()


def _one(value: object) -> Values:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (as_text(int(value.timestamp())),)
    return (as_text(value),)


def _many(value: object) -> Values:
    if not isinstance(value, (list, tuple)) or not value:
        return None
    return tuple(as_text(v) for v in value)


def _from_params(table: Mapping[str, tuple[tuple[str, ...], object]], *, multi: bool = False) -> Getter:
    """A parameter key: on each listed action, the first parameter given, else the default."""
    def read(request: AuthorizationRequest, caller: Caller, facts: RequestFacts, suffix: str) -> Values:
        found = table.get(_action(request))
        if found is None:
            return None
        names, default = found
        for name in names:
            value = facts.params.get(name)
            if value is not None:
                return _many(value) if multi else _one(value)
        return _one(default)
    return read


def _key_attribute(create_params: tuple[str, ...], default: object,
                   attribute: Callable[[KeyFacts], object]) -> Getter:
    """A key-attribute key: CreateKey's parameter (or its default), else the key's own attribute."""
    def read(request: AuthorizationRequest, caller: Caller, facts: RequestFacts, suffix: str) -> Values:
        if _action(request) == "createkey":
            for name in create_params:
                value = facts.params.get(name)
                if value is not None:
                    return _one(value)
            return _one(default)
        return None if facts.key is None else _one(attribute(facts.key))
    return read


def _region_type(request: AuthorizationRequest, caller: Caller, facts: RequestFacts, suffix: str) -> Values:
    if _action(request) == "createkey":
        return ("PRIMARY",) if facts.params.get("MultiRegion") is True else None
    return None if facts.key is None else _one(facts.key.region_type)


def _context(request: AuthorizationRequest, caller: Caller, facts: RequestFacts, suffix: str) -> Values:
    # The context key in the condition key is matched without case; values exactly.
    return tuple(v for k, v in (request.encryption_context or {}).items() if k.lower() == suffix)


def _context_keys(request: AuthorizationRequest, caller: Caller, facts: RequestFacts, suffix: str) -> Values:
    return tuple(request.encryption_context or ())


def _request_alias(request: AuthorizationRequest, caller: Caller, facts: RequestFacts, suffix: str) -> Values:
    return _one(facts.request_alias) if _action(request) in _ALIAS_ACTIONS else None


def _resource_aliases(request: AuthorizationRequest, caller: Caller, facts: RequestFacts, suffix: str) -> Values:
    return None if facts.key is None else facts.key.aliases()


def _same_key(request: AuthorizationRequest, caller: Caller, facts: RequestFacts, suffix: str) -> Values:
    if _action(request) not in ("reencryptfrom", "reencryptto") or facts.same_key is None:
        return None
    return _one(facts.same_key())


def _expiration_model(request: AuthorizationRequest, caller: Caller, facts: RequestFacts, suffix: str) -> Values:
    # Without ExpirationModel, ImportKeyMaterial's model follows ValidTo (API_ImportKeyMaterial).
    if _action(request) != "importkeymaterial":
        return None
    model = facts.params.get("ExpirationModel")
    if model is None:
        expires = facts.params.get("ValidTo") is not None
        model = "KEY_MATERIAL_EXPIRES" if expires else "KEY_MATERIAL_DOES_NOT_EXPIRE"
    return _one(model)


def _grant_constraint_type(request: AuthorizationRequest, caller: Caller, facts: RequestFacts,
                           suffix: str) -> Values:
    constraints = facts.params.get("Constraints")
    if _action(request) != "creategrant" or not isinstance(constraints, Mapping):
        return None
    return tuple(sorted(name for name, value in constraints.items() if value))


def _grant_source_arn(request: AuthorizationRequest, caller: Caller, facts: RequestFacts, suffix: str) -> Values:
    constraints = facts.params.get("Constraints")
    if _action(request) != "creategrant" or not isinstance(constraints, Mapping):
        return None
    return _one(constraints.get("SourceArn"))


def _grant_for_service(request: AuthorizationRequest, caller: Caller, facts: RequestFacts, suffix: str) -> Values:
    if _action(request) not in ("creategrant", "listgrants", "revokegrant"):
        return None
    return _one(request.via_service is not None)


def _tags(pairs: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(pairs, (list, tuple)):
        return ()
    return tuple((str(t.get("TagKey")), str(t.get("TagValue"))) for t in pairs if isinstance(t, Mapping))


def _resource_tag(request: AuthorizationRequest, caller: Caller, facts: RequestFacts, suffix: str) -> Values:
    # The tag key in the condition key is matched without case (condition key names are not
    # case sensitive); values exactly.
    return None if facts.key is None else tuple(v for k, v in facts.key.tags() if k.lower() == suffix)


def _request_tag(request: AuthorizationRequest, caller: Caller, facts: RequestFacts, suffix: str) -> Values:
    if _action(request) not in ("createkey", "tagresource"):
        return None
    return tuple(v for k, v in _tags(facts.params.get("Tags")) if k.lower() == suffix)


def _tag_keys(request: AuthorizationRequest, caller: Caller, facts: RequestFacts, suffix: str) -> Values:
    action = _action(request)
    if action in ("createkey", "tagresource"):
        return tuple(k for k, _ in _tags(facts.params.get("Tags")))
    return _many(facts.params.get("TagKeys")) if action == "untagresource" else None


def _current_time(request: AuthorizationRequest, caller: Caller, facts: RequestFacts, suffix: str) -> Values:
    return (datetime.fromtimestamp(facts.now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),)


def _absent(request: AuthorizationRequest, caller: Caller, facts: RequestFacts, suffix: str) -> Values:
    return None


def _of_facts(read: Callable[[RequestFacts], object]) -> Getter:
    return lambda request, caller, facts, suffix: _one(read(facts))


def _of_request(read: Callable[[AuthorizationRequest], object]) -> Getter:
    return lambda request, caller, facts, suffix: _one(read(request))


def _of_caller(read: Callable[[Caller], object]) -> Getter:
    return lambda request, caller, facts, suffix: _one(read(caller))


def user_id(principal: str) -> str:
    """The IAM unique id of a principal, as STS GetCallerIdentity and ``aws:userid`` show it.

    Opaque and stable, derived from the ARN (this service keeps no IAM ids): the account id for
    an account root, ``AIDA...`` for a user, ``AROA...`` for a role, ``AROA...:session`` for an
    assumed-role session.
    """
    parts = principal.split(":", 5)
    if len(parts) != 6:
        return principal
    account, resource = parts[4], parts[5]
    if resource == "root":
        return account
    digest = hashlib.sha256(principal.encode()).hexdigest().upper()[:17]
    if resource.startswith("assumed-role/"):
        return f"AROA{digest}:{resource.rsplit('/', 1)[1]}"
    return ("AIDA" if resource.startswith("user/") else "AROA") + digest


def _principal_type(caller: Caller) -> str | None:
    if caller.is_root:
        return "Account"
    if not caller.account:
        return None  # a service principal
    resource = caller.forms[0].split(":", 5)[5]
    if resource.startswith(("assumed-role/", "role/")):
        return "AssumedRole"  # a role calls only through a session
    if resource.startswith("federated-user/"):
        return "FederatedUser"
    return "User" if resource.startswith("user/") else None


def _resource_name(caller: Caller, kind: str) -> str | None:
    if not caller.account or caller.is_root:
        return None
    resource = caller.forms[0].split(":", 5)[5]
    return resource.rsplit("/", 1)[1] if resource.startswith(kind + "/") else None


# --- the table ---------------------------------------------------------------------------------

# Operations whose kms:RequestAlias is present when the request named the key by an alias:
# cryptographic operations, DescribeKey and GetPublicKey (conditions-kms.html#conditions-kms-request-alias).
_ALIAS_ACTIONS = frozenset({
    "decrypt", "encrypt", "generatedatakey", "generatedatakeypair", "generatedatakeypairwithoutplaintext",
    "generatedatakeywithoutplaintext", "generatemac", "reencryptfrom", "reencryptto", "sign", "verify",
    "verifymac", "derivesharedsecret", "describekey", "getpublickey",
})
_SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
# kms:EncryptionAlgorithm: the algorithm parameter of Encrypt/Decrypt/ReEncrypt (default
# SYMMETRIC_DEFAULT); the data-key operations always encrypt under SYMMETRIC_DEFAULT.
_ENCRYPTION_ALGORITHM: dict[str, tuple[tuple[str, ...], object]] = {
    "encrypt": (("EncryptionAlgorithm",), _SYMMETRIC_DEFAULT),
    "decrypt": (("EncryptionAlgorithm",), _SYMMETRIC_DEFAULT),
    "reencryptfrom": (("SourceEncryptionAlgorithm",), _SYMMETRIC_DEFAULT),
    "reencryptto": (("DestinationEncryptionAlgorithm",), _SYMMETRIC_DEFAULT),
    **{op: ((), _SYMMETRIC_DEFAULT) for op in ("generatedatakey", "generatedatakeywithoutplaintext",
                                               "generatedatakeypair", "generatedatakeypairwithoutplaintext")},
}
# Parameter keys: condition key -> {action: (parameters, default)} (conditions-kms.html, each key's
# "API operations" and, where AWS documents one, the parameter's default).
_PARAMETER_KEYS: dict[str, dict[str, tuple[tuple[str, ...], object]]] = {
    "kms:bypasspolicylockoutsafetycheck": {"createkey": (("BypassPolicyLockoutSafetyCheck",), False),
                                           "putkeypolicy": (("BypassPolicyLockoutSafetyCheck",), False)},
    "kms:datakeypairspec": {"generatedatakeypair": (("KeyPairSpec",), None),
                            "generatedatakeypairwithoutplaintext": (("KeyPairSpec",), None)},
    "kms:encryptionalgorithm": _ENCRYPTION_ALGORITHM,
    "kms:grantoperations": {"creategrant": (("Operations",), None)},
    "kms:granteeprincipal": {"creategrant": (("GranteePrincipal",), None)},
    "kms:granteeserviceprincipal": {"creategrant": (("GranteeServicePrincipal",), None)},
    "kms:retiringserviceprincipal": {"creategrant": (("RetiringServicePrincipal",), None)},
    "kms:keyagreementalgorithm": {"derivesharedsecret": (("KeyAgreementAlgorithm",), None)},
    "kms:macalgorithm": {"generatemac": (("MacAlgorithm",), None), "verifymac": (("MacAlgorithm",), None)},
    "kms:messagetype": {"sign": (("MessageType",), "RAW"), "verify": (("MessageType",), "RAW")},
    "kms:primaryregion": {"updateprimaryregion": (("PrimaryRegion",), None)},
    "kms:replicaregion": {"replicatekey": (("ReplicaRegion",), None)},
    "kms:retiringprincipal": {"creategrant": (("RetiringPrincipal",), None)},
    "kms:rotationperiodindays": {"enablekeyrotation": (("RotationPeriodInDays",), 365)},
    "kms:schedulekeydeletionpendingwindowindays": {"schedulekeydeletion": (("PendingWindowInDays",), 30)},
    "kms:signingalgorithm": {"sign": (("SigningAlgorithm",), None), "verify": (("SigningAlgorithm",), None)},
    "kms:validto": {"importkeymaterial": (("ValidTo",), None)},
    "kms:wrappingalgorithm": {"getparametersforimport": (("WrappingAlgorithm",), None)},
    "kms:wrappingkeyspec": {"getparametersforimport": (("WrappingKeySpec",), None)},
}
_MULTIVALUED_PARAMETERS = frozenset({"kms:grantoperations"})
# Key-attribute keys: condition key -> (CreateKey parameters, their default, the key's attribute).
_KEY_ATTRIBUTES: dict[str, tuple[tuple[str, ...], object, Callable[[KeyFacts], object]]] = {
    "kms:keyspec": (("KeySpec", "CustomerMasterKeySpec"), _SYMMETRIC_DEFAULT, lambda k: k.spec),
    "kms:customermasterkeyspec": (("KeySpec", "CustomerMasterKeySpec"), _SYMMETRIC_DEFAULT, lambda k: k.spec),
    "kms:keyusage": (("KeyUsage",), "ENCRYPT_DECRYPT", lambda k: k.usage),
    "kms:customermasterkeyusage": (("KeyUsage",), "ENCRYPT_DECRYPT", lambda k: k.usage),
    "kms:keyorigin": (("Origin",), "AWS_KMS", lambda k: k.origin),
    "kms:multiregion": (("MultiRegion",), False, lambda k: k.multi_region),
}
# Keys a local service knows to be absent from every request it serves: its principals have no
# tags, no organization, no MFA and no federation; requests come from no VPC and from no service
# principal acting for a resource (IAM User Guide, each key's "Availability"); no Nitro enclave
# attestation document reaches it. Name -> multivalued.
_ALWAYS_ABSENT: dict[str, bool] = {
    "aws:principaltag/": False, "aws:principalorgid": False, "aws:principalorgpaths": True,
    "aws:resourceorgid": False, "aws:resourceorgpaths": True, "aws:multifactorauthpresent": False,
    "aws:multifactorauthage": False, "aws:federatedprovider": False, "aws:sourceidentity": False,
    "aws:sourcevpc": False, "aws:sourcevpce": False, "aws:sourcevpcarn": False, "aws:vpcsourceip": False,
    "aws:sourcearn": False, "aws:sourceaccount": False, "aws:sourceorgid": False, "aws:sourceorgpaths": True,
    "aws:calledvia": True, "aws:calledviafirst": False, "aws:calledvialast": False,
    "aws:principalservicenameslist": True, "aws:ec2instancesourcevpc": False,
    "aws:ec2instancesourceprivateipv4": False, "aws:referer": False, "aws:assumedroot": False,
    "kms:recipientattestation:": False,
}


def _build() -> dict[str, ConditionKey]:
    table = [ConditionKey(name, name in _MULTIVALUED_PARAMETERS, True,
                          _from_params(actions, multi=name in _MULTIVALUED_PARAMETERS))
             for name, actions in _PARAMETER_KEYS.items()]
    table += [ConditionKey(name, False, True, _key_attribute(params, default, attribute))
              for name, (params, default, attribute) in _KEY_ATTRIBUTES.items()]
    table += [ConditionKey(name, multi, False, _absent) for name, multi in _ALWAYS_ABSENT.items()]
    table += [
        # What the service knows about the request and the key.
        ConditionKey("kms:multiregionkeytype", False, True, _region_type),
        ConditionKey("kms:requestalias", False, True, _request_alias),
        ConditionKey("kms:resourcealiases", True, True, _resource_aliases),
        ConditionKey("kms:reencryptonsamekey", False, True, _same_key),
        ConditionKey("kms:expirationmodel", False, True, _expiration_model),
        ConditionKey("kms:grantconstrainttype", False, True, _grant_constraint_type),
        ConditionKey("kms:grantconstraintsourcearn", False, True, _grant_source_arn),
        ConditionKey("kms:grantisforawsresource", False, True, _grant_for_service),
        ConditionKey("aws:resourcetag/", False, True, _resource_tag),
        ConditionKey("aws:requesttag/", False, True, _request_tag),
        ConditionKey("aws:tagkeys", True, True, _tag_keys),
        ConditionKey("aws:sourceip", False, True, _of_facts(lambda f: f.source_ip)),
        ConditionKey("aws:securetransport", False, True, _of_facts(lambda f: f.secure_transport)),
        ConditionKey("aws:useragent", False, True, _of_facts(lambda f: f.user_agent)),
        ConditionKey("aws:requestedregion", False, True, _of_facts(lambda f: f.region or None)),
        ConditionKey("aws:currenttime", False, True, _current_time),
        ConditionKey("aws:epochtime", False, True, _of_facts(lambda f: int(f.now))),
        # What every request carries: its encryption context, via-service and key account.
        ConditionKey("kms:encryptioncontext:", False, False, _context),
        ConditionKey("kms:encryptioncontextkeys", True, False, _context_keys),
        ConditionKey("kms:viaservice", False, False, _of_request(lambda r: r.via_service)),
        ConditionKey("aws:viaawsservice", False, False, _of_request(lambda r: r.via_service is not None)),
        ConditionKey("aws:resourceaccount", False, False, _of_request(lambda r: r.key_account or None)),
        # Who calls (a service principal has no ARN or account: aws:PrincipalServiceName names it).
        ConditionKey("kms:calleraccount", False, False, _of_caller(lambda c: c.account or None)),
        ConditionKey("aws:principalaccount", False, False, _of_caller(lambda c: c.account or None)),
        ConditionKey("aws:principalarn", False, False, _of_caller(lambda c: c.arn if c.account else None)),
        ConditionKey("aws:principaltype", False, False, _of_caller(_principal_type)),
        ConditionKey("aws:userid", False, False, _of_caller(lambda c: user_id(c.forms[0]) if c.account else None)),
        ConditionKey("aws:username", False, False, _of_caller(lambda c: _resource_name(c, "user"))),
        ConditionKey("aws:rolesessionname", False, False, _of_caller(lambda c: _resource_name(c, "assumed-role"))),
        ConditionKey("aws:principalisawsservice", False, False, _of_caller(lambda c: not c.account)),
        ConditionKey("aws:principalservicename", False, False, _of_caller(lambda c: None if c.account else c.forms[0])),
    ]
    return {key.name: key for key in table}


_TABLE = _build()
_FAMILIES = tuple(name for name in _TABLE if name.endswith((":", "/")))


def lookup(key: str) -> tuple[ConditionKey, str] | None:
    """The spec of a (lower-cased) condition key and its suffix for a key family, or None."""
    spec = _TABLE.get(key)
    if spec is not None and not key.endswith((":", "/")):
        return spec, ""
    for family in _FAMILIES:
        if key.startswith(family) and len(key) > len(family):
            return _TABLE[family], key[len(family):]
    return None
