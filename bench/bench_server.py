"""KMS endpoint benchmark: `envelope kms serve` beside moto's server mode, Encrypt/Decrypt/GenerateDataKey.

Run: ``.venv/bin/python bench/bench_server.py [--seconds 5] [--concurrency 50] [--rounds 3] [--json out.json]``.
With ``--database postgresql://...`` (a server where the bench may create a database): one SQLite
instance, one PostgreSQL instance and two PostgreSQL instances side by side (the load split over
both), with the CPU split between the server processes and PostgreSQL, instead of moto.
``--with-backup [--keys 100000]``: envelope only, its store filled with that many keys; each measurement
runs twice, unloaded and while `envelope kms backup` runs in a loop, and the p99 ratio is reported.
Each server runs in its own process on loopback; a load generator (asyncio, keep-alive connections,
requests pre-signed with botocore's SigV4 signer and replayed) keeps ``--concurrency`` requests in flight.
Rounds interleave servers and operations. Besides req/s and p50/p99 it reports the server process's
CPU time per request, which other load on the (shared, 2-core) machine does not distort. Exit 1 on
any error, or if envelope's audit log does not hold exactly one event per measured request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"
OPERATIONS = ("Encrypt", "Decrypt", "GenerateDataKey")
DISTINCT = 64  # distinct pre-signed requests per operation, replayed in turn
CONTEXT = {"purpose": "bench", "tenant": "t-1"}


@dataclass
class Result:
    server: str
    operation: str
    requests: int
    errors: int
    seconds: float
    cpu: float
    latencies: list[float] = field(repr=False, default_factory=list)
    db_cpu: float = 0.0

    @property
    def db_cpu_us(self) -> float:
        """PostgreSQL's CPU time per request (microseconds; 0 without PostgreSQL)."""
        return self.db_cpu / max(self.requests, 1) * 1e6

    @property
    def cpu_us(self) -> float:
        """Server CPU time per request (microseconds): robust to other load on the machine."""
        return self.cpu / max(self.requests, 1) * 1e6

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its direct children (Linux /proc), else 0."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


# -- servers -------------------------------------------------------------------------------------

class Server:
    name = ""
    url = ""
    proc: subprocess.Popen[bytes]
    access_key_id = "AKIAIOSFODNN7EXAMPLE"
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def audited(self, key_id: str, operation: str) -> int:
        return 0

    def client(self) -> Any:
        return boto3.client("kms", endpoint_url=self.url, region_name=REGION, aws_access_key_id=self.access_key_id,
                            aws_secret_access_key=self.secret)


def fill_store(data_dir: Path, keys: int) -> None:
    """Create ``keys`` keys (and their audit events) in a store, before its server starts."""
    from envelope.kms import LocalKMS

    kms = LocalKMS(data_dir)
    started = time.perf_counter()
    for i in range(keys):
        kms.create_key(Description=f"fill {i}")
    print(f"filled the store with {keys:,} keys in {time.perf_counter() - started:.0f} s", flush=True)


class BackupLoop:
    """`envelope kms backup` of a data directory, again and again, in another process, until stopped."""

    def __init__(self, data_dir: Path, workdir: Path) -> None:
        # At nice 10, as the README recommends for an online backup beside a busy server.
        code = ("import os, sys, shutil, time; from pathlib import Path; from envelope.kms import backup\n"
                "os.nice(10); n = 0\n"
                "while True:\n"
                "    dest = Path(sys.argv[2]) / f'b{n % 2}'; shutil.rmtree(dest, ignore_errors=True)\n"
                "    t = time.perf_counter(); backup(Path(sys.argv[1]), dest)\n"
                "    print(f'{time.perf_counter() - t:.2f}', flush=True); n += 1\n")
        workdir.mkdir(exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(data_dir), str(workdir)],
                                     stdout=subprocess.PIPE, text=True)

    def stop(self) -> list[float]:
        """Stop; return how long each finished backup took (seconds)."""
        self.proc.kill()
        out, _ = self.proc.communicate()
        return [float(line) for line in out.split()]


