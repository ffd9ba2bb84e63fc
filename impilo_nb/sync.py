"""Is the customer's system in step with Impilo? ``check`` finds out, ``backfill`` repairs.

``check(client, log)`` compares what Impilo holds with what the customer's receiver wrote into
the event log, on two levels (docs/sync.md says what it proves and what it relies on):

- **Patients.** Every patient Impilo lists (all pages) against the newest state the log holds
  for it (``log.latest()``): ``in_sync`` when every wire field of ``Patient`` agrees,
  ``stale`` when some differ (which ones, with the log's value and Impilo's), ``never_seen``
  when the log holds no event for it, ``unknown`` when the log holds a patient Impilo does not
  list. Both sides are brought to one form per field first (``comparable_values``), so a date
  read from JSON equals the same date in a typed frame, and missing, null and ``""`` are the
  same "no value".
- **Deliveries.** Every entry of Impilo's delivery log (``client.webhook_logs``), matched to the
  event log by event id. The id is read from the entry's ``payload``, the body that was
  delivered, exactly as the receiver reads it (``eventlog.parse_delivery``). ``received``: the
  log holds the event. ``acknowledged_not_logged``: Impilo saw a 2xx for an event the log does
  not hold (another receiver answered, or data was lost after the answer). ``failed``: all
  ``DELIVERY_ATTEMPTS`` attempts of the documented schedule failed. ``pending``: a retry is still
  due, at ``next_attempt_at``.

Only documented API fields are needed. The sandbox's extra delivery-log fields are used when a
server sends them (``eventId`` when a payload names no event, ``nextAttemptTimestamp`` for the
exact time of a retry), never required.

The comparison is vectorised: one merge, then one comparison per field over all patients, so
checking 10,000 patients costs little beyond reading them (``bench/sync.py`` measures it).

``backfill(client, log)`` records, for each stale or never-seen patient, one event carrying
Impilo's current record (``log.record_backfill``). Afterwards ``check`` finds them in sync, and
a second run records nothing.
"""

from __future__ import annotations

import ast
import datetime as dt
import html
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from ._constants import WEBHOOK_RETRY_DELAYS
from ._extras import require
from .client import ImpiloClient
from .errors import FieldError, InvalidDeliveryError, ValidationError
from .eventlog import EventLog, parse_delivery
from .fields import leaf_kind
from .frames import PATIENT_COLUMNS
from .models import Patient

__all__ = [
    "COMPARED_FIELDS",
    "DELIVERY_ATTEMPTS",
    "DELIVERY_STATUSES",
    "PATIENT_STATUSES",
    "SyncReport",
    "backfill",
    "check",
    "compare_patients",
    "comparable_values",
    "match_deliveries",
]

#: What ``check`` can say about a patient, in the order tables and charts show them.
PATIENT_STATUSES: Final = ("in_sync", "stale", "never_seen", "unknown")

#: What ``check`` can say about a delivery-log entry, in the same spirit.
DELIVERY_STATUSES: Final = ("received", "failed", "pending", "acknowledged_not_logged")

#: Attempts a delivery gets in all before the platform gives up: the first and one per delay.
DELIVERY_ATTEMPTS: Final = len(WEBHOOK_RETRY_DELAYS) + 1

#: The fields compared: every wire field of ``Patient`` but ``id``, which is the key.
COMPARED_FIELDS: Final = tuple(path for path in PATIENT_COLUMNS if path != "id")

#: Patients ``backfill`` reads back per request (as a list filter on ``id``).
BACKFILL_BATCH = 100

#: Rows of each detail table ``_repr_html_`` shows; the frames hold every row.
HTML_ROWS = 20

#: How a status reads in the verdict ("3 patients stale, 1 never seen; 2 deliveries failed").
_PROBLEM_WORDS = {
    "stale": "stale",
    "never_seen": "never seen",
    "unknown": "unknown to Impilo",
    "failed": "failed",
    "pending": "pending",
    "acknowledged_not_logged": "acknowledged but not logged",
}

#: A table's noun, singular and plural.
_NOUNS = {"patients": ("patient", "patients"), "deliveries": ("delivery", "deliveries")}

#: The one text form of a date and of a timestamp that both sides are compared in.
_TEXT_FORMATS = {"date": "%Y-%m-%d", "datetime": "%Y-%m-%dT%H:%M:%S.%fZ"}

#: None as ``to_numpy``'s missing value (its stubs leave None out): object arrays then compare
#: element by element, and None equals only None (pandas' NA would refuse to be a bool).
_NONE: Any = None

