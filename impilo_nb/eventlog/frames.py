"""Stored events -> typed DataFrames, built column by column.

The output is exactly what flattening each payload with ``models.flatten_record`` and making
a DataFrame of the rows gives (the tests compare with just that): the log's own columns, then
the payload as ``payload.*`` in the order the names first appear, integer columns as Int64,
flags as boolean, timestamps as UTC. It is built without a dict per row, because at a million
events that per-row work is most of the time and memory:

- each payload is flattened once, when stored (``flat_payload``): the list of its column
  names (its *shape*) and the list of their values;
- a read gets, per batch and shape, one JSON array per column of the log's own and one of the
  rows' value lists (``store.ColumnBatch``); each is one ``json.loads``, and a shape's value
  lists are transposed into columns in C (``zip``);
- each column is typed once, from the set of Python types it holds.

Rows stored before the flat form existed come as payloads and are flattened here, one by one.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import Any, Final

import numpy as np
import pandas as pd

from ..errors import FieldError, ValidationError
from ..models import flatten_record
from .envelope import INT64_MAX, INT64_MIN
from .store import AttemptRow, ColumnBatch, RejectionRow

__all__ = [
    "COLUMNS",
    "LATEST_COLUMNS",
    "PAYLOAD",
    "attempts_frame",
    "check_columns",
    "flat_payload",
    "batches_frame",
    "rejections_frame",
    "timeline_frame",
]

#: Event-log columns before the flattened ``payload.*`` ones.
COLUMNS = ["received_at", "event_id", "type", "resource_id", "delivery_count"]

#: ``EventLog.latest()`` columns before the ``payload.*`` ones.
LATEST_COLUMNS = ["resource_id", "event_id", "received_at", "type", "source"]

#: The name of the payload column, and the prefix of its flattened parts.
PAYLOAD = "payload"

#: A timestamp column's dtype: timezone-aware UTC.
UTC_DTYPE: Final = "datetime64[ns, UTC]"

#: The dtype of each of the log's own columns.
_FIXED_DTYPES: Final = {
    "received_at": UTC_DTYPE, "attempted_at": UTC_DTYPE, "event_id": "Int64", "resource_id": "Int64",
    "delivery_count": "Int64", "status_code": "Int64", "status": "Int64", "type": "string", "source": "string",
    "kind": "string", "target": "string", "latency_ms": "float64",
}

_NONE = type(None)


def check_columns(columns: Iterable[str] | None, fixed: Sequence[str]) -> tuple[list[str] | None, set[str] | None]:
    """``columns`` checked before anything is read: ``(columns, payload names)``, or ``(None, None)`` for all.

    Raises:
        ValidationError: not a list of names, a repeated name, or a name that is neither one of
            ``fixed`` nor ``payload``/``payload.*``.
    """
    if columns is None:
        return None, None
    # Any collection of names: a list, a tuple, another frame's .columns (an Index), a numpy array.
    names = None if isinstance(columns, (str, bytes, Mapping)) or not isinstance(columns, Iterable) else list(columns)
    if names is None or not all(isinstance(c, str) for c in names):
        problem = f"Give a list of column names, such as ['received_at', 'type', 'payload.email']; got {columns!r:.80}."
        raise ValidationError("frame", [FieldError("columns", problem)])
    columns = names
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    unknown = [c for c in columns if c not in fixed and c != PAYLOAD and not c.startswith(PAYLOAD + ".")]
    problems = [FieldError("columns", f"{name!r} is given twice; give each column once.") for name in repeated]
    if unknown:
        problems.append(FieldError("columns", f"Unknown: {', '.join(map(repr, unknown))}. Columns are {', '.join(fixed)}"
                                   " and the payload's, named payload.<key> (payload.address.city for nested keys)."))
    if problems:
        raise ValidationError("frame", problems)
    return list(columns), {c for c in columns if c not in fixed}


def flat_payload(payload: Any) -> tuple[str, str]:
    """A payload's flat form, as the store keeps it: ``(shape, values)``, the JSON lists of
    its flattened column names and of their values, as ``frame()`` shows them."""
    flat = flatten_record({PAYLOAD: payload})  # a null payload gives no column, a scalar one "payload"
    return json.dumps(list(flat)), json.dumps(list(flat.values()))


def batches_frame(
    batches: Iterable[ColumnBatch], *, fields: Sequence[str], fixed: Sequence[str], sort_by: str,
    columns: Sequence[str] | None = None, payload_names: set[str] | None = None,
) -> pd.DataFrame:
    """A DataFrame of a store's ``ColumnBatch``es: the ``fixed`` of ``fields`` typed, then ``payload.*``.

    Rows are sorted by ``sort_by`` (``seq``: arrival, as stores read; ``resource_id``). When
    ``seq`` is among ``fields`` the highest read is ``frame.attrs["last_seq"]`` (None when no
    row was read). ``columns`` and ``payload_names`` (from ``check_columns``) keep only those
    columns, in that order; a payload name that no row has raises ``ValidationError`` naming
    the ones there are.
    """
    parts: dict[str, list[list[Any]]] = {name: [] for name in fields}
    payloads = _Payloads(payload_names)
    count = 0
    for batch in batches:
        arrays = [json.loads(text) for text in batch.columns]
        for name, array in zip(fields, arrays, strict=True):
            parts[name].append(array)
        if batch.values is not None and payload_names != set():
            payloads.add(batch, start=count)
        count += len(arrays[0])
    keys = np.fromiter(chain.from_iterable(parts[sort_by]), dtype=np.int64, count=count)
    order = np.arange(count) if sort_by == "seq" else np.argsort(keys, kind="stable")
    rank = np.empty(count, dtype=np.intp)
    rank[order] = np.arange(count)
    frame = pd.DataFrame({name: _typed(name, _ordered(parts[name], order, count)) for name in fixed},
                         index=pd.RangeIndex(count))
    read_seq = "seq" in parts
    parts.clear()  # a million rows of Python values: gone before the payload columns are built
    if columns is not None:
        payloads.check_known(columns, rank)
    payload_columns = payloads.columns(count, rank)
    if payload_columns:
        frame = pd.concat([frame, pd.DataFrame(payload_columns, index=frame.index)], axis=1)
    if columns is not None:
        frame = frame[list(columns)]
    if read_seq:
        frame.attrs["last_seq"] = int(keys.max()) if count else None
    return frame


def _ordered(arrays: list[list[Any]], order: np.ndarray, count: int) -> np.ndarray:
    values = np.fromiter(chain.from_iterable(arrays), dtype=object, count=count)
    ordered: np.ndarray = values.take(order)
    return ordered


def _typed(name: str, values: Any) -> Any:
    """One of the log's own columns with its dtype (``_FIXED_DTYPES``)."""
    dtype = _FIXED_DTYPES[name]
    if dtype == UTC_DTYPE:
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601").astype(UTC_DTYPE).array
    return pd.array(values, dtype=dtype)


