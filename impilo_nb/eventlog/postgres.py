"""The event log's PostgreSQL store: a team's receivers and notebooks on one database.

``EventLog("postgresql://analyst@db.example.org/webhooks")`` keeps the log in PostgreSQL, so
several receivers (for availability) and every analyst's notebook share it. The guarantees are
SQLite's:

- One row per event id, whichever receiver a delivery reaches: ``INSERT ... ON CONFLICT
  (event_id) DO UPDATE`` counts a redelivery atomically, on the server.
- Durable before ``record`` returns: the event's row is written by one statement, committed
  with ``synchronous_commit=on`` (the server has flushed its WAL). ``synchronous="NORMAL"`` turns
  that off: the server acknowledges before the flush, so an event survives a crash of the
  receiver, not of the database server (as NORMAL is for SQLite: a process, not a machine).
- No credentials stored (``store.kept_headers``); thread-safe (each call borrows its own
  connection from a small pool).
- Schema created if missing, under an advisory lock, so receivers starting together do not race.

When the server cannot be reached, every call raises ``EventLogUnavailableError`` (an
``OSError``: the receiver answers 503 and Impilo retries later). Nothing is retried here: a
record sent again after a lost answer could count one delivery twice. Once the server is back
the next call connects again; a connection the server closed meanwhile is noticed before use
(``_Pool``), so no process needs a restart.

Arrival order (``seq``) comes from a sequence, and with several writers transactions commit out
of ``seq`` order: a reader asking for events after ``seq`` N could pass over one that commits
just after it read. Writers therefore hold a shared advisory lock until they commit, and such a
reader takes it exclusively for a moment to learn the ``seq`` below which every write has
finished (``_settled_seq``); it reads up to there.

Payloads are JSON text in a ``text`` column, exactly as SQLite keeps them: keys in their order
(``jsonb`` would sort them), and NaN or Infinity kept as Python writes them, which both
PostgreSQL JSON types refuse; query them with ``payload::json ->> 'field'``. PostgreSQL text
cannot hold a NUL character, so an event type with one is refused with 422 (SQLite keeps it);
in payloads NUL is escaped JSON (``\\u0000``) and kept.

The password comes from ``PGPASSWORD`` or ``~/.pgpass`` (libpq reads both), or the URL; it is
never shown: ``where``, reprs and errors show the URL without it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import operator
import re
import select
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, overload
from urllib.parse import unquote

from .._extras import require
from ..errors import ConfigurationError, EventLogUnavailableError, InvalidDeliveryError, register_secret
from .envelope import NormalisedEvent
from .sqlite import DEFAULT_SYNCHRONOUS
from .store import EVENT_FIELDS, LATEST_FIELDS, AttemptRow, Batches, ColumnBatch, EventQuery, RejectionRow, kept_headers

require("postgres", "psycopg")  # before importing it: a missing extra is one error that names it
import psycopg  # noqa: E402
from psycopg import pq  # noqa: E402
from psycopg.rows import TupleRow  # noqa: E402

__all__ = ["DEFAULT_POOL_SIZE", "PostgresStore", "redacted_url"]

#: Connections one store keeps open at most. A receiver stores from a thread pool; more threads
#: than this wait their turn instead of each holding a server connection (a server allows ~100).
DEFAULT_POOL_SIZE = 8

#: Seconds to wait for the server to accept a connection: an unreachable host fails fast
#: enough for the receiver to answer 503 before Impilo's 10 s give up.
CONNECT_TIMEOUT = 5

#: Advisory lock keys (any two fixed numbers unlikely to be another application's).
SCHEMA_LOCK, WRITE_LOCK = 0x1D_E7E1_0001, 0x1D_E7E1_0002

#: Rows per batch of a long read: each statement's cost is amortised, a batch of payload text stays a few MB.
BATCH_ROWS = 20_000
#: Columns an existing ``events`` table must have to be taken for an event log.
EVENT_COLUMNS = frozenset({"seq", "event_id", "type", "resource_id", "received_at", "delivery_count", "payload", "body"})

#: Each table's columns that an existing table of that name must have to be taken for the event
#: log's: ``shapes``, ``rejections`` and ``attempts`` are names another application may well use.
TABLE_COLUMNS = {
    "events": EVENT_COLUMNS,
    "shapes": frozenset({"id", "names"}),
    "rejections": frozenset({"id", "received_at", "status", "reason", "remote_addr"}),
    "attempts": frozenset({"id", "event_id", "kind", "target", "attempted_at", "status_code", "latency_ms", "error"}),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,   -- arrival order
    event_id bigint NOT NULL UNIQUE,
    type text NOT NULL,
    resource_id bigint,
    received_at timestamptz NOT NULL,
    last_received_at timestamptz NOT NULL,
    delivery_count bigint NOT NULL DEFAULT 1,
    envelope text NOT NULL,                                 -- 'impilo' or 'guide'
    payload text,                                           -- JSON text, as SQLite keeps it (NaN included)
    body bytea NOT NULL,
    headers json NOT NULL,                                  -- credentials removed
    remote_addr text,
    source text NOT NULL DEFAULT 'delivery',                -- 'delivery' or 'backfill'
    position bigint,                                        -- order key of "newest" (EventLog.latest); NULL: by arrival
    shape bigint,                                           -- shapes.id of the payload's flattened names; NULL: not computed
    flat text                                               -- JSON list of those names' values
);
CREATE TABLE IF NOT EXISTS shapes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    names text NOT NULL,                                    -- JSON list of flattened payload column names
    digest bytea NOT NULL                                   -- SHA-256 of names, unique (names outgrow a btree entry)
);
-- A database made while names itself was UNIQUE: a payload of a few hundred keys could not be stored.
ALTER TABLE shapes ADD COLUMN IF NOT EXISTS digest bytea;
UPDATE shapes SET digest = sha256(convert_to(names, 'UTF8')) WHERE digest IS NULL;
ALTER TABLE shapes ALTER COLUMN digest SET NOT NULL, DROP CONSTRAINT IF EXISTS shapes_names_key;
CREATE UNIQUE INDEX IF NOT EXISTS shapes_digest ON shapes (digest);
CREATE TABLE IF NOT EXISTS rejections (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL,
    status integer NOT NULL,
    reason text NOT NULL,
    remote_addr text
);
CREATE TABLE IF NOT EXISTS attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id bigint NOT NULL,
    kind text NOT NULL,                                     -- 'replay' or 'forward'
    target text NOT NULL,                                   -- URL, without credentials
    attempted_at timestamptz NOT NULL,
    status_code integer,                                    -- NULL: no HTTP answer
    latency_ms double precision NOT NULL,
    error text
);
CREATE INDEX IF NOT EXISTS events_time_type ON events (received_at, type);     -- since=, timeline, time_range
CREATE INDEX IF NOT EXISTS events_type ON events (type);                       -- type=, types()
CREATE INDEX IF NOT EXISTS events_resource ON events (resource_id, position, seq);  -- latest()
"""

