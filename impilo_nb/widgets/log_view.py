"""WebhookLogView: watch an EventLog fill up, filter it, and open any event.

Newest first; filter by type and by free text (matched in any column, payload included);
per-type counts; a timeline of events by type; the selected event's JSON. While ``live`` is
on, a background thread checks ``log.version()`` every ``refresh_interval`` seconds and
refreshes only when it changed.

A refresh costs the same at ten thousand events as at a million, because it reads only what
it shows and what is new: the newest ``max_rows`` rows (of the chosen type), or the newest
``search_rows`` while a search is typed; the per-type counts are brought up to date from the
events that arrived since the last look (``_TypeCounts``), not counted again over the whole log.
The view shares the kernel with any receiver running in it, so it still backs off if a refresh
turns out slow: it waits at least twice as long as its last refresh took.

The timeline (matplotlib, the costliest part, and a slow import in a fresh kernel) is drawn
only while its tab is shown, and brought up to date when the tab is opened; a report snapshot
draws it too. Building the view, and refreshing it while the timeline is hidden, never asks
the log for its timeline and never touches matplotlib. While shown, it is redrawn at most every
``timeline_interval`` seconds, or twice as long as its last drawing took if that is longer.
"""

from __future__ import annotations

import html
import io
import json
import math
import threading
import time
from collections.abc import Iterable
from typing import Any

import ipywidgets as w
import pandas as pd

from ..errors import ConfigurationError
from ..eventlog import EventLog
from ._snapshot import Snapshot

__all__ = ["WebhookLogView"]

ALL_TYPES = "(all types)"

#: Seconds between checks for new events while live.
DEFAULT_REFRESH_INTERVAL = 0.5

#: Seconds between timeline redraws while live (a redraw is the costliest part of a refresh).
TIMELINE_MIN_INTERVAL = 5.0

#: Rows shown in the table; the filters narrow the rest.
DEFAULT_MAX_ROWS = 50

#: Newest events (of the chosen type) a text search looks through. A search reads that many
#: rows and matches in pandas; to search a whole big log, filter ``log.frame()`` instead.
DEFAULT_SEARCH_ROWS = 5_000

#: New events a refresh reads (their type only) to bring the per-type counts up to date. When
#: more arrived since the last look, one count by type in the database is cheaper.
COUNT_READ_LIMIT = 10_000

#: Position of the Timeline tab in ``view.tabs``.
TIMELINE_TAB = 2


class _TypeCounts:
    """Events per type, kept up to date by reading only the events that arrived since the last look.

    ``seq`` is the arrival number of the newest event counted (0: none yet). A look reads the type
    of the events past it (``frame(after_seq=..., columns=["type"])``: the log never shows an
    event behind one it has already shown), unless more than ``COUNT_READ_LIMIT`` arrived: then
    it counts them all in the database (``EventLog.types()``). Counts that reach exactly a
    version's newest event must add up to that version's count; when they do not (an event
    landed just as they were counted in full), they are counted in full again.
    """

    def __init__(self) -> None:
        self.by_type: dict[str, int] = {}
        self.total = 0
        self.seq = 0

    def update(self, log: EventLog, version: tuple[Any, ...]) -> None:
        """Bring the counts up to ``version`` (``log.version()``: count, max seq, ...) or later."""
        count, newest = version[0], version[1] or 0
        if self.seq < newest <= self.seq + COUNT_READ_LIMIT:
            self._add(log.frame(after_seq=self.seq, columns=["type"]))
            if self.seq > newest or self.total == count:  # past the version (checked next time), or right
                return
        elif self.seq == newest and self.total == count:
            return
        self.by_type = log.types()
        self.total = sum(self.by_type.values())
        self.seq = newest

    def _add(self, new: pd.DataFrame) -> None:
        for event_type, n in new["type"].value_counts().items():
            self.by_type[str(event_type)] = self.by_type.get(str(event_type), 0) + int(n)
        self.by_type = dict(sorted(self.by_type.items(), key=lambda item: (-item[1], item[0])))
        self.total += len(new)
        self.seq = max(self.seq, new.attrs.get("last_seq") or 0)


