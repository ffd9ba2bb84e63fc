"""The sandbox's HTTP API: FastAPI routes mirroring Impilo's /api/v3, as decided in design.md.

Errors use one body everywhere:
``{"status": 400, "error": "Bad Request", "message": "...", "fieldErrors": [{"field", "message"}]}``
and every response carries an ``X-Request-Id``.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import threading
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from http import HTTPStatus
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel
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

#: Ids are int64 (impilo-api.md §1); anything larger is refused with a 400, not passed to SQLite.
MAX_ID = 2**63 - 1

#: The largest page number whose offset still fits in 64 bits at the largest page size.
MAX_PAGE = MAX_ID // MAX_PAGE_SIZE


class SandboxProblem(Exception):
    """An API error to answer with the sandbox's error body."""

    def __init__(self, status: int, message: str, field_errors: list[FieldError] | None = None):
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


#: Documented on every API operation; 404 and 409 are added where they can happen.
COMMON_ERRORS = {400: _problem("The request is not valid: see fieldErrors."), 401: _problem("Missing or wrong Impilo-API-Key.")}
NOT_FOUND = {404: _problem("No such resource.")}
CONFLICT = {409: _problem("Clashes with existing data (a duplicate externalIdentifier, an existing secret).")}


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
                    response = JSONResponse(
                        problem_body(fault.status, "Injected fault (Sandbox.inject_fault)."), fault.status, headers
                    )
                    await response(scope, receive, send_with_id)
                    return
            given = dict(scope["headers"]).get(API_KEY_HEADER.lower().encode(), b"")
            if not hmac.compare_digest(given, self.api_key):
                message = f"Missing {API_KEY_HEADER} header." if not given else f"Invalid {API_KEY_HEADER}."
                await JSONResponse(problem_body(401, message), 401)(scope, receive, send_with_id)
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


def _ids(values: list[str] | None, name: str) -> list[int]:
    """Repeated (``id=1&id=2``) or comma-separated (``id=1,2``) ids; the docs allow either reading."""
    result = []
    for value in values or []:
        for part in value.split(","):
            if part.strip():
                try:
                    number = int(part)
                    if not 0 < number <= MAX_ID:
                        raise ValueError
                except ValueError:
                    message = f"Not an id (a whole number from 1 to 2^63-1): {part!r}."
                    raise SandboxProblem(400, "Invalid query parameter.", [FieldError(name, message)]) from None
                result.append(number)
    return result


