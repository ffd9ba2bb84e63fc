"""The event log's SQLite store: one file, WAL journal, one row per event id.

Durability: ``synchronous=FULL`` by default, so a commit is on disk (fsync) before ``record``
returns, and the receiver answers 2xx only after that: an acknowledged event survives a crash
of the process *and* of the machine. ``NORMAL`` survives a process crash only (the commit may
sit in the OS cache), for a little more speed; ``bench/webhooks.py`` measures both.

Safe to share between threads (one connection behind a lock) and between processes (SQLite
locking, with a busy timeout).
"""

from __future__ import annotations

import json
import operator
import os
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .envelope import NormalisedEvent
from .store import EventQuery, EventRow, RejectionRow, kept_headers

__all__ = ["DEFAULT_SYNCHRONOUS", "SQLiteStore"]

#: See the module docstring: FULL makes every acknowledged event survive a power loss.
DEFAULT_SYNCHRONOUS = "FULL"

#: Columns an existing ``events`` table must have to be taken for an event log.
EVENT_COLUMNS = frozenset({"seq", "event_id", "type", "resource_id", "received_at", "delivery_count", "payload", "body"})

#: The first 16 bytes of every SQLite database file (an empty file is a database not yet written).
SQLITE_HEADER = b"SQLite format 3\x00"

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
CREATE INDEX IF NOT EXISTS events_received_at ON events (received_at);
"""


def _prepare_file(path: Path) -> None:
    """Make sure ``path`` can hold an event log, touching nothing that is not one.

    A missing file is created private (it will hold patient data; SQLite gives its -wal and
    -shm the same mode). An existing one is only read: its first 16 bytes.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot create the folder {path.parent} for the event log {path.name} ({exc.strerror or exc})."
            " Give a path in a folder that exists or can be created."
        ) from None
    if path.is_dir():
        raise ConfigurationError(f"{path} is a directory, not an event log file. Give a file path, such as {path / 'events.db'}.")
    if path.exists() and not path.is_file():
        raise ConfigurationError(f"{path} is not a regular file (a device, pipe or socket?). Give an event log file path.")
    try:
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
            return
        with open(path, "rb") as existing:
            header = existing.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise ConfigurationError(f"Cannot use {path} as the event log ({exc.strerror or exc}).") from None
    if header and header != SQLITE_HEADER:
        raise ConfigurationError(
            f"{path} is not a SQLite database (it does not start with the SQLite header), so it is not an event log;"
            " it was left untouched. Give the path of an event log, or a new file name."
        )


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """Open the SQLite file and set up the schema, after checking it is no other application's database."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
    try:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        tables.discard("sqlite_sequence")
        if tables and "events" not in tables:
            shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise ConfigurationError(
                f"{path} is a SQLite database of something else (tables: {shown}), not an event log; it was left"
                " untouched. Give a new file name for the event log."
            )
        if "events" in tables:
            columns = {name for (_, name, *_rest) in db.execute("PRAGMA table_info(events)")}
            if not columns >= EVENT_COLUMNS:
                raise ConfigurationError(
                    f"{path} has an 'events' table that is not an event log's (no {', '.join(sorted(EVENT_COLUMNS - columns))});"
                    " it was left untouched. Give a new file name for the event log."
                )
        # Only now is anything written: the checks above read, so a refused file stays as it was.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.executescript(_SCHEMA)
    except sqlite3.Error as exc:
        db.close()
        raise ConfigurationError(f"Cannot open {path} as an event log: {exc} (SQLite).") from None
    except BaseException:
        db.close()
        raise
    return db


class SQLiteStore:
    """Events and refusals in one SQLite file (created with mode 0600: it holds patient data)."""

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = DEFAULT_SYNCHRONOUS) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ConfigurationError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}.")
        self.path = Path(path)
        _prepare_file(self.path)
        self._lock = threading.Lock()
        self._db = _connect(self.path, synchronous)

    @property
    def where(self) -> str:
        """The file, for reprs and messages."""
        return str(self.path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record(self, event: NormalisedEvent, received_at: str, *, body: bytes, headers: Mapping[str, str] | None,
               remote_addr: str | None) -> int:
        """Insert the event, or count one more delivery of it; committed before returning."""
        with self._lock:
            (count,) = self._db.execute(
                "INSERT INTO events (event_id, type, resource_id, received_at, last_received_at, envelope, payload,"
                " body, headers, remote_addr) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (event_id) DO UPDATE SET delivery_count = delivery_count + 1,"
                " last_received_at = excluded.last_received_at RETURNING delivery_count",
                (event.event_id, event.type, event.resource_id, received_at, received_at, event.envelope,
                 json.dumps(event.payload), body, json.dumps(kept_headers(headers)), remote_addr),
            ).fetchone()
        return int(count)  # sqlite3 rows are untyped; this column is an INTEGER

    def record_rejection(self, received_at: str, status: int, reason: str, remote_addr: str | None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO rejections (received_at, status, reason, remote_addr) VALUES (?, ?, ?, ?)",
                (received_at, status, reason, remote_addr),
            )

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])

    def version(self) -> tuple[Any, ...]:
        with self._lock:
            return tuple(self._db.execute("SELECT count(*), max(seq), max(last_received_at) FROM events").fetchone())

    def type_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY n DESC, type").fetchall()
        return dict(rows)

    def get(self, event_id: int) -> dict[str, Any] | None:
        event_id = operator.index(event_id)  # numpy ints from a frame do not bind as SQLite integers
        with self._lock:
            cursor = self._db.execute("SELECT * FROM events WHERE event_id = ?", (event_id,))
            row = cursor.fetchone()
            names = [d[0] for d in cursor.description]
        return dict(zip(names, row, strict=True)) if row is not None else None

    def events(self, query: EventQuery) -> list[EventRow]:
        """The events ``query`` selects, as ``EventRow`` tuples (payload as JSON text)."""
        clauses, args = [], []
        for sql, value in (("type = ?", query.type), ("received_at >= ?", query.since), ("seq > ?", query.after_seq)):
            if value is not None:
                clauses.append(sql)
                args.append(value)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        order = "DESC" if query.newest_first else "ASC"
        limit = f" LIMIT {int(query.limit)}" if query.limit is not None else ""
        sql = ("SELECT seq, received_at, event_id, type, resource_id, delivery_count, payload FROM events"
               f"{where} ORDER BY seq {order}{limit}")
        with self._lock:
            return [EventRow(*row) for row in self._db.execute(sql, args)]

    def rejections(self) -> list[RejectionRow]:
        with self._lock:
            rows = self._db.execute("SELECT received_at, status, reason, remote_addr FROM rejections ORDER BY id").fetchall()
        return [RejectionRow(*row) for row in rows]
