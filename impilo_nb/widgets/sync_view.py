"""SyncView: is the customer's system in step with Impilo? See it, repair it, re-send events.

A thin front on ``nb.sync`` and the event log: it shows the latest ``nb.sync.check`` report
(the verdict, the counts per status, the stale patients with each differing field, the
never-seen and unknown ones, the failed and pending deliveries) and offers three buttons:

- **Check again**: ``nb.sync.check(client, log, since=since)``.
- **Backfill**: ``nb.sync.backfill(client, log, report)``, then a new check, so the verdict
  shows the repair.
- **Replay selected**: ``log.replay(url, event_ids=...)`` to the handler URL typed in the view
  (loopback only, as ``log.replay`` enforces); shows the result frame.

Every decision (what is stale, what counts as failed, where a replay may go) is made by those
functions; the view only collects input and displays what they return. While one action runs,
the buttons are disabled; a failure is shown as one readable line, never a traceback.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import ipywidgets as w
import pandas as pd

from .. import sync
from ..client import ImpiloClient
from ..errors import APIConnectionError, APIStatusError, ImpiloError, ValidationError, redact, register_secret
from ..eventlog import EventLog
from ._snapshot import Snapshot

__all__ = ["SyncView"]

T = TypeVar("T")

#: Rows shown in each table and events offered for replay; the report itself holds them all.
DEFAULT_MAX_ROWS = 50

_COLORS = {True: "#1b5e20", False: "#b00020", None: "#555"}
_BADGE = "<span style='background:{};border-radius:4px;padding:1px 6px;margin-right:4px'>{}: <b>{}</b></span>"
_GOOD, _BAD = "#e6f4ea", "#fdecea"


class SyncView(Snapshot, w.VBox):  # type: ignore[misc]  # ipywidgets has no types: VBox is Any
    """Check, backfill and replay, for ``client`` (Impilo or a sandbox) and ``log`` (the receiver's).

    ``view.report`` is the last ``SyncReport`` (None until a check succeeds), ``view.replayed``
    the last replay's result frame. ``view.verdict``, ``view.counts``, ``view.stale``,
    ``view.missing``, ``view.deliveries``, ``view.replay_result`` and ``view.status`` are the
    HTML parts a person reads; ``view.check_button``, ``view.backfill_button``,
    ``view.replay_button``, ``view.handler_url`` and ``view.events`` what they use.

    Args:
        client: the ``ImpiloClient`` whose patients are the truth.
        log: the ``EventLog`` the receiver writes.
        since: passed to ``nb.sync.check``: compare only from then on.
        handler_url: pre-fills the replay target, e.g. ``http://127.0.0.1:8000/webhooks``.
        secret: sent as ``Impilo-Webhook-Secret`` with each replay, when the handler checks it;
            never shown.
        max_rows: rows per table, and events offered for replay (newest first).

    Raises:
        TypeError, ValueError: an argument of the wrong kind; the message says what to pass.
        ValidationError: ``since`` is not a moment in time (from ``nb.sync.check``).

    Anything that goes wrong later (Impilo unreachable, a refused key, a handler that is down)
    is shown in the view, in words, and the view stays usable.
    """

    def __init__(
        self,
        client: ImpiloClient,
        log: EventLog,
        *,
        since: Any = None,
        handler_url: str = "",
        secret: str | None = None,
        max_rows: int = DEFAULT_MAX_ROWS,
    ) -> None:
        _check_arguments(client, log, handler_url, secret, max_rows)
        register_secret(secret)
        self.client = client
        self.event_log = log  # not `.log`: every widget already has a `log` (its logger)
        self.since = since
        self.max_rows = max_rows
        self._secret = secret
        self.report: sync.SyncReport | None = None
        self.replayed: pd.DataFrame | None = None

        self.verdict = w.HTML()
        self.counts = w.HTML()
        self.stale = w.HTML()
        self.missing = w.HTML()
        self.deliveries = w.HTML()
        self.status = w.HTML()
        self.check_button = w.Button(description="Check again", icon="refresh", layout=w.Layout(width="10em"))
        self.backfill_button = w.Button(
            description="Backfill", icon="wrench", button_style="warning", layout=w.Layout(width="10em")
        )
        self.backfill_button.tooltip = "Record Impilo's current state for every stale or never-seen patient, then check again"
        self.check_button.on_click(lambda _: self.check())
        self.backfill_button.on_click(lambda _: self.backfill())

        self.handler_url = w.Text(
            value=handler_url,
            description="Handler URL",
            placeholder="http://127.0.0.1:8000/webhooks",
            layout=w.Layout(width="36em"),
        )
        self.events = w.SelectMultiple(options=[], rows=8, description="Events", layout=w.Layout(width="46em"))
        self.replay_button = w.Button(description="Replay selected", icon="repeat", layout=w.Layout(width="12em"))
        self.replay_button.on_click(lambda _: self.replay())
        self.replay_result = w.HTML()
        self._buttons = (self.check_button, self.backfill_button, self.replay_button)

        replay_pane = w.VBox([self.handler_url, self.events, self.replay_button, self.replay_result])
        panes = [w.VBox([self.stale]), w.VBox([self.missing]), w.VBox([self.deliveries]), replay_pane]
        self.tabs = w.Tab(children=panes, titles=("Stale", "Unmatched", "Deliveries", "Replay"))
        controls = w.HBox([self.check_button, self.backfill_button])
        super().__init__([self.verdict, self.counts, controls, self.status, self.tabs])
        self._check(raising=(ValidationError,))  # a bad `since` is the caller's to fix, now

    def __repr__(self) -> str:
        return f"SyncView({self.event_log!r})"

    def snapshot_html(self) -> str:
        """The verdict, counts and tables as they are now (for reports)."""
        parts = (self.verdict, self.counts, self.status, self.stale, self.missing, self.deliveries, self.replay_result)
        return "<b>Sync check</b> (interactive in JupyterLab)" + "".join(part.value for part in parts)

    # -- actions -----------------------------------------------------------------------------

    def check(self) -> sync.SyncReport | None:
        """Run ``nb.sync.check`` and show its report; None (with the reason shown) if it failed."""
        return self._check()

    def _check(self, *, raising: tuple[type[Exception], ...] = ()) -> sync.SyncReport | None:
        with self._busy():
            report = self._attempt("Checking…", self._new_report, raising=raising)
        if report is not None:
            self._say(f"Checked: {report.verdict}.", ok=None)
        return report

    def backfill(self) -> int | None:
        """Run ``nb.sync.backfill`` on the shown report, then check again; returns the events recorded."""
        with self._busy():
            added = self._attempt("Backfilling…", lambda: sync.backfill(self.client, self.event_log, self.report))
            report = self._attempt("Checking again…", self._new_report) if added is not None else None
        if added is not None and report is not None:
            noun = "event" if added == 1 else "events"
            self._say(f"Backfill recorded {added} {noun}. Now: {report.verdict}.", ok=report.in_sync)
        return added

    def _new_report(self) -> sync.SyncReport:
        report = sync.check(self.client, self.event_log, since=self.since)
        self._show(report)
        return report

    def replay(self) -> pd.DataFrame | None:
        """Send the selected events to the handler URL with ``log.replay``; returns its result frame."""
        url = self.handler_url.value.strip()
        if not url:
            self._say("Type the URL of your handler first, e.g. http://127.0.0.1:8000/webhooks.", ok=False)
            return None
        event_ids = list(self.events.value)
        if not event_ids:
            self._say("Select the events to replay in the list (Ctrl or Shift + click for several).", ok=False)
            return None
        with self._busy():
            result = self._attempt(
                f"Replaying {len(event_ids)} event{'s' * (len(event_ids) != 1)}…",
                lambda: self.event_log.replay(url, event_ids=event_ids, secret=self._secret),
            )
        if result is None:
            return None
        self.replayed = result
        self.replay_result.value = _frame_html(result, self.max_rows)
        failed = int(result["error"].notna().sum())
        outcome = f"; {failed} failed (see the table)." if failed else "."
        self._say(f"Replayed {len(result) - failed} of {len(result)} events to {url}{outcome}", ok=not failed)
        return result

    # -- display -----------------------------------------------------------------------------

    def _show(self, report: sync.SyncReport) -> None:
        self.report = report
        self.verdict.value = _verdict_html(report)
        self.counts.value = _counts_html(report)
        self.stale.value = _stale_html(report, self.max_rows)
        self.missing.value = _missing_html(report, self.max_rows)
        self.deliveries.value = _deliveries_html(report, self.max_rows)
        self._update_events()

    def _update_events(self) -> None:
        # Any: pandas types an itertuples() field only as "some scalar"; event_id is never missing.
        rows: Iterable[Any] = self.event_log.frame(limit=self.max_rows).iloc[::-1].itertuples()
        options = [(_event_label(row), int(row.event_id)) for row in rows]
        kept = tuple(value for value in self.events.value if value in {v for _, v in options})
        self.events.options = options
        self.events.value = kept

    @contextmanager
    def _busy(self) -> Iterator[None]:
        """The buttons disabled while an action runs, so a second click cannot start another."""
        for button in self._buttons:
            button.disabled = True
        try:
            yield
        finally:
            for button in self._buttons:
                button.disabled = False

    def _attempt(self, message: str, action: Callable[[], T], *, raising: tuple[type[Exception], ...] = ()) -> T | None:
        """``action()``, with ``message`` shown meanwhile; None, with a readable reason shown, if it fails.

        ``raising`` lists the errors to raise instead: a button has no caller to raise to, but
        the constructor does (wrong arguments).
        """
        self._say(message, ok=None)
        try:
            return action()
        except raising:
            raise
        except Exception as exc:  # shown in the widget: a button callback has no one to raise to
            self._say(_readable(exc), ok=False)
            return None

    def _say(self, message: str, *, ok: bool | None) -> None:
        text = html.escape(str(redact(message))).replace("\n", "<br>")
        self.status.value = f"<div style='color:{_COLORS[ok]}'>{text}</div>" if message else ""


def _check_arguments(client: Any, log: Any, handler_url: Any, secret: Any, max_rows: Any) -> None:
    if not isinstance(client, ImpiloClient):
        raise TypeError(f"SyncView needs an impilo_nb.ImpiloClient first (nb.connect()), got {type(client).__name__}.")
    if not isinstance(log, EventLog):
        raise TypeError(f"SyncView needs an impilo_nb.EventLog second (the receiver's log), got {type(log).__name__}.")
    if not isinstance(handler_url, str):
        raise TypeError(f"SyncView handler_url must be a URL string, got {type(handler_url).__name__}.")
    if secret is not None and not isinstance(secret, str):
        raise TypeError(f"SyncView secret must be a string or None, got {type(secret).__name__}.")
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ValueError(f"SyncView max_rows must be a whole number >= 1, got {max_rows!r}.")


def _readable(exc: Exception) -> str:
    """One or a few lines a person can act on; never a traceback, never a secret."""
    if isinstance(exc, APIStatusError):
        return f"The server refused it ({exc.status_code}): {exc.message}"
    if isinstance(exc, APIConnectionError):
        return f"No answer from the server: {exc.message}"
    if isinstance(exc, ImpiloError):
        return str(exc)
    return str(redact(f"{type(exc).__name__}: {exc}"))


# -- the report as HTML: only display; every judgement is the report's ------------------------


def _verdict_html(report: sync.SyncReport) -> str:
    color = _COLORS[report.in_sync]
    verdict = html.escape(report.verdict)
    return f"<h3 class='impilo-sync-verdict' style='color:{color};margin:4px 0'>Sync check: {verdict}</h3>"


def _counts_html(report: sync.SyncReport) -> str:
    fine = {sync.PATIENT_STATUSES[0], sync.DELIVERY_STATUSES[0]}
    badges: dict[str, list[str]] = {}
    summary: Any = report.summary  # a Series indexed by (table, status); pandas types its items loosely
    for (table, status), count in summary.items():
        if count or status in fine:  # zeros only where zero is news: nothing in sync, nothing received
            colour = _GOOD if status in fine else _BAD
            badges.setdefault(table, []).append(_BADGE.format(colour, html.escape(status), int(count)))
    if report.repaired:  # failed or pending, but what they carried is in the log by now
        badges.setdefault("deliveries", []).append(f"({report.repaired} of them repaired since)")
    return "".join(f"<div>{html.escape(table).capitalize()}: {' '.join(shown)}</div>" for table, shown in badges.items())


def _stale_html(report: sync.SyncReport, max_rows: int) -> str:
    if report.changes.empty:
        return "<i>No stale patient: for every patient it has seen, the log holds what Impilo holds.</i>"
    shown = report.changes.rename(
        columns={"resource_id": "patient", "log_value": "in the log (old)", "impilo_value": "at Impilo (new)"}
    )
    return _frame_html(shown, max_rows)


def _missing_html(report: sync.SyncReport, max_rows: int) -> str:
    parts = []
    for status, meaning in (
        ("never_seen", "at Impilo, but the log holds no event for them"),
        ("unknown", "in the log, but Impilo does not list them"),
    ):
        ids = report.patients.loc[report.patients["status"] == status, "resource_id"]
        listed = ", ".join(str(i) for i in ids.head(max_rows)) + (", …" if len(ids) > max_rows else "")
        shown = f"{len(ids)} (ids {html.escape(listed)})" if len(ids) else "none"
        parts.append(f"<div><b>{status.replace('_', ' ').capitalize()}</b> ({meaning}): {shown}</div>")
    return "".join(parts)


def _deliveries_html(report: sync.SyncReport, max_rows: int) -> str:
    problems = report.deliveries[report.deliveries["status"] != "received"]
    if problems.empty:
        return "<i>No failed or pending delivery: the log holds every event Impilo delivered.</i>"
    repaired = (
        f"<div>{report.repaired} of them carried changes the log holds by now (backfilled or overtaken by a later event).</div>"
        if report.repaired
        else ""
    )
    return repaired + _frame_html(problems, max_rows)


def _frame_html(frame: pd.DataFrame, max_rows: int) -> str:
    more = f"<i>First {max_rows} of {len(frame)}.</i>" if len(frame) > max_rows else ""
    shown = frame.head(max_rows).astype(object)
    shown = shown.where(shown.notna(), "")  # to_html's na_rep leaves pandas' <NA> as is
    table = shown.to_html(index=False, border=0, escape=True, classes="impilo-sync")
    return table + more


def _event_label(row: Any) -> str:
    family = str(row.type).split(".", 1)[0]  # "patient 7", "reading 12": the resource the event is about
    resource = f" · {family} {row.resource_id}" if pd.notna(row.resource_id) else ""
    return f"event {row.event_id} · {row.type}{resource}"
