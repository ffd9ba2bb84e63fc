"""nb.sync.check's comparison against the loop an analyst would write first, in one run.

1. Compare: N patients at Impilo (default 10,000) and an event log of M events about them
   (default 100,000: each patient's successive states, ids rising, some delivered out of order),
   with a share of patients changed after their last event (stale) and some never logged.
   - naive: read every event, keep each patient's newest payload in a dict, then compare each
     patient's flattened record with it, field by field, in a Python loop;
   - impilo_nb: ``log.latest()`` (SQL) then ``sync.compare_patients`` (one merge, one array
     comparison), starting from the same records as a frame (``frames.patient_frame``).
   Both must find the same stale, never-seen and unknown patients, or the run fails. Time is the
   best of ``--repeat`` runs; peak memory is measured in separate runs under tracemalloc.
2. Chaos (``--chaos-updates``, default 500; 0 skips): a sandbox with ``Chaos(duplicate=0.2,
   reorder=True, delay_s=(0, 0.2), seed=1)`` delivers that many updates of 50 patients late, out
   of order and some twice; after they settle ``check`` must find every patient in sync.

Usage: python bench/sync.py [--patients 10000] [--events 100000] [--chaos-updates 500]
Traffic goes to 127.0.0.1 only. Figures vary by machine; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import impilo_nb as nb
from impilo_nb import sync
from impilo_nb.frames import patient_frame
from impilo_nb.models import flatten_record

STALE_SHARE = 0.05
NEVER_SEEN_SHARE = 0.01
UNKNOWN = 50


def record(n: int, version: int) -> dict[str, Any]:
    """Patient ``n`` in its ``version``-th state, in wire form (as a delivery's payload), with every
    field of ``Patient`` (built by hand: validating 100,000 records would dominate the fill)."""
    return {
        "id": n,
        "externalIdentifier": f"ext-{n:06d}",
        "firstName": f"First{n}",
        "lastName": f"Last{n}",
        "dateOfBirth": f"19{50 + n % 50}-0{1 + n % 9}-1{n % 10}",
        "sex": ("female", "male", "other")[n % 3],
        "email": f"person{n}.v{version}@example.org",
        "phoneNumber": f"+1 555 {n % 1000:03d} {version:04d}",
        "enrolled": version % 2 == 0,
        "archived": False,
        "address": {
            "lineOne": f"{n} Elm Road",
            "lineTwo": None,
            "lineThree": None,
            "city": f"City{version % 7}",
            "state": "IL",
            "zipCode": "62701",
            "country": "USA",
            "note": None,
        },
        "site": {"id": 1 + n % 5, "name": f"Site {n % 5}", "active": True, "phoneNumber": None, "address": None},
    }


def fill(path: Path, patients: int, events: int, rng: random.Random) -> tuple[list[dict[str, Any]], set[int], set[int]]:
    """An event log at ``path`` and Impilo's records: (records, stale ids, never-seen ids)."""
    never_seen = set(rng.sample(range(1, patients + 1), int(patients * NEVER_SEEN_SHARE)))
    logged = [n for n in range(1, patients + 1) if n not in never_seen]
    per_patient = max(1, events // len(logged))
    bodies = []
    event_id = 2**48
    for version in range(per_patient):
        for n in logged:
            event_id += 1
            bodies.append(json.dumps({"id": event_id, "type": "patient.updated", "payload": record(n, version)}).encode())
    for k in range(UNKNOWN):
        event_id += 1
        bodies.append(json.dumps({"id": event_id, "type": "patient.updated", "payload": record(10**7 + k, 0)}).encode())
    # Out of order: swap neighbours here and there, as late retries do.
    for i in range(0, len(bodies) - 1, 7):
        bodies[i], bodies[i + 1] = bodies[i + 1], bodies[i]
    with nb.EventLog(path, synchronous="NORMAL") as log:
        for body in bodies:
            log.record_body(body)
    stale = set(rng.sample(logged, int(patients * STALE_SHARE)))
    records = [record(n, per_patient if n in stale else per_patient - 1) for n in range(1, patients + 1)]
    return records, stale, never_seen


def naive(path: Path, records: list[dict[str, Any]]) -> dict[str, set[int]]:
    """What an analyst writes first: newest payload per patient in a dict, then dict comparisons."""
    newest: dict[int, tuple[int, dict[str, Any]]] = {}
    with sqlite3.connect(path) as db:
        for event_id, resource_id, payload in db.execute("SELECT event_id, resource_id, payload FROM events"):
            if resource_id is not None and (resource_id not in newest or event_id > newest[resource_id][0]):
                newest[resource_id] = (event_id, json.loads(payload))
    found: dict[str, set[int]] = {"stale": set(), "never_seen": set(), "unknown": set()}
    at_impilo = set()
    for patient in records:
        at_impilo.add(patient["id"])
        if patient["id"] not in newest:
            found["never_seen"].add(patient["id"])
            continue
        theirs = flatten_record(patient, drop_nulls=True)
        ours = flatten_record(newest[patient["id"]][1], drop_nulls=True)
        if any(theirs.get(k) != ours.get(k) for k in set(theirs) | set(ours) if k != "id"):
            found["stale"].add(patient["id"])
    found["unknown"] = set(newest) - at_impilo
    return found


def ours(path: Path, records: list[dict[str, Any]], steps: dict[str, float] | None = None) -> dict[str, set[int]]:
    """``check``'s patient comparison; ``steps`` collects the seconds of each step when given."""
    steps = {} if steps is None else steps
    with nb.EventLog(path) as log:
        start = time.perf_counter()
        latest = log.latest()
        steps["log.latest()"] = time.perf_counter() - start
        frame = patient_frame(records)  # what client.patients.frame() builds from the pages read
        steps["patient_frame"] = time.perf_counter() - start - steps["log.latest()"]
        patients, _ = sync.compare_patients(frame, latest)
        steps["compare_patients"] = time.perf_counter() - start - steps["log.latest()"] - steps["patient_frame"]
    return {s: set(patients.loc[patients["status"] == s, "resource_id"]) for s in ("stale", "never_seen", "unknown")}


def timed(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_mib(run: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def bench_compare(patients: int, events: int, repeat: int) -> None:
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.db"
        start = time.perf_counter()
        records, stale, never_seen = fill(path, patients, events, rng)
        print(f"filled {events:,} events about {patients:,} patients in {time.perf_counter() - start:.1f} s")
        t_naive, by_naive = timed(lambda: naive(path, records), repeat)
        steps: dict[str, float] = {}
        t_ours, by_ours = timed(lambda: ours(path, records, steps), repeat)
        expected = {"stale": stale, "never_seen": never_seen, "unknown": set(range(10**7, 10**7 + UNKNOWN))}
        if by_naive != expected or by_ours != expected:
            sys.exit("FAIL: the two approaches disagree with what was planted")
        m_naive, m_ours = peak_mib(lambda: naive(path, records)), peak_mib(lambda: ours(path, records))
    print(f"{'':12}{'time (s)':>10}{'peak MiB':>10}")
    print(f"{'naive':12}{t_naive:>10.2f}{m_naive:>10.0f}")
    print(f"{'impilo_nb':12}{t_ours:>10.2f}{m_ours:>10.0f}")
    print(
        f"ratio naive / impilo_nb: {t_naive / t_ours:.1f}x; found {len(stale)} stale, {len(never_seen)} never seen,"
        f" {UNKNOWN} unknown (both approaches agree)"
    )
    print("impilo_nb's steps (last run): " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in steps.items()))


def bench_chaos(updates: int) -> None:
    from impilo_nb.sandbox import Chaos

    chaos = Chaos(duplicate=0.2, reorder=True, delay_s=(0, 0.2), seed=1)
    with (
        tempfile.TemporaryDirectory() as tmp,
        nb.Sandbox(chaos=chaos) as sandbox,
        nb.EventLog(Path(tmp) / "events.db") as log,
        nb.WebhookReceiver(log) as receiver,
    ):
        client = nb.ImpiloClient(base_url=sandbox.url, api_key=sandbox.api_key)
        for type_ in ("patient.created", "patient.updated"):
            client.webhooks.create(type=type_, url=receiver.url)
        ids = [client.patients.create({"firstName": f"P{n}", "lastName": "Chaos"}).id for n in range(50)]
        rng = random.Random(2)
        for n in range(updates):
            client.patients.patch(rng.choice(ids), {"email": f"v{n}@example.org"})
        sandbox.wait_for_deliveries(timeout=600)
        report = sync.check(client, log)
        frame = log.frame()
    duplicates = int((frame["delivery_count"] - 1).sum())
    late = int((frame["event_id"].diff().dropna() < 0).sum())
    print(
        f"chaos: {updates} updates of 50 patients, {duplicates} duplicate deliveries, {late} arrived after a newer"
        f" event; check: {report.verdict} ({report.summary['patients', 'in_sync']} in sync)"
    )
    if not report.in_sync:
        sys.exit("FAIL: under chaos the log's latest state differs from Impilo's")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chaos-updates", type=int, default=500)
    args = parser.parse_args()
    bench_compare(args.patients, args.events, args.repeat)
    if args.chaos_updates:
        bench_chaos(args.chaos_updates)


if __name__ == "__main__":
    main()
