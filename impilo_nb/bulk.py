"""Bulk import: a DataFrame of patients -> created, updated or left alone, one result per row.

    frame = nb.bulk.read_csv("patients.csv")          # any separator and encoding; index = line numbers
    frame = nb.bulk.suggest_columns(frame).apply(frame)  # "First Name" -> firstName, ...
    results = nb.bulk.upsert_patients(client, frame)   # frame columns as client.patients.frame()
    nb.bulk.summary(results)

Columns use the wire names, nested fields dotted (``address.city``), as ``patients.frame()``
returns them, so an exported frame can be edited and imported back; snake_case names work too.
Other columns are carried into the results untouched; a column named like one of
``RESULT_COLUMNS`` (a CRM export's own ``status``) is refused before anything is sent, since
the results would overwrite it. Rows are taken by position, so any index works, and the
results keep it: a frame from ``read_csv`` is indexed by the file's line numbers, so "line 17"
in the results is line 17 of the file. Columns that name a field under an everyday header
("First Name") are not guessed at: ``suggest_columns`` proposes the names, and an import
whose frame lacks the names a patient needs, but has such look-alikes, is refused before any
request with a pointer to it. docs/csv-import.md tells the whole story.

An import is a plan, then its execution:

- ``plan_upserts`` validates each row, finds the existing patient by the key
  (``externalIdentifier`` by default) and decides the row's ``Action``: create, update, or a
  final status (unchanged, invalid, failed). It sends lookups only, never a write.
- ``execute_plan`` sends the planned writes and turns every action into an ``Outcome``.

A dry run is the plan alone. Fields that have a column are set from the row (an empty cell
clears the field); fields without a column keep their current value, so importing a file of
names never wipes anyone's address.

Round trips are what make an import slow, so existing patients are looked up in batches
(``LOOKUP_BATCH`` external identifiers per request), unchanged rows cost no request at all,
and writes run on ``workers`` threads sharing the client's connection pool. A second run of
the same data therefore reads a few pages and writes nothing. A 429 pauses every worker for
its Retry-After (``ImpiloClient`` does that), and no row's failure stops the others.
"""

from __future__ import annotations

import copy
import reprlib
import time
import warnings
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import transport
from ._constants import DEFAULT_POOL_SIZE
from ._csvfiles import LINE_INDEX, ColumnMapping, field_for, read_csv, suggest_columns
from .client import ImpiloClient
from .errors import APIError, APIStatusError, ConflictError, FieldError, ValidationError
from .models import Patient, patient_changes, prune_empty_objects, set_path
from .responses import read_record

if TYPE_CHECKING:
    from tqdm.auto import tqdm

__all__ = ["RESULT_COLUMNS", "STATUSES", "ColumnMapping", "read_csv", "suggest_columns", "summary", "upsert_patients"]


