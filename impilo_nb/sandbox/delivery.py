"""Webhook delivery: the envelope, the secret header, the retry schedule, loopback only.

An API request only records the event and its pending deliveries (in SQLite) and wakes the
dispatcher, so delivery never blocks the request. Worker threads POST each delivery when due.
Failure is a non-2xx answer (redirects are not followed), a connection error, or no answer
within ``DELIVERY_TIMEOUT``; failed deliveries are retried after 15, 30 and 60 minutes (4
attempts in all), each delay multiplied by ``time_scale``. Pending deliveries survive a restart.

``Dispatcher.retry_now()`` makes every scheduled retry due at once ("resend"): demos and tests
use it with a large ``time_scale`` so that no retry fires by itself and every retry happens
exactly when they say, never depending on how fast the machine is.

With ``chaos`` (``sandbox/chaos.py``) first attempts are delayed, some held back until a later
event's attempt is done, and some delivered events sent a second time; each send is an attempt
in the delivery log (docs/api-decisions.md#chaos). Waits that chaos adds count as pending in
``pending_now()``; retries scheduled for later still do not.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from typing import Any

import requests

from .._constants import WEBHOOK_RETRY_DELAYS
from .._version import __version__
from ..eventlog.replay import is_loopback_url, post_body
from .chaos import REORDER_MAX_HOLD_S, Chaos, ChaosPlan, Planner
from .store import SandboxStore

__all__ = ["DELIVERY_TIMEOUT", "RETRY_DELAYS", "Dispatcher", "is_loopback_url"]

log = logging.getLogger("impilo_nb.sandbox")

#: Seconds after a failed attempt before the next one, stated once in _constants.
RETRY_DELAYS = WEBHOOK_RETRY_DELAYS

#: Seconds to wait for a receiver's answer before counting the attempt as failed.
DELIVERY_TIMEOUT = 10.0

#: Concurrent deliveries. Enough to keep a local receiver busy; a slow receiver holds one each.
DELIVERY_WORKERS = 4

#: Longest a worker sleeps before it looks at the queue again. A due time further off (a huge
#: ``time_scale`` or chaos delay) would exceed what the OS can wait for and kill the worker.
MAX_WAIT_S = 3600.0

BLOCKED = "blocked: not a loopback address"

USER_AGENT = f"impilo-sandbox-webhooks/{__version__}"


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
        chaos: Chaos | None = None,
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
        self.chaos = chaos
        self._planner = Planner(chaos) if chaos is not None else None
        self._chaotic: set[int] = set()  # ids in _due waiting because of chaos (pending, unlike a later retry)
        self._held: dict[int, float] = {}  # reorder: held id -> when it may go once a later delivery is done
        self._duplicates: dict[int, float] = {}  # id -> seconds after its success to send it again
        self._resend: set[int] = set()  # ids in _due whose next send is the duplicate
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
            for pending in (self._due, self._queued, self._expedite, self._chaotic, self._held, self._duplicates, self._resend):
                pending.clear()

    def publish(self, type_: str, payload: Any) -> int:
        """Record an event for every webhook of its type and queue the deliveries; returns the event id."""
        now = time.time()
        event_id, delivery_ids = self.store.create_event(type_, payload, now)
        for delivery_id in delivery_ids:
            if self._planner is None:
                self.schedule(delivery_id, now)
            else:
                self._schedule_chaos(delivery_id, now, self._planner.plan())
        return event_id

    def _schedule_chaos(self, delivery_id: int, now: float, plan: ChaosPlan) -> None:
        """Queue a first attempt as ``plan`` says: late, perhaps held, perhaps to be sent twice."""
        due = now + plan.delay_s
        with self._cond:
            if plan.duplicate_after_s is not None:
                self._duplicates[delivery_id] = plan.duplicate_after_s
            if plan.hold:
                self._held[delivery_id] = due
                due += REORDER_MAX_HOLD_S  # goes then if no later delivery releases it first
            self._chaotic.add(delivery_id)
        self.schedule(delivery_id, due)

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
        """Deliveries due now, in flight, or waiting only because of chaos; retries scheduled
        for later do not count."""
        now = time.time()
        with self._cond:
            return sum(1 for due, d in self._due if due <= now or d in self._chaotic) + len(self._running)

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
            retries = [(due, d) for due, d in self._due if due > now and d not in self._chaotic]  # chaos waits stay
            moved = len(retries)
            self._bring_forward({d: now for _, d in retries})
            self._expedite = set(self._running)
            return moved + len(self._running)

    def _bring_forward(self, new_due: dict[int, float]) -> None:
        """Make the queued ids in ``new_due`` due at the time given (never later); holds ``_cond``."""
        self._due = [(min(due, new_due.get(d, due)), d) for due, d in self._due]
        heapq.heapify(self._due)
        self._cond.notify_all()

    def _release_held(self, after: int) -> None:
        """Reorder: a delivery newer than the held ones has had its attempt; they may go now."""
        with self._cond:
            released = {d: max(at, time.time()) for d, at in self._held.items() if d < after}
            if released:
                for delivery_id in released:
                    del self._held[delivery_id]
                self._bring_forward(released)

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
                        self._chaotic.discard(delivery_id)
                        self._held.pop(delivery_id, None)  # held past REORDER_MAX_HOLD_S: it goes anyway
                        self._running.add(delivery_id)
                        break
                    self._cond.wait(min(self._due[0][0] - now, MAX_WAIT_S) if self._due else None)
            try:
                self._attempt(delivery_id)
            except Exception:  # a worker must outlive any one delivery, or later events wait forever
                log.exception("delivery %s failed unexpectedly; the worker goes on", delivery_id)
            finally:
                if self._held:
                    self._release_held(delivery_id)
                with self._cond:
                    self._running.discard(delivery_id)
                    self._expedite.discard(delivery_id)

    def _attempt(self, delivery_id: int) -> None:
        with self._cond:
            duplicate = delivery_id in self._resend
            self._resend.discard(delivery_id)
        delivery = self.store.get_delivery(delivery_id)
        if delivery is None or delivery["state"] != ("delivered" if duplicate else "pending"):
            return
        attempt = delivery["attempts"] + 1
        status, error = self._post(delivery["url"], delivery["body"])
        if duplicate:  # an extra send of a delivered event: its outcome is logged, nothing is retried
            self.store.record_attempt(
                delivery_id, attempt=attempt, status=status, error=error, state="delivered", next_attempt_at=None
            )
            return
        if error is None:
            self.store.record_attempt(
                delivery_id, attempt=attempt, status=status, error=None, state="delivered", next_attempt_at=None
            )
            self._schedule_duplicate(delivery_id)
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

    def _schedule_duplicate(self, delivery_id: int) -> None:
        """Chaos: queue the second send of a just-delivered event, if its plan has one."""
        with self._cond:
            after = self._duplicates.pop(delivery_id, None)
            if after is None:
                return
            self._resend.add(delivery_id)
            self._chaotic.add(delivery_id)
        self.schedule(delivery_id, time.time() + after)

    def _post(self, url: str, body: str) -> tuple[int | None, str | None]:
        """Send one attempt; (status, None) on success, else (status or None, reason)."""
        if not self.allow_external and not is_loopback_url(url):
            return None, BLOCKED
        secret = self.store.get_secret()  # read per attempt: a rotated secret applies to retries
        outcome = post_body(self._session(), url, body.encode(), secret=secret, timeout=self.timeout, user_agent=USER_AGENT)
        return outcome.status_code, outcome.error

    def _session(self) -> requests.Session:
        # One keep-alive session per worker thread: requests.Session is not documented thread-safe.
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session
