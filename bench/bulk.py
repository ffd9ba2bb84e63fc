"""Bulk import throughput against the loop an analyst would write first, in one run.

The sandbox runs as its own process (the CLI), fresh for each first import. For N patients:

- naive: per row, ``requests.get`` the patient by external identifier, then ``requests.post``
  (new) or ``requests.put`` (existing); no session, no threads, two round trips per row;
- impilo_nb: ``bulk.upsert_patients`` (batched lookups, no request for unchanged rows,
  8 threads over one pooled session).

Each is measured for a first import and a re-run of the same data, with no added latency
and with 50 ms per request (``--latency-ms`` on the sandbox). Goals: >= 2x with no latency,
>= 6x with 50 ms. Usage: python bench/bulk.py [--rows 2000]. Loopback only.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import requests

import impilo_nb as nb

KEY = "sandbox-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SandboxProcess:
    def __init__(self, db: Path, latency_ms: float) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "impilo_nb", "sandbox", "--port", str(self.port), "--db", str(db), "--reset",
             "--latency-ms", str(latency_ms)], stdout=subprocess.PIPE, text=True)
        if "http://" not in self.process.stdout.readline():
            raise SystemExit("the sandbox did not start")
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(15)


def patients(rows: int) -> pd.DataFrame:
    records = [{
        "externalIdentifier": f"bench-{n:06d}", "firstName": f"First{n}", "lastName": f"Last{n % 97}",
        "dateOfBirth": f"19{50 + n % 50}-0{1 + n % 9}-1{n % 9}", "email": f"p{n}@example.org",
        "phoneNumber": f"+1 555 {n:07d}", "sex": "female" if n % 2 else "male",
        "address.lineOne": f"{n} Elm Road", "address.city": "Springfield", "address.state": "IL",
        "address.zipCode": "62701", "address.country": "USA",
    } for n in range(rows)]
    return pd.DataFrame(records)


def to_body(row: dict) -> dict:
    body: dict = {}
    for column, value in row.items():
        nb.models.set_path(body, column, value)
    return body


def naive(url: str, frame: pd.DataFrame) -> float:
    """What an analyst writes first: two plain requests per row, one after the other."""
    headers = {"Impilo-API-Key": KEY}
    started = time.perf_counter()
    for row in frame.to_dict("records"):
        found = requests.get(f"{url}/api/v3/patient", params={"externalIdentifier": row["externalIdentifier"]},
                             headers=headers, timeout=30).json()["content"]
        if found:
            requests.put(f"{url}/api/v3/patient/{found[0]['id']}", json=to_body(row), headers=headers, timeout=30)
        else:
            requests.post(f"{url}/api/v3/patient", json=to_body(row), headers=headers, timeout=30)
    return time.perf_counter() - started


def ours(url: str, frame: pd.DataFrame) -> tuple[float, pd.Series]:
    client = nb.ImpiloClient(base_url=url, api_key=KEY)
    started = time.perf_counter()
    results = nb.bulk.upsert_patients(client, frame, progress=False)
    return time.perf_counter() - started, results["status"].value_counts()


def scenario(rows: int, latency_ms: float, workdir: Path) -> None:
    frame = patients(rows)
    timings = {}
    sandbox = SandboxProcess(workdir / "naive.db", latency_ms)
    timings["naive", "first"] = naive(sandbox.url, frame)
    timings["naive", "re-run"] = naive(sandbox.url, frame)
    sandbox.stop()
    sandbox = SandboxProcess(workdir / "ours.db", latency_ms)
    timings["ours", "first"], first_status = ours(sandbox.url, frame)
    timings["ours", "re-run"], rerun_status = ours(sandbox.url, frame)
    stored = nb.ImpiloClient(base_url=sandbox.url, api_key=KEY).patients.page(size=1).total
    sandbox.stop()
    assert first_status.get("created") == rows and rerun_status.get("unchanged") == rows and stored == rows

    print(f"\n{rows:,} patients, {latency_ms:g} ms added per request")
    print(f"   {'':<10} {'naive rows/s':>13} {'upsert rows/s':>14} {'ratio':>7}")
    for phase in ("first", "re-run"):
        slow, fast = rows / timings["naive", phase], rows / timings["ours", phase]
        print(f"   {phase:<10} {slow:>13,.0f} {fast:>14,.0f} {fast / slow:>6.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000)
    parser.add_argument("--latencies", default="0,50", help="comma-separated ms per request (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for latency in (float(x) for x in args.latencies.split(",")):
            scenario(args.rows, latency, Path(tmp))
    print("\nGoals: >= 2x with no added latency, >= 6x with 50 ms (first import).")


if __name__ == "__main__":
    main()
