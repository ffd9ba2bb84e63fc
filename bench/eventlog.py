"""Event-log reads at 10k, 100k and 1M events, against the naive baseline, in one run.

Each size is a fresh log in the project's own schema (``EventLog`` creates it, then one bulk
INSERT in one transaction fills it): patient events with a nested address (created, then
updated, a few retries arriving late), plus device and reading events, spread over 30 days.

Measured, each in a fresh process (so the peak RSS is that measurement's own):

- ``frame()`` against the baseline an analyst would write first, ``pd.read_sql`` of the rows
  and ``pd.json_normalize`` of the parsed payloads: seconds, their ratio (goal >= 6x), and the
  peak memory above the process's size before the call (goal <= 1.5 GB at 1M);
- ``timeline()`` (goal <= 2 s at 1M), ``latest()`` (goal <= 5 s), ``types()`` and ``len()``.

Then the growth of each per 100k events between the two largest sizes.

Usage: python bench/eventlog.py [--sizes 10000,100000,1000000] [--dir DIR]
Figures vary by machine; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

#: What each measurement runs, by name (in a child process, see ``measure``).
MEASUREMENTS = ("frame", "baseline", "timeline", "latest", "types", "len")

#: Sandbox-like event ids: they start high and rise by one per event.
FIRST_EVENT_ID = 2**48

CITIES = [("Springfield", "IL", "62701"), ("Portland", "OR", "97201"), ("Austin", "TX", "73301"), ("Durban", "KZN", "4001")]


def patient(n: int, version: int, rng: random.Random) -> dict:
    city, state, zip_code = CITIES[n % len(CITIES)]
    return {
        "id": n, "externalIdentifier": f"ext-{n:07d}", "firstName": f"First{n}", "lastName": f"Last{n % 997}",
        "dateOfBirth": f"19{40 + n % 60}-{1 + n % 12:02d}-{1 + n % 28:02d}", "sex": ("female", "male", "other")[n % 3],
        "email": f"person{n}.v{version}@example.org", "phoneNumber": f"+1 555 {rng.randrange(10**7):07d}",
        "enrolled": version % 2 == 0, "archived": False,
        "address": {"lineOne": f"{n} Elm Road", "lineTwo": None, "lineThree": None, "city": city, "state": state,
                    "zipCode": zip_code, "country": "USA", "note": None},
        "site": None,
    }


def events(count: int, seed: int = 1):
    """``count`` rows for the events table, in arrival order: (event_id, type, resource_id, when, payload)."""
    rng = random.Random(seed)
    patients = max(1, count // 10)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    step = timedelta(days=30) / count
    versions: dict[int, int] = {}
    late: list[tuple] = []
    for n in range(count):
        event_id = FIRST_EVENT_ID + n
        kind = rng.random()
        if kind < 0.85:
            resource = rng.randrange(1, patients + 1)
            versions[resource] = versions.get(resource, -1) + 1
            event_type = "patient.created" if versions[resource] == 0 else "patient.updated"
            payload = patient(resource, versions[resource], rng)
        elif kind < 0.95:
            resource, event_type = rng.randrange(1, 5000), "reading.bloodPressure"
            payload = {"id": resource, "patientId": rng.randrange(1, patients + 1), "systolic": rng.randrange(90, 180),
                       "diastolic": rng.randrange(60, 110), "unit": "mmHg"}
        else:
            resource, event_type = rng.randrange(1, 2000), "device.lowBattery"
            payload = {"id": resource, "serial": f"DEV-{resource:05d}", "batteryPercent": rng.randrange(1, 15)}
        row = (event_id, event_type, resource, payload)
        if rng.random() < 0.01:  # a retry: this event arrives a little later, after newer ones
            late.append(row)
            continue
        yield (*row, start + step * n)
        if late and rng.random() < 0.05:
            yield (*late.pop(0), start + step * n)
    for row in late:
        yield (*row, start + step * count)


def fill(path: Path, count: int) -> None:
    """A log of ``count`` events in the project's schema, written in one transaction, each row
    as ``EventLog.record`` writes it (position, and the payload's flat form)."""
    from impilo_nb import EventLog
    from impilo_nb.eventlog.frames import flat_payload

    EventLog(path).close()  # creates the schema, indexes included
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    headers = json.dumps({"content-type": "application/json", "user-agent": "Impilo-Webhooks/1.0"})
    shapes: dict[str, int] = {}
    rows = []
    for event_id, event_type, resource_id, payload, when in events(count):
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = json.dumps({"id": event_id, "type": event_type, "payload": payload}).encode()
        names, flat = flat_payload(payload)
        if names not in shapes:
            shapes[names] = db.execute("INSERT INTO shapes (names) VALUES (?) RETURNING id", (names,)).fetchone()[0]
        rows.append((event_id, event_type, resource_id, stamp, stamp, "impilo", json.dumps(payload), body, headers,
                     "127.0.0.1", event_id, shapes[names], flat))
        if len(rows) == 50_000:
            _insert(db, rows)
            rows = []
    _insert(db, rows)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()


def _insert(db: sqlite3.Connection, rows: list[tuple]) -> None:
    db.executemany(
        "INSERT INTO events (event_id, type, resource_id, received_at, last_received_at, envelope, payload, body,"
        " headers, remote_addr, position, shape, flat) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def baseline(path: Path):
    """What an analyst would write first: read the rows, parse and normalise the payloads."""
    import pandas as pd

    with sqlite3.connect(path) as db:
        frame = pd.read_sql(
            "SELECT received_at, event_id, type, resource_id, delivery_count, payload FROM events ORDER BY seq", db
        )
    payload = pd.json_normalize(frame.pop("payload").map(json.loads).tolist()).add_prefix("payload.")
    frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True, format="ISO8601")
    return pd.concat([frame, payload], axis=1)


def run_one(what: str, path: Path) -> dict:
    """One measurement in this (fresh) process: seconds and peak memory above the start, MB."""
    from impilo_nb import EventLog

    log = EventLog(path)
    calls = {
        "frame": log.frame, "baseline": lambda: baseline(path), "timeline": log.timeline, "latest": log.latest,
        "types": log.types, "len": lambda: len(log),
    }
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    result = calls[what]()
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    shape = list(result.shape) if hasattr(result, "shape") else result if isinstance(result, int) else len(result)
    return {"seconds": seconds, "peak_mb": peak_kb / 1024, "shape": shape}


def measure(what: str, path: Path) -> dict:
    output = subprocess.run([sys.executable, __file__, "--measure", what, str(path)], capture_output=True, text=True,
                            check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated event counts")
    parser.add_argument("--dir", type=Path, help="keep the logs here (reused when already filled)")
    parser.add_argument("--measure", nargs=2, metavar=("WHAT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(run_one(args.measure[0], Path(args.measure[1]))))
        return
    folder = args.dir or Path(tempfile.mkdtemp(prefix="impilo-bench-eventlog-"))
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, dict]] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        path = folder / f"events-{size}.db"
        if not path.exists():
            started = time.perf_counter()
            fill(path, size)
            print(f"filled {size:,} events in {time.perf_counter() - started:.1f} s ({path.stat().st_size / 2**20:.0f} MB)")
        results[size] = {what: measure(what, path) for what in MEASUREMENTS}
        print_row(size, results[size])
    print_growth(results)


def print_row(size: int, r: dict[str, dict]) -> None:
    if not hasattr(print_row, "header"):
        print_row.header = True
        print(f"{'events':>9} | {'frame s':>8} {'naive s':>8} {'ratio':>6} | {'frame MB':>8} {'naive MB':>8} |"
              f" {'timeline':>8} {'latest':>7} {'types':>6} {'len':>6}")
    ratio = r["baseline"]["seconds"] / r["frame"]["seconds"]
    print(f"{size:>9,} | {r['frame']['seconds']:8.2f} {r['baseline']['seconds']:8.2f} {ratio:5.1f}x |"
          f" {r['frame']['peak_mb']:8.0f} {r['baseline']['peak_mb']:8.0f} | {r['timeline']['seconds']:8.3f}"
          f" {r['latest']['seconds']:7.3f} {r['types']['seconds']:6.3f} {r['len']['seconds']:6.3f}", flush=True)


def print_growth(results: dict[int, dict[str, dict]]) -> None:
    if len(results) < 2:
        return
    small, large = sorted(results)[-2:]
    per = (large - small) / 100_000
    print(f"\ngrowth per 100k events (between {small:,} and {large:,}):")
    for what in MEASUREMENTS:
        seconds = (results[large][what]["seconds"] - results[small][what]["seconds"]) / per
        megabytes = (results[large][what]["peak_mb"] - results[small][what]["peak_mb"]) / per
        print(f"  {what:9} {seconds:+8.3f} s  {megabytes:+8.0f} MB")


if __name__ == "__main__":
    main()