#: Bar colours of ``plot``: what is fine, and what needs a look.
_OK_COLOUR, _PROBLEM_COLOUR = "#4c9a6a", "#d0783b"


# -- the report ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class SyncReport:
    """What ``check`` found. Display it for the verdict; its frames hold every detail.

    Attributes:
        patients: one row per patient: ``resource_id``, ``status`` (``PATIENT_STATUSES``),
            ``fields`` (the differing fields of a stale patient), ``differences`` (field ->
            (log value, Impilo value)), the log's newest event for it (``event_id``,
            ``received_at``, ``source``: ``delivery`` or ``backfill``), and how many of its
            deliveries ``failed`` or are ``pending``.
        changes: the same differences in long form, one row per patient and field:
            ``resource_id, field, log_value, impilo_value`` (easy to filter and count).
        deliveries: one row per delivery-log entry, newest first: ``delivery_id, webhook_id,
            webhook_type, event_id, resource_id, status`` (``DELIVERY_STATUSES``),
            ``retry_attempts, last_response_status, created_at, last_retry_at, next_attempt_at``.
        since: the ``since`` the check was given (UTC), or None.
        checked_at: when the check started (UTC).
    """

    patients: pd.DataFrame
    changes: pd.DataFrame
    deliveries: pd.DataFrame
    since: pd.Timestamp | None
    checked_at: pd.Timestamp

    @property
    def summary(self) -> pd.Series:
        """Counts per status of both tables, zeros included: index (``table``, ``status``)."""
        counts = {
            "patients": self.patients["status"].value_counts(sort=False),
            "deliveries": self.deliveries["status"].value_counts(sort=False),
        }
        return pd.concat(counts, names=["table", "status"]).astype("int64").rename("count")

    @property
    def repaired(self) -> int:
        """Failed or pending patient deliveries whose patient is in sync now (backfilled or
        overtaken by a later event): lost history, not a difference."""
        return int(self._covered().sum())

    @property
    def verdict(self) -> str:
        """``"in sync"``, or what is not: ``"3 patients stale, 1 never seen; 2 deliveries failed"``.

        Failed and pending deliveries of patients that are in sync now do not count (see
        ``repaired``): the data they carried is in the log by other means.
        """
        statuses = self.deliveries["status"][~self._covered()]
        parts = [
            _phrase("patients", self.patients["status"], PATIENT_STATUSES[1:]),
            _phrase("deliveries", statuses, DELIVERY_STATUSES[1:]),
        ]
        return "; ".join(part for part in parts if part) or "in sync"

    @property
    def in_sync(self) -> bool:
        """Whether the verdict is "in sync"."""
        return self.verdict == "in sync"

    def _covered(self) -> pd.Series:
        """Deliveries not received whose patient is in sync (see ``repaired``)."""
        deliveries = self.deliveries
        in_sync = self.patients.loc[self.patients["status"] == "in_sync", "resource_id"]
        return (
            deliveries["status"].isin(["failed", "pending"])
            & _is_patient_type(deliveries["webhook_type"])
            & deliveries["resource_id"].isin(in_sync).fillna(False).astype(bool)
        )

    def plot(self, ax: Any = None) -> Any:
        """A bar chart of ``summary`` (both tables), titled with the verdict; returns the Axes.

        Raises:
            ConfigurationError: matplotlib (the ``[widgets]`` extra) is not installed.
        """
        require("widgets", "matplotlib")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3))
        summary = self.summary
        labels = [f"{table}: {status.replace('_', ' ')}" for table, status in summary.index]
        fine = {PATIENT_STATUSES[0], DELIVERY_STATUSES[0]}
        colours = [_OK_COLOUR if status in fine else _PROBLEM_COLOUR for _, status in summary.index]
        ax.barh(labels[::-1], summary.to_numpy()[::-1], color=colours[::-1])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("count")
        ax.set_title(f"Sync check: {self.verdict}")
        return ax

    def __repr__(self) -> str:
        return f"SyncReport({self.verdict}: {len(self.patients)} patients, {len(self.deliveries)} deliveries)"

    def _repr_html_(self) -> str:
        when = f"checked {self.checked_at:%Y-%m-%d %H:%M:%S} UTC"
        if self.since is not None:
            when += f", events since {self.since:%Y-%m-%d %H:%M:%S} UTC"
        repaired = f"; {self.repaired} undelivered events since repaired" if self.repaired else ""
        counts = self.summary.unstack("table").T.fillna(0).astype("int64")
        parts = [
            f"<p><b>Sync check: {html.escape(self.verdict)}</b><br><small>{when}{repaired}</small></p>",
            counts.to_html(na_rep=""),
            _html_table("Stale patients: what differs", self.changes),
        ]
        for status, title in (
            ("never_seen", "Never seen (no event in the log)"),
            ("unknown", "Unknown to Impilo (only in the log)"),
        ):
            parts.append(_html_ids(title, self.patients.loc[self.patients["status"] == status, "resource_id"]))
        problems = self.deliveries[self.deliveries["status"] != "received"]
        parts.append(_html_table("Deliveries not received", problems))
        return "".join(parts)


