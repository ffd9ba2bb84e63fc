"""A team's event log: two receivers (separate processes) on one PostgreSQL, faults mid-burst.

(a) One receiver is SIGKILLed while the sandbox delivers every event to both: nothing either
acknowledged is lost, the other keeps the log complete meanwhile, and there is one row per event.
(b) PostgreSQL itself stops mid-burst: the receivers answer 503 while it is down, carry on by
themselves once it is back (no restart), and lose nothing they acknowledged.
"""

from __future__ import annotations

import sqlite3
import threading

import psycopg
import pytest

import impilo_nb as nb
from tests.reliability.conftest import CliServer, size
from tests.reliability.test_faults import HANG_GUARD, HELD, wait_until

#: Every event is delivered twice (once to each receiver), so the full size takes longer than
#: the suite's 120 s per test on a slow machine; this only stops a hung test.
pytestmark = pytest.mark.timeout(600)


def sandbox_query(db, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return conn.execute(sql).fetchall()


def log_query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def acknowledged(sandbox_db) -> set[int]:
    return {row[0] for row in sandbox_query(sandbox_db, "SELECT event_id FROM deliveries WHERE state = 'delivered'")}


def delivered(sandbox_db) -> int:
    return sandbox_query(sandbox_db, "SELECT count(*) FROM deliveries WHERE state = 'delivered'")[0][0]


def started(receiver: CliServer) -> CliServer:
    """``receiver`` started, its output read as it comes: a receiver logs each 503, and a full
    pipe would stall it."""
    receiver.start()
    threading.Thread(target=receiver.process.stdout.read, daemon=True).start()
    return receiver


def burst(sandbox: nb.Sandbox, events: int) -> None:
    for n in range(events):
        sandbox.emit("reading.weight", {"id": n, "weight": 70 + n % 30})


def test_one_of_two_receivers_killed_mid_burst_loses_nothing(tmp_path, postgres_url, figures):
    events = size("team_burst_events")
    sandbox_db = tmp_path / "sandbox.db"
    receivers = [started(CliServer("receiver", "--db", postgres_url)) for _ in range(2)]
    try:
        with nb.Sandbox(db_path=sandbox_db, time_scale=HELD) as sandbox:
            client = nb.ImpiloClient(sandbox.url, sandbox.api_key, timeout=HANG_GUARD)
            for receiver in receivers:  # every event goes to both: each receiver is the other's spare
                client.webhooks.create(type="reading.weight", url=f"{receiver.base}/webhooks/impilo")
            burst(sandbox, events)
            assert wait_until(lambda: delivered(sandbox_db) >= events // 5)
            receivers[1].kill()
            assert sandbox.wait_for_deliveries(timeout=HANG_GUARD)  # first attempts all made; the dead one's wait
            acked_at_kill = acknowledged(sandbox_db)
            stored_at_kill = {row[0] for row in log_query(postgres_url, "SELECT event_id FROM events")}

            started(receivers[1])
            receivers[1].wait_ready(timeout=HANG_GUARD)
            sandbox.retry_now()
            assert sandbox.wait_for_deliveries(timeout=HANG_GUARD)
            assert delivered(sandbox_db) == 2 * events
            total, distinct, least = log_query(postgres_url, "SELECT count(*), count(DISTINCT event_id), min(delivery_count)"
                                               " FROM events")[0]
    finally:
        for receiver in receivers:
            receiver.stop()
    figures["team: 2 receivers on PostgreSQL, one SIGKILLed"] = (
        f"{events} events to both; {len(acked_at_kill)} acknowledged (by either) before the killed one was back"
    )
    figures["team: events in the log with one receiver down"] = f"{len(stored_at_kill)} of {events}"
    figures["team: acknowledged events lost"] = len(acked_at_kill - stored_at_kill) + (events - distinct)
    figures["team: duplicate rows"] = total - distinct
    assert acked_at_kill <= stored_at_kill
    assert len(stored_at_kill) == events  # the survivor stored every event while the other was down
    assert (total, distinct) == (events, events) and least >= 2  # each event counted from both receivers


def test_postgresql_restarted_mid_burst_receivers_answer_503_then_recover(tmp_path, postgres_server, postgres_url, figures):
    events = size("team_burst_events")
    sandbox_db = tmp_path / "sandbox.db"
    receivers = [started(CliServer("receiver", "--db", postgres_url)) for _ in range(2)]
    try:
        with nb.Sandbox(db_path=sandbox_db, time_scale=HELD) as sandbox:
            client = nb.ImpiloClient(sandbox.url, sandbox.api_key, timeout=HANG_GUARD)
            for receiver in receivers:
                client.webhooks.create(type="reading.weight", url=f"{receiver.base}/webhooks/impilo")
            burst(sandbox, events)
            assert wait_until(lambda: delivered(sandbox_db) >= events // 5)
            postgres_server.stop()
            assert sandbox.wait_for_deliveries(timeout=HANG_GUARD)  # every first attempt made, failures waiting
            acked_before = acknowledged(sandbox_db)
            answers = dict(sandbox_query(sandbox_db, "SELECT last_response_status, count(*) FROM deliveries"
                                         " WHERE state = 'pending' GROUP BY last_response_status"))
            postgres_server.start()
            stored_after_restart = {row[0] for row in log_query(postgres_url, "SELECT event_id FROM events")}

            sandbox.retry_now()  # the receivers were never restarted
            assert sandbox.wait_for_deliveries(timeout=HANG_GUARD)
            assert delivered(sandbox_db) == 2 * events
            total, distinct = log_query(postgres_url, "SELECT count(*), count(DISTINCT event_id) FROM events")[0]
    finally:
        if not postgres_server.running():
            postgres_server.start()
        for receiver in receivers:
            receiver.stop()
    figures["team: PostgreSQL stopped mid-burst"] = (
        f"{events} events to 2 receivers; answers while it was down: {answers}; all delivered after it came back"
    )
    figures["team: acknowledged events lost (database restart)"] = len(acked_before - stored_after_restart)
    figures["team: duplicate rows (database restart)"] = total - distinct
    assert answers and set(answers) == {503}  # 5xx while down, so Impilo retries
    assert acked_before <= stored_after_restart
    assert (total, distinct) == (events, events)
