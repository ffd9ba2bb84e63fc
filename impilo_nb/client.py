"""ImpiloClient: one pooled HTTP session to the Impilo v3 API, with resources hung off it.

    client = ImpiloClient(base_url="https://app.impiloplatform.com", api_key="...")
    client.patients.create({...}); client.patients.list(name="Rivera")

Every failure surfaces as an ``impilo_nb.errors`` exception; the API key never appears in a
repr, a log line or an error text.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import unicodedata
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests

from . import _constants as c
from . import transport
from ._version import __version__
from .errors import (
    ConfigurationError,
    RedirectError,
    UnexpectedResponseError,
    error_from_response,
    register_secret,
)
from .models import (
    WireModel,
)
from .resources import Patients, WebhookLogs, Webhooks, WebhookSecrets
from .responses import decode_json

if TYPE_CHECKING:
    pass

__all__ = ["ImpiloClient"]

log = logging.getLogger("impilo_nb")

#: Redirects followed (within the API's origin) before giving up.
MAX_REDIRECTS = 5

#: Path prefixes people paste with the base URL; the client adds ``/api/v3`` itself.
API_PREFIXES = ("/api/v3", "/api")

M = TypeVar("M", bound=WireModel)


class ImpiloClient:
    """A connection to the Impilo v3 API (or the embedded sandbox).

    Args:
        base_url: e.g. ``https://app.impiloplatform.com``; default ``$IMPILO_BASE_URL``. A
            trailing ``/api/v3`` (or ``/api``) is accepted and dropped.
        api_key: sent as ``Impilo-API-Key``, only ever to ``base_url``'s origin; default
            ``$IMPILO_API_KEY``.
        timeout: seconds to wait to connect and for each read; a whole answer must arrive
            within ``BODY_TIMEOUTS`` (3) times that, and be at most ``MAX_RESPONSE_BYTES`` (32 MiB).
        max_retries: retries after a connection error or a 429/502/503/504, with exponential
            backoff and jitter, honouring ``Retry-After`` (see ``impilo_nb.transport`` for the
            rule that keeps a retried POST from creating a patient twice).
        session: a ``requests.Session`` to send through (for tests, proxies, certificates);
            by default one whose adapter retries as above. An injected session is used as it is:
            mount ``transport.new_session``'s adapter on it for the same retries.
        allow_insecure_http: plain ``http://`` is refused for any host but this machine, since
            the key and patient data would cross the network unencrypted; True allows it.

    Raises:
        ConfigurationError: a setting is missing or unusable (the message says which and why,
            and never shows the key).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = c.DEFAULT_TIMEOUT,
        max_retries: int = c.DEFAULT_MAX_RETRIES,
        session: requests.Session | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        self.base_url = _check_base_url(base_url or os.environ.get(c.ENV_BASE_URL), allow_insecure_http)
        self._api_key = _check_api_key(api_key or os.environ.get(c.ENV_API_KEY))
        register_secret(self._api_key)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}.")
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise ConfigurationError(f"max_retries must be a whole number >= 0, got {max_retries!r}.")
        if session is not None and not isinstance(session, requests.Session):
            raise ConfigurationError(f"session must be a requests.Session, got {type(session).__name__}.")
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self._origin = transport.origin(self.base_url)
        #: Monotonic time before which no request is sent: set by a 429's Retry-After, so every
        #: thread sharing this client slows down together instead of each hammering the limit.
        self._paused_until = 0.0
        self._pause_lock = threading.Lock()
        self._session = session or transport.new_session(max_retries=max_retries, on_rate_limit=self._pause)
        self.headers = {
            "Accept": "application/json",
            "User-Agent": f"impilo_nb/{__version__} python-requests/{requests.__version__}",
        }
        self.patients = Patients(self)
        self.webhooks = Webhooks(self)
        self.webhook_logs = WebhookLogs(self)
        self.webhook_secret = WebhookSecrets(self)

    #: What whoever displays this client must know about where its data lives, shown after its
    #: repr: ``connect()`` sets it for the embedded sandbox, whose data goes with the process.
    #: None (a real server) leaves the repr as it was. Never put a key or secret in it.
    caveat: str | None = None

    def __repr__(self) -> str:
        text = f"ImpiloClient(base_url={self.base_url!r}, api_key=***)"
        return f"{text} — {self.caveat}" if self.caveat else text

    def __enter__(self) -> ImpiloClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    # -- transport -----------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Any = None, json: Any = None) -> requests.Response:
        """Send one API request (retried as the transport's policy allows); return the
        successful response or raise.

        ``path`` is relative to the base URL (``/api/v3/patient``). Redirects are followed
        only within the API's origin, and a write only when the method survives (307/308);
        anything else is a ``RedirectError`` naming the target.
        """
        method = method.upper()
        url = self.base_url + path
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(method, url, params=params, json=json)
            if not response.is_redirect:
                break
            url, params = self._redirect_target(method, url, response), None
        else:
            raise RedirectError(
                f"{method} {self.base_url + path} was redirected more than {MAX_REDIRECTS} times; last to {url}.",
                status_code=response.status_code,
                location=url,
                method=method,
                url=self.base_url + path,
            )
        if response.status_code >= 400:
            raise error_from_response(response, attempts=transport.attempts(response))
        if not 200 <= response.status_code < 300:  # a 1xx as final answer, a 304, a 3xx without Location
            raise UnexpectedResponseError(
                f"{method} {response.url} answered {response.status_code} {response.reason or ''}".rstrip()
                + "; expected a 2xx answer. Is the base URL the API itself?" + transport.maybe_written(method),
                method=method,
                url=response.url,
            )
        return response

    def _send(self, method: str, url: str, *, params: Any, json: Any) -> requests.Response:
        self._wait_if_paused()
        headers = {**self.headers, c.API_KEY_HEADER: self._api_key}
        try:
            response = self._session.request(
                method, url, params=params, json=json, headers=headers, timeout=self.timeout, allow_redirects=False,
                stream=True,
            )
            transport.read_body(
                response, method=method, max_bytes=c.MAX_RESPONSE_BYTES, deadline_s=self.timeout * c.BODY_TIMEOUTS
            )
            return response
        except requests.exceptions.RequestException as exc:
            raise transport.connection_error(exc, method, url, self.timeout) from None
        except ValueError as exc:  # requests parses a Location even when not following it
            raise UnexpectedResponseError(
                f"{method} {url}: the answer could not be read ({exc}); nothing was followed.", method=method, url=url
            ) from None

    def _redirect_target(self, method: str, url: str, response: requests.Response) -> str:
        """Where a redirect may be followed to, or a ``RedirectError`` saying why not."""
        status = response.status_code
        location = response.headers["location"]
        response.close()
        try:
            target = urljoin(response.url or url, location)
        except ValueError:  # not a URL at all ("http://[::1/")
            target = location
        if transport.origin(target) is None or transport.origin(target) != self._origin:
            raise RedirectError(
                f"{method} {url} was redirected ({status}) to {target}, another origin. Not followed: the API key "
                f"is only ever sent to {self.base_url}. If the API has moved, set base_url (or {c.ENV_BASE_URL}) "
                "to the new address yourself.",
                status_code=status,
                location=target,
                method=method,
                url=url,
            )
        if method not in ("GET", "HEAD") and status not in (307, 308):
            raise RedirectError(
                f"{method} {url} was answered with a redirect ({status}) to {target} instead of a result. Not "
                f"followed: it would turn the {method} into a GET and report a write that was never confirmed. "
                "The change may or may not have happened: read the record back before trying again.",
                status_code=status,
                location=target,
                method=method,
                url=url,
            )
        return target

    def _pause(self, seconds: float) -> None:
        with self._pause_lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def _wait_if_paused(self) -> None:
        delay = self._paused_until - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def request_json(self, method: str, path: str, *, params: Any = None, json: Any = None) -> Any:
        """Like ``request`` but return the decoded JSON body (None for an empty body)."""
        return decode_json(self.request(method, path, params=params, json=json))


