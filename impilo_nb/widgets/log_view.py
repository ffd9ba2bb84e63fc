"""WebhookLogView: watch an EventLog fill up, filter it, and open any event.

The events are shown on a data grid (``itables.widget.ITable``: DataTables in the browser,
bundled, so it works offline and in Voila; docs/log-view.md says why): newest first, one line
per event, sortable headers, a filter per column, a horizontal scroll rather than a clipped
edge. Its columns are ``DEFAULT_COLUMNS`` (time, event id, type, patient, deliveries, names,
email); the Columns panel adds or removes any column of the log. A missing value is an empty
cell everywhere in the grid (``MISSING``). Clicking a row shows that event's JSON (envelope
and payload) below the grid. Above it: a type filter and a text search (the search looks
through the newest ``search_rows`` events of the log, not only those on the grid), per-type
counts, Live and Refresh; a Timeline tab draws events over time by type.

While ``live`` is on, a background thread checks ``log.version()`` every
``refresh_interval`` seconds and refreshes only when it changed. A refresh reads what is
new, not the log: the grid holds a window of the newest ``max_rows`` events (``_Window``),
and a refresh reads only the events that arrived since the last one
(``log.frame(after_seq=...)``), puts them on top and drops the oldest; the per-type counts
are brought up to date the same way (``_TypeCounts``). So a refresh after one new event costs
the same at ten thousand events as at a million. What it sends to the browser is the window
(every row, so the grid can sort and filter it without the kernel), which is why
``max_rows`` is 1,000 by default: docs/log-view.md has what 100,000 costs. The view shares
the kernel with any receiver running in it, so it backs off if a refresh turns out slow: it
waits at least twice as long as its last refresh took.

The timeline (matplotlib, the costliest part, and a slow import in a fresh kernel) is drawn
only while its tab is shown, and brought up to date when the tab is opened; a report snapshot
draws it too. Building the view, and refreshing it while the timeline is hidden, never asks
the log for its timeline and never touches matplotlib. While shown, it is redrawn at most every
``timeline_interval`` seconds, or twice as long as its last drawing took if that is longer.
"""

from __future__ import annotations

import html
import io
import itertools
import json
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import ipywidgets as w
import pandas as pd
from itables.widget import ITable

from ..errors import ConfigurationError
from ..eventlog import EventLog
from ._snapshot import Snapshot

__all__ = ["DEFAULT_COLUMNS", "WebhookLogView"]

ALL_TYPES = "(all types)"

#: Seconds between checks for new events while live.
DEFAULT_REFRESH_INTERVAL = 0.5

#: Seconds between timeline redraws while live (a redraw is the costliest part of a refresh).
TIMELINE_MIN_INTERVAL = 5.0

#: Newest events (of the chosen type) on the grid. Every one of them is sent to the browser on
#: each change, so the grid sorts and filters without the kernel: 1,000 rows are ~0.14 MB; a
#: live view of 100,000 works (``max_rows=100_000``) but sends ~14 MB a change (docs/log-view.md).
DEFAULT_MAX_ROWS = 1_000

#: Newest events (of the chosen type) a text search looks through (at least ``max_rows``). A
#: search reads that many rows and matches in pandas; to search a whole big log, filter
#: ``log.frame()`` instead.
DEFAULT_SEARCH_ROWS = 5_000

#: New events a refresh reads (their type only) to bring the per-type counts up to date. When
#: more arrived since the last look, one count by type in the database is cheaper.
COUNT_READ_LIMIT = 10_000

#: The grid's columns unless ``columns=`` says otherwise: the log's own, then who the event is about.
DEFAULT_COLUMNS = (
    "received_at",
    "event_id",
    "type",
    "resource_id",
    "delivery_count",
    "payload.firstName",
    "payload.lastName",
    "payload.email",
)

#: Headers for the log's usual columns; any other column is headed by its name in ``log.frame()``.
COLUMN_TITLES = {
    "received_at": "time (UTC)",
    "event_id": "event id",
    "type": "type",
    "resource_id": "patient",
    "delivery_count": "deliveries",
    "payload.firstName": "first name",
    "payload.lastName": "last name",
    "payload.email": "email",
}

#: How a missing value (None, NaN, <NA>, NaT) looks on the grid and in a snapshot: an empty cell,
#: the one rendering everywhere. Empty rather than a dash, because DataTables sorts and types an
#: empty cell with the numbers of its column (a dash would turn an id column into text).
MISSING = ""

