"""WebhookReceiver: a local HTTP endpoint that receives Impilo webhooks into an EventLog.

    log = EventLog("webhooks.db")
    with WebhookReceiver(log, secret="...") as receiver:
        client.webhooks.create(type="patient.updated", url=receiver.url)

For each ``POST {path}`` it checks the ``Impilo-Webhook-Secret`` header in constant time
(missing or wrong: 401, counted as a rejection, body not kept), bounds the body (413 past
``max_body``), parses JSON (400), requires an event type (422), and answers 2xx only once the
event is committed to disk, so every acknowledged delivery survives a crash. ``GET /health``
answers ``{"status": "ok", "events": N}``.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ._constants import DEFAULT_HOST, WEBHOOK_SECRET_HEADER
from .errors import ConfigurationError
from .eventlog import EventLog, InvalidDelivery
from .models import HEADER_SAFE_RULE, header_safe
from .serving import BackgroundServer

__all__ = ["DEFAULT_PATH", "MAX_BODY_BYTES", "WebhookReceiver", "receiver_app"]

#: Where deliveries are POSTed.
DEFAULT_PATH = "/webhooks/impilo"

#: Largest body accepted. A patient record is a few kB; this leaves room for any Impilo model
#: while keeping a runaway sender from filling memory or disk.
MAX_BODY_BYTES = 1024 * 1024


def _check_secret(secret: str | None) -> bytes | None:
    if secret is None:
        return None
    if not header_safe(secret):
        raise ConfigurationError(f"The webhook secret: {HEADER_SAFE_RULE}")
    return secret.encode("ascii")


def receiver_app(log: EventLog, *, secret: str | None = None, path: str = DEFAULT_PATH, max_body: int = MAX_BODY_BYTES) -> Any:
    """The receiver as an ASGI app, to mount in another server or run with uvicorn."""
    expected = _check_secret(secret)

    async def refuse(status: int, reason: str, remote: str | None) -> JSONResponse:
        await run_in_threadpool(log.record_rejection, status, reason, remote_addr=remote)
        return JSONResponse({"status": status, "error": reason}, status)

    async def deliver(request: Request) -> JSONResponse:
        remote = request.client.host if request.client else None
        if expected is not None:
            given = request.headers.get(WEBHOOK_SECRET_HEADER)
            if given is None:
                return await refuse(401, f"missing {WEBHOOK_SECRET_HEADER} header", remote)
            if not hmac.compare_digest(given.encode("latin-1"), expected):
                return await refuse(401, f"wrong {WEBHOOK_SECRET_HEADER}", remote)
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_body:
            return await refuse(413, f"body of {length} bytes is over the {max_body}-byte limit", remote)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                return await refuse(413, f"body is over the {max_body}-byte limit", remote)
        try:
            count = await run_in_threadpool(log.record_body, bytes(body), headers=dict(request.headers), remote_addr=remote)
        except InvalidDelivery as exc:
            return await refuse(exc.status, exc.reason, remote)
        return JSONResponse({"received": True, "deliveryCount": count})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "events": await run_in_threadpool(len, log)})

    return Starlette(routes=[Route(path, deliver, methods=["POST"]), Route("/health", health, methods=["GET"])])


class WebhookReceiver:
    """Receives webhook deliveries into ``log`` on a background server in this process.

    Args:
        log: an ``EventLog``, or a path to open one at.
        secret: when given, deliveries must carry it in ``Impilo-Webhook-Secret``.
        host: loopback by default; expose it to the internet only through a tunnel.
        port: 0 picks a free port; a restart keeps the port.
        path: the delivery path.
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
    ) -> None:
        self.log = log if isinstance(log, EventLog) else EventLog(log)
        self.path = path if path.startswith("/") else f"/{path}"
        self._has_secret = secret is not None
        app = receiver_app(self.log, secret=secret, path=self.path, max_body=max_body)
        self._server = BackgroundServer(app, host=host, port=port, name="webhook receiver")

    @property
    def url(self) -> str:
        """The full delivery URL to register with ``client.webhooks.create``."""
        return self._server.url + self.path

    @property
    def running(self) -> bool:
        return self._server.running

    def start(self) -> WebhookReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop receiving (deliveries then fail and Impilo retries them later); the log stays open."""
        self._server.stop()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped"
        secret = "required" if self._has_secret else "none"
        return f"WebhookReceiver({where}, log={str(self.log.path)!r}, secret={secret})"
