"""A steady stream into the receiver (its own process): every event stored, memory flat."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import requests

from tests.reliability.conftest import CliServer, rss_mib, size

SECRET = "load-secret"
SENDERS = 4


def test_receiver_holds_a_steady_load_with_flat_memory(tmp_path, figures):
    rate, seconds = size("load_rate"), size("load_seconds")
    db = tmp_path / "log.db"
    receiver = CliServer("receiver", "--db", str(db), env={"IMPILO_WEBHOOK_SECRET": SECRET}).start()
    url = f"{receiver.base}/webhooks/impilo"
    headers = {"Impilo-Webhook-Secret": SECRET, "Content-Type": "application/json"}
    errors: list[str] = []
    try:
        warm = requests.Session()
        for n in range(200):  # warm up, so the start figure is the steady state, not the empty process
            warm.post(url, data=json.dumps({"id": -1 - n, "type": "reading.weight", "payload": {"id": n}}), headers=headers)
        rss_start = rss_mib(receiver.process.pid)
        total = rate * seconds
        per_sender = total // SENDERS
        started = time.monotonic()

        def send(sender: int) -> None:
            session = requests.Session()
            interval = SENDERS / rate
            for n in range(per_sender):
                due = started + n * interval + sender * interval / SENDERS
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                event = {"id": sender * per_sender + n + 1, "type": "reading.weight", "payload": {"id": n, "weight": 70.5}}
                try:
                    response = session.post(url, data=json.dumps(event), headers=headers, timeout=10)
                    if response.status_code != 200:
                        errors.append(f"HTTP {response.status_code}")
                except requests.RequestException as exc:
                    errors.append(type(exc).__name__)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(SENDERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        rss_end = rss_mib(receiver.process.pid)
    finally:
        receiver.stop()
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT count(*) FROM events WHERE event_id > 0").fetchone()[0]
    figures["load held"] = (
        f"{stored / elapsed:,.0f} events/s for {elapsed:.0f} s (target {rate}/s for {seconds} s), {len(errors)} errors"
    )
    figures["receiver RSS start / end"] = f"{rss_start:.0f} / {rss_end:.0f} MiB"
    assert errors == [] and stored == per_sender * SENDERS
    assert rss_end <= rss_start * 1.25 + 10, "memory grew under a steady load"