#: ``received_at`` on the grid: to the second, on one line.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

#: Rows per page of the grid (the page length menu offers more).
PAGE_LENGTH = 10

#: Newest rows a report snapshot shows (a static page has no paging).
SNAPSHOT_ROWS = 100

#: Position of the Timeline tab in ``view.tabs``.
TIMELINE_TAB = 1

#: One header search per column under the titles (DataTables' ColumnControl), so a filter never
#: hides a title; sorting stays on a click on the title.
_COLUMN_CONTROL = [{"target": 0, "content": ["order"]}, {"target": 1, "content": ["search"]}]

#: Page styles the grid needs beyond DataTables' own: one line per cell, the header filters
#: as wide as their column, and the detail's JSON scrollable.
_STYLE = """<style>
.impilo-log-grid table.dataTable th, .impilo-log-grid table.dataTable td { white-space: nowrap; }
.impilo-log-grid .dtcc-search input { min-width: 4em; }
.impilo-log-detail pre { max-height: 20em; overflow: auto; margin: 0; }
.impilo-log-snapshot { overflow-x: auto; max-width: 100%; }
.impilo-log-snapshot table { border-collapse: collapse; }
.impilo-log-snapshot th, .impilo-log-snapshot td { white-space: nowrap; padding: 2px 8px; text-align: left; }
</style>"""

_grid_ids = itertools.count(1)


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


class _Window:
    """The newest events of one type (or all), newest first, kept up to date by reading only new events.

    ``rows`` is the window (``log.frame()`` columns), ``seq`` the arrival number of the newest
    event read, ``capacity`` how many rows it holds. ``update`` reads the events that arrived
    after ``seq`` (``frame(after_seq=...)``), of every type so it also learns when each was
    first received, puts those of its type on top and drops the oldest. It reads the window
    again in full (``capacity`` rows: still not the log) only when that is the only way to be
    right: the type or the capacity changed; more events arrived than it holds; or the
    version changed with no new event, or its newest delivery (``max last_received_at``) is
    later than any first delivery read: an event was redelivered (its ``delivery_count``
    changed) or removed, which no new row shows.
    """

    def __init__(self) -> None:
        self.rows = pd.DataFrame()
        self.seq = 0
        self.capacity = 0
        self.event_type: str | None = None
        self.version: tuple[Any, ...] | None = None
        self.latest_first: pd.Timestamp | None = None  # the latest first delivery accounted for

    def update(self, log: EventLog, version: tuple[Any, ...], event_type: str | None, rows: int) -> pd.DataFrame:
        """The newest ``rows`` events of ``event_type`` as of ``version`` (``log.version()``) or later."""
        if self.version is None or event_type != self.event_type or rows > self.capacity:
            self._read_all(log, version, event_type, rows)
        elif version != self.version:
            self._read_new(log, version)
        return self.rows.head(rows)

    def _read_all(self, log: EventLog, version: tuple[Any, ...], event_type: str | None, rows: int) -> None:
        frame = log.frame(type=event_type, limit=rows)
        self.rows = frame.iloc[::-1].reset_index(drop=True)
        self.seq = max(frame.attrs.get("last_seq") or 0, version[1] or 0)
        self.capacity, self.event_type, self.version = rows, event_type, version
        self.latest_first = _timestamp(version[2])

    def _read_new(self, log: EventLog, version: tuple[Any, ...]) -> None:
        newest, seen = version[1] or 0, (self.version or (0, 0))[1] or 0
        if newest == seen or newest - self.seq > self.capacity:  # no new event (a redelivery or removal), or too many
            self._read_all(log, version, self.event_type, self.capacity)
            return
        if newest > self.seq:  # else an earlier read already went past this version's events
            self._add(log.frame(after_seq=self.seq))
        delivered = _timestamp(version[2])
        if delivered is not None and (self.latest_first is None or delivered > self.latest_first):
            self._read_all(log, version, self.event_type, self.capacity)
            return
        self.version = version

    def _add(self, new: pd.DataFrame) -> None:
        self.seq = max(self.seq, new.attrs.get("last_seq") or 0)
        if new.empty:
            return
        first = new["received_at"].max()
        self.latest_first = first if self.latest_first is None else max(self.latest_first, first)
        if self.event_type is not None:
            new = new[new["type"] == self.event_type]
        on_top = new.iloc[::-1].reset_index(drop=True)
        if on_top.empty:
            return
        # concat aligns the payload columns; an empty frame (a log that had no event) has none to align.
        self.rows = (on_top if self.rows.empty else pd.concat([on_top, self.rows], ignore_index=True)).head(self.capacity)


