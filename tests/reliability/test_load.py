"""A steady stream into the receiver (its own process): every event stored, memory flat."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field

import requests

from tests.reliability.conftest import CliServer, rss_mib, size

SECRET = "load-secret"
SENDERS = 4

#: Seconds a sender waits for an answer before sending the event again. The receiver counts a
#: repeat (delivery_count) instead of storing it twice, so a slow machine means more repeats,
#: reported in the figures, never a failure.
REQUEST_TIMEOUT = 10

#: Seconds a sender keeps repeating one unanswered event. Only stops a hung receiver's test.
HANG_GUARD = 60.0


def post_until_answered(session: requests.Session, url: str, body: str, headers: dict, resent: list[str]) -> int | None:
    """POST ``body`` until the receiver answers; returns the status, or None if it never did.

    A timeout or a dropped connection is noted in ``resent`` and the same event sent again, as
    a webhook sender would; other request errors propagate.
    """
    give_up_at = time.monotonic() + HANG_GUARD
    while True:
        try:
            return session.post(url, data=body, headers=headers, timeout=REQUEST_TIMEOUT).status_code
        except (requests.Timeout, requests.ConnectionError) as exc:
            resent.append(type(exc).__name__)
            if time.monotonic() > give_up_at:
                return None
            time.sleep(0.1)


@dataclass
class Outcome:
    """What the senders saw, filled by all of them at once (list.append is atomic)."""

    errors: list[str] = field(default_factory=list)  # answers other than 200, request errors other than no answer
    acknowledged: list[int] = field(default_factory=list)  # ids of the events answered 200
    resent: list[str] = field(default_factory=list)  # sends repeated after a timeout or a dropped connection
    unanswered: list[int] = field(default_factory=list)  # ids never answered within HANG_GUARD (a hung receiver)


def send(url: str, headers: dict, first_id: int, due_times: list[float], outcome: Outcome) -> None:
    """Send events ``first_id``, ``first_id + 1``... each at its due time (monotonic clock)."""
    session = requests.Session()
    for n, due in enumerate(due_times):
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        event = {"id": first_id + n, "type": "reading.weight", "payload": {"id": n, "weight": 70.5}}
        try:
            status = post_until_answered(session, url, json.dumps(event), headers, outcome.resent)
        except requests.RequestException as exc:
            outcome.errors.append(type(exc).__name__)
            continue
        if status == 200:
            outcome.acknowledged.append(event["id"])
        elif status is None:
            outcome.unanswered.append(event["id"])
        else:
            outcome.errors.append(f"HTTP {status}")


def test_receiver_holds_a_steady_load_with_flat_memory(tmp_path, figures):
    rate, seconds = size("load_rate"), size("load_seconds")
    db = tmp_path / "log.db"
    receiver = CliServer("receiver", "--db", str(db), env={"IMPILO_WEBHOOK_SECRET": SECRET}).start()
    url = f"{receiver.base}/webhooks/impilo"
    headers = {"Impilo-Webhook-Secret": SECRET, "Content-Type": "application/json"}
    outcome = Outcome()
    try:
        warm = requests.Session()
        for n in range(200):  # warm up, so the start figure is the steady state, not the empty process
            warm.post(url, data=json.dumps({"id": -1 - n, "type": "reading.weight", "payload": {"id": n}}), headers=headers)
        rss_start = rss_mib(receiver.process.pid)
        total = rate * seconds
        per_sender = total // SENDERS
        started = time.monotonic()
        interval = SENDERS / rate
        due = [[started + (n + sender / SENDERS) * interval for n in range(per_sender)] for sender in range(SENDERS)]
        threads = [
            threading.Thread(target=send, args=(url, headers, sender * per_sender + 1, due[sender], outcome))
            for sender in range(SENDERS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        rss_end = rss_mib(receiver.process.pid)
    finally:
        receiver.stop()
    with sqlite3.connect(db) as conn:
        stored_ids = {row[0] for row in conn.execute("SELECT event_id FROM events WHERE event_id > 0")}
    stored = len(stored_ids)
    figures["load held"] = (
        f"{stored / elapsed:,.0f} events/s for {elapsed:.0f} s (target {rate}/s for {seconds} s), {len(outcome.errors)} errors, "
        f"{len(outcome.resent)} sends repeated after no answer within {REQUEST_TIMEOUT} s"
    )
    figures["receiver RSS start / end"] = f"{rss_start:.0f} / {rss_end:.0f} MiB"
    assert outcome.errors == []
    assert set(outcome.acknowledged) <= stored_ids, "an event answered 200 is missing from the log"
    assert outcome.unanswered == [], f"the receiver hung: {len(outcome.unanswered)} events unanswered for {HANG_GUARD:g} s"
    assert stored == per_sender * SENDERS
    assert rss_end <= rss_start * 1.25 + 10, "memory grew under a steady load"
