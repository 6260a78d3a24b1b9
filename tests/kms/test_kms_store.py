"""Storage: persistence, root key and sealing, the audit trail, concurrency and crash safety."""

from __future__ import annotations

import base64
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from envelope.errors import KMSError
from envelope.kms import LocalKMS, ManualClock

ROOT = Path(__file__).resolve().parents[2]


def _all(kms: LocalKMS, method: str, field: str, name: str, **kwargs: object) -> set[str]:
    """Every item of a paginated list call."""
    out: set[str] = set()
    marker = None
    while True:
        page = getattr(kms, method)(**kwargs, **({"Marker": marker} if marker else {}))
        out |= {item[name] for item in page[field]}
        marker = page.get("NextMarker")
        if not marker:
            return out


def test_state_persists_across_clients(tmp_path: Path) -> None:
    first = LocalKMS(path=tmp_path)
    key_id = first.create_key()["KeyMetadata"]["KeyId"]
    blob = first.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"a": "b"})["CiphertextBlob"]
    # A second client in a fresh interpreter sees the key and decrypts (nothing lives only in memory).
    code = textwrap.dedent(f"""
        from envelope.kms import LocalKMS
        kms = LocalKMS(path={str(tmp_path)!r})
        print(kms.decrypt(CiphertextBlob=bytes.fromhex({blob.hex()!r}), EncryptionContext={{"a": "b"}})["Plaintext"])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "b'x'"
    assert [p.name for p in tmp_path.glob("kms-*.sqlite3")] == ["kms-us-east-1.sqlite3"]


def test_default_data_dir_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVELOPE_DATA_DIR", str(tmp_path / "env-dir"))
    kms = LocalKMS(region="eu-central-1")
    kms.create_key()
    assert (tmp_path / "env-dir" / "kms-eu-central-1.sqlite3").exists()


def test_memory_stores_are_private() -> None:
    a, b = LocalKMS(path=":memory:"), LocalKMS(path=":memory:")
    key_id = a.create_key()["KeyMetadata"]["KeyId"]
    assert b.list_keys()["Keys"] == [] and a.for_principal(a.principal).list_keys()["Keys"][0]["KeyId"] == key_id


def test_root_key_file_is_private(tmp_path: Path) -> None:
    LocalKMS(path=tmp_path).create_key()
    mode = stat.S_IMODE((tmp_path / "kms-root.key").stat().st_mode)
    assert mode == 0o600 and (tmp_path / "kms-root.key").stat().st_size == 32


def test_databases_are_private(tmp_path: Path) -> None:
    # Key metadata, policies and the audit log are readable by their owner only, whatever the umask.
    old = os.umask(0o022)
    try:
        kms = LocalKMS(path=tmp_path / "data")
        kms.create_key()
        kms.list_keys()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file() and ".sqlite3" in p.name]
    assert any(p.name.endswith("-wal") for p in files), files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_root_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVELOPE_KMS_ROOT_KEY", base64.b64encode(b"k" * 32).decode())
    LocalKMS(path=tmp_path).create_key()
    assert not (tmp_path / "kms-root.key").exists()
    monkeypatch.setenv("ENVELOPE_KMS_ROOT_KEY", "not base64!")
    with pytest.raises(ValueError):
        LocalKMS(path=tmp_path / "other")


def _imported(kms: LocalKMS, material: bytes) -> str:
    key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    public = serialization.load_der_public_key(params["PublicKey"])
    assert isinstance(public, rsa.RSAPublicKey)
    wrapped = public.encrypt(material, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"], EncryptedKeyMaterial=wrapped)
    return str(key_id)


def test_material_and_data_keys_never_reach_disk_in_the_clear(tmp_path: Path) -> None:
    kms = LocalKMS(path=tmp_path)
    material = os.urandom(32)
    key_id = _imported(kms, material)
    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")["Plaintext"]
    plaintext = kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=key_id, Plaintext=b"P" * 48)["CiphertextBlob"])
    assert plaintext["Plaintext"] == b"P" * 48
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name != "kms-root.key")
    for secret in (material, data_key, b"P" * 48):
        assert secret not in blob


def test_wrong_root_key_cannot_open_material(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVELOPE_KMS_ROOT_KEY", base64.b64encode(b"a" * 32).decode())
    key_id = LocalKMS(path=tmp_path / "d").create_key()["KeyMetadata"]["KeyId"]
    code = textwrap.dedent(f"""
        import base64, os
        os.environ["ENVELOPE_KMS_ROOT_KEY"] = base64.b64encode(b"b" * 32).decode()
        from envelope.kms import LocalKMS
        from envelope.kms import StoreError
        try:
            LocalKMS(path={str(tmp_path / "d")!r}).encrypt(KeyId={key_id!r}, Plaintext=b"x")
        except StoreError as exc:
            print("refused", "sealed under another root key" in str(exc), "ENVELOPE_KMS_ROOT_KEY" in str(exc))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    # Refused when the store is opened, naming the file and the key's source (issue 12 item 4).
    assert out.stdout.strip() == "refused True True"


def test_every_call_appends_one_audit_event(kms: LocalKMS, key_id: str, clock: ManualClock) -> None:
    before = len(kms.audit.lookup())
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"secret-plaintext")["CiphertextBlob"]
    with pytest.raises(KMSError):
        kms.decrypt(CiphertextBlob=blob, EncryptionContext={"wrong": "ctx"})
    with pytest.raises(KMSError):
        kms.for_principal("arn:aws:iam::111122223333:role/Nobody").encrypt(KeyId=key_id, Plaintext=b"x")
    with pytest.raises(KMSError):
        kms.describe_key(KeyId="alias/none")
    with pytest.raises(TypeError):
        kms.encrypt(KeyId=key_id, Plaintext="str")
    events = kms.audit.lookup()
    assert len(events) == before + 5
    newest = events[:5]
    assert [e["eventName"] for e in newest] == ["Encrypt", "DescribeKey", "Encrypt", "Decrypt", "Encrypt"]
    assert [e.get("errorCode") for e in newest] == ["ValidationException", "NotFoundException",
                                                     "AccessDeniedException", "InvalidCiphertextException", None]
    assert newest[2]["userIdentity"]["arn"] == "arn:aws:iam::111122223333:role/Nobody"  # type: ignore[index]
    text = repr(events)
    assert "secret-plaintext" not in text and blob.hex() not in text
    assert kms.audit.verify().ok


