"""The sandbox's one error body, and the error answers of its OpenAPI document.

Every failed API request is answered with
``{"status": 400, "error": "Bad Request", "message": "...", "fieldErrors": [{"field", "message"}]}``
(docs/api-decisions.md#error-bodies): raised as ``SandboxProblemError`` by the routes and the
checks, and made from FastAPI's own errors by the handlers ``install_handlers`` adds.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import FieldError
from ..models import field_errors
from .rendering import SafeJSONResponse

__all__ = [
    "COMMON_ERRORS",
    "CONFLICT",
    "NOT_FOUND",
    "Problem",
    "SandboxProblemError",
    "bad_query",
    "install_handlers",
    "problem_body",
]


class SandboxProblemError(StarletteHTTPException):
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
    """The error body for ``status``; ``fieldErrors`` only when some field is at fault."""
    body: dict[str, Any] = {"status": status, "error": HTTPStatus(status).phrase, "message": message}
    if errors:
        body["fieldErrors"] = [{"field": fe.field, "message": fe.message} for fe in errors]
    return body


def bad_query(name: str, message: str) -> SandboxProblemError:
    """The 400 for query parameter ``name``; ``message`` says what is wrong and how to fix it."""
    return SandboxProblemError(400, "Invalid query parameter.", [FieldError(name, message)])


def install_handlers(app: FastAPI) -> None:
    """Answer ``SandboxProblemError``, FastAPI's validation errors (400, never 422) and
    Starlette's HTTP errors (an unknown path, a wrong method) with the one error body."""

    @app.exception_handler(SandboxProblemError)
    async def _problem(request: Request, exc: SandboxProblemError) -> SafeJSONResponse:
        return SafeJSONResponse(problem_body(exc.status, exc.message, exc.field_errors), exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> SafeJSONResponse:
        errors = field_errors(exc.errors(), skip=1)  # skip "body"/"query"/"path"
        return SafeJSONResponse(problem_body(400, "Validation failed.", errors), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> SafeJSONResponse:
        headers = getattr(exc, "headers", None)
        return SafeJSONResponse(problem_body(exc.status_code, str(exc.detail)), exc.status_code, headers)


# -- the error answers in the OpenAPI document ----------------------------------------------


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
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _problem("The request is not valid: see fieldErrors."),
    401: _problem("Missing or wrong Impilo-API-Key."),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _problem("No such resource.")}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: _problem("Clashes with existing data (a duplicate externalIdentifier, an existing secret)."),
}
