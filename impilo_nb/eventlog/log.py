"""EventLog: every webhook delivery received, durable, read back as DataFrames.

One row per event id. A repeated delivery of the same event (a retry after a lost answer)
adds to ``delivery_count`` instead of adding a row, so the log is de-duplicated by design.
The rules live here; the rows live in a store (``store.EventStore``; SQLite today).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

from .._time import poll_until, utc_iso
from .envelope import NormalisedEvent, parse_delivery
from .frames import COLUMNS, events_frame, rejections_frame
from .sqlite import DEFAULT_SYNCHRONOUS, SQLiteStore
from .store import EventQuery, EventStore

__all__ = ["EventLog"]

#: Rejection reasons are stored and shown in tables; longer ones are cut.
MAX_REASON_CHARS = 500


class EventLog:
    """A durable log of webhook deliveries.

    ``EventLog("webhooks.db")`` keeps it in a SQLite file (created with mode 0600, its folder
    too when missing). Safe to share between threads and processes; survives restarts: open
    the same path again. ``ConfigurationError`` names the path when it cannot hold an event log
    (a directory, a file that is not SQLite or is another application's database); such a file
    is left byte-for-byte as it was.
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = DEFAULT_SYNCHRONOUS) -> None:
        self._store: EventStore = SQLiteStore(path, synchronous=synchronous)
        self.path = self._store.path if isinstance(self._store, SQLiteStore) else None

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
        return self._store.record(event, utc_iso(), body=body, headers=headers, remote_addr=remote_addr)

    def record_body(self, body: bytes, *, headers: Mapping[str, str] | None = None, remote_addr: str | None = None) -> int:
        """Parse, check and store a raw delivery body; ``InvalidDeliveryError`` if it is not one
        (see ``envelope.parse_delivery``)."""
        return self.record(parse_delivery(body), body=body, headers=headers, remote_addr=remote_addr)

    def record_rejection(self, status: int, reason: str, *, remote_addr: str | None = None) -> None:
        """Count a refused delivery attempt with its reason; its body is not kept."""
        # Whatever text a caller passes, it must bind as UTF-8 and stay a readable size.
        reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")[:MAX_REASON_CHARS]
        self._store.record_rejection(utc_iso(), status, reason, remote_addr)

    # -- reading ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._store.count()

    def version(self) -> tuple[Any, ...]:
        """Changes whenever an event is added or redelivered (cheap; for live views)."""
        return self._store.version()

    def types(self) -> dict[str, int]:
        """Event count per type, most frequent first."""
        return self._store.type_counts()

    def get(self, event_id: int) -> dict[str, Any] | None:
        """Everything stored for one event: payload, raw body, headers (without secrets), sender."""
        record = self._store.get(event_id)
        if record is None:
            return None
        for key in ("payload", "headers"):
            if isinstance(record.get(key), (str, bytes)):
                record[key] = json.loads(record[key])
        record.pop("seq", None)
        return record

    def frame(self, type: str | None = None, since: Any = None, *, limit: int | None = None) -> pd.DataFrame:  # noqa: A002
        """Events in arrival order: ``received_at, event_id, type, resource_id, delivery_count, payload.*``.

        ``type`` (the wire's word) keeps one event type; ``since`` (a datetime, Timestamp or ISO
        string; naive means UTC) keeps events first received at or after it; ``limit`` keeps
        the latest that many.
        """
        query = EventQuery(type=type, since=_as_utc_iso(since) if since is not None else None, limit=limit,
                           newest_first=limit is not None)
        rows = self._store.events(query)
        return events_frame(reversed(rows) if query.newest_first else rows)

    def rejections(self) -> pd.DataFrame:
        """Refused deliveries (wrong secret, too large...): when, status, reason, sender."""
        return rejections_frame(self._store.rejections())

    def wait_for(self, count: int, *, timeout: float = 10.0) -> bool:
        """Wait until the log holds at least ``count`` events; False if ``timeout`` s pass first."""
        return poll_until(lambda: len(self) >= count, timeout=timeout)

    def timeline(self, freq: str = "1min") -> pd.DataFrame:
        """Events per time bucket (rows) and type (columns), for plotting."""
        frame = self.frame()[COLUMNS[:3]]
        if frame.empty:
            return pd.DataFrame()
        return frame.groupby([pd.Grouper(key="received_at", freq=freq), "type"]).size().unstack(fill_value=0)

    def plot_timeline(self, freq: str = "1min", ax: Any = None) -> Any:
        """A bar chart of events per ``freq`` by type; returns the matplotlib Axes."""
        from .plots import plot_timeline

        return plot_timeline(self.timeline(freq), label=freq, ax=ax)

    def __repr__(self) -> str:
        return f"EventLog({self._store.where!r}, events={len(self)})"

    def _repr_html_(self) -> str:
        counts = "".join(f"<li>{html.escape(t)}: {n}</li>" for t, n in self.types().items()) or "<li>no events yet</li>"
        return f"<b>EventLog</b> <code>{html.escape(self._store.where)}</code>: {len(self)} events<ul>{counts}</ul>"


def _as_utc_iso(value: Any) -> str:
    """A datetime, Timestamp or ISO text (naive means UTC) as the log's UTC timestamp text."""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return utc_iso(stamp.to_pydatetime())
