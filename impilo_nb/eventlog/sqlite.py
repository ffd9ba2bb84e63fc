"""The event log's SQLite store: one file, WAL journal, one row per event id.

Durability: ``synchronous=FULL`` by default, so a commit is on disk (fsync) before ``record``
returns, and the receiver answers 2xx only after that: an acknowledged event survives a crash
of the process *and* of the machine. ``NORMAL`` survives a process crash only (the commit may
sit in the OS cache), for a little more speed; ``bench/webhooks.py`` measures both.

Safe to share between threads (one connection behind a lock) and between processes (SQLite
locking, with a busy timeout). Long reads (``events``, ``latest``, ``bodies``) run on a
connection of their own in one read transaction: a consistent snapshot that, in WAL mode,
never blocks the receiver's writes.

A file written before the ``source``, ``position``, ``shape`` and ``flat`` columns existed
gains them when opened (``_migrate``): its events are kept, delivered ones get the position
``EventLog`` would have given them.
"""

from __future__ import annotations

import json
import operator
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._time import utc_iso
from ..errors import ConfigurationError
from .envelope import NormalisedEvent
from .store import EVENT_FIELDS, LATEST_FIELDS, AttemptRow, Batches, ColumnBatch, EventQuery, RejectionRow, kept_headers

__all__ = ["DEFAULT_SYNCHRONOUS", "SQLiteStore"]

#: See the module docstring: FULL makes every acknowledged event survive a power loss.
DEFAULT_SYNCHRONOUS = "FULL"

#: Columns an existing ``events`` table must have to be taken for an event log.
EVENT_COLUMNS = frozenset({"seq", "event_id", "type", "resource_id", "received_at", "delivery_count", "payload", "body"})

#: The first 16 bytes of every SQLite database file (an empty file is a database not yet written).
SQLITE_HEADER = b"SQLite format 3\x00"

#: Rows per batch of a long read: large enough to amortise each statement, small enough that
#: a batch's text stays some tens of megabytes.
BATCH_ROWS = 50_000

_TABLES = """
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
    remote_addr TEXT,
    source TEXT NOT NULL DEFAULT 'delivery', -- 'delivery' or 'backfill'
    position INTEGER,                        -- order key of "newest" (EventLog.latest); NULL: by arrival
    shape INTEGER,                           -- shapes.id of the payload's flattened names; NULL: not computed
    flat TEXT                                -- JSON list of those names' values
);
CREATE TABLE IF NOT EXISTS shapes (
    id INTEGER PRIMARY KEY,
    names TEXT NOT NULL UNIQUE               -- JSON list of flattened payload column names
);
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    remote_addr TEXT
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id INTEGER NOT NULL,
    kind TEXT NOT NULL,                      -- 'replay' or 'forward'
    target TEXT NOT NULL,                    -- URL, without credentials
    attempted_at TEXT NOT NULL,
    status_code INTEGER,                     -- NULL: no HTTP answer
    latency_ms REAL NOT NULL,
    error TEXT
);
"""

# Each index serves named queries; every one is covering, so none reads the wide rows.
_INDEXES = """
DROP INDEX IF EXISTS events_received_at;                                -- superseded by the next
CREATE INDEX IF NOT EXISTS events_time_type ON events (received_at, type);  -- since=, timeline, time_range
CREATE INDEX IF NOT EXISTS events_type_time ON events (type, received_at);  -- type=, types(), len(), timeline
CREATE INDEX IF NOT EXISTS events_newest ON events (type, resource_id, position);  -- latest()
CREATE INDEX IF NOT EXISTS events_last_received ON events (last_received_at);        -- version()
"""

#: Columns added since the first schema, with their definitions (see ``_migrate``).
_ADDED_COLUMNS = {"source": "TEXT NOT NULL DEFAULT 'delivery'", "position": "INTEGER", "shape": "INTEGER", "flat": "TEXT"}

