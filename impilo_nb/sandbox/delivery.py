"""Webhook delivery: the envelope, the secret header, the retry schedule, loopback only.

An API request only records the event and its pending deliveries (in SQLite) and wakes the
dispatcher, so delivery never blocks the request. Worker threads POST each delivery when due.
Failure is a non-2xx answer (redirects are not followed), a connection error, or no answer
within ``DELIVERY_TIMEOUT``; failed deliveries are retried after 15, 30 and 60 minutes (4
attempts in all), each delay multiplied by ``time_scale``. Pending deliveries survive a restart.

``Dispatcher.retry_now()`` makes every scheduled retry due at once ("resend"): demos and tests
use it with a large ``time_scale`` so that no retry fires by itself and every retry happens
exactly when they say, never depending on how fast the machine is.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from typing import Any

import requests

from .._constants import WEBHOOK_SECRET_HEADER
from .._version import __version__
from ..transport import is_loopback_host, never_reached_server, origin
from .store import SandboxStore

__all__ = ["DELIVERY_TIMEOUT", "RETRY_DELAYS", "Dispatcher", "is_loopback_url"]

log = logging.getLogger("impilo_nb.sandbox")

#: Seconds after a failed attempt before the next one (docs/api-decisions.md#retry-schedule): 15, 30, 60 minutes.
RETRY_DELAYS = (15 * 60, 30 * 60, 60 * 60)

#: Seconds to wait for a receiver's answer before counting the attempt as failed.
DELIVERY_TIMEOUT = 10.0

#: Concurrent deliveries. Enough to keep a local receiver busy; a slow receiver holds one each.
DELIVERY_WORKERS = 4

BLOCKED = "blocked: not a loopback address"


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` names this machine by a loopback IP or ``localhost`` (no DNS lookup)."""
    found = origin(url)  # parsed as requests would connect; None for an ambiguous URL
    return found is not None and is_loopback_host(found[1])


