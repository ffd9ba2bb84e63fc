"""EventLog: every webhook delivery received, durable, read back as DataFrames.

One row per event id. A repeated delivery of the same event (a retry after a lost answer)
adds to ``delivery_count`` instead of adding a row, so the log is de-duplicated by design.
The rules live here; the rows live in a store (``store.EventStore``; SQLite today).

Order. Each event has a ``position``, the key by which ``latest()`` decides which of a
resource's events is the newest (docs/api-decisions.md#ordering): an event in Impilo's envelope
has its event id (sandbox ids rise over time: #event-ids); a guide-shaped one, whose id is a
hash of its body, has none, and ranks by arrival. A backfill row (``record_backfill``) takes
the highest position in the log, so it outranks everything received before it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import math
import numbers
import operator
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from .._time import poll_until, utc_iso
from ..errors import ConfigurationError, FieldError, ValidationError
from ..models import is_valid_unicode
from .envelope import INT64_MAX, INT64_MIN, InvalidDeliveryError, NormalisedEvent, normalise_delivery, parse_delivery
from .frames import (
    COLUMNS,
    LATEST_COLUMNS,
    attempts_frame,
    batches_frame,
    check_columns,
    flat_payload,
    rejections_frame,
    timeline_frame,
)
from .sqlite import DEFAULT_SYNCHRONOUS, SQLiteStore
from .store import ATTEMPT_KINDS, EVENT_FIELDS, LATEST_FIELDS, AttemptRow, EventQuery, EventStore

__all__ = ["BACKFILL_ID_BASE", "MAX_BARS", "TIMELINE_WIDTHS", "EventLog"]

#: Rejection reasons and attempt errors are stored and shown in tables; longer ones are cut.
MAX_REASON_CHARS = 500

#: The most bars ``timeline()`` gives when it picks the bucket width itself.
MAX_BARS = 150

#: The bucket widths ``timeline()`` picks from, in seconds, smallest first (then weeks by sevens).
TIMELINE_WIDTHS = {
    "1s": 1, "5s": 5, "15s": 15, "30s": 30, "1min": 60, "5min": 300, "15min": 900, "30min": 1800,
    "1h": 3600, "3h": 3 * 3600, "6h": 6 * 3600, "12h": 12 * 3600, "1D": 86400, "7D": 7 * 86400,
}

#: The widest bucket ``timeline(freq)`` takes, in seconds (a century): buckets far wider would
#: end beyond the year 9999, the last a timestamp can show.
MAX_BUCKET_SECONDS = 100 * 365 * 86400

#: Backfill rows get event ids at or below this: never a sandbox id (positive), a hashed id
#: (0 to 2**60) or a delivered id a platform would plausibly use.
BACKFILL_ID_BASE = -(2**62)

#: An event family: the part of an event type before the dot (``patient`` in ``patient.updated``).
_FAMILY = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


class EventLog:
    """A durable log of webhook deliveries.

    ``EventLog("webhooks.db")`` keeps it in a SQLite file (created with mode 0600, its folder
    too when missing); ``EventLog("postgresql://user@host/db")`` on a PostgreSQL server, so a
    team's receivers and notebooks share one log (the ``[postgres]`` extra; the password from
    ``PGPASSWORD`` or ``~/.pgpass``, never in a notebook). Same API and guarantees either way.
    Safe to share between threads and processes; survives restarts: open the same target again.
    ``ConfigurationError`` names the path when it cannot hold an event log
    (a directory, a file that is not SQLite or is another application's database); such a file
    is left byte-for-byte as it was. A file written by an older version gains the new columns.
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = DEFAULT_SYNCHRONOUS) -> None:
        self._store: EventStore = _open_store(path, synchronous=synchronous)
        self.path = self._store.path if isinstance(self._store, SQLiteStore) else None

    @property
    def where(self) -> str:
        """The file, or the database URL without its password: for reprs and messages."""
        return self._store.where

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------

    def record(
        self, event: NormalisedEvent, *, body: bytes, headers: Mapping[str, str] | None = None, remote_addr: str | None = None
    ) -> int:
        """Store a delivery, durable before returning (credential headers dropped); returns its
        delivery count (1 the first time, more for redeliveries of the same event id)."""
        shape, flat = flat_payload(event.payload)
        return self._store.record(event, utc_iso(), body=body, headers=headers, remote_addr=remote_addr,
                                  position=_position(event), shape=shape, flat=flat)

    def record_body(self, body: bytes, *, headers: Mapping[str, str] | None = None, remote_addr: str | None = None) -> int:
        """Parse, check and store a raw delivery body; ``InvalidDeliveryError`` if it is not one
        (see ``envelope.parse_delivery``)."""
        return self.record(parse_delivery(body), body=body, headers=headers, remote_addr=remote_addr)

    def record_rejection(self, status: int, reason: str, *, remote_addr: str | None = None) -> None:
        """Count a refused delivery attempt with its reason; its body is not kept."""
        self._store.record_rejection(utc_iso(), status, _storable(reason), remote_addr)

    def record_backfill(self, resource_id: int, payload: Mapping[str, Any], *, family: str = "patient") -> bool:
        """Record a resource's current state, read from the API, as the newest known (``sync.backfill``).

        The row has type ``f"{family}.backfill"``, source ``'backfill'``, the log's highest
        position (so ``latest()`` prefers it to every event received so far, and any event
        received later with a higher event id to it) and a negative event id derived from the
        family, ``resource_id``, that position and ``payload``: recording the same state again
        with nothing received in between adds nothing. Its body is an Impilo-shaped envelope
        ``{"id", "type", "payload"}``; there are no headers and no sender.

        Returns:
            True if a row was added, False if this state was already recorded.

        Raises:
            ValidationError: ``resource_id`` is not a positive whole number, ``family`` is no
                family name, or ``payload`` is not a mapping that encodes as JSON a delivery
                could carry (or has an ``id`` other than ``resource_id``).
        """
        _check_family(family, "record_backfill")
        if not _is_whole(resource_id) or resource_id < 1 or resource_id > 2**63 - 1:
            problem = f"Must be the resource's id, a positive whole number; got {resource_id!r:.80}."
            raise ValidationError("record_backfill", [FieldError("resource_id", problem)])
        data = _json_object(payload)
        position = self._store.max_position()
        event_type = f"{family}.backfill"
        event_id = _backfill_id(family, resource_id, position, data)
        body = json.dumps({"id": event_id, "type": event_type, "payload": data}).encode()
        try:
            event = normalise_delivery(json.loads(body), body)  # the checks every delivery passes
        except InvalidDeliveryError as exc:
            raise ValidationError("record_backfill", [FieldError("payload", exc.reason)]) from None
        if event.resource_id not in (None, resource_id):
            problem = f"Its id ({event.resource_id}) is not resource_id ({resource_id}); give the state of that resource."
            raise ValidationError("record_backfill", [FieldError("payload", problem)])
        event = dataclasses.replace(event, resource_id=resource_id)
        shape, flat = flat_payload(event.payload)
        return self._store.record_backfill(event, utc_iso(), body=body, position=position, shape=shape, flat=flat)

    def record_attempt(
        self, *, event_id: int, kind: str, target: str, status_code: int | None, latency_ms: float,
        error: str | None = None, attempted_at: Any = None,
    ) -> None:
        """Keep one attempt to send a stored body again (``kind``: ``'replay'`` or ``'forward'``).

        ``target`` is the URL it went to; one with credentials in it (``user:pass@``) is
        refused, as the log never keeps secrets. ``status_code`` is None when no HTTP answer
        came (``error`` says why). ``attempted_at`` (datetime, Timestamp or ISO text; naive is
        UTC) defaults to now. Raises ``ValidationError`` naming each value that is wrong.
        """
        row = _attempt_row(event_id, kind, target, status_code, latency_ms, error, attempted_at)
        self._store.record_attempt(row)

    # -- reading ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._store.count()

    def version(self) -> tuple[Any, ...]:
        """``(count, max seq, max last_received_at)``: changes whenever an event is added or
        redelivered (cheap; for live views). The max seq is what ``frame(after_seq=...)`` takes."""
        return self._store.version()

    def types(self) -> dict[str, int]:
        """Event count per type, most frequent first."""
        return self._store.type_counts()

    def get(self, event_id: int) -> dict[str, Any] | None:
        """Everything stored for one event: payload, raw body, headers (without secrets), sender;
        None for an id not stored (one beyond 64 bits never is)."""
        if not _is_whole(event_id):
            problem = f"Must be an event id, a whole number (as in frame()['event_id']); got {event_id!r:.80}."
            raise ValidationError("get", [FieldError("event_id", problem)])
        record = self._store.get(operator.index(event_id)) if INT64_MIN <= event_id <= INT64_MAX else None
        if record is None:
            return None
        for key in ("payload", "headers"):
            if isinstance(record.get(key), (str, bytes)):
                record[key] = json.loads(record[key])
        for internal in ("seq", "shape", "flat"):  # arrival number and the read-side copy of the payload
            record.pop(internal, None)
        return record

    def frame(
        self, type: str | None = None, since: Any = None, *,  # noqa: A002
        columns: Iterable[str] | None = None, limit: int | None = None, after_seq: int | None = None,
    ) -> pd.DataFrame:
        """Events in arrival order: ``received_at, event_id, type, resource_id, delivery_count, payload.*``.

        Args:
            type: keep one event type (the wire's word).
            since: keep events first received at or after it (datetime, Timestamp or ISO text; naive is UTC).
            columns: keep these columns, in this order: the ones above, or payload ones by
                their flattened name (``payload.address.city``). Reading fewer is faster; with
                no ``payload.*`` name the payloads are not read at all.
            limit: keep the newest this many (still oldest first).
            after_seq: keep only events that arrived after the one with this arrival number.
                ``frame.attrs["last_seq"]`` is the arrival number of the last row read (None
                when none was); pass it next time to read only what arrived since. Redeliveries
                of old events (``delivery_count``) change ``version()`` but add no new row.

        Raises:
            ValidationError: a value above is not one it can be; the message says which and why.
        """
        columns, payload_names = check_columns(columns, COLUMNS)
        query = EventQuery(
            type=_optional_text(type, "type"), since=None if since is None else _as_utc_iso(since, "since"),
            after_seq=_optional_count(after_seq, "after_seq"), limit=_optional_count(limit, "limit"),
            with_payload=payload_names is None or bool(payload_names),
        )
        fixed = COLUMNS if columns is None else [name for name in COLUMNS if name in columns]
        return batches_frame(self._store.events(query), fields=EVENT_FIELDS, fixed=fixed, sort_by="seq", columns=columns,
                            payload_names=payload_names)

    def latest(self, *, family: str = "patient") -> pd.DataFrame:
        """Each resource's newest known state: one row per ``resource_id`` among the events of
        types ``f"{family}.*"``, sorted by ``resource_id``.

        Columns: ``resource_id, event_id, received_at, type, source`` (``'delivery'`` or
        ``'backfill'``), then ``payload.*`` as in ``frame()``.

        Newest means the highest position (see the module docstring), later arrival breaking
        ties. That relies on event ids that rise over time: true of the sandbox, an assumption
        about the platform (docs/api-decisions.md#ordering). So an older event delivered after
        a newer one (a retry) never wins, and a redelivery changes nothing. Guide-shaped
        events have no position (their id is a hash): among themselves the later arrival
        wins, and any event with a position outranks them. A backfill row outranks everything
        received before it and loses to any later event with a higher event id. Computed by
        the database, not by reading the whole log.
        """
        _check_family(family, "latest")
        batches = self._store.latest(f"{family}.")
        return batches_frame(batches, fields=LATEST_FIELDS, fixed=LATEST_COLUMNS, sort_by="resource_id")

    def bodies(self, event_ids: Iterable[int] | None = None) -> Iterator[tuple[int, bytes]]:
        """``(event_id, body)`` exactly as received, in arrival order: of every event, or of
        those of ``event_ids`` in the log (an unknown id is simply absent; compare to report it)."""
        wanted = None if event_ids is None else _event_ids(event_ids)
        return self._store.bodies(wanted)

    def attempts(self) -> pd.DataFrame:
        """Replay and forward attempts: ``event_id, kind, target, attempted_at, status_code, latency_ms, error``."""
        return attempts_frame(self._store.attempts())

    def replay(self, url: str, *, event_ids: Iterable[int] | None = None, secret: str | None = None,
               timeout: float = 10.0, allow_external: bool = False, progress: bool | None = None) -> pd.DataFrame:
        """Send stored bodies again, exactly as received, to the customer's handler at ``url``
        (this machine only, unless ``allow_external``); every attempt is recorded, and the result
        has one row per event: event_id, status_code, latency_ms, error (see ``eventlog.replay``)."""
        from .replay import replay

        return replay(self, url, event_ids=event_ids, secret=secret, timeout=timeout, allow_external=allow_external,
                      progress=progress)

    def rejections(self) -> pd.DataFrame:
        """Refused deliveries (wrong secret, too large...): when, status, reason, sender."""
        return rejections_frame(self._store.rejections())

    def wait_for(self, count: int, *, timeout: float = 10.0) -> bool:
        """Wait until the log holds at least ``count`` events; False if ``timeout`` s pass first."""
        return poll_until(lambda: len(self) >= count, timeout=timeout)

    def timeline(self, freq: Any = None) -> pd.DataFrame:
        """Events per time bucket (rows: bucket start, UTC) and type (columns), zero-filled, for plotting.

        ``freq`` is the bucket width (``"30s"``, ``"5min"``, ``"1h"``...); by default the
        smallest of ``TIMELINE_WIDTHS`` that gives at most ``MAX_BARS`` buckets.
        ``frame.attrs["freq"]`` names the width used. Counted by the database. Raises
        ``ValidationError`` for a ``freq`` that is no fixed width of whole seconds.
        """
        span = self._store.time_range()
        if span is None:
            return pd.DataFrame()
        label, width = _bucket_width(span) if freq is None else _fixed_width(freq)
        return timeline_frame(self._store.timeline(width), width=width, label=label)

    def plot_timeline(self, freq: Any = None, ax: Any = None) -> Any:
        """A bar chart of events per bucket by type (``timeline(freq)``); returns the matplotlib Axes."""
        from .plots import plot_timeline

        counts = self.timeline(freq)
        return plot_timeline(counts, label=counts.attrs.get("freq", str(freq or "")), ax=ax)

    def __repr__(self) -> str:
        return f"EventLog({self._store.where!r}, events={len(self)})"

    def _repr_html_(self) -> str:
        counts = "".join(f"<li>{html.escape(t)}: {n}</li>" for t, n in self.types().items()) or "<li>no events yet</li>"
        return f"<b>EventLog</b> <code>{html.escape(self._store.where)}</code>: {len(self)} events<ul>{counts}</ul>"


