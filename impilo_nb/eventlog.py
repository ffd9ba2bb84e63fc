"""EventLog: every webhook delivery received, durable in SQLite, read back as DataFrames.

One row per event id. A repeated delivery of the same event (a retry after a lost answer)
adds to ``delivery_count`` instead of adding a row, so the log is de-duplicated by design.

Both envelope shapes are accepted and normalised into one schema:

- Impilo's ``{"id": 57638473, "type": "patient.updated", "payload": {...}}``;
- the patient guide's ``{"event": "patient.updated", "data": {...}}``, which has no event id:
  its id is derived from the body's bytes, so an identical redelivery still de-duplicates.

Event ids are integers of at most 64 bits (SQLite's INTEGER). An id that is not one (a string
such as ``"evt_abc"``, or an integer beyond 64 bits) becomes the first 60 bits of the SHA-256
of its text, which is stable and fits the column, so such an event is kept and a retry of it
still de-duplicates. Only ASCII digits with an optional leading minus read as an integer.

What a body may hold is checked in one place, ``parse_delivery`` (which ``record_body``, and so
the receiver, goes through; your own app calling ``record_body`` gets the same protection).
Refusals raise ``InvalidDelivery`` with the HTTP status to answer and a reason naming where:

- nesting deeper than ``MAX_DEPTH`` levels of arrays and objects (the envelope is the first;
  an Impilo event uses four): 400, checked before parsing, so neither parsing, storing nor
  flattening into a frame can run into Python's recursion limit;
- a lone surrogate (``"\\ud800"`` without the other half of its UTF-16 pair) in any string or
  key: 400 ``lone surrogate (invalid Unicode) at payload.name``. It is not a character, cannot
  be stored or shown as UTF-8 text, so nothing faithful can be kept;
- an integer of more than ``MAX_INT_DIGITS`` digits: 400 (converting it would cost seconds).

A payload ``id`` beyond 64 bits leaves ``resource_id`` null; other integers beyond 64 bits
are kept as they are (in the stored JSON, and as Python ints in an object column of ``frame()``).

Durability: WAL journal with ``synchronous=FULL`` by default, so a commit is on disk (fsync)
before ``record`` returns, and the receiver answers 2xx only after that: an acknowledged event
survives a crash of the process *and* of the machine. ``NORMAL`` survives a process crash only
(the commit may sit in the OS cache), for a little more speed; ``bench/webhooks.py`` measures both.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import itertools
import json
import operator
import os
import re
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

__all__ = ["MAX_DEPTH", "EventLog", "InvalidDelivery", "NormalisedEvent", "normalise_delivery", "parse_delivery"]

#: Event-log columns before the flattened ``payload.*`` ones.
COLUMNS = ["received_at", "event_id", "type", "resource_id", "delivery_count"]

#: See the module docstring: FULL makes every acknowledged event survive a power loss.
DEFAULT_SYNCHRONOUS = "FULL"

#: Request headers never stored: they carry credentials.
SECRET_HEADERS = frozenset(h.lower() for h in (WEBHOOK_SECRET_HEADER, API_KEY_HEADER, "Authorization", "Cookie"))

#: Deepest nesting of arrays and objects a body may have, the envelope being level 1. Far below
#: Python's recursion limit (1000), which parsing, re-encoding and flattening all recurse against.
MAX_DEPTH = 64

#: Longest integer accepted in a body, in digits: Python's own default for text-to-int
#: conversion, whose cost grows with the square of the length.
MAX_INT_DIGITS = 4300

#: SQLite's INTEGER range.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: Rejection reasons are stored and shown in tables; longer ones are cut.
MAX_REASON_CHARS = 500

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
"""