def _phrase(table: str, statuses: pd.Series, which: tuple[str, ...]) -> str:
    """``"3 patients stale, 1 never seen"``: the counts of ``which`` among ``statuses``, noun first."""
    counts = statuses.value_counts()
    found = [(int(counts.get(status, 0)), _PROBLEM_WORDS[status]) for status in which if counts.get(status, 0)]
    if not found:
        return ""
    (first, words), rest = found[0], found[1:]
    noun = _NOUNS[table][first != 1]
    return ", ".join([f"{first} {noun} {words}", *(f"{n} {more}" for n, more in rest)])


def _html_table(title: str, frame: pd.DataFrame) -> str:
    if frame.empty:
        return ""
    more = f" (first {HTML_ROWS} of {len(frame)})" if len(frame) > HTML_ROWS else ""
    table = frame.head(HTML_ROWS).to_html(index=False, na_rep="", escape=True)
    return f"<p><b>{html.escape(title)}</b>{more}</p>{table}"


def _html_ids(title: str, ids: pd.Series) -> str:
    if ids.empty:
        return ""
    shown = ", ".join(str(i) for i in ids.head(HTML_ROWS)) + (", ..." if len(ids) > HTML_ROWS else "")
    return f"<p><b>{html.escape(title)}</b> ({len(ids)}): {html.escape(shown)}</p>"


# -- check -----------------------------------------------------------------------------------


def check(client: ImpiloClient, log: EventLog, *, since: Any = None) -> SyncReport:
    """Compare what Impilo holds with what ``log`` received: patients and deliveries.

    Args:
        client: the account to check (``nb.connect()`` or an ``ImpiloClient``).
        log: the event log the customer's receiver writes.
        since: only delivery-log entries created, and events received, from this moment on
            (a datetime, pandas Timestamp or ISO 8601 text; naive means UTC). Patients are then
            limited to those with an entry or an event since then. Default: everything.

    Returns:
        A ``SyncReport``: display it for the verdict; ``.patients``, ``.changes``,
        ``.deliveries`` and ``.summary`` hold the details.

    Raises:
        ValidationError: ``client``, ``log`` or ``since`` is not usable; the message says why.
        APIError: Impilo could not be read.
    """
    _check_parts("nb.sync.check", client, log)
    start = _as_since(since)
    checked_at = pd.Timestamp.now(tz="UTC")
    # Impilo first, then the log: the receiver commits before it answers 2xx, so an entry read
    # as acknowledged is surely in the log read after it (no false acknowledged_not_logged).
    entries = client.webhook_logs.frame(**({"start_timestamp": start.to_pydatetime()} if start is not None else {}))
    impilo = client.patients.frame()
    latest = log.latest()
    deliveries = match_deliveries(entries, _logged_event_ids(log, start), latest)
    if start is not None:
        scope = _in_scope(deliveries, latest, start)
        impilo = impilo[impilo["id"].isin(scope)]
        latest = latest[latest["resource_id"].isin(scope)]
    patients, changes = compare_patients(impilo, latest)
    return SyncReport(
        patients=_with_delivery_counts(patients, deliveries),
        changes=changes,
        deliveries=deliveries,
        since=start,
        checked_at=checked_at,
    )


def _check_parts(where: str, client: Any, log: Any) -> None:
    problems = []
    if not isinstance(client, ImpiloClient):
        problems.append(FieldError("client", f"Expected an ImpiloClient (nb.connect() gives one), got {type(client).__name__}."))
    if not isinstance(log, EventLog):
        problems.append(FieldError("log", f"Expected an EventLog (nb.EventLog(path)), got {type(log).__name__}."))
    if problems:
        raise ValidationError(where, problems)


