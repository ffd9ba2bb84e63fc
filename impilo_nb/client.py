"""ImpiloClient: one pooled HTTP session to the Impilo v3 API, with resources hung off it.

    client = ImpiloClient(base_url="https://app.impiloplatform.com", api_key="...")
    client.patients.create({...}); client.patients.list(name="Rivera")

Every failure surfaces as an ``impilo_nb.errors`` exception; the API key never appears in a
repr, a log line or an error text.
"""

from __future__ import annotations

import email.utils
import logging
import operator
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from . import _constants as c
from ._version import __version__
from .errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    FieldError,
    NotFoundError,
    UnexpectedResponseError,
    ValidationError,
    error_from_response,
)
from .models import (
    HEADER_SAFE_RULE,
    Page,
    Patient,
    PatientPatch,
    Webhook,
    WebhookLogEntry,
    WebhookSecret,
    WebhookUrlChange,
    header_safe,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ImpiloClient", "Patients", "WebhookSecretResource", "Webhooks"]

log = logging.getLogger("impilo_nb")

#: Methods that may be retried after a response was possibly lost: repeating them cannot do
#: more than the first attempt (PUT replaces, PATCH sets fields, DELETE is final).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})

#: Statuses worth retrying for idempotent methods: the request may simply be repeated.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

#: Statuses worth retrying even for POST: both say the server refused the request *before*
#: acting on it (rate limited, or not accepting work), so a retry cannot create a duplicate.
#: A 502/504 from a gateway may hide a request that did reach the API, so POST stops there.
RETRY_STATUSES_POST = frozenset({429, 503})


class ImpiloClient:
    """A connection to the Impilo v3 API (or the embedded sandbox).

    Args:
        base_url: e.g. ``https://app.impiloplatform.com``; default ``$IMPILO_BASE_URL``.
        api_key: sent as ``Impilo-API-Key``; default ``$IMPILO_API_KEY``.
        timeout: seconds to wait to connect and for each read.
        max_retries: retries after a connection error or a 429/502/503/504, with exponential
            backoff and jitter, honouring ``Retry-After``. POST is retried only when it surely
            did not reach the server (connection refused, connect timeout) or on 429/503.

    Raises:
        ConfigurationError: no base URL or API key was given by any means.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = c.DEFAULT_TIMEOUT,
        max_retries: int = c.DEFAULT_MAX_RETRIES,
    ) -> None:
        base_url = base_url or os.environ.get(c.ENV_BASE_URL)
        api_key = api_key or os.environ.get(c.ENV_API_KEY)
        if not base_url:
            raise ConfigurationError(
                f"No Impilo base URL: pass base_url=..., set {c.ENV_BASE_URL} "
                "(e.g. https://app.impiloplatform.com), or call impilo_nb.connect() for the embedded sandbox."
            )
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(f"base_url must be an http(s) URL such as https://app.impiloplatform.com, got {base_url!r}.")
        if not api_key:
            raise ConfigurationError(
                f"No Impilo API key: pass api_key=..., or set {c.ENV_API_KEY}. "
                "Keys are issued in the Impilo customer portal; the embedded sandbox's key is 'sandbox-key'."
            )
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}.")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(f"max_retries must be a whole number >= 0, got {max_retries!r}.")
        self.base_url = base_url.rstrip("/")
        #: Monotonic time before which no request is sent: set by a 429's Retry-After, so every
        #: thread sharing this client slows down together instead of each hammering the limit.
        self._paused_until = 0.0
        self._pause_lock = threading.Lock()
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=c.DEFAULT_POOL_SIZE, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update(
            {
                c.API_KEY_HEADER: api_key,
                "Accept": "application/json",
                "User-Agent": f"impilo_nb/{__version__} python-requests/{requests.__version__}",
            }
        )
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
        """Send one API request with retries; return the successful response or raise.

        ``path`` is relative to the base URL (``/api/v3/patient``).
        """
        method = method.upper()
        url = self.base_url + path
        attempt = 0
        while True:
            self._wait_if_paused()
            try:
                response = self._session.request(method, url, params=params, json=json, timeout=self.timeout)
            except requests.exceptions.RequestException as exc:
                error = _connection_error(exc, method, url, self.timeout)
                if attempt < self.max_retries and _retryable_failure(method, exc):
                    delay = _backoff(attempt)
                    log.info("%s %s failed (%s); retry %d in %.2fs", method, path, error.message, attempt + 1, delay)
                    time.sleep(delay)
                    attempt += 1
                    continue
                raise error from exc
            if response.status_code < 400:
                response.attempts = attempt + 1  # type: ignore[attr-defined]  # read by bulk results
                return response
            statuses = RETRY_STATUSES if method in IDEMPOTENT_METHODS else RETRY_STATUSES_POST
            retry_after = _retry_after(response)
            if response.status_code == 429 and retry_after is not None and retry_after <= c.MAX_RETRY_AFTER:
                self._pause(retry_after)
            if attempt < self.max_retries and response.status_code in statuses:
                delay = retry_after if retry_after is not None else _backoff(attempt)
                if delay <= c.MAX_RETRY_AFTER:
                    log.info("%s %s got %d; retry %d in %.2fs", method, path, response.status_code, attempt + 1, delay)
                    response.close()
                    time.sleep(delay)
                    attempt += 1
                    continue
            error = error_from_response(response)
            error.attempts = attempt + 1  # type: ignore[attr-defined]
            raise error

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


def _connection_error(exc: requests.exceptions.RequestException, method: str, url: str, timeout: float) -> APIConnectionError:
    if isinstance(exc, requests.exceptions.Timeout):
        return APITimeoutError(
            f"{method} {url} got no answer within {timeout:g}s. The server may be overloaded; retry later or raise timeout=.",
            method=method,
            url=url,
        )
    reason = "connection refused or host unreachable" if _never_reached_server(exc) else type(exc).__name__
    return APIConnectionError(
        f"Could not reach {url} ({reason}). Is the server running and the base URL right? "
        "For the embedded sandbox, use impilo_nb.connect() or `make lab`.",
        method=method,
        url=url,
    )


def _never_reached_server(exc: requests.exceptions.RequestException) -> bool:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return isinstance(reason, NewConnectionError)
    return False


def _retryable_failure(method: str, exc: requests.exceptions.RequestException) -> bool:
    if not isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return False  # invalid URL, too many redirects...: repeating cannot help
    return method in IDEMPOTENT_METHODS or _never_reached_server(exc)


def _backoff(attempt: int) -> float:
    return random.uniform(0, min(c.DEFAULT_BACKOFF_CAP, c.DEFAULT_BACKOFF_BASE * 2**attempt))


def _retry_after(response: requests.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date, RFC 9110 §10.2.3)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# -- resources ---------------------------------------------------------------------------

#: List Patients filters: Python name -> wire name (impilo-api.md §2.4).
PATIENT_FILTERS = {
    "id": "id",
    "site_id": "siteId",
    "external_identifier": "externalIdentifier",
    "email": "email",
    "name": "name",
    "archived": "archived",
    "enrolled": "enrolled",
    "date_of_birth_min": "dateOfBirthMin",
    "date_of_birth_max": "dateOfBirthMax",
    "postal_code": "postalCode",
    "country": "country",
    "sort": "sort",
    "sort_descending": "sortDescending",
}
SORT_FIELDS = ("firstName", "lastName", "patientId")


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
        return Patient.from_api(decode_json(self.send_create(_as_patient(patient))))

    def send_create(self, patient: Patient) -> requests.Response:
        """POST an already validated patient and return the raw response (for callers that
        report status and attempts, like the bulk importer)."""
        body = patient.to_api(exclude_none=True)
        body.pop("id", None)  # assigned by the server; the current API refuses it on create
        return self._client.request("POST", self.PATH, json=body)

    def get(self, patient_id: int) -> Patient:
        """The patient with this Impilo id; ``NotFoundError`` when there is none."""
        patient_id = check_id(patient_id, "patientId")
        return Patient.from_api(self._client.request_json("GET", f"{self.PATH}/{patient_id}"))

    def update(self, patient_id: int, patient: Patient | Mapping[str, Any]) -> Patient:
        """Replace the whole record (PUT): fields left out become empty."""
        return Patient.from_api(decode_json(self.send_update(check_id(patient_id, "patientId"), _as_patient(patient))))

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
        return Patient.from_api(self._client.request_json("PATCH", f"{self.PATH}/{patient_id}", json=body))

    def find_by_external_id(self, external_identifier: str) -> Patient | None:
        """The patient with this external identifier, or None."""
        if not isinstance(external_identifier, str) or not external_identifier:
            raise ValidationError(
                "externalIdentifier",
                [FieldError("externalIdentifier", f"Must be a non-empty string, got {external_identifier!r}.")],
            )
        page = self.page(page=1, size=1, external_identifier=external_identifier)
        return page.content[0] if page.content else None

    def page(self, page: int = 1, size: int = c.DEFAULT_PAGE_SIZE, **filters: Any) -> Page[Patient]:
        """One page of the patient list (1-based), with the filters of ``list``."""
        params = query_params(filters, PATIENT_FILTERS)
        _check_sort(params)
        params.update(page=page, size=size)
        data = self._client.request_json("GET", self.PATH, params=params)
        return Page[Patient].from_api(data)

    def list(self, *, size: int = c.MAX_PAGE_SIZE, **filters: Any) -> Iterator[Patient]:
        """Every patient matching the filters, fetching page after page as you iterate.

        Filters (snake_case or the wire's camelCase): id, site_id, external_identifier (each
        one value or a list), email, name, archived, enrolled, date_of_birth_min,
        date_of_birth_max, postal_code, country, sort (firstName, lastName, patientId),
        sort_descending.
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


#: Webhook-logs filters: Python name -> wire name (impilo-api.md §3.6).
WEBHOOK_LOG_FILTERS = {
    "webhook_type": "webhookType",
    "retry_attempts_min": "retryAttemptsMin",
    "retry_attempts_max": "retryAttemptsMax",
    "last_response_status": "lastResponseStatus",
    "start_last_retry_timestamp": "startLastRetryTimestamp",
    "end_last_retry_timestamp": "endLastRetryTimestamp",
    "start_timestamp": "startTimestamp",
    "end_timestamp": "endTimestamp",
}


class Webhooks:
    """``client.webhooks``: subscriptions (one event type each) and the delivery log."""

    PATH = "/api/v3/webhook"

    def __init__(self, client: ImpiloClient) -> None:
        self._client = client

    def create(self, type: str, url: str) -> Webhook:
        """Subscribe ``url`` to one event ``type`` (e.g. ``patient.updated``)."""
        hook = Webhook.model_validate({"type": type, "url": url})
        return Webhook.from_api(self._client.request_json("POST", self.PATH, json=hook.to_api(exclude_none=True)))

    def list(self) -> list[Webhook]:
        """Every webhook of the account."""
        data = self._client.request_json("GET", self.PATH)
        items = data.get("content", []) if isinstance(data, dict) else data or []
        return [Webhook.from_api(item) for item in items]

    def get(self, webhook_id: int) -> Webhook:
        webhook_id = check_id(webhook_id, "webhookId")
        return Webhook.from_api(self._client.request_json("GET", f"{self.PATH}/{webhook_id}"))

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
            data = self._client.request_json(
                "GET", f"{self.PATH}/logs", params={**params, "page": number, "size": c.MAX_PAGE_SIZE}
            )
            return Page[WebhookLogEntry].from_api(data)

        return _every_page(fetch)

    def logs(self, **filters: Any) -> pd.DataFrame:
        """The delivery log as a DataFrame, one row per delivery (newest first).

        Filters (snake_case or camelCase): webhook_type, retry_attempts_min, retry_attempts_max,
        last_response_status, start_last_retry_timestamp, end_last_retry_timestamp,
        start_timestamp, end_timestamp (exclusive).
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
        if replace:
            self.delete()
        data = self._client.request_json("POST", self.PATH, json={"secret": secret})
        return WebhookSecret.from_api(data or {"secret": secret})

    def get(self) -> WebhookSecret | None:
        """The current secret (shown masked; ``.secret.get_secret_value()`` reveals it), or None."""
        try:
            return WebhookSecret.from_api(self._client.request_json("GET", self.PATH))
        except NotFoundError:
            return None

    def delete(self) -> bool:
        """Remove the secret; False when there was none."""
        try:
            self._client.request("DELETE", self.PATH)
        except NotFoundError:
            return False
        return True