#: The tables and indexes ``_SCHEMA`` creates, read from it.
_SCHEMA_OBJECTS = re.findall(r"(?:TABLE|INDEX) IF NOT EXISTS (\w+)", _SCHEMA)


def _iso(column: str) -> str:
    """SQL for a timestamptz column as the log's UTC text (``_time.utc_iso``'s format)."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


# The shared lock is taken in FROM, so before the row (and its seq) exists; it is held to commit.
_INSERT = f"""
INSERT INTO events (event_id, type, resource_id, received_at, last_received_at, envelope, payload, body, headers, remote_addr,
                    source, position, shape, flat)
SELECT %(event_id)s::bigint, %(type)s::text, %(resource_id)s::bigint, %(at)s::timestamptz, %(at)s::timestamptz,
       %(envelope)s::text, %(payload)s::text, %(body)s::bytea, %(headers)s::json, %(remote)s::text, %(source)s::text,
       %(position)s::bigint, %(shape)s::bigint, %(flat)s::text
FROM (SELECT pg_advisory_xact_lock_shared({WRITE_LOCK})) AS settled
"""

_RECORD = _INSERT.replace("%(source)s", "'delivery'") + """
ON CONFLICT (event_id) DO UPDATE
SET delivery_count = events.delivery_count + 1, last_received_at = excluded.last_received_at
RETURNING delivery_count
"""

_BACKFILL = _INSERT.replace("%(source)s", "'backfill'").replace("%(headers)s", "'{}'").replace("%(remote)s", "NULL") + """
ON CONFLICT (event_id) DO NOTHING
RETURNING seq
"""

_GET = f"""
SELECT seq, event_id, type, resource_id, {_iso('received_at')} AS received_at, {_iso('last_received_at')} AS last_received_at,
       delivery_count, envelope, payload, body, headers::text AS headers, remote_addr, source, position,
       shape, flat
