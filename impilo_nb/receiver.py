"""WebhookReceiver: a local HTTP endpoint that receives Impilo webhooks into an EventLog.

    log = EventLog("webhooks.db")
    with WebhookReceiver(log, secret="...") as receiver:
        client.webhooks.create(type="patient.updated", url=receiver.url)

For each ``POST {path}`` it checks the ``Impilo-Webhook-Secret`` header in constant time
(missing or wrong: 401, counted as a rejection, body not kept), bounds the body (413 past
``max_body``), has the log check the body (``eventlog.parse_delivery``: JSON, nesting depth,
valid Unicode, 400; an event type, 422), and answers 2xx only once the event is committed to
disk, so every acknowledged delivery survives a crash. ``GET /health`` answers
``{"status": "ok", "events": N}``.

With ``forward_to`` the receiver also hands each accepted delivery, once committed, to the
customer's own handler: the same body bytes, with the secret header when the receiver has a
secret, from one background thread (``eventlog.replay.Forwarder``). The answer to Impilo never
waits for the handler or depends on it, and each forward is recorded in ``log.attempts()`` (kind
``forward``), a skipped one too (queue full, receiver stopped), so none goes missing unnoticed.
Each forward carries the forwarder's random token (``FORWARDED_BY_HEADER``): if ``forward_to``
leads back to this receiver under another name (``localhost``, an encoded path), the forward
is refused with 508 Loop Detected instead of being stored and forwarded again for ever.

Bad input only ever gets a 4xx, recorded in ``log.rejections()``. A 5xx means the receiver could
not do its part, and asks the sender to retry: 503 (with ``Retry-After``) when the event log
cannot store (disk full, database locked past its timeout, I/O error), 500 for a fault in the
receiver itself. Neither body carries a traceback or any request data; the receiver's log
(``logging`` name ``impilo_nb.receiver``) gets the details, with the webhook secret and any
credential header masked.
"""

from __future__ import annotations

import hmac
import logging
import os
import sqlite3
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, Self
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._constants import DEFAULT_HOST, WEBHOOK_SECRET_HEADER
from .errors import ConfigurationError, redact, register_secret
from .eventlog import SECRET_HEADERS, EventLog, InvalidDeliveryError, parse_delivery
from .eventlog.replay import FORWARDED_BY_HEADER, Forwarder
from .models import HEADER_SAFE_RULE, header_safe
from .serving import BackgroundService
from .transport import origin

__all__ = ["DEFAULT_PATH", "MAX_BODY_BYTES", "WebhookReceiver", "receiver_app"]

#: Where deliveries are POSTed.
DEFAULT_PATH = "/webhooks/impilo"

#: Largest body accepted. A patient record is a few kB; this leaves room for any Impilo model
#: while keeping a runaway sender from filling memory or disk.
MAX_BODY_BYTES = 1024 * 1024

#: Seconds a 503 asks the sender to wait: long enough for a lock to clear or an operator to free disk.
RETRY_AFTER_SECONDS = 30

#: The answer to a delivery this receiver forwarded to itself: RFC 5842's "Loop Detected".
LOOP_DETECTED = 508

#: Credential header values shorter than this are not masked in the log: they would match
#: ordinary words, and a credential that short protects nothing.
MIN_MASKED_CHARS = 6

logger = logging.getLogger(__name__)

_Endpoint = Callable[[Request], Awaitable[Response]]


def _check_secret(secret: str | None) -> bytes | None:
    if secret is None:
        return None
    if not header_safe(secret):
        raise ConfigurationError(f"The webhook secret: {HEADER_SAFE_RULE}")
    register_secret(secret)  # masked in every error text from now on
    return secret.encode("ascii")


def receiver_app(
    log: EventLog,
    *,
    secret: str | None = None,
    path: str = DEFAULT_PATH,
    max_body: int = MAX_BODY_BYTES,
    forwarder: Forwarder | None = None,
) -> Any:
    """The receiver as an ASGI app, to mount in another server or run with uvicorn.

    ``forwarder`` (started by the caller) gets each delivery once it is committed.
    """
    expected = _check_secret(secret)

    async def refuse(status: int, reason: str, remote: str | None) -> JSONResponse:
        try:
            await run_in_threadpool(log.record_rejection, status, reason, remote_addr=remote)
        except (sqlite3.Error, OSError) as exc:  # the refusal stands even when it cannot be counted
            logger.warning("webhook receiver: could not record a %d refusal: %s: %s", status, type(exc).__name__, exc)
        return JSONResponse({"status": status, "error": reason}, status)

    async def deliver(request: Request) -> JSONResponse:
        remote = request.client.host if request.client else None
        if expected is not None:
            given = request.headers.get(WEBHOOK_SECRET_HEADER)
            if given is None:
                return await refuse(401, f"missing {WEBHOOK_SECRET_HEADER} header", remote)
            if not hmac.compare_digest(given.encode("latin-1"), expected):
                return await refuse(401, f"wrong {WEBHOOK_SECRET_HEADER}", remote)
        if forwarder is not None and request.headers.get(FORWARDED_BY_HEADER) == forwarder.token:
            # Already stored when it was first received: storing it again would forward it again, for ever.
            reason = "forward_to leads back to this receiver; give the handler's URL (the event is already stored)"
            return await refuse(LOOP_DETECTED, reason, remote)
        length = request.headers.get("content-length", "")
        if length.isascii() and length.isdigit() and (len(length) > 18 or int(length) > max_body):
            return await refuse(413, f"body of {length} bytes is over the {max_body}-byte limit", remote)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                return await refuse(413, f"body is over the {max_body}-byte limit", remote)
        try:
            count = await run_in_threadpool(_commit, log, forwarder, bytes(body), dict(request.headers), remote)
        except InvalidDeliveryError as exc:
            return await refuse(exc.status, exc.reason, remote)
        return JSONResponse({"received": True, "deliveryCount": count})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "events": await run_in_threadpool(len, log)})

    return Starlette(
        routes=[
            Route(path, _guarded(deliver, secret), methods=["POST"]),
            Route("/health", _guarded(health, secret), methods=["GET"]),
        ]
    )


