"""Processes killed with SIGKILL in the middle of the work: nothing acknowledged is lost, and
re-running finishes the job without duplicates."""

from __future__ import annotations

import sqlite3
import threading
import time

import pandas as pd

import impilo_nb as nb
from tests.reliability.conftest import CliServer, size

#: Seconds before a wait gives up. Only stops a hung test: no outcome here depends on the
#: machine's speed. (pytest's own timeout, 120 s a test, is the last resort.)
HANG_GUARD = 60.0

#: Multiplies the sandbox's retry delays: retries 10 days away, so none fires by itself and the
#: test decides when they happen (``Sandbox.retry_now()``).
HELD = 1000.0


def wait_until(condition, timeout: float = HANG_GUARD, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def query(db, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return conn.execute(sql).fetchall()


def test_receiver_killed_mid_burst_loses_no_acknowledged_event(tmp_path, figures):
    events = size("burst_events")
    log_db, sandbox_db = tmp_path / "log.db", tmp_path / "sandbox.db"
    receiver = CliServer("receiver", "--db", str(log_db)).start()
    try:
        # No retry fires by itself: every retry happens after the receiver is back, on retry_now().
        with nb.Sandbox(db_path=sandbox_db, time_scale=HELD) as sandbox:
            client = nb.ImpiloClient(sandbox.url, sandbox.api_key, timeout=HANG_GUARD)
            client.webhooks.create(type="reading.weight", url=f"{receiver.base}/webhooks/impilo")
            for n in range(events):
                sandbox.emit("reading.weight", {"id": n, "weight": 70 + n % 30})

            def delivered() -> int:
                return query(sandbox_db, "SELECT count(*) FROM deliveries WHERE state = 'delivered'")[0][0]

            assert wait_until(lambda: delivered() >= events // 5)
            receiver.kill()
            # Every first attempt made and recorded (those after the kill fail, and wait for a retry).
            assert sandbox.wait_for_deliveries(timeout=HANG_GUARD)
            acknowledged = {row[0] for row in query(sandbox_db, "SELECT event_id FROM deliveries WHERE state = 'delivered'")}
            stored_at_kill = {row[0] for row in query(log_db, "SELECT event_id FROM events")}
            lost_at_kill = acknowledged - stored_at_kill

            receiver.start()
            receiver.wait_ready(timeout=HANG_GUARD)  # answers /health: back for good
            sandbox.retry_now()
            assert sandbox.wait_for_deliveries(timeout=HANG_GUARD)  # every retry made and recorded
            assert delivered() == events, f"{delivered()} of {events} delivered"
            rows = query(log_db, "SELECT count(*), count(DISTINCT event_id), sum(delivery_count > 1) FROM events")[0]
            failed = query(sandbox_db, "SELECT count(*) FROM deliveries WHERE state = 'failed'")[0][0]
    finally:
        receiver.stop()
    total, distinct, redelivered = rows
    figures["burst, receiver SIGKILLed"] = (
        f"{events} events; {len(acknowledged)} acknowledged before the kill, "
        f"{len(acknowledged) - len(lost_at_kill)} of them in the log at the kill"
    )
    figures["events lost"] = len(lost_at_kill) + (events - distinct)
    figures["duplicates"] = total - distinct
    figures["redelivered after restart (same id, counted)"] = redelivered
    assert lost_at_kill == set()
    assert (total, distinct, failed) == (events, events, 0)


def patients(rows: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "externalIdentifier": [f"kill-{n:05d}" for n in range(rows)],
            "firstName": [f"First{n}" for n in range(rows)],
            "lastName": ["Kill"] * rows,
            "email": [f"k{n}@example.org" for n in range(rows)],
        }
    )


def test_sandbox_killed_mid_import_then_rerun_has_no_duplicates(tmp_path, figures):
    rows = size("bulk_rows")
    db = tmp_path / "sandbox.db"
    sandbox = CliServer("sandbox", "--db", str(db), "--latency-ms", "10").start()
    frame = patients(rows)
    first: dict[str, pd.DataFrame] = {}
    try:
        client = nb.ImpiloClient(sandbox.base, "sandbox-key", max_retries=0, timeout=HANG_GUARD)
        worker = threading.Thread(target=lambda: first.update(result=nb.bulk.upsert_patients(client, frame, progress=False)))
        worker.start()
        assert wait_until(lambda: query(db, "SELECT count(*) FROM patients")[0][0] >= rows // 4, step=0.01)
        sandbox.kill()
        worker.join(HANG_GUARD)
        interrupted = first["result"]["status"].value_counts().to_dict()  # returned, never raised

        sandbox.start()
        second = nb.bulk.upsert_patients(nb.ImpiloClient(sandbox.base, "sandbox-key", timeout=HANG_GUARD), frame, progress=False)
        stored = query(db, "SELECT count(*), count(DISTINCT external_identifier) FROM patients")[0]
    finally:
        sandbox.stop()
    outcome = second["status"].value_counts().to_dict()
    figures["bulk import, sandbox SIGKILLed"] = f"{rows} rows; first run {interrupted}; re-run {outcome}"
    figures["duplicate patients"] = stored[0] - stored[1]
    assert interrupted.get("failed", 0) > 0  # the kill really happened mid-import
    assert set(outcome) <= {"created", "unchanged"} and stored == (rows, rows)