# A JSON string (what is inside it is not structure); with one bracket, a token of structure.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_TOKENS = re.compile(_STRING.pattern + r"|[\[\]{}]", re.DOTALL)
_NOT_BRACKET_BYTES = bytes(byte for byte in range(256) if byte not in b"[]{}")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_BYTE_DEPTH_STEP = {ord(char): step for char, step in _DEPTH_STEP.items()}
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Where a lone surrogate could come from in JSON text: itself (raw), or a \uD800-\uDFFF escape.
_SURROGATE_SOURCE = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")
_LONG_DIGITS = re.compile(f"[0-9]{{{MAX_INT_DIGITS + 1}}}")
_INT_LIMIT = 10**MAX_INT_DIGITS
_DECIMAL = re.compile(r"-?[0-9]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class InvalidDelivery(ImpiloError, ValueError):
    """A delivery body the log cannot accept; ``status`` is the HTTP answer to give (400/422)."""

    def __init__(self, status: int, reason: str):
        self.status = status
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class NormalisedEvent:
    """A delivery in the log's one schema, whichever envelope it came in.

    Checked on construction, so ``record`` can bind it to SQLite whoever built it.
    """

    event_id: int
    type: str
    payload: Any
    resource_id: int | None
    envelope: str

    def __post_init__(self) -> None:
        if not _is_int64(self.event_id):
            raise InvalidDelivery(422, f"event_id must be an integer of at most 64 bits, got {_preview(self.event_id)}.")
        if self.resource_id is not None and not _is_int64(self.resource_id):
            raise InvalidDelivery(422, f"resource_id must be None or a 64-bit integer, got {_preview(self.resource_id)}.")
        if not isinstance(self.type, str) or not self.type.strip():
            raise InvalidDelivery(422, f"The event type must be a non-empty string, got {_preview(self.type)}.")
        _check_values(self.type, ("type",))


def _is_int64(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX


def _preview(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters: reasons are stored, and a field may hold a megabyte."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's decimal conversion limit
        return f"an integer of {value.bit_length()} bits" if isinstance(value, int) else type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _hash_id(text: str | bytes) -> int:
    data = text.encode() if isinstance(text, str) else text
    return int(hashlib.sha256(data).hexdigest()[:15], 16)


def _as_int(value: Any) -> int | None:
    """A 64-bit integer, from an int or from ASCII decimal text; None for anything else."""
    if isinstance(value, str):
        text = value.strip()
        digits = text.lstrip("-").lstrip("0") or "0"  # int() refuses over 4,300 digits, leading zeros too
        if not _DECIMAL.fullmatch(text) or len(digits) > 19:
            return None
        value = -int(digits) if text.startswith("-") else int(digits)
    return value if _is_int64(value) else None


def _event_id(raw_id: Any, body: bytes) -> int:
    """The stored id: the integer itself, else the hash of its text (of the body when there is none)."""
    if raw_id is None:
        return _hash_id(body)
    as_int = _as_int(raw_id)
    return as_int if as_int is not None else _hash_id(str(raw_id))


def _where(path: tuple[str | int, ...]) -> str:
    """A readable, ASCII-only location such as ``payload.tags[2]`` or ``payload["a b"]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and _NAME.fullmatch(part):
            text += f".{part}" if text else part
        else:
            key = str(part)
            shown = json.dumps(key[:40] + ("..." if len(key) > 40 else ""))  # escapes surrogates, controls
            text += f"[{shown}]"
    return text or "the top level"


def _check_depth(text: str) -> None:
    """Refuse JSON text nesting deeper than ``MAX_DEPTH`` before it is parsed: the parser recurses.

    Brackets inside strings do not count. Up to the parser's first error (where it stops) the
    count is exactly its depth; after it, the count only adds refusals of text that is no JSON.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    # UTF-8 never uses an ASCII byte inside a multi-byte character, so deleting bytes is safe.
    brackets = _STRING.sub("", text).encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKET_BYTES)
    if max(itertools.accumulate(map(_BYTE_DEPTH_STEP.__getitem__, brackets)), default=0) <= MAX_DEPTH:
        return
    depth = 0
    for token in _TOKENS.finditer(text):  # again, one token at a time, only to say where
        char = token.group()
        depth += _DEPTH_STEP.get(char, 0)
        if depth > MAX_DEPTH:
            raise InvalidDelivery(
                400,
                f"The body nests arrays and objects more than {MAX_DEPTH} levels deep (level {depth} opens at"
                f" character {token.start()}). Send at most {MAX_DEPTH} levels; an Impilo event needs four.",
            )


def _check_values(data: Any, root: tuple[str | int, ...] = ()) -> None:
    """Refuse nesting past ``MAX_DEPTH``, lone surrogates in any string or key and integers
    past ``MAX_INT_DIGITS`` digits, naming where.

    Iterative, so data of any depth is walked safely (it may come from a caller, not the parser).
    """
    if isinstance(data, str) and (found := _SURROGATE.search(data)):
        raise _lone_surrogate(found.group(), root, in_key=False)
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, root)] if isinstance(data, (dict, list)) else []
    while stack:
        value, path = stack.pop()
        if len(path) - len(root) >= MAX_DEPTH:
            raise InvalidDelivery(400, f"The body nests arrays and objects more than {MAX_DEPTH} levels deep, at {_where(path)}.")
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            if isinstance(key, str) and not key.isascii() and (found := _SURROGATE.search(key)):
                raise _lone_surrogate(found.group(), (*path, key), in_key=True)
            if isinstance(item, str):
                if not item.isascii() and (found := _SURROGATE.search(item)):
                    raise _lone_surrogate(found.group(), (*path, key), in_key=False)
            elif isinstance(item, int) and not -_INT_LIMIT < item < _INT_LIMIT:
                raise InvalidDelivery(400, f"An integer of more than {MAX_INT_DIGITS} digits at {_where((*path, key))}.")
            elif isinstance(item, (dict, list)):
                stack.append((item, (*path, key)))