FROM events WHERE event_id = %s
"""

#: Order text by its bytes, as SQLite does, whatever the database's collation.
_BYTEWISE = 'COLLATE "C"'


#: A ``password`` parameter of a URL's query, in any case (libpq refuses all but lower case, and says so).
_PASSWORD_PARAMETER = re.compile(r"(?<=[?&])password=[^&]*&?", re.IGNORECASE)


def redacted_url(url: str) -> str:
    """``url`` without its password (in the user part or a ``password=`` parameter), to show.

    The user part is taken to end at the URL's *last* ``@``: a password typed without escaping
    may hold ``@``, ``/``, ``?`` or ``#``, and none of it may show. (What follows a later ``@`` in
    a query value is then shown as the host: a wrong-looking URL, never a leaked password.)
    """
    url = _PASSWORD_PARAMETER.sub("", url).rstrip("?&")
    scheme, _, rest = url.partition("://")
    userinfo, at, hosts = rest.rpartition("@")
    return f"{scheme}://{userinfo.partition(':')[0]}{at}{hosts}"


def _typed_password(url: str) -> str:
    """The password as typed in ``url``'s user part (up to its last ``@``), unescaped; '' if none."""
    userinfo = url.partition("://")[2].rpartition("@")[0]
    return unquote(userinfo.partition(":")[2])


def _describe(params: Mapping[str, str]) -> str:
    """Which server, database and user a connection is for, in words (never the password)."""
    host = params.get("host") or params.get("hostaddr") or "the local socket"
    return (f"host {host}, port {params.get('port') or 5432}, database {params.get('dbname') or '(the user name)'}"
            f" as user {params.get('user') or '(this system user)'}")