class WebhookLogView(Snapshot, w.VBox):  # type: ignore[misc]  # ipywidgets has no types: VBox is Any
    """A live view of ``log`` (kept as ``view.event_log``).

    ``view.refresh()`` re-reads what changed now; ``view.close()`` stops watching.

    Raises:
        TypeError: ``log`` is not an ``impilo_nb.EventLog``.
        ConfigurationError: a number is out of range (the message names it and the range).
    """

    def __init__(
        self,
        log: EventLog,
        *,
        live: bool = True,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        timeline_interval: float = TIMELINE_MIN_INTERVAL,
        max_rows: int = DEFAULT_MAX_ROWS,
        search_rows: int = DEFAULT_SEARCH_ROWS,
    ) -> None:
        if not isinstance(log, EventLog):
            raise TypeError(f"WebhookLogView needs an impilo_nb.EventLog, got {type(log).__name__}: nb.EventLog(path).")
        _check_settings(refresh_interval, timeline_interval, max_rows, search_rows)
        self._stop = threading.Event()
        self.event_log = log  # not `.log`: every widget already has a `log` (its logger)
        self.max_rows = max_rows
        self.search_rows = search_rows
        self.refresh_interval = refresh_interval
        self.timeline_interval = timeline_interval
        self.frame = pd.DataFrame()  # what the table shows, after the filters, newest first

        self.type_filter = w.Dropdown(options=[ALL_TYPES], value=ALL_TYPES, description="Type")
        self.search = w.Text(placeholder="text in any field, e.g. a name or an id", description="Search")
        self.live = w.Checkbox(value=live, description="Live", indent=False, layout=w.Layout(width="6em"))
        self.refresh_button = w.Button(description="Refresh", icon="refresh", layout=w.Layout(width="8em"))
        self.counts = w.HTML()
        self.table = w.HTML()
        self.event_picker = w.Dropdown(options=[], description="Event", layout=w.Layout(width="40em"))
        self.detail = w.HTML()
        # Hidden until drawn: an empty Image shows as a broken picture in the browser.
        self.timeline = w.Image(format="png", layout=w.Layout(max_width="720px", display="none"))
        self._timeline_note = w.HTML("<i>Drawing the timeline…</i>")

        self.type_filter.observe(lambda _: self.refresh(), names="value")
        self.search.observe(lambda _: self.refresh(), names="value")
        self._filling_picker = False  # while True, the picker's changes are the view's own: no detail read for each
        self.event_picker.observe(lambda _: None if self._filling_picker else self._show_detail(), names="value")
        self.refresh_button.on_click(lambda _: self.refresh(force_plot=True))
        self.live.observe(lambda change: self._watch() if change["new"] else None, names="value")

        controls = w.HBox([self.type_filter, self.search, self.live, self.refresh_button])
        panes = [w.VBox([self.table]), w.VBox([self.event_picker, self.detail]), w.VBox([self._timeline_note, self.timeline])]
        self.tabs = w.Tab(children=panes, titles=("Events", "Detail", "Timeline"))
        super().__init__([controls, self.counts, self.tabs])

        self._clock = time.monotonic  # tests swap in a fake clock to check the timing rules
        self._type_counts = _TypeCounts()
        self._window = pd.DataFrame()  # the newest rows last read (newest first), and what they were:
        self._window_key: tuple[Any, ...] | None = None  # (version, type or None, rows asked for)
        self._shown_key: tuple[Any, ...] | None = None  # (version, type, search text) on screen
        self._seen_version: tuple[Any, ...] | None = None
        self._plotted_version: tuple[Any, ...] | None = None
        self._plotted_at = self._refresh_seconds = self._timeline_seconds = 0.0  # clock readings and durations
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self.tabs.observe(lambda _: self._timeline_opened(), names="selected_index")
        self.refresh()
        if live:
            self._watch()

    def __repr__(self) -> str:
        return f"WebhookLogView({str(self.event_log.path)!r})"

    def snapshot_html(self) -> str:
        """Counts, the table and the timeline as they are now (for reports).

        A report has no one to open the Timeline tab, so the timeline is drawn here if stale.
        """
        import base64

        self._update_timeline()
        image = base64.b64encode(self.timeline.value).decode() if self.timeline.value else ""
        timeline = f"<img alt='timeline' src='data:image/png;base64,{image}'>" if image else ""
        return f"<b>Webhook log</b> (live in JupyterLab){self.counts.value}{self.table.value}{timeline}"

    # -- reading the log ---------------------------------------------------------------------

    def refresh(self, *, force_plot: bool = False) -> None:
        """Bring counts, table and event list up to date with the log and the filters.

        Reads nothing more when neither the log (``log.version()``) nor the filters changed.
        The timeline is redrawn only while its tab is shown, when the log changed and a redraw
        is due (``timeline_interval``), or at once with ``force_plot`` (the Refresh button).
        """
        started = self._clock()
        self._refresh(self.event_log.version(), started=started, force_plot=force_plot)

    def _refresh(self, version: tuple[Any, ...], *, started: float, force_plot: bool = False) -> None:
        """``refresh()`` for a ``version`` of the log read at ``started`` (the live watch has one already)."""
        with self._lock:
            key = (version, self.type_filter.value, self.search.value.strip())
            if key != self._shown_key:
                self._show(version)
                self._shown_key = key
            self._seen_version = version
        self._refresh_seconds = self._clock() - started
        if self._timeline_shown() and (force_plot or (version != self._plotted_version and self._timeline_due())):
            self._draw_timeline(version)

    def _show(self, version: tuple[Any, ...]) -> None:
        """Read the newest rows the filters need and the new events, and redraw all but the timeline."""
        event_type = None if self.type_filter.value == ALL_TYPES else str(self.type_filter.value)
        text = self.search.value.strip()
        window = self._newest(version, event_type, self.search_rows if text else self.max_rows)
        self.frame = _matching(window, text).head(self.max_rows).reset_index(drop=True)
        self._type_counts.update(self.event_log, version)
        self._update_type_options()
        searched = len(window) if text and len(window) >= self.search_rows else None
        self.counts.value = _counts_html(self._type_counts, len(self.frame), searched)
        self.table.value = _table_html(self.frame)
        self._update_picker()

    def _newest(self, version: tuple[Any, ...], event_type: str | None, rows: int) -> pd.DataFrame:
        """The newest ``rows`` events (of ``event_type``), newest first; read once per version."""
        if self._window_key is not None:
            seen, seen_type, seen_rows = self._window_key
            if seen == version and seen_type == event_type and (rows <= seen_rows or len(self._window) < seen_rows):
                return self._window.head(rows)
        frame = self.event_log.frame(type=event_type, limit=rows)
        self._window = frame.iloc[::-1].reset_index(drop=True)
        self._window_key = (version, event_type, rows)
        return self._window

    def _update_type_options(self) -> None:
        options = [ALL_TYPES, *sorted(self._type_counts.by_type)]
        if list(self.type_filter.options) != options:
            current = self.type_filter.value
            self.type_filter.options = options
            self.type_filter.value = current if current in options else ALL_TYPES

    def _update_picker(self) -> None:
        # Any: pandas types an itertuples() field only as "some scalar"; event_id is never missing.
        rows: Iterable[Any] = self.frame.itertuples()
        options = [(_event_label(row), int(row.event_id)) for row in rows]
        current = self.event_picker.value
        values = [value for _, value in options]
        self._filling_picker = True
        try:
            self.event_picker.options = options
            self.event_picker.value = current if current in values else (values[0] if values else None)
        finally:
            self._filling_picker = False
        self._show_detail()

    def _show_detail(self) -> None:
        event_id = self.event_picker.value
        record = self.event_log.get(event_id) if event_id is not None else None
        if record is None:
            self.detail.value = "<i>No event selected.</i>"
            return
        envelope = {
            "event_id": record["event_id"],
            "type": record["type"],
            "received_at": record["received_at"],
            "delivery_count": record["delivery_count"],
            "sender": record["remote_addr"],
            "payload": record["payload"],
        }
        pretty = html.escape(json.dumps(envelope, indent=2, ensure_ascii=False))
        self.detail.value = f"<pre style='max-height:24em;overflow:auto'>{pretty}</pre>"

    # -- the timeline ------------------------------------------------------------------------

    def _timeline_shown(self) -> bool:
        return bool(self.tabs.selected_index == TIMELINE_TAB)

    def _timeline_opened(self) -> None:
        if self._timeline_shown():
            self._update_timeline()

    def _update_timeline(self) -> None:
        """Draw the timeline now if the log changed since it was last drawn (whether due or not)."""
        with self._lock:
            version = self.event_log.version()
            if version != self._plotted_version:
                self._draw_timeline(version)

    def _draw_timeline(self, version: tuple[Any, ...]) -> None:
        with self._lock:
            started = self._clock()
            self.timeline.value = _timeline_png(self.event_log)
            self.timeline.layout.display = None
            self._timeline_note.value = ""
            self._plotted_version, self._plotted_at = version, self._clock()
            self._timeline_seconds = self._plotted_at - started

    def _timeline_due(self) -> bool:
        """True once ``timeline_interval`` passed since the last drawing (or twice its cost, if longer)."""
        return self._clock() - self._plotted_at >= max(self.timeline_interval, 2 * self._timeline_seconds)

    # -- live updates ------------------------------------------------------------------------

    def _watch(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="impilo-log-view", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self._next_wait()):
            if not self.live.value:
                return
            try:
                self._poll_once()
            except Exception:  # the log was closed under us: stop watching rather than spin
                return

    def _next_wait(self) -> float:
        """Seconds until the next check: ``refresh_interval``, or twice the last check (reading
        the version, and refreshing if it changed) if longer.

        A check costs about the same whatever the log's size, so only a slow disk or a busy
        kernel stretches the wait. Drawing the timeline is not part of it: it has its own pace.
        """
        return max(self.refresh_interval, 2 * self._refresh_seconds)

    def _poll_once(self) -> bool:
        """One check of the live watch; True if it refreshed.

        Refreshes when the log changed, and also when only the shown timeline lags behind and is
        due, so a last event is drawn even if no later one comes to prompt it.
        """
        started = self._clock()
        version = self.event_log.version()
        lagging = self._timeline_shown() and version != self._plotted_version and self._timeline_due()
        if version == self._seen_version and not lagging:
            self._refresh_seconds = self._clock() - started
            return False
        self._refresh(version, started=started)
        return True

    def close(self) -> None:
        """Stop watching the log and close the widget."""
        # getattr: ipywidgets calls close() from __del__, even for an __init__ that raised.
        if getattr(self, "_stop", None) is not None:
            self._stop.set()
        thread = getattr(self, "_thread", None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.refresh_interval + 1)
        super().close()


