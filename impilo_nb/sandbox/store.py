"""The sandbox's state in one SQLite file: patients, webhooks, the secret, events, deliveries.

Records are stored as the JSON the API returns. The list filters are derived from the models'
tables (``queries.py``); here each wire path becomes SQL: a patient's through SQLite's JSON
functions, a delivery's through one mapping to its columns (``_DELIVERY_FIELDS``).
One connection behind a lock: the sandbox is for one analyst, so simplicity beats concurrency.

Reads never trust a stored row: the API checks what it stores, but a file may hold rows written
before those checks existed or by other tools. Text that is not UTF-8 is read with U+FFFD in
place of the bad bytes, a record that is not a JSON object is listed with its id alone, and
filters and sorts read such a record's fields as null, so one bad row never fails a listing.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from .._time import utc_iso
from ..fields import ListFilter, leaf_kind
from ..models import Patient, WebhookLogEntry
from .queries import Cursor, ListQuery, PageCursors, Seek, seek

__all__ = ["DeliveryQuery", "DuplicateExternalIdentifierError", "PatientListing", "PatientQuery", "SandboxStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    external_identifier TEXT UNIQUE,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    url TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_secret (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    secret TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL
);
-- One row per (event, webhook): what GET /webhook/logs lists.
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id INTEGER NOT NULL,
    webhook_id INTEGER NOT NULL,
    webhook_type TEXT NOT NULL,
    webhook_url TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',   -- pending | delivered | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    last_response_status INTEGER,
    last_error TEXT,
    last_retry_at TEXT,
    next_attempt_at REAL                     -- epoch seconds; NULL once settled
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (state) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS delivery_attempts (
    delivery_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    response_status INTEGER,
    error TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
"""

log = logging.getLogger(__name__)


#: Where event ids start in a new database: ``EVENT_ID_BASE`` plus a random number below it
#: (see ``SandboxStore._start_event_ids``).
EVENT_ID_BASE = 2**48

#: Patient fields kept in columns of their own besides the JSON: the row's id, and the unique,
#: indexed external identifier. The columns are the truth for a row whose JSON lacks them.
_PATIENT_COLUMNS = {"id": "id", "externalIdentifier": "external_identifier"}

_PLAIN_PATH = re.compile(r"[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*")


def _patient_column(path: str) -> str:
    """SQL for a patient record's field at a wire ``path`` (``address.zipCode``): its own column,
    or the JSON value, null (not an SQL error) for a row whose data is not valid JSON (see the
    module docstring)."""
    if path in _PATIENT_COLUMNS:
        return _PATIENT_COLUMNS[path]
    if not _PLAIN_PATH.fullmatch(path):  # it goes into the SQL text: letters, digits and dots only
        raise ValueError(f"Not a wire path: {path!r}; a ListFilter or sort names fields like 'address.zipCode'.")
    return f"json_extract(CASE WHEN json_valid(data) THEN data END, '$.{path}')"


#: The delivery log's wire fields and the SQL that gives each, for its listing and its filters
#: alike (docs/api-decisions.md#delivery-log). Documented fields first, then the sandbox's own.
_DELIVERY_FIELDS = {
    "id": "id",
    "webhookId": "webhook_id",
    "webhookType": "webhook_type",
    "webhookUrl": "webhook_url",
    "payload": "body",
    "createTimestamp": "created_at",
    "lastResponseStatus": "last_response_status",
    "retryAttempts": "max(attempts - 1, 0)",  # the attempts after the first
    "lastRetryTimestamp": "last_retry_at",
    "eventId": "event_id",
    "status": "state",
    "lastError": "last_error",
    "nextAttemptTimestamp": "next_attempt_at",  # epoch seconds here; ISO text in the entry
}


def _delivery_column(path: str) -> str:
    try:
        return _DELIVERY_FIELDS[path]
    except KeyError:
        raise ValueError(f"The delivery log has no field {path!r}; one of: {', '.join(_DELIVERY_FIELDS)}.") from None


