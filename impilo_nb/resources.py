"""The API's resources, hung off the client as in stripe-python and openai-python:
``client.patients``, ``client.webhooks``, ``client.webhook_logs``, ``client.webhook_secret``.

Each resource holds the client and knows its paths; nothing else does. Names follow one rule:
``list()`` iterates over records (page after page, as you iterate, where the API pages),
``frame()`` returns them as a DataFrame, ``get()``/``create()``/``update()``/``patch()``/
``delete()`` act on one record.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic.alias_generators import to_snake

from . import _constants as c
from .errors import FieldError, NotFoundError, UnexpectedResponseError, ValidationError, register_secret
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
    header_safe,
)
from .responses import decode_json, json_kind, page_envelope, read_page, read_record, readable, wire_records

if TYPE_CHECKING:
    import pandas as pd
    import requests

    from .client import ImpiloClient

__all__ = ["PATIENT_FILTERS", "WEBHOOK_LOG_FILTERS", "Patients", "WebhookLogs", "WebhookSecrets", "Webhooks"]



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


def _check_page_size(size: Any) -> int:
    """``size`` as a page size the API takes (1 to ``MAX_PAGE_SIZE``), else ValidationError: checked
    before any request, as a server may answer another size than asked rather than refuse it."""
    number = check_id(size, "size")
    if number > c.MAX_PAGE_SIZE:
        problem = f"Must be at most {c.MAX_PAGE_SIZE} (the API's largest page), got {size!r}."
        raise ValidationError("size", [FieldError("size", problem)])
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
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping)):
        # Any collection (a Series, an array, an Index, a range) is a list of values; missing
        # ones are left out, so an empty or all-missing one matches nobody (see Patients.page).
        return [_query_value(v.item() if hasattr(v, "item") else v) for v in value if not _is_missing(v)]
    return value


def _is_missing(value: Any) -> bool:
    """None, NaN, NaT or pandas' NA (the only values not equal to themselves, or not comparable)."""
    if value is None:
        return True
    try:
        return bool(value != value)
    except TypeError:  # pandas.NA refuses to be a bool
        return True


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
        return read_record(Patient, self._client.request("GET", f"{self.PATH}/{patient_id}"), expected_id=patient_id)

    def update(self, patient_id: int, patient: Patient | Mapping[str, Any]) -> Patient:
        """Replace the whole record (PUT): fields left out become empty."""
        patient_id = check_id(patient_id, "patientId")
        response = self.send_update(patient_id, _as_patient(patient))
        return read_record(Patient, response, written="the patient may have been updated", expected_id=patient_id)

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
        return read_record(Patient, response, written="the patient may have been changed", expected_id=patient_id)

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
        response = self._request_page(check_id(page, "page"), _check_page_size(size), filters)
        if response is None:
            return Page[Patient](content=[], page=page, size=size, total=0, first=True, last=True)
        return read_page(Patient, response)

    def _request_page(self, page: int, size: int, filters: Mapping[str, Any]) -> requests.Response | None:
        """GET one page of the list; None, sending nothing, when a list filter has no values."""
        params = query_params(filters, PATIENT_FILTERS)
        _check_sort(params)
        if any(isinstance(value, list) and not value for value in params.values()):
            return None
        params.update(page=page, size=size)
        return self._client.request("GET", self.PATH, params=params)

    def list(self, *, size: int = c.MAX_PAGE_SIZE, **filters: Any) -> Iterator[Patient]:
        """Every patient matching the filters, fetching page after page as you iterate.

        Filters, in snake_case or the wire's camelCase: {filters}. The id filters and
        external_identifier take one value or a list; sort is one of {sorts}.
        """
        query_params(filters, PATIENT_FILTERS)  # fail now, not at the first next()
        size = _check_page_size(size)
        return _every_page(lambda number: self._request_page(number, size, filters),
                           lambda items, where: readable(Patient, items, where=where), Patient)

    def frame(self, **filters: Any) -> pd.DataFrame:
        """The matching patients as a DataFrame: camelCase columns, nested fields as ``address.city``.

        Takes ``list``'s filters and ``size``. The same rows as ``list`` yields, read without a
        ``Patient`` per row (``responses.wire_records``), so a large listing costs little more
        than its download.
        """
        from .frames import patient_frame

        size = _check_page_size(filters.pop("size", c.MAX_PAGE_SIZE))
        query_params(filters, PATIENT_FILTERS)  # fail now, before any request
        return patient_frame(_every_page(lambda number: self._request_page(number, size, filters),
                                         lambda items, where: wire_records(Patient, items, where=where), Patient))