class Dispatcher:
    """Delivers pending webhook deliveries from ``store`` with a pool of worker threads."""

    def __init__(
        self,
        store: SandboxStore,
        *,
        time_scale: float = 1.0,
        allow_external: bool = False,
        workers: int = DELIVERY_WORKERS,
        timeout: float = DELIVERY_TIMEOUT,
    ) -> None:
        self.store = store
        self.time_scale = time_scale
        self.allow_external = allow_external
        self.timeout = timeout
        self._workers = workers
        self._due: list[tuple[float, int]] = []  # heap of (due time, delivery id) waiting for a worker
        self._queued: set[int] = set()  # the ids in _due
        self._running: set[int] = set()  # ids whose attempt is under way
        self._expedite: set[int] = set()  # running ids that retry_now() asked to retry at once if they fail
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._local = threading.local()

    def start(self) -> None:
        """Resume what an earlier run left pending, and start the workers."""
        if self._threads:
            return
        self._stopping = False
        for delivery_id, due in self.store.pending_deliveries():
            self.schedule(delivery_id, due or time.time())
        for n in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"impilo-webhooks-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop after in-flight attempts; what is still pending stays in the store."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(self.timeout + 1)
        self._threads = []
        with self._cond:
            self._due.clear()
            self._queued.clear()
            self._expedite.clear()

    def publish(self, type_: str, payload: Any) -> int:
        """Record an event for every webhook of its type and queue the deliveries; returns the event id."""
        now = time.time()
        event_id, delivery_ids = self.store.create_event(type_, payload, now)
        for delivery_id in delivery_ids:
            self.schedule(delivery_id, now)
        return event_id

    def schedule(self, delivery_id: int, due: float) -> None:
        """Queue an attempt of ``delivery_id`` at ``due`` (epoch seconds); no-op if already queued."""
        with self._cond:
            if delivery_id in self._queued:
                return
            if delivery_id in self._expedite:  # retry_now() came while this attempt was under way
                self._expedite.discard(delivery_id)
                due = min(due, time.time())
            self._queued.add(delivery_id)
            heapq.heappush(self._due, (due, delivery_id))
            self._cond.notify()

    def pending_now(self) -> int:
        """Deliveries due now or in flight; retries scheduled for later do not count."""
        now = time.time()
        with self._cond:
            return sum(1 for due, _ in self._due if due <= now) + len(self._running)

    def retry_now(self) -> int:
        """Make every scheduled retry due now instead of at its (scaled) 15, 30 or 60 minutes.

        Why: a person who has fixed a receiver (restarted it, corrected its secret) wants the
        waiting events now, like "resend" in Svix or Stripe; and tests and demos, with a large
        ``time_scale`` so that no retry fires by itself, decide exactly when retries happen
        instead of racing a timer. An attempt under way at the call is retried at once too if
        it fails, so a failure already visible in the delivery log is never missed.

        Each retry is one of the usual four attempts; deliveries that were delivered or gave up
        are not touched. The delivery log's ``nextAttemptTimestamp`` keeps the old time until
        the attempt is recorded. Returns how many deliveries this affected: scheduled retries
        brought forward plus attempts under way.
        """
        now = time.time()
        with self._cond:
            moved = sum(1 for due, _ in self._due if due > now)
            self._due = [(min(due, now), delivery_id) for due, delivery_id in self._due]
            heapq.heapify(self._due)
            self._expedite = set(self._running)
            self._cond.notify_all()
            return moved + len(self._running)

    def _work(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    now = time.time()
                    if self._due and self._due[0][0] <= now:
                        _, delivery_id = heapq.heappop(self._due)
                        self._queued.discard(delivery_id)
                        self._running.add(delivery_id)
                        break
                    self._cond.wait(self._due[0][0] - now if self._due else None)
            try:
                self._attempt(delivery_id)
            except Exception:  # a worker must outlive any one delivery, or later events wait forever
                log.exception("delivery %s failed unexpectedly; the worker goes on", delivery_id)
            finally:
                with self._cond:
                    self._running.discard(delivery_id)
                    self._expedite.discard(delivery_id)

    def _attempt(self, delivery_id: int) -> None:
        delivery = self.store.get_delivery(delivery_id)
        if delivery is None or delivery["state"] != "pending":
            return
        attempt = delivery["attempts"] + 1
        status, error = self._post(delivery["url"], delivery["body"])
        if error is None:
            self.store.record_attempt(
                delivery_id, attempt=attempt, status=status, error=None, state="delivered", next_attempt_at=None
            )
            return
        if attempt <= len(RETRY_DELAYS):
            delay = RETRY_DELAYS[attempt - 1] * self.time_scale
            self.store.record_attempt(
                delivery_id, attempt=attempt, status=status, error=error, state="pending", next_attempt_at=time.time() + delay
            )
            # Counted from after the attempt is recorded: never early against the log's timestamps.
            self.schedule(delivery_id, time.time() + delay)
        else:
            self.store.record_attempt(
                delivery_id, attempt=attempt, status=status, error=error, state="failed", next_attempt_at=None
            )

    def _post(self, url: str, body: str) -> tuple[int | None, str | None]:
        """Send one attempt; (status, None) on success, else (status or None, reason)."""
        if not self.allow_external and not is_loopback_url(url):
            return None, BLOCKED
        headers = {"Content-Type": "application/json", "User-Agent": f"impilo-sandbox-webhooks/{__version__}"}
        secret = self.store.get_secret()  # read per attempt: a rotated secret applies to retries
        if secret:
            headers[WEBHOOK_SECRET_HEADER] = secret
        try:
            response = self._session().post(url, data=body.encode(), headers=headers, timeout=self.timeout, allow_redirects=False)
        except requests.exceptions.Timeout:
            return None, f"timeout: no answer within {self.timeout:g} s"
        except requests.exceptions.ConnectionError as exc:
            return None, "connection refused" if never_reached_server(exc) else f"connection error: {type(exc).__name__}"
        except requests.exceptions.RequestException as exc:
            return None, f"request error: {type(exc).__name__}"
        response.close()
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}"

    def _session(self) -> requests.Session:
        # One keep-alive session per worker thread: requests.Session is not documented thread-safe.
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session