def _inserted_id(cursor: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just wrote (sqlite3 types ``lastrowid`` as optional)."""
    if cursor.lastrowid is None:
        raise RuntimeError("SQLite reported no row id after an INSERT.")
    return cursor.lastrowid


def _record(row_id: int, data: str | bytes) -> dict[str, Any]:
    """A stored patient row as its record; only its id when the data is not a JSON object."""
    try:
        record = json.loads(data)
    except (ValueError, TypeError, RecursionError):
        record = None
    if not isinstance(record, dict):
        log.warning("Patient %s: its stored data is not a JSON object; listed with its id only.", row_id)
        return {"id": row_id}
    record["id"] = row_id
    return record


class DuplicateExternalIdentifierError(Exception):
    """Another patient already has this external identifier."""

    def __init__(self, external_identifier: str, existing_id: int):
        self.external_identifier = external_identifier
        self.existing_id = existing_id
        super().__init__(f"externalIdentifier {external_identifier!r} is already used by patient {existing_id}")


@dataclass(frozen=True)
class PatientQuery(ListQuery):
    """A List Patients query (docs/api-decisions.md#list-patients); by default every patient, by id."""

    filters: tuple[ListFilter, ...] = Patient.LIST_FILTERS
    sort: str | None = "id"

    def sort_key(self) -> str:
        """The SQL of the value rows are sorted by: the ``sort`` path's, text ignoring case."""
        path = self.sort or "id"
        column = _patient_column(path)
        return f"lower({column})" if leaf_kind(Patient, path) == "text" else column

    def order_by(self) -> str:
        """Sorted by ``sort_key``; ties go by id."""
        direction = "DESC" if self.sort_descending else "ASC"
        return f" ORDER BY {self.sort_key()} {direction}, id {direction}"


def _sort_indexes() -> list[str]:
    """One index per List Patients sort other than by id, on (its sort key, id): what lets a
    keyset page seek to where the page before it ended (``queries.seek``)."""
    return [
        f"CREATE INDEX IF NOT EXISTS patients_by_{path.replace('.', '_')} ON patients ({PatientQuery(sort=path).sort_key()}, id)"
        for path in Patient.SORTS.values()
        if path != "id"
    ]


class PatientListing(NamedTuple):
    """One page of List Patients: its records, how many patients match in all, and whether no
    patient follows this page (the envelope's ``last``)."""

    records: list[dict[str, Any]]
    total: int
    last: bool


@dataclass(frozen=True)
class DeliveryQuery(ListQuery):
    """A webhook-logs query (docs/api-decisions.md#delivery-log); always newest first."""

    filters: tuple[ListFilter, ...] = WebhookLogEntry.LIST_FILTERS


class SandboxStore:
    """Patients in a SQLite file, safe to call from the server's worker threads."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # Text that is not UTF-8 reads with U+FFFD instead of failing the query (module docstring).
        self._db.text_factory = functools.partial(str, encoding="utf-8", errors="replace")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        for statement in _sort_indexes():
            self._db.execute(statement)
        self._start_event_ids()
        self._page_ends = PageCursors()

    def _start_event_ids(self) -> None:
        """In a new database, make event ids start at ``EVENT_ID_BASE`` plus a random offset.

        Why: the event id is every receiver's de-duplication key (docs/api-decisions.md#event-ids).
        Counted from 1 in each database, the events of a fresh sandbox (``connect()``'s temporary
        one, ``make lab RESET=1``) would reuse the ids of an earlier one, and an event log kept
        across them would merge unrelated events as redeliveries. A random start in [2^48, 2^49)
        makes a clash between two databases vanishingly unlikely, while ids stay int64 and keep
        increasing within one database. They also always have 15 digits (easy to mask in
        notebook outputs) and stay below 2^53, so JavaScript and float64 columns hold them exactly.
        A database that already has its counter (it has held events) keeps it.
        """
        start = EVENT_ID_BASE + secrets.randbits(48)
        self._db.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'events', ?"
            " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events')",
            (start,),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create_patient(self, data: dict[str, Any]) -> dict[str, Any]:
        """Store a new patient (``data`` without id); return it with its id.

        One transaction: the row is written with its id inside its JSON, and a crash between the
        two statements must not leave an empty patient behind (the fault suite found one).
        """
        with self._lock, self._transaction():
            self._check_unique(data.get("externalIdentifier"), None)
            cursor = self._db.execute(
                "INSERT INTO patients (external_identifier, data) VALUES (?, '{}')", (data.get("externalIdentifier"),)
            )
            record = {"id": cursor.lastrowid, **{k: v for k, v in data.items() if k != "id"}}
            self._db.execute("UPDATE patients SET data = ? WHERE id = ?", (json.dumps(record), record["id"]))
        return record

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def get_patient(self, patient_id: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT id, data FROM patients WHERE id = ?", (patient_id,)).fetchone()
        return _record(*row) if row else None

    def replace_patient(self, patient_id: int, data: dict[str, Any]) -> tuple[dict[str, Any], bool] | None:
        """Replace a patient's record; return (record, changed) or None when it does not exist."""
        with self._lock:
            old = self.get_patient(patient_id)
            if old is None:
                return None
            record = {**data, "id": patient_id}
            self._check_unique(record.get("externalIdentifier"), patient_id)
            self._db.execute(
                "UPDATE patients SET external_identifier = ?, data = ? WHERE id = ?",
                (record.get("externalIdentifier"), json.dumps(record), patient_id),
            )
            return record, record != old

    def list_patients(self, query: PatientQuery, *, page: int, size: int) -> PatientListing:
        """One page (1-based) of matching patients, the total count of matches, and whether it is the last.

        Page N continues where page N - 1 ended when this store last served it for the same
        filters, sort and size (keyset paging, see ``queries.seek``), so a walk through the
        pages costs the same for every page, and a patient written between two requests never
        shifts the pages after it (docs/api-decisions.md#list-patients).
        """
        where, args = query.where(_patient_column)
        listing = (query.identity, size)
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM patients{where}", args).fetchone()[0]
            rows = self._page_rows(query, where, args, self._page_ends.get(listing, page - 1), page=page, size=size)
            more = len(rows) > size  # one row beyond the page was asked for, to know
            rows = rows[:size]
            self._page_ends.put(listing, page, self._end_of(query, rows[-1][0]) if more else None)
        return PatientListing([_record(*row) for row in rows], total, last=not more)

    def _page_rows(
        self, query: PatientQuery, where: str, args: list[Any], previous: Cursor | None, *, page: int, size: int
    ) -> list[tuple[int, str]]:
        """The rows of ``page`` and the one after it (``size + 1`` at most)."""
        select = f"SELECT id, data FROM patients{where}"
        if page > 1 and previous is None:
            # A page asked for out of the blue (no walk led here, or its end was forgotten): OFFSET
            # reads and skips the rows before it, so its cost grows with the page number.
            sql = f"{select}{query.order_by()} LIMIT ? OFFSET ?"
            return self._db.execute(sql, [*args, size + 1, (page - 1) * size]).fetchall()
        parts = [Seek("", [])] if previous is None else seek(query.sort_key(), previous, descending=query.sort_descending)
        by_id = f" ORDER BY id {'DESC' if query.sort_descending else 'ASC'}"
        rows: list[tuple[int, str]] = []
        for part in parts:
            sql = select + (f"{' AND' if where else ' WHERE'} ({part.condition})" if part.condition else "")
            sql += by_id if part.ties else query.order_by()
            rows += self._db.execute(f"{sql} LIMIT ?", [*args, *part.args, size + 1 - len(rows)]).fetchall()
            if len(rows) > size:
                break
        return rows

    def _end_of(self, query: PatientQuery, last_id: int) -> Cursor | None:
        """Where a page whose last row is ``last_id`` ended, or None when keyset cannot continue from it.

        The key is read as bytes and decoded here: a stored text that is not UTF-8 would come back
        with U+FFFD in it (``text_factory``), which compares differently from what is stored.
        Such a page's successor is read with OFFSET instead.
        """
        key = query.sort_key()
        if key == "id":
            return Cursor(last_id, last_id)
        kind, value = self._db.execute(
            f"SELECT typeof({key}), CASE WHEN typeof({key}) = 'text' THEN CAST({key} AS BLOB) ELSE {key} END"
            " FROM patients WHERE id = ?",
            (last_id,),
        ).fetchone()
        if kind == "text":
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                return None
        elif kind not in ("null", "integer", "real"):
            return None
        return Cursor(value, last_id)

    def _check_unique(self, external_identifier: str | None, own_id: int | None) -> None:
        if external_identifier is None:
            return
        row = self._db.execute("SELECT id FROM patients WHERE external_identifier = ?", (external_identifier,)).fetchone()
        if row and row[0] != own_id:
            raise DuplicateExternalIdentifierError(external_identifier, row[0])

    # -- webhooks -----------------------------------------------------------------------------

    def create_webhook(self, type_: str, url: str) -> dict[str, Any]:
        with self._lock:
            cursor = self._db.execute("INSERT INTO webhooks (type, url) VALUES (?, ?)", (type_, url))
        return {"id": cursor.lastrowid, "type": type_, "url": url}

    def list_webhooks(self, type_: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT id, type, url FROM webhooks", []
        if type_ is not None:
            sql, args = sql + " WHERE type = ?", [type_]
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [{"id": r[0], "type": r[1], "url": r[2]} for r in rows]

    def get_webhook(self, webhook_id: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT id, type, url FROM webhooks WHERE id = ?", (webhook_id,)).fetchone()
        return {"id": row[0], "type": row[1], "url": row[2]} if row else None

    def set_webhook_url(self, webhook_id: int, url: str) -> None:
        with self._lock:
            self._db.execute("UPDATE webhooks SET url = ? WHERE id = ?", (url, webhook_id))

    def delete_webhook(self, webhook_id: int) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount > 0

    def get_secret(self) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT secret FROM webhook_secret").fetchone()
        return row[0] if row else None

    def create_secret(self, secret: str) -> bool:
        """Store the secret; False when one exists already (the API answers 409)."""
        with self._lock:
            cursor = self._db.execute("INSERT OR IGNORE INTO webhook_secret (one, secret) VALUES (1, ?)", (secret,))
            return cursor.rowcount > 0

    def delete_secret(self) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM webhook_secret").rowcount > 0

    # -- events and deliveries ------------------------------------------------------------

    def create_event(self, type_: str, payload: Any, due: float) -> tuple[int, list[int]]:
        """Record an event and one pending delivery per webhook of its type, due at ``due``.

        Returns the event id and the new delivery ids. The body is fixed now, so every retry
        sends the same bytes and the same event id.
        """
        now = utc_iso()
        with self._lock, self._transaction():
            event = self._db.execute(
                "INSERT INTO events (type, payload, created_at) VALUES (?, ?, ?)", (type_, json.dumps(payload), now)
            )
            event_id = _inserted_id(event)
            body = json.dumps({"id": event_id, "type": type_, "payload": payload})
            delivery_ids = [
                _inserted_id(
                    self._db.execute(
                        "INSERT INTO deliveries (event_id, webhook_id, webhook_type, webhook_url, body, created_at,"
                        " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (event_id, hook["id"], type_, hook["url"], body, now, due),
                    )
                )
                for hook in self.list_webhooks(type_)
            ]
        return event_id, delivery_ids

    def pending_deliveries(self) -> list[tuple[int, float]]:
        """(delivery id, due time) of every delivery still to attempt, e.g. after a restart."""
        with self._lock:
            return self._db.execute("SELECT id, next_attempt_at FROM deliveries WHERE state = 'pending'").fetchall()

    def get_delivery(self, delivery_id: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT webhook_url, body, attempts, state FROM deliveries WHERE id = ?", (delivery_id,)
            ).fetchone()
        return {"url": row[0], "body": row[1], "attempts": row[2], "state": row[3]} if row else None

    def record_attempt(
        self, delivery_id: int, *, attempt: int, status: int | None, error: str | None, state: str, next_attempt_at: float | None
    ) -> None:
        """Write one attempt's outcome and what happens next."""
        now = utc_iso()
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO delivery_attempts (delivery_id, attempt, at, response_status, error)"
                " VALUES (?, ?, ?, ?, ?)",
                (delivery_id, attempt, now, status, error),
            )
            self._db.execute(
                "UPDATE deliveries SET attempts = ?, last_response_status = ?, last_error = ?, state = ?,"
                " next_attempt_at = ?, last_retry_at = CASE WHEN ? > 1 THEN ? ELSE last_retry_at END WHERE id = ?",
                (attempt, status, error, state, next_attempt_at, attempt, now, delivery_id),
            )

    def list_deliveries(self, query: DeliveryQuery, *, page: int, size: int) -> tuple[list[dict[str, Any]], int]:
        """One page of delivery log entries in the API's shape (newest first), and the total."""
        where, args = query.where(_delivery_column)
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM deliveries{where}", args).fetchone()[0]
            rows = self._db.execute(
                f"SELECT {', '.join(_DELIVERY_FIELDS.values())} FROM deliveries{where} ORDER BY id DESC LIMIT ? OFFSET ?",
                [*args, size, (page - 1) * size],
            ).fetchall()
            history = self._attempts([row[0] for row in rows])
        entries = []
        for row in rows:
            entry = dict(zip(_DELIVERY_FIELDS, row, strict=True))
            due = entry["nextAttemptTimestamp"]
            entry["nextAttemptTimestamp"] = utc_iso(datetime.fromtimestamp(due, UTC)) if due else None
            entry["attempts"] = history.get(entry["id"], [])  # the sandbox's own, like the fields after lastRetryTimestamp
            entries.append(entry)
        return entries, total

    def _attempts(self, delivery_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        if not delivery_ids:
            return {}
        marks = ", ".join("?" * len(delivery_ids))
        rows = self._db.execute(
            "SELECT delivery_id, attempt, at, response_status, error FROM delivery_attempts"
            f" WHERE delivery_id IN ({marks}) ORDER BY delivery_id, attempt",
            delivery_ids,
        ).fetchall()
        history: dict[int, list[dict[str, Any]]] = {}
        for delivery_id, attempt, at, status, error in rows:
            history.setdefault(delivery_id, []).append(
                {"attempt": attempt, "timestamp": at, "responseStatus": status, "error": error}
            )
        return history
