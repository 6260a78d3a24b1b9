"""Real boto3 against `kms serve`: a full key lifecycle, asymmetric and HMAC keys, principals, STS."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from envelope.kms import LocalKMS
from envelope.kms.server import AccessKeys

if TYPE_CHECKING:
    from .conftest import Endpoint


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_symmetric_key_lifecycle(endpoint: Endpoint) -> None:
    kms = endpoint.client()
    meta = kms.create_key(Description="lifecycle", Tags=[{"TagKey": "team", "TagValue": "a"}])["KeyMetadata"]
    key_id, arn = meta["KeyId"], meta["Arn"]
    assert isinstance(meta["CreationDate"], datetime) and meta["KeyState"] == "Enabled"
    assert arn == f"arn:aws:kms:us-east-1:111122223333:key/{key_id}"

    kms.create_alias(AliasName="alias/lifecycle", TargetKeyId=key_id)
    assert any(a["AliasName"] == "alias/lifecycle" and a["TargetKeyId"] == key_id
               for a in kms.list_aliases(KeyId=key_id)["Aliases"])
    assert kms.describe_key(KeyId="alias/lifecycle")["KeyMetadata"]["Arn"] == arn
    kms.update_key_description(KeyId=key_id, Description="renamed")
    assert kms.describe_key(KeyId=arn)["KeyMetadata"]["Description"] == "renamed"
    assert key_id in {k["KeyId"] for k in kms.list_keys()["Keys"]}

    context = {"purpose": "test", "tenant": "t1"}
    blob = kms.encrypt(KeyId="alias/lifecycle", Plaintext=b"\x00secret\xff", EncryptionContext=context)
    assert blob["KeyId"] == arn
    out = kms.decrypt(CiphertextBlob=blob["CiphertextBlob"], EncryptionContext=context)
    assert out["Plaintext"] == b"\x00secret\xff" and out["KeyId"] == arn
    with pytest.raises(ClientError) as exc:
        kms.decrypt(CiphertextBlob=blob["CiphertextBlob"], EncryptionContext={"purpose": "other"})
    assert _code(exc) == "InvalidCiphertextException"

    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=context)
    assert len(data_key["Plaintext"]) == 32
    assert kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"],
                       EncryptionContext=context)["Plaintext"] == data_key["Plaintext"]
    no_plain = kms.generate_data_key_without_plaintext(KeyId=key_id, NumberOfBytes=16)
    assert "Plaintext" not in no_plain
    assert len(kms.decrypt(CiphertextBlob=no_plain["CiphertextBlob"])["Plaintext"]) == 16
    assert len(kms.generate_random(NumberOfBytes=7)["Plaintext"]) == 7

    other = kms.create_key()["KeyMetadata"]["KeyId"]
    moved = kms.re_encrypt(CiphertextBlob=blob["CiphertextBlob"], SourceEncryptionContext=context,
                           DestinationKeyId=other)
    assert kms.decrypt(CiphertextBlob=moved["CiphertextBlob"])["Plaintext"] == b"\x00secret\xff"

    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is True and isinstance(status["NextRotationDate"], datetime)
    kms.rotate_key_on_demand(KeyId=key_id)
    assert kms.list_key_rotations(KeyId=key_id)["Rotations"][0]["RotationType"] == "ON_DEMAND"
    assert kms.decrypt(CiphertextBlob=blob["CiphertextBlob"], EncryptionContext=context)["Plaintext"]

    policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    policy["Statement"][0]["Sid"] = "Root"
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(policy))
    assert json.loads(kms.get_key_policy(KeyId=key_id)["Policy"])["Statement"][0]["Sid"] == "Root"
    assert kms.list_key_policies(KeyId=key_id)["PolicyNames"] == ["default"]

    grant = kms.create_grant(KeyId=key_id, GranteePrincipal="arn:aws:iam::111122223333:role/App",
                             Operations=["Decrypt"])
    assert [g["GrantId"] for g in kms.list_grants(KeyId=key_id)["Grants"]] == [grant["GrantId"]]
    kms.revoke_grant(KeyId=key_id, GrantId=grant["GrantId"])
    assert kms.list_grants(KeyId=key_id)["Grants"] == []

    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "env", "TagValue": "dev"}])
    kms.untag_resource(KeyId=key_id, TagKeys=["team"])
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "env", "TagValue": "dev"}]

    kms.disable_key(KeyId=key_id)
    with pytest.raises(kms.exceptions.DisabledException):
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    kms.enable_key(KeyId=key_id)

    deletion = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert isinstance(deletion["DeletionDate"], datetime) and deletion["KeyState"] == "PendingDeletion"
    with pytest.raises(kms.exceptions.KMSInvalidStateException):
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    kms.cancel_key_deletion(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    kms.delete_alias(AliasName="alias/lifecycle")
    with pytest.raises(kms.exceptions.NotFoundException):
        kms.describe_key(KeyId="alias/lifecycle")


def test_asymmetric_and_hmac_keys(endpoint: Endpoint) -> None:
    kms = endpoint.client()
    signing = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    public = kms.get_public_key(KeyId=signing)
    assert public["KeySpec"] == "ECC_NIST_P256"
    signature = kms.sign(KeyId=signing, Message=b"message", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    public_key = load_der_public_key(public["PublicKey"])
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signature, b"message", ec.ECDSA(hashes.SHA256()))  # raises if it does not verify
    assert kms.verify(KeyId=signing, Message=b"message", Signature=signature,
                      SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"] is True
    with pytest.raises(kms.exceptions.KMSInvalidSignatureException):
        kms.verify(KeyId=signing, Message=b"other", Signature=signature, SigningAlgorithm="ECDSA_SHA_256")

    pair = kms.generate_data_key_pair(KeyId=kms.create_key()["KeyMetadata"]["KeyId"], KeyPairSpec="RSA_2048")
    assert pair["PrivateKeyPlaintext"] and pair["PrivateKeyCiphertextBlob"] and pair["PublicKey"]
    assert kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"])["Plaintext"] == pair["PrivateKeyPlaintext"]

    mac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    mac = kms.generate_mac(KeyId=mac_key, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert len(mac) == 32
    assert kms.verify_mac(KeyId=mac_key, Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_256")["MacValid"]
    with pytest.raises(kms.exceptions.KMSInvalidMacException):
        kms.verify_mac(KeyId=mac_key, Message=b"n", Mac=mac, MacAlgorithm="HMAC_SHA_256")


def test_imported_key_material(endpoint: Endpoint) -> None:
    from cryptography.hazmat.primitives.asymmetric import padding

    kms = endpoint.client()
    key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    assert isinstance(params["ParametersValidTo"], datetime)
    material = bytes(range(32))
    wrapped = load_der_public_key(params["PublicKey"]).encrypt(  # type: ignore[union-attr]
        material, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"], EncryptedKeyMaterial=wrapped,
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"imported")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"imported"


def test_principal_of_the_access_key_is_the_caller(endpoint: Endpoint) -> None:
    role = "arn:aws:iam::111122223333:role/Reader"
    keys = AccessKeys(endpoint.data_dir)
    created = keys.create(role)["AccessKey"]
    keys.close()
    sts = endpoint.client("sts", access_key_id=created["AccessKeyId"], secret=created["SecretAccessKey"])
    identity = sts.get_caller_identity()
    assert identity["Arn"] == role and identity["Account"] == "111122223333"
    assert identity["UserId"].startswith("AROA")
    assert endpoint.client("sts").get_caller_identity()["Arn"] == "arn:aws:iam::111122223333:root"

    root = endpoint.client()
    key_id = root.create_key()["KeyMetadata"]["KeyId"]
    reader = endpoint.client(access_key_id=created["AccessKeyId"], secret=created["SecretAccessKey"])
    # The default key policy delegates to identity policies, and the role has none.
    with pytest.raises(ClientError) as exc:
        reader.encrypt(KeyId=key_id, Plaintext=b"x")
    assert _code(exc) == "AccessDeniedException" and exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    root.create_grant(KeyId=key_id, GranteePrincipal=role, Operations=["Encrypt"])
    assert reader.encrypt(KeyId=key_id, Plaintext=b"x")["KeyId"].endswith(key_id)

    events = LocalKMS(endpoint.data_dir).audit.lookup(principal=role, key_id=key_id)
    assert [(e["eventName"], e.get("errorCode")) for e in events] == [
        ("Encrypt", None), ("Encrypt", "AccessDeniedException")]


def test_multiple_regions_route_by_credential_scope(endpoint: Endpoint) -> None:
    # The fixture serves only us-east-1: a request scoped to another region is refused.
    other = endpoint.client(region="eu-west-1")
    with pytest.raises(ClientError) as exc:
        other.list_keys()
    assert _code(exc) == "InvalidSignatureException" and "region" in str(exc.value)


def test_keys_made_with_the_envelope_cli_are_served(endpoint: Endpoint) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("envelope")
    if not script.exists():
        pytest.skip("the envelope console script is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVELOPE_")}
    env["ENVELOPE_DATA_DIR"] = str(endpoint.data_dir)  # what `kms serve --data-dir` serves
    made = subprocess.run([str(script), "kms", "create-key", "--description", "from the envelope CLI"],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    arn = json.loads(made.stdout)["KeyMetadata"]["Arn"]
    assert endpoint.client().describe_key(KeyId=arn)["KeyMetadata"]["Description"] == "from the envelope CLI"
