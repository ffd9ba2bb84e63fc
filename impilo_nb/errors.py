"""Every error impilo_nb raises, in one tree.

    ImpiloError                       anything impilo_nb raises on purpose
    ├── ConfigurationError            a required setting (base URL, API key) is missing or unusable
    ├── ValidationError               input refused locally, before any request was sent
    ├── ReportError                   a notebook report could not be built (a cell failed, the page would load from the network)
    ├── InvalidDeliveryError          a webhook body the event log refuses; carries the HTTP status to answer (400/413/422)
    ├── EventLogUnavailableError      the event log's database cannot be reached right now (PostgreSQL down); retry
    └── APIError                      a request to Impilo (or the sandbox) did not succeed
        ├── APIConnectionError        no complete HTTP answer: refused, reset, cut off, DNS, TLS
        │   └── APITimeoutError       the server did not answer within the timeout
        ├── UnexpectedResponseError   a success status, but not the record asked for (not JSON, wrong shape)
        │   └── RedirectError         a redirect the client will not follow (another origin, a write made a GET)
        └── APIStatusError            the server answered with a 4xx or 5xx status
            ├── BadRequestError           400
            ├── AuthenticationError       401
            ├── PermissionDeniedError     403
            ├── NotFoundError             404
            ├── ConflictError             409
            ├── UnprocessableEntityError  422
            ├── RateLimitError            429
            └── InternalServerError       5xx

``ValidationError`` and ``BadRequestError`` both carry ``field_errors`` in the same shape
(``FieldError(field, message)``), so a form can show local and server complaints the same way.

No error text ever contains an API key or a webhook secret, whatever a server echoes back:
every secret the toolkit is given is registered with ``register_secret`` and masked in the
text, the ``str()`` and the ``repr()`` of every error built afterwards (``redact``).
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import requests

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "EventLogUnavailableError",
    "FieldError",
    "ImpiloError",
    "InvalidDeliveryError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RedirectError",
    "ReportError",
    "UnexpectedResponseError",
    "UnprocessableEntityError",
    "ValidationError",
]

#: Response headers that may carry a request id, most specific first.
REQUEST_ID_HEADERS = ("X-Request-Id", "Request-Id", "X-Amzn-RequestId", "X-Correlation-Id")

#: How much of a non-JSON error body is kept in the message.
MAX_MESSAGE_CHARS = 300

#: Secrets shorter than this are not masked: they would match ordinary words and numbers.
#: Real API keys and webhook secrets are far longer.
MIN_SECRET_CHARS = 6

#: What a secret is replaced with in error texts.
MASK = "***"

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(secret: str | None) -> None:
    """Mask ``secret`` in every error text built from now on (API keys, webhook secrets)."""
    if isinstance(secret, str) and len(secret) >= MIN_SECRET_CHARS:
        # The forms a server may echo it in: as is, URL-encoded (either case of hex, '/' kept or
        # not), JSON-escaped, HTML-escaped, base64.
        encoded = {quote(secret, safe=""), quote(secret)}
        forms = {secret, *encoded, *(re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), e) for e in encoded)}
        forms |= {json.dumps(secret)[1:-1], html.escape(secret)}
        forms |= {base64.b64encode(secret.encode()).decode(), base64.urlsafe_b64encode(secret.encode()).decode()}
        with _secrets_lock:
            _secrets.update(forms)


def redact(value: object, secrets: Iterable[str] | None = None) -> object:
    """``value`` with every registered secret (or those given) replaced by ``***``; strings
    inside lists and dicts too. Other values are returned unchanged."""
    if secrets is None:
        with _secrets_lock:
            secrets = sorted(_secrets, key=len, reverse=True)  # longest first: no partial leftovers
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    secrets = list(secrets)
    if isinstance(value, list):
        return [redact(item, secrets) for item in value]
    if isinstance(value, dict):
        return {redact(k, secrets): redact(v, secrets) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class FieldError:
    """One complaint about one field; ``field`` uses the wire's camelCase path (``address.city``)."""

    field: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ImpiloError(Exception):
    """Base class of every error impilo_nb raises on purpose; its text never shows a secret."""

    def __str__(self) -> str:
        return str(redact(super().__str__()))

    def __repr__(self) -> str:
        return str(redact(super().__repr__()))


class ConfigurationError(ImpiloError, ValueError):
    """A required setting is missing or unusable; the message names every way to give it."""


class ValidationError(ImpiloError, ValueError):
    """Input was refused locally, before any request was sent."""

    def __init__(self, model: str, field_errors: list[FieldError]):
        self.model = model
        self.field_errors = list(field_errors)
        lines = "\n".join(f"  - {fe}" for fe in self.field_errors)
        count = len(self.field_errors)
        super().__init__(f"{model} is not valid ({count} problem{'s' * (count != 1)}):\n{lines}")

    def __reduce__(self) -> tuple[type[ValidationError], tuple[str, list[FieldError]]]:  # picklable across processes
        return (type(self), (self.model, self.field_errors))


class ReportError(ImpiloError):
    """A report could not be built; the message says which notebook, why, and what to do."""


class InvalidDeliveryError(ImpiloError, ValueError):
    """A delivery body the log cannot accept; ``status`` is the HTTP answer to give (400/422)."""

    def __init__(self, status: int, reason: str):
        self.status = status
        self.reason = reason
        super().__init__(reason)