def test_audit_chain_detects_tampering(disk_kms: LocalKMS) -> None:
    key_id = disk_kms.create_key()["KeyMetadata"]["KeyId"]
    for _ in range(3):
        disk_kms.encrypt(KeyId=key_id, Plaintext=b"x")
    assert disk_kms.audit.verify().ok
    assert disk_kms.data_dir is not None
    db = disk_kms._region_state().db.connect()  # SQLite or PostgreSQL, as the store is
    db.execute("UPDATE audit_events SET body = replace(body, 'Encrypt', 'Decrypt') WHERE seq = 2")
    assert not disk_kms.audit.verify().ok


def test_a_deleted_chain_head_stops_calls_instead_of_restarting_the_chain(disk_kms: LocalKMS) -> None:
    key_id = disk_kms.create_key()["KeyMetadata"]["KeyId"]
    blob = disk_kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    assert disk_kms.data_dir is not None
    db = disk_kms._region_state().db.connect()  # SQLite or PostgreSQL, as the store is
    db.execute("DELETE FROM audit_head")
    count = disk_kms.audit.verify().count
    call: Callable[[], object]
    for call in (lambda: disk_kms.decrypt(CiphertextBlob=blob),
                 lambda: disk_kms.describe_key(KeyId="alias/none")):  # a success and a failure
        with pytest.raises(KMSError) as exc:
            call()
        assert exc.value.code == "KMSInternalException"
    result = disk_kms.audit.verify()
    assert not result.ok and result.count == count