class _Payloads:
    """Flattened payload values gathered column by column.

    For each name: the pieces ``(rows, values)`` that hold it (rows in read order, until
    ``rank`` gives each its place), the Python types of its values, and where it appears
    (piece rows, position in the shape), which orders the columns as a DataFrame of flattened
    rows would: by the first row that has the name, then by its place in that row.
    """

    def __init__(self, wanted: set[str] | None) -> None:
        self.wanted = wanted
        self.pieces: dict[str, list[tuple[Sequence[int], Sequence[Any]]]] = {}
        self.types: dict[str, set[type]] = {}
        self.places: dict[str, list[tuple[Sequence[int], int]]] = {}
        self._shapes: dict[str, tuple[str, ...]] = {}

    def add(self, batch: ColumnBatch, *, start: int) -> None:
        """One batch's values, split by shape; rows of shape -1 hold payloads, flattened here."""
        values = json.loads(batch.values or "[]")
        shapes = np.asarray(json.loads(batch.shapes), dtype=np.int64)
        kinds, which = np.unique(shapes, return_inverse=True)
        for kind_index, shape in enumerate(kinds.tolist()):
            if len(kinds) == 1:
                rows: Sequence[int] = range(start, start + len(values))
                members = values
            else:
                places = np.flatnonzero(which == kind_index)
                rows, members = (places + start).tolist(), [values[i] for i in places.tolist()]
            if shape == -1:
                self._payloads(members, rows)
            else:
                text = batch.names[shape]
                if (names := self._shapes.get(text)) is None:
                    names = self._shapes[text] = tuple(json.loads(text))
                self._shape(names, rows, members)

    def _payloads(self, payloads: list[Any], rows: Sequence[int]) -> None:
        """Payloads stored without a flat form, flattened one by one and grouped by shape."""
        by_shape: dict[tuple[str, ...], tuple[list[int], list[list[Any]]]] = {}
        for row, payload in zip(rows, payloads, strict=True):
            flat = flatten_record({PAYLOAD: payload})
            shape_rows, lists = by_shape.setdefault(tuple(flat), ([], []))
            shape_rows.append(row)
            lists.append(list(flat.values()))
        for names, (shape_rows, lists) in by_shape.items():
            self._shape(names, shape_rows, lists)

    def _shape(self, names: tuple[str, ...], rows: Sequence[int], lists: list[list[Any]]) -> None:
        if not names:
            return
        for position, (name, column) in enumerate(zip(names, zip(*lists, strict=True), strict=True)):
            self.places.setdefault(name, []).append((rows, position))
            if self.wanted is None or name in self.wanted:
                self.pieces.setdefault(name, []).append((rows, column))
                self.types.setdefault(name, set()).update(map(type, column))

    def _order(self, rank: np.ndarray) -> list[str]:
        # Every name of a shape shares that shape's rows: find their first final place once per
        # rows, not once per name (a payload of 10,000 keys would be 10,000 numpy calls a shape).
        firsts: dict[int, int] = {}

        def first_place(rows: Sequence[int]) -> int:
            if (place := firsts.get(id(rows))) is None:
                place = firsts[id(rows)] = int(_at(rank, rows).min())
            return place

        def first(name: str) -> tuple[int, int]:
            return min((first_place(rows), position) for rows, position in self.places[name])

        return sorted(self.places, key=first)

    def check_known(self, columns: Sequence[str], rank: np.ndarray) -> None:
        """Raise ``ValidationError`` for asked-for payload names that no row read has."""
        unknown = [c for c in columns if c in (self.wanted or ()) and c not in self.places]
        if unknown:
            known = ", ".join(self._order(rank)[:30]) or "none (no event read has a payload)"
            problem = f"No event read has {', '.join(map(repr, unknown))}. The payload columns there are: {known}."
            raise ValidationError("frame", [FieldError("columns", problem)])

    def columns(self, count: int, rank: np.ndarray) -> dict[str, Any]:
        """Each gathered column as an array of ``count`` rows in final order (missing: NaN), typed."""
        result = {}
        places: dict[int, np.ndarray] = {}  # the final places of each rows, shared by a shape's names
        for name in self._order(rank):
            if name not in self.pieces:
                continue
            column = np.full(count, np.nan, dtype=object)
            for rows, values in self.pieces.pop(name):
                if (at := places.get(id(rows))) is None:
                    at = places[id(rows)] = _at(rank, rows)
                if len(values) == 1:
                    column[at[0]] = values[0]
                else:  # fromiter keeps a list value as one object (an array would try to nest it).
                    column[at] = np.fromiter(values, dtype=object, count=len(values))
            result[name] = _tidy(column, self.types[name] - {_NONE})
        return result


