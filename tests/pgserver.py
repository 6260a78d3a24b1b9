"""A private PostgreSQL server for the tests: found via ENVELOPE_TEST_POSTGRES_URL, or started here.

`.ci/run` starts one for the whole suite and exports ENVELOPE_TEST_POSTGRES_URL. Without it, a
developer who has the server binaries (Debian: ``apt-get install postgresql``) gets one started
by the session fixture in a temporary directory (as the ``postgres`` user when running as root,
since initdb refuses root); without binaries the PostgreSQL tests are skipped, except in CI.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

URL_ENV = "ENVELOPE_TEST_POSTGRES_URL"
ENABLE_HINT = (f"PostgreSQL tests need a server: run .ci/run, or export {URL_ENV}=postgresql://..., "
               "or install the server binaries (apt-get install -y postgresql) so the tests start one")


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgServer:
    """A server this process started (stop it with `stop`); `url(db)` names a database on it."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="envelope-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.root.chmod(0o755)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        with open(self.root / f"{tool}.out", "ab") as out:  # never the caller's stdout: see reference
            subprocess.run(command, check=True, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-o",
                  f"-k {self.root} -h 127.0.0.1 -p {self.port} -c fsync=off -c max_connections=200", "start")

    def restart(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-m", "fast", "-w",
                  "restart")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def base_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


def create_database(base_url: str, prefix: str = "t") -> str:
    """A new empty database on the server of ``base_url``; returns its URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    head, _, _ = base_url.rpartition("/")
    query = ""
    if "?" in base_url:
        query = "?" + base_url.split("?", 1)[1]
    return f"{head}/{name}{query}"


@contextmanager
def postgres_server() -> Iterator[tuple[str, PgServer | None]]:
    """(base URL, the server if started here); raises LookupError with the hint if none is possible."""
    url = os.environ.get(URL_ENV)
    if url:
        yield url, None
        return
    bindir = _binaries()
    if bindir is None:
        raise LookupError(ENABLE_HINT)
    server = PgServer(bindir)
    try:
        yield server.base_url, server
    finally:
        server.stop()
