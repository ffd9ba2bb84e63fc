"""The sandbox's HTTP API: FastAPI routes mirroring Impilo's /api/v3, as docs/api-decisions.md decides.

Errors use one body everywhere:
``{"status": 400, "error": "Bad Request", "message": "...", "fieldErrors": [{"field", "message"}]}``
and every response carries an ``X-Request-Id``.

Multi-value filters (docs/api-decisions.md#multi-value-filters). The public docs say List
Patients' ``id``, ``siteId`` and ``externalIdentifier`` take "the listed" values without saying
how they are listed. Decided: a filter with several values is given as *repeated* query parameters
(``?externalIdentifier=a&externalIdentifier=b``) and a value is never split on commas, since a
comma is a legal character in an external identifier ("crm,1" is one identifier, not "crm" and
"1"). ``id=1,2`` is therefore a 400 (no id contains a comma) saying to repeat the parameter, and an
empty value (``externalIdentifier=``) is a 400 too: it is almost always a blank cell, and reading
it as "no filter" would answer with every patient.

Trust the wire. Every JSON body and query parameter of the API passes one set of checks
(``CheckedRoute``) before any route sees it: text must be valid Unicode (no lone UTF-16
surrogates, which cannot be encoded as UTF-8) without NUL characters and at most
``MAX_TEXT_LENGTH`` characters; numbers must fit in 64 bits (no NaN or Infinity); arrays and
objects may nest ``MAX_DEPTH`` levels; a body may be ``MAX_BODY_BYTES`` long and must be UTF-8.
What fails is refused with a 400 (413 for a body too large) naming the field, before anything is
stored. The read side does not rely on that alone: ``SafeJSONResponse`` renders any content
(a record stored before these checks existed, or planted in the SQLite file) without raising.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import json
import math
import re
import threading
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import date, datetime
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, WithJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._constants import API_KEY_HEADER, MAX_PAGE_SIZE
from .._version import __version__
from ..errors import FieldError, ValidationError
from ..models import (
    Page,
    Patient,
    PatientPatch,
    Webhook,
    WebhookLogEntry,
    WebhookSecret,
    WebhookUrlChange,
    WireModel,
    field_errors,
)
from .delivery import Dispatcher
from .store import DeliveryQuery, DuplicateExternalIdentifier, PatientQuery, SandboxStore, to_iso

__all__ = ["Fault", "SandboxProblem", "create_app"]

API = "/api/v3"

#: Ids are int64 (docs/api-decisions.md#patient-ids); anything larger is a 400, not passed to SQLite.
MAX_ID = 2**63 - 1

#: The largest page number whose offset still fits in 64 bits at the largest page size.
MAX_PAGE = MAX_ID // MAX_PAGE_SIZE

#: Bodies longer than this are refused (413) unread: a patient record is a few KB.
MAX_BODY_BYTES = 1024 * 1024

#: The most characters a JSON string, a member name or a query value may hold.
MAX_TEXT_LENGTH = 4096

#: How deep arrays and objects may nest in a body; a patient needs 3 (patient, site, address).
MAX_DEPTH = 32

#: The range of a JSON whole number the API accepts: a signed 64-bit integer, like its ids.
MIN_INT, MAX_INT = -(2**63), 2**63 - 1

#: How many problems one error response lists at most.
MAX_REPORTED = 20


class SandboxProblem(StarletteHTTPException):
    """An API error to answer with the sandbox's error body.

    An HTTPException so that FastAPI passes it through unchanged when it is raised while the
    body is parsed (``CheckedRequest.json``); any other error there becomes a vague 400.
    """

    def __init__(self, status: int, message: str, field_errors: list[FieldError] | None = None):
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.field_errors = field_errors or []


def problem_body(status: int, message: str, errors: list[FieldError] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "error": HTTPStatus(status).phrase, "message": message}
    if errors:
        body["fieldErrors"] = [{"field": fe.field, "message": fe.message} for fe in errors]
    return body


class ProblemFieldError(BaseModel):
    field: str | None = None
    message: str


class Problem(BaseModel):
    """The error body of every failed API request."""

    status: int
    error: str
    message: str
    fieldErrors: list[ProblemFieldError] | None = None  # noqa: N815 - the wire name


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


#: The API's description in its OpenAPI document: what every operation refuses.
DESCRIPTION = (
    "An offline, Impilo-compatible API for impilo_nb. Mirrors /api/v3 as impilo_nb's docs/api-decisions.md decides. "
    "Every JSON body and query parameter is checked before anything else: text must be valid Unicode "
    f"(no lone surrogates), without NUL, at most {MAX_TEXT_LENGTH} characters; whole numbers must fit in 64 bits, "
    f"other numbers be finite; arrays and objects may nest {MAX_DEPTH} levels; a body may be {MAX_BODY_BYTES} bytes "
    "of UTF-8. Anything else is refused with a 400 naming the field (413 for a body too large)."
)

#: How the multi-value filters are given, in their OpenAPI descriptions (module docstring).
REPEAT = (
    "For several values repeat the parameter (`?name=a&name=b`); a value is never split on commas, "
    "so a comma is part of the value. An empty value is refused."
)

#: Documented on every API operation; 404 and 409 are added where they can happen.
COMMON_ERRORS = {400: _problem("The request is not valid: see fieldErrors."), 401: _problem("Missing or wrong Impilo-API-Key.")}
NOT_FOUND = {404: _problem("No such resource.")}
CONFLICT = {409: _problem("Clashes with existing data (a duplicate externalIdentifier, an existing secret).")}
TOO_LARGE = {"413": {"description": f"The body is over {MAX_BODY_BYTES} bytes."}}


class SecretBody(BaseModel):
    """The secret as the API returns it (readable: the docs echo it back)."""

    secret: str


@dataclass
class Fault:
    """A planned misbehaviour for the next API request: wait ``delay`` s, then answer ``status``."""

    status: int | None = 503
    delay: float = 0.0
    retry_after: float | None = None
    method: str | None = None  # only requests with this HTTP method; None: any


class FaultQueue:
    """Faults queued by tests and demos (``Sandbox.inject_fault``), taken one per API request."""

    def __init__(self) -> None:
        self._faults: collections.deque[Fault] = collections.deque()
        self._lock = threading.Lock()

    def add(self, fault: Fault, times: int) -> None:
        with self._lock:
            self._faults.extend([fault] * times)

    def take(self, method: str) -> Fault | None:
        """The first queued fault that applies to a request with this method (removed), or None."""
        with self._lock:
            for fault in self._faults:
                if fault.method in (None, method):
                    self._faults.remove(fault)
                    return fault
            return None


class SandboxMiddleware:
    """Request id on every response; then, for /api/ paths: latency, injected faults, API key.

    A plain ASGI middleware so the key is checked before anything reads the body.
    """

    def __init__(self, app: Any, *, api_key: str, latency_ms: float, faults: FaultQueue) -> None:
        self.app = app
        self.api_key = api_key.encode()
        self.latency = latency_ms / 1000
        self.faults = faults
        self.request_counts: collections.Counter[str] = collections.Counter()  # by HTTP method, /api/ only

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{uuid.uuid4().hex[:20]}".encode()

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id)]}
            await send(message)

        if scope["path"].startswith("/api/"):
            self.request_counts[scope["method"]] += 1
            if self.latency:
                await asyncio.sleep(self.latency)
            fault = self.faults.take(scope["method"])
            if fault is not None:
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.status is not None:
                    headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
                    response = SafeJSONResponse(
                        problem_body(fault.status, "Injected fault (Sandbox.inject_fault)."), fault.status, headers
                    )
                    await response(scope, receive, send_with_id)
                    return
            given = dict(scope["headers"]).get(API_KEY_HEADER.lower().encode(), b"")
            if not hmac.compare_digest(given, self.api_key):
                message = f"Missing {API_KEY_HEADER} header." if not given else f"Invalid {API_KEY_HEADER}."
                await SafeJSONResponse(problem_body(401, message), 401)(scope, receive, send_with_id)
                return
        await self.app(scope, receive, send_with_id)


def known_fields(model: WireModel) -> dict[str, Any]:
    """The model as wire JSON without fields the API does not define (the server drops those)."""
    result: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        key = info.alias or name
        result[key] = known_fields(value) if isinstance(value, WireModel) else _jsonable(value)
    return result


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


# -- the wire checks ---------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")
_DIGITS = re.compile("[0-9]+")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be accepted anywhere in the API, or None when it can."""
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:
        return (
            f"Contains a lone UTF-16 surrogate (U+{ord(surrogate.group()):04X}) at character {surrogate.start() + 1}: "
            "it is not a character and cannot be stored or sent as UTF-8. Send valid Unicode text."
        )
    nul = text.find("\x00")
    if nul >= 0:
        return f"Contains a NUL character (U+0000) at character {nul + 1}; remove it (text cannot hold NUL)."
    if len(text) > MAX_TEXT_LENGTH:
        return f"Is {len(text):,} characters long; the limit is {MAX_TEXT_LENGTH:,}."
    return None


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, int) and not isinstance(value, bool) and not MIN_INT <= value <= MAX_INT:
        return "Out of range: whole numbers must fit in 64 bits (-2^63 to 2^63-1)."
    if isinstance(value, float) and not math.isfinite(value):
        return "Not a finite number: NaN, Infinity and numbers beyond ±1.8e308 are not accepted."
    return None


