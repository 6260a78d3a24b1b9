"""Production manners: bounded load with a complete audit, TLS, graceful shutdown, audit request fields."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError

from envelope.kms import LocalKMS
from envelope.kms.server import AccessKeys, KMSServer

if TYPE_CHECKING:
    from .conftest import Endpoint

CLIENTS = 8
SECONDS = 2.0


def test_bounded_load_has_no_errors_and_every_call_is_audited(endpoint: Endpoint) -> None:
    key_id = endpoint.client().create_key(Description="load")["KeyMetadata"]["KeyId"]
    counts: list[dict[str, int]] = [{} for _ in range(CLIENTS)]
    errors: list[BaseException] = []
    deadline = time.monotonic() + SECONDS

    def worker(slot: int) -> None:
        kms = endpoint.client(max_pool_connections=2)
        context = {"worker": str(slot)}
        try:
            while time.monotonic() < deadline:
                blob = kms.encrypt(KeyId=key_id, Plaintext=b"p" * 64, EncryptionContext=context)["CiphertextBlob"]
                assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == b"p" * 64
                assert len(kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")["Plaintext"]) == 32
                for op in ("Encrypt", "Decrypt", "GenerateDataKey"):
                    counts[slot][op] = counts[slot].get(op, 0) + 1
        except BaseException as exc:  # noqa: BLE001 - reported below: every call must succeed
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + 60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    audit = LocalKMS(endpoint.data_dir).audit
    for op in ("Encrypt", "Decrypt", "GenerateDataKey"):
        made = sum(c.get(op, 0) for c in counts)
        assert made >= CLIENTS  # every client completed calls
        events = audit.lookup(event_name=op, key_id=key_id)
        assert len(events) == made and all("errorCode" not in e for e in events)
    assert audit.verify().ok


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return str(certfile), str(keyfile)


def test_tls(tmp_path: Path) -> None:
    certfile, keyfile = _self_signed(tmp_path)
    data_dir = tmp_path / "data"
    created = AccessKeys(data_dir).create()["AccessKey"]
    with KMSServer(data_dir, certfile=certfile, keyfile=keyfile, access_log=None) as server:
        assert server.url.startswith("https://127.0.0.1:")
        kms = boto3.client("kms", endpoint_url=server.url, region_name="us-east-1", verify=certfile,
                           aws_access_key_id=created["AccessKeyId"],
                           aws_secret_access_key=created["SecretAccessKey"])
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        assert kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=key_id, Plaintext=b"tls")["CiphertextBlob"])[
            "Plaintext"] == b"tls"
        # Plain HTTP to the TLS port is not served.
        plain = boto3.client("kms", endpoint_url=server.url.replace("https", "http"), region_name="us-east-1",
                             aws_access_key_id=created["AccessKeyId"],
                             aws_secret_access_key=created["SecretAccessKey"],
                             config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=5))
        with pytest.raises(BotoCoreError):
            plain.list_keys()


def test_graceful_shutdown_on_sigterm(tmp_path: Path, spawn: Any) -> None:
    data_dir = tmp_path / "data"
    created = AccessKeys(data_dir).create()["AccessKey"]
    proc, url = spawn(data_dir, tmp_path / "access.log")
    kms = boto3.client("kms", endpoint_url=url, region_name="us-east-1", aws_access_key_id=created["AccessKeyId"],
                       aws_secret_access_key=created["SecretAccessKey"])
    assert kms.list_keys()["Keys"] == []
    assert spawn.stop(proc) == 0  # SIGTERM: a clean exit, not a kill
    parts = urlsplit(url)
    with pytest.raises(OSError):
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()
    assert '"operation":"ListKeys"' in (tmp_path / "access.log").read_text()


def test_port_in_use_is_reported(tmp_path: Path) -> None:
    from envelope_cli import kms_serve

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert kms_serve.main(["serve", "--port", str(port), "--data-dir", str(tmp_path), "--access-log", "off"]) == 2


def test_audit_events_carry_source_ip_and_user_agent(endpoint: Endpoint) -> None:
    kms = endpoint.client(user_agent_extra="audit-probe/1.0")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    event = LocalKMS(endpoint.data_dir).audit.lookup(event_name="CreateKey", key_id=key_id)[0]
    assert event["sourceIPAddress"] == "127.0.0.1"
    assert "audit-probe/1.0" in str(event["userAgent"])


def test_several_workers_share_one_data_directory(tmp_path: Path, spawn: Any) -> None:
    data_dir = tmp_path / "data"
    created = AccessKeys(data_dir).create()["AccessKey"]
    log = tmp_path / "access.log"
    proc, url = spawn(data_dir, log, "--workers", "2")
    kms = boto3.client("kms", endpoint_url=url, region_name="us-east-1", aws_access_key_id=created["AccessKeyId"],
                       aws_secret_access_key=created["SecretAccessKey"])
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    for i in range(20):
        # A new client (so a new connection, accepted by either worker) each time.
        kms = boto3.client("kms", endpoint_url=url, region_name="us-east-1",
                           aws_access_key_id=created["AccessKeyId"], aws_secret_access_key=created["SecretAccessKey"])
        blob = kms.encrypt(KeyId=key_id, Plaintext=bytes([i]))["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == bytes([i])
    assert spawn.stop(proc) == 0
    assert len(LocalKMS(data_dir).audit.lookup(key_id=key_id, event_name="Encrypt")) == 20
    assert sum('"operation":"Encrypt"' in line for line in log.read_text().splitlines()) == 20


def test_an_internal_failure_is_a_kms_internal_exception(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import io
    import json
    import sqlite3

    data_dir = tmp_path / "data"
    monkeypatch.setenv("ENVELOPE_KMS_ROOT_KEY", base64.b64encode(b"\x01" * 32).decode())
    keys = AccessKeys(data_dir)
    created = keys.create()["AccessKey"]
    keys.close()
    # The stored secret is damaged: it no longer opens (another root key is refused at start).
    with sqlite3.connect(data_dir / "access-keys.sqlite3") as conn:
        conn.execute("UPDATE access_keys SET sealed_secret = zeroblob(64)")
    log = io.StringIO()
    with KMSServer(data_dir, access_log=log) as server:
        kms = boto3.client("kms", endpoint_url=server.url, region_name="us-east-1",
                           aws_access_key_id=created["AccessKeyId"], aws_secret_access_key=created["SecretAccessKey"],
                           config=Config(retries={"max_attempts": 1}))
        with pytest.raises(kms.exceptions.KMSInternalException) as exc:
            kms.list_keys()
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        import urllib.request

        with urllib.request.urlopen(server.url + "/health", timeout=10) as response:
            assert response.status == 200
    assert [json.loads(line).get("error") for line in log.getvalue().splitlines()][:1] == ["KMSInternalException"]


def test_forwarded_headers_cannot_spoof_the_audited_source_address(endpoint: Endpoint) -> None:
    kms = endpoint.client()

    def spoof(request: Any, **_: Any) -> None:
        request.headers["X-Forwarded-For"] = "203.0.113.9"

    kms.meta.events.register("before-sign.kms.CreateKey", spoof)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    event = LocalKMS(endpoint.data_dir).audit.lookup(event_name="CreateKey", key_id=key_id)[0]
    assert event["sourceIPAddress"] == "127.0.0.1"
    assert all(r["remote"] == "127.0.0.1" for r in endpoint.access_log())
