"""A hostile API server for client tests: real HTTP on loopback, answering with exactly the bytes
a test chooses (redirects anywhere, echoed keys, wrong shapes, bodies cut short or trickled), and keeping
every request it received, headers included, so a test can prove what was (not) sent."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def raw(
    status: int, body: bytes | str | object = b"", *, headers: dict[str, str] | None = None, length: int | None = None
) -> bytes:
    """The bytes of an HTTP/1.1 response. A dict or list body is sent as JSON; ``length``
    overrides Content-Length (larger than the body: the answer is cut short)."""
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        headers = {"Content-Type": "application/json", **(headers or {})}
    data = body.encode() if isinstance(body, str) else body
    lines = [f"HTTP/1.1 {status} Whatever", f"Content-Length: {len(data) if length is None else length}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


@dataclass
class HostileServer:
    """``respond(seen) -> bytes`` decides each answer; ``.seen`` keeps every request."""

    respond: Callable[[Seen], bytes | list[bytes]]
    seen: list[Seen] = field(default_factory=list)
    #: Seconds between the pieces of an answer given as a list of bytes.
    gap: float = 0.0

    def __post_init__(self) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_one_request(self) -> None:
                self.raw_requestline = self.rfile.readline(65537)
                if not self.raw_requestline or not self.parse_request():
                    self.close_connection = True
                    return
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
                server.seen.append(seen)
                answer = server.respond(seen)
                try:
                    for piece in [answer] if isinstance(answer, bytes) else answer:  # pieces: a trickle
                        self.wfile.write(piece)
                        self.wfile.flush()
                        time.sleep(server.gap)
                except OSError:  # the client gave up: that is what trickle tests expect
                    pass
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
