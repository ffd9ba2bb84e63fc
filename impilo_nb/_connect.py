"""``connect()``: the one call a notebook starts with."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import TYPE_CHECKING

from . import _constants as c
from ._extras import require
from .client import ImpiloClient

if TYPE_CHECKING:
    from .sandbox import Sandbox

__all__ = ["connect", "embedded_sandbox", "sandbox_class"]

_lock = threading.Lock()
_sandbox: Sandbox | None = None

#: Shown after the repr of a client on the embedded sandbox: a new user must not mistake it for
#: the platform, nor keep work in it.
EMBEDDED_CAVEAT = (
    f"embedded sandbox, data lost when the kernel stops; set {c.ENV_BASE_URL} (and {c.ENV_API_KEY}) for the real platform"
)
#: One line on stderr when the embedded sandbox starts (once per process). A print, not
#: ``warnings.warn`` or logging: a warning's text carries a file path and source line and obeys
#: filters that may hide it or turn it into an error, and logging shows only if no handler is
#: configured; a print is the same single line in every kernel, so nbval can compare it.
EMBEDDED_NOTICE = c.EMBEDDED_NOTICE


def connect(
    base_url: str | None = None,
    *,
    timeout: float = c.DEFAULT_TIMEOUT,
    max_retries: int = c.DEFAULT_MAX_RETRIES,
    allow_insecure_http: bool = False,
) -> ImpiloClient:
    """A client for ``base_url`` or ``$IMPILO_BASE_URL`` when either is set, else for an embedded sandbox.

    The API key always comes from ``$IMPILO_API_KEY`` here, never from an argument, so a
    notebook's parameters (recorded in executed reports) never hold it.

    The embedded sandbox starts once per process with a fresh temporary database, so a notebook
    executed twice shows the same ids, and with webhook retries after seconds, not minutes
    (``DEMO_TIME_SCALE``). ``make lab`` sets the environment to one shared sandbox
    process instead, and a real deployment sets it to ``https://app.impiloplatform.com``.
    A client on the embedded sandbox says so in its repr (``EMBEDDED_CAVEAT``).
    """
    if base_url or os.environ.get(c.ENV_BASE_URL):
        return ImpiloClient(
            base_url=base_url, timeout=timeout, max_retries=max_retries, allow_insecure_http=allow_insecure_http
        )
    sandbox = embedded_sandbox()
    client = ImpiloClient(base_url=sandbox.url, api_key=sandbox.api_key, timeout=timeout, max_retries=max_retries)
    client.caveat = EMBEDDED_CAVEAT
    return client


def embedded_sandbox() -> Sandbox:
    """The process's embedded ``Sandbox``, started on first use (saying so on stderr, once) and
    stopped at exit.

    Raises:
        ConfigurationError: the ``[sandbox]`` extra (FastAPI) is not installed.
    """
    global _sandbox
    with _lock:
        if _sandbox is None:
            time_scale = float(os.environ.get(c.ENV_SANDBOX_TIME_SCALE) or c.DEMO_TIME_SCALE)
            documented_only = os.environ.get(c.ENV_SANDBOX_DOCUMENTED_ONLY, "").strip().lower() in ("1", "true", "yes")
            _sandbox = sandbox_class()(time_scale=time_scale, documented_only=documented_only).start()
            atexit.register(_sandbox.stop)
            print(EMBEDDED_NOTICE, file=sys.stderr)
        return _sandbox


def sandbox_class() -> type[Sandbox]:
    """The ``Sandbox`` class, imported on first use: the package's one way to load the sandbox
    (``nb.Sandbox``, ``embedded_sandbox()``, the ``sandbox`` command), so FastAPI stays out of
    ``import impilo_nb`` and a missing ``[sandbox]`` extra is reported the same way everywhere.

    Raises:
        ConfigurationError: the ``[sandbox]`` extra (FastAPI) is not installed.
    """
    require("sandbox")
    from .sandbox import Sandbox

    return Sandbox