def _as_since(value: Any) -> pd.Timestamp | None:
    """``since`` as a UTC Timestamp (naive means UTC), or a ``ValidationError`` saying what to give."""
    if value is None:
        return None
    hint = "Give a datetime, a pandas Timestamp or ISO 8601 text such as '2026-01-31T09:00:00Z' (naive means UTC)."
    if isinstance(value, bool) or not isinstance(value, (str, dt.date)):
        raise ValidationError("nb.sync.check", [FieldError("since", f"Got {type(value).__name__} {value!r}. {hint}")])
    problem = FieldError("since", f"Not a moment in time: {value!r}. {hint}")
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ValidationError("nb.sync.check", [problem]) from None
    if pd.isna(stamp):
        raise ValidationError("nb.sync.check", [problem])
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _logged_event_ids(log: EventLog, start: pd.Timestamp | None) -> pd.Index:
    """The ids of the events the log received (since ``start``), for matching deliveries."""
    frame = log.frame(since=start, columns=["event_id"])
    ids: pd.Index = pd.Index(frame["event_id"].dropna().unique())
    return ids


def _in_scope(deliveries: pd.DataFrame, latest: pd.DataFrame, start: pd.Timestamp) -> pd.Index:
    """Patients with a delivery-log entry since ``start``, or whose newest logged state came since."""
    patient_rows = _is_patient_type(deliveries["webhook_type"])
    recent = latest.loc[latest["received_at"] >= start, "resource_id"]
    scope: pd.Index = pd.Index(deliveries.loc[patient_rows, "resource_id"].dropna()).union(pd.Index(recent.dropna()))
    return scope


def _is_patient_type(types: pd.Series) -> pd.Series:
    """Which webhook types are patient events (``patient.created``, ``patient.updated``...)."""
    return types.astype("string").str.startswith("patient.").fillna(False).astype(bool)


def _with_delivery_counts(patients: pd.DataFrame, deliveries: pd.DataFrame) -> pd.DataFrame:
    """``patients`` with the number of each one's ``failed`` and ``pending`` deliveries."""
    ours = deliveries[_is_patient_type(deliveries["webhook_type"])]
    for status in ("failed", "pending"):
        counts = ours.loc[ours["status"] == status, "resource_id"].value_counts()
        patients[f"{status}_deliveries"] = patients["resource_id"].map(counts).fillna(0).astype("int64")
    return patients


# -- patients ------------------------------------------------------------------------------