def _strings(values: list[str] | None) -> list[str]:
    return [part for value in values or [] for part in value.split(",") if part]


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
        description="An offline, Impilo-compatible API for impilo_nb. Mirrors /api/v3 as impilo_nb's design.md decides.",
    )
    # Declared so the OpenAPI document shows the scheme; SandboxMiddleware enforces it.
    api_key_scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)

    @app.exception_handler(SandboxProblem)
    async def _problem(request: Request, exc: SandboxProblem) -> JSONResponse:
        return JSONResponse(problem_body(exc.status, exc.message, exc.field_errors), exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(exc.errors(), skip=1)
        return JSONResponse(problem_body(400, "Validation failed.", errors), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(problem_body(exc.status_code, str(exc.detail)), exc.status_code, getattr(exc, "headers", None))

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
    api = APIRouter(prefix=API, dependencies=[Depends(api_key_scheme)], responses=COMMON_ERRORS)

    @api.post("/patient", status_code=201, response_model=Patient, tags=["patients"], responses=CONFLICT)
    def create_patient(patient: Patient) -> JSONResponse:
        data = known_fields(patient)
        try:
            record = store.create_patient(data)
        except DuplicateExternalIdentifier as exc:
            raise _conflict(exc) from None
        dispatcher.publish("patient.created", record)
        return JSONResponse(record, 201)

    @api.get("/patient/{patientId}", response_model=Patient, tags=["patients"], responses=NOT_FOUND)
    def get_patient(patient_id: int = patient_id_param) -> JSONResponse:
        return JSONResponse(load(patient_id))

    @api.put("/patient/{patientId}", response_model=Patient, tags=["patients"], responses=NOT_FOUND | CONFLICT)
    def update_patient(patient: Patient, patient_id: int = patient_id_param) -> JSONResponse:
        return JSONResponse(save(patient_id, patient))

    @api.patch("/patient/{patientId}", response_model=Patient, tags=["patients"], responses=NOT_FOUND | CONFLICT)
    def patch_patient(changes: PatientPatch, patient_id: int = patient_id_param) -> JSONResponse:
        merged = {**load(patient_id), **changes.to_api(exclude_unset=True)}
        try:
            patient = Patient.model_validate(merged)
        except ValidationError as exc:  # the change is fine alone, the merged record is not
            raise SandboxProblem(400, "Validation failed.", exc.field_errors) from None
        return JSONResponse(save(patient_id, patient))

    @api.get("/patient", response_model=Page[Patient], tags=["patients"])
    def list_patients(
        page: int = Query(1, ge=1, le=MAX_PAGE, description="1-based page number."),
        size: int = Query(15, ge=1, le=MAX_PAGE_SIZE),
        sort: Literal["firstName", "lastName", "patientId"] = "patientId",
        sort_descending: bool = Query(False, alias="sortDescending"),
        id: list[str] | None = Query(None, description="Patient ids, repeated or comma-separated."),
        site_id: list[str] | None = Query(None, alias="siteId"),
        external_identifier: list[str] | None = Query(None, alias="externalIdentifier"),
        email: str | None = None,
        name: str | None = Query(None, description="Case-insensitive part of 'first last'."),
        archived: bool | None = None,
        enrolled: bool | None = None,
        date_of_birth_min: date | None = Query(None, alias="dateOfBirthMin"),
        date_of_birth_max: date | None = Query(None, alias="dateOfBirthMax"),
        postal_code: str | None = Query(None, alias="postalCode"),
        country: str | None = None,
    ) -> JSONResponse:
        query = PatientQuery(
            ids=_ids(id, "id"),
            site_ids=_ids(site_id, "siteId"),
            external_identifiers=_strings(external_identifier),
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
        return JSONResponse(_page(content, page, size, total))

    def load_webhook(webhook_id: int) -> dict[str, Any]:
        hook = store.get_webhook(webhook_id)
        if hook is None:
            raise SandboxProblem(404, f"Webhook {webhook_id} not found.")
        return hook

    webhook_id_param = Path(alias="webhookId", ge=1, le=MAX_ID, description="The webhook id.")

    @api.post("/webhook", response_model=Webhook, tags=["webhooks"])
    def create_webhook(webhook: Webhook) -> JSONResponse:
        return JSONResponse(store.create_webhook(webhook.type, webhook.url))

    @api.get("/webhook", response_model=list[Webhook], tags=["webhooks"])
    def list_webhooks() -> JSONResponse:
        return JSONResponse(store.list_webhooks())

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
    ) -> JSONResponse:
        query = DeliveryQuery(
            webhook_type=webhook_type,
            retry_attempts_min=retry_attempts_min,
            retry_attempts_max=retry_attempts_max,
            last_response_status=last_response_status,
            start_last_retry=to_iso(start_last_retry) if start_last_retry else None,
            end_last_retry=to_iso(end_last_retry) if end_last_retry else None,
            start=to_iso(start) if start else None,
            end=to_iso(end) if end else None,
        )
        content, total = store.list_deliveries(query, page=page, size=size)
        return JSONResponse(_page(content, page, size, total))

    @api.get("/webhook/{webhookId}", response_model=Webhook, tags=["webhooks"], responses=NOT_FOUND)
    def get_webhook(webhook_id: int = webhook_id_param) -> JSONResponse:
        return JSONResponse(load_webhook(webhook_id))

    @api.patch("/webhook/{webhookId}", response_model=Webhook, tags=["webhooks"], responses=NOT_FOUND)
    def change_webhook_url(change: WebhookUrlChange, webhook_id: int = webhook_id_param) -> JSONResponse:
        hook = load_webhook(webhook_id)
        if change.url == hook["url"]:
            raise SandboxProblem(400, "The new URL is the same as the current one.", [FieldError("url", "Unchanged.")])
        store.set_webhook_url(webhook_id, change.url)
        return JSONResponse({**hook, "url": change.url})

    @api.delete("/webhook/{webhookId}", status_code=204, tags=["webhooks"], responses=NOT_FOUND)
    def delete_webhook(webhook_id: int = webhook_id_param) -> Response:
        if not store.delete_webhook(webhook_id):
            raise SandboxProblem(404, f"Webhook {webhook_id} not found.")
        return Response(status_code=204)

    @api.post("/webhook-secret", response_model=SecretBody, tags=["webhooks"], responses=CONFLICT)
    def create_secret(secret: WebhookSecret) -> JSONResponse:
        if not store.create_secret(secret.secret.get_secret_value()):
            raise SandboxProblem(409, "A webhook secret already exists; DELETE /api/v3/webhook-secret first to replace it.")
        return JSONResponse(secret.to_api())

    @api.get("/webhook-secret", response_model=SecretBody, tags=["webhooks"], responses=NOT_FOUND)
    def get_secret() -> JSONResponse:
        secret = store.get_secret()
        if secret is None:
            raise SandboxProblem(404, "No webhook secret is set.")
        return JSONResponse({"secret": secret})

    @api.delete("/webhook-secret", status_code=204, tags=["webhooks"], responses=NOT_FOUND)
    def delete_secret() -> Response:
        if not store.delete_secret():
            raise SandboxProblem(404, "No webhook secret is set.")
        return Response(status_code=204)

    app.include_router(api)
    app.openapi = lambda: _openapi(app)
    return SandboxMiddleware(app, api_key=api_key, latency_ms=latency_ms, faults=faults or FaultQueue())


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, minus the 422 it lists by default: this API answers 400 instead."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
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
