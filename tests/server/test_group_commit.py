"""Group commit: concurrent calls share a commit, each stays atomic, and no answer precedes its commit."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import MutableMapping
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]

from envelope.kms import LocalKMS
from envelope.kms.server import AccessKeys, KMSApp
from envelope.kms.server.group import GroupCommit
from envelope.kms.store.database import REGION_SCHEMA, Database

CONTEXT = {"purpose": "group-commit"}


def _names(path: Path) -> set[str]:
    """The meta names committed to a region file, read by an outside connection."""
    with closing(sqlite3.connect(path)) as outside:
        return {row[0] for row in outside.execute("SELECT name FROM meta")}


def test_a_group_commits_its_transactions_at_once_and_each_rolls_back_alone(tmp_path: Path) -> None:
    path = tmp_path / "kms-us-east-1.sqlite3"
    db = Database(path, REGION_SCHEMA)
    assert db.open_group()
    assert not db.open_group()  # already open on this thread
    first = db.begin()
    first.execute("INSERT INTO meta VALUES ('first', 1)")
    db.commit(first)
    second = db.begin()
    second.execute("INSERT INTO meta VALUES ('second', 2)")
    db.rollback(second)
    with db.transaction() as third:
        third.execute("INSERT INTO meta VALUES ('third', 3)")
    assert not {"first", "third"} & _names(path)  # nothing is visible before the group commits
    db.commit_group()
    assert {"first", "third"} <= _names(path)
    assert "second" not in _names(path)
    # After the group, transactions commit one by one again.
    with db.transaction() as conn:
        conn.execute("INSERT INTO meta VALUES ('fourth', 4)")
    assert "fourth" in _names(path)


def test_a_rolled_back_group_loses_every_transaction(tmp_path: Path) -> None:
    path = tmp_path / "kms-us-east-1.sqlite3"
    db = Database(path, REGION_SCHEMA)
    db.open_group()
    with db.transaction() as conn:
        conn.execute("INSERT INTO meta VALUES ('gone', 1)")
    db.rollback_group()
    assert "gone" not in _names(path)


def test_a_group_that_sqlite_rolled_back_refuses_to_go_on(tmp_path: Path) -> None:
    # SQLite ends the whole transaction on some errors (a full disk, I/O errors); the calls made
    # before then are lost, so later ones must not commit on their own and look like the group.
    path = tmp_path / "kms-us-east-1.sqlite3"
    db = Database(path, REGION_SCHEMA)
    db.open_group()
    with db.transaction() as conn:
        conn.execute("INSERT INTO meta VALUES ('lost', 1)")
    conn.execute("ROLLBACK")  # what SQLite does by itself on such an error
    with pytest.raises(sqlite3.OperationalError, match="rolled back"):
        db.begin()
    with pytest.raises(sqlite3.OperationalError, match="rolled back"):
        db.commit_group()
    assert "lost" not in _names(path)
    with db.transaction() as conn:  # the thread's next transaction is a plain one again
        conn.execute("INSERT INTO meta VALUES ('later', 1)")
    assert "later" in _names(path)


def test_in_memory_databases_take_no_groups() -> None:
    db = Database(None, REGION_SCHEMA)
    assert not db.open_group()
    with db.transaction() as conn:
        conn.execute("INSERT INTO meta VALUES ('x', 1)")
    assert db.connect().execute("SELECT value FROM meta WHERE name = 'x'").fetchone() == (1,)


# -- the endpoint ------------------------------------------------------------------------------

class _Harness:
    """KMSApp driven in-process over ASGI, with requests signed as boto3 signs them."""

    def __init__(self, data_dir: Path) -> None:
        keys = AccessKeys(data_dir)
        created = keys.create()["AccessKey"]
        keys.close()
        self.credentials = Credentials(created["AccessKeyId"], created["SecretAccessKey"])
        self.app = KMSApp(data_dir, access_log=None)
        self.key_id = LocalKMS(data_dir).create_key()["KeyMetadata"]["KeyId"]
        self.region_file = data_dir / "kms-us-east-1.sqlite3"

    def request(self, operation: str, params: dict[str, Any]) -> tuple[list[tuple[bytes, bytes]], bytes]:
        body = json.dumps(params).encode()
        request = AWSRequest(method="POST", url="http://127.0.0.1:8787/", data=body, headers={
            "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"TrentService.{operation}"})
        SigV4Auth(self.credentials, "kms", "us-east-1").add_auth(request)
        headers = [(b"host", b"127.0.0.1:8787")]
        headers += [(k.lower().encode(), v.encode() if isinstance(v, str) else v) for k, v in request.headers.items()]
        return headers, body

    async def call(self, headers: list[tuple[bytes, bytes]], body: bytes,
                   on_answer: Any = None) -> tuple[int, dict[str, Any]]:
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> MutableMapping[str, Any]:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start" and on_answer is not None:
                on_answer(message["status"])
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/", "raw_path": b"/", "query_string": b"",
                 "headers": headers, "client": ("127.0.0.1", 50000)}
        await self.app(scope, receive, send)
        return sent[0]["status"], json.loads(sent[1]["body"])

    def committed_events(self, operation: str) -> int:
        with closing(sqlite3.connect(self.region_file)) as outside:
            return int(outside.execute("SELECT count(*) FROM audit_events WHERE event_name = ?",
                                       (operation,)).fetchone()[0])


def test_concurrent_calls_share_a_commit_and_each_answer_follows_its_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    harness = _Harness(tmp_path)
    groups: list[int] = []
    commit = GroupCommit.commit

    def counting(self: GroupCommit) -> None:
        if self._waiters:
            groups.append(len(self._waiters))
        commit(self)

    monkeypatch.setattr(GroupCommit, "commit", counting)
    requests = [harness.request("Encrypt", {"KeyId": harness.key_id, "Plaintext": "AAEC", "EncryptionContext": CONTEXT})
                for _ in range(20)]
    answered: list[int] = []

    def on_answer(status: int) -> None:
        # When an answer leaves, its call's audit event is already durable (seen from outside).
        answered.append(status)
        assert harness.committed_events("Encrypt") >= len(answered)

    async def main() -> list[tuple[int, dict[str, Any]]]:
        return await asyncio.gather(*(harness.call(h, b, on_answer) for h, b in requests))

    results = asyncio.run(main())
    assert [status for status, _ in results] == [200] * 20
    assert sum(groups) == 20 and len(groups) < 20  # batched, not one commit per call
    assert harness.committed_events("Encrypt") == 20
    assert LocalKMS(tmp_path).audit.verify().ok


def test_a_failing_call_in_a_group_spoils_none_of_the_others(tmp_path: Path) -> None:
    harness = _Harness(tmp_path)
    good = harness.request("Encrypt", {"KeyId": harness.key_id, "Plaintext": "AAEC", "EncryptionContext": CONTEXT})
    missing = harness.request("Encrypt", {"KeyId": "alias/missing", "Plaintext": "AAEC"})
    alias = harness.request("CreateAlias", {"AliasName": "alias/group", "TargetKeyId": harness.key_id})
    duplicate = harness.request("CreateAlias", {"AliasName": "alias/group", "TargetKeyId": harness.key_id})

    async def main() -> list[tuple[int, dict[str, Any]]]:
        return await asyncio.gather(*(harness.call(h, b) for h, b in (good, missing, alias, duplicate, good)))

    results = asyncio.run(main())
    assert [status for status, _ in results] == [200, 400, 200, 400, 200]
    assert results[1][1]["__type"] == "NotFoundException"
    assert results[3][1]["__type"] == "AlreadyExistsException"
    kms = LocalKMS(tmp_path)
    assert [a["TargetKeyId"] for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/group"] == \
        [harness.key_id]
    # One event per call, failures included, in one intact chain.
    assert harness.committed_events("Encrypt") == 3
    assert harness.committed_events("CreateAlias") == 2
    assert kms.audit.verify().ok


def test_when_the_group_commit_fails_every_call_of_the_group_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    harness = _Harness(tmp_path)
    requests = [harness.request("CreateAlias", {"AliasName": f"alias/lost-{i}", "TargetKeyId": harness.key_id})
                for i in range(3)]

    def failing(self: Database) -> None:
        self.rollback_group()
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Database, "commit_group", failing)

    async def main() -> list[tuple[int, dict[str, Any]]]:
        return await asyncio.gather(*(harness.call(h, b) for h, b in requests))

    results = asyncio.run(main())
    assert [(status, body["__type"]) for status, body in results] == [(500, "KMSInternalException")] * 3
    monkeypatch.undo()
    # Nothing of the group was kept, and the cache does not pretend otherwise.
    assert not [a for a in LocalKMS(tmp_path).list_aliases()["Aliases"] if a["AliasName"].startswith("alias/lost-")]
    assert harness.committed_events("CreateAlias") == 0


def test_a_background_thread_checkpoints_the_wal_and_stops_on_close(tmp_path: Path) -> None:
    # In WAL mode only a checkpoint writes to the database file itself: its growth shows one ran.
    harness = _Harness(tmp_path)
    size_before = harness.region_file.stat().st_size
    requests = [harness.request("CreateAlias", {"AliasName": f"alias/ckpt-{i}", "TargetKeyId": harness.key_id})
                for i in range(200)]

    async def main() -> list[tuple[int, dict[str, Any]]]:
        return await asyncio.gather(*(harness.call(h, b) for h, b in requests))

    assert {status for status, _ in asyncio.run(main())} == {200}
    checkpointer = harness.app._group._checkpointer
    assert checkpointer is not None and checkpointer.is_alive()
    deadline = time.monotonic() + 10
    while harness.region_file.stat().st_size == size_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert harness.region_file.stat().st_size > size_before
    harness.app._group.close()
    assert not checkpointer.is_alive()


def test_after_each_commit_new_calls_wait_a_pass_for_other_writers(tmp_path: Path) -> None:
    group = GroupCommit([LocalKMS(tmp_path)._region_state()])

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert group.turn() is None
        committed = group.join()  # commits on the next loop pass
        seen: list[asyncio.Future[None] | None] = []
        loop.call_soon(lambda: seen.append(group.turn()))  # a call arriving in the commit's pass
        await committed
        turn = seen[0]
        assert turn is not None
        await turn  # released a pass later
        assert group.turn() is None

    asyncio.run(main())
    group.close()


def test_an_app_serves_on_a_second_event_loop(tmp_path: Path) -> None:
    harness = _Harness(tmp_path)
    request = harness.request("Encrypt", {"KeyId": harness.key_id, "Plaintext": "AAEC"})

    async def main() -> list[tuple[int, dict[str, Any]]]:
        return await asyncio.gather(*(harness.call(*request) for _ in range(5)))

    for _ in range(2):  # nothing of the first loop (a pending turn, a group) strands the second
        assert [status for status, _ in asyncio.run(asyncio.wait_for(main(), 10))] == [200] * 5
    assert harness.committed_events("Encrypt") == 10