class EnvelopeServer(Server):
    name = "envelope kms serve"

    def __init__(self, workdir: Path, workers: int = 1, fill: int = 0, database: str | None = None,
                 instances: int = 1) -> None:
        from envelope.kms.server import AccessKeys

        self.data_dir = workdir / "envelope-data"
        self.database = database
        if fill:
            fill_store(self.data_dir, fill)
        keys = AccessKeys(self.data_dir, database)
        created = keys.create()["AccessKey"]
        keys.close()
        self.access_key_id, self.secret = created["AccessKeyId"], created["SecretAccessKey"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENVELOPE_")}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        for n in range(instances):
            command = [sys.executable, "-m", "envelope_cli.kms_serve", "serve", "--port", "0", "--data-dir",
                       str(self.data_dir), "--access-log", str(workdir / f"access-{n}.log"), "--workers", str(workers)]
            proc = subprocess.Popen(command + (["--database", database] if database else []),
                                    stdout=subprocess.PIPE, env=env)
            self.procs.append(proc)
            self.proc = proc
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            match = re.search(rb"listening on (\S+)", proc.stdout.readline()) if ready else None
            if match is None:
                self.stop()
                raise RuntimeError("envelope kms serve did not start")
            self.urls.append(match.group(1).decode())
        self.url = self.urls[0]

    def stop(self) -> None:
        for proc in self.procs:
            self.proc = proc
            super().stop()

    def cpu(self) -> float:
        return sum(cpu_seconds(proc.pid) for proc in self.procs)

    def audited(self, key_id: str, operation: str) -> int:
        from envelope.kms import LocalKMS

        return len(LocalKMS(self.data_dir, database=self.database).audit.lookup(event_name=operation, key_id=key_id))


def postgres_cpu(url: str) -> Any:
    """A function returning the CPU seconds of the PostgreSQL server at ``url`` (postmaster + backends)."""
    import psycopg

    with psycopg.connect(url) as conn:
        data_dir = conn.execute("SHOW data_directory").fetchone()[0]
    pid = int((Path(data_dir) / "postmaster.pid").read_text().split()[0])
    return lambda: cpu_seconds(pid)


def bench_database(url: str) -> tuple[str, Any]:
    """A fresh database on the server of ``url`` (and a function dropping it)."""
    import psycopg

    name = f"bench_{os.getpid()}_{time.time_ns()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return url.rsplit("/", 1)[0] + "/" + name, drop


class MotoServer(Server):
    name = "moto server"

    def __init__(self, workdir: Path, workers: int = 1, fill: int = 0) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.proc = subprocess.Popen([sys.executable, "-W", "ignore", "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                      str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto server did not start")


def _urls(server: Server) -> list[str]:
    return server.urls if isinstance(server, EnvelopeServer) else [server.url]


def _cpu(server: Server) -> float:
    return server.cpu() if isinstance(server, EnvelopeServer) else cpu_seconds(server.proc.pid)


# -- requests ------------------------------------------------------------------------------------

def _presign(server: Server, operation: str, params: dict[str, Any]) -> bytes:
    body = json.dumps(params).encode()
    request = AWSRequest(method="POST", url=server.url + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"TrentService.{operation}",
        "User-Agent": "bench-server/1"})
    SigV4Auth(Credentials(server.access_key_id, server.secret), "kms", REGION).add_auth(request)
    host = server.url.split("://", 1)[1]
    lines = ["POST / HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() not in ("host", "content-length")]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def requests_for(server: Server, key_id: str) -> dict[str, list[bytes]]:
    import base64

    client = server.client()
    blobs = [client.encrypt(KeyId=key_id, Plaintext=os.urandom(32), EncryptionContext=CONTEXT)["CiphertextBlob"]
             for _ in range(DISTINCT)]
    b64 = base64.b64encode
    return {
        "Encrypt": [_presign(server, "Encrypt", {"KeyId": key_id, "Plaintext": b64(os.urandom(32)).decode(),
                                                 "EncryptionContext": CONTEXT}) for _ in range(DISTINCT)],
        "Decrypt": [_presign(server, "Decrypt", {"CiphertextBlob": b64(blob).decode(), "EncryptionContext": CONTEXT})
                    for blob in blobs],
        "GenerateDataKey": [_presign(server, "GenerateDataKey", {"KeyId": key_id, "KeySpec": "AES_256",
                                                                 "EncryptionContext": CONTEXT})
                            for _ in range(DISTINCT)],
    }


# -- load generator ------------------------------------------------------------------------------

async def _connection(host: str, port: int, requests: list[bytes], offset: int, stop_at: float,
                      latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = offset
    try:
        while time.perf_counter() < stop_at:
            request = requests[i % len(requests)]
            i += 1
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            if not status_line:  # the server closed the connection: reconnect and go on
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                errors[0] += 1
                continue
            length, close = 0, status_line.startswith(b"HTTP/1.0")
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection":
                    close = value.strip().lower() == b"close"
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status_line.split(b" ", 2)[1] != b"200":
                errors[0] += 1
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


async def _load(urls: list[str], requests: list[bytes], concurrency: int,
                seconds: float) -> tuple[list[float], int, float]:
    addresses = [url.split("://", 1)[1].rsplit(":", 1) for url in urls]
    latencies: list[float] = []
    errors = [0]
    started = time.perf_counter()
    stop_at = started + seconds
    # Connections spread over the instances (a load balancer's round robin).
    await asyncio.gather(*(_connection(addresses[i % len(addresses)][0], int(addresses[i % len(addresses)][1]),
                                       requests, i, stop_at, latencies, errors) for i in range(concurrency)))
    return latencies, errors[0], time.perf_counter() - started


def run_load(url: str | list[str], requests: list[bytes], concurrency: int,
             seconds: float) -> tuple[list[float], int, float]:
    urls = [url] if isinstance(url, str) else url
    try:
        import uvloop
        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    result: tuple[list[float], int, float] = runner(_load(urls, requests, concurrency, seconds))
    return result


# -- main ----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per operation and round")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="rounds (every server and operation, then again)")
    parser.add_argument("--workers", type=int, default=1, help="envelope server worker processes")
    parser.add_argument("--only", choices=["envelope", "moto"], default=None)
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--database", default=None, metavar="URL",
                        help="a PostgreSQL server (postgresql://...): compare SQLite, PostgreSQL x1 and x2")
    parser.add_argument("--with-backup", action="store_true",
                        help="envelope only: measure each operation unloaded and while a backup runs")
    parser.add_argument("--keys", type=int, default=100_000, help="keys in the store with --with-backup")
    args = parser.parse_args(argv)
    if args.with_backup:
        args.only = "envelope"

    print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; concurrency {args.concurrency}; "
          f"{args.seconds:g} s x {args.rounds} rounds per operation", flush=True)
    results: list[Result] = []
    failed = False
    drop: Any = None
    pg_cpu: Any = None
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        kinds = [k for k in (EnvelopeServer, MotoServer) if args.only is None or args.only in k.name]
        servers: list[Server] = []
        try:
            if args.database:
                # A database per configuration: each server setup makes its own root key, and a
                # store refuses a root key other than the one it was sealed under.
                database, drop_one = bench_database(args.database)
                database_two, drop_two = bench_database(args.database)

                def drop() -> None:
                    drop_one()
                    drop_two()
                pg_cpu = postgres_cpu(args.database)
                for label, db, count in (("sqlite x1", None, 1), ("postgres x1", database, 1),
                                         ("postgres x2", database_two, 2)):
                    server = EnvelopeServer(Path(tmp) / label.replace(" ", "-"), args.workers, database=db,
                                            instances=count)
                    server.name = label
                    servers.append(server)
                kinds = []
            for kind in kinds:
                servers.append(kind(Path(tmp) / kind.__name__, args.workers, args.keys if args.with_backup else 0))
            setups = []
            for server in servers:
                key_id = server.client().create_key(Description="bench")["KeyMetadata"]["KeyId"]
                setups.append((server, key_id, requests_for(server, key_id)))
            for server, _, requests in setups:  # warm up every path once
                for op in OPERATIONS:
                    run_load(_urls(server), requests[op], args.concurrency, args.warmup)
            before = {id(server): {op: server.audited(key_id, op) for op in OPERATIONS}
                      for server, key_id, _ in setups if isinstance(server, EnvelopeServer)}
            sent = {id(server): {op: 0 for op in OPERATIONS} for server in servers}
            # Rounds interleave servers and operations, so a burst of other load hits one row of each.
            backups: list[float] = []
            for _ in range(args.rounds):
                for op in OPERATIONS:
                    for server, _, requests in setups:
                        for loaded in ((False, True) if args.with_backup else (False,)):
                            loop = BackupLoop(server.data_dir, Path(tmp) / "backups") \
                                if loaded and isinstance(server, EnvelopeServer) else None
                            if loop is not None:
                                time.sleep(1.0)  # the backup process is started and copying
                            cpu_before = _cpu(server)
                            db_before = pg_cpu() if pg_cpu is not None else 0.0
                            latencies, errors, seconds = run_load(_urls(server), requests[op], args.concurrency,
                                                                  args.seconds)
                            cpu = _cpu(server) - cpu_before
                            db_cpu = (pg_cpu() - db_before) if pg_cpu is not None else 0.0
                            if loop is not None:
                                backups += loop.stop()
                            name = server.name + (" + backup" if loaded else "")
                            row = Result(name, op, len(latencies), errors, seconds, cpu, latencies, db_cpu)
                            results.append(row)
                            sent[id(server)][op] += len(latencies)
                            shown = f"  {row.db_cpu_us:6.0f} PostgreSQL-CPU us/req" if pg_cpu is not None else ""
                            print(f"  {name:20} {op:16} {row.rps:9,.0f} req/s  p50 {row.percentile(0.50):7.2f} ms"
                                  f"  p99 {row.percentile(0.99):7.2f} ms  {row.cpu_us:7.0f} server-CPU us/req{shown}"
                                  f"  errors {errors}", flush=True)
            if args.with_backup:
                print(f"  backups completed during the loaded runs: {len(backups)}, "
                      f"seconds each: {', '.join(f'{b:.1f}' for b in backups) or 'none finished'}")
            for server, key_id, _ in setups:
                if isinstance(server, EnvelopeServer):
                    for op in OPERATIONS:
                        audited = server.audited(key_id, op) - before[id(server)][op]
                        made = sent[id(server)][op]
                        print(f"  audit: {op} {audited} events for {made} measured requests "
                              f"{'(complete)' if audited == made else '(MISMATCH)'}")
                        failed |= audited != made
        finally:
            for server in servers:
                server.stop()
            if drop is not None:
                drop()
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")

    print(f"{'server':20} {'operation':16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>10} "
          f"{'PG us/req':>9} {'errors':>7}")
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for name in dict.fromkeys(r.server for r in results):
        for op in OPERATIONS:
            rows = [r for r in results if r.server == name and r.operation == op]
            if not rows:
                continue
            best = sorted(rows, key=lambda r: r.rps)[len(rows) // 2]  # the median round
            entry = {"rps": best.rps, "p50_ms": best.percentile(0.50), "p99_ms": best.percentile(0.99),
                     "cpu_us": statistics.median(r.cpu_us for r in rows),
                     "pg_cpu_us": statistics.median(r.db_cpu_us for r in rows), "errors": sum(r.errors for r in rows)}
            summary.setdefault(name, {})[op] = entry
            failed |= entry["errors"] > 0
            print(f"{name:20} {op:16} {entry['rps']:9,.0f} {entry['p50_ms']:8.2f} {entry['p99_ms']:8.2f} "
                  f"{entry['cpu_us']:10.0f} {entry['pg_cpu_us']:9.0f} {entry['errors']:7.0f}")
    if "sqlite x1" in summary:
        print()
        for op in OPERATIONS:
            base = summary["sqlite x1"][op]
            for name in ("postgres x1", "postgres x2"):
                row = summary[name][op]
                print(f"ratio {name} / sqlite x1, {op}: throughput {row['rps'] / base['rps']:.2f}x, "
                      f"p99 {row['p99_ms']:.1f} ms; CPU per request: servers {row['cpu_us']:.0f} us + "
                      f"PostgreSQL {row['pg_cpu_us']:.0f} us (SQLite instance: {base['cpu_us']:.0f} us)")
    elif args.with_backup and len(summary) == 2:
        print()
        for op in OPERATIONS:
            quiet, busy = summary["envelope kms serve"][op], summary["envelope kms serve + backup"][op]
            print(f"backup running / unloaded, {op}: p99 {busy['p99_ms'] / quiet['p99_ms']:.2f}x, "
                  f"p50 {busy['p50_ms'] / quiet['p50_ms']:.2f}x, throughput {busy['rps'] / quiet['rps']:.2f}x")
    elif len(summary) == 2:
        print()
        for op in OPERATIONS:
            ours, theirs = summary["envelope kms serve"][op], summary["moto server"][op]
            print(f"ratio envelope / moto, {op}: throughput {ours['rps'] / theirs['rps']:.2f}x, "
                  f"requests per server-CPU-second {theirs['cpu_us'] / ours['cpu_us']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"concurrency": args.concurrency, "seconds": args.seconds,
                                               "rounds": args.rounds, "results": summary}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