def _check_base_url(base_url: str | None, allow_insecure_http: bool) -> str:
    """The base URL without a trailing slash or ``/api/v3``; ``ConfigurationError`` if unusable."""
    if not base_url:
        raise ConfigurationError(
            f"No Impilo base URL: pass base_url=..., set {c.ENV_BASE_URL} "
            "(e.g. https://app.impiloplatform.com), or call impilo_nb.connect() for the embedded sandbox."
        )
    if not isinstance(base_url, str):
        raise ConfigurationError(f"base_url must be text such as https://app.impiloplatform.com, got {type(base_url).__name__}.")
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"base_url must be an http(s) URL such as https://app.impiloplatform.com, got {base_url!r}.")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigurationError(
            "base_url must be the API's address alone (e.g. https://app.impiloplatform.com): no user:password@, "
            "query or #fragment. The key goes in api_key= or IMPILO_API_KEY."
        )
    if parts.scheme == "http" and not transport.is_loopback_host(parts.hostname) and not allow_insecure_http:
        raise ConfigurationError(
            f"base_url {base_url!r} is plain http to another machine: the API key and patient data would cross the "
            "network unencrypted. Use https://, or pass allow_insecure_http=True if the network is yours (a test "
            "server on a private network)."
        )
    if transport.origin(base_url.strip()) is None:
        raise ConfigurationError(
            f"base_url {base_url!r} is ambiguous: no backslashes, spaces or control characters, and a port from 1 to 65535."
        )
    path = parts.path.rstrip("/")
    for prefix in API_PREFIXES:  # the client adds /api/v3 to every path itself
        if path.endswith(prefix):
            path = path[: -len(prefix)]
            break
    return f"{parts.scheme}://{parts.netloc}{path}"


def _check_api_key(api_key: str | None) -> str:
    """The key as given, or a ``ConfigurationError`` naming what is wrong with it (never the key)."""
    if not api_key:
        raise ConfigurationError(
            f"No Impilo API key: pass api_key=..., or set {c.ENV_API_KEY}. "
            "Keys are issued in the Impilo customer portal; the embedded sandbox's key is 'sandbox-key'."
        )
    if not isinstance(api_key, str):
        raise ConfigurationError(f"The API key must be text, got {type(api_key).__name__}.")
    problems = []
    if api_key != api_key.strip():
        problems.append("whitespace at its start or end (a newline from a file? use .strip())")
    if any(ch.isspace() for ch in api_key.strip()):
        problems.append("whitespace inside it")
    if any(unicodedata.category(ch) == "Cc" and not ch.isspace() for ch in api_key):
        problems.append("control characters")
    if not api_key.isascii():
        problems.append("non-ASCII characters (copied from a formatted document?)")
    if problems:
        raise ConfigurationError(
            f"The API key (api_key= or {c.ENV_API_KEY}) cannot be sent in an HTTP header: it has "
            + "; ".join(problems)
            + ". Copy it again from the Impilo customer portal. (The key itself is never shown.)"
        )
    return api_key
