"""What happens to every request before a route sees it: a request id, then, for /api/ paths,
the injected latency, a queued fault, and the API key (docs/api-decisions.md#authentication).

A plain ASGI middleware, so the key is checked before anything reads the body.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import threading
import uuid
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._constants import API_KEY_HEADER
from .problems import problem_body
from .rendering import SafeJSONResponse

__all__ = ["Fault", "FaultQueue", "SandboxMiddleware"]

@dataclass
class Fault:
    """A planned misbehaviour for the next API request: wait ``delay`` s, then answer ``status``."""

    status: int | None = 503
    delay: float = 0.0
    retry_after: float | None = None
    method: str | None = None  # only requests with this HTTP method; None: any


class FaultQueue:
    """Faults queued by tests and demos (``Sandbox.inject_fault``), taken one per API request."""

    def __init__(self) -> None:
        self._faults: collections.deque[Fault] = collections.deque()
        self._lock = threading.Lock()

    def add(self, fault: Fault, times: int) -> None:
        with self._lock:
            self._faults.extend([fault] * times)

    def take(self, method: str) -> Fault | None:
        """The first queued fault that applies to a request with this method (removed), or None."""
        with self._lock:
            for fault in self._faults:
                if fault.method in (None, method):
                    self._faults.remove(fault)
                    return fault
            return None


class SandboxMiddleware:
    """Request id on every response; then, for /api/ paths: latency, injected faults, API key."""

    def __init__(self, app: ASGIApp, *, api_key: str, latency_ms: float, faults: FaultQueue) -> None:
        self.app = app
        self.api_key = api_key.encode()
        self.latency = latency_ms / 1000
        self.faults = faults
        self.request_counts: collections.Counter[str] = collections.Counter()  # by HTTP method, /api/ only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_request_id(send)
        if scope["path"].startswith("/api/"):
            self.request_counts[scope["method"]] += 1
            refusal = await self._screen(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _screen(self, scope: Scope) -> SafeJSONResponse | None:
        """Apply the latency and any queued fault; the answer to give instead of the route's, if any."""
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self.faults.take(scope["method"])
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
                body = problem_body(fault.status, "Injected fault (Sandbox.inject_fault).")
                return SafeJSONResponse(body, fault.status, headers)
        given = dict(scope["headers"]).get(API_KEY_HEADER.lower().encode(), b"")
        if not hmac.compare_digest(given, self.api_key):
            message = f"Missing {API_KEY_HEADER} header." if not given else f"Invalid {API_KEY_HEADER}."
            return SafeJSONResponse(problem_body(401, message), 401)
        return None


def _with_request_id(send: Send) -> Send:
    """``send``, adding a fresh ``X-Request-Id`` to the response's headers."""
    request_id = f"req_{uuid.uuid4().hex[:20]}".encode()

    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id)]}
        await send(message)

    return send_with_id
