"""Paging: what a late page costs against the first, and ``frame()`` against requests + pandas.

A sandbox process (the CLI) serves a database of synthetic patients; this process is the client.

1. Page cost. For each sort, pages 1..N of size 250 walked in order, as ``list()`` and
   ``frame()`` walk them: the median time of page N over the median time of page 1 (goal ~1,
   keyset paging). Beside it, page N asked for out of the blue, which the sandbox reads with
   OFFSET as it read every page before (its ratio grows with N).
2. ``client.patients.frame()`` against the baseline an analyst would write: a
   ``requests.Session`` fetching the same pages and ``pd.json_normalize`` over all records.
   Alternating runs; the ratio is baseline time / frame() time (goal >= 1). Measured over HTTP
   from the sandbox, whose time both share, and again on the same page bytes recorded and
   answered through the client's ``session=`` seam (``impilo_nb.testing.mock_session``), where
   only the client's own work counts.

Usage: python bench/paging.py [--patients 10000] [--size 250] [--repeat 7]
Traffic goes to 127.0.0.1 only. Figures vary by machine; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import requests

import impilo_nb as nb
from impilo_nb.sandbox.store import SandboxStore
from impilo_nb.testing import Reply, mock_session

API_KEY = "bench-key"
FIRST = ["Ana", "bruno", "Chen", "dana", "Emeka", "fatima", "Göran", "hiro", "Ilse", "jamal"]
SORTS = [("patientId", False), ("firstName", False), ("lastName", True)]


def fill(db: Path, patients: int) -> None:
    """``patients`` synthetic patients, some with a site, in a new sandbox database."""
    rng = random.Random(3)
    store = SandboxStore(str(db))
    for n in range(patients):
        record = {
            "externalIdentifier": f"bench-{n:07d}",
            "firstName": rng.choice(FIRST),
            "lastName": f"Last{rng.randint(0, 999):03d}",
            "dateOfBirth": f"{rng.randint(1930, 2010)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "sex": rng.choice(["female", "male", "other", "unknown"]),
            "email": f"person{n}@example.org",
            "phoneNumber": f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
            "enrolled": rng.random() < 0.7,
            "archived": rng.random() < 0.1,
            "address": {"lineOne": f"{n} Elm Road", "city": "Springfield", "state": "IL", "zipCode": "62701", "country": "USA"},
            "site": {"id": rng.randint(1, 9), "name": "Clinic", "active": True} if n % 3 == 0 else None,
        }
        store.create_patient(nb.Patient.model_validate(record).to_api())
    store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sandbox(db: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "impilo_nb", "sandbox", "--db", str(db), "--port", str(port), "--api-key", API_KEY],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    if "http://" not in process.stdout.readline():  # its first line names the URL it serves
        raise SystemExit("the sandbox did not start")
    return process, f"http://127.0.0.1:{port}"


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def page_costs(url: str, pages: int, size: int, repeat: int) -> list[tuple[str, float, float, float]]:
    """Per sort: median page-1 time, median walked page-N time, median out-of-the-blue page-N time."""
    session = requests.Session()
    session.headers["Impilo-API-Key"] = API_KEY
    rows = []
    for sort, descending in SORTS:
        params = {"size": size, "sort": sort, "sortDescending": str(descending).lower()}

        def get(number: int, params: dict[str, Any] = params) -> float:
            seconds, response = timed(lambda: session.get(url + "/api/v3/patient", params={**params, "page": number}))
            response.raise_for_status()
            return seconds

        # Out of the blue first: page N - 1 was never served, so each request reads by OFFSET.
        blue = statistics.median(get(pages) for _ in range(repeat))
        firsts, lasts = [], []
        for _ in range(repeat):
            firsts.append(get(1))
            for number in range(2, pages):
                get(number)
            lasts.append(get(pages))
        label = f"{sort}{' desc' if descending else ''}"
        rows.append((label, statistics.median(firsts), statistics.median(lasts), blue))
    return rows


def baseline_frame(url: str, size: int, session: requests.Session | None = None) -> pd.DataFrame:
    """What an analyst writes first: requests over the pages, then pd.json_normalize."""
    session = session or requests.Session()
    session.headers["Impilo-API-Key"] = API_KEY
    records: list[dict[str, Any]] = []
    number = 1
    while True:
        page = session.get(url + "/api/v3/patient", params={"page": number, "size": size}).json()
        records.extend(page["content"])
        if page["last"] or not page["content"]:
            return pd.json_normalize(records)
        number += 1


def frame_costs(
    url: str, size: int, repeat: int, session: requests.Session | None = None
) -> tuple[float, float, int]:
    """Median seconds of frame() and of the baseline, alternating, and the row count they agree on.

    With ``session``, both send their requests through it (the client's ``session=`` seam)."""
    client = nb.ImpiloClient(base_url=url, api_key=API_KEY, session=session)
    ours, theirs = [], []
    frame = baseline = None
    for _ in range(repeat):
        seconds, frame = timed(lambda: client.patients.frame(size=size))
        ours.append(seconds)
        seconds, baseline = timed(lambda: baseline_frame(url, size, session))
        theirs.append(seconds)
    assert frame is not None and baseline is not None
    assert frame["id"].tolist() == baseline["id"].tolist(), "frame() and the baseline read different patients"
    return statistics.median(ours), statistics.median(theirs), len(frame)


def recorded(url: str, size: int) -> requests.Session:
    """A session that answers each page request with the bytes the sandbox sent for it, recorded
    once: what both sides then do is all client work, with no server and no socket in the time."""
    session = requests.Session()
    session.headers["Impilo-API-Key"] = API_KEY
    bodies: dict[str, bytes] = {}
    number = 1
    while True:
        response = session.get(url + "/api/v3/patient", params={"page": number, "size": size})
        bodies[str(number)] = response.content
        if response.json()["last"]:
            break
        number += 1

    def answer(request: requests.PreparedRequest) -> Reply:
        page = parse_qs(urlsplit(request.url or "").query)["page"][0]
        return Reply(200, body=bodies[page], headers={"Content-Type": "application/json"})

    return mock_session(answer)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    pages = -(-args.patients // args.size)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "sandbox.db"
        fill(db, args.patients)
        process, url = start_sandbox(db)
        try:
            costs = page_costs(url, pages, args.size, args.repeat)
            ours, theirs, rows = frame_costs(url, args.size, args.repeat)
            local_ours, local_theirs, _ = frame_costs(url, args.size, args.repeat, recorded(url, args.size))
        finally:
            process.terminate()
            process.wait(15)
    print(f"{args.patients:,} patients, pages of {args.size} (page N = {pages}), median of {args.repeat} runs\n")
    print(f"{'sort':<16}{'page 1 ms':>11}{'page N ms':>11}{'N / 1':>8}{'page N by OFFSET ms':>22}{'N / 1':>8}")
    for label, first, last, blue in costs:
        print(f"{label:<16}{first * 1e3:>11.1f}{last * 1e3:>11.1f}{last / first:>8.2f}{blue * 1e3:>22.1f}{blue / first:>8.2f}")
    print("goal: walked page N / page 1 ~ 1 (keyset); by OFFSET it grows with N\n")
    print(f"{'all ' + format(rows, ',') + ' patients, seconds':<34}{'sandbox':>10}{'recorded pages':>16}")
    print(f"{'client.patients.frame()':<34}{ours:>10.3f}{local_ours:>16.3f}")
    print(f"{'requests + pd.json_normalize':<34}{theirs:>10.3f}{local_theirs:>16.3f}")
    print(f"{'ratio baseline / frame()':<34}{theirs / ours:>9.2f}x{local_theirs / local_ours:>15.2f}x   (goal >= 1)")
    print("sandbox: over HTTP from the sandbox process; recorded pages: the same bytes, no server (client work only)")


if __name__ == "__main__":
    main()