def _parse(url: str) -> dict[str, str]:
    """The URL's connection parameters; ``ConfigurationError`` (without the password) if libpq cannot
    read it, or reads another password than the one typed (an unescaped ``@ / ? #`` in it: libpq
    would take part of it for the host or the database, and show that part in its errors)."""
    typed = _typed_password(url)
    register_secret(typed)  # masked in every error text from now on, libpq's included
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        reason = "" if typed else f" ({_first_line(exc)})"  # libpq may quote a piece of the password
        raise ConfigurationError(
            f"{redacted_url(url)} is not a PostgreSQL URL libpq can read{reason}. Write it as"
            " postgresql://user@host:5432/database, with the password in PGPASSWORD or ~/.pgpass."
        ) from None
    if typed and params.get("password") != typed:
        raise ConfigurationError(
            f"{redacted_url(url)}: its password holds a character a URL reserves (@ / ? # :), so libpq would read"
            " part of it as the host or the database. Put the password in PGPASSWORD or ~/.pgpass (best), or"
            " percent-encode those characters (@ as %40, / as %2F, ? as %3F, # as %23)."
        )
    return {key: str(value) for key, value in params.items() if value is not None}


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _readable(fd: int) -> bool:
    """Whether a socket has something to read now: for an idle connection, the server's goodbye."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])


class _Pool:
    """Open connections to one database, reused across calls and threads; ``size`` in use at most.

    An idle connection the server has closed (it restarted, or ended the session) has its
    goodbye waiting in the socket, so it is dropped before use instead of failing a call. A
    connection that broke during a call is closed with every idle one: they were to the same
    server, and are stale too.
    """

    def __init__(self, conninfo: str, *, size: int, setup: Callable[[psycopg.Connection[TupleRow]], None]) -> None:
        self._conninfo = conninfo
        self._setup = setup
        self._idle: list[psycopg.Connection[TupleRow]] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[TupleRow]]:
        with self._slots:
            conn = self._take() or self._connect()
            try:
                yield conn
            finally:
                self._give_back(conn)

    def _connect(self) -> psycopg.Connection[TupleRow]:
        conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name="impilo_nb")
        try:
            self._setup(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _take(self) -> psycopg.Connection[TupleRow] | None:
        with self._lock:
            if self._closed:
                raise EventLogUnavailableError("This event log is closed; open it again with EventLog(url).")
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed and not _readable(conn.pgconn.socket):
                    return conn
                conn.close()
        return None

    def _give_back(self, conn: psycopg.Connection[TupleRow]) -> None:
        if conn.broken:
            self.close(reopen=True)
        reusable = not conn.closed and conn.info.transaction_status == pq.TransactionStatus.IDLE
        with self._lock:
            if reusable and not self._closed:
                self._idle.append(conn)
                return
        conn.close()

    def close(self, *, reopen: bool = False) -> None:
        """Close every idle connection; with ``reopen`` the pool stays usable (it connects anew)."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._closed = self._closed or not reopen
        for conn in idle:
            conn.close()


@contextlib.contextmanager
def _unavailable_when_down(where: str) -> Iterator[None]:
    """Translate the server being out of reach (down, restarting, out of connections or disk)."""
    try:
        yield
    except psycopg.OperationalError as exc:
        raise EventLogUnavailableError(
            f"The event log's database {where} cannot be reached or cannot store right now ({_first_line(exc)})."
            " Try again later: it reconnects by itself once the server is back."
        ) from None


