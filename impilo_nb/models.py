"""The Impilo wire format as pydantic models: Patient, Address, Site, Page.

Attributes are snake_case in Python and camelCase on the wire; input may use either spelling.
What users build is checked strictly, so a bad record is refused *before* a request is sent.
What a server returns is read leniently (``from_api``): a record the platform accepted long ago
must never make a listing fail, so format checks are relaxed there while types still hold.
Fields a server sends that these models do not know are kept and sent back unchanged.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar, Generic, NamedTuple, Self, TypeVar

import email_validator
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from .errors import FieldError, ValidationError
from .fields import Facts, ListFilter, facts, nested_model

__all__ = [
    "SEX_VALUES",
    "WEBHOOK_TYPES",
    "Address",
    "Change",
    "Page",
    "Patient",
    "PatientPatch",
    "Site",
    "Webhook",
    "WebhookEvent",
    "WebhookLogEntry",
    "WebhookSecret",
    "WebhookUrlChange",
    "WireModel",
    "check_http_url",
    "field_errors",
    "flatten_record",
    "get_path",
    "header_safe",
    "patient_changes",
    "prune_empty_objects",
    "set_path",
]

#: The values the API documents for ``sex``.
SEX_VALUES = ("female", "male", "other", "unknown")

#: Every event type the public docs name (docs/api-decisions.md#event-types; the archived lists are cut off,
#: so the platform may know more). One type per webhook subscription.
WEBHOOK_TYPES = (
    "patient.created",
    "patient.updated",
    "device.associationCreated",
    "device.associationRemoved",
    "device.lowBattery",
    "device.weakSignal",
    "device.healthcheck",
    "order.status",
    "order.statusFull",
    "return.statusFull",
    "procurement.status",
    "procurement.statusFull",
    "transferRequest.statusFull",
    "supportTicket.event",
    "reading.bloodGlucose",
    "reading.bloodOxygen",
    "reading.bloodPressure",
    "reading.ecg",
    "reading.temperature",
    "reading.weight",
    "reading.peakFlow",
    "reading.sleepMatActivity",
    "reading.sleepMatDuration",
)

#: JSON-schema words for "required text": the OpenAPI document says what the API enforces.
NON_BLANK: dict[str, Any] = {"minLength": 1, "pattern": r"\S"}

#: Dates of birth before this are refused as typos (e.g. 0975 for 1975).
EARLIEST_BIRTH_DATE = dt.date(1900, 1, 1)

#: Validation context for data that came from a server (see the module docstring).
LENIENT = {"lenient": True}

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A datetime that is exactly midnight UTC, as one old docs sample renders dateOfBirth.
_MIDNIGHT = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ]00:00(:00(\.0+)?)?(Z|[+-]00:?00)?$")

_FRIENDLY_MESSAGES = {
    "missing": "This field is required.",
    "string_type": "Must be text.",
    "bool_parsing": "Must be true or false.",
    "bool_type": "Must be true or false.",
    "int_parsing": "Must be a whole number.",
    "int_type": "Must be a whole number.",
    "model_type": "Must be an object with named fields.",
    "model_attributes_type": "Must be an object with named fields.",
    "json_invalid": "The body is not valid JSON.",
}


def _is_lenient(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("lenient"))


def _error(kind: str, message: str) -> PydanticCustomError:
    """A pydantic error whose text is ``message`` as written (no context, so no templating)."""
    return PydanticCustomError(kind, message)


def field_errors(errors: Iterable[Mapping[str, Any]], *, skip: int = 0) -> list[FieldError]:
    """pydantic error dicts as ``FieldError``s with camelCase dotted paths and plain words.

    ``skip`` drops leading location parts (FastAPI prefixes ``body``/``query``).
    """
    result = []
    for err in errors:
        # Always the wire's camelCase path, whichever spelling the input used.
        field = ".".join(to_camel(part) if isinstance(part, str) else str(part) for part in err["loc"][skip:]) or None
        result.append(FieldError(field, _FRIENDLY_MESSAGES.get(err["type"], err["msg"])))
    return result


class WireModel(BaseModel):
    """Base of every model: camelCase aliases, unknown fields kept, our ``ValidationError``."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
    )

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            # from None: the field errors say everything; pydantic's chained trace only adds noise.
            raise ValidationError(type(self).__name__, field_errors(exc.errors(include_url=False))) from None

    # Nested models are then validated inside pydantic-core (keeping the lenient context)
    # instead of through this wrapper; pydantic marks its own __init__ the same way.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """Validate ``obj`` (a dict, either spelling); raises impilo_nb's ``ValidationError``."""
        try:
            return super().model_validate(obj, **kwargs)
        except PydanticValidationError as exc:
            raise ValidationError(cls.__name__, field_errors(exc.errors(include_url=False))) from None

    @classmethod
    def from_api(cls, data: Any) -> Self:
        """Read a record a server returned, with format checks relaxed (see module docstring)."""
        return cls.model_validate(data, context=LENIENT)

    def to_api(self, *, exclude_none: bool = False, exclude_unset: bool = False) -> dict[str, Any]:
        """The JSON-ready camelCase dict to send on the wire."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=exclude_none, exclude_unset=exclude_unset)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>{html.escape(str(v))}</td></tr>"
            for k, v in flatten_record(self.to_api(exclude_none=True)).items()
        )
        return f"<table><caption style='text-align:left'><b>{type(self).__name__}</b></caption>{rows}</table>"


def flatten_record(data: dict[str, Any], prefix: str = "", *, drop_nulls: bool = False) -> dict[str, Any]:
    """Nested dicts as dotted keys (``{"address": {"city": x}}`` -> ``{"address.city": x}``).

    A null where an object belongs (``"address": null``) gives no key, so it does not clash
    with the object's parts in other records. With ``drop_nulls`` every null value gives no
    key, so "missing" and "null" compare equal (as ``patient_changes`` needs).
    """
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten_record(value, f"{prefix}{key}.", drop_nulls=drop_nulls))
        elif value is None and (drop_nulls or key in _OBJECT_KEYS):
            continue
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def get_path(record: dict[str, Any] | None, path: str) -> Any:
    """The value at a dotted path (``"address.city"``), or None where any part is missing."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def set_path(record: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at a dotted path, creating the nested objects on the way."""
    *parents, last = path.split(".")
    for part in parents:
        if not isinstance(record.get(part), dict):
            record[part] = {}
        record = record[part]
    record[last] = value


