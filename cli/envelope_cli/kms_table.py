"""The `envelope kms` operations: aws-kms sub-command name -> LocalKMS method, parameters and types.

Flags are the kebab-case of boto3's PascalCase parameter names (KeyId -> --key-id), as in `aws kms`.
A type ending in ``!`` is required. Types: str, int, bool, blob, map, list, tags, struct, time.

What the rest of the CLI needs from this module, so that a table generated from the service model
can replace it: ``OPERATIONS`` (sub-command -> `Operation`: client method, summary, parameter kinds),
``PAGINATORS`` (sub-command -> a botocore paginators-1.json entry), ``api_name`` (the API's name
of an operation) and ``operation_model`` (botocore's OperationModel interface: input and output
shapes, for --generate-cli-skeleton). Global options, output, paging, --cli-input-json and the
choice of client (embedded or boto3) are built from these alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

__all__ = ["OPERATIONS", "PAGINATED", "PAGINATORS", "Operation", "api_name", "operation_model"]


@dataclass(frozen=True, slots=True)
class Operation:
    method: str  # LocalKMS method (boto3 name)
    summary: str
    params: dict[str, str]


_GT = {"GrantTokens": "list"}
_DRY = {"DryRun": "bool"}
_PAGE = {"Limit": "int", "Marker": "str"}


def _op(method: str, summary: str, **params: str) -> Operation:
    return Operation(method, summary, params)


OPERATIONS: dict[str, Operation] = {
    # keys
    "create-key": _op("create_key", "Create a KMS key (symmetric by default).", Policy="str", Description="str",
                      KeyUsage="str", KeySpec="str", CustomerMasterKeySpec="str", Origin="str",
                      BypassPolicyLockoutSafetyCheck="bool", Tags="tags", MultiRegion="bool"),
    "describe-key": _op("describe_key", "Show a key's metadata.", KeyId="str!", **_GT),
    "list-keys": _op("list_keys", "List the keys of the account and region.", **_PAGE),
    "update-key-description": _op("update_key_description", "Change a key's description.", KeyId="str!",
                                  Description="str!"),
    "enable-key": _op("enable_key", "Enable a key.", KeyId="str!"),
    "disable-key": _op("disable_key", "Disable a key (it refuses cryptographic use).", KeyId="str!"),
    "schedule-key-deletion": _op("schedule_key_deletion", "Schedule a key's deletion after 7-30 days.",
                                 KeyId="str!", PendingWindowInDays="int"),
    "cancel-key-deletion": _op("cancel_key_deletion", "Cancel a scheduled deletion (the key stays disabled).",
                               KeyId="str!"),
    "tag-resource": _op("tag_resource", "Add or change tags on a key.", KeyId="str!", Tags="tags!"),
    "untag-resource": _op("untag_resource", "Remove tags from a key.", KeyId="str!", TagKeys="list!"),
    "list-resource-tags": _op("list_resource_tags", "List a key's tags.", KeyId="str!", **_PAGE),
    # aliases
    "create-alias": _op("create_alias", "Create an alias (alias/NAME) for a key.", AliasName="str!",
                        TargetKeyId="str!"),
    "update-alias": _op("update_alias", "Point an alias at another key.", AliasName="str!", TargetKeyId="str!"),
    "delete-alias": _op("delete_alias", "Delete an alias.", AliasName="str!"),
    "list-aliases": _op("list_aliases", "List aliases (of one key with --key-id).", KeyId="str", **_PAGE),
    # policies
    "put-key-policy": _op("put_key_policy", "Replace a key policy (JSON; file://policy.json).", KeyId="str!",
                          PolicyName="str", Policy="str!", BypassPolicyLockoutSafetyCheck="bool"),
    "get-key-policy": _op("get_key_policy", "Print a key policy.", KeyId="str!", PolicyName="str"),
    "list-key-policies": _op("list_key_policies", "List a key's policy names (always 'default').",
                             KeyId="str!", **_PAGE),
    # grants
    "create-grant": _op("create_grant", "Grant a principal operations on a key.", KeyId="str!",
                        GranteePrincipal="str!", RetiringPrincipal="str", Operations="list!", Constraints="struct",
                        Name="str", **_GT, **_DRY),
    "list-grants": _op("list_grants", "List a key's grants.", KeyId="str!", GrantId="str",
                       GranteePrincipal="str", **_PAGE),
    "list-retirable-grants": _op("list_retirable_grants", "List grants a principal may retire.",
                                 RetiringPrincipal="str!", **_PAGE),
    "retire-grant": _op("retire_grant", "Retire a grant.", GrantToken="str", KeyId="str", GrantId="str", **_DRY),
    "revoke-grant": _op("revoke_grant", "Revoke a grant.", KeyId="str!", GrantId="str!", **_DRY),
    # rotation
    "enable-key-rotation": _op("enable_key_rotation", "Rotate automatically (period 90-2560 days, default 365).",
                               KeyId="str!", RotationPeriodInDays="int"),
    "disable-key-rotation": _op("disable_key_rotation", "Stop automatic rotation.", KeyId="str!"),
    "get-key-rotation-status": _op("get_key_rotation_status", "Show rotation status.", KeyId="str!"),
    "rotate-key-on-demand": _op("rotate_key_on_demand", "Rotate a key now.", KeyId="str!"),
    "list-key-rotations": _op("list_key_rotations", "List a key's completed rotations.", KeyId="str!", **_PAGE),
    # symmetric and asymmetric cryptography
    "encrypt": _op("encrypt", "Encrypt up to 4096 bytes with a key.", KeyId="str!", Plaintext="blob!",
                   EncryptionContext="map", EncryptionAlgorithm="str", **_GT, **_DRY),
    "decrypt": _op("decrypt", "Decrypt a ciphertext blob (no --key-id needed for symmetric keys).",
                   CiphertextBlob="blob!", EncryptionContext="map", KeyId="str", EncryptionAlgorithm="str",
                   **_GT, **_DRY),
    "re-encrypt": _op("re_encrypt", "Decrypt and re-encrypt under another key without exposing plaintext.",
                      CiphertextBlob="blob!", SourceEncryptionContext="map", SourceKeyId="str",
                      DestinationKeyId="str!", DestinationEncryptionContext="map", SourceEncryptionAlgorithm="str",
                      DestinationEncryptionAlgorithm="str", **_GT, **_DRY),
    "generate-data-key": _op("generate_data_key", "Make a data key: plaintext and encrypted copy.", KeyId="str!",
                             EncryptionContext="map", NumberOfBytes="int", KeySpec="str", **_GT, **_DRY),
    "generate-data-key-without-plaintext": _op("generate_data_key_without_plaintext",
                                               "Make a data key; return only its encrypted copy.", KeyId="str!",
                                               EncryptionContext="map", KeySpec="str", NumberOfBytes="int",
                                               **_GT, **_DRY),
    "generate-data-key-pair": _op("generate_data_key_pair", "Make an asymmetric data key pair.", KeyId="str!",
                                  KeyPairSpec="str!", EncryptionContext="map", **_GT, **_DRY),
    "generate-data-key-pair-without-plaintext": _op("generate_data_key_pair_without_plaintext",
                                                    "Make a data key pair; no plaintext private key.",
                                                    KeyId="str!", KeyPairSpec="str!", EncryptionContext="map",
                                                    **_GT, **_DRY),
    "generate-random": _op("generate_random", "Random bytes (1-1024).", NumberOfBytes="int"),
    "get-public-key": _op("get_public_key", "Download an asymmetric key's public key (DER, base64).",
                          KeyId="str!", **_GT),
    "sign": _op("sign", "Sign a message or digest with an asymmetric key.", KeyId="str!", Message="blob!",
                MessageType="str", SigningAlgorithm="str!", **_GT, **_DRY),
    "verify": _op("verify", "Verify a signature.", KeyId="str!", Message="blob!", MessageType="str",
                  Signature="blob!", SigningAlgorithm="str!", **_GT, **_DRY),
    "derive-shared-secret": _op("derive_shared_secret", "Derive an ECDH shared secret with a KEY_AGREEMENT key.",
                                KeyId="str!", KeyAgreementAlgorithm="str!", PublicKey="blob!", **_GT, **_DRY),
    "generate-mac": _op("generate_mac", "Compute an HMAC with an HMAC key.", Message="blob!", KeyId="str!",
                        MacAlgorithm="str!", **_GT, **_DRY),
    "verify-mac": _op("verify_mac", "Verify an HMAC.", Message="blob!", KeyId="str!", MacAlgorithm="str!",
                      Mac="blob!", **_GT, **_DRY),
    # multi-Region keys
    "replicate-key": _op("replicate_key", "Replicate a multi-Region key into another region.", KeyId="str!",
                         ReplicaRegion="str!", Policy="str", BypassPolicyLockoutSafetyCheck="bool",
                         Description="str", Tags="tags"),
    "update-primary-region": _op("update_primary_region", "Make a replica the primary key.", KeyId="str!",
                                 PrimaryRegion="str!"),
    # imported key material
    "get-parameters-for-import": _op("get_parameters_for_import", "Get a wrapping public key and import token.",
                                     KeyId="str!", WrappingAlgorithm="str!", WrappingKeySpec="str!"),
    "import-key-material": _op("import_key_material", "Import wrapped key material into an EXTERNAL key.",
                               KeyId="str!", ImportToken="blob!", EncryptedKeyMaterial="blob!", ValidTo="time",
                               ExpirationModel="str"),
    "delete-imported-key-material": _op("delete_imported_key_material", "Delete imported material.",
                                        KeyId="str!"),
}

# list operations the CLI pages through by itself (as the aws CLI does), with their list field
PAGINATED = {"list-keys": "Keys", "list-aliases": "Aliases", "list-grants": "Grants",
             "list-retirable-grants": "Grants", "list-key-policies": "PolicyNames",
             "list-resource-tags": "Tags", "list-key-rotations": "Rotations"}

# The paginators of botocore's KMS model (paginators-1.json): every KMS list operation pages with
# Marker / NextMarker / Truncated / Limit. tests/cli compares them with the installed botocore.
PAGINATORS: dict[str, dict[str, str]] = {
    name: {"input_token": "Marker", "output_token": "NextMarker", "more_results": "Truncated",
           "limit_key": "Limit", "result_key": field}
    for name, field in PAGINATED.items()
}


def api_name(operation: str) -> str:
    """The API's operation name: create-key -> CreateKey (the aws CLI's table title and error text)."""
    return "".join(part.capitalize() for part in OPERATIONS[operation].method.split("_"))


@cache
def operation_model(operation: str) -> Any:
    """The service model's description of ``operation`` (botocore's ``OperationModel``: input and
    output shapes), for --generate-cli-skeleton and --cli-input-json; from the KMS model botocore
    ships as data."""
    import botocore.session  # type: ignore[import-untyped]

    return botocore.session.get_session().get_service_model("kms").operation_model(api_name(operation))
