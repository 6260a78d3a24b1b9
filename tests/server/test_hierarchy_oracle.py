"""The hierarchical keyring and branch key store against the ESDK's (the MPL), in both directions.

The MPL's KeyStore and ours share one DynamoDB table (moto's server on loopback) and one KMS
(`envelope kms serve`; the MPL through boto3, we through LocalKMS on the same data directory or
boto3). Branch keys created or versioned by either side, and messages made by either keyring,
must work on the other. ESDK spec: framework/aws-kms/aws-kms-hierarchical-keyring.md,
framework/branch-key-store.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

import envelope
from envelope.kms import LocalKMS

if TYPE_CHECKING:
    from .conftest import Endpoint

pytest.importorskip("aws_cryptographic_material_providers")
aws_encryption_sdk = pytest.importorskip("aws_encryption_sdk")
moto_server = pytest.importorskip("moto.server")

LOGICAL = "oracle-keystore"
CONTEXT = {"tenant": "t-1", "purpose": "hierarchy oracle"}


@pytest.fixture(scope="module")
def ddb_url() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _ddb(url: str) -> Any:
    import boto3  # type: ignore[import-untyped]

    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def setup(endpoint: Endpoint, ddb_url: str) -> dict[str, Any]:
    """One KMS key, one table, the MPL's KeyStore and ours over it (the table made by the MPL)."""
    from aws_cryptographic_material_providers.keystore import KeyStore  # type: ignore[import-untyped]
    from aws_cryptographic_material_providers.keystore.config import KeyStoreConfig  # type: ignore[import-untyped]
    from aws_cryptographic_material_providers.keystore.models import CreateKeyStoreInput, KMSConfigurationKmsKeyArn  # type: ignore[import-untyped]

    kms = endpoint.client()
    arn = kms.create_key(Description="branch key store")["KeyMetadata"]["Arn"]
    table = f"keystore-{uuid.uuid4().hex[:8]}"
    mpl_store = KeyStore(KeyStoreConfig(ddb_client=_ddb(ddb_url), ddb_table_name=table, logical_key_store_name=LOGICAL,
                                        kms_client=kms, kms_configuration=KMSConfigurationKmsKeyArn(arn)))
    mpl_store.create_key_store(CreateKeyStoreInput())
    ours = envelope.BranchKeyStore.dynamodb(table, arn, kms_client=LocalKMS(endpoint.data_dir),
                                            ddb_client=_ddb(ddb_url), logical_key_store_name=LOGICAL)
    return {"arn": arn, "table": table, "mpl_store": mpl_store, "ours": ours}


def _mpl_keyring(mpl_store: Any, branch_key_id: str) -> Any:
    from aws_cryptographic_material_providers.mpl import AwsCryptographicMaterialProviders  # type: ignore[import-untyped]
    from aws_cryptographic_material_providers.mpl.config import MaterialProvidersConfig  # type: ignore[import-untyped]
    from aws_cryptographic_material_providers.mpl.models import CreateAwsKmsHierarchicalKeyringInput  # type: ignore[import-untyped]

    mpl = AwsCryptographicMaterialProviders(MaterialProvidersConfig())
    return mpl.create_aws_kms_hierarchical_keyring(CreateAwsKmsHierarchicalKeyringInput(
        key_store=mpl_store, branch_key_id=branch_key_id, ttl_seconds=600))


def _esdk() -> Any:
    return aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=aws_encryption_sdk.CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)


def _mpl_create_key(mpl_store: Any, **kwargs: Any) -> str:
    from aws_cryptographic_material_providers.keystore.models import CreateKeyInput

    return str(mpl_store.create_key(CreateKeyInput(**kwargs)).branch_key_identifier)


def _mpl_active(mpl_store: Any, branch_key_id: str) -> Any:
    from aws_cryptographic_material_providers.keystore.models import GetActiveBranchKeyInput

    return mpl_store.get_active_branch_key(GetActiveBranchKeyInput(branch_key_identifier=branch_key_id)) \
        .branch_key_materials


def _both_ways(setup: dict[str, Any], branch_key_id: str, size: int = 3000) -> None:
    plaintext = bytes(i % 253 for i in range(size))
    ours = envelope.HierarchicalKeyring(setup["ours"], branch_key_id=branch_key_id, ttl_seconds=600)
    theirs = _mpl_keyring(setup["mpl_store"], branch_key_id)
    message, _ = _esdk().encrypt(source=plaintext, keyring=theirs, encryption_context=CONTEXT)
    edk = envelope.read_header(message).encrypted_data_keys[0]
    assert (edk.provider_id, bytes(edk.provider_info), len(edk.ciphertext)) == \
        ("aws-kms-hierarchy", branch_key_id.encode(), 92)
    decrypted, header = envelope.decrypt(message, keyring=ours)
    assert decrypted == plaintext and dict(header.encryption_context).items() >= CONTEXT.items()
    message = envelope.encrypt(plaintext, keyring=ours, encryption_context=CONTEXT)
    decrypted, _ = _esdk().decrypt(source=message, keyring=theirs)
    assert decrypted == plaintext


