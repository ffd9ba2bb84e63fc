"""WebhookLogView: watch an EventLog fill up, filter it, and open any event.

Newest first; filter by type and by free text (matched in any column, payload included);
per-type counts; a timeline of events per minute by type; the selected event's JSON. While
``live`` is on, a background thread re-reads the log when it changes (checked every
``refresh_interval`` seconds). The view shares the kernel with any receiver running in it, so
it backs off on big logs: it waits at least twice as long as its last refresh took, and
redraws the timeline at most every ``TIMELINE_MIN_INTERVAL`` seconds.

The timeline (matplotlib, by far the costliest part, and a slow import in a fresh kernel) is
drawn only while its tab is shown, and brought up to date when the tab is opened; a report
snapshot draws it too. Building the view, and refreshing it while the timeline is hidden,
never touches matplotlib.
"""

from __future__ import annotations

import html
import io
import json
import threading
import time
from collections.abc import Iterable
from typing import Any

import ipywidgets as w
import pandas as pd

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

#: Position of the Timeline tab in ``view.tabs``.
TIMELINE_TAB = 2


class WebhookLogView(Snapshot, w.VBox):  # type: ignore[misc]  # ipywidgets has no types: VBox is Any
    """A live view of ``log`` (kept as ``view.event_log``).

    ``view.refresh()`` re-reads it now; ``view.close()`` stops watching.
    """

    def __init__(
        self,
        log: EventLog,
        *,
        live: bool = True,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        timeline_interval: float = TIMELINE_MIN_INTERVAL,
        max_rows: int = DEFAULT_MAX_ROWS,
    ) -> None:
        if not isinstance(log, EventLog):
            raise TypeError(f"WebhookLogView needs an impilo_nb.EventLog, got {type(log).__name__}.")
        self._stop = threading.Event()
        self.event_log = log  # not `.log`: every widget already has a `log` (its logger)
        self.max_rows = max_rows
        self.refresh_interval = refresh_interval
        self.timeline_interval = timeline_interval
        self.frame = pd.DataFrame()  # what the table shows, after the filters

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
        self.event_picker.observe(lambda _: self._show_detail(), names="value")
        self.refresh_button.on_click(lambda _: self.refresh(force_plot=True))
        self.live.observe(lambda change: self._watch() if change["new"] else None, names="value")

        controls = w.HBox([self.type_filter, self.search, self.live, self.refresh_button])
        panes = [w.VBox([self.table]), w.VBox([self.event_picker, self.detail]), w.VBox([self._timeline_note, self.timeline])]
        self.tabs = w.Tab(children=panes, titles=("Events", "Detail", "Timeline"))
        super().__init__([controls, self.counts, self.tabs])

        self._clock = time.monotonic  # tests swap in a fake clock to check the timing rules
        self._seen_version: tuple[Any, ...] | None = None
        self._plotted_version: tuple[Any, ...] | None = None
        self._plotted_at = 0.0
        self._refresh_seconds = 0.0
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
        """Re-read the log and redraw counts, table and event list.

        The timeline is redrawn only while its tab is shown, when the log changed and a redraw
        is due (``timeline_interval``), or at once with ``force_plot`` (the Refresh button).
        """
        started = self._clock()
        with self._lock:
            version = self.event_log.version()
            full = self.event_log.frame()
            self._update_type_options(full)
            self.frame = _filtered(full, self.type_filter.value, self.search.value.strip())
            self.counts.value = _counts_html(full, len(self.frame))
            self.table.value = _table_html(self.frame.head(self.max_rows))
            self._update_picker()
            if self._timeline_shown() and (force_plot or (version != self._plotted_version and self._timeline_due())):
                self._draw_timeline(version)
            self._seen_version = version
        self._refresh_seconds = self._clock() - started

    def _update_type_options(self, frame: pd.DataFrame) -> None:
        types = sorted(frame["type"].dropna().unique()) if not frame.empty else []
        options = [ALL_TYPES, *types]
        if list(self.type_filter.options) != options:
            current = self.type_filter.value
            self.type_filter.options = options
            self.type_filter.value = current if current in options else ALL_TYPES

    def _update_picker(self) -> None:
        # Any: pandas types an itertuples() field only as "some scalar"; event_id is never missing.
        rows: Iterable[Any] = self.frame.head(self.max_rows).itertuples()
        options = [(_event_label(row), int(row.event_id)) for row in rows]
        current = self.event_picker.value
        self.event_picker.options = options
        values = [value for _, value in options]
        self.event_picker.value = current if current in values else (values[0] if values else None)
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
            self.timeline.value = _timeline_png(self.event_log)
            self.timeline.layout.display = None
            self._timeline_note.value = ""
            self._plotted_version, self._plotted_at = version, self._clock()

    def _timeline_due(self) -> bool:
        return self._clock() - self._plotted_at >= self.timeline_interval

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
        """Seconds until the next check: ``refresh_interval``, or twice the last refresh if longer."""
        return max(self.refresh_interval, 2 * self._refresh_seconds)

    def _poll_once(self) -> bool:
        """One check of the live watch; True if it refreshed.

        Refreshes when the log changed, and also when only the shown timeline lags behind and is
        due, so a last event is drawn even if no later one comes to prompt it.
        """
        version = self.event_log.version()
        lagging = self._timeline_shown() and version != self._plotted_version and self._timeline_due()
        if version == self._seen_version and not lagging:
            return False
        self.refresh()
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


def _filtered(full: pd.DataFrame, event_type: str, text: str) -> pd.DataFrame:
    """The events of ``event_type`` (or all) with ``text`` in any column, newest first."""
    frame = full
    if event_type != ALL_TYPES:
        frame = frame[frame["type"] == event_type]
    if text and not frame.empty:
        hits = frame.astype(str).apply(lambda col: col.str.contains(text, case=False, regex=False)).any(axis=1)
        frame = frame[hits]
    return frame.iloc[::-1].reset_index(drop=True)


def _event_label(row: Any) -> str:
    when = row.received_at.strftime("%H:%M:%S")
    resource = f" · id {row.resource_id}" if pd.notna(row.resource_id) else ""
    repeats = f" · ×{row.delivery_count}" if row.delivery_count > 1 else ""
    return f"{when} · {row.type}{resource}{repeats} · event {row.event_id}"


def _counts_html(full: pd.DataFrame, shown: int) -> str:
    if full.empty:
        return "<i>No events yet. Deliveries appear here as they arrive.</i>"
    counts = full["type"].value_counts()
    badge = "<span style='background:#eef;border-radius:4px;padding:1px 6px;margin-right:4px'>{}: <b>{}</b></span>"
    badges = " ".join(badge.format(html.escape(str(t)), n) for t, n in counts.items())
    total = f"{len(full)} event{'s' * (len(full) != 1)}"
    return f"<div>{total} ({shown} shown) {badges}</div>"


def _table_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<i>Nothing matches.</i>"
    shown = frame.copy()
    shown["received_at"] = shown["received_at"].dt.strftime("%Y-%m-%d %H:%M:%S")
    return shown.to_html(index=False, na_rep="", max_cols=12, classes="impilo-log", border=0, escape=True)


def _timeline_png(log: EventLog) -> bytes:
    # A bare Figure (not pyplot), so nothing is drawn into the notebook as a side effect.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3), dpi=90, layout="tight")
    log.plot_timeline(ax=figure.subplots())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