class RowStatus(StrEnum):
    """A row's ``status`` in the results: what happened to it, or in a dry run what would."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    INVALID = "invalid"
    FAILED = "failed"
    WOULD_CREATE = "would create"
    WOULD_UPDATE = "would update"


_FINAL_WITHOUT_WRITE = (RowStatus.UNCHANGED, RowStatus.INVALID, RowStatus.FAILED)

#: Row outcomes. In a dry run, "would create" and "would update" replace the first two.
STATUSES = tuple(status.value for status in (RowStatus.CREATED, RowStatus.UPDATED, *_FINAL_WITHOUT_WRITE))

#: How ``summary`` lists rows whose status is empty (a results file edited by hand).
NO_STATUS = "(no status)"

_DRY_RUN_STATUSES = tuple(status.value for status in (RowStatus.WOULD_CREATE, RowStatus.WOULD_UPDATE, *_FINAL_WITHOUT_WRITE))


@dataclass(frozen=True)
class Outcome:
    """What happened to one row: its values in the result columns (each field's dtype beside it)."""

    status: RowStatus = field(metadata={"dtype": "string"})
    patient_id: int | None = field(default=None, metadata={"dtype": "Int64"})
    error: str | None = field(default=None, metadata={"dtype": "string"})
    http_status: int | None = field(default=None, metadata={"dtype": "Int64"})
    attempts: int = field(default=0, metadata={"dtype": "Int64"})  # tries of the write; 0 when none was sent
    latency_ms: float | None = field(default=None, metadata={"dtype": "Float64"})


#: Columns added to the input rows (an input column may not have one of these names).
RESULT_COLUMNS = [column.name for column in fields(Outcome)]


@dataclass(frozen=True)
class Action:
    """The plan for one row: its outcome if nothing is sent, and for a write, what to send.

    ``planned.status`` is "would create" or "would update" for a write: ``patient`` is the
    record to send and ``current`` the stored patient an update replaces. Any other status
    (unchanged, invalid, failed) is already the row's final outcome.
    """

    planned: Outcome
    patient: Patient | None = None
    current: Patient | None = None

    @property
    def is_write(self) -> bool:
        return self.planned.status in (RowStatus.WOULD_CREATE, RowStatus.WOULD_UPDATE)


#: External identifiers per lookup request: keeps the URL well under common 8 KB limits.
LOOKUP_BATCH = 100

#: Keys a row can be matched on.
KEYS = ("externalIdentifier", "id")


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
        dry_run: plan only (validate and look up) and write nothing; statuses say what would
            happen ("would create", "would update").

    Returns:
        The input rows (same index labels, order and columns) plus ``status`` (created,
        updated, unchanged, invalid, failed), ``patient_id``, ``error``, ``http_status``,
        ``attempts`` (tries of the write; 0 when nothing was written) and ``latency_ms``.
        ``attrs["dry_run"]`` says whether it was a dry run, which ``summary`` reads.

    Raises:
        ValidationError: a bad argument or column, before any request is sent.
    """
    _check_workers(workers)
    actions = plan_upserts(client, frame, key=key)
    bar = _progress_bar(len(actions), progress, dry_run)
    try:
        if dry_run:
            outcomes = [action.planned for action in actions]
            bar.update(len(actions))
        else:
            outcomes = execute_plan(client, actions, workers=workers, on_done=bar.update)
    finally:
        bar.close()
    return _results(frame, outcomes, dry_run=dry_run)


def plan_upserts(client: ImpiloClient, frame: pd.DataFrame, *, key: str = "externalIdentifier") -> list[Action]:
    """Decide what to do with each row, sending lookups only: the first half of an import.

    Reads each row's key, looks the stored patients up ``LOOKUP_BATCH`` keys per request,
    and lays each row over its stored patient to see whether it is new, changed, unchanged or
    invalid. Nothing is written, so a dry run is exactly this.

    Returns:
        One ``Action`` per row of ``frame``, in row order.

    Raises:
        ValidationError: a bad ``key`` or column, before any request is sent.
    """
    _check_frame(frame, key)
    columns, key_column = _patient_columns(frame, key)
    rows = frame.to_dict("records")  # by position: index labels may repeat
    actions, keys = _match_keys(rows, frame.index.tolist(), key_column, key, lines=frame.index.name == LINE_INDEX)
    try:
        existing = _lookup(client, key, list(keys.values()))
    except APIError as exc:
        actions.update(dict.fromkeys(keys, Action(_lookup_failed(exc))))
    else:
        for position, value in keys.items():
            actions[position] = _plan_row(rows[position], columns, existing.get(value), key, value)
    return [actions[position] for position in range(len(rows))]


def execute_plan(
    client: ImpiloClient,
    actions: list[Action],
    *,
    workers: int = 8,
    on_done: Callable[[int], object] | None = None,
) -> list[Outcome]:
    """Send a plan's writes on ``workers`` threads: the second half of an import.

    An action with nothing to send keeps its planned outcome. A write that fails becomes a
    "failed" outcome rather than an exception, so no row's failure stops the others.

    Args:
        on_done: called with a count of rows each time that many are settled (e.g. a
            progress bar's ``update``).

    Returns:
        One ``Outcome`` per action, in the same order.
    """
    _check_workers(workers)
    settled = on_done or (lambda count: None)
    outcomes = [action.planned for action in actions]
    writes = {position: action for position, action in enumerate(actions) if action.is_write}
    settled(len(actions) - len(writes))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="impilo-bulk") as pool:
        futures = {pool.submit(_write, client, action): position for position, action in writes.items()}
        for future in as_completed(futures):
            outcomes[futures[future]] = future.result()
            settled(1)
    return outcomes


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Rows per status, every status listed (zeros included), and ``percent`` of all rows
    (a float, 97.6 for 97.6 %, rounded to one decimal).

    A dry run's results (``results.attrs["dry_run"]``, set by ``upsert_patients``) are listed
    as "would create" and "would update", and the table carries the same flag in its ``attrs``.
    A status outside the list (results edited by hand, or a dry run read back from a CSV,
    which loses ``attrs``) is added at the end rather than left out of the count; an empty one
    is counted as ``NO_STATUS``.

    Raises:
        ValidationError: ``results`` is not a DataFrame with a ``status`` column.
    """
    if not isinstance(results, pd.DataFrame) or "status" not in results.columns:
        got = type(results).__name__ if not isinstance(results, pd.DataFrame) else "a DataFrame without a status column"
        raise ValidationError("summary", [FieldError("results", f"Expected upsert_patients' results (a DataFrame with a "
                                                                f"status column), got {got}.")])
    dry_run = bool(results.attrs.get("dry_run", False))
    # A row without a status (a results file edited by hand) is counted too, so percents add up to 100.
    counts = results["status"].astype("string").fillna(NO_STATUS).value_counts().astype("int64")
    order = list(_DRY_RUN_STATUSES if dry_run else STATUSES)
    order += [status for status in counts.index if status not in order]
    counts = counts.reindex(order, fill_value=0)
    table = pd.DataFrame({"rows": counts, "percent": (100 * counts / max(len(results), 1)).round(1)})
    table.attrs["dry_run"] = dry_run
    return table


# --- Checking the arguments -------------------------------------------------------------


def _check_workers(workers: Any) -> None:
    if not isinstance(workers, int) or not 1 <= workers <= DEFAULT_POOL_SIZE:
        raise _refused("workers", f"Must be a whole number from 1 to {DEFAULT_POOL_SIZE}.")


def _check_frame(frame: Any, key: Any) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise _refused("frame", f"Expected a pandas DataFrame, got {type(frame).__name__}.")
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
    problems += _same_field_twice(names)
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


def _same_field_twice(names: pd.Index) -> list[FieldError]:
    """Two spellings of one field (``firstName`` and ``first_name``): which one would win is a
    guess, so neither is taken."""
    known = _known_paths()
    by_path: dict[str, list[str]] = {}
    for name in dict.fromkeys(names):
        if isinstance(name, str) and (path := _wire_path(name, known)) is not None:
            by_path.setdefault(path, []).append(name)
    return [
        FieldError(
            spellings[0],
            f"Columns {', '.join(repr(n) for n in spellings)} all name the field {path!r}, so a row's value is "
            f"ambiguous; keep one, e.g. frame.drop(columns={spellings[1:]!r}).",
        )
        for path, spellings in by_path.items()
        if len(spellings) > 1
    ]


def _refused(field_name: str, message: str) -> ValidationError:
    return ValidationError("upsert_patients", [FieldError(field_name, message)])


# --- Planning -----------------------------------------------------------------------------


def _patient_columns(frame: pd.DataFrame, key: str) -> tuple[dict[str, str], Any]:
    """The columns that are patient fields (column -> wire path, ``id`` aside), and the key's column.

    Refused before any request: no key column, or no column named for a field every new patient
    needs while another column names it under an everyday header ("First Name"), which would
    otherwise make every row "firstName: This field is required". Other such look-alikes are
    carried through with a warning.
    """
    known = _known_paths()
    columns = {col: path for col in frame.columns if (path := _wire_path(col, known)) is not None and path != "id"}
    key_column = next((col for col in frame.columns if _wire_path(col, known) == key), None)
    look_alikes = _look_alikes(frame.columns, known)
    if key_column is None:
        raise _refused(key, f"No {key} column: it is needed to find patients on later runs.{_key_hint(frame, key, look_alikes)}")
    if any(path in look_alikes.values() for path in REQUIRED_FIELDS if path not in columns.values()):
        raise _refused(next(iter(look_alikes)), _look_alike_text(look_alikes) + " Name them as the API does first: "
                       "frame = nb.bulk.suggest_columns(frame).apply(frame).")
    if look_alikes:
        warnings.warn(_look_alike_text(look_alikes) + " They are carried into the results, not imported; to import them: "
                      "frame = nb.bulk.suggest_columns(frame).apply(frame).", stacklevel=4)
    return columns, key_column


#: Fields a new patient cannot do without (``Patient``'s required fields, as the wire names them).
REQUIRED_FIELDS = tuple(info.alias or name for name, info in Patient.model_fields.items() if info.is_required())


def _look_alikes(names: pd.Index, known: set[str]) -> dict[str, str]:
    """Columns naming a field only under an everyday header (``"DOB"`` -> ``dateOfBirth``), for
    fields no column names as the API does."""
    named = {_wire_path(col, known) for col in names}
    found = {col: field_for(col) for col in names if isinstance(col, str) and _wire_path(col, known) is None}
    return {col: path for col, path in found.items() if path is not None and path not in named}


def _look_alike_text(look_alikes: dict[str, str]) -> str:
    shown = ", ".join(f"{col!r} ({path})" for col, path in look_alikes.items())
    return f"Columns {shown} look like patient fields but are not named as the API names them."


def _key_hint(frame: pd.DataFrame, key: str, look_alikes: dict[str, str]) -> str:
    """How to get a key column: the file's separator, the everyday names, or deriving the identifier."""
    names = [str(col) for col in frame.columns]
    if len(names) == 1 and any(sep in names[0] for sep in ";\t|"):
        return (f" The only column is {names[0]!r}: the file's separator was not recognised. "
                "Read it with nb.bulk.read_csv(path), which detects it.")
    if look_alikes:
        return f" {_look_alike_text(look_alikes)} Name them as the API does: frame = nb.bulk.suggest_columns(frame).apply(frame)."
    if key == "externalIdentifier":
        return (' Derive one from email and phone: frame["externalIdentifier"] = '
                'nb.external_ids(frame["email"], frame["phoneNumber"]).')
    return ""


def _known_paths() -> set[str]:
    from .frames import PATIENT_COLUMNS

    return set(PATIENT_COLUMNS)


def _wire_path(column: str, known: set[str]) -> str | None:
    """The wire path a column names (either spelling), or None when it is not a patient field."""
    if column in known:
        return column
    from pydantic.alias_generators import to_camel

    camel = ".".join(to_camel(part) for part in str(column).split("."))
    return camel if camel in known else None


def _impilo_id(value: Any) -> tuple[Any, str | None]:
    """An id cell as an Impilo id: a whole number (an integral float from a column with gaps
    too) or ASCII digits; never a bool, a fraction or another script's digits, so a cell such
    as 2.7, True or "٣" can never update patient 2, 1 or 3."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, None
    if isinstance(value, float) and value.is_integer():
        return int(value), None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip()), None
    return value, f"id must be a whole number such as 42, got {value!r}."


def _match_keys(
    rows: list[dict[Hashable, Any]], labels: list[Any], key_column: Any, key: str, *, lines: bool = False
) -> tuple[dict[int, Action], dict[int, Any]]:
    """By position: the rows that are invalid for their key alone (none, a bad id, a repeat),
    and every other row's key value."""
    invalid: dict[int, Action] = {}
    keys: dict[int, Any] = {}
    seen: dict[Any, int] = {}
    for position, row in enumerate(rows):
        value = _cell(row[key_column])
        error = None
        if value is None:
            error = f"No {key}: it is needed to find this patient on later runs."
        elif not isinstance(value, (str, int, float)):
            error = f"{key} must be one text or number value, got {reprlib.repr(value)}."
        elif key == "id":
            value, error = _impilo_id(value)
        if error is None and value in seen:
            error = f"Same {key} as {_row_name(labels, seen[value], lines=lines)}; each patient once per import."
        if error is not None:
            invalid[position] = Action(Outcome(RowStatus.INVALID, error=error))
            continue
        seen[value] = position
        keys[position] = value  # validated after the lookup, on the record as it would be stored
    return invalid, keys


def _row_name(labels: list[Any], position: int, *, lines: bool) -> str:
    """How an error names another row: its line in the file when the index holds them, else
    position and label (a label alone may name several rows: ``pd.concat`` repeats them)."""
    if lines:
        return f"line {labels[position]}"
    return f"frame.iloc[{position}] (index label {labels[position]!r})"


def _lookup(client: ImpiloClient, key: str, values: list[Any]) -> dict[Any, Patient]:
    """Stored patients by key value, a batch of values per request; raises the first ``APIError``."""
    found: dict[Any, Patient] = {}
    filter_name = "external_identifier" if key == "externalIdentifier" else "id"
    for start in range(0, len(values), LOOKUP_BATCH):
        batch = values[start : start + LOOKUP_BATCH]
        wanted = set(batch)
        for patient in client.patients.list(size=len(batch), **{filter_name: batch}):
            value = patient.external_identifier if key == "externalIdentifier" else patient.id
            if value in wanted:  # trust, but check: a server that ignores the filter cannot mislead us
                found[value] = patient
    return found


def _lookup_failed(error: APIError) -> Outcome:
    return Outcome(RowStatus.FAILED, error=f"Lookup failed: {_reason(error)}", http_status=getattr(error, "status_code", None))


def _plan_row(row: dict[Hashable, Any], columns: dict[str, str], current: Patient | None, key: str, value: Any) -> Action:
    """A keyed row's action: create or update it, or a final status when there is nothing to send."""
    if current is None and key == "id":
        return Action(Outcome(RowStatus.FAILED, error=f"No patient with id {value}.", http_status=404))
    patient_id = current.id if current is not None else None
    record = _row_record(row, columns, current.to_api() if current is not None else None)
    record.pop("id", None)
    try:
        patient = Patient.model_validate(record)
    except ValidationError as exc:
        return Action(Outcome(RowStatus.INVALID, patient_id=patient_id, error=_reason(exc)))
    if current is None:
        return Action(Outcome(RowStatus.WOULD_CREATE), patient=patient)
    if not patient_changes(current, patient):
        return Action(Outcome(RowStatus.UNCHANGED, patient_id=patient_id))
    return Action(Outcome(RowStatus.WOULD_UPDATE, patient_id=patient_id), patient=patient, current=current)


def _row_record(row: dict[Hashable, Any], columns: dict[str, str], base: dict[str, Any] | None) -> dict[str, Any]:
    """The record a row describes, laid over ``base`` (the stored patient) when there is one."""
    record = copy.deepcopy(base) if base else {}
    for column, path in columns.items():
        set_path(record, path, _cell(row[column]))
    prune_empty_objects(record)
    return record


def _cell(value: Any) -> Any:
    """A DataFrame cell as a plain value: NaN/NA/NaT/None and blank text -> None, numpy scalars -> Python's."""
    if isinstance(value, str):
        return value if value.strip() else None
    if not pd.api.types.is_scalar(value):
        return value  # a list or an array: pd.isna would answer element by element
    if pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _reason(exc: Exception) -> str:
    if isinstance(exc, (ValidationError, APIStatusError)) and exc.field_errors:
        return "; ".join(str(fe) for fe in exc.field_errors)
    return getattr(exc, "message", None) or str(exc)


# --- Executing ----------------------------------------------------------------------------


def _write(client: ImpiloClient, action: Action) -> Outcome:
    """Send one planned write; any ``APIError`` becomes a "failed" outcome.

    A create answered 409 means the patient appeared after the lookup (another import, or an
    interrupted earlier run): it is updated instead, or left alone when it already matches.
    """
    started = time.perf_counter()
    patient, current = action.patient, action.current
    if patient is None:  # execute_plan sends only writes, and a write carries its record
        raise TypeError(f"not a write: a row planned as {action.planned.status.value!r}")
    try:
        if current is None:  # "would create": no stored patient had the key
            try:
                return _written(client.patients.send_create(patient), RowStatus.CREATED, started)
            except ConflictError:
                key = patient.external_identifier
                current = client.patients.find_by_external_id(key) if key else None
                if current is None:
                    raise
                if not patient_changes(current, patient):
                    return Outcome(RowStatus.UNCHANGED, patient_id=current.id, latency_ms=_ms(started))
        return _written(client.patients.send_update(_stored_id(current), patient), RowStatus.UPDATED, started)
    except APIError as exc:
        return Outcome(
            RowStatus.FAILED,
            error=_reason(exc),
            http_status=getattr(exc, "status_code", None),
            attempts=exc.attempts or 1,
            latency_ms=_ms(started),
        )


def _stored_id(patient: Patient) -> int:
    """The id of a patient read from the server (``read_record`` refuses a stored record without one)."""
    if patient.id is None:
        raise TypeError("a stored patient without an id")
    return patient.id


def _written(response: Any, status: RowStatus, started: float) -> Outcome:
    """The outcome of a write the server answered with success, read from that answer."""
    stored = read_record(Patient, response, written=f"the patient may have been {status.value}")
    return Outcome(
        status,
        patient_id=stored.id,
        http_status=response.status_code,
        attempts=transport.attempts(response),
        latency_ms=_ms(started),
    )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


# --- Results ------------------------------------------------------------------------------


def _progress_bar(total: int, enabled: bool, dry_run: bool) -> tqdm[Any]:
    from tqdm.auto import tqdm

    # No report switch: in a kernel the bar is a widget with no snapshot, which a report page leaves out.
    return tqdm(total=total, desc="checking" if dry_run else "importing", unit="patient", disable=not enabled)


def _results(frame: pd.DataFrame, outcomes: list[Outcome], *, dry_run: bool) -> pd.DataFrame:
    """The input plus the result columns, filled by position so repeated index labels cannot mix rows up."""
    results = frame.copy()
    for column in fields(Outcome):
        values = [getattr(outcome, column.name) for outcome in outcomes]
        if column.name == "status":
            values = [status.value for status in values]  # plain strings in the frame, not enum members
        results[column.name] = pd.array(values, dtype=column.metadata["dtype"])
    results.attrs["dry_run"] = dry_run
    return results