def test_mpl_branch_key_is_ours(setup: dict[str, Any]) -> None:
    branch_key_id = _mpl_create_key(setup["mpl_store"])
    mine = setup["ours"].get_active_branch_key(branch_key_id)
    theirs = _mpl_active(setup["mpl_store"], branch_key_id)
    assert (mine.branch_key, mine.version) == (bytes(theirs.branch_key), theirs.branch_key_version)
    _both_ways(setup, branch_key_id)


def test_our_branch_key_is_the_mpls(setup: dict[str, Any]) -> None:
    branch_key_id = setup["ours"].create_key()
    theirs = _mpl_active(setup["mpl_store"], branch_key_id)
    mine = setup["ours"].get_active_branch_key(branch_key_id)
    assert (bytes(theirs.branch_key), theirs.branch_key_version) == (mine.branch_key, mine.version)
    _both_ways(setup, branch_key_id, size=0)


def test_versions_made_by_either_side(setup: dict[str, Any]) -> None:
    from aws_cryptographic_material_providers.keystore.models import VersionKeyInput

    branch_key_id = setup["ours"].create_key("tenant-named", {"department": "admin"})
    old = envelope.encrypt(b"before rotation", keyring=envelope.HierarchicalKeyring(
        setup["ours"], branch_key_id=branch_key_id), encryption_context=CONTEXT)
    setup["mpl_store"].version_key(VersionKeyInput(branch_key_identifier=branch_key_id))
    theirs = _mpl_active(setup["mpl_store"], branch_key_id)
    assert theirs.encryption_context == {"department": "admin"}
    mine = setup["ours"].get_active_branch_key(branch_key_id)
    assert mine.version == theirs.branch_key_version and mine.encryption_context == {"department": "admin"}
    new_version = setup["ours"].version_key(branch_key_id)
    assert _mpl_active(setup["mpl_store"], branch_key_id).branch_key_version == new_version
    _both_ways(setup, branch_key_id, size=70_000)
    # the first version still decrypts, on both sides
    assert _esdk().decrypt(source=old, keyring=_mpl_keyring(setup["mpl_store"], branch_key_id))[0] == \
        b"before rotation"


def test_beacon_key_matches(setup: dict[str, Any]) -> None:
    from aws_cryptographic_material_providers.keystore.models import GetBeaconKeyInput

    branch_key_id = _mpl_create_key(setup["mpl_store"])
    theirs = setup["mpl_store"].get_beacon_key(GetBeaconKeyInput(branch_key_identifier=branch_key_id))
    mine = setup["ours"].get_beacon_key(branch_key_id)
    assert mine.beacon_key == bytes(theirs.beacon_key_materials.beacon_key)


def test_dynamodb_table_rules(setup: dict[str, Any], ddb_url: str, endpoint: Endpoint) -> None:
    # spec CreateKeyStore: an existing table must have the key schema; a missing one is created.
    ddb = _ddb(ddb_url)
    wrong = f"wrong-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=wrong, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    kms = LocalKMS(endpoint.data_dir)
    bad = envelope.BranchKeyStore.dynamodb(wrong, setup["arn"], kms_client=kms, ddb_client=ddb,
                                           logical_key_store_name=LOGICAL)
    with pytest.raises(envelope.KeyringError, match="key schema"):
        bad.create_key_store()
    fresh = envelope.BranchKeyStore.dynamodb(f"fresh-{uuid.uuid4().hex[:8]}", setup["arn"], kms_client=kms,
                                             ddb_client=ddb, logical_key_store_name=LOGICAL)
    assert fresh.create_key_store().startswith("arn:aws:dynamodb:")
    ours = setup["ours"]
    # spec CreateKey / VersionKey condition expressions: no overwrite, no lost update.
    branch_key_id = ours.create_key("ddb-named", {"k": "v"})
    with pytest.raises(envelope.KeyringError, match="already exists"):
        ours.create_key(branch_key_id, {"k": "v"})
    stale = ours.table.get(branch_key_id, "branch:ACTIVE")
    ours.version_key(branch_key_id)
    decrypt_only = {k: v for k, v in stale.items() if k != "version"}
    decrypt_only["type"] = "branch:version:" + str(uuid.uuid4())
    with pytest.raises(envelope.KeyringError, match="versioned concurrently"):
        ours.table.put_version(decrypt_only, stale, stale["enc"])


def test_cli_on_dynamodb_and_the_endpoint(setup: dict[str, Any], ddb_url: str, endpoint: Endpoint,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`envelope branch-key` with KMS over boto3 (--endpoint-url) and the ESDK's DynamoDB table."""
    import json

    from envelope_cli.main import main as envelope_main

    for name, value in endpoint.cli_env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    common = ["--endpoint-url", endpoint.url, "branch-key"]
    where = ["--kms-key-id", setup["arn"], "--logical-key-store-name", LOGICAL, "--ddb-table-name", setup["table"],
             "--ddb-endpoint-url", ddb_url]
    assert envelope_main([*common, "create-key", *where]) == 0
    branch_key_id = json.loads(capsys.readouterr().out)["BranchKeyIdentifier"]
    assert envelope_main([*common, "version-key", *where, "--branch-key-id", branch_key_id]) == 0
    version = json.loads(capsys.readouterr().out)["BranchKeyVersion"]
    assert _mpl_active(setup["mpl_store"], branch_key_id).branch_key_version == version
    _both_ways(setup, branch_key_id, size=10)
