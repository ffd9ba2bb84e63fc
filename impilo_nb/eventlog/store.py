"""The small interface an event-log backend implements, and what it hands back.

``EventLog`` holds the rules (what a delivery may be, when it counts as stored, which event is
a resource's newest, how rows read as DataFrames); a store only keeps rows and runs the
queries. ``EventStore`` below is the one statement of what a backend (``SQLiteStore``, the
PostgreSQL store) must do; each method's docstring is its contract.

Timestamps cross this interface as UTC ISO text (``_time.utc_iso``: ``2024-05-01T12:00:00.000000Z``).
A store keeps, per event: ``seq`` (arrival order, rising), ``event_id`` (unique), ``type``,
``resource_id``, ``received_at``, ``last_received_at``, ``delivery_count``, ``envelope``,
``payload`` (JSON), ``body`` (the bytes received), ``headers``, ``remote_addr``, ``source``
(``'delivery'`` or ``'backfill'``), ``position`` (the order key of "newest", or NULL), and the
payload's *flat form* that ``EventLog`` computes once, when the event is stored
(``frames.flat_payload``): ``shape``, the JSON list of its flattened column names, and ``flat``,
the JSON list of their values. Reading a million payloads back as columns then costs one
parse of plain lists per shape and batch, not a parse and flatten of every payload; a store
keeps each distinct shape once (a table of shapes) and names the shape of each row it reads.
Events stored before the flat form existed have neither (NULL); readers flatten their payload.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from .._constants import API_KEY_HEADER, WEBHOOK_SECRET_HEADER
from .envelope import NormalisedEvent

__all__ = [
    "ATTEMPT_KINDS",
    "SECRET_HEADERS",
    "EVENT_FIELDS",
    "LATEST_FIELDS",
    "AttemptRow",
    "ColumnBatch",
    "EventQuery",
    "EventStore",
    "Batches",
    "RejectionRow",
    "kept_headers",
]

#: Request headers never stored: they carry credentials. Besides Impilo's own, the ones a proxy,
#: gateway or tunnel in front of the receiver commonly adds (``X-Api-Key`` is the usual API-key header).
SECRET_HEADERS = frozenset(
    h.lower()
    for h in (WEBHOOK_SECRET_HEADER, API_KEY_HEADER, "Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key")
)

#: What an attempt to send a stored body somewhere was: a replay, or a forward by the receiver.
ATTEMPT_KINDS = ("replay", "forward")

#: The fields ``EventStore.events`` gives, in order, as JSON arrays (see ``ColumnBatch``).
EVENT_FIELDS = ("seq", "received_at", "event_id", "type", "resource_id", "delivery_count")

#: The fields ``EventStore.latest`` gives, in order.
LATEST_FIELDS = ("resource_id", "event_id", "received_at", "type", "source")


class ColumnBatch(NamedTuple):
    """A batch of selected events, column by column; every array lists the rows in the same order.

    ``shapes``: a JSON array text of each row's shape id (-1: stored without a flat form).
    ``names``: for each shape id in the batch, the JSON list of its column names.
    ``columns``: one JSON array text per field the read names (``EVENT_FIELDS`` or ``LATEST_FIELDS``).
    ``values``: a JSON array text with, per row, its ``flat`` list of values, or for a row of
    shape -1 its payload itself; None when the read asked for no payload.
    """

    shapes: str
    names: dict[int, str]
    columns: tuple[str, ...]
    values: str | None


#: Batches, read lazily: a million events never sit in memory as rows.
Batches = Iterator[ColumnBatch]


def kept_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The request headers worth keeping with an event: all but credentials."""
    return {k: v for k, v in (headers or {}).items() if k.lower() not in SECRET_HEADERS}


class RejectionRow(NamedTuple):
    received_at: str
    status: int
    reason: str
    remote_addr: str | None


class AttemptRow(NamedTuple):
    """One attempt to send a stored body again: a replay, or the receiver's forward."""

    event_id: int
    kind: str
    target: str
    attempted_at: str
    status_code: int | None
    latency_ms: float
    error: str | None


@dataclass(frozen=True)
class EventQuery:
    """Which events to read: of one ``type``, first received at or after ``since`` (UTC ISO
    text), arriving after ``after_seq``; the newest ``limit`` of them; with the payload values or not."""

    type: str | None = None
    since: str | None = None
    after_seq: int | None = None
    limit: int | None = None
    with_payload: bool = True