def _open_store(target: str | os.PathLike[str], *, synchronous: str) -> EventStore:
    """The backend for ``target``: a ``postgresql://`` (or ``postgres://``, libpq's two schemes)
    URL is PostgreSQL (the ``[postgres]`` extra; see ``eventlog.postgres``), anything else a
    SQLite file path."""
    if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore  # imports psycopg, which only a PostgreSQL log needs

        return PostgresStore(target, synchronous=synchronous)
    if isinstance(target, str) and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", target):
        raise ConfigurationError(
            f"{target.split('://')[0]}:// is not an event log backend. Give a file path (SQLite) or a"
            " postgresql:// URL."
        )
    return SQLiteStore(target, synchronous=synchronous)


def _position(event: NormalisedEvent) -> int | None:
    """The order key of a delivered event: its integer id in Impilo's envelope (ids rise over
    time, docs/api-decisions.md#ordering); none when the id is a hash (the guide's envelope, a
    text id), so such events are ordered by arrival."""
    return event.position


def _backfill_id(family: str, resource_id: int, position: int | None, payload: Any) -> int:
    """A backfill row's event id: negative, and the same for the same state at the same position."""
    canonical = json.dumps([family, resource_id, position, payload], sort_keys=True, separators=(",", ":"))
    return BACKFILL_ID_BASE - int(hashlib.sha256(canonical.encode()).hexdigest()[:15], 16)


