"""Send stored deliveries on to the customer's own handler: all at once (``replay``) or each as
it is committed (``Forwarder``, behind ``WebhookReceiver(forward_to=...)``).

Either way the handler gets exactly what Impilo sent: the stored body bytes (so the same event
id), ``Content-Type: application/json``, and the ``Impilo-Webhook-Secret`` header only when a
secret is given. Redirects are not followed. Every attempt is recorded in the log
(``log.attempts()``, kind ``replay`` or ``forward``) with the handler's status, the latency and
the reason it failed; a handler's failure is a row, never an exception. Only this machine is a
target unless ``allow_external=True``: an event log holds patient data.

``post_body`` is the one way the package POSTs a webhook body (the sandbox's dispatcher uses it
too), so an attempt's outcome reads the same everywhere: ``HTTP 503``, ``connection refused``,
``timeout: no answer within 10 s`` (docs/api-decisions.md#delivery-failure).
"""

from __future__ import annotations

import logging
import math
import queue
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pandas as pd
import requests
import urllib3

from .._constants import DEFAULT_TIMEOUT, WEBHOOK_SECRET_HEADER
from .._time import utc_iso
from .._version import __version__
from ..errors import ConfigurationError, FieldError, ValidationError, register_secret
from ..models import HEADER_SAFE_RULE, header_safe
from ..transport import is_loopback_host, never_reached_server, origin

if TYPE_CHECKING:
    from .log import EventLog

__all__ = [
    "FORWARDED_BY_HEADER",
    "FORWARD_DRAIN_S",
    "FORWARD_QUEUE_SIZE",
    "REPLAY_COLUMNS",
    "Forwarder",
    "PostOutcome",
    "is_loopback_url",
    "post_body",
    "replay",
    "target_problem",
]

logger = logging.getLogger("impilo_nb.forward")

#: The frame ``replay`` returns, one row per event asked for.
REPLAY_COLUMNS = ["event_id", "status_code", "latency_ms", "error"]

#: Runs at least this long show a progress bar (unless ``progress=`` says otherwise).
PROGRESS_MIN_EVENTS = 100

#: Bytes of a handler's answer read (the rest is dropped): the status is what counts.
MAX_ANSWER_BYTES = 64 * 1024

#: Deliveries waiting for the forwarding thread. Bodies are a few kB (at most the receiver's
#: 1 MiB limit each), so a burst of this many waits for a slow handler in bounded memory.
FORWARD_QUEUE_SIZE = 1000

#: Seconds ``Forwarder.stop()`` lets the handler take what is queued; the rest is recorded as
#: skipped, never dropped silently.
FORWARD_DRAIN_S = 10.0

#: The header each forward carries with its forwarder's own random token, so a receiver that
#: is handed its own forward (``forward_to`` naming it by another spelling: ``localhost``, a
#: percent-encoded path) refuses it instead of storing and forwarding it again for ever.
FORWARDED_BY_HEADER = "Impilo-Nb-Forwarded-By"

#: What ``replay`` reports for an event id the log does not hold.
UNKNOWN_EVENT = "unknown event id: not in this event log; nothing was sent"

#: What a forward that never happened is recorded with.
QUEUE_FULL = "skipped: the forward queue was full ({size} waiting); the handler is slower than deliveries arrive"
STOPPED = "skipped: the receiver stopped before forwarding it"