class PostgresStore:
    """Events, refusals and replay attempts in a PostgreSQL database (tables ``events``,
    ``rejections`` and ``attempts`` in the connection's search path, created if missing)."""

    def __init__(self, url: str, *, synchronous: str = DEFAULT_SYNCHRONOUS, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ConfigurationError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}.")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigurationError(f"pool_size must be a whole number of connections, 1 or more; got {pool_size!r}.")
        self._where = redacted_url(url)
        self._shapes: dict[str, int] = {}  # shape names -> id; dict reads and writes are atomic
        params = _parse(url)
        register_secret(params.get("password"))  # masked in every error text from now on
        self._pool = _Pool(url, size=pool_size, setup=functools.partial(_configure, synchronous=synchronous))
        try:
            with self._pool.connection() as conn:
                _create_schema(conn, self._where)
        except psycopg.Error as exc:
            self._pool.close()
            raise ConfigurationError(
                f"Cannot open the event log at {self._where} ({_describe(params)}): {_first_line(exc)}. Check that the"
                " server runs and the URL; the password comes from PGPASSWORD or ~/.pgpass, never the notebook."
            ) from None
        except BaseException:
            self._pool.close()
            raise

    @property
    def where(self) -> str:
        """The URL without its password, for reprs and messages."""
        return self._where

    def close(self) -> None:
        self._pool.close()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[TupleRow]]:
        with _unavailable_when_down(self._where), self._pool.connection() as conn:
            yield conn

    # -- writing ----------------------------------------------------------------------------

    def record(self, event: NormalisedEvent, received_at: str, *, body: bytes, headers: Mapping[str, str] | None,
               remote_addr: str | None, position: int | None, shape: str, flat: str) -> int:
        """Insert the event, or count one more delivery of it; committed before returning."""
        values = _event_values(event, received_at, body=body, position=position, flat=flat)
        values.update(headers=json.dumps(kept_headers(headers)), remote=_text(remote_addr))
        with self._connection() as conn:
            values["shape"] = self._shape_id(conn, shape)
            row = conn.execute(_RECORD, values).fetchone()
        assert row is not None  # RETURNING gives a row for an insert and for an update alike
        return int(row[0])

    def record_backfill(self, event: NormalisedEvent, received_at: str, *, body: bytes, position: int | None,
                        shape: str, flat: str) -> bool:
        """Insert a backfill event unless its id is stored; True if a row was added."""
        values = _event_values(event, received_at, body=body, position=position, flat=flat)
        with self._connection() as conn:
            values["shape"] = self._shape_id(conn, shape)
            return conn.execute(_BACKFILL, values).fetchone() is not None

    def _shape_id(self, conn: psycopg.Connection[TupleRow], names: str) -> int:
        """The id of a payload shape: kept once in ``shapes`` (committed on its own: a shape no
        event uses is harmless), remembered by this store."""
        shape = self._shapes.get(names)
        if shape is None:
            row = conn.execute(
                "INSERT INTO shapes (names, digest) VALUES (%s, %s)"
                " ON CONFLICT (digest) DO UPDATE SET digest = excluded.digest RETURNING id",
                (names, hashlib.sha256(names.encode()).digest()),
            ).fetchone()
            assert row is not None  # RETURNING gives the row inserted or updated
            shape = self._shapes[names] = int(row[0])
        return shape

    def record_rejection(self, received_at: str, status: int, reason: str, remote_addr: str | None) -> None:
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO rejections (received_at, status, reason, remote_addr) VALUES (%s::timestamptz, %s, %s, %s)",
                (received_at, status, _text(reason), _text(remote_addr)),
            )

    def record_attempt(self, attempt: AttemptRow) -> None:
        values = attempt._replace(target=_text(attempt.target), error=_text(attempt.error))
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO attempts (event_id, kind, target, attempted_at, status_code, latency_ms, error)"
                " VALUES (%s, %s, %s, %s::timestamptz, %s, %s, %s)",
                tuple(values),
            )

    # -- small reads ------------------------------------------------------------------------

    def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...]:
        with self._connection() as conn:
            row = conn.execute(sql, args).fetchone()
        assert row is not None  # an aggregate always gives one row
        return tuple(row)

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            return conn.execute(sql, args).fetchall()

    def count(self) -> int:
        return int(self._one("SELECT count(*) FROM events")[0])

    def version(self) -> tuple[Any, ...]:
        return self._one(f"SELECT count(*), max(seq), {_iso('max(last_received_at)')} FROM events")

    def max_position(self) -> int | None:
        (position,) = self._one("SELECT max(position) FROM events")
        return None if position is None else int(position)

    def type_counts(self) -> dict[str, int]:
        rows = self._all(f"SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY n DESC, type {_BYTEWISE}")
        return {type_: int(n) for type_, n in rows}

    def get(self, event_id: int) -> dict[str, Any] | None:
        event_id = operator.index(event_id)  # numpy ints from a frame
        with self._connection() as conn:
            cursor = conn.execute(_GET, (event_id,))
            row = cursor.fetchone()
            names = [d.name for d in cursor.description or ()]
        return dict(zip(names, row, strict=True)) if row is not None else None

    def time_range(self) -> tuple[str, str] | None:
        first, last = self._one(f"SELECT {_iso('min(received_at)')}, {_iso('max(received_at)')} FROM events")
        return None if first is None else (first, last)

    def timeline(self, width_seconds: int) -> list[tuple[int, str, int]]:
        width = operator.index(width_seconds)
        rows = self._all(
            "SELECT floor(extract(epoch FROM received_at))::bigint / %s * %s AS bucket, type, count(*) FROM events"
            f" GROUP BY bucket, type ORDER BY bucket, type {_BYTEWISE}",
            (width, width),
        )
        return [(int(bucket), type_, int(n)) for bucket, type_, n in rows]

    def attempts(self) -> list[AttemptRow]:
        rows = self._all(
            f"SELECT event_id, kind, target, {_iso('attempted_at')}, status_code, latency_ms, error FROM attempts ORDER BY id"
        )
        return [AttemptRow(*row) for row in rows]

    def rejections(self) -> list[RejectionRow]:
        rows = self._all(f"SELECT {_iso('received_at')}, status, reason, remote_addr FROM rejections ORDER BY id")
        return [RejectionRow(*row) for row in rows]

    # -- long reads: one snapshot (REPEATABLE READ), which never makes a writer wait ---------

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[psycopg.Connection[TupleRow]]:
        """A connection in a read transaction whose every statement sees the same snapshot."""
        with self._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn

    def events(self, query: EventQuery) -> Batches:
        """The events ``query`` selects, as ``ColumnBatch``es of ``EVENT_FIELDS``."""
        clauses: list[str] = []
        args: list[Any] = []
        for sql, value in (("type = %s", query.type), ("received_at >= %s::timestamptz", query.since),
                           ("seq > %s", query.after_seq)):
            if value is not None:
                clauses.append(sql)
                args.append(value)
        if query.after_seq is not None:
            with self._connection() as conn:
                clauses.append("seq <= %s")
                args.append(_settled_seq(conn))
        where = " AND ".join(clauses) or "true"
        with self._snapshot() as conn:
            if query.limit is not None:
                row = conn.execute(f"SELECT min(seq) FROM (SELECT seq FROM events WHERE {where} ORDER BY seq DESC LIMIT %s)"
                                   " AS newest", (*args, operator.index(query.limit))).fetchone()
                if row is None or row[0] is None:
                    return
                where, args = f"{where} AND seq >= %s", [*args, row[0]]
            yield from _batches(conn, where, args, EVENT_FIELDS, with_values=query.with_payload)

    def latest(self, type_prefix: str) -> Batches:
        """Each resource's newest event of the types starting with ``type_prefix``."""
        with self._snapshot() as conn:
            # Highest position first (NULL lowest), then the later arrival: DISTINCT ON keeps that first row.
            newest = ("SELECT DISTINCT ON (resource_id) seq FROM events WHERE starts_with(type, %s) AND resource_id IS NOT NULL"
                      " ORDER BY resource_id, position DESC NULLS LAST, seq DESC")
            seqs = [seq for (seq,) in conn.execute(newest, (type_prefix,))]
            yield from _batches(conn, "seq = ANY(%s::bigint[])", [seqs], LATEST_FIELDS, with_values=True)

    def bodies(self, event_ids: Sequence[int] | None) -> Iterator[tuple[int, bytes]]:
        """``(event_id, body)`` in arrival order, of all events or of those ``event_ids`` stored."""
        where, args = "", []
        if event_ids is not None:
            where, args = " WHERE event_id = ANY(%s::bigint[])", [[operator.index(event_id) for event_id in event_ids]]
        with self._snapshot() as conn, conn.cursor(name="impilo_nb_bodies") as cursor:
            cursor.execute(f"SELECT event_id, body FROM events{where} ORDER BY seq", args)
            while batch := cursor.fetchmany(BATCH_ROWS):
                for event_id, body in batch:
                    yield event_id, bytes(body)