def _json_object(payload: Any) -> dict[str, Any]:
    """``payload`` as the JSON object it encodes to, or ``ValidationError`` saying why it cannot be one."""
    if not isinstance(payload, Mapping):
        problem = f"Must be a mapping (the resource's record, as a dict); got {type(payload).__name__}."
        raise ValidationError("record_backfill", [FieldError("payload", problem)])
    try:
        data: dict[str, Any] = json.loads(json.dumps(dict(payload), allow_nan=False))
    except (TypeError, ValueError) as exc:
        problem = f"Must encode as JSON ({exc}); give plain dicts, lists, text, numbers, booleans and None."
        raise ValidationError("record_backfill", [FieldError("payload", problem)]) from None
    return data


def _attempt_row(event_id: Any, kind: Any, target: Any, status_code: Any, latency_ms: Any, error: Any,
                 attempted_at: Any) -> AttemptRow:
    """The checked row ``record_attempt`` stores; ``ValidationError`` lists every value at fault."""
    problems = []
    if not _is_whole(event_id) or not -(2**63) <= event_id < 2**63:
        problems.append(FieldError("event_id", f"Must be a stored event's id (a 64-bit whole number); got {event_id!r:.80}."))
    if kind not in ATTEMPT_KINDS:
        problems.append(FieldError("kind", f"Must be one of {', '.join(ATTEMPT_KINDS)}; got {kind!r:.80}."))
    if not isinstance(target, str) or not target.strip():
        problems.append(FieldError("target", f"Must be the URL sent to, as text; got {type(target).__name__}."))
    elif _has_credentials(target):
        problems.append(FieldError("target", "Must not carry credentials (user:password@); give the URL without them."))
    if status_code is not None and (not _is_whole(status_code) or not 100 <= status_code <= 599):
        problems.append(FieldError("status_code", f"Must be an HTTP status (100-599) or None; got {status_code!r:.80}."))
    if isinstance(latency_ms, bool) or not isinstance(latency_ms, (int, float)) or not 0 <= latency_ms < math.inf:
        problems.append(FieldError("latency_ms", f"Must be a number of milliseconds, 0 or more; got {latency_ms!r:.80}."))
    if error is not None and not isinstance(error, str):
        problems.append(FieldError("error", f"Must be text or None; got {type(error).__name__}."))
    when = None
    try:
        when = utc_iso() if attempted_at is None else _as_utc_iso(attempted_at, "attempted_at")
    except ValidationError as exc:
        problems.extend(exc.field_errors)
    if problems or when is None:
        raise ValidationError("record_attempt", problems)
    return AttemptRow(operator.index(event_id), kind, target, when,
                      None if status_code is None else operator.index(status_code), float(latency_ms),
                      None if error is None else _storable(error))