USER_AGENT = f"impilo-nb/{__version__}"


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` names this machine by a loopback IP or ``localhost`` (no DNS lookup)."""
    found = origin(url)  # parsed as requests would connect; None for an ambiguous URL
    return found is not None and is_loopback_host(found[1])


def target_problem(url: Any, *, allow_external: bool) -> str | None:
    """What is wrong with ``url`` as a handler to send deliveries to, or None if it will do."""
    if not isinstance(url, str) or not url.strip():
        return f"must be the handler's URL as text, such as 'http://127.0.0.1:8000/webhooks', got {url!r}."
    found = origin(url)
    if found is None or found[0] not in ("http", "https") or not found[1]:
        return f"{url!r} is not an http:// or https:// URL with a host that parsers agree on."
    if "@" in urlsplit(url).netloc:
        return "must not carry credentials (user:password@): the log records every URL it sends to. Give it without them."
    if not allow_external and not is_loopback_host(found[1]):
        return (
            f"{url!r} is not on this machine. Events hold patient data, so they go only to a loopback"
            " address (127.0.0.1, localhost) unless you pass allow_external=True."
        )
    return None


@dataclass(frozen=True)
class PostOutcome:
    """One attempt: the handler's status (None without an answer), how long it took (0 when
    nothing was sent), and why it failed (None for a 2xx)."""

    status_code: int | None
    latency_ms: float
    error: str | None


def post_body(
    session: requests.Session,
    url: str,
    body: bytes,
    *,
    secret: str | None,
    timeout: float,
    user_agent: str = USER_AGENT,
    extra_headers: Mapping[str, str] | None = None,
) -> PostOutcome:
    """POST ``body`` as it is to ``url``; a 2xx succeeds, anything else is a failure with its reason."""
    headers = {"Content-Type": "application/json", "User-Agent": user_agent, **(extra_headers or {})}
    if secret:
        headers[WEBHOOK_SECRET_HEADER] = secret
    started = time.perf_counter()
    try:
        response = session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True)
    except requests.exceptions.Timeout:
        return PostOutcome(None, _ms_since(started), f"timeout: no answer within {timeout:g} s")
    except requests.exceptions.ConnectionError as exc:
        reason = "connection refused" if never_reached_server(exc) else f"connection error: {type(exc).__name__}"
        return PostOutcome(None, _ms_since(started), reason)
    except requests.exceptions.RequestException as exc:
        return PostOutcome(None, _ms_since(started), f"request error: {type(exc).__name__}")
    latency = _ms_since(started)
    _discard_answer(response, deadline=time.monotonic() + timeout)
    status = response.status_code
    return PostOutcome(status, latency, None if 200 <= status < 300 else f"HTTP {status}")


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _discard_answer(response: requests.Response, *, deadline: float) -> None:
    """Read a small, prompt answer to its end (so the connection is reused), then close it.

    ``read1`` takes what one receive gives, so a handler that trickles its answer a byte at a
    time holds the sender until ``deadline`` at most, not for ``MAX_ANSWER_BYTES`` receives.
    """
    read = 0
    try:
        while read <= MAX_ANSWER_BYTES and time.monotonic() < deadline:
            chunk = response.raw.read1(8192, decode_content=False)
            if not chunk:
                break
            read += len(chunk)
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError):
        pass  # the status already came; a body cut short changes nothing
    finally:
        response.close()


def _checked_secret(secret: Any, where: str) -> str | None:
    """``secret`` once it is known to fit in a header, registered so no error text shows it."""
    if secret is None:
        return None
    if not header_safe(secret):
        raise ValidationError(where, [FieldError("secret", f"The webhook secret: {HEADER_SAFE_RULE}")])
    register_secret(secret)
    return str(secret)


def _checked_timeout(timeout: Any, where: str) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        message = f"Must be a positive number of seconds to wait for the handler's answer, got {timeout!r}."
        raise ValidationError(where, [FieldError("timeout", message)])
    return float(timeout)


def _checked_event_ids(event_ids: Any) -> list[int] | None:
    """``event_ids`` as a list of distinct ints in the order given, or None for every event."""
    if event_ids is None:
        return None
    if isinstance(event_ids, (str, bytes)) or not isinstance(event_ids, Iterable):
        message = f"Must be a list of event ids (such as log.frame()['event_id']), or None for every event; got {event_ids!r}."
        raise ValidationError("replay", [FieldError("event_ids", message)])
    ids: dict[int, None] = {}
    for position, value in enumerate(list(event_ids)):
        if isinstance(value, bool) or not hasattr(value, "__index__"):
            message = f"Item {position} is {value!r}; every event id is a whole number (the log's event_id column)."
            raise ValidationError("replay", [FieldError("event_ids", message)])
        ids[int(value)] = None
    return list(ids)


def replay(
    log: EventLog,
    url: str,
    *,
    event_ids: Iterable[int] | None = None,
    secret: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    allow_external: bool = False,
    session: requests.Session | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Resend stored events, exactly as received, to the customer's own handler at ``url``.

    One POST per event, one at a time, in arrival order: every event (``event_ids=None``) or
    those listed (each once). Each attempt is recorded in the log (kind ``replay``). Nothing the
    handler does raises: a refused connection, a timeout, a 5xx or a redirect (not followed)
    is a row with its ``error``, and so is an id the log does not hold (nothing is sent for it).

    Args:
        url: the handler; on this machine unless ``allow_external=True``.
        secret: sent as ``Impilo-Webhook-Secret`` when given (the handler checks it as it would
            Impilo's); no header otherwise.
        timeout: seconds to wait for each answer.
        session: a ``requests.Session`` to send with (default: a new one, closed afterwards).
        progress: show a progress bar; default only for runs of ``PROGRESS_MIN_EVENTS`` or more.

    Returns:
        A DataFrame ``event_id, status_code, latency_ms, error``: the sent events in arrival
        order, then the unknown ids.

    Raises:
        ValidationError: ``url``, ``timeout``, ``event_ids`` or ``secret`` cannot be used
            (nothing was sent).
    """
    problem = target_problem(url, allow_external=allow_external)
    if problem:
        raise ValidationError("replay", [FieldError("url", problem)])
    timeout = _checked_timeout(timeout, "replay")
    wanted = _checked_event_ids(event_ids)
    secret = _checked_secret(secret, "replay")
    rows: list[tuple[int, int | None, float | None, str | None]] = []
    sender = session if session is not None else requests.Session()
    try:
        with _progress_bar(len(log) if wanted is None else len(wanted), progress) as advance:
            for event_id, body in log.bodies(wanted):  # read lazily: bodies need not all fit in memory
                outcome = post_body(sender, url, bytes(body), secret=secret, timeout=timeout)
                _record(log, event_id, "replay", url, outcome)
                rows.append((event_id, outcome.status_code, outcome.latency_ms, outcome.error))
                advance()
    finally:
        if session is None:
            sender.close()
    sent = {row[0] for row in rows}
    rows += [(event_id, None, None, UNKNOWN_EVENT) for event_id in wanted or [] if event_id not in sent]
    return _replay_frame(rows)


@contextmanager
def _progress_bar(total: int, progress: bool | None) -> Iterator[Any]:
    from tqdm.auto import tqdm

    enabled = total >= PROGRESS_MIN_EVENTS if progress is None else bool(progress)
    with tqdm(total=total, desc="replaying", unit="event", disable=not enabled) as bar:
        yield lambda: bar.update(1)


def _replay_frame(rows: list[tuple[int, int | None, float | None, str | None]]) -> pd.DataFrame:
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
    return pd.DataFrame(
        {
            "event_id": pd.array(columns[0], dtype="Int64"),
            "status_code": pd.array(columns[1], dtype="Int64"),
            "latency_ms": pd.array(columns[2], dtype="Float64"),
            "error": pd.array(columns[3], dtype="object"),
        },
        columns=REPLAY_COLUMNS,
    )


def _record(log: EventLog, event_id: int, kind: str, target: str, outcome: PostOutcome) -> None:
    log.record_attempt(
        event_id=event_id,
        kind=kind,
        target=target,
        attempted_at=utc_iso(),
        status_code=outcome.status_code,
        latency_ms=outcome.latency_ms,
        error=outcome.error,
    )


class Forwarder:
    """Sends each committed delivery on to the customer's handler, from one background thread.

    ``submit`` never blocks and never raises: the receiver's answer to Impilo must not depend
    on the handler. A delivery that cannot be queued (the queue is full, or the forwarder is
    stopped) is recorded as a forward attempt with the reason, never dropped silently.
    ``stop()`` gives the handler up to ``drain_s`` seconds to take what is queued and records
    the rest as skipped.

    Args:
        log: where every forward attempt is recorded (kind ``forward``).
        url: the handler; on this machine unless ``allow_external=True``.
        secret: sent as ``Impilo-Webhook-Secret`` (the receiver passes its own).
        timeout: seconds to wait for each answer.
        queue_size: deliveries that may wait for the handler (``FORWARD_QUEUE_SIZE``).
        drain_s: seconds ``stop()`` waits for the queue to empty (``FORWARD_DRAIN_S``).
    """

    def __init__(
        self,
        log: EventLog,
        url: str,
        *,
        secret: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        queue_size: int = FORWARD_QUEUE_SIZE,
        drain_s: float = FORWARD_DRAIN_S,
        allow_external: bool = False,
    ) -> None:
        problem = target_problem(url, allow_external=allow_external)
        if problem:
            raise ConfigurationError(f"forward_to: {problem}")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ConfigurationError(f"The forward queue size must be a whole number >= 1, got {queue_size!r}.")
        if isinstance(drain_s, bool) or not isinstance(drain_s, (int, float)) or not drain_s >= 0:
            raise ConfigurationError(f"drain_s must be a number of seconds >= 0, got {drain_s!r}.")
        try:
            self.timeout = _checked_timeout(timeout, "Forwarder")
            self._secret = _checked_secret(secret, "Forwarder")
        except ValidationError as exc:
            raise ConfigurationError(str(exc)) from None
        self.log, self.url, self.drain_s = log, url, float(drain_s)
        #: Sent in ``FORWARDED_BY_HEADER`` with each forward; not a secret, only this forwarder's name.
        self.token = secrets.token_hex(16)
        self._queue: queue.Queue[tuple[int, bytes]] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()  # makes "accepting? then queue" one step against stop()
        self._accepting = False
        self._deadline: float | None = None  # set by stop(): queued deliveries after it are skipped
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the forwarding thread (again, after a stop)."""
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            self._accepting, self._deadline = True, None
        self._thread = threading.Thread(target=self._work, name="impilo-forwarder", daemon=True)
        self._thread.start()

    def submit(self, event_id: int, body: bytes) -> None:
        """Queue a committed delivery for the handler (or record why it will not be sent)."""
        try:
            with self._lock:
                if self._accepting:
                    self._queue.put_nowait((event_id, body))
                    return
            self._skip(event_id, STOPPED)
        except queue.Full:
            self._skip(event_id, QUEUE_FULL.format(size=self._queue.maxsize))

    def pending(self) -> int:
        """Deliveries queued and not yet taken by the thread."""
        return self._queue.qsize()

    def stop(self) -> None:
        """Stop taking deliveries; let the handler have what is queued for up to ``drain_s``
        seconds, and record whatever is left as skipped."""
        with self._lock:
            self._accepting = False
            self._deadline = time.monotonic() + self.drain_s
        if self._thread is not None:
            self._thread.join(self.drain_s + self.timeout + 1)
            self._thread = None
        while True:  # left by a thread stuck past the wait: recorded, never lost
            try:
                event_id, _ = self._queue.get_nowait()
            except queue.Empty:
                return
            self._skip(event_id, STOPPED)

    def _work(self) -> None:
        session = requests.Session()  # this thread's own: requests.Session is not documented thread-safe
        try:
            while True:
                try:
                    event_id, body = self._queue.get(timeout=0.05)
                except queue.Empty:
                    if not self._accepting:
                        return
                    continue
                if self._deadline is not None and time.monotonic() > self._deadline:
                    self._skip(event_id, STOPPED)
                else:
                    self._send(session, event_id, body)
        finally:
            session.close()

    def _send(self, session: requests.Session, event_id: int, body: bytes) -> None:
        try:
            marked = {FORWARDED_BY_HEADER: self.token}
            outcome = post_body(session, self.url, body, secret=self._secret, timeout=self.timeout, extra_headers=marked)
            _record(self.log, event_id, "forward", self.url, outcome)
        except Exception:  # the thread must outlive any one delivery, or later ones wait for ever
            logger.exception("forwarding event %s failed unexpectedly; the forwarder goes on", event_id)

    def _skip(self, event_id: int, reason: str) -> None:
        try:
            _record(self.log, event_id, "forward", self.url, PostOutcome(None, 0.0, reason))
        except Exception:
            logger.exception("could not record that event %s was not forwarded (%s)", event_id, reason)
