"""Reading what a server answered, trusting nothing: JSON or not, the record asked for or not.

A success status is not enough: a body that is empty, not JSON, or not the record asked for is
an ``UnexpectedResponseError`` (never a ``ValidationError``, which is reserved for the caller's
own input), and a write's message says the change may have happened anyway. In a listing, one
record the client cannot read is skipped with a warning, so it never breaks the rest.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import logging
import math
import operator
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from pydantic.alias_generators import to_camel

from .errors import FieldError, UnexpectedResponseError, ValidationError, redact
from .fields import facts, nested_model
from .models import Page, WireModel

__all__ = [
    "decode_json",
    "is_plain",
    "json_kind",
    "not_plain",
    "page_envelope",
    "read_page",
    "read_record",
    "read_wire_page",
    "readable",
    "wire_records",
]

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
    envelope, where = page_envelope(model, response)
    return Page[model](**{**dict(envelope), "content": readable(model, envelope.content, where=where)})  # type: ignore[valid-type]


def read_wire_page(model: type[WireModel], response: requests.Response) -> Page[Any]:
    """A page envelope like ``read_page``'s, its records left as wire dicts (``wire_records``):
    what a DataFrame is built from, without a model per record."""
    envelope, where = page_envelope(model, response)
    return envelope.model_copy(update={"content": wire_records(model, envelope.content, where=where)})


def page_envelope(model: type[WireModel], response: requests.Response) -> tuple[Page[Any], str]:
    """A response's page envelope with its records unread, and the request it answers (for warnings)."""
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
    return envelope, f"{request.method} {request.path_url}"


def readable(model: type[M], items: list[Any], *, where: str) -> list[M]:
    """The items that read as ``model``; the others are logged (position and reason) and skipped."""
    records = (_read(model, item, position, where) for position, item in enumerate(items))
    return [record for record in records if record is not None]


def wire_records(model: type[WireModel], items: list[Any], *, where: str) -> list[dict[str, Any]]:
    """The items as ``model`` reads them and writes them back (``model.from_api(item).to_api()``),
    the unreadable ones skipped with ``readable``'s warning.

    Cheaply: the items already in that form (``not_plain`` finds the others, a field at a time)
    are kept as they came, and only the others are read through the model. The same records
    and the same warnings, but a page of ordinary records builds no model at all.
    """
    others = not_plain(model, items)
    if not others:
        return list(items)
    records = []
    for position, item in enumerate(items):
        if position not in others:
            records.append(item)
        elif (record := _read(model, item, position, where)) is not None:
            records.append(record.to_api())
    return records


def _read(model: type[M], item: Any, position: int, where: str) -> M | None:
    """``item`` read as ``model``, or None after a warning naming its position and what is wrong."""
    try:
        if not isinstance(item, dict):
            raise ValidationError(model.__name__, [FieldError(None, f"expected a JSON object, got {json_kind(item)}")])
        return model.from_api(item)
    except ValidationError as exc:
        reasons = "; ".join(str(fe) for fe in exc.field_errors)
        log.warning("%s: skipped record %d, not a readable %s (%s)", where, position, model.__name__, reasons)
        return None


# -- plain records: already what the model would make of them ----------------------------------


def is_plain(model: type[WireModel], value: Any) -> bool:
    """Whether ``value`` is a plain ``model`` record (see ``not_plain``)."""
    return not not_plain(model, [value])


def not_plain(model: type[WireModel], items: list[Any]) -> set[int]:
    """The positions of the items that are not plain ``model`` records: a plain record is exactly
    what ``model.from_api(record).to_api()`` gives back, but for the order of its keys and the
    fields it leaves out (null there).

    The rule is derived from the field types, and strict: each field holds a value of its one
    type (an int that is no bool, a non-empty text, one of its ``choices``, a date written
    ``YYYY-MM-DD``, an object plain in turn) or null where the field allows it; the required
    fields are present; extra fields appear only at the top, under a name that is no field's
    Python name and has no dot, holding JSON the model writes back unchanged. Anything else is left to the
    model: an empty text may become null, a datetime may be spelled differently, a snake_case
    key is read into its field. ``tests/test_frames.py`` holds the rule to the model's reading.

    Checked a field at a time over all the items, so the work per value is mostly done in C.
    """
    return _not_plain(_Fields.of(model), items, extras=True)


@dataclass(frozen=True)
class _Field:
    """What a plain value of one field is: one of ``types`` and, unless null, passing ``failing``
    (which gives the positions in a column that fail), or (``nested``) a plain object."""

    types: frozenset[type]
    failing: Callable[[list[Any]], list[int]] | None = None
    nested: _Fields | None = None


@dataclass(frozen=True)
class _Fields:
    """A model's fields as ``not_plain`` checks them, by wire name."""

    fields: dict[str, _Field]
    names: frozenset[str]
    python_names: frozenset[str]

    @classmethod
    @functools.cache
    def of(cls, model: type[WireModel]) -> _Fields:
        fields = {info.alias or to_camel(name): _field(model, name) for name, info in model.model_fields.items()}
        return cls(fields, frozenset(fields), frozenset(model.model_fields) - fields.keys())


