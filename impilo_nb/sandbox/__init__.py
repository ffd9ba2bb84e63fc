"""The embedded, Impilo-compatible sandbox server: offline, on loopback, backed by SQLite."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

from .._constants import DEFAULT_HOST, SANDBOX_API_KEY
from .._time import poll_until
from ..errors import ConfigurationError, FieldError, ValidationError
from ..models import WEBHOOK_TYPES
from ..serving import BackgroundService
from .app import create_app
from .chaos import Chaos
from .delivery import Dispatcher
from .middleware import Fault, FaultQueue
from .store import SandboxStore

__all__ = ["Chaos", "Sandbox"]


class Sandbox(BackgroundService):
    """An Impilo-compatible API server in a background thread of this process.

        with Sandbox() as sandbox:
            client = ImpiloClient(base_url=sandbox.url, api_key=sandbox.api_key)

    Args:
        api_key: the only key it accepts (default ``sandbox-key``).
        db_path: SQLite file to keep data in; default a fresh temporary file, removed on stop.
        time_scale: multiplies webhook retry delays (0.001 turns 15 minutes into 0.9 s). A large
            one (1000) holds every retry until ``retry_now()``, for tests and demos.
        port: 0 picks a free port; ``url`` tells which.
        host: loopback by default, so nothing outside this machine can reach it.
        latency_ms: added to every API request, to make benchmarks and demos realistic.
        allow_external_webhooks: deliver to non-loopback URLs too. Off by default, so tests
            and demos never send patient data off this machine: such deliveries are logged
            as failed with the reason "blocked: not a loopback address".
        documented_only: answer with only the fields the public API docs document (no
            delivery-log extras, no site id), so notebooks can be tested against a server
            that sends nothing more (see ``sandbox/documented.py``).
        chaos: a ``Chaos`` to deliver webhooks late, out of order and some twice, reproducibly
            for its seed, to prove a handler idempotent and order-safe (``sandbox/chaos.py``).
            None (the default) delivers each event once, as soon as it can.
    """

    def __init__(
        self,
        api_key: str = SANDBOX_API_KEY,
        *,
        db_path: str | os.PathLike[str] | None = None,
        time_scale: float = 1.0,
        port: int = 0,
        host: str = DEFAULT_HOST,
        latency_ms: float = 0.0,
        allow_external_webhooks: bool = False,
        documented_only: bool = False,
        chaos: Chaos | None = None,
    ) -> None:
        _check_settings(api_key, time_scale, latency_ms, port)
        if chaos is not None and not isinstance(chaos, Chaos):
            example = "e.g. chaos=nb.Chaos(duplicate=0.2, seed=1)"
            raise ConfigurationError(f"chaos must be a Chaos(...) or None, got {chaos!r}; {example}.")
        self.chaos = chaos
        self._api_key = api_key
        self.time_scale = float(time_scale)
        self.latency_ms = float(latency_ms)
        self.documented_only = bool(documented_only)
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if db_path is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="impilo-sandbox-")
            db_path = os.path.join(self._tempdir.name, "sandbox.db")
        else:
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        self.db_path = str(db_path)
        self._faults = FaultQueue()
        self.store = SandboxStore(self.db_path)
        self.dispatcher = Dispatcher(
            self.store, time_scale=self.time_scale, allow_external=allow_external_webhooks, chaos=chaos
        )
        self._app = create_app(
            self.store,
            self.dispatcher,
            api_key=api_key,
            latency_ms=latency_ms,
            faults=self._faults,
            documented_only=documented_only,
        )
        super().__init__(self._app, host=host, port=port, name="Impilo sandbox")

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def url(self) -> str:
        """The base URL to give ``ImpiloClient`` (``http://127.0.0.1:PORT``)."""
        return super().url

    def start(self) -> Sandbox:
        """Start serving and delivering webhooks; returns self so ``Sandbox().start()`` reads naturally."""
        super().start()
        self.dispatcher.start()
        return self

    def stop(self) -> None:
        """Stop serving and, for a temporary database, delete it."""
        super().stop()
        self.dispatcher.stop()
        if self._tempdir is not None:
            self.store.close()
            self._tempdir.cleanup()
            self._tempdir = None

    def inject_fault(
        self,
        status: int | None = 503,
        *,
        times: int = 1,
        delay: float = 0.0,
        retry_after: float | None = None,
        method: str | None = None,
    ) -> None:
        """Make the next ``times`` API requests (of ``method``, if given) misbehave: wait
        ``delay`` s, then answer ``status`` (with ``Retry-After`` if given).

        With ``status=None`` the request is served normally after the delay (a slow server).
        For tests and demos of retries, rate limits and timeouts.
        """
        self._faults.add(Fault(status=status, delay=delay, retry_after=retry_after, method=method), times)

    def request_counts(self) -> dict[str, int]:
        """API requests received so far, by HTTP method (e.g. to check a re-run wrote nothing)."""
        return dict(self._app.request_counts)

    def emit(self, event_type: str, payload: Any) -> int:
        """Send an event of any documented type (reading.*, device.*, order.*...) to its webhooks.

        Patient events fire by themselves on create and update; this is for the rest, in demos
        and tests. Returns the event id the deliveries carry. An unknown type is a
        ``ValidationError`` listing the known ones (``models.WEBHOOK_TYPES``).
        """
        if event_type not in WEBHOOK_TYPES:
            message = f"Unknown event type {event_type!r}; one of: {', '.join(WEBHOOK_TYPES)}."
            raise ValidationError("Sandbox.emit", [FieldError("event_type", message)])
        return self.dispatcher.publish(event_type, payload)

    def retry_now(self) -> int:
        """Retry now every webhook delivery waiting for a retry, instead of at its scheduled time.

        Why: once a receiver is back (restarted, its secret fixed), its waiting events can be
        sent at once, like "resend" in Svix or Stripe. Tests and demos pair it with a large
        ``time_scale`` so no retry fires by itself: stop the receiver, cause an event, see the
        failed attempt in ``webhooks.logs()``, restart the receiver, call this. What happens
        then does not depend on the machine's speed.

        Each retry is one of the usual four attempts; delivered and given-up deliveries are not
        touched. Returns how many deliveries it affected (see ``Dispatcher.retry_now``).
        """
        return self.dispatcher.retry_now()

    def wait_for_deliveries(self, timeout: float = 10.0) -> bool:
        """Wait until no delivery is due or in flight (retries scheduled later do not count as due).

        Under ``chaos`` the waits it adds count as pending: a delayed or held delivery and a
        duplicate still to send are waited for.

        Returns False if deliveries were still under way after ``timeout`` seconds.
        """
        return poll_until(lambda: not self.dispatcher.pending_now(), timeout=timeout, interval=0.01)

    def _repr_fields(self) -> dict[str, str]:
        fields = {"db_path": repr(self.db_path)}  # never the API key
        if self.chaos is not None:
            fields["chaos"] = repr(self.chaos)
        return fields


def _check_settings(api_key: Any, time_scale: Any, latency_ms: Any, port: Any) -> None:
    """A ``ConfigurationError`` naming the first setting ``Sandbox`` cannot use, and what it takes."""
    if not isinstance(api_key, str) or not api_key:
        raise ConfigurationError("api_key must be a non-empty string (the sandbox's default is 'sandbox-key').")
    if not isinstance(time_scale, (int, float)) or isinstance(time_scale, bool) or not 0 < time_scale < math.inf:
        raise ConfigurationError(f"time_scale must be a positive, finite number (1 is the real schedule), got {time_scale!r}.")
    if not isinstance(latency_ms, (int, float)) or latency_ms < 0:
        raise ConfigurationError(f"latency_ms must be a number >= 0, got {latency_ms!r}.")
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigurationError(f"port must be 0 (any free port) or 1-65535, got {port!r}.")