def _shown_path(path: tuple[Any, ...]) -> str | None:
    """A JSON path as a dotted field name, shortened and printable when it is long or odd."""
    parts = [str(part) if len(str(part)) <= 40 else str(part)[:40] + "…" for part in path]
    if len(parts) > 6:
        parts = [*parts[:3], "…", *parts[-2:]]
    return ".".join(part.encode("utf-8", "backslashreplace").decode() for part in parts) or None


def json_problems(document: Any) -> list[FieldError]:
    """Every part of a decoded JSON body the API refuses, whatever the operation (at most
    ``MAX_REPORTED``): text ``text_problem`` refuses (values and member names), numbers beyond
    64 bits or not finite, and arrays or objects nested deeper than ``MAX_DEPTH``.

    Iterative, so a deep document cannot exhaust the stack here.
    """
    problems: list[FieldError] = []
    stack: list[tuple[Any, tuple[Any, ...], int]] = [(document, (), 0)]
    while stack and len(problems) < MAX_REPORTED:
        value, path, depth = stack.pop()
        if not isinstance(value, (dict, list)):
            why = _scalar_problem(value)
            if why:
                problems.append(FieldError(_shown_path(path), why))
            continue
        if depth >= MAX_DEPTH:
            problems.append(FieldError(_shown_path(path), _too_deep()))
            continue
        children = []
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            why = text_problem(key) if isinstance(key, str) else None
            if why:
                problems.append(FieldError(_shown_path((*path, key)), f"The member name: {why}"))
            children.append((item, (*path, key), depth + 1))
        stack.extend(reversed(children))  # reversed: problems are reported in document order
    return problems


