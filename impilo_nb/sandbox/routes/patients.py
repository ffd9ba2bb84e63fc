"""The patient operations: create, read, replace (PUT), change (PATCH), and List Patients.

Writes fire ``patient.created`` and, when the stored record changed, ``patient.updated``
(docs/api-decisions.md#patient-events). The list's query parameters and SQL come from
``Patient.LIST_FILTERS`` and ``SORTS`` (``queries.py``).
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations, and
# List Patients' parameter model is built per app from the table, so it must be a real object.

from datetime import date
from typing import Annotated, Any, cast

from fastapi import APIRouter, Query

from ...errors import FieldError, ValidationError
from ...models import Page, Patient, PatientPatch, WireModel
from ..problems import CONFLICT, NOT_FOUND, SandboxProblemError
from ..queries import ListTable, SortedListParameters
from ..rendering import SafeJSONResponse
from ..store import DuplicateExternalIdentifierError, PatientQuery
from .common import RouteContext, found, id_path, page_envelope

__all__ = ["known_fields", "router"]

_PATIENT_ID = id_path("patientId", "The Impilo patient id.")


def router(context: RouteContext) -> APIRouter:
    """The patient operations over ``context``'s store."""
    api = context.router()
    _add_writes(api, context)
    _add_list(api, context)
    return api


def _add_writes(api: APIRouter, context: RouteContext) -> None:
    store = context.store

    def load(patient_id: int) -> dict[str, Any]:
        return found(store.get_patient(patient_id), "Patient", patient_id)

    def save(patient_id: int, patient: Patient) -> dict[str, Any]:
        try:
            result = store.replace_patient(patient_id, known_fields(patient))
        except DuplicateExternalIdentifierError as exc:
            raise _conflict(exc) from None
        if result is None:
            raise SandboxProblemError(404, f"Patient {patient_id} not found.")
        record, changed = result
        if changed:
            context.dispatcher.publish("patient.updated", context.shown(Patient, record))
        return record

    @api.post("/patient", status_code=201, response_model=Patient, tags=["patients"], responses=CONFLICT)
    def create_patient(patient: Patient) -> SafeJSONResponse:
        try:
            record = store.create_patient(known_fields(patient))
        except DuplicateExternalIdentifierError as exc:
            raise _conflict(exc) from None
        context.dispatcher.publish("patient.created", context.shown(Patient, record))
        return SafeJSONResponse(record, 201)

    @api.get("/patient/{patientId}", response_model=Patient, tags=["patients"], responses=NOT_FOUND)
    def get_patient(patient_id: int = _PATIENT_ID) -> SafeJSONResponse:
        return SafeJSONResponse(load(patient_id))

    @api.put("/patient/{patientId}", response_model=Patient, tags=["patients"], responses=NOT_FOUND | CONFLICT)
    def update_patient(patient: Patient, patient_id: int = _PATIENT_ID) -> SafeJSONResponse:
        return SafeJSONResponse(save(patient_id, patient))

    @api.patch("/patient/{patientId}", response_model=Patient, tags=["patients"], responses=NOT_FOUND | CONFLICT)
    def patch_patient(changes: PatientPatch, patient_id: int = _PATIENT_ID) -> SafeJSONResponse:
        merged = {**load(patient_id), **changes.to_api(exclude_unset=True)}
        try:
            patient = Patient.model_validate(merged)
        except ValidationError as exc:  # the change is fine alone, the merged record is not
            raise SandboxProblemError(400, "Validation failed.", exc.field_errors) from None
        return SafeJSONResponse(save(patient_id, patient))


def _add_list(api: APIRouter, context: RouteContext) -> None:
    table = ListTable.of(Patient)  # read now, so the app serves the table as it is at its creation
    parameters = table.parameters("ListPatientsQuery")

    @api.get("/patient", response_model=Page[Patient], tags=["patients"])
    def list_patients(params: Annotated[parameters, Query()]) -> SafeJSONResponse:  # type: ignore[valid-type]
        given = cast(SortedListParameters, params)  # built at run time; statically, its base
        query = PatientQuery(
            values=table.values(given),
            filters=table.filters,
            sort=table.sorts[given.sort],
            sort_descending=given.sort_descending,
        )
        listing = context.store.list_patients(query, page=given.page, size=given.size)
        envelope = page_envelope(listing.records, given.page, given.size, listing.total)
        # Whether a patient follows, not a count: after writes between requests, a keyset page
        # may end elsewhere than total / size says (docs/api-decisions.md#list-patients).
        return SafeJSONResponse(envelope | {"last": listing.last})


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


def _conflict(exc: DuplicateExternalIdentifierError) -> SandboxProblemError:
    return SandboxProblemError(
        409,
        f"A patient with externalIdentifier {exc.external_identifier!r} already exists (id {exc.existing_id}).",
        [FieldError("externalIdentifier", "Already used by another patient.")],
    )