def _batches(conn: psycopg.Connection[TupleRow], where: str, args: Sequence[Any], fields: Sequence[str], *,
             with_values: bool) -> Batches:
    """The rows ``where`` selects, ``BATCH_ROWS`` at a time in arrival order, each batch as arrays
    (as ``SQLiteStore`` reads them); every aggregate orders by ``seq``, so the arrays line up."""
    inner = ", ".join(dict.fromkeys(["seq", "shape", *fields]))
    value = "CASE WHEN shape IS NULL THEN coalesce(payload, 'null') ELSE flat END" if with_values else "NULL"
    arrays = ", ".join(f"json_agg({_iso(name) if name == 'received_at' else name} ORDER BY seq)::text" for name in fields)
    values = "'[' || string_agg(value, ',' ORDER BY seq) || ']'" if with_values else "NULL"
    sql = (f"SELECT json_agg(coalesce(shape, -1) ORDER BY seq)::text, array_agg(DISTINCT shape), {arrays}, {values}, max(seq)"
           f" FROM (SELECT {inner}, {value} AS value FROM events WHERE {where} AND seq > %s ORDER BY seq LIMIT {BATCH_ROWS})"
           " AS batch")
    after = -1
    while True:
        row = conn.execute(sql, (*args, after)).fetchone()
        assert row is not None  # an aggregate always gives one row
        shapes, distinct, *columns, flat, last = row
        if last is None:
            return
        known = [shape for shape in distinct if shape is not None]
        names = {int(shape): text for shape, text in conn.execute("SELECT id, names FROM shapes WHERE id = ANY(%s)", (known,))}
        yield ColumnBatch(shapes, names, tuple(columns), flat)
        after = last