def _timestamp(value: Any) -> pd.Timestamp | None:
    """A time from ``log.version()`` (ISO text, or a datetime from PostgreSQL), in UTC; None stays None."""
    if value is None:
        return None
    moment = pd.Timestamp(value)
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


class WebhookLogView(Snapshot, w.VBox):  # type: ignore[misc]  # ipywidgets has no types: VBox is Any
    """A live view of ``log`` (kept as ``view.event_log``) on a data grid.

    ``view.frame`` is what the grid shows (every column, newest first, after the type filter
    and search); ``view.grid`` the grid, ``view.columns`` its columns (``view.column_boxes``
    switch them), ``view.detail`` the JSON of the clicked row. ``view.refresh()`` re-reads
    what changed now; ``view.close()`` stops watching.

    Args:
        log: the ``impilo_nb.EventLog`` to show.
        live: watch the log and refresh by itself (the Live checkbox).
        refresh_interval: seconds between checks for new events while live.
        timeline_interval: seconds between timeline redraws while live.
        max_rows: newest events on the grid (``DEFAULT_MAX_ROWS``; each change sends them all).
        search_rows: newest events a text search looks through (at least ``max_rows``).
        columns: the grid's first columns, names as in ``log.frame()`` (``DEFAULT_COLUMNS``).

    Raises:
        TypeError: ``log`` is not an ``impilo_nb.EventLog``.
        ConfigurationError: a setting is out of range (the message names it and what it takes).
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
        columns: Sequence[str] = DEFAULT_COLUMNS,
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
        self._columns = _checked_columns(columns)
        self.frame = pd.DataFrame()  # what the grid shows, after the filters, newest first

        self._make_widgets(live=live)
        self._connect_widgets()

        controls = w.HBox(
            [self.type_filter, self.search, self.live, self.refresh_button],
            layout=w.Layout(flex_flow="row wrap", align_items="center"),
        )
        events = w.VBox([self.columns_panel, self.grid, self.detail])
        self.tabs = w.Tab(children=[events, w.VBox([self._timeline_note, self.timeline])], titles=("Events", "Timeline"))
        super().__init__([w.HTML(_STYLE), controls, self.counts, self.tabs])

        self._clock = time.monotonic  # tests swap in a fake clock to check the timing rules
        self._type_counts = _TypeCounts()
        self._window = _Window()
        self._grid_shown: pd.DataFrame | None = None  # the cells last sent to the browser
        self._shown_key: tuple[Any, ...] | None = None  # (version, type, search text, columns) on screen
        self._seen_version: tuple[Any, ...] | None = None
        self._plotted_version: tuple[Any, ...] | None = None
        self._plotted_at = self._refresh_seconds = self._timeline_seconds = 0.0  # clock readings and durations
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self.tabs.observe(lambda _: self._timeline_opened(), names="selected_index")
        self.refresh()
        if live:
            self._watch()

    def _make_widgets(self, *, live: bool) -> None:
        """The controls, the grid, the detail pane and the timeline (not yet laid out)."""
        self.type_filter = w.Dropdown(options=[ALL_TYPES], value=ALL_TYPES, description="Type", layout=w.Layout(width="18em"))
        self.search = w.Text(placeholder="a name, an email, an id...", description="Search", layout=w.Layout(width="24em"))
        self.live = w.Checkbox(value=live, description="Live", indent=False, layout=w.Layout(width="5em"))
        self.refresh_button = w.Button(description="Refresh", icon="refresh", layout=w.Layout(width="8em"))
        self.counts = w.HTML()
        self.column_boxes: dict[str, w.Checkbox] = {}
        self._column_list = w.GridBox(layout=w.Layout(grid_template_columns="repeat(auto-fill, minmax(16em, 1fr))"))
        self.columns_panel = w.Accordion(children=[self._column_list], titles=("Columns",), selected_index=None)
        self._grid_options = _grid_options(f"impilo-log-{next(_grid_ids)}")
        self.grid = ITable(_grid_frame(pd.DataFrame(), self._columns), **self._grid_options)
        self.grid.add_class("impilo-log-grid")
        self.detail = w.HTML("<i>Click a row to see its JSON.</i>")
        self.detail.add_class("impilo-log-detail")
        # Hidden until drawn: an empty Image shows as a broken picture in the browser.
        self.timeline = w.Image(format="png", layout=w.Layout(max_width="100%", display="none"))
        self._timeline_note = w.HTML("<i>Drawing the timeline…</i>")

    def _connect_widgets(self) -> None:
        """What each control does when used."""
        self._filling_types = False  # while True, the type filter's changes are the view's own (new options)
        self.type_filter.observe(lambda _: None if self._filling_types else self.refresh(), names="value")
        self.search.observe(lambda _: self.refresh(), names="value")
        self._filling_grid = False  # while True, selection changes are the view's own
        self._selected: int | None = None  # the event id of the clicked row
        self.grid.observe(lambda _: None if self._filling_grid else self._row_clicked(), names="selected_rows")
        self.refresh_button.on_click(lambda _: self.refresh(force_plot=True))
        self.live.observe(lambda change: self._watch() if change["new"] else None, names="value")

    def __repr__(self) -> str:
        return f"WebhookLogView({str(self.event_log.path)!r})"

    @property
    def columns(self) -> tuple[str, ...]:
        """The grid's columns, names as in ``log.frame()``, in their order on the grid."""
        return tuple(self._columns)

    def snapshot_html(self) -> str:
        """Counts, the newest ``SNAPSHOT_ROWS`` rows in the grid's columns, and the timeline (for reports).

        A report has no one to open the Timeline tab, so the timeline is drawn here if stale.
        """
        import base64

        self._update_timeline()
        image = base64.b64encode(self.timeline.value).decode() if self.timeline.value else ""
        timeline = f"<img alt='timeline' src='data:image/png;base64,{image}'>" if image else ""
        return f"<b>Webhook log</b> (live in JupyterLab){_STYLE}{self.counts.value}{self._snapshot_table()}{timeline}"

    def _snapshot_table(self) -> str:
        if self.frame.empty:
            return "<i>Nothing matches.</i>"
        cells = _grid_frame(self.frame.head(SNAPSHOT_ROWS), self._columns)
        more = f"<div>The newest {SNAPSHOT_ROWS:,} of {len(self.frame):,}.</div>" if len(self.frame) > SNAPSHOT_ROWS else ""
        table = cells.to_html(index=False, border=0, escape=True, na_rep=MISSING, max_cols=None, max_rows=None)
        return f"<div class='impilo-log-snapshot'>{table}</div>{more}"

    # -- reading the log ---------------------------------------------------------------------

    def refresh(self, *, force_plot: bool = False) -> None:
        """Bring counts, grid and detail up to date with the log and the filters.

        Reads nothing more when neither the log (``log.version()``) nor the filters changed.
        The timeline is redrawn only while its tab is shown, when the log changed and a redraw
        is due (``timeline_interval``), or at once with ``force_plot`` (the Refresh button).
        """
        started = self._clock()
        self._refresh(self.event_log.version(), started=started, force_plot=force_plot)

    def _refresh(self, version: tuple[Any, ...], *, started: float, force_plot: bool = False) -> None:
        """``refresh()`` for a ``version`` of the log read at ``started`` (the live watch has one already)."""
        with self._lock:
            key = (version, self.type_filter.value, self.search.value.strip(), tuple(self._columns))
            if key != self._shown_key:
                self._show(version)
                # The type shown may have left the log (and the filter's options): show all next time.
                self._shown_key = key if self.type_filter.value == key[1] else None
            self._seen_version = version
        self._refresh_seconds = self._clock() - started
        if self._timeline_shown() and (force_plot or (version != self._plotted_version and self._timeline_due())):
            self._draw_timeline(version)

    def _show(self, version: tuple[Any, ...]) -> None:
        """Read the new events, and redraw all but the timeline."""
        event_type = None if self.type_filter.value == ALL_TYPES else str(self.type_filter.value)
        text = self.search.value.strip()
        rows = max(self.search_rows, self.max_rows) if text else self.max_rows
        window = self._window.update(self.event_log, version, event_type, rows)
        self.frame = _matching(window, text).head(self.max_rows).reset_index(drop=True)
        self._type_counts.update(self.event_log, version)
        self._update_type_options()
        searched = len(window) if text and len(window) >= rows else None
        self.counts.value = _counts_html(self._type_counts, len(self.frame), searched)
        self._update_column_boxes()
        self._update_grid()
        self._show_detail()

    def _update_type_options(self) -> None:
        options = [ALL_TYPES, *sorted(self._type_counts.by_type)]
        if list(self.type_filter.options) == options:
            return
        current = self.type_filter.value
        self._filling_types = True  # new options reset the value for a moment: no refresh for that
        try:
            self.type_filter.options = options
            self.type_filter.value = current if current in options else ALL_TYPES
        finally:
            self._filling_types = False

    # -- the grid, its columns, the clicked row ----------------------------------------------

    def _update_grid(self) -> None:
        """Send the rows to the browser if their cells changed, the clicked event still selected."""
        cells = _grid_frame(self.frame, self._columns)
        selected = self._row_of(self._selected)
        if self._grid_shown is not None and cells.equals(self._grid_shown) and selected == list(self.grid.selected_rows):
            return
        self._filling_grid = True
        try:
            if self._grid_shown is None or list(cells.columns) != list(self._grid_shown.columns):
                # Headers and options through itables (the options again: update() puts its defaults
                # back for any left out), with no rows: its per-cell formatting takes ~10 s at 100,000 rows.
                self.grid.update(cells.head(0), selected_rows=[], **self._grid_options)
            # The rows as itables would send text cells (escaped, DataTables renders cells as HTML), in
            # one vectorised pass: ~20x quicker. Relies on itables' _dt_args (tests/test_log_view.py reads it).
            self.grid._dt_args = {**self.grid._dt_args, "data_json": _rows_json(cells)}
            self.grid.selected_rows = selected
        finally:
            self._filling_grid = False
        self._grid_shown = cells

    def _row_of(self, event_id: int | None) -> list[int]:
        if event_id is None or self.frame.empty:
            return []
        rows = (self.frame["event_id"] == event_id).to_numpy().nonzero()[0]
        return [int(rows[0])] if len(rows) else []

    def _row_clicked(self) -> None:
        rows = list(self.grid.selected_rows)
        self._selected = int(self.frame["event_id"].iloc[rows[0]]) if rows and rows[0] < len(self.frame) else None
        self._show_detail()

    def _show_detail(self) -> None:
        record = self.event_log.get(self._selected) if self._selected is not None else None
        if record is None:
            self.detail.value = "<i>Click a row to see its JSON.</i>"
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
        self.detail.value = f"<b>Event {record['event_id']}</b><pre>{pretty}</pre>"

    def _update_column_boxes(self) -> None:
        """A checkbox per column the log has shown so far (new payload fields appear as they arrive)."""
        names = [*self._columns, *(str(name) for name in self.frame.columns)]
        new = [name for name in dict.fromkeys(names) if name not in self.column_boxes]
        if not new:
            return
        for name in new:
            box = w.Checkbox(value=name in self._columns, description=name, indent=False, layout=w.Layout(width="auto"))
            box.observe(lambda change, name=name: self._pick_column(name, change["new"]), names="value")
            self.column_boxes[name] = box
        self._column_list.children = [self.column_boxes[name] for name in sorted(self.column_boxes, key=_column_order)]

    def _pick_column(self, name: str, shown: bool) -> None:
        with self._lock:
            if shown and name not in self._columns:
                self._columns.append(name)
            elif not shown and name in self._columns and len(self._columns) > 1:
                self._columns.remove(name)
            elif not shown and name in self._columns:  # the grid needs a column: keep the last one
                self.column_boxes[name].value = True
                return
            self._update_grid()
            self._shown_key = None if self._shown_key is None else (*self._shown_key[:3], tuple(self._columns))

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


