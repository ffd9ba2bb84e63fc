"""Bulk import: a DataFrame of patients -> created, updated or left alone, one result per row.

    results = nb.bulk.upsert_patients(client, frame)   # frame columns as client.patients.frame()
    results.status.value_counts()

Columns use the wire names, nested fields dotted (``address.city``), as ``patients.frame()``
returns them, so an exported frame can be edited and imported back; snake_case names work too.
Other columns are carried into the results untouched; a column named like one of
``RESULT_COLUMNS`` (a CRM export's own ``status``) is refused before anything is sent, since
the results would overwrite it. Rows are taken by position, so any index works.

Per row: validate; find the existing patient by the key (``externalIdentifier`` by default);
create it, or update it with a PUT when something changed, or leave it alone. Fields that
have a column are set from the row (an empty cell clears the field); fields without a column
keep their current value, so importing a file of names never wipes anyone's address.

Round trips are what make an import slow, so existing patients are looked up in batches
(``LOOKUP_BATCH`` external identifiers per request), unchanged rows cost no request at all,
and writes run on ``workers`` threads sharing the client's connection pool. A second run of
the same data therefore reads a few pages and writes nothing. A 429 pauses every worker for
its Retry-After (``ImpiloClient`` does that), and no row's failure stops the others.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import pandas as pd

from . import transport
from ._constants import DEFAULT_POOL_SIZE
from .client import ImpiloClient
from .errors import APIError, APIStatusError, ConflictError, FieldError, ValidationError
from .models import Patient, patient_changes, prune_empty_objects, set_path
from .responses import read_record

__all__ = ["RESULT_COLUMNS", "STATUSES", "summary", "upsert_patients"]

#: Row outcomes. In a dry run, "would create" and "would update" replace the first two.
STATUSES = ("created", "updated", "unchanged", "invalid", "failed")

#: Columns added to the input rows (an input column may not have one of these names).
RESULT_COLUMNS = ["status", "patient_id", "error", "http_status", "attempts", "latency_ms"]

_RESULT_DTYPES = dict(zip(RESULT_COLUMNS, ("string", "Int64", "string", "Int64", "Int64", "Float64"), strict=True))

#: External identifiers per lookup request: keeps the URL well under common 8 KB limits.
LOOKUP_BATCH = 100

#: Keys a row can be matched on.
KEYS = ("externalIdentifier", "id")


@dataclass
class _Outcome:
    status: str
    patient_id: int | None = None
    error: str | None = None
    http_status: int | None = None
    attempts: int = 0
    latency_ms: float | None = None


def _wire_path(column: str, known: set[str]) -> str | None:
    """The wire path a column names (either spelling), or None when it is not a patient field."""
    if column in known:
        return column
    from pydantic.alias_generators import to_camel

    camel = ".".join(to_camel(part) for part in str(column).split("."))
    return camel if camel in known else None


def _known_paths() -> set[str]:
    from .frames import PATIENT_COLUMNS

    return set(PATIENT_COLUMNS)


def _cell(value: Any) -> Any:
    """A DataFrame cell as a plain value: NaN/NA/NaT/blank text -> None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        return value.item()
    return value


def _row_record(row: dict[str, Any], columns: dict[str, str], base: dict[str, Any] | None) -> dict[str, Any]:
    """The record a row describes, laid over ``base`` (the stored patient) when there is one."""
    record = _deep_copy(base) if base else {}
    for column, path in columns.items():
        set_path(record, path, _cell(row[column]))
    prune_empty_objects(record)
    return record


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def _reason(exc: Exception) -> str:
    if isinstance(exc, (ValidationError, APIStatusError)) and exc.field_errors:
        return "; ".join(str(fe) for fe in exc.field_errors)
    return getattr(exc, "message", None) or str(exc)