def _field(model: type[WireModel], name: str) -> _Field:
    annotation = model.model_fields[name].annotation
    union = isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
    options = typing.get_args(annotation) if union else (annotation,)
    kinds = [option for option in options if option is not types.NoneType]
    nulls = frozenset([types.NoneType]) if len(kinds) < len(options) else frozenset()
    kind = kinds[0] if len(kinds) == 1 else None
    inner = nested_model(kind)
    choices = facts(model, name).choices
    if inner is not None:
        return _Field(nulls | {dict}, nested=_Fields.of(inner))
    if kind is str and choices:
        return _Field(nulls | {str}, functools.partial(_not_chosen, frozenset(choices)))
    if kind in _KINDS:
        wire_type, failing = _KINDS[kind]
        return _Field(nulls | {wire_type}, failing)
    return _Field(nulls)  # any other type: only null is plain


def _empty_texts(column: list[Any]) -> list[int]:
    return [index for index, value in enumerate(column) if value == ""] if "" in column else []


def _not_chosen(choices: frozenset[str], column: list[Any]) -> list[int]:
    try:
        if choices.issuperset(filter(_NOT_NONE, column)):
            return []
    except TypeError:  # an unhashable value (its type is wrong anyway)
        pass
    return [index for index, value in enumerate(column) if type(value) is str and value not in choices]


_ISO_DATE = re.compile("[0-9]{4}-[0-9]{2}-[0-9]{2}")

#: ``value is not None``, as a function C calls without running Python (``filter``).
_NOT_NONE = functools.partial(operator.is_not, None)


def _not_iso_dates(column: list[Any]) -> list[int]:
    """The positions of texts that are not a date written YYYY-MM-DD (as ``date.isoformat`` writes it)."""
    texts = list(filter(_NOT_NONE, column))
    try:
        if all(map(_ISO_DATE.fullmatch, texts)) and all(map(dt.date.fromisoformat, texts)):
            return []
    except (TypeError, ValueError):  # not text, or not a real date: find which below
        pass
    return [index for index, value in enumerate(column) if type(value) is str and not _iso_date(value)]


def _iso_date(value: str) -> bool:
    try:
        return bool(_ISO_DATE.fullmatch(value)) and dt.date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


#: Per field type: the JSON type of a plain value, and what finds the values failing besides.
_KINDS: dict[Any, tuple[type, Callable[[list[Any]], list[int]] | None]] = {
    str: (str, _empty_texts),
    int: (int, None),
    bool: (bool, None),
    dt.date: (str, _not_iso_dates),
}

#: Where an object is absent (null, or not an object), so its fields read as null. Never changed.
_ABSENT: dict[str, Any] = {}

_DICTS = frozenset([dict])


def _not_plain(fields: _Fields, items: list[Any], *, extras: bool) -> set[int]:
    """``not_plain`` over one shape's fields; ``extras``: whether extra fields may be plain."""
    others: set[int] = set()
    if not _DICTS.issuperset(map(type, items)):
        others = {position for position, item in enumerate(items) if type(item) is not dict}
        items = [item if type(item) is dict else _ABSENT for item in items]
    known = list(map(fields.names.issuperset, items))
    if not all(known):
        outside = (position for position, ok in enumerate(known) if not ok)
        others.update(position for position in outside if not (extras and _plain_extras(fields, items[position])))
    for name, field in fields.fields.items():
        column = list(map(dict.get, items, itertools.repeat(name)))  # [item.get(name) for ...], looped in C
        if not field.types.issuperset(map(type, column)):
            others.update(position for position, value in enumerate(column) if type(value) not in field.types)
        if field.nested is not None:
            objects = [value if type(value) is dict else _ABSENT for value in column]
            others.update(p for p in _not_plain(field.nested, objects, extras=False) if objects[p] is not _ABSENT)
        elif field.failing is not None:
            others.update(field.failing(column))
    return others


def _plain_extras(fields: _Fields, record: dict[str, Any]) -> bool:
    """Whether a record's fields outside the model are plain: no Python name, no dot (``"address.city"``
    would collide with a nested field's column, and which wins depends on where the model puts it),
    JSON kept as it is."""
    outside = record.keys() - fields.names
    return (fields.python_names.isdisjoint(outside) and not any("." in key for key in outside)
            and all(_kept_as_json(record[key]) for key in outside))


def _kept_as_json(value: Any) -> bool:
    """Whether JSON comes back unchanged from a model's ``to_api`` (NaN and infinities become null)."""
    if type(value) in (str, int, bool) or value is None:
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(_kept_as_json(item) for item in value)
    if type(value) is dict:
        return all(type(key) is str and _kept_as_json(item) for key, item in value.items())
    return False


def json_kind(data: Any) -> str:
    if data is None:
        return "an empty body"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(data), "a number")
