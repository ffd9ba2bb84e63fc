"""Stored events -> a typed DataFrame: the log's own columns, then the payload as ``payload.*``."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from typing import Any, Final

import pandas as pd

from ..models import flatten_record
from .envelope import INT64_MAX, INT64_MIN
from .store import EventRow, RejectionRow

__all__ = ["COLUMNS", "events_frame", "rejections_frame"]

#: Event-log columns before the flattened ``payload.*`` ones.
COLUMNS = ["received_at", "event_id", "type", "resource_id", "delivery_count"]

#: A timestamp column's dtype: timezone-aware UTC.
UTC_DTYPE: Final = "datetime64[ns, UTC]"


def events_frame(rows: Iterable[EventRow]) -> pd.DataFrame:
    """One row per event: ``received_at`` (UTC), Int64 ids and counts, then ``payload.*``
    with integer columns as Int64 and flags as boolean."""
    records = []
    for row in rows:
        record: dict[str, Any] = {name: getattr(row, name) for name in COLUMNS}
        data = json.loads(row.payload) if isinstance(row.payload, (str, bytes)) else row.payload
        if isinstance(data, dict):
            record.update(flatten_record(data, "payload."))
        elif data is not None:
            record["payload"] = data
        records.append(record)
    # dtype=object keeps ints as ints (not floats beside a gap) until _tidy types each column.
    frame = pd.DataFrame(records, columns=None if records else COLUMNS, dtype=object)
    frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True, format="ISO8601").astype(UTC_DTYPE)
    for col in ("event_id", "resource_id", "delivery_count"):
        frame[col] = frame[col].astype("Int64")
    frame["type"] = frame["type"].astype("string")
    for col in frame.columns[len(COLUMNS) :]:
        with contextlib.suppress(TypeError, ValueError):
            frame[col] = _tidy(frame[col])
    return frame


def _tidy(column: pd.Series) -> pd.Series:
    """Nullable ints for integer columns (ids), nullable booleans for flags; else unchanged."""
    values = column.dropna()
    if values.empty:
        return column
    if all(isinstance(v, bool) for v in values):
        return column.astype("boolean")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        # Int64 holds 64 bits; a column with a larger integer stays Python ints.
        return column.astype("Int64") if all(INT64_MIN <= v <= INT64_MAX for v in values) else column
    return column.infer_objects()


def rejections_frame(rows: Iterable[RejectionRow]) -> pd.DataFrame:
    """Refused deliveries: when (UTC), status (Int64), reason, sender."""
    frame = pd.DataFrame(list(rows), columns=list(RejectionRow._fields))
    frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True, format="ISO8601").astype(UTC_DTYPE)
    frame["status"] = frame["status"].astype("Int64")
    return frame