def _at(rank: np.ndarray, rows: Sequence[int]) -> np.ndarray:
    """The final places of ``rows`` (a range is a slice: no index array to build)."""
    return rank[rows.start : rows.stop] if isinstance(rows, range) else rank[np.asarray(rows, dtype=np.intp)]


def _tidy(column: np.ndarray, types: set[type]) -> Any:
    """Nullable ints for integer columns (ids), nullable booleans for flags; else as pandas infers.

    ``types`` (the Python types of the values that are not None) decides without a pass in
    Python; a column with floats takes the exact rule, as a NaN value counts as missing. Int
    and boolean arrays are built from their values and mask directly: a payload of thousands
    of keys makes as many columns, and pandas' own conversion costs more per column than a
    column of a few rows holds.
    """
    with contextlib.suppress(TypeError, ValueError):
        if float in types:
            return _tidy_exactly(pd.Series(column, dtype=object))
        if not types:
            return column
        if types in ({int}, {bool}):
            missing = pd.isna(column)
            data: np.ndarray = np.zeros(len(column), dtype=np.int64 if types == {int} else np.bool_)
            try:
                data[~missing] = column[~missing]
            except OverflowError:  # Int64 holds 64 bits; a column with a larger integer stays Python ints
                return column
            return pd.arrays.IntegerArray(data, missing) if types == {int} else pd.arrays.BooleanArray(data, missing)
        return pd.Series(column, dtype=object).infer_objects()
    return pd.Series(column, dtype=object)


def _tidy_exactly(column: pd.Series) -> pd.Series:
    """``_tidy``'s rule value by value (for columns holding floats, whose NaN counts as missing)."""
    values = column.dropna()
    if values.empty:
        return column
    if all(isinstance(v, bool) for v in values):
        return column.astype("boolean")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return column.astype("Int64") if all(INT64_MIN <= v <= INT64_MAX for v in values) else column
    return column.infer_objects()


def timeline_frame(counts: Sequence[tuple[int, str, int]], *, width: int, label: str) -> pd.DataFrame:
    """``(bucket, type, count)`` rows as a table: a row per bucket from the first to the last
    (``received_at``, its start in UTC), a column per type, zeros where nothing arrived.
    ``attrs["freq"]`` is ``label``, the bucket width's name."""
    if not counts:
        return pd.DataFrame()
    long = pd.DataFrame(list(counts), columns=["received_at", "type", "events"])
    table = long.set_index(["received_at", "type"])["events"].unstack(fill_value=0)
    first, last = int(long["received_at"].min()), int(long["received_at"].max())
    table = table.reindex(range(first, last + width, width), fill_value=0)
    table.index = pd.DatetimeIndex(pd.to_datetime(table.index, unit="s", utc=True).astype(UTC_DTYPE), name="received_at")
    table.attrs["freq"] = label
    return table


def rejections_frame(rows: Iterable[RejectionRow]) -> pd.DataFrame:
    """Refused deliveries: when (UTC), status (Int64), reason, sender."""
    frame = pd.DataFrame(list(rows), columns=list(RejectionRow._fields))
    frame["received_at"] = _typed("received_at", frame["received_at"].tolist())
    frame["status"] = frame["status"].astype("Int64")
    return frame


def attempts_frame(rows: Iterable[AttemptRow]) -> pd.DataFrame:
    """Replay and forward attempts: event id, kind, target, when (UTC), status (Int64), latency, error."""
    return _records_frame(list(rows), AttemptRow._fields)


def _records_frame(rows: list[tuple[Any, ...]], fields: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(fields), dtype=object)
    for name in fields:
        if name in _FIXED_DTYPES:
            frame[name] = _typed(name, frame[name].tolist())
    return frame