#: Above this many buckets, ``timeline`` groups in one statement instead of counting bucket by bucket.
MAX_COUNTED_BUCKETS = 2_000
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
            columns = _columns(db)
            if not columns >= EVENT_COLUMNS:
                raise ConfigurationError(
                    f"{path} has an 'events' table that is not an event log's (no {', '.join(sorted(EVENT_COLUMNS - columns))});"
                    " it was left untouched. Give a new file name for the event log."
                )
        # Only now is anything written: the checks above read, so a refused file stays as it was.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.executescript(_TABLES)
        _migrate(db)
        db.executescript(_INDEXES)
    except sqlite3.Error as exc:
        db.close()
        raise ConfigurationError(f"Cannot open {path} as an event log: {exc} (SQLite).") from None
    except BaseException:
        db.close()
        raise
    return db


def _columns(db: sqlite3.Connection) -> set[str]:
    return {name for (_, name, *_rest) in db.execute("PRAGMA table_info(events)")}


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns a log written by an older version lacks, in one transaction.

    Delivered events in Impilo's envelope get ``position = event_id`` (``EventLog``'s rule for
    new ones); guide-shaped ones keep NULL. ``shape`` and ``flat`` stay NULL: readers flatten
    those payloads themselves. Checked again under the write lock, so two processes opening the
    same old file do not both alter it.
    """
    if _columns(db) >= _ADDED_COLUMNS.keys():
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        missing = [name for name in _ADDED_COLUMNS if name not in _columns(db)]
        for name in missing:
            db.execute(f"ALTER TABLE events ADD COLUMN {name} {_ADDED_COLUMNS[name]}")
        if "position" in missing:
            db.execute("UPDATE events SET position = event_id WHERE envelope = 'impilo'")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


class SQLiteStore:
    """Events, refusals and replay attempts in one SQLite file (mode 0600: it holds patient data)."""

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = DEFAULT_SYNCHRONOUS) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ConfigurationError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}.")
        self.path = Path(path)
        _prepare_file(self.path)
        self._lock = threading.Lock()
        self._db = _connect(self.path, synchronous)
        self._shapes: dict[str, int] = {}

    @property
    def where(self) -> str:
        """The file, for reprs and messages."""
        return str(self.path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing ----------------------------------------------------------------------------

    def record(self, event: NormalisedEvent, received_at: str, *, body: bytes, headers: Mapping[str, str] | None,
               remote_addr: str | None, position: int | None, shape: str, flat: str) -> int:
        """Insert the event, or count one more delivery of it; committed before returning."""
        with self._lock:
            (count,) = self._db.execute(
                "INSERT INTO events (event_id, type, resource_id, received_at, last_received_at, envelope, payload,"
                " body, headers, remote_addr, position, shape, flat) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (event_id) DO UPDATE SET delivery_count = delivery_count + 1,"
                " last_received_at = excluded.last_received_at RETURNING delivery_count",
                (event.event_id, event.type, event.resource_id, received_at, received_at, event.envelope,
                 json.dumps(event.payload), body, json.dumps(kept_headers(headers)), remote_addr, position,
                 self._shape_id(shape), flat),
            ).fetchone()
        return int(count)  # sqlite3 rows are untyped; this column is an INTEGER

    def record_backfill(self, event: NormalisedEvent, received_at: str, *, body: bytes, position: int | None,
                        shape: str, flat: str) -> bool:
        """Insert a backfill event unless its id is stored; True if a row was added."""
        with self._lock:
            added = self._db.execute(
                "INSERT INTO events (event_id, type, resource_id, received_at, last_received_at, envelope, payload,"
                " body, headers, remote_addr, source, position, shape, flat)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{}', NULL, 'backfill', ?, ?, ?)"
                " ON CONFLICT (event_id) DO NOTHING RETURNING seq",
                (event.event_id, event.type, event.resource_id, received_at, received_at, event.envelope,
                 json.dumps(event.payload), body, position, self._shape_id(shape), flat),
            ).fetchone()
        return added is not None

    def _shape_id(self, names: str) -> int:
        """The id of a shape (kept once; remembered by this process). Called under the lock."""
        shape = self._shapes.get(names)
        if shape is None:
            (shape,) = self._db.execute(
                "INSERT INTO shapes (names) VALUES (?) ON CONFLICT (names) DO UPDATE SET names = excluded.names RETURNING id",
                (names,),
            ).fetchone()
            self._shapes[names] = shape
        return int(shape)

    def max_position(self) -> int | None:
        with self._lock:
            (position,) = self._db.execute("SELECT max(position) FROM events").fetchone()
        return None if position is None else int(position)

    def record_rejection(self, received_at: str, status: int, reason: str, remote_addr: str | None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO rejections (received_at, status, reason, remote_addr) VALUES (?, ?, ?, ?)",
                (received_at, status, reason, remote_addr),
            )

    def record_attempt(self, attempt: AttemptRow) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO attempts (event_id, kind, target, attempted_at, status_code, latency_ms, error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                tuple(attempt),
            )

    # -- small reads ------------------------------------------------------------------------

    def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...]:
        with self._lock:
            return tuple(self._db.execute(sql, args).fetchone())

    def count(self) -> int:
        return int(self._one("SELECT count(*) FROM events")[0])

    def version(self) -> tuple[Any, ...]:
        # Three subqueries, so each max() is one index lookup instead of a scan of the log.
        return self._one(
            "SELECT (SELECT count(*) FROM events), (SELECT max(seq) FROM events), (SELECT max(last_received_at) FROM events)"
        )

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

    def time_range(self) -> tuple[str, str] | None:
        first, last = self._one("SELECT min(received_at), max(received_at) FROM events")
        return None if first is None else (first, last)

    def timeline(self, width_seconds: int) -> list[tuple[int, str, int]]:
        """Events per bucket and type, counted on the (type, received_at) index bucket by
        bucket, which needs no sort of the whole log; in one GROUP BY when buckets are many."""
        width = operator.index(width_seconds)
        with self._lock:
            first, last = self._db.execute(
                "SELECT unixepoch(min(received_at)), unixepoch(max(received_at)) FROM events"
            ).fetchone()
            if first is None:
                return []
            start, end = first // width * width, last // width * width
            if (end - start) // width + 1 > MAX_COUNTED_BUCKETS:
                return self._db.execute(
                    "SELECT unixepoch(received_at) / ? * ? AS bucket, type, count(*) FROM events GROUP BY bucket, type",
                    (width, width),
                ).fetchall()
            types = [name for (name,) in self._db.execute("SELECT DISTINCT type FROM events")]
            bounds = [utc_iso(datetime.fromtimestamp(moment, UTC)) for moment in range(start, end + 2 * width, width)]
            counts = []
            for name in types:
                for bucket, low, high in zip(range(start, end + width, width), bounds, bounds[1:], strict=False):
                    (count,) = self._db.execute(
                        "SELECT count(*) FROM events WHERE type = ? AND received_at >= ? AND received_at < ?", (name, low, high)
                    ).fetchone()
                    if count:
                        counts.append((bucket, name, count))
        return counts

    def attempts(self) -> list[AttemptRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, kind, target, attempted_at, status_code, latency_ms, error FROM attempts ORDER BY id"
            ).fetchall()
        return [AttemptRow(*row) for row in rows]

    def rejections(self) -> list[RejectionRow]:
        with self._lock:
            rows = self._db.execute("SELECT received_at, status, reason, remote_addr FROM rejections ORDER BY id").fetchall()
        return [RejectionRow(*row) for row in rows]

    # -- long reads, on a connection of their own -------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        """A connection for one long read (its own transaction, so writers are never blocked)."""
        reader = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        reader.execute("BEGIN")
        return reader

    def events(self, query: EventQuery) -> Batches:
        """The events ``query`` selects, as ``ColumnBatch``es of ``EVENT_FIELDS``."""
        clauses, args = [], []
        for sql, value in (("type = ?", query.type), ("received_at >= ?", query.since), ("seq > ?", query.after_seq)):
            if value is not None:
                clauses.append(sql)
                args.append(value)
        where = " AND ".join(clauses) or "1"
        reader = self._reader()
        try:
            if query.limit is not None:
                (lowest,) = reader.execute(
                    f"SELECT min(seq) FROM (SELECT seq FROM events WHERE {where} ORDER BY seq DESC LIMIT ?)",
                    (*args, operator.index(query.limit)),
                ).fetchone()
                if lowest is None:
                    return
                where, args = f"{where} AND seq >= ?", [*args, lowest]
            yield from _batches(reader, where, args, EVENT_FIELDS, with_values=query.with_payload)
        finally:
            reader.close()

    def latest(self, type_prefix: str) -> Batches:
        """Each resource's newest event of the types starting with ``type_prefix``."""
        # A prefix range on the type index: every text starting with the prefix sorts in [prefix, upper).
        upper = type_prefix[:-1] + chr(ord(type_prefix[-1]) + 1)
        reader = self._reader()
        try:
            # The last row of each resource in (position, seq) order has no lead; NULL positions sort first.
            reader.execute(
                "CREATE TEMP TABLE newest AS SELECT seq FROM ("
                " SELECT seq, lead(seq) OVER (PARTITION BY resource_id ORDER BY position, seq) AS later FROM events"
                " WHERE type >= ? AND type < ? AND resource_id IS NOT NULL) WHERE later IS NULL",
                (type_prefix, upper),
            )
            yield from _batches(reader, "seq IN (SELECT seq FROM temp.newest)", [], LATEST_FIELDS, with_values=True)
        finally:
            reader.close()

    def bodies(self, event_ids: Sequence[int] | None) -> Iterator[tuple[int, bytes]]:
        """``(event_id, body)`` in arrival order, of all events or of those ``event_ids`` stored."""
        where, args = "", []
        if event_ids is not None:
            wanted = json.dumps([operator.index(event_id) for event_id in event_ids])
            where, args = " WHERE event_id IN (SELECT value FROM json_each(?))", [wanted]
        reader = self._reader()
        try:
            cursor = reader.execute(f"SELECT event_id, body FROM events{where} ORDER BY seq", args)
            while batch := cursor.fetchmany(BATCH_ROWS):
                for event_id, body in batch:
                    yield event_id, body if isinstance(body, bytes) else str(body).encode()
        finally:
            reader.close()


