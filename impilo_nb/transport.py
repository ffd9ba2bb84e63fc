"""How a request reaches the API: retries, redirects, origins, and low-level failures named.

Retries are urllib3's ``Retry`` in the session's adapter (what requests itself recommends),
with the project's rule for writes expressed in ``RetryPolicy``:

- connection failures that surely never reached the server (refused, connect timeout) are
  retried for every method, POST included: nothing can have been created yet;
- read failures and 502/504 are retried only for idempotent methods (a POST that reached the
  API may have created the patient, and a retry would create it twice);
- 429 and 503 are retried for every method: both say the server refused the request before
  acting on it;
- ``Retry-After`` is honoured up to ``MAX_RETRY_AFTER``; beyond it the error is raised at once
  rather than freezing a notebook for an hour.

Redirects are never followed by requests (it forwards custom headers such as
``Impilo-API-Key`` to any host that is not a change of ``Authorization``'s host rules, and it
turns a redirected POST into a GET). ``ImpiloClient`` follows them itself, within one origin only.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    InvalidHeader,
    LocationParseError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util import parse_url
from urllib3.util.retry import Retry

from . import _constants as c
from .errors import APIConnectionError, APITimeoutError, UnexpectedResponseError

if TYPE_CHECKING:
    from urllib3.connectionpool import ConnectionPool

__all__ = [
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "RETRY_STATUSES_POST",
    "RetryPolicy",
    "attempts",
    "connection_error",
    "is_loopback_host",
    "maybe_written",
    "never_reached_server",
    "new_session",
    "origin",
]

#: Methods that may be repeated after a response was possibly lost: repeating them cannot do
#: more than the first attempt (PUT replaces, PATCH sets fields, DELETE is final).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})

#: Statuses worth retrying for idempotent methods: the request may simply be repeated.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

#: Statuses worth retrying even for POST: both say the server refused the request *before*
#: acting on it (rate limited, or not accepting work), so a retry cannot create a duplicate.
#: A 502/504 from a gateway may hide a request that did reach the API, so POST stops there.
RETRY_STATUSES_POST = frozenset({429, 503})


class RetryPolicy(Retry):
    """urllib3's ``Retry`` with the project's rule for writes, full-jitter backoff and a cap on
    ``Retry-After``; ``on_rate_limit(seconds)`` hears of every 429 so a client can pause all
    the threads that share it."""

    def __init__(self, *args: Any, on_rate_limit: Callable[[float], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_rate_limit = on_rate_limit

    @classmethod
    def for_client(cls, max_retries: int, on_rate_limit: Callable[[float], None] | None = None) -> RetryPolicy:
        return cls(
            total=max_retries,
            redirect=False,
            allowed_methods=IDEMPOTENT_METHODS,  # read errors: idempotent methods only
            raise_on_status=False,  # the last error response is returned and mapped to our errors
            respect_retry_after_header=True,
            backoff_factor=c.DEFAULT_BACKOFF_BASE,
            backoff_max=c.DEFAULT_BACKOFF_CAP,
            on_rate_limit=on_rate_limit,
        )

    def new(self, **kwargs: Any) -> Self:
        retry = super().new(**kwargs)
        retry.on_rate_limit = self.on_rate_limit
        return retry

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        statuses = RETRY_STATUSES if method.upper() in IDEMPOTENT_METHODS else RETRY_STATUSES_POST
        return bool(self.total) and status_code in statuses

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if response is not None:
            wait = self.get_retry_after(response)
            if wait is not None and wait > c.MAX_RETRY_AFTER:
                # Give up now: urlopen then returns this response, which becomes the error.
                # ignore: MaxRetryError types its pool as required; urllib3's own Retry.increment raises it the same way.
                raise MaxRetryError(_pool, url or "", None)  # type: ignore[arg-type]
            if response.status == 429 and self.on_rate_limit is not None:
                self.on_rate_limit(wait if wait is not None else self.get_backoff_time())
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def get_retry_after(self, response: Any) -> float | None:
        """Seconds from ``Retry-After`` (delta-seconds, decimals tolerated, or an HTTP-date,
        RFC 9110 §10.2.3); None when absent or unreadable: a bad header must not fail a request."""
        value = response.headers.get("Retry-After")
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = self.parse_retry_after(value)
            except InvalidHeader:
                return None
        return max(0.0, seconds) if math.isfinite(seconds) else None

    def get_backoff_time(self) -> float:
        # "Full jitter": a random wait in [0, min(cap, base * 2**n)], so many workers that hit
        # one limit do not retry in lock-step.
        retries = len(self.history)
        if retries == 0:
            return 0.0
        return random.uniform(0, min(self.backoff_max, self.backoff_factor * 2 ** (retries - 1)))


def new_session(
    *, max_retries: int, pool_size: int = c.DEFAULT_POOL_SIZE, on_rate_limit: Callable[[float], None] | None = None
) -> requests.Session:
    """A session whose adapters retry by ``RetryPolicy`` and pool ``pool_size`` connections."""
    session = requests.Session()
    adapter = HTTPAdapter(
        pool_connections=1, pool_maxsize=pool_size, max_retries=RetryPolicy.for_client(max_retries, on_rate_limit)
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def attempts(response: requests.Response) -> int:
    """How many times the request behind ``response`` was sent (1 + retries), from urllib3's
    retry history; 1 when the transport keeps none (a test adapter)."""
    retries = getattr(getattr(response, "raw", None), "retries", None)
    return len(getattr(retries, "history", ())) + 1


def origin(url: str) -> tuple[str, str, int | None] | None:
    """A URL's origin (scheme, host, port; default ports made explicit), as the connection would
    be made: what the key is bound to. None when the URL is ambiguous, which a caller must treat
    as "another origin": a backslash, whitespace or a control character (parsers disagree on
    where such a host ends: ``http://evil\\@api/`` is ``api`` to one and ``evil`` to requests),
    a bad port, or parsers that disagree on the host."""
    if "\\" in url or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return None
    try:
        parsed = parse_url(url)  # what requests and urllib3 connect with
        other = urlsplit(url)
        other_host, other_port = (other.hostname or "").lower(), other.port
    except (LocationParseError, ValueError):
        return None
    scheme, host = (parsed.scheme or "").lower(), (parsed.host or "").lower().strip("[]")
    if not host or host != other_host or parsed.port != other_port:
        return None
    return scheme, host, parsed.port or {"http": 80, "https": 443}.get(scheme)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost`` or a loopback IP (no DNS lookup)."""
    import ipaddress

    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def never_reached_server(exc: BaseException) -> bool:
    """Whether a requests failure surely happened before the server saw the request."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return isinstance(reason, NewConnectionError)
    return False


def connection_error(exc: requests.exceptions.RequestException, method: str, url: str, timeout: float) -> APIConnectionError:
    """Name a low-level failure for what it tells the user (was the server reached at all?)."""
    root = _root_cause(exc)
    detail = f"{type(root).__name__}: {str(root).split(': ', 1)[-1][:120]}" if str(root) else type(root).__name__
    if never_reached_server(exc):
        message = (
            f"Could not reach {url} (connection refused or host unreachable). Is the server running and the base URL "
            "right? For the embedded sandbox, use impilo_nb.connect() or `make lab`."
        )
    elif isinstance(exc, requests.exceptions.ConnectTimeout) or isinstance(root, ConnectTimeoutError):
        message = f"{method} {url}: could not connect within {timeout:g}s. Is the host right and reachable?"
        return APITimeoutError(message, method=method, url=url)
    elif isinstance(exc, requests.exceptions.Timeout) or isinstance(root, (ReadTimeoutError, TimeoutError)):
        message = (
            f"{method} {url} got no answer within {timeout:g}s. The server may be overloaded; retry later or raise timeout=."
        )
        return APITimeoutError(message + maybe_written(method), method=method, url=url)
    elif isinstance(exc, requests.exceptions.SSLError) or isinstance(root, SSLError):
        message = f"{method} {url}: the TLS (https) handshake failed ({detail}). Check the base URL and certificates."
    elif isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        message = f"{method} {url}: the server answered, but the connection broke while the body was read ({detail})."
        message += maybe_written(method)
    elif isinstance(exc, requests.exceptions.ConnectionError):
        message = f"{method} {url}: the connection was lost before a complete answer came ({detail})."
        message += maybe_written(method)
    else:
        message = f"{method} {url} could not be sent ({detail})."
    return APIConnectionError(message, method=method, url=url)


def maybe_written(method: str) -> str:
    if method in ("GET", "HEAD", "OPTIONS"):
        return ""
    return " The server may have received it: the change may or may not have happened; read the record back before retrying."


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost error behind requests' and urllib3's wrappers (MaxRetryError's reason...)."""
    seen = {id(exc)}
    while True:
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        if inner is None or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


def read_body(response: requests.Response, *, method: str, max_bytes: int, deadline_s: float) -> None:
    """Read a streamed answer's body into ``response`` (so ``.content``/``.json()`` work as usual),
    refusing one larger than ``max_bytes`` once decoded (a gzip bomb stops at the cap, not after
    inflating) or still arriving ``deadline_s`` after its headers (a server that trickles a byte
    per read would otherwise beat any per-read timeout for ever)."""
    started = time.monotonic()
    chunks, size = [], 0
    try:
        for chunk in _pieces(response):
            size += len(chunk)
            if size > max_bytes:
                raise UnexpectedResponseError(
                    f"{method} {response.url}: the answer is larger than {max_bytes // (1024 * 1024)} MiB, far more than"
                    " any API answer; reading stopped there. Is the base URL the API itself?" + maybe_written(method),
                    method=method, url=response.url,
                )
            if time.monotonic() - started > deadline_s:
                raise APITimeoutError(
                    f"{method} {response.url}: the answer was still arriving {deadline_s:g}s after it began; reading"
                    " stopped. The server or network is very slow; retry later or raise timeout=." + maybe_written(method),
                    method=method, url=response.url,
                )
            chunks.append(chunk)
    finally:
        response.close()
    response._content = b"".join(chunks)  # what requests itself sets when it reads a body


def _pieces(response: requests.Response, size: int = 64 * 1024) -> Iterator[bytes]:
    """The decoded body in pieces as they arrive: ``read1`` returns what one read brought, where
    ``iter_content`` would wait for a whole piece (and a trickling server could hold it for ever).
    Failures are requests' own exceptions, as ``iter_content`` raises them."""
    raw = response.raw
    if not isinstance(raw, BaseHTTPResponse):  # a test transport's file-like body
        yield from response.iter_content(chunk_size=size)
        return
    try:
        while piece := raw.read1(size, decode_content=True):
            yield piece
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except (ReadTimeoutError, SSLError) as exc:
        raise requests.exceptions.ConnectionError(exc) from exc