def test_threads_share_one_store_without_lost_updates(tmp_path: Path) -> None:
    kms = LocalKMS(path=tmp_path)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    errors: list[BaseException] = []
    tagged: list[str] = []

    def worker(n: int) -> None:
        client = LocalKMS(path=tmp_path)
        try:
            for i in range(25):
                blob = client.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
                client.decrypt(CiphertextBlob=blob)
                # At most 50 tags per key: 6 threads x 8 keys, each written three times or more.
                client.tag_resource(KeyId=key_id, Tags=[{"TagKey": f"t{n}-{i % 8}", "TagValue": "v"}])
                tagged.append(f"t{n}-{i % 8}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert kms.audit.verify().count == 1 + 6 * 25 * 3
    assert _all(kms, "list_resource_tags", "Tags", "TagKey", KeyId=key_id) == set(tagged)
    assert len(tagged) == 150


_WORKER = textwrap.dedent("""
    import sys
    from envelope.kms import LocalKMS
    kms = LocalKMS(path=sys.argv[1])
    key_id = sys.argv[2]
    for i in range(int(sys.argv[3])):
        kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": f"{sys.argv[4]}-{i % 12}", "TagValue": "v"}])
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
        kms.decrypt(CiphertextBlob=blob)
        if i % 10 == 0:
            new = kms.create_key()["KeyMetadata"]["KeyId"]
            print(new, flush=True)
""")


def test_processes_share_one_store(tmp_path: Path) -> None:
    kms = LocalKMS(path=tmp_path)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path), key_id, "30", f"p{n}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for n in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]
    assert all("locked" not in err for _, err in outputs)
    created = [line for out, _ in outputs for line in out.split()]
    assert set(created) <= _all(kms, "list_keys", "Keys", "KeyId") and len(created) == 12
    tags = _all(kms, "list_resource_tags", "Tags", "TagKey", KeyId=key_id)
    assert tags == {f"p{n}-{i}" for n in range(4) for i in range(12)}  # at most 50 tags per key
    assert kms.audit.verify().ok


_CRASHER = textwrap.dedent("""
    import sys
    from envelope.kms import LocalKMS
    kms = LocalKMS(path=sys.argv[1])
    while True:
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        print(key_id, flush=True)
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
        kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_never_loses_a_returned_key_or_corrupts_the_store(tmp_path: Path) -> None:
    promised: list[str] = []
    deadline = time.monotonic() + 4.0
    rounds = 0
    while time.monotonic() < deadline or rounds < 3:
        rounds += 1
        proc = subprocess.Popen([sys.executable, "-c", _CRASHER, str(tmp_path)], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
        assert proc.stdout is not None
        # Let it work a little (first line means the store is open), then kill it mid-flight.
        promised.append(proc.stdout.readline().strip())
        time.sleep(0.02 + 0.01 * (rounds % 5))
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate()
        promised += [line for line in rest.split() if line]
    kms = LocalKMS(path=tmp_path)
    assert promised and set(promised) <= _all(kms, "list_keys", "Keys", "KeyId")
    for key_id in promised:
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"after")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"after"
    db = sqlite3.connect(tmp_path / "kms-us-east-1.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert kms.audit.verify().ok


def test_changes_by_another_process_apply_at_once(tmp_path: Path) -> None:
    kms = LocalKMS(path=tmp_path)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]  # key state now cached here
    code = ("import sys; from envelope.kms import LocalKMS; "
            "k = LocalKMS(path=sys.argv[1]); k.disable_key(KeyId=sys.argv[2]); "
            "k.create_alias(AliasName='alias/late', TargetKeyId=sys.argv[2])")
    subprocess.run([sys.executable, "-c", code, str(tmp_path), key_id], check=True, cwd=ROOT)
    with pytest.raises(KMSError) as exc:
        kms.decrypt(CiphertextBlob=blob)
    assert exc.value.code == "DisabledException"
    assert kms.describe_key(KeyId="alias/late")["KeyMetadata"]["KeyState"] == "Disabled"


def test_audit_records_source_ip_and_user_agent(kms: LocalKMS, key_id: str) -> None:
    remote = kms.for_principal("arn:aws:iam::111122223333:root", source_ip="10.0.0.7", user_agent="aws-cli/2")
    remote.describe_key(KeyId=key_id)
    event = kms.audit.lookup(event_name="DescribeKey")[0]
    assert (event["sourceIPAddress"], event["userAgent"]) == ("10.0.0.7", "aws-cli/2")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_opens_its_own_connections(tmp_path: Path) -> None:
    kms = LocalKMS(path=tmp_path)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.encrypt(KeyId=key_id, Plaintext=b"x")  # the parent's connection exists and is cached
    pid = os.fork()
    if pid == 0:  # child: must work through fresh connections, then leave without cleanup
        try:
            kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "child", "TagValue": "1"}])
            os._exit(0)
        except BaseException:  # noqa: BLE001 - any failure is the child's exit status
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "child", "TagValue": "1"}]
    assert kms.audit.verify().ok