def _every_page(
    request: Callable[[int], requests.Response | None], read: Callable[[list[Any], str], list[Any]], model: type[Any],
) -> Iterator[Any]:
    """The records of page 1, 2, ... until the last: ``request(number)`` fetches a page (None:
    nothing was asked, as no record can match), ``read(items, where)`` reads its records.

    Only ``last`` or a page with no items ends the walk, so a page whose every record is
    unreadable (skipped with a warning) does not stop it early. A server that answers another
    page than the one asked for (one numbering pages from 0), or the very same records again
    without ever saying ``last``, is an ``UnexpectedResponseError``: never a walk that loops for
    ever, skips records or repeats them.
    """
    number, previous = 1, None
    while (response := request(number)) is not None:
        envelope, where = page_envelope(model, response)
        if envelope.page != number:
            _not_the_next_page(response, where, f"answered page {envelope.page} when asked for page {number}"
                               " (the API numbers pages from 1)")
        if envelope.content and envelope.content == previous:
            _not_the_next_page(response, where, f"answered page {number} with the same records as page {number - 1}"
                               " and never said it was the last")
        yield from read(envelope.content, where)
        if envelope.last or not envelope.content:
            return
        previous, number = envelope.content, number + 1


def _not_the_next_page(response: requests.Response, where: str, problem: str) -> NoReturn:
    raise UnexpectedResponseError(
        f"{where} {problem}: the listing stops here rather than loop, skip or repeat records. The server does not"
        " page as the API documents; check the base URL points at the Impilo API.",
        method=response.request.method, url=response.url,
    )


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
    """``client.webhooks``: subscriptions, one event type each."""

    PATH = "/api/v3/webhook"

    def __init__(self, client: ImpiloClient) -> None:
        self._client = client

    def create(self, type: str, url: str) -> Webhook:  # noqa: A002 - the API's own word, as in the design
        """Subscribe ``url`` to one event ``type`` (e.g. ``patient.updated``)."""
        hook = Webhook.model_validate({"type": type, "url": url})
        response = self._client.request("POST", self.PATH, json=hook.to_api(exclude_none=True))
        return read_record(Webhook, response, written="the webhook may have been created")

    def list(self) -> Iterator[Webhook]:
        """Every webhook of the account (a record the client cannot read is skipped, with a warning).

        Fetched at the first ``next()``, all at once (the API does not page subscriptions).
        """
        data = self._client.request_json("GET", self.PATH)
        items = data.get("content", []) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise UnexpectedResponseError(
                f"GET {self.PATH} answered with {json_kind(items)}, not a list of webhooks.", method="GET", url=self.PATH
            )
        yield from readable(Webhook, items, where=f"GET {self.PATH}")

    def frame(self) -> pd.DataFrame:
        """The webhooks as a DataFrame: ``id, type, url``."""
        import pandas as pd

        return pd.DataFrame([hook.to_api() for hook in self.list()], columns=["id", "type", "url"]).astype(
            {"id": "Int64", "type": "string", "url": "string"}
        )

    def get(self, webhook_id: int) -> Webhook:
        webhook_id = check_id(webhook_id, "webhookId")
        return read_record(Webhook, self._client.request("GET", f"{self.PATH}/{webhook_id}"), expected_id=webhook_id)

    def update_url(self, webhook_id: int, url: str) -> Webhook:
        """Point a webhook at a new URL (the API answers 400 when it is unchanged)."""
        webhook_id = check_id(webhook_id, "webhookId")
        change = WebhookUrlChange.model_validate({"url": url})
        # The documented schema marks `type` required too, so send the current one along.
        current = self.get(webhook_id)
        response = self._client.request("PATCH", f"{self.PATH}/{webhook_id}", json={"type": current.type, "url": change.url})
        if not response.content:  # the docs show no response body
            return Webhook.from_api({**current.to_api(), "url": change.url})
        return read_record(Webhook, response, written="the URL may have been changed")

    def delete(self, webhook_id: int) -> None:
        webhook_id = check_id(webhook_id, "webhookId")
        self._client.request("DELETE", f"{self.PATH}/{webhook_id}")

    def logs(self, **filters: Any) -> pd.DataFrame:
        """The delivery log as a DataFrame: ``client.webhook_logs.frame(**filters)``."""
        return self._client.webhook_logs.frame(**filters)


class WebhookLogs:
    """``client.webhook_logs``: Impilo's log of webhook deliveries, one entry per delivery.

    Filters, in snake_case or camelCase: {filters} (end_timestamp is exclusive).
    """

    PATH = "/api/v3/webhook/logs"

    def __init__(self, client: ImpiloClient) -> None:
        self._client = client

    def list(self, **filters: Any) -> Iterator[WebhookLogEntry]:
        """Every delivery-log entry matching the filters, page after page (newest first)."""
        params = query_params(filters, WEBHOOK_LOG_FILTERS)

        def request(number: int) -> requests.Response:
            return self._client.request("GET", self.PATH, params={**params, "page": number, "size": c.MAX_PAGE_SIZE})

        return _every_page(request, lambda items, where: readable(WebhookLogEntry, items, where=where), WebhookLogEntry)

    def frame(self, **filters: Any) -> pd.DataFrame:
        """The delivery log as a DataFrame, one row per delivery (newest first); ids Int64,
        timestamps UTC; the documented columns always, a server's extra ones after them."""
        from .frames import webhook_log_frame

        return webhook_log_frame(self.list(**filters))


class WebhookSecrets:
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
            return WebhookSecret.model_validate({"secret": secret})
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
WebhookLogs.__doc__ = (WebhookLogs.__doc__ or "").format(filters=", ".join(WEBHOOK_LOG_FILTERS))