def _configure(conn: psycopg.Connection[TupleRow], *, synchronous: str) -> None:
    """Set up a new connection: FULL waits for the server's WAL flush at each commit, NORMAL does not."""
    conn.execute("SET synchronous_commit = on" if synchronous == "FULL" else "SET synchronous_commit = off")


def _create_schema(conn: psycopg.Connection[TupleRow], where: str) -> None:
    """Create the tables and indexes that are missing, after checking that an existing ``events``
    table is an event log's.

    When everything exists (every open but the first), only the catalog is read: even
    ``CREATE INDEX IF NOT EXISTS`` would lock the table and wait for the writes in flight.
    Creating happens under an advisory lock: two processes running CREATE ... IF NOT EXISTS at
    once can both find a table missing, and one would then fail on the catalog's unique index.
    """
    if _schema_complete(conn, where):
        return
    with conn.transaction():
        conn.execute(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
        conn.execute(_SCHEMA)


def _schema_complete(conn: psycopg.Connection[TupleRow], where: str) -> bool:
    """Whether every table and index of ``_SCHEMA`` exists; ``ConfigurationError`` for a table of
    one of its names that is not the event log's (``TABLE_COLUMNS``), before anything is changed."""
    for table, wanted in TABLE_COLUMNS.items():
        columns = {name for (name,) in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            (table,))}
        if columns and not columns >= wanted:
            raise ConfigurationError(
                f"{where} has an {table!r} table that is not an event log's (no {', '.join(sorted(wanted - columns))});"
                " it was left untouched. Give another database, or a schema of its own (options=-csearch_path=...)."
            )
    row = conn.execute("SELECT count(*) FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL",
                       (_SCHEMA_OBJECTS,)).fetchone()
    return row is not None and row[0] == 0


def _settled_seq(conn: psycopg.Connection[TupleRow]) -> int:
    """The highest ``seq`` at or below which every write has committed (or rolled back).

    Taking the write lock exclusively waits for the writers holding it shared and holds new
    ones back, for the one statement it takes to read the sequence.
    """
    with conn.transaction():
        conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        row = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
    assert row is not None
    return int(row[0])


def _event_values(event: NormalisedEvent, received_at: str, *, body: bytes, position: int | None, flat: str) -> dict[str, Any]:
    """The parameters of ``_INSERT`` an event gives (``headers``, ``remote`` and ``shape`` come from elsewhere)."""
    return {
        "event_id": event.event_id, "type": _storable_type(event.type), "resource_id": event.resource_id, "at": received_at,
        "envelope": event.envelope, "payload": json.dumps(event.payload), "body": bytes(body), "position": position,
        "flat": flat,
    }


def _storable_type(type_: str) -> str:
    if "\x00" in type_:
        raise InvalidDeliveryError(422, "The event type holds a NUL character (\\u0000), which PostgreSQL cannot store.")
    return type_


@overload
def _text(value: str) -> str: ...


@overload
def _text(value: None) -> None: ...


def _text(value: str | None) -> str | None:
    """Caller-given text for a text column: PostgreSQL text cannot hold NUL, shown as ``\\x00``."""
    return value.replace("\x00", "\\x00") if value is not None else None
