"""Run an ASGI app with uvicorn in a background thread, on a port chosen for it.

Shared by the sandbox and the webhook receiver, so a notebook can host either next to the
kernel. The socket is bound before the thread starts, so ``port`` is known at once and a port
already in use fails in the caller's thread with a clear message. A server started again after
``stop()`` listens on the same port, so URLs already handed out (a registered webhook) still work.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from typing import Any

import uvicorn

from ._constants import DEFAULT_HOST
from .errors import ConfigurationError

__all__ = ["BackgroundServer"]

#: Seconds to wait for uvicorn to start serving or to finish its in-flight requests.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class BackgroundServer:
    """One uvicorn server in a daemon thread. ``start()`` returns once it accepts connections."""

    def __init__(self, app: Any, *, host: str = DEFAULT_HOST, port: int = 0, name: str = "server") -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.name = name
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` once started (an IPv6 host in brackets)."""
        if self.port is None:
            raise ConfigurationError(f"{self.name} is not started yet: call .start() or use it in a with block.")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Bind, start serving in the background, and wait until it is ready."""
        if self.running:
            return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only when the
        # socket says it is TCP. Without it, a response's header and body writes meet Nagle's
        # algorithm and the client's delayed ACK, and every request takes ~40 ms.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise ConfigurationError(
                    f"{self.name}: port {self.requested_port} on {self.host} is already in use. "
                    "Stop the other process, or pass port=0 to pick a free port."
                ) from exc
            raise ConfigurationError(f"{self.name}: cannot listen on {self.host}:{self.requested_port}: {exc}") from exc
        self.port = self.requested_port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=STOP_TIMEOUT,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"impilo-{self.name}", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        self._socket = sock
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:  # uvicorn sets it once the socket is being served
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                reason = (
                    "stopped while starting; see the log above"
                    if not thread.is_alive()
                    else f"did not start within {START_TIMEOUT:g}s"
                )
                raise ConfigurationError(f"{self.name} {reason}.")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, and wait for the thread."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT + 1)
        self._socket.close()
        self._server = self._thread = None

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