def _lone_surrogate(char: str, path: tuple[str | int, ...], *, in_key: bool) -> InvalidDelivery:
    escape = f"\\u{ord(char):04x}"
    return InvalidDelivery(
        400,
        f"lone surrogate (invalid Unicode) at {_where(path)}{' (in the key)' if in_key else ''}: {escape} is one half of"
        " a UTF-16 pair without the other, so it is no character and cannot be stored as text."
        " Send the character itself, or both halves of its pair (such as \\ud83d\\ude00).",
    )


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise InvalidDelivery(
            400, f"The body holds an integer of {len(digits.lstrip('-'))} digits; at most {MAX_INT_DIGITS} are accepted."
        )
    return int(digits)


def parse_delivery(body: bytes | str) -> NormalisedEvent:
    """Parse, check and normalise a raw delivery body: the one gate in front of the log.

    ``InvalidDelivery`` (400/422) says what is wrong and where; see the module docstring for
    what is refused and why. ``EventLog.record_body`` stores only what passes.
    """
    try:
        # What json.loads does with bytes (UTF-8, -16 or -32), done here to check the text first.
        text = body if isinstance(body, str) else body.decode(json.detect_encoding(body), "surrogatepass")
    except UnicodeDecodeError as exc:
        raise InvalidDelivery(400, f"The body is not JSON: it is not UTF-8 text ({exc}).") from None
    _check_depth(text)
    try:
        # A Python call per integer costs; only text with a long run of digits needs the check.
        data = json.loads(text, parse_int=_parse_int if _LONG_DIGITS.search(text) else None)
    except InvalidDelivery:
        raise
    except ValueError as exc:
        raise InvalidDelivery(400, f"The body is not JSON: {exc}.") from None
    if _SURROGATE_SOURCE.search(text) and not _is_valid_unicode(data):
        _check_values(data)  # finds the lone surrogate and says where
    return _normalise(data, body)


def _is_valid_unicode(data: Any) -> bool:
    """Whether every string and key encodes as UTF-8: one pass in C, where walking costs per value."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # keeps surrogates as they are, so encode() fails
    except UnicodeEncodeError:
        return False
    return True


def normalise_delivery(data: Any, body: bytes) -> NormalisedEvent:
    """Read either envelope shape into a ``NormalisedEvent``; ``InvalidDelivery`` if neither fits.

    ``data`` is the parsed body; it is checked as ``parse_delivery`` checks it (depth, lone
    surrogates), so parsed data from anywhere is safe to record.
    """
    _check_values(data)
    return _normalise(data, body)


def _normalise(data: Any, body: bytes) -> NormalisedEvent:
    if not isinstance(data, dict):
        raise InvalidDelivery(400, f"Expected a JSON object, got a JSON {type(data).__name__}.")
    if "type" in data:
        type_, payload, envelope = data["type"], data.get("payload"), "impilo"
        event_id = _event_id(data.get("id"), body)
    elif "event" in data:
        type_, payload, envelope = data["event"], data.get("data"), "guide"
        event_id = _hash_id(body)
    else:
        raise InvalidDelivery(422, "No event type: expected a 'type' (or the guide's 'event') field.")
    resource_id = _as_int(payload.get("id")) if isinstance(payload, dict) else None
    return NormalisedEvent(event_id, type_, payload, resource_id, envelope)


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


def _utc_iso(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventLog:
    """A durable log of webhook deliveries in a SQLite file (created with mode 0600).

    Safe to share between threads, and between processes (SQLite locking, with a busy
    timeout). Survives restarts: open the same path again.
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = DEFAULT_SYNCHRONOUS) -> None:
        """Open the log at ``path``, creating it (and its folder) when missing.

        ``ConfigurationError`` names the path when it cannot hold an event log: a directory, a
        file that is not SQLite (a CSV...) or is another application's database, a folder that
        cannot be created. Such a file is refused before SQLite writes anything, so it is left
        byte-for-byte as it was.
        """
        if synchronous not in ("FULL", "NORMAL"):
            raise ConfigurationError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}.")
        self.path = Path(path)
        _prepare_file(self.path)
        self._lock = threading.Lock()
        self._db = _connect(self.path, synchronous)

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
        """Parse, check and store a raw delivery body; ``InvalidDelivery`` if it is not one (``parse_delivery``)."""
        return self.record(parse_delivery(body), body=body, headers=headers, remote_addr=remote_addr)

    def record_rejection(self, status: int, reason: str, *, remote_addr: str | None = None) -> None:
        """Count a refused delivery attempt with its reason; its body is not kept."""
        # Whatever text a caller passes, it must bind as UTF-8 and stay a readable size.
        reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")[:MAX_REASON_CHARS]
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
        # Int64 holds 64 bits; a column with a larger integer stays Python ints.
        return column.astype("Int64") if all(INT64_MIN <= v <= INT64_MAX for v in values) else column
    return column.infer_objects()
