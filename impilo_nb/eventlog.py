"""EventLog: every webhook delivery received, durable in SQLite, read back as DataFrames.

One row per event id. A repeated delivery of the same event (a retry after a lost answer)
adds to ``delivery_count`` instead of adding a row, so the log is de-duplicated by design.

Both envelope shapes are accepted and normalised into one schema:

- Impilo's ``{"id": 57638473, "type": "patient.updated", "payload": {...}}``;
- the patient guide's ``{"event": "patient.updated", "data": {...}}``, which has no event id:
  its id is derived from the body's bytes, so an identical redelivery still de-duplicates.

Event ids are integers. An id that is not an integer (and the derived ones) becomes the first
60 bits of its SHA-256, which is stable and fits a 64-bit column.

Durability: WAL journal with ``synchronous=FULL`` by default, so a commit is on disk (fsync)
before ``record`` returns, and the receiver answers 2xx only after that: an acknowledged event
survives a crash of the process *and* of the machine. ``NORMAL`` survives a process crash only
(the commit may sit in the OS cache), for a little more speed; ``bench/webhooks.py`` measures both.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ._constants import API_KEY_HEADER, WEBHOOK_SECRET_HEADER
from .errors import ConfigurationError, ImpiloError
from .models import flatten_record

__all__ = ["EventLog", "InvalidDelivery", "NormalisedEvent", "normalise_delivery"]

#: Event-log columns before the flattened ``payload.*`` ones.
COLUMNS = ["received_at", "event_id", "type", "resource_id", "delivery_count"]

#: See the module docstring: FULL makes every acknowledged event survive a power loss.
DEFAULT_SYNCHRONOUS = "FULL"

#: Request headers never stored: they carry credentials.
SECRET_HEADERS = frozenset(h.lower() for h in (WEBHOOK_SECRET_HEADER, API_KEY_HEADER, "Authorization", "Cookie"))

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- arrival order
    event_id INTEGER NOT NULL UNIQUE,
    type TEXT NOT NULL,
    resource_id INTEGER,
    received_at TEXT NOT NULL,
    last_received_at TEXT NOT NULL,
    delivery_count INTEGER NOT NULL DEFAULT 1,
    envelope TEXT NOT NULL,                  -- 'impilo' or 'guide'
    payload TEXT,                            -- JSON
    body BLOB NOT NULL,
    headers TEXT NOT NULL,                   -- JSON, credentials removed
    remote_addr TEXT
);
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    remote_addr TEXT
);
"""


class InvalidDelivery(ImpiloError, ValueError):
    """A delivery body the log cannot accept; ``status`` is the HTTP answer to give (400/422)."""

    def __init__(self, status: int, reason: str):
        self.status = status
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class NormalisedEvent:
    """A delivery in the log's one schema, whichever envelope it came in."""

    event_id: int
    type: str
    payload: Any
    resource_id: int | None
    envelope: str


def _hash_id(text: str | bytes) -> int:
    data = text.encode() if isinstance(text, str) else text
    return int(hashlib.sha256(data).hexdigest()[:15], 16)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def normalise_delivery(data: Any, body: bytes) -> NormalisedEvent:
    """Read either envelope shape into a ``NormalisedEvent``; ``InvalidDelivery`` if neither fits."""
    if not isinstance(data, dict):
        raise InvalidDelivery(400, f"Expected a JSON object, got a JSON {type(data).__name__}.")
    if "type" in data:
        type_, payload, envelope = data["type"], data.get("payload"), "impilo"
        raw_id = data.get("id")
        event_id = _as_int(raw_id)
        if event_id is None:
            event_id = _hash_id(str(raw_id)) if raw_id is not None else _hash_id(body)
    elif "event" in data:
        type_, payload, envelope = data["event"], data.get("data"), "guide"
        event_id = _hash_id(body)
    else:
        raise InvalidDelivery(422, "No event type: expected a 'type' (or the guide's 'event') field.")
    if not isinstance(type_, str) or not type_.strip():
        raise InvalidDelivery(422, f"The event type must be a non-empty string, got {type_!r}.")
    resource_id = _as_int(payload.get("id")) if isinstance(payload, dict) else None
    return NormalisedEvent(event_id, type_, payload, resource_id, envelope)