def upsert_patients(
    client: ImpiloClient,
    frame: pd.DataFrame,
    *,
    workers: int = 8,
    key: str = "externalIdentifier",
    progress: bool = True,
    dry_run: bool = False,
) -> pd.DataFrame:
    """Create or update a patient per row; returns the rows with what happened to each.

    Args:
        client: the connection to use (its pool is shared by the workers).
        frame: one patient per row (see the module docstring for the columns), any index
            (repeated labels from ``pd.concat`` included). Column names must be unique and
            none may be one of ``RESULT_COLUMNS``: rename such a column first, e.g.
            ``frame.rename(columns={"status": "crm_status"})``.
        workers: parallel write requests, 1 to 32.
        key: match rows to stored patients on ``externalIdentifier`` (default) or ``id``.
        progress: show a progress bar (a widget in notebooks, text in terminals).
        dry_run: validate and look up, but write nothing; statuses say what would happen.

    Returns:
        The input rows (same index labels, order and columns) plus ``status`` (created,
        updated, unchanged, invalid, failed), ``patient_id``, ``error``, ``http_status``,
        ``attempts`` (tries of the write; 0 when nothing was written) and ``latency_ms``.

    Raises:
        ValidationError: a bad argument or column, before any request is sent.
    """
    _check_arguments(frame, workers, key)
    columns, key_column = _patient_columns(frame, key)
    rows = frame.to_dict("records")  # by position: index labels may repeat
    outcomes, keys = _match_keys(rows, frame.index.tolist(), key_column, key)
    bar = _progress_bar(len(rows), progress, dry_run)
    bar.update(len(outcomes))
    try:
        existing, lookup_error = _lookup(client, key, list(keys.values()))
        if lookup_error is not None:
            outcomes.update(dict.fromkeys(keys, _lookup_failed(lookup_error)))
            bar.update(len(keys))
        else:
            plans = {}
            for position, value in keys.items():
                plan = _plan(rows[position], columns, existing.get(value), key, value)
                if isinstance(plan, _Outcome):
                    outcomes[position] = plan
                    bar.update(1)
                else:
                    plans[position] = plan
            outcomes.update(_carry_out(client, plans, workers, dry_run, bar))
    finally:
        bar.close()
    return _results(frame, outcomes)


def _check_arguments(frame: Any, workers: Any, key: Any) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise _refused("frame", f"Expected a pandas DataFrame, got {type(frame).__name__}.")
    if not isinstance(workers, int) or not 1 <= workers <= DEFAULT_POOL_SIZE:
        raise _refused("workers", f"Must be a whole number from 1 to {DEFAULT_POOL_SIZE}.")
    if key not in KEYS:
        raise _refused("key", f"Must be one of {', '.join(KEYS)}, got {key!r}.")
    if problems := _column_problems(frame.columns):
        raise ValidationError("upsert_patients", problems)


def _column_problems(names: pd.Index) -> list[FieldError]:
    """Column names that would make rows ambiguous (repeated) or be overwritten by the results."""
    repeated = dict.fromkeys(names[names.duplicated()])
    problems = [
        FieldError(
            str(name),
            "This column name appears more than once, so a row's value is ambiguous; "
            "rename or drop the copies (frame.columns.duplicated() marks them).",
        )
        for name in repeated
    ]
    for name in dict.fromkeys(n for n in names if n in RESULT_COLUMNS):
        problems.append(
            FieldError(
                name,
                f"The results add a {name!r} column, which would overwrite this one. Rename it first, "
                f'e.g. frame.rename(columns={{"{name}": "crm_{name}"}}); if these are an earlier import\'s '
                "results, drop their result columns: frame.drop(columns=nb.bulk.RESULT_COLUMNS, errors='ignore').",
            )
        )
    return problems


def _patient_columns(frame: pd.DataFrame, key: str) -> tuple[dict[str, str], Any]:
    """The columns that are patient fields (column -> wire path, ``id`` aside), and the key's column."""
    known = _known_paths()
    columns = {col: path for col in frame.columns if (path := _wire_path(col, known)) is not None and path != "id"}
    key_column = next((col for col in frame.columns if _wire_path(col, known) == key), None)
    if key_column is None:
        raise _refused(key, f"No {key} column: it is needed to find patients on later runs.")
    return columns, key_column


def _match_keys(
    rows: list[dict[str, Any]], labels: list[Any], key_column: Any, key: str
) -> tuple[dict[int, _Outcome], dict[int, Any]]:
    """Each row's key value by position, or an "invalid" outcome (no key, a bad id, a repeat)."""
    outcomes: dict[int, _Outcome] = {}
    keys: dict[int, Any] = {}
    seen: dict[Any, int] = {}
    for position, row in enumerate(rows):
        value = _cell(row[key_column])
        if value is None:
            outcomes[position] = _Outcome("invalid", error=f"No {key}: it is needed to find this patient on later runs.")
            continue
        if key == "id":
            try:
                value = int(value)
            except (TypeError, ValueError):
                outcomes[position] = _Outcome("invalid", error=f"id must be a whole number, got {value!r}.")
                continue
        if value in seen:
            # Position and label: a label alone may name several rows (pd.concat repeats them).
            first = seen[value]
            outcomes[position] = _Outcome(
                "invalid",
                error=f"Same {key} as frame.iloc[{first}] (index label {labels[first]!r}); each patient once per import.",
            )
            continue
        seen[value] = position
        keys[position] = value  # validated after the lookup, on the record as it would be stored
    return outcomes, keys


