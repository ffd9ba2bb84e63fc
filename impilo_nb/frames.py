"""API records -> pandas DataFrames with stable columns and proper dtypes.

Columns keep the wire's camelCase names with nested objects flattened by dots
(``address.city``), so a frame can be edited and sent back. Ids are nullable integers (Int64),
flags nullable booleans, dates of birth datetime64 dates; every known column is present even
when no row has a value, so code written against one frame works on the next.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from .models import Address, Patient, WebhookLogEntry, flatten_record

__all__ = ["PATIENT_COLUMNS", "WEBHOOK_LOG_COLUMNS", "patient_frame", "webhook_log_frame"]

_ADDRESS = [Address.model_fields[name].alias for name in Address.model_fields]

#: The columns of a patient frame, in display order.
PATIENT_COLUMNS = [
    "id",
    "externalIdentifier",
    "firstName",
    "lastName",
    "dateOfBirth",
    "sex",
    "email",
    "phoneNumber",
    "enrolled",
    "archived",
    *(f"address.{name}" for name in _ADDRESS),
    "site.name",
    "site.active",
    "site.phoneNumber",
    *(f"site.address.{name}" for name in _ADDRESS),
]


def patient_frame(patients: Iterable[Patient | Mapping[str, Any]]) -> pd.DataFrame:
    """One row per patient, columns as in ``PATIENT_COLUMNS`` then any extra server fields."""
    rows = [flatten_record(p.to_api() if isinstance(p, Patient) else dict(p)) for p in patients]
    frame = pd.DataFrame.from_records(rows)
    extras = [col for col in frame.columns if col not in PATIENT_COLUMNS]
    frame = frame.reindex(columns=PATIENT_COLUMNS + extras)
    for col in PATIENT_COLUMNS:
        frame[col] = frame[col].astype(_DTYPES.get(col, "string"))
    return frame


_DTYPES = {"id": "Int64", "dateOfBirth": "datetime64[ns]", "enrolled": "boolean", "archived": "boolean", "site.active": "boolean"}


#: The documented delivery-log fields, in order; the sandbox adds eventId, status, lastError,
#: nextAttemptTimestamp and attempts after them.
WEBHOOK_LOG_COLUMNS = [
    "id",
    "webhookId",
    "webhookType",
    "webhookUrl",
    "payload",
    "createTimestamp",
    "lastResponseStatus",
    "retryAttempts",
    "lastRetryTimestamp",
]
_LOG_DTYPES = {
    "id": "Int64",
    "webhookId": "Int64",
    "lastResponseStatus": "Int64",
    "retryAttempts": "Int64",
    "eventId": "Int64",
}
_LOG_TIMES = ("createTimestamp", "lastRetryTimestamp", "nextAttemptTimestamp")


def webhook_log_frame(entries: Iterable[WebhookLogEntry | Mapping[str, Any]]) -> pd.DataFrame:
    """One row per delivery; ids and counts Int64, timestamps timezone-aware UTC."""
    rows = [e.model_dump(mode="json", by_alias=True) if isinstance(e, WebhookLogEntry) else dict(e) for e in entries]
    frame = pd.DataFrame(rows, dtype=object)
    extras = [col for col in frame.columns if col not in WEBHOOK_LOG_COLUMNS]
    frame = frame.reindex(columns=WEBHOOK_LOG_COLUMNS + extras)
    for col in frame.columns:
        if col in _LOG_TIMES:
            frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601").astype("datetime64[ns, UTC]")
        elif col in _LOG_DTYPES:
            frame[col] = frame[col].astype(_LOG_DTYPES[col])
        elif col != "attempts":
            frame[col] = frame[col].astype("string")
    return frame
