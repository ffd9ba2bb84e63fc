"""Test your own code against ``ImpiloClient`` without a server, in the style of httpx's
``MockTransport``: a handler function answers every request the client sends.

    def handler(request):                         # a requests.PreparedRequest
        if request.method == "GET" and request.path_url == "/api/v3/patient/7":
            return Reply(200, json={"id": 7, "firstName": "Ana", "lastName": "Rivera"})
        return Reply(404, json={"message": "not found"})

    client = ImpiloClient(base_url="https://impilo.test", api_key="test-key", session=mock_session(handler))

No socket is opened and nothing is retried (retries live in urllib3, below this seam): tests
of retries and of real bytes on the wire use ``nb.Sandbox`` instead. ``MockAdapter.requests``
keeps every request sent, so a test can prove that invalid input sent nothing.
"""

from __future__ import annotations

import io
import json as jsonlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

__all__ = ["MockAdapter", "Reply", "mock_session"]


@dataclass
class Reply:
    """What the mock server answers: a status, then a JSON value or raw bytes, and headers."""

    status: int = 200
    json: Any = None
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)

    def content(self) -> bytes:
        if self.json is not None:
            return jsonlib.dumps(self.json).encode()
        return self.body.encode() if isinstance(self.body, str) else self.body


class MockAdapter(BaseAdapter):
    """A requests transport adapter that answers with ``handler(request)``; keeps ``requests``."""

    def __init__(self, handler: Callable[[requests.PreparedRequest], Reply]) -> None:
        super().__init__()
        self.handler = handler
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.requests.append(request)
        reply = self.handler(request)
        response = requests.Response()
        response.status_code = reply.status
        response.raw = io.BytesIO(reply.content())  # read as a real body is: streamed, or all at once
        headers = {"Content-Type": "application/json"} if reply.json is not None else {}
        response.headers = CaseInsensitiveDict({**headers, **reply.headers})
        response.url = request.url or ""
        response.request = request
        response.reason = ""
        return response

    def close(self) -> None:
        pass


def mock_session(handler: Callable[[requests.PreparedRequest], Reply]) -> requests.Session:
    """A ``requests.Session`` whose every request is answered by ``handler`` (see module docstring).

    The adapter is ``session.adapters["https://"]`` (the same one serves http://).
    """
    session = requests.Session()
    adapter = MockAdapter(handler)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
