"""API records -> pandas DataFrames with stable columns and proper dtypes.

Columns keep the wire's camelCase names with nested objects flattened by dots
(``address.city``), so a frame can be edited and sent back. The columns and their dtypes are
derived from the models (``fields.wire_paths``, ``fields.leaf_kind``): ids are nullable
integers (Int64), flags nullable booleans, dates of birth datetime64 dates, timestamps
timezone-aware UTC; every known column is present even when no row has a value, so code
written against one frame works on the next.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from .fields import leaf_kind, nested_model, wire_paths
from .models import Patient, WebhookLogEntry, WireModel, flatten_record

__all__ = ["PATIENT_COLUMNS", "WEBHOOK_LOG_COLUMNS", "patient_frame", "webhook_log_frame"]

log = logging.getLogger("impilo_nb")

#: The columns of a patient frame, in display order: every field of ``Patient``.
PATIENT_COLUMNS = wire_paths(Patient)

#: The documented delivery-log fields, in order; a server's extra fields (the sandbox adds
#: eventId, status, lastError, nextAttemptTimestamp and attempts) follow them.
WEBHOOK_LOG_COLUMNS = wire_paths(WebhookLogEntry)

#: The dtypes a frame's columns take (a Literal, so pandas' typed ``astype`` knows the result).
Dtype = Literal["Int64", "boolean", "datetime64[ns]", "datetime64[ns, UTC]", "string"]

#: pandas dtype per kind of field value.
_DTYPES: dict[str, Dtype] = {"integer": "Int64", "flag": "boolean", "date": "datetime64[ns]", "datetime": "datetime64[ns, UTC]"}

#: Fields the sandbox adds to the delivery log, typed like documented ones.
_EXTRA_LOG_DTYPES: dict[str, Dtype] = {"eventId": "Int64", "nextAttemptTimestamp": "datetime64[ns, UTC]"}


def _typed(
    frame: pd.DataFrame, model: type[WireModel], columns: list[str], extra: Mapping[str, Dtype] | None = None
) -> pd.DataFrame:
    """``frame`` with the model's columns first (all present) and each typed by its field's kind."""
    extras = [col for col in frame.columns if col not in columns]
    frame = frame.reindex(columns=columns + extras)
    dtypes = {col: _DTYPES.get(leaf_kind(model, col), "string") for col in columns} | dict(extra or {})
    for col, dtype in dtypes.items():
        if col not in frame.columns:
            continue
        try:
            if dtype.startswith("datetime64[ns, UTC]"):
                frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601").astype(dtype)
            else:
                frame[col] = frame[col].astype(dtype)
        except OverflowError:  # a server's integer beyond 64 bits: every digit kept, as the event log keeps them
            log.warning("Column %s holds an integer beyond 64 bits, so it stays Python ints (dtype object), not %s.", col, dtype)
        except (ValueError, TypeError) as exc:
            # One odd value (a server extra such as eventId "abc", a date outside pandas' range)
            # must not cost the whole listing: the column keeps the values as they came.
            log.warning("Column %s has a value that is not %s (%s), so it keeps its values as they came (dtype object).",
                        col, dtype, str(exc)[:120])
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)  # one missing value: None
    return frame


def patient_frame(patients: Iterable[Patient | Mapping[str, Any]]) -> pd.DataFrame:
    """One row per patient, columns as in ``PATIENT_COLUMNS`` then any extra server fields."""
    rows = [p.to_api() if isinstance(p, Patient) else p if type(p) is dict else dict(p) for p in patients]
    return _typed(_flat_frame(rows, _PATIENT_SHAPE, PATIENT_COLUMNS), Patient, PATIENT_COLUMNS)


@dataclass(frozen=True)
class Shape:
    """The shape of a model's records, from its fields: the names of its values (the leaves
    ``wire_paths`` lists) and of its objects, each object with its own shape."""

    values: tuple[str, ...]
    objects: dict[str, Shape]

    @classmethod
    def of(cls, model: type[BaseModel]) -> Shape:
        values, objects = [], {}
        for name, info in model.model_fields.items():
            inner = nested_model(info.annotation)
            if inner:
                objects[info.alias or to_camel(name)] = cls.of(inner)
            else:
                values.append(info.alias or to_camel(name))
        return cls(tuple(values), objects)

    @functools.cached_property
    def names(self) -> frozenset[str]:
        return frozenset(self.values) | self.objects.keys()


_PATIENT_SHAPE = Shape.of(Patient)


def _flat_frame(rows: list[dict[str, Any]], shape: Shape, columns: list[str]) -> pd.DataFrame:
    """``DataFrame.from_records`` of the rows flattened by ``flatten_record``: the same columns,
    in the same order, with the same values, but built a column at a time.

    The known columns are read straight from the rows (``_read_columns``), which also finds the
    rows that do not fit ``shape``; those are flattened whole, and of the others only their
    extra fields. Known columns stay object (``_typed`` types them), so ids too large for a
    float keep every digit; extra columns are inferred as ``from_records`` infers them.
    """
    data: dict[str, list[Any]] = {column: [] for column in columns}
    unfit: set[int] = set()
    for start in range(0, len(rows), _CHUNK):
        part: dict[str, list[Any]] = {}
        unfit.update(start + number for number in _read_columns(rows[start : start + _CHUNK], shape, "", part))
        for column in columns:
            data[column].extend(part[column])
    known = set(columns)
    fits = list(map(shape.names.issuperset, rows))
    with_extras = set() if all(fits) else {number for number, ok in enumerate(fits) if not ok}
    flats: dict[int, dict[str, Any]] = {}  # the rows that do not fit, flattened whole
    extras: dict[str, list[Any]] = {}  # extra column -> its value per row, in order of first appearance
    for number in sorted(unfit | with_extras):
        row = rows[number]
        flat = {} if number in unfit else flatten_record({k: v for k, v in row.items() if k not in shape.names})
        if number in unfit or not known.isdisjoint(flat):
            flat = flats[number] = flatten_record(dict(row))
            for column in columns:
                data[column][number] = flat.get(column, math.nan)
        for key, value in flat.items():
            if key not in known:
                extras.setdefault(key, [math.nan] * len(rows))[number] = value
    series = {column: pd.Series(data[column], dtype=object) for column in columns}
    series.update((column, pd.Series(values)) for column, values in extras.items())
    return pd.DataFrame(series, index=pd.RangeIndex(len(rows)))


#: How many rows ``_flat_frame`` reads a column at a time: few enough that they stay in the CPU's
#: cache from one column to the next (read over 10,000 rows at once, each column costs 3x more).
_CHUNK = 256

#: Where an object is absent (null or missing), so its fields read as null. Never changed.
_ABSENT: dict[str, Any] = {}


def _read_columns(objects: Sequence[dict[str, Any]], shape: Shape, prefix: str, data: dict[str, list[Any]]) -> set[int]:
    """Read each value column of ``shape`` from the objects into ``data`` (by dotted path), and
    return the positions of the objects ``flatten_record`` reads otherwise: an object (a dict)
    where a value belongs, anything else where an object belongs, or, below the top level, a
    field outside the shape. Their columns are read too, but wrong."""
    unfit: set[int] = set()
    for name in shape.values:
        column = data[prefix + name] = list(map(dict.get, objects, itertools.repeat(name)))  # obj.get(name), looped in C
        if any(issubclass(kind, dict) for kind in set(map(type, column))):
            unfit.update(number for number, value in enumerate(column) if isinstance(value, dict))
    for name, inner in shape.objects.items():
        column = list(map(dict.get, objects, itertools.repeat(name)))
        if not _OBJECT_TYPES.issuperset(map(type, column)):
            unfit.update(number for number, value in enumerate(column) if type(value) not in _OBJECT_TYPES)
        nested = [value if type(value) is dict else _ABSENT for value in column]
        fits = list(map(inner.names.issuperset, nested))
        if not all(fits):
            unfit.update(number for number, ok in enumerate(fits) if not ok)
        unfit.update(_read_columns(nested, inner, f"{prefix}{name}.", data))
    return unfit


#: What an object's place may hold for ``_read_columns`` to read it: an object, or nothing.
_OBJECT_TYPES = frozenset([dict, type(None)])


def webhook_log_frame(entries: Iterable[WebhookLogEntry | Mapping[str, Any]]) -> pd.DataFrame:
    """One row per delivery; ids and counts Int64, timestamps timezone-aware UTC."""
    rows = [e.model_dump(mode="json", by_alias=True) if isinstance(e, WebhookLogEntry) else dict(e) for e in entries]
    frame = _typed(pd.DataFrame(rows, dtype=object), WebhookLogEntry, WEBHOOK_LOG_COLUMNS, _EXTRA_LOG_DTYPES)
    for col in frame.columns[len(WEBHOOK_LOG_COLUMNS) :]:
        if col not in _EXTRA_LOG_DTYPES and col != "attempts":  # attempts: a list per delivery
            frame[col] = frame[col].astype("string")
    return frame