def _too_deep() -> str:
    return f"Arrays and objects nested more than {MAX_DEPTH} levels deep; this API's records nest 3 (patient.site.address)."


def _parse_int(digits: str) -> int:
    # More than 20 characters cannot fit in 64 bits; not converted, as Python refuses to
    # convert over 4,300 digits at all. 2**64 stands for any of them: json_problems refuses it.
    return int(digits) if len(digits) <= 20 else 2**64


REFUSED = "The body has values this API refuses; see fieldErrors."


def decode_body(raw: bytes) -> Any:
    """A request body as JSON, or a SandboxProblem (400) saying what is wrong and where."""
    try:
        text = raw.decode("utf-8")  # strict: json.loads(bytes) would let encoded surrogates through
    except UnicodeDecodeError as exc:
        message = f"Not UTF-8: invalid byte at position {exc.start}. Send the JSON encoded as UTF-8."
        raise SandboxProblem(400, "The body is not valid JSON.", [FieldError(None, message)]) from None
    try:
        document = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        message = f"{exc.msg} at line {exc.lineno}, column {exc.colno}."
        raise SandboxProblem(400, "The body is not valid JSON.", [FieldError(None, message)]) from None
    except RecursionError:
        raise SandboxProblem(400, REFUSED, [FieldError(None, _too_deep())]) from None
    problems = json_problems(document)
    if problems:
        raise SandboxProblem(400, REFUSED, problems)
    return document