class EventStore(Protocol):
    """What ``EventLog`` needs of a backend.

    Writes are durable when the method returns (the receiver's 2xx promises it). Reads that
    come in batches (``events``, ``latest``, ``bodies``) see one consistent snapshot, and must not
    block writers while the caller consumes them.
    """

    @property
    def where(self) -> str:
        """Where the log lives, for reprs and messages (a path, or a URL without its password)."""
        ...

    def record(
        self, event: NormalisedEvent, received_at: str, *, body: bytes, headers: Mapping[str, str] | None,
        remote_addr: str | None, position: int | None, shape: str, flat: str,
    ) -> int:
        """Insert a delivered event (source ``'delivery'``, headers through ``kept_headers``,
        ``shape`` and ``flat`` as the module docstring says), or, when its ``event_id`` is
        already stored, add one to its ``delivery_count``, set its ``last_received_at`` and
        keep everything else. Returns the delivery count."""
        ...

    def record_backfill(
        self, event: NormalisedEvent, received_at: str, *, body: bytes, position: int | None, shape: str, flat: str,
    ) -> bool:
        """Insert an event with source ``'backfill'``, no headers and no sender, unless its
        ``event_id`` is already stored (then change nothing). True if a row was added."""
        ...

    def max_position(self) -> int | None:
        """The highest ``position`` stored, or None (no event has one)."""
        ...

    def record_rejection(self, received_at: str, status: int, reason: str, remote_addr: str | None) -> None:
        """Count a refused delivery."""
        ...

    def record_attempt(self, attempt: AttemptRow) -> None:
        """Keep one replay or forward attempt (values already checked by ``EventLog``)."""
        ...

    def count(self) -> int:
        """How many events are stored (cheap: no table scan at a million events)."""
        ...

    def version(self) -> tuple[Any, ...]:
        """``(count, max seq, max last_received_at)``: changes whenever an event is added or redelivered."""
        ...

    def type_counts(self) -> dict[str, int]:
        """Events per type, most frequent first, ties by type (cheap: an index on type)."""
        ...

    def get(self, event_id: int) -> dict[str, Any] | None:
        """Every stored field of one event by its ``event_id`` (payload and headers as stored), or None."""
        ...

    def events(self, query: EventQuery) -> Batches:
        """The events ``query`` selects in arrival order, as ``ColumnBatch``es of ``EVENT_FIELDS``. With
        ``limit``, the newest ``limit`` of the selection. ``after_seq`` is used to read only
        what is new, so a row with a lower ``seq`` than one already read must never appear
        later (true of SQLite, whose writers commit one at a time; a backend whose sequence
        can commit out of order must hide rows until the ones before them are committed)."""
        ...

    def time_range(self) -> tuple[str, str] | None:
        """The first and last ``received_at`` stored, or None for an empty log (cheap: an index)."""
        ...

    def timeline(self, width_seconds: int) -> list[tuple[int, str, int]]:
        """``(bucket, type, count)`` for every non-empty bucket, computed by the database: a
        bucket is ``received_at`` in whole Unix seconds, floored to a multiple of ``width_seconds``."""
        ...

    def latest(self, type_prefix: str) -> Batches:
        """Each resource's newest event among those whose type starts with ``type_prefix``
        (and that have a ``resource_id``), as ``ColumnBatch``es of ``LATEST_FIELDS``, in any
        order. Newest = highest ``position``; a NULL position is lower than any number; ties
        go to the later arrival (higher ``seq``). Done in the database."""
        ...

    def bodies(self, event_ids: Sequence[int] | None) -> Iterator[tuple[int, bytes]]:
        """``(event_id, body)`` in arrival order: of every event when ``event_ids`` is None,
        else of those of ``event_ids`` that are stored (unknown ids are simply absent)."""
        ...

    def attempts(self) -> list[AttemptRow]:
        """Every recorded attempt, in the order recorded."""
        ...

    def rejections(self) -> list[RejectionRow]:
        """Every refused delivery, in the order refused."""
        ...

    def close(self) -> None:
        """Release the connection(s); the store is not used afterwards."""
        ...