def _commit(log: EventLog, forwarder: Forwarder | None, body: bytes, headers: dict[str, str], remote: str | None) -> int:
    """Check and store a delivery (``InvalidDeliveryError`` if it is none); once it is committed,
    and only then, hand it to ``forwarder``: the handler never sees an event the log may lack."""
    event = parse_delivery(body)
    count = log.record(event, body=body, headers=headers, remote_addr=remote)
    if forwarder is not None:
        forwarder.submit(event.event_id, body)
    return count


def _guarded(endpoint: _Endpoint, secret: str | None) -> _Endpoint:
    """``endpoint``, answering any exception it lets through without a traceback or request data.

    Bad input never gets here (the log refuses it with ``InvalidDeliveryError``, a 4xx). A storage
    failure is 503 so the platform retries later; anything else is a fault of ours, 500. Both
    are logged with the secret and credential headers masked.
    """

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is left to read it
        except (sqlite3.Error, OSError) as exc:
            logger.error(
                "webhook receiver: the event log could not store a delivery (%s); answered 503 so the sender retries",
                _masked(f"{type(exc).__name__}: {exc}", request, secret),
            )
            reason = "the event log cannot store events right now; nothing was stored, retry later"
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            return JSONResponse({"status": 503, "error": reason}, 503, headers=headers)
        except Exception as exc:
            logger.error(
                "webhook receiver: unexpected error, answered 500:\n%s",
                _masked("".join(traceback.format_exception(exc)), request, secret),
            )
            reason = "internal error in the webhook receiver; nothing was stored; its log has the details"
            return JSONResponse({"status": 500, "error": reason}, 500)

    return guarded


def _masked(text: str, request: Request, secret: str | None) -> str:
    """``text`` with the webhook secret and the values of this request's credential headers masked."""
    hidden = {secret} if secret else set()
    hidden.update(
        value for name, value in request.headers.items() if name.lower() in SECRET_HEADERS and len(value) >= MIN_MASKED_CHARS
    )
    return str(redact(text, sorted(hidden, key=len, reverse=True)))


class WebhookReceiver(BackgroundService):
    """Receives webhook deliveries into ``log`` on a background server in this process.

    Args:
        log: an ``EventLog``, or a path to open one at.
        secret: when given, deliveries must carry it in ``Impilo-Webhook-Secret``.
        host: loopback by default; expose it to the internet only through a tunnel.
        port: 0 picks a free port; a restart keeps the port.
        path: the delivery path.
        forward_to: the customer's own handler, to get each delivery once it is committed
            (see the module docstring); on this machine unless ``allow_external_forward``.
        allow_external_forward: let ``forward_to`` be another machine. Off by default, as for
            the sandbox: events hold patient data.
    """

    def __init__(
        self,
        log: EventLog | str | os.PathLike[str],
        secret: str | None = None,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        path: str = DEFAULT_PATH,
        max_body: int = MAX_BODY_BYTES,
        forward_to: str | None = None,
        allow_external_forward: bool = False,
    ) -> None:
        self.log = log if isinstance(log, EventLog) else EventLog(log)
        self.path = path if path.startswith("/") else f"/{path}"
        self._has_secret = secret is not None
        _check_secret(secret)  # before the forwarder: it must not be handed an unusable secret
        self.forward_to = forward_to
        self._forwarder = (
            None
            if forward_to is None
            else Forwarder(self.log, forward_to, secret=secret, allow_external=allow_external_forward)
        )
        app = receiver_app(self.log, secret=secret, path=self.path, max_body=max_body, forwarder=self._forwarder)
        super().__init__(app, host=host, port=port, name="webhook receiver")

    @property
    def url(self) -> str:
        """The full delivery URL to register with ``client.webhooks.create``."""
        return super().url + self.path

    def start(self) -> Self:
        """Start receiving (and forwarding); returns self."""
        if self._forwarder is not None:
            self._forwarder.start()  # first, so no committed delivery meets a stopped forwarder
        try:
            super().start()
            self._refuse_forwarding_to_itself()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop receiving (deliveries then fail and Impilo retries them later); the log stays open.

        With ``forward_to``, the handler then has up to ``FORWARD_DRAIN_S`` seconds to take the
        deliveries still queued for it; any left are recorded as skipped forwards.
        """
        super().stop()
        if self._forwarder is not None:
            self._forwarder.stop()

    def _refuse_forwarding_to_itself(self) -> None:
        # Each forward would be received, committed and forwarded again, for ever.
        if (
            self.forward_to is not None
            and origin(self.forward_to) == origin(self.url)
            and urlsplit(self.forward_to).path.rstrip("/") == self.path.rstrip("/")
        ):
            raise ConfigurationError(f"forward_to is this receiver's own URL ({self.url}); give the handler's URL.")

    def _repr_fields(self) -> dict[str, str]:
        fields = {"log": repr(self.log.where), "secret": "required" if self._has_secret else "none"}
        if self.forward_to is not None:
            fields["forward_to"] = repr(self.forward_to)
        return fields