def _has_credentials(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "@" in url  # unparseable: refuse anything that could be user info
    return parts.username is not None or parts.password is not None


def _storable(text: str) -> str:
    """Any text as UTF-8 that binds, cut to a readable size."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:MAX_REASON_CHARS]


def _is_whole(value: Any) -> bool:
    """An int (a numpy one too), not a bool."""
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def _event_ids(event_ids: Iterable[int]) -> list[int]:
    if isinstance(event_ids, (str, bytes)) or not isinstance(event_ids, Iterable):
        problem = f"Must be a list of event ids (whole numbers) or None for all; got {type(event_ids).__name__}."
        raise ValidationError("bodies", [FieldError("event_ids", problem)])
    ids = list(event_ids)
    wrong = [f"[{i}] {value!r:.40}" for i, value in enumerate(ids) if not _is_whole(value)][:5]
    if wrong:
        problem = f"Must be whole numbers (event ids, as in frame()['event_id']); not: {', '.join(wrong)}."
        raise ValidationError("bodies", [FieldError("event_ids", problem)])
    return [operator.index(value) for value in ids if INT64_MIN <= value <= INT64_MAX]  # others are stored nowhere


def _check_family(family: Any, where: str) -> None:
    if not isinstance(family, str) or not _FAMILY.fullmatch(family):
        problem = f"Must be an event family, the part of a type before the dot (such as 'patient'); got {family!r:.80}."
        raise ValidationError(where, [FieldError("family", problem)])


def _optional_text(value: Any, name: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value or not is_valid_unicode(value)):
        problem = f"Must be an event type such as 'patient.updated' (valid Unicode text); got {value!r:.80}."
        raise ValidationError("frame", [FieldError(name, problem)])
    return value



def _optional_count(value: Any, name: str) -> int | None:
    if value is not None and (not _is_whole(value) or not 0 <= value <= INT64_MAX):
        problem = f"Must be a whole number from 0 to 2**63 - 1 (64 bits), or None; got {value!r:.80}."
        raise ValidationError("frame", [FieldError(name, problem)])
    return None if value is None else operator.index(value)


def _as_utc_iso(value: Any, name: str) -> str:
    """A datetime, Timestamp or ISO text (naive means UTC) as the log's UTC timestamp text.

    A number is refused: pandas would read it as nanoseconds since 1970, so ``time.time()``
    would silently mean a moment in January 1970. A moment finer than the log's microseconds is
    rounded up, so "at or after" never takes in an event from before it.
    """
    if isinstance(value, (numbers.Number, np.generic)) and not isinstance(value, np.datetime64):
        problem = (f"Must be a moment, not a number; got {value!r:.80}. For Unix seconds give"
                   f" pd.Timestamp({value!r:.40}, unit='s'); else a datetime or ISO text such as '2024-05-01T12:00:00Z'.")
        raise ValidationError("frame", [FieldError(name, problem)])
    try:
        stamp = pd.Timestamp(value)
        if pd.isna(stamp):
            raise ValidationError("frame", [FieldError(name, "Must be a moment in time; got a missing value (NaT).")])
        stamp = (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).ceil("us")
    except (TypeError, ValueError) as exc:  # OutOfBoundsDatetime is a ValueError
        problem = f"Must be a datetime, a Timestamp or ISO 8601 text such as '2024-05-01T12:00:00Z'; got {value!r:.80} ({exc})."
        raise ValidationError("frame", [FieldError(name, problem)]) from None
    return utc_iso(stamp.to_pydatetime())


def _bucket_width(span: tuple[str, str]) -> tuple[str, int]:
    """The smallest ``TIMELINE_WIDTHS`` entry (then whole weeks) that covers ``span`` in ``MAX_BARS`` buckets."""
    first, last = (int(pd.Timestamp(moment).timestamp()) for moment in span)
    for label, width in TIMELINE_WIDTHS.items():
        if last // width - first // width < MAX_BARS:
            return label, width
    week = TIMELINE_WIDTHS["7D"]
    weeks = max(2, (last - first) // (week * MAX_BARS))
    while last // (week * weeks) - first // (week * weeks) >= MAX_BARS:
        weeks += 1
    return f"{7 * weeks}D", week * weeks


def _fixed_width(freq: Any) -> tuple[str, int]:
    """An explicit ``freq`` as (label, whole seconds); ``ValidationError`` if it is no fixed width."""
    try:
        seconds = pd.Timedelta(pd.tseries.frequencies.to_offset(freq)).total_seconds()
    except (TypeError, ValueError) as exc:
        problem = (f"Must be a fixed bucket width such as '30s', '5min', '1h' or '1D'; got {freq!r:.80} ({exc})."
                   " Calendar widths (months, weeks starting on a weekday) are not supported.")
        raise ValidationError("timeline", [FieldError("freq", problem)]) from None
    if seconds < 1 or seconds != int(seconds) or seconds > MAX_BUCKET_SECONDS:
        problem = f"Must be a whole number of seconds, from 1 to {MAX_BUCKET_SECONDS} (a century); {freq!r} is {seconds:g} s."
        raise ValidationError("timeline", [FieldError("freq", problem)])
    return str(freq), int(seconds)