def compare_patients(impilo: pd.DataFrame, latest: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Impilo's patients (``client.patients.frame()``) against the log's newest states
    (``log.latest()``): ``(patients, changes)`` as ``SyncReport`` describes them.

    Pure and vectorised: both sides become one table of comparable values (``comparable_values``),
    aligned by id and compared in one array operation; Python runs only per difference found.
    """
    their_ids, theirs = _comparable(impilo, "id", "")
    our_ids, ours = _comparable(latest, "resource_id", "payload.")
    both = their_ids.intersection(our_ids)
    logged, current = ours[our_ids.get_indexer(both)], theirs[their_ids.get_indexer(both)]
    rows, cols = np.nonzero(logged != current)  # elementwise on objects: None equals only None
    changes = pd.DataFrame(
        {
            "resource_id": pd.Series(both[rows], dtype="Int64"),
            "field": pd.Series(np.asarray(COMPARED_FIELDS, dtype=object)[cols], dtype="string"),
            "log_value": pd.Series(logged[rows, cols], dtype=object),
            "impilo_value": pd.Series(current[rows, cols], dtype=object),
        }
    )
    ids = their_ids.union(our_ids)
    status = np.select(
        [~ids.isin(our_ids), ~ids.isin(their_ids), ids.isin(both[rows])], ["never_seen", "unknown", "stale"], "in_sync"
    )
    fields: dict[int, list[str]] = {}
    differences: dict[int, dict[str, tuple[Any, Any]]] = {}
    for rid, name, old, new in zip(both[rows], changes["field"], changes["log_value"], changes["impilo_value"], strict=True):
        fields.setdefault(rid, []).append(name)
        differences.setdefault(rid, {})[name] = (old, new)
    patients = pd.DataFrame(
        {
            "resource_id": pd.Series(ids, dtype="Int64"),
            "status": pd.Categorical(status, categories=PATIENT_STATUSES),
            "fields": [fields.get(rid, []) for rid in ids],
            "differences": [differences.get(rid, {}) for rid in ids],
        }
    )
    newest = latest[["resource_id", "event_id", "received_at", "source"]].drop_duplicates("resource_id", keep="last")
    return patients.merge(newest.astype({"resource_id": "Int64"}), on="resource_id", how="left"), changes


def _comparable(frame: pd.DataFrame, key: str, prefix: str) -> tuple[pd.Index, np.ndarray]:
    """``frame``'s ids (int64) and its comparable values, one row per id and one column per
    compared field (missing columns are all None)."""
    frame = frame[frame[key].notna()].drop_duplicates(key, keep="last")
    values = np.full((len(frame), len(COMPARED_FIELDS)), None, dtype=object)
    for number, path in enumerate(COMPARED_FIELDS):
        if prefix + path in frame.columns:
            values[:, number] = comparable_values(frame[prefix + path], leaf_kind(Patient, path))
    ids: pd.Index = pd.Index(frame[key].astype("int64"), name="resource_id")
    return ids, values


def comparable_values(column: pd.Series, kind: str) -> np.ndarray:
    """A column as the values both sides are compared in, whatever its dtype: a 1-D object array.

    ``kind`` is ``fields.leaf_kind``'s. Integers become Python ints (also from a float column
    that a gap turned to floats), flags Python bools, dates ``YYYY-MM-DD`` text (also from a
    midnight datetime or a datetime64 column), timestamps UTC ISO text, the rest as they are.
    Missing, null, NaN and ``""`` all become None.
    """
    if kind in _TEXT_FORMATS:
        stamps = pd.to_datetime(column, errors="coerce", utc=True, format="ISO8601")
        if kind == "date":  # numpy writes days ten times faster than strftime
            days = np.datetime_as_string(stamps.dt.tz_localize(None).to_numpy(dtype="datetime64[D]"), unit="D")
            text = pd.Series(days, index=column.index, dtype="string")
        else:
            text = stamps.dt.strftime(_TEXT_FORMATS[kind]).astype("string")
        column = text.where(stamps.notna(), column.astype("string"))
    elif kind == "integer" and pd.api.types.is_float_dtype(column):
        column = column.astype("Int64")
    values = column.to_numpy(dtype=object, na_value=_NONE, copy=True)  # a view may be read-only
    values[values == ""] = None
    return values


# -- deliveries ----------------------------------------------------------------------------


def match_deliveries(entries: pd.DataFrame, logged: pd.Index, latest: pd.DataFrame) -> pd.DataFrame:
    """Impilo's delivery-log entries (``client.webhook_logs.frame()``) matched to the event ids
    the log holds (``logged``): one row per entry, with its status (see the module docstring).

    ``latest`` (``log.latest()``) serves only entries whose payload names no event (see
    ``_identify``).
    """
    event_id, resource_id = _identify(entries)
    answered = entries["lastResponseStatus"].astype("Int64")
    retries = entries["retryAttempts"].astype("Int64").fillna(0)
    ok = answered.between(200, 299).fillna(False).astype(bool)
    received = event_id.isin(logged).fillna(False).astype(bool)
    received |= event_id.isna() & _later_state_logged(entries, resource_id, latest)
    exhausted = retries >= DELIVERY_ATTEMPTS - 1  # retryAttempts counts the attempts after the first
    status = np.select([received, ok, exhausted], ["received", "acknowledged_not_logged", "failed"], "pending")
    frame = pd.DataFrame(
        {
            "delivery_id": entries["id"].astype("Int64"),
            "webhook_id": entries["webhookId"].astype("Int64"),
            "webhook_type": entries["webhookType"].astype("string"),
            "event_id": event_id,
            "resource_id": resource_id,
            "status": pd.Categorical(status, categories=DELIVERY_STATUSES),
            "retry_attempts": retries,
            "last_response_status": answered,
            "created_at": entries["createTimestamp"],
            "last_retry_at": entries["lastRetryTimestamp"],
        }
    )
    frame["next_attempt_at"] = _next_attempt(entries, retries).where(frame["status"] == "pending")
    return frame.reset_index(drop=True)


def _identify(entries: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each entry's event id and resource id, as the receiver would store them, from its payload.

    The documented ``payload`` is the delivered body, so ``parse_delivery`` (the receiver's own
    reading) gives the very id the log holds, for either envelope. A payload that is no envelope
    (the docs' sample ``{'id':1234}`` is not even JSON) names no event: then the sandbox's
    ``eventId`` is used when a server sends it, and the payload's ``id`` is read as the record's.
    """
    pairs = [_payload_ids(payload) for payload in entries["payload"]]
    event_id = pd.Series([p[0] for p in pairs], index=entries.index, dtype="Int64")
    resource_id = pd.Series([p[1] for p in pairs], index=entries.index, dtype="Int64")
    if "eventId" in entries.columns:
        event_id = event_id.fillna(entries["eventId"].astype("Int64"))
    return event_id, resource_id


