"""Run an ASGI app with uvicorn in a background thread, on a port chosen for it.

Shared by the sandbox and the webhook receiver, so a notebook can host either next to the
kernel. The socket is bound before the thread starts, so ``port`` is known at once and a port
already in use fails in the caller's thread with a clear message. A server started again after
``stop()`` listens on the same port, so URLs already handed out (a registered webhook) still work.

``BackgroundService`` is the base of the public objects that own such a server (``Sandbox``,
``WebhookReceiver``): the url, running, start/stop, ``with`` and repr they share.
"""

from __future__ import annotations

import errno
import socket
import threading
from typing import Any, Self

import uvicorn

from ._constants import DEFAULT_HOST
from ._time import poll_until
from .errors import ConfigurationError

__all__ = ["BackgroundServer", "BackgroundService"]

#: Seconds to wait for uvicorn to start serving or to finish its in-flight requests.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10  # whole seconds: uvicorn's timeout_graceful_shutdown is an int


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
        sock = self._bound_socket()
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
        # uvicorn sets server.started once the socket is being served.
        poll_until(lambda: server.started or not thread.is_alive(), timeout=START_TIMEOUT, interval=0.01)
        if not server.started:
            server.should_exit = True
            sock.close()
            reason = f"did not start within {START_TIMEOUT:g}s"
            if not thread.is_alive():
                reason = "stopped while starting; see the log above"
            raise ConfigurationError(f"{self.name} {reason}.")

    def _bound_socket(self) -> socket.socket:
        """A TCP socket bound to the host and requested port; a ``ConfigurationError`` naming both if not."""
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
        return sock

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


class BackgroundService:
    """Base of the objects that serve an app from this process: a ``BackgroundServer`` behind
    the url, running, start/stop, ``with`` and repr that ``Sandbox`` and ``WebhookReceiver`` share.

    Subclasses extend ``start``/``stop`` for what else they run, and ``_repr_fields`` for what
    their repr shows besides where they listen (never a secret).
    """

    def __init__(self, app: Any, *, host: str, port: int, name: str) -> None:
        self._server = BackgroundServer(app, host=host, port=port, name=name)

    @property
    def url(self) -> str:
        """``http://HOST:PORT``; a ``ConfigurationError`` saying to start it first when it never started."""
        return self._server.url

    @property
    def running(self) -> bool:
        return self._server.running

    def start(self) -> Self:
        """Start serving and return self, so ``Service(...).start()`` reads naturally."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving (a later ``start()`` listens on the same port again)."""
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _repr_fields(self) -> dict[str, str]:
        """What the repr shows after the URL, as name -> text (already formatted)."""
        return {}

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped"
        fields = "".join(f", {name}={text}" for name, text in self._repr_fields().items())
        return f"{type(self).__name__}({where}{fields})"
