"""Webhook throughput and latency, measured in one run against a naive baseline.

1. Receiver ingest: 10,000 POSTs from 8 keep-alive client threads to a receiver running as its
   own process (the CLI), with a secret. Compared with the receiver an analyst would write
   first (http.server + a SQLite connection and commit per request, default settings), and with
   impilo_nb's receiver at synchronous=NORMAL; then with the event log on PostgreSQL, one
   receiver and two (the clients alternate between them), on a server with PostgreSQL's
   durable defaults (fsync on: each 2xx follows a flushed commit, as SQLite's FULL). After each
   run every acknowledged event is counted in the database: acknowledged == stored, or the run fails.
2. Sandbox-driven: 2,000 patients created through the API of a sandbox process, each firing a
   patient.created webhook to the receiver process. Latency runs from the API call's start to
   the moment a reader of the log (a SQLite poll every 2 ms, what frame() reads) sees the row.

Usage: python bench/webhooks.py [--posts 10000] [--threads 8] [--events 2000] [--pg-url postgresql://...]
Without --pg-url, a PostgreSQL server is started for the run from Debian's binaries (tests/pg.py);
with none installed, the PostgreSQL rows are left out. In a --pg-url database, each run uses a
schema of its own (impilo_bench_<n>, dropped afterwards); nothing else there is touched.
Traffic goes to 127.0.0.1 only. Figures vary by machine; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for tests/pg.py

SECRET = "bench-secret"
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_process(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    process = subprocess.Popen(
        [PYTHON, "-m", "impilo_nb", *args], stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    if "http://" not in process.stdout.readline():  # its first line names the URL it serves
        raise SystemExit(f"impilo_nb {args[0]} did not start")
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(15)


def count_rows(db: Path, table: str = "events") -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def blast(url: str | list[str], posts: int, threads: int, headers: dict[str, str]) -> tuple[float, int]:
    """POST ``posts`` distinct events from ``threads`` keep-alive sessions, thread i to the i-th
    of ``url`` (round robin, when several receivers share a log); (seconds, acknowledged)."""
    urls = [url] if isinstance(url, str) else url
    acknowledged = [0] * threads
    per_thread = posts // threads

    def run(index: int) -> None:
        session = requests.Session()
        for n in range(index * per_thread, (index + 1) * per_thread):
            body = json.dumps({"id": n + 1, "type": "patient.updated", "payload": {"id": n, "firstName": "Bench"}})
            response = session.post(urls[index % len(urls)], data=body, headers=headers, timeout=30)
            acknowledged[index] += 200 <= response.status_code < 300

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started, sum(acknowledged)


# -- the naive baseline ------------------------------------------------------------------------

NAIVE = """
import json, sqlite3, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
db_path, port, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sqlite3.connect(db_path).execute("CREATE TABLE IF NOT EXISTS events (id INTEGER, type TEXT, body TEXT)")
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as fair to the clients as the real receiver
    def log_message(self, *args): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Impilo-Webhook-Secret") != secret:
            self.send_response(401); self.send_header("Content-Length", "0"); self.end_headers(); return
        event = json.loads(body)
        conn = sqlite3.connect(db_path, timeout=30)
        conn.execute("INSERT INTO events VALUES (?, ?, ?)", (event["id"], event["type"], body))
        conn.commit(); conn.close()
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
print("serving", flush=True)
server.serve_forever()
"""


def postgres_ingest(posts: int, threads: int, headers: dict[str, str], pg_url: str | None) -> dict[str, tuple[float, int, int]]:
    """The receiver with its log on PostgreSQL: one receiver process, then two sharing the log."""
    import psycopg

    from tests import pg

    server = None
    if pg_url is None:
        if pg.bin_dir() is None:
            print(f"   (PostgreSQL rows left out: {pg.INSTALL_HINT})")
            return {}
        server = pg.PostgresServer(durable=True).start()
    results = {}
    try:
        for count in (1, 2):
            if server is not None:
                url = server.database()
            else:  # an empty schema of its own in the given database, first on the search path
                schema = f"impilo_bench_{count}"
                with psycopg.connect(pg_url, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
                url = f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}"
            ports = [free_port() for _ in range(count)]
            receivers = [start_process(["receiver", "--db", url, "--port", str(port)], env={"IMPILO_WEBHOOK_SECRET": SECRET})
                         for port in ports]
            seconds, acked = blast([f"http://127.0.0.1:{port}/webhooks/impilo" for port in ports], posts, threads, headers)
            for receiver in receivers:
                stop(receiver)
            with psycopg.connect(url, autocommit=True) as conn:
                (stored,) = conn.execute("SELECT count(*) FROM events").fetchone()
                if server is None:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
            results[f"impilo_nb receiver{'s' * (count > 1)} x{count}, PostgreSQL (one log)"] = (seconds, acked, stored)
    finally:
        if server is not None:
            server.remove()
    return results


def ingest(posts: int, threads: int, workdir: Path, pg_url: str | None = None) -> None:
    headers = {"Impilo-Webhook-Secret": SECRET, "Content-Type": "application/json"}
    results = {}

    db = workdir / "naive.db"
    port = free_port()
    naive = subprocess.Popen([PYTHON, "-c", NAIVE, str(db), str(port), SECRET], stdout=subprocess.PIPE, text=True)
    if naive.stdout.readline().strip() != "serving":
        raise SystemExit("the naive baseline server did not start")
    seconds, acked = blast(f"http://127.0.0.1:{port}/", posts, threads, headers)
    stop(naive)
    results["naive (http.server, connect+commit per request)"] = (seconds, acked, count_rows(db))

    for mode in ("FULL", "NORMAL"):
        db = workdir / f"receiver-{mode}.db"
        port = free_port()
        receiver = start_process(
            ["receiver", "--db", str(db), "--port", str(port), "--synchronous", mode], env={"IMPILO_WEBHOOK_SECRET": SECRET}
        )
        seconds, acked = blast(f"http://127.0.0.1:{port}/webhooks/impilo", posts, threads, headers)
        stop(receiver)
        results[f"impilo_nb receiver, synchronous={mode}"] = (seconds, acked, count_rows(db))
    results.update(postgres_ingest(posts, threads, headers, pg_url))

    print(f"\n1. Receiver ingest: {posts:,} POSTs from {threads} keep-alive threads (receiver in its own process)")
    print(f"   {'receiver':<52} {'events/s':>9} {'acked':>7} {'stored':>7} {'vs naive':>9}")
    naive_rate = None
    for name, (seconds, acked, stored) in results.items():
        rate = acked / seconds
        naive_rate = naive_rate or rate
        print(f"   {name:<52} {rate:>9,.0f} {acked:>7,} {stored:>7,} {rate / naive_rate:>8.2f}x")
        if stored != acked:
            raise SystemExit(f"FAILED: {name} acknowledged {acked} events but stored {stored}")
    print("   Chosen: synchronous=FULL (WAL). Each 2xx follows an fsync'd commit, so an acknowledged event")
    print("   survives a power loss, not only a crash; compare its rate with NORMAL above for what that costs.")
    print("   PostgreSQL: a team's log, several receivers for availability; the server here is on the same machine.")


def sandbox_driven(events: int, workdir: Path) -> None:
    import impilo_nb as nb

    db = workdir / "driven.db"
    receiver_port, sandbox_port = free_port(), free_port()
    receiver = start_process(["receiver", "--db", str(db), "--port", str(receiver_port)])
    sandbox = start_process(["sandbox", "--port", str(sandbox_port), "--db", str(workdir / "sandbox.db")])
    client = nb.ImpiloClient(base_url=f"http://127.0.0.1:{sandbox_port}", api_key="sandbox-key")
    client.webhooks.create(type="patient.created", url=f"http://127.0.0.1:{receiver_port}/webhooks/impilo")

    seen: dict[int, float] = {}
    done = threading.Event()

    def watch() -> None:  # what a reader of the log sees, and when
        conn = sqlite3.connect(db)
        last = 0
        while not done.is_set() or len(seen) < events:
            for seq, resource_id in conn.execute("SELECT seq, resource_id FROM events WHERE seq > ? ORDER BY seq", (last,)):
                seen.setdefault(resource_id, time.perf_counter())
                last = seq
            if len(seen) >= events:
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    called: dict[int, float] = {}
    started = time.perf_counter()
    for n in range(events):
        before = time.perf_counter()
        patient = client.patients.create({"firstName": "Bench", "lastName": f"P{n}"})
        called[patient.id] = before
    done.set()
    watcher.join(120)
    elapsed = max(seen.values()) - started
    latencies = sorted((seen[pid] - called[pid]) * 1000 for pid in called if pid in seen)
    frame_rows = len(nb.EventLog(db).frame())
    stop(sandbox)
    stop(receiver)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    print(f"\n2. Sandbox-driven: {events:,} patients created through the API, one patient.created webhook each")
    print(
        f"   rate {len(latencies) / elapsed:,.0f} events/s (API call start to last row visible); "
        f"{len(latencies):,} of {events:,} seen; frame() has {frame_rows:,} rows"
    )
    print(
        f"   latency API call -> row visible to a reader: p50 {pct(50):.1f} ms, p99 {pct(99):.1f} ms, max {latencies[-1]:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--pg-url", help="a PostgreSQL database for the PostgreSQL rows (its event-log tables are dropped)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ingest(args.posts, args.threads, Path(tmp), args.pg_url)
        sandbox_driven(args.events, Path(tmp))


if __name__ == "__main__":
    main()