def _payload_ids(payload: Any) -> tuple[int | None, int | None]:
    if not isinstance(payload, str) or not payload:
        return None, None
    try:
        event = parse_delivery(payload.encode("utf-8", "surrogatepass"))
    except InvalidDeliveryError:
        return None, _record_id(payload)
    return event.event_id, event.resource_id


def _record_id(payload: str) -> int | None:
    """The ``id`` of a payload written as a Python-style dict (the docs' sample), else None."""
    try:
        data = ast.literal_eval(payload)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    found = data.get("id") if isinstance(data, dict) else None
    if not isinstance(found, int) or isinstance(found, bool) or not 0 < found < 2**63:
        return None  # an id no int64 holds is no Impilo id
    return found


def _later_state_logged(entries: pd.DataFrame, resource_id: pd.Series, latest: pd.DataFrame) -> pd.Series:
    """For patient entries that name no event: whether the log's newest state of that patient
    came by a delivery received at or after the entry was created (the best evidence left).
    ``latest`` holds patients only: a device's id says nothing about them."""
    delivered = latest[latest["source"] == "delivery"].drop_duplicates("resource_id", keep="last")
    when = pd.Series(delivered["received_at"].to_numpy(), index=delivered["resource_id"].astype("int64"))
    arrived = pd.to_datetime(resource_id.map(when), utc=True)  # NaT where nothing was delivered
    later = (arrived >= pd.to_datetime(entries["createTimestamp"], utc=True)).fillna(False).astype(bool)
    return later & _is_patient_type(entries["webhookType"])


def _next_attempt(entries: pd.DataFrame, retries: pd.Series) -> pd.Series:
    """When each entry's next attempt is due: the server's ``nextAttemptTimestamp`` when it sends
    one, else the documented schedule from the last attempt (an upper bound before the first)."""
    schedule = np.asarray([*WEBHOOK_RETRY_DELAYS, 0], dtype="int64")
    delays = schedule[retries.clip(0, len(WEBHOOK_RETRY_DELAYS)).to_numpy(dtype="int64")]
    base = entries["lastRetryTimestamp"].fillna(entries["createTimestamp"])
    due: pd.Series = base + pd.to_timedelta(delays, unit="s")
    if "nextAttemptTimestamp" in entries.columns:
        due = entries["nextAttemptTimestamp"].fillna(due)
    return due


# -- backfill ------------------------------------------------------------------------------


def backfill(client: ImpiloClient, log: EventLog, report: SyncReport | None = None) -> int:
    """Record Impilo's current state of every stale or never-seen patient in ``log``.

    Each such patient is read from Impilo now and recorded once with ``log.record_backfill``,
    in wire (camelCase) form as a delivery's payload would be, marked as a backfill (type
    ``patient.backfill``). ``log.latest()`` then shows it, so ``check`` finds the patient in sync.
    Recording a state the log already holds adds nothing, so a second run returns 0.

    Args:
        client: the account (as given to ``check``).
        log: the event log to repair.
        report: a ``check`` result to act on; default: run ``check(client, log)`` first.

    Returns:
        How many events were recorded.

    Raises:
        ValidationError: ``client``, ``log`` or ``report`` is not usable.
        APIError: Impilo could not be read.
    """
    _check_parts("nb.sync.backfill", client, log)
    if report is not None and not isinstance(report, SyncReport):
        problem = f"Expected a SyncReport from nb.sync.check, or None, got {type(report).__name__}."
        raise ValidationError("nb.sync.backfill", [FieldError("report", problem)])
    report = report if report is not None else check(client, log)
    wanted = report.patients.loc[report.patients["status"].isin(["stale", "never_seen"]), "resource_id"]
    ids = [int(rid) for rid in wanted]
    added = 0
    for first in range(0, len(ids), BACKFILL_BATCH):
        for patient in client.patients.list(id=ids[first : first + BACKFILL_BATCH]):
            if patient.id is not None:
                added += bool(log.record_backfill(patient.id, patient.to_api()))
    return added