def _batches(reader: sqlite3.Connection, where: str, args: Sequence[Any], fields: Sequence[str], *,
             with_values: bool) -> Batches:
    """The rows ``where`` selects, ``BATCH_ROWS`` at a time in arrival order, each batch as arrays.

    The aggregates of one statement see its rows in the same order, so the arrays line up.
    """
    inner = ", ".join(dict.fromkeys(["seq", "shape", *fields]))
    value = "CASE WHEN shape IS NULL THEN coalesce(payload, 'null') ELSE flat END" if with_values else "NULL"
    arrays = ", ".join(f"json_group_array({name})" for name in fields)
    values = "'[' || group_concat(value) || ']'" if with_values else "NULL"
    sql = (f"SELECT json_group_array(coalesce(shape, -1)), json_group_array(DISTINCT shape), {arrays}, {values},"
           f" max(seq) FROM (SELECT {inner}, {value} AS value FROM events WHERE {where} AND seq > ?"
           f" ORDER BY seq LIMIT {BATCH_ROWS})")
    after = -1
    while True:
        shapes, distinct, *columns, flat, last = reader.execute(sql, (*args, after)).fetchone()
        if last is None:
            return
        names = dict(reader.execute("SELECT id, names FROM shapes WHERE id IN (SELECT value FROM json_each(?))", (distinct,)))
        yield ColumnBatch(shapes, names, tuple(columns), flat)
        after = last