def query_problems(items: list[tuple[str, str]]) -> list[FieldError]:
    """The query parameters (names and values) that ``text_problem`` refuses."""
    problems = []
    for name, value in items:
        why = text_problem(name)
        if why:
            problems.append(FieldError(_shown_path((name,)), f"The parameter name: {why}"))
        elif why := text_problem(value):
            problems.append(FieldError(name, why))
    return problems[:MAX_REPORTED]


class CheckedRequest(Request):
    """A request whose body is read up to ``MAX_BODY_BYTES`` and decoded by ``decode_body``."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):  # Starlette's own cache: stream() and form() read it too
            declared = self.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                raise _too_large(int(declared))
            chunks, size = [], 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise _too_large(None)
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = decode_body(await self.body())
        return self._json


def _too_large(size: int | None) -> SandboxProblem:
    """The 413 for a body of ``size`` bytes (None: not declared, found while reading)."""
    what = f"The body is {size:,} bytes" if size is not None else "The body is longer"
    return SandboxProblem(413, f"{what}; the limit is {MAX_BODY_BYTES:,} bytes (1 MiB). Send one record per request.")


class CheckedRoute(APIRoute):
    """The route of every API operation: the query and the JSON body pass the wire checks
    (see the module docstring) before FastAPI validates them against the operation."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def checked(request: Request) -> Response:
            problems = query_problems(request.query_params.multi_items())
            if problems:
                raise SandboxProblem(400, "Invalid query parameter.", problems)
            return await handle(CheckedRequest(request.scope, request.receive))

        return checked


class SafeJSONResponse(JSONResponse):
    """JSON that renders whatever it holds, so one bad stored record cannot fail a response.

    The usual rendering first; only if that raises, a cleaned copy (``renderable``).
    """

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except (ValueError, TypeError, RecursionError):  # UnicodeEncodeError is a ValueError
            return super().render(renderable(content))


def renderable(content: Any) -> Any:
    """A copy of ``content`` that json.dumps cannot fail on: lone surrogates become U+FFFD,
    NaN and infinities null, anything nested deeper than ``MAX_DEPTH`` null, other objects text.

    Iterative, so any depth is safe.
    """
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(content, root, 0, 0)]
    while stack:
        value, parent, key, depth = stack.pop()
        if isinstance(value, (dict, list, tuple)) and depth < MAX_DEPTH:
            if isinstance(value, dict):
                pairs = [(_clean_text(str(k)), v) for k, v in value.items()]
                copy: Any = dict.fromkeys(k for k, _ in pairs)
            else:
                pairs = list(enumerate(value))
                copy = [None] * len(pairs)
            parent[key] = copy
            stack.extend((item, copy, k, depth + 1) for k, item in pairs)
        elif value is None or isinstance(value, (bool, int)):
            parent[key] = value
        elif isinstance(value, float):
            parent[key] = value if math.isfinite(value) else None
        elif isinstance(value, (dict, list, tuple)):
            parent[key] = None
        else:
            parent[key] = _clean_text(value if isinstance(value, str) else str(value))
    return root[0]


def _clean_text(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)


# -- query parameters ---------------------------------------------------------------------