def _check_settings(refresh_interval: float, timeline_interval: float, max_rows: int, search_rows: int) -> None:
    """Refuse numbers a view cannot work with, naming the argument and what it takes."""
    if not _is_seconds(refresh_interval) or refresh_interval <= 0:
        raise ConfigurationError(
            f"WebhookLogView(refresh_interval=...) must be a positive number of seconds, got {refresh_interval!r}."
        )
    if not _is_seconds(timeline_interval) or timeline_interval < 0:
        raise ConfigurationError(
            f"WebhookLogView(timeline_interval=...) must be a number of seconds >= 0, got {timeline_interval!r}."
        )
    for name, count in (("max_rows", max_rows), ("search_rows", search_rows)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigurationError(f"WebhookLogView({name}=...) must be a whole number >= 1, got {count!r}.")


def _is_seconds(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _matching(frame: pd.DataFrame, text: str) -> pd.DataFrame:
    """The rows of ``frame`` with ``text`` in any column (case-insensitive), in their order."""
    if not text or frame.empty:
        return frame
    hits = frame.astype(str).apply(lambda col: col.str.contains(text, case=False, regex=False)).any(axis=1)
    matching: pd.DataFrame = frame[hits]
    return matching


def _event_label(row: Any) -> str:
    when = row.received_at.strftime("%H:%M:%S")
    resource = f" · id {row.resource_id}" if pd.notna(row.resource_id) else ""
    repeats = f" · ×{row.delivery_count}" if row.delivery_count > 1 else ""
    return f"{when} · {row.type}{resource}{repeats} · event {row.event_id}"


def _counts_html(counts: _TypeCounts, shown: int, searched: int | None) -> str:
    """The total, how many rows are shown (and how far a search looked), a badge per type."""
    if counts.total == 0:
        return "<i>No events yet. Deliveries appear here as they arrive.</i>"
    badge = "<span style='background:#eef;border-radius:4px;padding:1px 6px;margin-right:4px'>{}: <b>{:,}</b></span>"
    badges = " ".join(badge.format(html.escape(str(t)), n) for t, n in counts.by_type.items())
    total = f"{counts.total:,} event{'s' * (counts.total != 1)}"
    looked = f"; the search looks at the newest {searched:,}" if searched is not None else ""
    return f"<div>{total} ({shown} shown{looked}) {badges}</div>"


def _table_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<i>Nothing matches.</i>"
    shown = frame.copy()
    shown["received_at"] = shown["received_at"].dt.strftime("%Y-%m-%d %H:%M:%S")
    return shown.to_html(index=False, na_rep="", max_cols=12, classes="impilo-log", border=0, escape=True)


def _timeline_png(log: EventLog) -> bytes:
    """The log's timeline as a PNG; ``EventLog.timeline()`` picks the bucket width (at most ~150 bars)."""
    # A bare Figure (not pyplot), so nothing is drawn into the notebook as a side effect.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3), dpi=90, layout="tight")
    log.plot_timeline(ax=figure.subplots())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
