"""Reading what a server answered, trusting nothing: JSON or not, the record asked for or not.

A success status is not enough: a body that is empty, not JSON, or not the record asked for is
an ``UnexpectedResponseError`` (never a ``ValidationError``, which is reserved for the caller's
own input), and a write's message says the change may have happened anyway. In a listing, one
record the client cannot read is skipped with a warning, so it never breaks the rest.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import requests

from .errors import FieldError, UnexpectedResponseError, ValidationError, redact
from .models import Page, WireModel

__all__ = ["decode_json", "json_kind", "read_page", "read_record", "readable"]

log = logging.getLogger("impilo_nb")

M = TypeVar("M", bound=WireModel)


def decode_json(response: requests.Response) -> Any:
    """A successful response's JSON body (None when empty); ``UnexpectedResponseError`` if not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except (ValueError, RecursionError):  # not JSON, or nested beyond what Python can parse
        request = response.request
        raise UnexpectedResponseError(
            f"{request.method} {request.path_url} answered {response.status_code} with a body that is not JSON: "
            f"{str(redact(response.text))[:200]!r}. Is the base URL the API itself, not a web page or a proxy's login?",
            method=request.method,
            url=response.url,
        ) from None


def read_record(model: type[M], response: requests.Response, *, written: str | None = None, expected_id: int | None = None) -> M:
    """The record a successful response carries, read leniently as ``model``.

    A body that is not such a record (empty, ``[]``, another shape) is an
    ``UnexpectedResponseError``, never a ``ValidationError`` (reserved for the caller's own
    input). ``written`` names what a write may have done anyway, for the message.
    """
    data = decode_json(response)
    try:
        if not isinstance(data, dict):
            raise ValidationError(model.__name__, [FieldError(None, f"expected a JSON object, got {json_kind(data)}")])
        record = model.from_api(data)
        found = getattr(record, "id", None)
        if "id" in model.model_fields and found is None:
            # A stored record always has its server-assigned id; without one this is not the record.
            raise ValidationError(model.__name__, [FieldError("id", "missing: a stored record always has one")])
        if expected_id is not None and (found != expected_id or isinstance(found, bool)):
            raise ValidationError(model.__name__, [FieldError("id", f"{found!r}, not the {expected_id} asked for")])
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
    return Page[model](**{**dict(envelope), "content": readable(model, envelope.content, where=where)})  # type: ignore[valid-type]


def readable(model: type[M], items: list[Any], *, where: str) -> list[M]:
    """The items that read as ``model``; the others are logged (position and reason) and skipped."""
    records = []
    for position, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ValidationError(model.__name__, [FieldError(None, f"expected a JSON object, got {json_kind(item)}")])
            records.append(model.from_api(item))
        except ValidationError as exc:
            reasons = "; ".join(str(fe) for fe in exc.field_errors)
            log.warning("%s: skipped record %d, not a readable %s (%s)", where, position, model.__name__, reasons)
    return records


def json_kind(data: Any) -> str:
    if data is None:
        return "an empty body"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(data), "a number")