def _carry_out(client: ImpiloClient, plans: dict[int, tuple], workers: int, dry_run: bool, bar) -> dict[int, _Outcome]:
    """The outcome of each planned create or update, by position: written on ``workers``
    threads, or in a dry run only described."""
    if dry_run:
        bar.update(len(plans))
        return {
            position: _Outcome(f"would {action}", patient_id=current.id if current else None)
            for position, (action, _patient, current) in plans.items()
        }
    done: dict[int, _Outcome] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="impilo-bulk") as pool:
        futures = {pool.submit(_write, client, *plan): position for position, plan in plans.items()}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            bar.update(1)
    return done


def _refused(field: str, message: str) -> ValidationError:
    return ValidationError("upsert_patients", [FieldError(field, message)])


def _lookup(client: ImpiloClient, key: str, values: list[Any]) -> tuple[dict[Any, Patient], Exception | None]:
    """Stored patients by key value, a batch of values per request."""
    found: dict[Any, Patient] = {}
    filter_name = "external_identifier" if key == "externalIdentifier" else "id"
    try:
        for start in range(0, len(values), LOOKUP_BATCH):
            batch = values[start : start + LOOKUP_BATCH]
            wanted = set(batch)
            for patient in client.patients.list(size=len(batch), **{filter_name: batch}):
                value = patient.external_identifier if key == "externalIdentifier" else patient.id
                if value in wanted:  # trust, but check: a server that ignores the filter cannot mislead us
                    found[value] = patient
    except APIError as exc:
        return found, exc
    return found, None


def _lookup_failed(error: Exception) -> _Outcome:
    return _Outcome("failed", error=f"Lookup failed: {_reason(error)}", http_status=getattr(error, "status_code", None))


def _plan(row: dict[str, Any], columns: dict[str, str], current: Patient | None, key: str, value: Any):
    """("create"|"update", patient, current) or an _Outcome when no request is needed."""
    if current is None and key == "id":
        return _Outcome("failed", error=f"No patient with id {value}.", http_status=404)
    base = current.to_api() if current is not None else None
    record = _row_record(row, columns, base)
    record.pop("id", None)
    try:
        patient = Patient.model_validate(record)
    except ValidationError as exc:
        return _Outcome("invalid", error=_reason(exc), patient_id=current.id if current else None)
    if current is None:
        return ("create", patient, None)
    if not patient_changes(current, patient):
        return _Outcome("unchanged", patient_id=current.id)
    return ("update", patient, current)


def _write(client: ImpiloClient, action: str, patient: Patient, current: Patient | None) -> _Outcome:
    started = time.perf_counter()
    try:
        if action == "create":
            try:
                response = client.patients.send_create(patient)
            except ConflictError:
                # Someone (or an interrupted earlier run) created it since the lookup: update it instead.
                existing = client.patients.find_by_external_id(patient.external_identifier)
                if existing is None:
                    raise
                if not patient_changes(existing, patient):
                    return _Outcome("unchanged", patient_id=existing.id, latency_ms=_ms(started))
                action, current = "update", existing
        if action == "update":
            response = client.patients.send_update(current.id, patient)
        stored = read_record(Patient, response, written=f"the patient may have been {action}d")
    except APIError as exc:
        return _Outcome(
            "failed",
            error=_reason(exc),
            http_status=getattr(exc, "status_code", None),
            attempts=exc.attempts or 1,
            latency_ms=_ms(started),
        )
    return _Outcome(
        "created" if action == "create" else "updated",
        patient_id=stored.id,
        http_status=response.status_code,
        attempts=transport.attempts(response),
        latency_ms=_ms(started),
    )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _progress_bar(total: int, enabled: bool, dry_run: bool):
    from tqdm.auto import tqdm

    # No report switch: in a kernel the bar is a widget with no snapshot, which a report page leaves out.
    return tqdm(total=total, desc="checking" if dry_run else "importing", unit="patient", disable=not enabled)


def _results(frame: pd.DataFrame, outcomes: dict[int, _Outcome]) -> pd.DataFrame:
    """The input plus the result columns, filled by position so repeated index labels cannot mix rows up."""
    results = frame.copy()
    ordered = [outcomes[position] for position in range(len(frame))]
    for column, dtype in _RESULT_DTYPES.items():
        results[column] = pd.array([getattr(outcome, column) for outcome in ordered], dtype=dtype)
    return results


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Rows per outcome, every outcome listed (zeros included), with its share of the total."""
    statuses = list(results["status"].dropna().unique())
    dry = any(str(status).startswith("would ") for status in statuses)
    order = ["would create", "would update", *STATUSES[2:]] if dry else list(STATUSES)
    counts = results["status"].value_counts().reindex(order, fill_value=0)
    return pd.DataFrame({"rows": counts, "share": (counts / max(len(results), 1)).round(3)})
