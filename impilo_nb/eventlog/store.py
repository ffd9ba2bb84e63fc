"""The small interface an event-log backend implements, and what it hands back.

``EventLog`` holds the rules (what a delivery may be, when it counts as stored, how it reads as
a DataFrame); a store only keeps rows. A backend (``SQLiteStore`` today) implements
``EventStore``: record an event or a refusal, count, version, type counts, get one event, and
select events by type, time and arrival order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from .._constants import API_KEY_HEADER, WEBHOOK_SECRET_HEADER
from .envelope import NormalisedEvent

__all__ = ["SECRET_HEADERS", "EventQuery", "EventRow", "EventStore", "RejectionRow", "kept_headers"]

#: Request headers never stored: they carry credentials.
SECRET_HEADERS = frozenset(h.lower() for h in (WEBHOOK_SECRET_HEADER, API_KEY_HEADER, "Authorization", "Cookie"))


def kept_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The request headers worth keeping with an event: all but credentials."""
    return {k: v for k, v in (headers or {}).items() if k.lower() not in SECRET_HEADERS}


class EventRow(NamedTuple):
    """One stored event as a store returns it; ``payload`` is JSON text (or already decoded)."""

    seq: int
    received_at: str
    event_id: int
    type: str
    resource_id: int | None
    delivery_count: int
    payload: Any


class RejectionRow(NamedTuple):
    received_at: str
    status: int
    reason: str
    remote_addr: str | None


@dataclass(frozen=True)
class EventQuery:
    """Which events to read: of one ``type``, first received at or after ``since`` (UTC ISO
    text), arriving after ``after_seq``; ``limit`` of them, oldest or newest first."""

    type: str | None = None
    since: str | None = None
    after_seq: int | None = None
    limit: int | None = None
    newest_first: bool = False


class EventStore(Protocol):
    """What ``EventLog`` needs of a backend. ``record`` must return only once the event is
    durable: the receiver's 2xx promises it."""

    @property
    def where(self) -> str: ...

    def record(
        self, event: NormalisedEvent, received_at: str, *, body: bytes, headers: Mapping[str, str] | None,
        remote_addr: str | None,
    ) -> int: ...

    def record_rejection(self, received_at: str, status: int, reason: str, remote_addr: str | None) -> None: ...

    def count(self) -> int: ...

    def version(self) -> tuple[Any, ...]: ...

    def type_counts(self) -> dict[str, int]: ...

    def get(self, event_id: int) -> dict[str, Any] | None: ...

    def events(self, query: EventQuery) -> list[EventRow]: ...

    def rejections(self) -> list[RejectionRow]: ...

    def close(self) -> None: ...