#: A repeated query parameter of ids, documented as int64s (the values are parsed by ``_ids``).
IdList = list[Annotated[str, WithJsonSchema({"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_ID})]]


def _ids(values: list[str] | None, name: str) -> list[int]:
    """The ids of a repeated parameter (``id=1&id=2``); never split on commas (module docstring)."""
    result = []
    for value in values or []:
        if not value:
            raise _bad_query(name, f"Empty: give an id, or leave {name} out to not filter by it.")
        number = int(value) if len(value) <= 19 and _DIGITS.fullmatch(value) else 0
        if not 0 < number <= MAX_ID:
            message = f"Not an id (a whole number from 1 to 2^63-1): {_excerpt(value)}."
            if "," in value:
                message += f" For several, repeat the parameter ({name}=1&{name}=2); commas do not separate values."
            raise _bad_query(name, message)
        result.append(number)
    return result


def _identifiers(values: list[str] | None, name: str) -> list[str]:
    """The values of a repeated parameter, each taken whole (a comma is part of the value)."""
    for value in values or []:
        if not value:
            raise _bad_query(name, f"Empty: give a value, or leave {name} out to not filter by it.")
    return list(values or [])


def _timestamp(value: datetime | None, name: str) -> str | None:
    """``value`` as the store's UTC ISO text; a 400 when UTC cannot represent it (year 1 or 9999)."""
    if value is None:
        return None
    try:
        return to_iso(value)
    except OverflowError:
        raise _bad_query(name, "Out of range: in UTC this is before year 1 or after year 9999.") from None


def _bad_query(name: str, message: str) -> SandboxProblem:
    return SandboxProblem(400, "Invalid query parameter.", [FieldError(name, message)])


def _excerpt(value: str) -> str:
    return repr(value) if len(value) <= 40 else repr(value[:40]) + "…"


def create_app(
    store: SandboxStore,
    dispatcher: Dispatcher,
    *,
    api_key: str,
    latency_ms: float = 0.0,
    faults: FaultQueue | None = None,
) -> Any:
    """The sandbox ASGI app over ``store``, accepting only ``api_key``; events go to ``dispatcher``."""
    app = FastAPI(
        title="Impilo sandbox",
        version=__version__,
        description=DESCRIPTION,
        default_response_class=SafeJSONResponse,
    )
    # Declared so the OpenAPI document shows the scheme; SandboxMiddleware enforces it.
    api_key_scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)

    @app.exception_handler(SandboxProblem)
    async def _problem(request: Request, exc: SandboxProblem) -> SafeJSONResponse:
        return SafeJSONResponse(problem_body(exc.status, exc.message, exc.field_errors), exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> SafeJSONResponse:
        errors = field_errors(exc.errors(), skip=1)
        return SafeJSONResponse(problem_body(400, "Validation failed.", errors), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> SafeJSONResponse:
        return SafeJSONResponse(problem_body(exc.status_code, str(exc.detail)), exc.status_code, getattr(exc, "headers", None))

    def load(patient_id: int) -> dict[str, Any]:
        record = store.get_patient(patient_id)
        if record is None:
            raise SandboxProblem(404, f"Patient {patient_id} not found.")
        return record

    def save(patient_id: int, patient: Patient) -> dict[str, Any]:
        try:
            result = store.replace_patient(patient_id, known_fields(patient))
        except DuplicateExternalIdentifier as exc:
            raise _conflict(exc) from None
        if result is None:
            raise SandboxProblem(404, f"Patient {patient_id} not found.")
        record, changed = result
        if changed:
            dispatcher.publish("patient.updated", record)
        return record

    patient_id_param = Path(alias="patientId", ge=1, le=MAX_ID, description="The Impilo patient id.")
    api = APIRouter(prefix=API, dependencies=[Depends(api_key_scheme)], responses=COMMON_ERRORS, route_class=CheckedRoute)

    @api.post("/patient", status_code=201, response_model=Patient, tags=["patients"], responses=CONFLICT)
    def create_patient(patient: Patient) -> SafeJSONResponse:
        data = known_fields(patient)
        try:
            record = store.create_patient(data)
        except DuplicateExternalIdentifier as exc:
            raise _conflict(exc) from None
        dispatcher.publish("patient.created", record)
        return SafeJSONResponse(record, 201)

    @api.get("/patient/{patientId}", response_model=Patient, tags=["patients"], responses=NOT_FOUND)
    def get_patient(patient_id: int = patient_id_param) -> SafeJSONResponse:
        return SafeJSONResponse(load(patient_id))

    @api.put("/patient/{patientId}", response_model=Patient, tags=["patients"], responses=NOT_FOUND | CONFLICT)
    def update_patient(patient: Patient, patient_id: int = patient_id_param) -> SafeJSONResponse:
        return SafeJSONResponse(save(patient_id, patient))

    @api.patch("/patient/{patientId}", response_model=Patient, tags=["patients"], responses=NOT_FOUND | CONFLICT)
    def patch_patient(changes: PatientPatch, patient_id: int = patient_id_param) -> SafeJSONResponse:
        merged = {**load(patient_id), **changes.to_api(exclude_unset=True)}
        try:
            patient = Patient.model_validate(merged)
        except ValidationError as exc:  # the change is fine alone, the merged record is not
            raise SandboxProblem(400, "Validation failed.", exc.field_errors) from None
        return SafeJSONResponse(save(patient_id, patient))

    @api.get("/patient", response_model=Page[Patient], tags=["patients"])
    def list_patients(
        page: int = Query(1, ge=1, le=MAX_PAGE, description="1-based page number."),
        size: int = Query(15, ge=1, le=MAX_PAGE_SIZE),
        sort: Literal["firstName", "lastName", "patientId"] = "patientId",
        sort_descending: bool = Query(False, alias="sortDescending"),
        id: IdList | None = Query(None, description=f"Only these patient ids. {REPEAT}"),
        site_id: IdList | None = Query(None, alias="siteId", description=f"Only patients at these site ids. {REPEAT}"),
        external_identifier: list[str] | None = Query(
            None, alias="externalIdentifier", description=f"Only these external identifiers (exact match). {REPEAT}"
        ),
        email: str | None = None,
        name: str | None = Query(None, description="Case-insensitive part of 'first last'."),
        archived: bool | None = None,
        enrolled: bool | None = None,
        date_of_birth_min: date | None = Query(None, alias="dateOfBirthMin"),
        date_of_birth_max: date | None = Query(None, alias="dateOfBirthMax"),
        postal_code: str | None = Query(None, alias="postalCode"),
        country: str | None = None,
    ) -> SafeJSONResponse:
        query = PatientQuery(
            ids=_ids(id, "id"),
            site_ids=_ids(site_id, "siteId"),
            external_identifiers=_identifiers(external_identifier, "externalIdentifier"),
            email=email,
            name=name,
            archived=archived,
            enrolled=enrolled,
            date_of_birth_min=date_of_birth_min.isoformat() if date_of_birth_min else None,
            date_of_birth_max=date_of_birth_max.isoformat() if date_of_birth_max else None,
            postal_code=postal_code,
            country=country,
            sort=sort,
            sort_descending=sort_descending,
        )
        content, total = store.list_patients(query, page=page, size=size)
        return SafeJSONResponse(_page(content, page, size, total))

    def load_webhook(webhook_id: int) -> dict[str, Any]:
        hook = store.get_webhook(webhook_id)
        if hook is None:
            raise SandboxProblem(404, f"Webhook {webhook_id} not found.")
        return hook

    webhook_id_param = Path(alias="webhookId", ge=1, le=MAX_ID, description="The webhook id.")

    @api.post("/webhook", response_model=Webhook, tags=["webhooks"])
    def create_webhook(webhook: Webhook) -> SafeJSONResponse:
        return SafeJSONResponse(store.create_webhook(webhook.type, webhook.url))

    @api.get("/webhook", response_model=list[Webhook], tags=["webhooks"])
    def list_webhooks() -> SafeJSONResponse:
        return SafeJSONResponse(store.list_webhooks())

    # Declared before /webhook/{webhookId} so "logs" is not read as an id.
    @api.get("/webhook/logs", response_model=Page[WebhookLogEntry], tags=["webhooks"])
    def webhook_logs(
        page: int = Query(1, ge=1, le=MAX_PAGE),
        size: int = Query(15, ge=1, le=MAX_PAGE_SIZE),
        webhook_type: str | None = Query(None, alias="webhookType"),
        retry_attempts_min: int | None = Query(None, alias="retryAttemptsMin", ge=0, le=MAX_ID),
        retry_attempts_max: int | None = Query(None, alias="retryAttemptsMax", ge=0, le=MAX_ID),
        last_response_status: int | None = Query(None, alias="lastResponseStatus", ge=100, le=599),
        start_last_retry: datetime | None = Query(None, alias="startLastRetryTimestamp"),
        end_last_retry: datetime | None = Query(None, alias="endLastRetryTimestamp"),
        start: datetime | None = Query(None, alias="startTimestamp"),
        end: datetime | None = Query(None, alias="endTimestamp", description="Exclusive."),
    ) -> SafeJSONResponse:
        query = DeliveryQuery(
            webhook_type=webhook_type,
            retry_attempts_min=retry_attempts_min,
            retry_attempts_max=retry_attempts_max,
            last_response_status=last_response_status,
            start_last_retry=_timestamp(start_last_retry, "startLastRetryTimestamp"),
            end_last_retry=_timestamp(end_last_retry, "endLastRetryTimestamp"),
            start=_timestamp(start, "startTimestamp"),
            end=_timestamp(end, "endTimestamp"),
        )
        content, total = store.list_deliveries(query, page=page, size=size)
        return SafeJSONResponse(_page(content, page, size, total))

    @api.get("/webhook/{webhookId}", response_model=Webhook, tags=["webhooks"], responses=NOT_FOUND)
    def get_webhook(webhook_id: int = webhook_id_param) -> SafeJSONResponse:
        return SafeJSONResponse(load_webhook(webhook_id))

    @api.patch("/webhook/{webhookId}", response_model=Webhook, tags=["webhooks"], responses=NOT_FOUND)
    def change_webhook_url(change: WebhookUrlChange, webhook_id: int = webhook_id_param) -> SafeJSONResponse:
        hook = load_webhook(webhook_id)
        if change.url == hook["url"]:
            raise SandboxProblem(400, "The new URL is the same as the current one.", [FieldError("url", "Unchanged.")])
        store.set_webhook_url(webhook_id, change.url)
        return SafeJSONResponse({**hook, "url": change.url})

    @api.delete("/webhook/{webhookId}", status_code=204, tags=["webhooks"], responses=NOT_FOUND)
    def delete_webhook(webhook_id: int = webhook_id_param) -> Response:
        if not store.delete_webhook(webhook_id):
            raise SandboxProblem(404, f"Webhook {webhook_id} not found.")
        return Response(status_code=204)

    @api.post("/webhook-secret", response_model=SecretBody, tags=["webhooks"], responses=CONFLICT)
    def create_secret(secret: WebhookSecret) -> SafeJSONResponse:
        if not store.create_secret(secret.secret.get_secret_value()):
            raise SandboxProblem(409, "A webhook secret already exists; DELETE /api/v3/webhook-secret first to replace it.")
        return SafeJSONResponse(secret.to_api())

    @api.get("/webhook-secret", response_model=SecretBody, tags=["webhooks"], responses=NOT_FOUND)
    def get_secret() -> SafeJSONResponse:
        secret = store.get_secret()
        if secret is None:
            raise SandboxProblem(404, "No webhook secret is set.")
        return SafeJSONResponse({"secret": secret})

    @api.delete("/webhook-secret", status_code=204, tags=["webhooks"], responses=NOT_FOUND)
    def delete_secret() -> Response:
        if not store.delete_secret():
            raise SandboxProblem(404, "No webhook secret is set.")
        return Response(status_code=204)

    app.include_router(api)
    app.openapi = lambda: _openapi(app)
    return SandboxMiddleware(app, api_key=api_key, latency_ms=latency_ms, faults=faults or FaultQueue())


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, minus the 422 it lists by default (this API answers 400 instead),
    plus the 413 of every operation that takes a body."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
                if "requestBody" in operation:
                    operation["responses"].update(TOO_LARGE)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


def _page(content: list[Any], page: int, size: int, total: int) -> dict[str, Any]:
    """The API's page envelope (1-based pages)."""
    pages = max(1, -(-total // size))
    return {"content": content, "page": page, "size": size, "total": total, "first": page == 1, "last": page >= pages}


def _conflict(exc: DuplicateExternalIdentifier) -> SandboxProblem:
    return SandboxProblem(
        409,
        f"A patient with externalIdentifier {exc.external_identifier!r} already exists (id {exc.existing_id}).",
        [FieldError("externalIdentifier", "Already used by another patient.")],
    )
