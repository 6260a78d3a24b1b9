"""The condition keys a policy may name: their types, when each is present, and its request values.

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

__all__ = ["ConditionKey", "Values", "as_text", "lookup", "user_id"]

Values = tuple[str, ...] | None  # a key's values in one request; None: the key is absent


def as_text(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


@dataclass(frozen=True, slots=True)
class ConditionKey:
    """One condition key (or key family): its IAM type, whether it is multivalued, its values."""

    name: str
    type: str                            # String, Numeric, Date, Bool, IPAddress, ARN
    multi: bool
    values: Callable[[AuthorizationRequest, Caller, str], Values]  # (request, caller, suffix)


# --- helpers ---------------------------------------------------------------------------------

def _action(request: AuthorizationRequest) -> str:
    return request.action.split(":", 1)[-1].lower()


def _param(request: AuthorizationRequest, name: str) -> object:
    facts = request.facts
    return None if facts is None else facts.params.get(name)


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


def _legacy(request: AuthorizationRequest, key: str) -> Values:
    """A value a caller put in ``extra_conditions`` (unit tests and requests without facts)."""
    for name, value in request.extra_conditions.items():
        if name.lower() == key:
            if isinstance(value, (list, tuple, set, frozenset)):
                return tuple(as_text(v) for v in value) or None
            return _one(value)
    return None


def _from_params(table: Mapping[str, tuple[tuple[str, ...], object]], key: str, *,
                 multi: bool = False) -> Callable[[AuthorizationRequest, Caller, str], Values]:
    """A parameter key: on each listed action, the first parameter given, else the default."""
    def values(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
        if request.facts is None:
            return _legacy(request, key)
        found = table.get(_action(request))
        if found is None:
            return None
        names, default = found
        for name in names:
            value = _param(request, name)
            if value is not None:
                return _many(value) if multi else _one(value)
        return _one(default)
    return values


def _key_attribute(create_params: tuple[str, ...], default: object, attribute: Callable[[KeyFacts], Values],
                   key: str) -> Callable[[AuthorizationRequest, Caller, str], Values]:
    """A key-attribute key: CreateKey's parameter (or its default), else the key's own attribute."""
    def values(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
        facts = request.facts
        if facts is None:
            return _legacy(request, key)
        if _action(request) == "createkey":
            for name in create_params:
                value = facts.params.get(name)
                if value is not None:
                    return _one(value)
            return _one(default)
        return None if facts.key is None else attribute(facts.key)
    return values


def _region_type(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
    facts = request.facts
    if facts is None:
        return _legacy(request, "kms:multiregionkeytype")
    if _action(request) == "createkey":
        return ("PRIMARY",) if facts.params.get("MultiRegion") is True else None
    return None if facts.key is None or facts.key.region_type is None else (facts.key.region_type,)


def _context(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
    # The context key in the condition key is matched without case; values exactly.
    found = tuple(v for k, v in (request.encryption_context or {}).items() if k.lower() == suffix)
    return found or None


def _context_keys(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
    return tuple(request.encryption_context or ()) or None


def _request_alias(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
    facts = request.facts
    if facts is None:
        return _legacy(request, "kms:requestalias")
    if facts.request_alias is None or _action(request) not in _ALIAS_ACTIONS:
        return None
    return (facts.request_alias,)


def _resource_aliases(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
    facts = request.facts
    if facts is None:
        return _legacy(request, "kms:resourcealiases")
    return None if facts.key is None else (facts.key.aliases() or None)


def _same_key(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
    facts = request.facts
    if facts is None:
        return _legacy(request, "kms:reencryptonsamekey")
    if _action(request) not in ("reencryptfrom", "reencryptto") or facts.same_key is None:
        return None
    return (as_text(facts.same_key()),)


def _expiration_model(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
    # Without ExpirationModel, ImportKeyMaterial's model follows ValidTo (API_ImportKeyMaterial).
    if request.facts is None:
        return _legacy(request, "kms:expirationmodel")
    if _action(request) != "importkeymaterial":
        return None
    model = _param(request, "ExpirationModel")
    if model is None:
        expires = _param(request, "ValidTo") is not None
        model = "KEY_MATERIAL_EXPIRES" if expires else "KEY_MATERIAL_DOES_NOT_EXPIRE"
    return _one(model)


def _grant_constraint_type(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
    if request.facts is None:
        return _legacy(request, "kms:grantconstrainttype")
    constraints = _param(request, "Constraints")
    if _action(request) != "creategrant" or not isinstance(constraints, Mapping):
        return None
    return tuple(sorted(name for name, value in constraints.items() if value)) or None


def _grant_for_service(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
    if request.facts is None:
        return _legacy(request, "kms:grantisforawsresource")
    if _action(request) not in ("creategrant", "listgrants", "revokegrant"):
        return None
    return (as_text(request.via_service is not None),)


def _tags(pairs: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(pairs, (list, tuple)):
        return ()
    return tuple((str(t.get("TagKey")), str(t.get("TagValue"))) for t in pairs if isinstance(t, Mapping))


def _resource_tag(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
    facts = request.facts
    if facts is None:
        return _legacy(request, "aws:resourcetag/" + suffix)
    if facts.key is None:
        return None
    return tuple(v for k, v in facts.key.tags() if k.lower() == suffix) or None


def _request_tag(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
    if request.facts is None:
        return _legacy(request, "aws:requesttag/" + suffix)
    if _action(request) not in ("createkey", "tagresource"):
        return None
    return tuple(v for k, v in _tags(_param(request, "Tags")) if k.lower() == suffix) or None


def _tag_keys(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
    if request.facts is None:
        return _legacy(request, "aws:tagkeys")
    action = _action(request)
    if action in ("createkey", "tagresource"):
        return tuple(k for k, _ in _tags(_param(request, "Tags"))) or None
    if action == "untagresource":
        return _many(_param(request, "TagKeys"))
    return None


def _fact(read: Callable[[RequestFacts], object], key: str) -> Callable[[AuthorizationRequest, Caller, str], Values]:
    def values(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
        facts = request.facts
        return _legacy(request, key) if facts is None else _one(read(facts))
    return values


def _current_time(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
    if request.facts is None:
        return _legacy(request, "aws:currenttime")
    moment = datetime.fromtimestamp(request.facts.now, UTC)
    return (moment.strftime("%Y-%m-%dT%H:%M:%SZ"),)


def _absent(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
    return None


def _caller_value(read: Callable[[Caller], str | None]) -> Callable[[AuthorizationRequest, Caller, str], Values]:
    def values(request: AuthorizationRequest, caller: Caller, suffix: str) -> Values:
        return _one(read(caller))
    return values


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
# Parameter keys: condition key -> (type, multivalued, {action: (parameters, default)}).
_PARAMETER_KEYS: dict[str, tuple[str, bool, dict[str, tuple[tuple[str, ...], object]]]] = {
    "kms:bypasspolicylockoutsafetycheck": ("Bool", False, {
        "createkey": (("BypassPolicyLockoutSafetyCheck",), False),
        "putkeypolicy": (("BypassPolicyLockoutSafetyCheck",), False)}),
    "kms:datakeypairspec": ("String", False, {
        "generatedatakeypair": (("KeyPairSpec",), None),
        "generatedatakeypairwithoutplaintext": (("KeyPairSpec",), None)}),
    "kms:encryptionalgorithm": ("String", False, _ENCRYPTION_ALGORITHM),
    "kms:grantoperations": ("String", True, {"creategrant": (("Operations",), None)}),
    "kms:granteeprincipal": ("String", False, {"creategrant": (("GranteePrincipal",), None)}),
    "kms:keyagreementalgorithm": ("String", False, {"derivesharedsecret": (("KeyAgreementAlgorithm",), None)}),
    "kms:macalgorithm": ("String", False, {"generatemac": (("MacAlgorithm",), None),
                                           "verifymac": (("MacAlgorithm",), None)}),
    "kms:messagetype": ("String", False, {"sign": (("MessageType",), "RAW"), "verify": (("MessageType",), "RAW")}),
    "kms:primaryregion": ("String", False, {"updateprimaryregion": (("PrimaryRegion",), None)}),
    "kms:replicaregion": ("String", False, {"replicatekey": (("ReplicaRegion",), None)}),
    "kms:retiringprincipal": ("String", False, {"creategrant": (("RetiringPrincipal",), None)}),
    "kms:rotationperiodindays": ("Numeric", False, {"enablekeyrotation": (("RotationPeriodInDays",), 365)}),
    "kms:schedulekeydeletionpendingwindowindays": ("Numeric", False, {
        "schedulekeydeletion": (("PendingWindowInDays",), 30)}),
    "kms:signingalgorithm": ("String", False, {"sign": (("SigningAlgorithm",), None),
                                               "verify": (("SigningAlgorithm",), None)}),
    "kms:validto": ("Date", False, {"importkeymaterial": (("ValidTo",), None)}),
    "kms:wrappingalgorithm": ("String", False, {"getparametersforimport": (("WrappingAlgorithm",), None)}),
    "kms:wrappingkeyspec": ("String", False, {"getparametersforimport": (("WrappingKeySpec",), None)}),
}


def _spec(key: KeyFacts) -> Values:
    return (key.spec,)


def _usage(key: KeyFacts) -> Values:
    return (key.usage,)


def _build() -> dict[str, ConditionKey]:
    table: list[ConditionKey] = [ConditionKey(name, kind, multi, _from_params(actions, name, multi=multi))
                            for name, (kind, multi, actions) in _PARAMETER_KEYS.items()]

    def key_attr(name: str, kind: str, params: tuple[str, ...], default: object,
                 attribute: Callable[[KeyFacts], Values]) -> None:
        table.append(ConditionKey(name, kind, False, _key_attribute(params, default, attribute, name)))

    key_attr("kms:keyspec", "String", ("KeySpec", "CustomerMasterKeySpec"), _SYMMETRIC_DEFAULT, _spec)
    key_attr("kms:customermasterkeyspec", "String", ("KeySpec", "CustomerMasterKeySpec"), _SYMMETRIC_DEFAULT,
             _spec)
    key_attr("kms:keyusage", "String", ("KeyUsage",), "ENCRYPT_DECRYPT", _usage)
    key_attr("kms:customermasterkeyusage", "String", ("KeyUsage",), "ENCRYPT_DECRYPT", _usage)
    key_attr("kms:keyorigin", "String", ("Origin",), "AWS_KMS", lambda k: (k.origin,))
    key_attr("kms:multiregion", "Bool", ("MultiRegion",), False, lambda k: (as_text(k.multi_region),))
    table += [
        ConditionKey("kms:multiregionkeytype", "String", False, _region_type),
        ConditionKey("kms:encryptioncontext:", "String", False, _context),
        ConditionKey("kms:encryptioncontextkeys", "String", True, _context_keys),
        ConditionKey("kms:calleraccount", "String", False, _caller_value(lambda c: c.account or None)),
        ConditionKey("kms:viaservice", "String", False, lambda r, c, s: _one(r.via_service)),
        ConditionKey("kms:requestalias", "String", False, _request_alias),
        ConditionKey("kms:resourcealiases", "String", True, _resource_aliases),
        ConditionKey("kms:reencryptonsamekey", "Bool", False, _same_key),
        ConditionKey("kms:expirationmodel", "String", False, _expiration_model),
        ConditionKey("kms:grantconstrainttype", "String", False, _grant_constraint_type),
        ConditionKey("kms:grantisforawsresource", "Bool", False, _grant_for_service),
        # Nitro Enclaves attestation documents never reach a local service: always absent.
        ConditionKey("kms:recipientattestation:", "String", False, _absent),
        # Global keys (IAM User Guide, AWS global condition context keys).
        # A service principal has no ARN: aws:PrincipalServiceName names it instead.
        ConditionKey("aws:principalarn", "ARN", False, _caller_value(lambda c: c.arn if c.account else None)),
        ConditionKey("aws:principalaccount", "String", False, _caller_value(lambda c: c.account or None)),
        ConditionKey("aws:principaltype", "String", False, _caller_value(_principal_type)),
        ConditionKey("aws:userid", "String", False,
                _caller_value(lambda c: user_id(c.forms[0]) if c.account else None)),
        ConditionKey("aws:username", "String", False, _caller_value(lambda c: _resource_name(c, "user"))),
        ConditionKey("aws:rolesessionname", "String", False,
                _caller_value(lambda c: _resource_name(c, "assumed-role"))),
        ConditionKey("aws:principalisawsservice", "Bool", False, _caller_value(lambda c: as_text(not c.account))),
        ConditionKey("aws:principalservicename", "String", False,
                _caller_value(lambda c: None if c.account else c.forms[0])),
        ConditionKey("aws:viaawsservice", "Bool", False, lambda r, c, s: (as_text(r.via_service is not None),)),
        ConditionKey("aws:resourceaccount", "String", False, lambda r, c, s: _one(r.key_account or None)),
        ConditionKey("aws:resourcetag/", "String", False, _resource_tag),
        ConditionKey("aws:requesttag/", "String", False, _request_tag),
        ConditionKey("aws:tagkeys", "String", True, _tag_keys),
        ConditionKey("aws:sourceip", "IPAddress", False, _fact(lambda f: f.source_ip, "aws:sourceip")),
        ConditionKey("aws:securetransport", "Bool", False,
                _fact(lambda f: f.secure_transport, "aws:securetransport")),
        ConditionKey("aws:useragent", "String", False, _fact(lambda f: f.user_agent, "aws:useragent")),
        ConditionKey("aws:requestedregion", "String", False, _fact(lambda f: f.region or None, "aws:requestedregion")),
        ConditionKey("aws:currenttime", "Date", False, _current_time),
        ConditionKey("aws:epochtime", "Date", False, _fact(lambda f: int(f.now), "aws:epochtime")),
    ]
    # Keys a local service knows to be absent from every request it serves: its principals have
    # no tags, no organization, no MFA and no federation; requests come from no VPC and from no
    # service principal acting for a resource (IAM User Guide, each key's "Availability").
    for name in ("aws:principaltag/", "aws:principalorgid", "aws:principalorgpaths", "aws:resourceorgid",
                 "aws:resourceorgpaths", "aws:multifactorauthpresent", "aws:multifactorauthage",
                 "aws:federatedprovider", "aws:sourceidentity", "aws:sourcevpc", "aws:sourcevpce",
                 "aws:sourcevpcarn", "aws:vpcsourceip", "aws:sourcearn", "aws:sourceaccount",
                 "aws:sourceorgid", "aws:sourceorgpaths", "aws:calledvia", "aws:calledviafirst",
                 "aws:calledvialast", "aws:principalservicenameslist", "aws:ec2instancesourcevpc",
                 "aws:ec2instancesourceprivateipv4", "aws:referer", "aws:assumedroot"):
        multi = name in ("aws:principalorgpaths", "aws:resourceorgpaths", "aws:calledvia",
                         "aws:principalservicenameslist", "aws:sourceorgpaths")
        kind = ("Numeric" if name == "aws:multifactorauthage" else
                "Bool" if name in ("aws:multifactorauthpresent",) else "String")
        table.append(ConditionKey(name, kind, multi, _absent))
    return {spec.name: spec for spec in table}


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
