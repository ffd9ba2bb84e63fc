"""ImpiloClient: one pooled HTTP session to the Impilo v3 API, with resources hung off it.

    client = ImpiloClient(base_url="https://app.impiloplatform.com", api_key="...")
    client.patients.create({...}); client.patients.list(name="Rivera")

Every failure surfaces as an ``impilo_nb.errors`` exception; the API key never appears in a
repr, a log line or an error text.
"""

from __future__ import annotations

import logging
import operator
import os
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
from pydantic.alias_generators import to_snake
from urllib3.exceptions import ConnectTimeoutError, ReadTimeoutError, SSLError

from . import _constants as c
from . import transport
from ._version import __version__
from .errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    FieldError,
    NotFoundError,
    RedirectError,
    UnexpectedResponseError,
    ValidationError,
    error_from_response,
    register_secret,
)
from .fields import ListFilter
from .models import (
    HEADER_SAFE_RULE,
    Page,
    Patient,
    PatientPatch,
    Webhook,
    WebhookLogEntry,
    WebhookSecret,
    WebhookUrlChange,
    WireModel,
    header_safe,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ImpiloClient", "Patients", "WebhookSecretResource", "Webhooks"]

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
        timeout: seconds to wait to connect and for each read.
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
        self.webhook_secret = WebhookSecretResource(self)

    def __repr__(self) -> str:
        return f"ImpiloClient(base_url={self.base_url!r}, api_key=***)"

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
                + "; expected a 2xx answer. Is the base URL the API itself?" + _maybe_written(method),
                method=method,
                url=response.url,
            )
        return response

    def _send(self, method: str, url: str, *, params: Any, json: Any) -> requests.Response:
        self._wait_if_paused()
        headers = {**self.headers, c.API_KEY_HEADER: self._api_key}
        try:
            return self._session.request(
                method, url, params=params, json=json, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except requests.exceptions.RequestException as exc:
            raise _connection_error(exc, method, url, self.timeout) from None

    def _redirect_target(self, method: str, url: str, response: requests.Response) -> str:
        """Where a redirect may be followed to, or a ``RedirectError`` saying why not."""
        status = response.status_code
        target = urljoin(response.url or url, response.headers["location"])
        response.close()
        if transport.origin(target) != self._origin:
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


def decode_json(response: requests.Response) -> Any:
    """A successful response's JSON body (None when empty); ``UnexpectedResponseError`` if not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        request = response.request
        raise UnexpectedResponseError(
            f"{request.method} {request.path_url} answered {response.status_code} with a body that is not JSON: "
            f"{response.text[:200]!r}. Is the base URL the API itself, not a web page or a proxy's login?",
            method=request.method,
            url=response.url,
        ) from None


def read_record(model: type[M], response: requests.Response, *, written: str | None = None) -> M:
    """The record a successful response carries, read leniently as ``model``.

    A body that is not such a record (empty, ``[]``, another shape) is an
    ``UnexpectedResponseError``, never a ``ValidationError`` (reserved for the caller's own
    input). ``written`` names what a write may have done anyway, for the message.
    """
    data = decode_json(response)
    try:
        if not isinstance(data, dict):
            raise ValidationError(model.__name__, [FieldError(None, f"expected a JSON object, got {_json_kind(data)}")])
        record = model.from_api(data)
        if "id" in model.model_fields and getattr(record, "id", None) is None:
            # A stored record always has its server-assigned id; without one this is not the record.
            raise ValidationError(model.__name__, [FieldError("id", "missing: a stored record always has one")])
        return record
    except ValidationError as exc:
        request = response.request
        problems = "; ".join(str(fe) for fe in exc.field_errors)
        note = f" The server did answer {response.status_code}, so {written}: check before trying again." if written else ""
        raise UnexpectedResponseError(
            f"{request.method} {request.path_url} answered {response.status_code} but the body is not a "
            f"{model.__name__} ({problems}).{note}",
            method=request.method,
            url=response.url,
        ) from None


def read_page(model: type[M], response: requests.Response) -> Page[M]:
    """A page envelope of ``model`` records. A record the client cannot read is skipped with a
    warning naming it, so one odd record never breaks a listing; an envelope of the wrong shape
    is an ``UnexpectedResponseError``."""
    request = response.request
    data = decode_json(response)
    try:
        envelope = Page[Any].from_api(data)
    except ValidationError as exc:
        problems = "; ".join(str(fe) for fe in exc.field_errors)
        raise UnexpectedResponseError(
            f"{request.method} {request.path_url} answered {response.status_code} but the body is not a page of "
            f"{model.__name__} records ({problems}).",
            method=request.method,
            url=response.url,
        ) from None
    where = f"{request.method} {request.path_url}"
    return Page[model](**{**dict(envelope), "content": _readable(model, envelope.content, where=where)})  # type: ignore[valid-type]


def _readable(model: type[M], items: list[Any], *, where: str) -> list[M]:
    """The items that read as ``model``; the others are logged (position and reason) and skipped."""
    records = []
    for position, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ValidationError(model.__name__, [FieldError(None, f"expected a JSON object, got {_json_kind(item)}")])
            records.append(model.from_api(item))
        except ValidationError as exc:
            reasons = "; ".join(str(fe) for fe in exc.field_errors)
            log.warning("%s: skipped record %d, not a readable %s (%s)", where, position, model.__name__, reasons)
    return records


def _json_kind(data: Any) -> str:
    if data is None:
        return "an empty body"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(data), "a number")


def _connection_error(exc: requests.exceptions.RequestException, method: str, url: str, timeout: float) -> APIConnectionError:
    """Name a low-level failure for what it tells the user (was the server reached at all?)."""
    root = _root_cause(exc)
    detail = f"{type(root).__name__}: {str(root).split(': ', 1)[-1][:120]}" if str(root) else type(root).__name__
    if transport.never_reached_server(exc):
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
        return APITimeoutError(message + _maybe_written(method), method=method, url=url)
    elif isinstance(exc, requests.exceptions.SSLError) or isinstance(root, SSLError):
        message = f"{method} {url}: the TLS (https) handshake failed ({detail}). Check the base URL and certificates."
    elif isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        message = f"{method} {url}: the server answered, but the connection broke while the body was read ({detail})."
        message += _maybe_written(method)
    elif isinstance(exc, requests.exceptions.ConnectionError):
        message = f"{method} {url}: the connection was lost before a complete answer came ({detail})."
        message += _maybe_written(method)
    else:
        message = f"{method} {url} could not be sent ({detail})."
    return APIConnectionError(message, method=method, url=url)


def _maybe_written(method: str) -> str:
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


# -- resources ---------------------------------------------------------------------------

def filter_names(filters: tuple[ListFilter, ...], *extra: str) -> dict[str, str]:
    """Python keyword -> wire query parameter, for a model's ``LIST_FILTERS`` and ``extra`` wire names."""
    return {to_snake(wire): wire for wire in (*(f.wire for f in filters), *extra)}


#: List Patients filters: Python name -> wire name (derived from ``Patient.LIST_FILTERS``).
PATIENT_FILTERS = filter_names(Patient.LIST_FILTERS, "sort", "sortDescending")
SORT_FIELDS = tuple(Patient.SORTS)


def check_id(value: Any, name: str) -> int:
    """``value`` as a positive int (numpy ints from DataFrames welcome), else ValidationError."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        number = None
    if number is None or number <= 0:
        raise ValidationError(name, [FieldError(name, f"Must be a positive whole number, got {value!r}.")])
    return number


def query_params(filters: Mapping[str, Any], known: Mapping[str, str]) -> dict[str, Any]:
    """Map snake_case or camelCase filter names to wire query parameters; refuse unknown ones."""
    by_any_name = {**known, **{wire: wire for wire in known.values()}}
    params: dict[str, Any] = {}
    for name, value in filters.items():
        if name not in by_any_name:
            choices = ", ".join(sorted(known))
            raise ValidationError("filters", [FieldError(name, f"Unknown filter. Known filters: {choices}.")])
        if value is None:
            continue
        params[by_any_name[name]] = _query_value(value)
    return params


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple, set)):
        return [_query_value(v) for v in value]
    return value


class Patients:
    """``client.patients``: create, read, update and list patients."""

    PATH = "/api/v3/patient"

    def __init__(self, client: ImpiloClient) -> None:
        self._client = client

    def create(self, patient: Patient | Mapping[str, Any]) -> Patient:
        """Create a patient; returns it as stored, with its new ``id``.

        ``patient`` is a ``Patient`` or a dict in either spelling; it is validated first, so a
        bad record raises ``ValidationError`` and nothing is sent. A duplicate external
        identifier raises ``ConflictError``.
        """
        return read_record(Patient, self.send_create(_as_patient(patient)), written="the patient may have been created")

    def send_create(self, patient: Patient) -> requests.Response:
        """POST an already validated patient and return the raw response (for callers that
        report status and attempts, like the bulk importer)."""
        body = patient.to_api(exclude_none=True)
        body.pop("id", None)  # assigned by the server; the current API refuses it on create
        return self._client.request("POST", self.PATH, json=body)

    def get(self, patient_id: int) -> Patient:
        """The patient with this Impilo id; ``NotFoundError`` when there is none."""
        patient_id = check_id(patient_id, "patientId")
        return read_record(Patient, self._client.request("GET", f"{self.PATH}/{patient_id}"))

    def update(self, patient_id: int, patient: Patient | Mapping[str, Any]) -> Patient:
        """Replace the whole record (PUT): fields left out become empty."""
        response = self.send_update(check_id(patient_id, "patientId"), _as_patient(patient))
        return read_record(Patient, response, written="the patient may have been updated")

    def send_update(self, patient_id: int, patient: Patient) -> requests.Response:
        """PUT an already validated patient and return the raw response (see ``send_create``)."""
        body = patient.to_api() | {"id": patient_id}
        return self._client.request("PUT", f"{self.PATH}/{patient_id}", json=body)

    def patch(self, patient_id: int, changes: PatientPatch | Mapping[str, Any]) -> Patient:
        """Change only the fields given (PATCH), e.g. ``{"email": "new@example.org"}``."""
        patient_id = check_id(patient_id, "patientId")
        if not isinstance(changes, PatientPatch):
            changes = PatientPatch.model_validate(dict(changes))
        body = changes.to_api(exclude_unset=True)
        body.pop("id", None)
        response = self._client.request("PATCH", f"{self.PATH}/{patient_id}", json=body)
        return read_record(Patient, response, written="the patient may have been changed")

    def find_by_external_id(self, external_identifier: str) -> Patient | None:
        """The patient whose external identifier is exactly this one, or None.

        Only an exact match is ever returned, whatever the server's filter does with the value
        (commas, case, partial matches): the form's Load box must never open the wrong patient.
        """
        if not isinstance(external_identifier, str) or not external_identifier:
            raise ValidationError(
                "externalIdentifier",
                [FieldError("externalIdentifier", f"Must be a non-empty string, got {external_identifier!r}.")],
            )
        matches = self.list(size=c.DEFAULT_PAGE_SIZE, external_identifier=[external_identifier])
        return next((p for p in matches if p.external_identifier == external_identifier), None)

    def page(self, page: int = 1, size: int = c.DEFAULT_PAGE_SIZE, **filters: Any) -> Page[Patient]:
        """One page of the patient list (1-based), with the filters of ``list``.

        A list filter with no values (``id=[]``) matches no patient, as ``isin([])`` does; no
        request is sent for it.
        """
        params = query_params(filters, PATIENT_FILTERS)
        _check_sort(params)
        if any(isinstance(value, list) and not value for value in params.values()):
            return Page[Patient](content=[], page=page, size=size, total=0, first=True, last=True)
        params.update(page=page, size=size)
        return read_page(Patient, self._client.request("GET", self.PATH, params=params))

    def list(self, *, size: int = c.MAX_PAGE_SIZE, **filters: Any) -> Iterator[Patient]:
        """Every patient matching the filters, fetching page after page as you iterate.

        Filters, in snake_case or the wire's camelCase: {filters}. The id filters and
        external_identifier take one value or a list; sort is one of {sorts}.
        """
        query_params(filters, PATIENT_FILTERS)  # fail now, not at the first next()
        return _every_page(lambda number: self.page(page=number, size=size, **filters))

    def frame(self, **filters: Any) -> pd.DataFrame:
        """The matching patients as a DataFrame: camelCase columns, nested fields as ``address.city``."""
        from .frames import patient_frame

        return patient_frame(self.list(**filters))


def _every_page(fetch: Callable[[int], Page[Any]]) -> Iterator[Any]:
    """The items of page 1, 2, ... as ``fetch(number)`` returns them, until the last page."""
    number = 1
    while True:
        page = fetch(number)
        yield from page.content
        if page.last or not page.content:
            return
        number += 1


def _check_sort(params: dict[str, Any]) -> None:
    sort = params.get("sort")
    if sort is not None and sort not in SORT_FIELDS:
        raise ValidationError("filters", [FieldError("sort", f"Sort by one of {', '.join(SORT_FIELDS)}, got {sort!r}.")])


def _as_patient(patient: Patient | Mapping[str, Any]) -> Patient:
    if isinstance(patient, Patient):
        # Re-validate: attributes may have been assigned after construction without checks.
        return Patient.model_validate(patient.model_dump(by_alias=True))
    if isinstance(patient, Mapping):
        return Patient.model_validate(dict(patient))
    raise ValidationError("Patient", [FieldError(None, f"Expected a Patient or a dict, got {type(patient).__name__}.")])


#: Webhook-logs filters: Python name -> wire name (derived from ``WebhookLogEntry.LIST_FILTERS``).
WEBHOOK_LOG_FILTERS = filter_names(WebhookLogEntry.LIST_FILTERS)


class Webhooks:
    """``client.webhooks``: subscriptions (one event type each) and the delivery log."""

    PATH = "/api/v3/webhook"

    def __init__(self, client: ImpiloClient) -> None:
        self._client = client

    def create(self, type: str, url: str) -> Webhook:
        """Subscribe ``url`` to one event ``type`` (e.g. ``patient.updated``)."""
        hook = Webhook.model_validate({"type": type, "url": url})
        response = self._client.request("POST", self.PATH, json=hook.to_api(exclude_none=True))
        return read_record(Webhook, response, written="the webhook may have been created")

    def list(self) -> list[Webhook]:
        """Every webhook of the account (a record the client cannot read is skipped, with a warning)."""
        data = self._client.request_json("GET", self.PATH)
        items = data.get("content", []) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise UnexpectedResponseError(
                f"GET {self.PATH} answered with {_json_kind(items)}, not a list of webhooks.", method="GET", url=self.PATH
            )
        return _readable(Webhook, items, where=f"GET {self.PATH}")

    def get(self, webhook_id: int) -> Webhook:
        webhook_id = check_id(webhook_id, "webhookId")
        return read_record(Webhook, self._client.request("GET", f"{self.PATH}/{webhook_id}"))

    def update_url(self, webhook_id: int, url: str) -> Webhook:
        """Point a webhook at a new URL (the API answers 400 when it is unchanged)."""
        webhook_id = check_id(webhook_id, "webhookId")
        change = WebhookUrlChange.model_validate({"url": url})
        # The documented schema marks `type` required too, so send the current one along.
        current = self.get(webhook_id)
        body = {"type": current.type, "url": change.url}
        data = self._client.request_json("PATCH", f"{self.PATH}/{webhook_id}", json=body)
        return Webhook.from_api(data) if data else Webhook.from_api({**current.to_api(), "url": change.url})

    def delete(self, webhook_id: int) -> None:
        webhook_id = check_id(webhook_id, "webhookId")
        self._client.request("DELETE", f"{self.PATH}/{webhook_id}")

    def log_entries(self, **filters: Any) -> Iterator[WebhookLogEntry]:
        """Every delivery-log entry matching the filters, page after page (newest first)."""
        params = query_params(filters, WEBHOOK_LOG_FILTERS)

        def fetch(number: int) -> Page[WebhookLogEntry]:
            page_params = {**params, "page": number, "size": c.MAX_PAGE_SIZE}
            return read_page(WebhookLogEntry, self._client.request("GET", f"{self.PATH}/logs", params=page_params))

        return _every_page(fetch)

    def logs(self, **filters: Any) -> pd.DataFrame:
        """The delivery log as a DataFrame, one row per delivery (newest first).

        Filters, in snake_case or camelCase: {filters} (end_timestamp is exclusive).
        """
        from .frames import webhook_log_frame

        return webhook_log_frame(self.log_entries(**filters))


class WebhookSecretResource:
    """``client.webhook_secret``: the one secret Impilo sends with every delivery."""

    PATH = "/api/v3/webhook-secret"

    def __init__(self, client: ImpiloClient) -> None:
        self._client = client

    def create(self, secret: str, *, replace: bool = False) -> WebhookSecret:
        """Set the secret. With ``replace=True`` an existing one is deleted first (rotation);
        otherwise an existing secret raises ``ConflictError``.
        """
        if not header_safe(secret):
            raise ValidationError("WebhookSecret", [FieldError("secret", HEADER_SAFE_RULE)])
        register_secret(secret)  # before it is sent: a server may echo it in an error
        if replace:
            self.delete()
        response = self._client.request("POST", self.PATH, json={"secret": secret})
        if not response.content:
            return WebhookSecret(secret=secret)
        return read_record(WebhookSecret, response, written="the secret may have been set")

    def get(self) -> WebhookSecret | None:
        """The current secret (shown masked; ``.secret.get_secret_value()`` reveals it), or None."""
        try:
            response = self._client.request("GET", self.PATH)
        except NotFoundError:
            return None
        data = decode_json(response)
        if isinstance(data, dict) and isinstance(data.get("secret"), str):
            register_secret(data["secret"])
        return read_record(WebhookSecret, response)

    def delete(self) -> bool:
        """Remove the secret; False when there was none."""
        try:
            self._client.request("DELETE", self.PATH)
        except NotFoundError:
            return False
        return True


# The filter lists in the docstrings come from the models' LIST_FILTERS tables.
Patients.list.__doc__ = (Patients.list.__doc__ or "").format(filters=", ".join(PATIENT_FILTERS), sorts=", ".join(SORT_FIELDS))
Webhooks.logs.__doc__ = (Webhooks.logs.__doc__ or "").format(filters=", ".join(WEBHOOK_LOG_FILTERS))