def _utc_iso(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventLog:
    """A durable log of webhook deliveries in a SQLite file (created with mode 0600).

    Safe to share between threads, and between processes (SQLite locking, with a busy
    timeout). Survives restarts: open the same path again.
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = DEFAULT_SYNCHRONOUS) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ConfigurationError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}.")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # Create it private first: it holds patient data. SQLite gives its -wal/-shm the same mode.
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------

    def record(
        self,
        event: NormalisedEvent,
        *,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        remote_addr: str | None = None,
    ) -> int:
        """Store a delivery, committed to disk before returning; returns its delivery count."""
        now = _utc_iso()
        kept_headers = {k: v for k, v in (headers or {}).items() if k.lower() not in SECRET_HEADERS}
        with self._lock:
            (count,) = self._db.execute(
                "INSERT INTO events (event_id, type, resource_id, received_at, last_received_at, envelope, payload,"
                " body, headers, remote_addr) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (event_id) DO UPDATE SET delivery_count = delivery_count + 1,"
                " last_received_at = excluded.last_received_at RETURNING delivery_count",
                (
                    event.event_id,
                    event.type,
                    event.resource_id,
                    now,
                    now,
                    event.envelope,
                    json.dumps(event.payload),
                    body,
                    json.dumps(kept_headers),
                    remote_addr,
                ),
            ).fetchone()
        return count

    def record_body(self, body: bytes, *, headers: Mapping[str, str] | None = None, remote_addr: str | None = None) -> int:
        """Parse, normalise and store a raw delivery body; ``InvalidDelivery`` if it is not one."""
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise InvalidDelivery(400, f"The body is not JSON: {exc}.") from None
        return self.record(normalise_delivery(data, body), body=body, headers=headers, remote_addr=remote_addr)

    def record_rejection(self, status: int, reason: str, *, remote_addr: str | None = None) -> None:
        """Count a refused delivery attempt with its reason; its body is not kept."""
        with self._lock:
            self._db.execute(
                "INSERT INTO rejections (received_at, status, reason, remote_addr) VALUES (?, ?, ?, ?)",
                (_utc_iso(), status, reason, remote_addr),
            )

    # -- reading ----------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM events").fetchone()[0]

    def version(self) -> tuple[Any, ...]:
        """Changes whenever an event is added or redelivered (cheap; for live views)."""
        with self._lock:
            return tuple(self._db.execute("SELECT count(*), max(seq), max(last_received_at) FROM events").fetchone())

    def types(self) -> dict[str, int]:
        """Event count per type, most frequent first."""
        with self._lock:
            rows = self._db.execute("SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY n DESC, type").fetchall()
        return dict(rows)

    def get(self, event_id: int) -> dict[str, Any] | None:
        """Everything stored for one event: payload, raw body, headers (without secrets), sender."""
        event_id = operator.index(event_id)  # numpy ints from a frame do not bind as SQLite integers
        with self._lock:
            cursor = self._db.execute("SELECT * FROM events WHERE event_id = ?", (event_id,))
            row = cursor.fetchone()
            names = [d[0] for d in cursor.description]
        if row is None:
            return None
        record = dict(zip(names, row, strict=True))
        record["payload"] = json.loads(record["payload"]) if record["payload"] is not None else None
        record["headers"] = json.loads(record["headers"])
        record.pop("seq")
        return record

    def frame(self, type: str | None = None, since: Any = None) -> pd.DataFrame:
        """Events in arrival order: ``received_at, event_id, type, resource_id, delivery_count, payload.*``.

        ``type`` keeps one event type; ``since`` (a datetime, Timestamp or ISO string; naive
        means UTC) keeps events first received at or after it.
        """
        sql = "SELECT received_at, event_id, type, resource_id, delivery_count, payload FROM events"
        clauses, args = [], []
        if type is not None:
            clauses.append("type = ?")
            args.append(type)
        if since is not None:
            clauses.append("received_at >= ?")
            args.append(_utc_iso(_as_utc(since)))
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        return _events_frame(rows)

    def rejections(self) -> pd.DataFrame:
        """Refused deliveries (wrong secret, too large...): when, status, reason, sender."""
        with self._lock:
            rows = self._db.execute("SELECT received_at, status, reason, remote_addr FROM rejections ORDER BY id").fetchall()
        frame = pd.DataFrame(rows, columns=["received_at", "status", "reason", "remote_addr"])
        frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True, format="ISO8601").astype("datetime64[ns, UTC]")
        frame["status"] = frame["status"].astype("Int64")
        return frame

    def wait_for(self, count: int, *, timeout: float = 10.0) -> bool:
        """Wait until the log holds at least ``count`` events; False if ``timeout`` s pass first."""
        deadline = time.monotonic() + timeout
        while len(self) < count:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def timeline(self, freq: str = "1min") -> pd.DataFrame:
        """Events per time bucket (rows) and type (columns), for plotting."""
        frame = self.frame()
        if frame.empty:
            return pd.DataFrame()
        return frame.groupby([pd.Grouper(key="received_at", freq=freq), "type"]).size().unstack(fill_value=0)

    def plot_timeline(self, freq: str = "1min", ax: Any = None) -> Any:
        """A bar chart of events per ``freq`` by type; returns the matplotlib Axes."""
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        counts = self.timeline(freq)
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 3))
        if counts.empty:
            ax.text(0.5, 0.5, "no events yet", ha="center", va="center", transform=ax.transAxes)
        else:
            counts.index = counts.index.strftime("%H:%M")
            counts.plot.bar(stacked=True, ax=ax, rot=0, width=0.8)
            ax.legend(title=None, fontsize="small")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(f"received (UTC, per {freq})")
        ax.set_ylabel("events")
        ax.set_title("Webhook events")
        return ax

    def __repr__(self) -> str:
        return f"EventLog({str(self.path)!r}, events={len(self)})"

    def _repr_html_(self) -> str:
        counts = "".join(f"<li>{html.escape(t)}: {n}</li>" for t, n in self.types().items()) or "<li>no events yet</li>"
        return f"<b>EventLog</b> <code>{html.escape(str(self.path))}</code>: {len(self)} events<ul>{counts}</ul>"


def _as_utc(value: Any) -> datetime:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def _events_frame(rows: list[tuple]) -> pd.DataFrame:
    records = []
    for received_at, event_id, type_, resource_id, count, payload in rows:
        record = {
            "received_at": received_at,
            "event_id": event_id,
            "type": type_,
            "resource_id": resource_id,
            "delivery_count": count,
        }
        data = json.loads(payload) if payload is not None else None
        if isinstance(data, dict):
            record.update(flatten_record(data, "payload."))
        elif data is not None:
            record["payload"] = data
        records.append(record)
    # dtype=object keeps ints as ints (not floats beside a gap) until _tidy types each column.
    frame = pd.DataFrame(records, columns=None if records else COLUMNS, dtype=object)
    frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True, format="ISO8601").astype("datetime64[ns, UTC]")
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
        return column.astype("Int64")
    return column.infer_objects()
