"""API records -> pandas DataFrames with stable columns and proper dtypes.

Columns keep the wire's camelCase names with nested objects flattened by dots
(``address.city``), so a frame can be edited and sent back. The columns and their dtypes are
derived from the models (``fields.wire_paths``, ``fields.leaf_kind``): ids are nullable
integers (Int64), flags nullable booleans, dates of birth datetime64 dates, timestamps
timezone-aware UTC; every known column is present even when no row has a value, so code
written against one frame works on the next.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import pandas as pd

from .fields import leaf_kind, wire_paths
from .models import Patient, WebhookLogEntry, WireModel, flatten_record

__all__ = ["PATIENT_COLUMNS", "WEBHOOK_LOG_COLUMNS", "patient_frame", "webhook_log_frame"]

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
        if dtype.startswith("datetime64[ns, UTC]"):
            frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601").astype(dtype)
        else:
            frame[col] = frame[col].astype(dtype)
    return frame


def patient_frame(patients: Iterable[Patient | Mapping[str, Any]]) -> pd.DataFrame:
    """One row per patient, columns as in ``PATIENT_COLUMNS`` then any extra server fields."""
    rows = [flatten_record(p.to_api() if isinstance(p, Patient) else dict(p)) for p in patients]
    return _typed(pd.DataFrame.from_records(rows), Patient, PATIENT_COLUMNS)


def webhook_log_frame(entries: Iterable[WebhookLogEntry | Mapping[str, Any]]) -> pd.DataFrame:
    """One row per delivery; ids and counts Int64, timestamps timezone-aware UTC."""
    rows = [e.model_dump(mode="json", by_alias=True) if isinstance(e, WebhookLogEntry) else dict(e) for e in entries]
    frame = _typed(pd.DataFrame(rows, dtype=object), WebhookLogEntry, WEBHOOK_LOG_COLUMNS, _EXTRA_LOG_DTYPES)
    for col in frame.columns[len(WEBHOOK_LOG_COLUMNS) :]:
        if col not in _EXTRA_LOG_DTYPES and col != "attempts":  # attempts: a list per delivery
            frame[col] = frame[col].astype("string")
    return frame