def _checked_columns(columns: Sequence[str]) -> list[str]:
    """``columns`` as a list of distinct names, or ``ConfigurationError`` saying what is wrong with it."""
    if isinstance(columns, str) or not isinstance(columns, Sequence) or not columns:
        raise ConfigurationError(
            f"WebhookLogView(columns=...) must be a non-empty list of column names as in log.frame(), e.g."
            f" ['received_at', 'type', 'payload.email']; got {columns!r:.80}."
        )
    bad = [name for name in columns if not isinstance(name, str) or not name.strip()]
    if bad:
        raise ConfigurationError(f"WebhookLogView(columns=...) takes column names (text); {bad[0]!r:.80} is not one.")
    return list(dict.fromkeys(columns))


def _is_seconds(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _matching(frame: pd.DataFrame, text: str) -> pd.DataFrame:
    """The rows of ``frame`` with ``text`` in any column (case-insensitive), in their order."""
    if not text or frame.empty:
        return frame
    hits = frame.astype(str).apply(lambda col: col.str.contains(text, case=False, regex=False)).any(axis=1)
    matching: pd.DataFrame = frame[hits]
    return matching


def _column_order(name: str) -> tuple[int, str]:
    """The Columns panel's order: the usual columns first, as on the grid, then the rest by name."""
    usual = list(COLUMN_TITLES)
    return (usual.index(name), "") if name in usual else (len(usual), name)


def _grid_frame(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The cells of ``columns`` of ``frame`` as text, headed by ``COLUMN_TITLES``: times to the
    second, a missing value (or a column no event has yet) as ``MISSING``, everything else as
    pandas writes it. Text, so that ids beyond 2**53 reach the browser exact."""
    cells = {COLUMN_TITLES.get(name, name): _cells(frame.get(name), len(frame)) for name in columns}
    return pd.DataFrame(cells, index=pd.RangeIndex(len(frame)))


def _cells(column: pd.Series | None, rows: int) -> Any:
    if column is None:
        return [MISSING] * rows
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return column.dt.strftime(TIME_FORMAT).fillna(MISSING).to_numpy(dtype=object)
    return column.astype("string").fillna(MISSING).to_numpy(dtype=object)


def _rows_json(cells: pd.DataFrame) -> str:
    """``cells`` (text) as the JSON rows DataTables reads, ``&``, ``<`` and ``>`` escaped as itables does.

    Escaped in the JSON text itself, in three passes over one string: JSON writes those three
    characters only inside string values, so this escapes every cell and nothing else.
    """
    rows = list(zip(*(cells[name].to_numpy(dtype=object) for name in cells.columns), strict=True))
    text = json.dumps(rows, ensure_ascii=False)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _grid_options(table_id: str) -> dict[str, Any]:
    """How the grid looks and behaves (itables' options, most of them DataTables')."""
    return {
        "table_id": table_id,
        "classes": "display nowrap compact cell-border",
        "showIndex": False,
        "maxBytes": 0,  # never downsample: the window is already the newest rows, and all must be reachable
        "scrollX": True,  # a wide row scrolls inside the grid instead of being clipped at the output's edge
        "autoWidth": True,
        "deferRender": True,  # build only the rows of the page shown: a 100,000-row window stays quick
        "pageLength": PAGE_LENGTH,
        "lengthMenu": [PAGE_LENGTH, 25, 100, 500],
        "order": [],  # newest first, as given; a click on a header sorts
        "select": {"style": "single"},
        "columnControl": _COLUMN_CONTROL,
        "ordering": {"indicators": False, "handler": False},  # ColumnControl's "order" does both
        "layout": {"topStart": "info", "topEnd": None, "bottomStart": "pageLength", "bottomEnd": "paging"},
        "language": {
            "info": "_START_ to _END_ of _TOTAL_ events",
            "infoEmpty": "No events",
            "infoFiltered": "(filtered from _MAX_)",
        },
        # Keeps the order and the column filters when a refresh rebuilds the grid (sessionStorage).
        "stateSave": True,
        "stateDuration": -1,
    }


def _counts_html(counts: _TypeCounts, shown: int, searched: int | None) -> str:
    """The total, how many rows are shown (and how far a search looked), a badge per type."""
    if counts.total == 0:
        return "<i>No events yet. Deliveries appear here as they arrive.</i>"
    badge = "<span style='background:#eef;border-radius:4px;padding:1px 6px;margin-right:4px'>{}: <b>{:,}</b></span>"
    badges = " ".join(badge.format(html.escape(str(t)), n) for t, n in counts.by_type.items())
    total = f"{counts.total:,} event{'s' * (counts.total != 1)}"
    looked = f"; the search looks at the newest {searched:,}" if searched is not None else ""
    return f"<div>{total} ({shown:,} shown{looked}) {badges}</div>"


def _timeline_png(log: EventLog) -> bytes:
    """The log's timeline as a PNG; ``EventLog.timeline()`` picks the bucket width (at most ~150 bars)."""
    # A bare Figure (not pyplot), so nothing is drawn into the notebook as a side effect.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.4), dpi=96, layout="constrained")
    log.plot_timeline(ax=figure.subplots())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