def prune_empty_objects(record: dict[str, Any]) -> None:
    """Nested objects whose parts are all empty become None: no address rather than an empty one.

    An object that holds anything (a site's id the form does not show, say) is kept.
    """
    for key, value in list(record.items()):
        if isinstance(value, dict):
            prune_empty_objects(value)
            if all(v is None for v in value.values()):
                record[key] = None


def _required_when_sent(model: type[BaseModel]) -> list[str]:
    """The wire names of a model's fields marked ``required_when_sent``."""
    return [info.alias or to_camel(name) for name, info in model.model_fields.items() if facts(model, name).required_when_sent]


class Address(WireModel):
    """A postal address; the parts marked ``required_when_sent`` must be there when one is sent."""

    model_config = ConfigDict(json_schema_extra=lambda schema: schema.update(required=_required_when_sent(Address)))

    line_one: Annotated[str | None, Facts("Line one", personal=True, required_when_sent=True)] = None
    line_two: Annotated[str | None, Facts("Line two", personal=True)] = None
    line_three: Annotated[str | None, Facts("Line three", personal=True)] = None
    city: Annotated[str | None, Facts("City", required_when_sent=True)] = None
    state: Annotated[str | None, Facts("State", required_when_sent=True)] = None
    zip_code: Annotated[str | None, Facts("Zip code", required_when_sent=True)] = None
    country: Annotated[str | None, Facts("Country", required_when_sent=True)] = None
    note: Annotated[str | None, Facts("Note")] = None

    @model_validator(mode="after")
    def _required_parts(self, info: ValidationInfo) -> Address:
        if _is_lenient(info):
            return self
        required = _required_when_sent(Address)
        data = self.model_dump(by_alias=True)
        missing = [name for name in required if is_blank(data.get(name) or "")]
        if missing:
            raise _error("address_incomplete", f"An address needs {', '.join(required)}; missing: {', '.join(missing)}.")
        return self