class EventLogUnavailableError(ImpiloError, OSError):
    """The event log's database cannot be reached right now (PostgreSQL down, restarting, out
    of connections); nothing was stored. An ``OSError``, as a full disk is for SQLite, so the
    receiver answers 503 and the sender retries; the log reconnects by itself."""


class APIError(ImpiloError):
    """A request to the Impilo API did not succeed."""

    #: How many times the request was sent (1 + retries), when known.
    attempts: int | None = None

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None, attempts: int | None = None):
        self.message = str(redact(message))
        self.method = method
        self.url = str(redact(url)) if url is not None else None
        self.attempts = attempts
        super().__init__(self.message)


class APIConnectionError(APIError):
    """No HTTP answer came back: the connection was refused, reset, or could not be made."""


class APITimeoutError(APIConnectionError):
    """The server did not answer within the client's timeout."""


class UnexpectedResponseError(APIError):
    """The server answered with a success status but not the record asked for: a body that is
    not JSON (often an HTML page from a proxy or a login wall) or JSON of the wrong shape."""


class RedirectError(UnexpectedResponseError):
    """The server redirected the request where the client will not follow: to another origin
    (the API key stays with the API's own), or a write that following would turn into a GET."""

    def __init__(self, message: str, *, status_code: int, location: str, method: str | None = None, url: str | None = None):
        self.status_code = status_code
        self.location = str(redact(location))
        super().__init__(message, method=method, url=url)


class APIStatusError(APIError):
    """The server answered with an error status; carries status, message, field errors, request id."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        response: requests.Response | None = None,
        body: Any = None,
        request_id: str | None = None,
        field_errors: list[FieldError] | None = None,
        method: str | None = None,
        url: str | None = None,
        attempts: int | None = None,
    ):
        self.status_code = status_code
        self.response = response
        self.body = redact(body)
        self.request_id = str(redact(request_id)) if request_id is not None else None
        self.field_errors = [
            FieldError(str(redact(fe.field)) if fe.field is not None else None, str(redact(fe.message)))
            for fe in field_errors or []
        ]
        super().__init__(message, method=method, url=url, attempts=attempts)

    def __str__(self) -> str:
        prefix = f"Request {self.request_id}: " if self.request_id else ""
        where = f" ({self.method} {self.url})" if self.method and self.url else ""
        # "502 Bad Gateway" pages already start with their status: say it once.
        status = "" if self.message.startswith(f"{self.status_code} ") else f"{self.status_code} "
        text = f"{prefix}{status}{self.message}{where}"
        if self.field_errors:
            text += "".join(f"\n  - {fe}" for fe in self.field_errors)
        return str(redact(text))


class BadRequestError(APIStatusError):
    """400: the request was malformed or a field was invalid (see ``field_errors``)."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong, expired or deactivated."""


class PermissionDeniedError(APIStatusError):
    """403: the API key is valid but may not do this."""


class NotFoundError(APIStatusError):
    """404: no such resource (or path)."""


class ConflictError(APIStatusError):
    """409: the request clashes with existing data, e.g. a duplicate external identifier."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was well-formed but could not be processed."""


class RateLimitError(APIStatusError):
    """429: too many requests; the client already waited and retried as far as allowed."""


class InternalServerError(APIStatusError):
    """5xx: the server failed; the client already retried where that was safe."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}

_HINTS = {
    401: "Check IMPILO_API_KEY (or the api_key argument): the key may be wrong, expired or deactivated.",
    403: "The key is valid but lacks permission for this call; ask the account owner.",
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """The most specific ``APIStatusError`` subclass for an HTTP status."""
    if status_code >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status_code, APIStatusError)


def error_from_response(response: requests.Response, *, attempts: int | None = None) -> APIStatusError:
    """Build the right ``APIStatusError`` from any error response: JSON, text, HTML or empty."""
    status = response.status_code
    body: Any = None
    message = ""
    field_errors: list[FieldError] = []
    text = str(redact(response.text or ""))  # before any cut: a cut-off secret is not masked
    try:
        body = json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):
        body = text
    if isinstance(body, dict):
        message = str(body.get("message") or body.get("detail") or body.get("error") or "")
        for item in body.get("fieldErrors") or []:
            if isinstance(item, dict):
                field_errors.append(FieldError(item.get("field"), str(item.get("message", ""))))
    elif isinstance(body, str):
        message = _readable_text(body)
    if not message:
        message = response.reason or "error"
    hint = _HINTS.get(status)
    if hint and hint not in message:
        message = f"{as_sentence(message)} {hint}"
    request = getattr(response, "request", None)
    return status_error_class(status)(
        message,
        status_code=status,
        response=response,
        body=body,
        request_id=next((response.headers[h] for h in REQUEST_ID_HEADERS if h in response.headers), None),
        field_errors=field_errors,
        method=getattr(request, "method", None),
        url=getattr(request, "url", None),
        attempts=attempts,
    )


def as_sentence(text: str) -> str:
    """``text`` ending in one full stop (or its own ! or ?), ready for another sentence."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?", "…")) else f"{text}."


def _readable_text(text: str) -> str:
    """A short human message from a text or HTML body (an HTML page's title, else its text)."""
    if "<" in text and ">" in text:
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        text = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
        text = html.unescape(text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"