class Site(WireModel):
    """The site responsible for a patient, as embedded in the patient record."""

    id: Annotated[int | None, Facts("Site id")] = None
    name: Annotated[str | None, Facts("Site name")] = None
    active: Annotated[bool | None, Facts("Site active")] = None
    phone_number: Annotated[str | None, Facts("Site phone")] = None
    address: Annotated[Address | None, Facts("Site address")] = None


class Patient(WireModel):
    """A patient as the Impilo v3 API stores it. ``id`` is assigned by the server."""

    id: Annotated[int | None, Facts("Impilo id")] = None
    external_identifier: Annotated[str | None, Facts("External id")] = None
    first_name: Annotated[str, Facts("First name", personal=True)] = Field(json_schema_extra=NON_BLANK)
    last_name: Annotated[str, Facts("Last name", personal=True)] = Field(json_schema_extra=NON_BLANK)
    date_of_birth: Annotated[dt.date | None, Facts("Date of birth", personal=True)] = None
    sex: Annotated[str | None, Facts("Sex", choices=SEX_VALUES)] = Field(
        default=None, json_schema_extra={"anyOf": [{"type": "string", "enum": list(SEX_VALUES)}, {"type": "null"}]}
    )
    email: Annotated[str | None, Facts("Email", personal=True)] = None
    phone_number: Annotated[str | None, Facts("Phone", personal=True)] = None
    enrolled: Annotated[bool | None, Facts("Enrolled")] = None
    archived: Annotated[bool | None, Facts("Archived")] = None
    address: Annotated[Address | None, Facts("Address")] = None
    site: Annotated[Site | None, Facts("Site")] = None

    #: The List Patients query (docs/api-decisions.md#list-patients): client and sandbox derive
    #: their filters from this table.
    LIST_FILTERS: ClassVar[tuple[ListFilter, ...]] = (
        ListFilter("id", ("id",), "any_of", int),
        ListFilter("siteId", ("site.id",), "any_of", int),
        ListFilter("externalIdentifier", ("externalIdentifier",), "any_of"),
        ListFilter("email", ("email",), "equal_ci"),
        ListFilter("name", ("firstName", "lastName"), "contains_ci"),
        ListFilter("archived", ("archived",), "flag", bool),
        ListFilter("enrolled", ("enrolled",), "flag", bool),
        ListFilter("dateOfBirthMin", ("dateOfBirth",), "min", dt.date),
        ListFilter("dateOfBirthMax", ("dateOfBirth",), "max", dt.date),
        ListFilter("postalCode", ("address.zipCode",), "equal"),
        ListFilter("country", ("address.country",), "equal_ci"),
    )
    #: List Patients ``sort`` values and the field each sorts by.
    SORTS: ClassVar[dict[str, str]] = {"firstName": "firstName", "lastName": "lastName", "patientId": "id"}

    @model_validator(mode="before")
    @classmethod
    def _names_from_a_server(cls, data: Any, info: ValidationInfo) -> Any:
        # A record a server returns without names is shown with empty ones, not refused: one bad
        # record must not make a whole listing unreadable.
        if _is_lenient(info) and isinstance(data, dict):
            for alias, name in (("firstName", "first_name"), ("lastName", "last_name")):
                if data.get(alias) is None and data.get(name) is None:
                    data = {**data, alias: ""}
        return data

    @field_validator("first_name", "last_name", mode="before")
    @classmethod
    def _name_present(cls, value: Any, info: ValidationInfo) -> Any:
        if _is_lenient(info) and isinstance(value, str):
            return value
        if value is None or (isinstance(value, str) and is_blank(value)):
            raise _error("missing", "This field is required (invisible characters alone do not count).")
        return value

    @field_validator("date_of_birth", mode="before")
    @classmethod
    def _real_date(cls, value: Any) -> Any:
        return parse_date(value)

    @field_validator("date_of_birth")
    @classmethod
    def _plausible_birth(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        if value is None or _is_lenient(info):
            return value
        if value > dt.date.today():
            raise _error("date_future", f"A date of birth cannot be in the future (got {value.isoformat()}).")
        if value < EARLIEST_BIRTH_DATE:
            raise _error(
                "date_too_old",
                f"A date of birth before {EARLIEST_BIRTH_DATE.isoformat()} is surely a typo (got {value.isoformat()}).",
            )
        return value

    @field_validator("email", mode="before")
    @classmethod
    def _email_shape(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or value == "":
            return None
        if not isinstance(value, str) or _is_lenient(info):
            return value
        try:
            email_validator.validate_email(value, check_deliverability=False)
        except email_validator.EmailNotValidError as exc:
            raise _error("email_invalid", f"Not an email address: {value!r}. {exc}") from None
        return value  # kept as typed: normalising would change the external identifier

    @field_validator("sex", mode="before")
    @classmethod
    def _known_sex(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or value == "":
            return None
        if isinstance(value, str) and value.lower() in SEX_VALUES:
            return value.lower()
        if _is_lenient(info) and isinstance(value, str):
            return value
        raise _error("sex_invalid", f"Must be one of {', '.join(SEX_VALUES)} (got {value!r}).")

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class Change(NamedTuple):
    """One field that differs between two versions of a record (dotted wire path)."""

    field: str
    old: Any
    new: Any


def patient_changes(old: Patient, new: Patient) -> list[Change]:
    """What differs between two versions of a patient, field by field, ``id`` excluded.

    Compares the wire form, so ``None`` and a missing value are the same and nested objects
    are compared part by part (``address.city``).
    """
    before = flatten_record(old.to_api(), drop_nulls=True)
    after = flatten_record(new.to_api(), drop_nulls=True)
    fields = [f for f in dict.fromkeys([*after, *before]) if f != "id"]
    return [Change(f, before.get(f), after.get(f)) for f in fields if before.get(f) != after.get(f)]


class PatientPatch(Patient):
    """A partial change for PATCH: only the fields given are sent; names may be left out."""

    first_name: str | None = Field(default=None, json_schema_extra=NON_BLANK)  # type: ignore[assignment]
    last_name: str | None = Field(default=None, json_schema_extra=NON_BLANK)  # type: ignore[assignment]


def is_valid_unicode(text: str) -> bool:
    """Whether ``text`` has UTF-8 bytes: no lone surrogate (text read with
    ``errors="surrogateescape"`` may hold one), which nothing can store, hash or send."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_blank(text: str) -> bool:
    """True when ``text`` shows nothing: only spaces and invisible characters (zero-width
    spaces, joiners, byte-order marks, controls), which would make a name look empty in every
    list while passing a plain ``strip()``."""
    return all(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp") for ch in text)


def parse_date(value: Any) -> dt.date | None:
    """A date from ``YYYY-MM-DD``, a midnight ISO datetime, or a date/datetime object.

    Raises a pydantic custom error (turned into a field error) for anything else, naming the
    value and the expected form, so "1987-02-30" is reported as not a real date.
    """
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):  # includes pandas.Timestamp
        if value.time() != dt.time(0, 0):
            raise _error("date_has_time", f"A date has no time of day (got {value}).")
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        midnight = _MIDNIGHT.match(text)
        if midnight:
            text = midnight.group(1)
        if _ISO_DATE.match(text):
            try:
                return dt.date.fromisoformat(text)
            except ValueError:
                raise _error("date_invalid", f"Not a real date: {value!r}.") from None
    raise _error("date_format", f"Use a date written YYYY-MM-DD (got {value!r}).")


T = TypeVar("T")


class Page(WireModel, Generic[T]):
    """One page of a paged list: ``{content, page, size, total, first, last}``; pages are 1-based."""

    content: list[T]
    page: int
    size: int
    total: int
    first: bool
    last: bool


class Webhook(WireModel):
    """A webhook subscription: one event ``type`` delivered to one ``url``."""

    id: int | None = None
    type: str
    url: str

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, value: Any, info: ValidationInfo) -> Any:
        if _is_lenient(info) or value in WEBHOOK_TYPES:
            return value
        raise _error("webhook_type", f"Unknown event type {value!r}; one of: {', '.join(WEBHOOK_TYPES)}.")

    @field_validator("url", mode="before")
    @classmethod
    def _http_url(cls, value: Any, info: ValidationInfo) -> Any:
        return value if _is_lenient(info) else check_http_url(value)


def check_http_url(value: Any) -> Any:
    """``value`` if it is an absolute http(s) URL; else a field error saying so."""
    from .transport import origin

    if isinstance(value, str) and re.match(r"^https?://[^/\s:?#]+", value) and origin(value) is not None:
        return value
    raise _error(
        "webhook_url",
        f"Must be an http:// or https:// URL without spaces, backslashes or control characters, got {value!r}.",
    )


class WebhookUrlChange(WireModel):
    """The body of ``PATCH /webhook/{id}``: the new URL (a ``type`` sent along is ignored)."""

    url: str
    type: str | None = None

    @field_validator("url", mode="before")
    @classmethod
    def _http_url(cls, value: Any) -> Any:
        return check_http_url(value)


def header_safe(secret: Any) -> bool:
    """Whether a webhook secret can travel in an HTTP header: non-empty printable ASCII."""
    return isinstance(secret, str) and bool(secret.strip()) and secret.isascii() and secret.isprintable()


#: What to tell someone whose secret is not ``header_safe``.
HEADER_SAFE_RULE = "Must be non-empty printable ASCII (it travels in an HTTP header)."


class WebhookSecret(WireModel):
    """The account's webhook secret; shown as ``**********`` in reprs and logs."""

    secret: SecretStr

    @field_validator("secret", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise _error("missing", "This field is required.")
        if isinstance(value, str) and not header_safe(value):
            raise _error("secret_unsafe", HEADER_SAFE_RULE)
        return value

    def to_api(self, **kwargs: Any) -> dict[str, Any]:
        return {"secret": self.secret.get_secret_value()}


class WebhookEvent(WireModel):
    """One delivery's body: ``{"id": <event id>, "type": "patient.updated", "payload": {...}}``.

    The id is stable across retries of the same event, so receivers de-duplicate on it.
    """

    id: int | str
    type: str
    payload: Any = None


class WebhookLogEntry(WireModel):
    """One delivery in ``GET /webhook/logs``: what was sent where, and how it went."""

    id: int
    webhook_id: int | None = None
    webhook_type: str | None = None
    webhook_url: str | None = None
    payload: str | None = None
    create_timestamp: dt.datetime | None = None
    last_response_status: int | None = None
    retry_attempts: int | None = None
    last_retry_timestamp: dt.datetime | None = None

    @field_validator("payload", mode="before")
    @classmethod
    def _payload_as_text(cls, value: Any, info: ValidationInfo) -> Any:
        # Documented as a string; a server sending the object itself still said what it sent,
        # so it is kept (as JSON text) rather than losing the entry.
        if _is_lenient(info) and isinstance(value, (dict, list)):
            return json.dumps(value)
        return value

    #: The webhook-logs query (docs/api-decisions.md#delivery-log): client and sandbox derive
    #: their filters from this table.
    LIST_FILTERS: ClassVar[tuple[ListFilter, ...]] = (
        ListFilter("webhookType", ("webhookType",), "equal"),
        ListFilter("retryAttemptsMin", ("retryAttempts",), "min", int),
        ListFilter("retryAttemptsMax", ("retryAttempts",), "max", int),
        ListFilter("lastResponseStatus", ("lastResponseStatus",), "equal", int),
        ListFilter("startLastRetryTimestamp", ("lastRetryTimestamp",), "min", dt.datetime),
        ListFilter("endLastRetryTimestamp", ("lastRetryTimestamp",), "max", dt.datetime),
        ListFilter("startTimestamp", ("createTimestamp",), "min", dt.datetime),
        ListFilter("endTimestamp", ("createTimestamp",), "before", dt.datetime),
    )


#: Keys whose value is an object: the models' nested objects (address, site) and the two
#: webhook envelopes' bodies (payload, data). Used by ``flatten_record``.
_OBJECT_KEYS = frozenset(
    [
        *(info.alias or name for name, info in Patient.model_fields.items() if nested_model(info.annotation)),
        *(info.alias or name for name, info in Site.model_fields.items() if nested_model(info.annotation)),
        "payload",
        "data",
    ]
)
