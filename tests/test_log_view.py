"""WebhookLogView: drive the real widget in code (set .value, select a row, read what a person
would see), and count what it reads from a big log: what it shows and what is new, nothing more."""

import json
import re
import sqlite3
import subprocess
import sys
import time

import pytest

import impilo_nb as nb
from impilo_nb.widgets import WebhookLogView, log_view
from impilo_nb.widgets.log_view import DEFAULT_COLUMNS, MISSING, TIMELINE_TAB


def deliver(log, event_id, type_="patient.created", **payload):
    log.record_body(json.dumps({"id": event_id, "type": type_, "payload": {"id": event_id * 10, **payload}}).encode())


def grid_rows(view) -> list[list[str]]:
    """The cells the grid sends to the browser, row by row (what DataTables shows)."""
    return json.loads(view.grid._dt_args["data_json"])


def grid_titles(view) -> list[str]:
    return re.findall(r"<th>(.*?)</th>", view.grid._dt_args["table_html"])


def click_row(view, event_id) -> None:
    """What a click on the row of ``event_id`` does in the browser: DataTables selects its index."""
    view.grid.selected_rows = [view.frame.index[view.frame["event_id"] == event_id][0]]


@pytest.fixture
def event_log(tmp_path):
    return nb.EventLog(tmp_path / "events.db")


def test_log_view_shows_newest_first_with_counts(event_log):
    deliver(event_log, 1, firstName="Ana")
    deliver(event_log, 2, "patient.updated", firstName="Bo")
    view = WebhookLogView(event_log, live=False)
    assert view.frame["event_id"].tolist() == [2, 1]
    assert "2 events" in view.counts.value and "patient.updated: <b>1</b>" in view.counts.value
    assert [row[5] for row in grid_rows(view)] == ["Bo", "Ana"]  # first name
    assert view.type_filter.options == ("(all types)", "patient.created", "patient.updated")


def test_log_view_filters_by_type_and_text(event_log):
    deliver(event_log, 1, firstName="Ana")
    deliver(event_log, 2, "patient.updated", firstName="Bo")
    deliver(event_log, 3, "patient.updated", firstName="Cy")
    view = WebhookLogView(event_log, live=False)
    view.type_filter.value = "patient.updated"
    assert view.frame["event_id"].tolist() == [3, 2]
    view.search.value = "cy"
    assert view.frame["event_id"].tolist() == [3]
    view.search.value = "nobody"
    assert view.frame.empty and grid_rows(view) == []


def test_log_view_detail_shows_the_selected_event_json(event_log):
    deliver(event_log, 1, firstName="Ana <b>")
    deliver(event_log, 2, firstName="Bo")
    view = WebhookLogView(event_log, live=False)
    assert "Click a row" in view.detail.value and grid_rows(view)[1][5] == "Ana &lt;b&gt;"  # text, never markup
    click_row(view, 1)
    assert "&quot;firstName&quot;: &quot;Ana &lt;b&gt;&quot;" in view.detail.value


def test_the_grid_shows_the_default_columns_on_one_line_each_missing_value_the_same(event_log):
    deliver(event_log, 1, firstName="Ana", lastName="Ng", email="ana@example.org")
    event_log.record_body(json.dumps({"id": 2, "type": "patient.updated", "payload": {"firstName": None}}).encode())
    view = WebhookLogView(event_log, live=False)
    assert view.columns == DEFAULT_COLUMNS
    assert grid_titles(view) == ["time (UTC)", "event id", "type", "patient", "deliveries", "first name", "last name", "email"]
    newest, oldest = grid_rows(view)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", oldest[0])  # to the second, one line
    assert oldest[1:] == ["1", "patient.created", "10", "1", "Ana", "Ng", "ana@example.org"]
    assert newest[3] == newest[5] == newest[6] == newest[7] == MISSING  # no id, a null, absent fields: all alike
    assert not {"None", "nan", "NaN", "<NA>", "NaT"} & {cell for row in grid_rows(view) for cell in row}


def test_the_grid_scrolls_sideways_never_wraps_and_sends_every_row(event_log):
    deliver(event_log, 1)
    view = WebhookLogView(event_log, live=False)
    for n in range(2, 40):
        deliver(event_log, n)
    view.refresh()  # an update of the grid keeps every option it was built with
    args = view.grid._dt_args
    assert args["scrollX"] is True and "nowrap" in view.grid.classes and len(grid_rows(view)) == 39
    assert args["select"] == {"style": "single"} and args["columnControl"] and args["layout"]["bottomEnd"] == "paging"
    assert "downsampling_warning" not in args or not args["downsampling_warning"]


def test_the_columns_panel_adds_and_removes_columns(event_log):
    deliver(event_log, 1, firstName="Ana", phoneNumber="+1 555 0100")
    view = WebhookLogView(event_log, live=False)
    assert "payload.phoneNumber" in view.column_boxes and not view.column_boxes["payload.phoneNumber"].value
    view.column_boxes["payload.phoneNumber"].value = True
    assert grid_titles(view)[-1] == "payload.phoneNumber" and grid_rows(view)[0][-1] == "+1 555 0100"
    view.column_boxes["payload.email"].value = False
    assert "email" not in grid_titles(view) and view.columns[-1] == "payload.phoneNumber"
    deliver(event_log, 2, address={"city": "Durban"})  # a field no event had: it joins the panel
    view.refresh()
    assert "payload.address.city" in view.column_boxes and "payload.phoneNumber" in view.columns


def test_the_grid_keeps_its_columns_and_the_clicked_row_as_new_events_arrive(event_log):
    deliver(event_log, 1, firstName="Ana")
    view = WebhookLogView(event_log, live=False, columns=["event_id", "payload.firstName"])
    click_row(view, 1)
    deliver(event_log, 2, firstName="Bo")
    view.refresh()
    assert grid_titles(view) == ["event id", "first name"] and grid_rows(view) == [["2", "Bo"], ["1", "Ana"]]
    assert view.grid.selected_rows == [1] and "Ana" in view.detail.value


def test_an_unchanged_grid_is_not_sent_again(event_log):
    deliver(event_log, 1)
    view = WebhookLogView(event_log, live=False)
    view.type_filter.value = "patient.created"
    sent = []
    view.grid.observe(lambda change: sent.append(change), names="_dt_args")
    deliver(event_log, 2, "patient.updated")  # not of the type shown: counts change, the grid does not
    view.refresh()
    assert sent == [] and "2 events" in view.counts.value


def test_the_report_snapshot_is_complete_and_static(event_log):
    deliver(event_log, 1, firstName="Ana", lastName="Ng", email="ana@example.org")
    view = WebhookLogView(event_log, live=False)
    snapshot = view.snapshot_html()
    for title in ["time (UTC)", "event id", "patient", "deliveries", "first name", "last name", "email"]:
        assert f"<th>{title}</th>" in snapshot
    assert "ana@example.org" in snapshot and "..." not in snapshot and "white-space: nowrap" in snapshot
    assert "NaN" not in snapshot and "None" not in snapshot


def test_a_shared_report_masks_the_names_in_the_snapshot(event_log):
    from impilo_nb.reports import mask_html

    deliver(event_log, 1, firstName="Anastasia", lastName="Ngubane", email="ana@example.org", dateOfBirth="1975-04-02")
    view = WebhookLogView(event_log, live=False, columns=[*DEFAULT_COLUMNS, "payload.dateOfBirth"])
    shared = mask_html(view.snapshot_html())  # the page's net; the headers read "first name", "last name"
    for personal in ("Anastasia", "Ngubane", "ana@example.org", "1975-04-02"):
        assert personal not in shared
    assert "patient.created" in shared and "<th>first name</th>" in shared


@pytest.mark.parametrize("columns", [[], "received_at", ["type", 3], None])
def test_log_view_refuses_unusable_columns_and_says_what_it_takes(event_log, columns):
    with pytest.raises(nb.ConfigurationError, match=r"columns=\.\.\.\)"):
        WebhookLogView(event_log, live=False, columns=columns)


class FakeClock:
    """Stands in for time.monotonic, so the timing rules are checked without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_until(condition, hang_guard: float = 30.0) -> None:
    """Wait for ``condition``; the deadline only stops a hang, it asserts no speed."""
    deadline = time.monotonic() + hang_guard
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {hang_guard} s: hung"
        time.sleep(0.02)


def show_timeline(view) -> None:
    view.tabs.selected_index = TIMELINE_TAB


def test_log_view_timeline_is_a_png(event_log):
    deliver(event_log, 1)
    view = WebhookLogView(event_log, live=False)
    show_timeline(view)
    assert view.timeline.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert view.timeline.layout.display is None and view._timeline_note.value == ""


def test_log_view_draws_the_timeline_only_while_its_tab_is_shown(event_log, monkeypatch):
    drawn = []
    draw = log_view._timeline_png
    monkeypatch.setattr(log_view, "_timeline_png", lambda log: drawn.append(len(log)) or draw(log))
    deliver(event_log, 1)
    view = WebhookLogView(event_log, live=False, timeline_interval=0)
    assert drawn == [] and view.timeline.value == b""  # building the view draws nothing
    deliver(event_log, 2)
    view.refresh(force_plot=True)
    assert drawn == [] and "2 events" in view.counts.value
    assert not view._poll_once()  # a hidden timeline that lags is no reason to refresh
    show_timeline(view)
    assert drawn == [2]  # drawn when first looked at
    view.tabs.selected_index = 0
    show_timeline(view)
    assert drawn == [2]  # up to date: not drawn again
    view.tabs.selected_index = 0
    deliver(event_log, 3)
    view.refresh()
    assert drawn == [2]
    show_timeline(view)
    assert drawn == [2, 3]  # stale when opened: redrawn


def test_building_and_refreshing_the_view_never_imports_matplotlib(tmp_path):
    code = f"""
import json, sys
import impilo_nb as nb
from impilo_nb.widgets import WebhookLogView
log = nb.EventLog({str(tmp_path / "events.db")!r})
view = WebhookLogView(log, live=False, timeline_interval=0)
log.record_body(json.dumps({{"id": 1, "type": "patient.created", "payload": {{"id": 10}}}}).encode())
view.refresh_button.click()
print("matplotlib" in sys.modules, view.counts.value)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("False") and "1 event " in done.stdout


def test_log_view_report_snapshot_has_the_timeline_though_its_tab_was_never_opened(event_log):
    deliver(event_log, 1)
    view = WebhookLogView(event_log, live=False)
    snapshot = view.snapshot_html()
    assert "1 event " in snapshot and "<img alt='timeline' src='data:image/png;base64,iVBORw0KGgo" in snapshot


def test_log_view_live_shows_new_events_by_itself(event_log):
    view = WebhookLogView(event_log)  # live
    try:
        assert "No events yet" in view.counts.value
        deliver(event_log, 1)
        wait_until(lambda: "1 event " in view.counts.value)
        assert view.frame["event_id"].tolist() == [1]
    finally:
        view.close()


def test_log_view_redraws_the_timeline_at_most_every_interval_but_never_leaves_it_behind(event_log):
    view = WebhookLogView(event_log, live=False, timeline_interval=5.0)
    clock = view._clock = FakeClock()
    show_timeline(view)
    first = view.timeline.value
    clock.now += 1
    deliver(event_log, 1)
    assert view._poll_once()
    assert "1 event " in view.counts.value and view.timeline.value == first  # table now, picture later
    clock.now += 3.9
    assert not view._poll_once()  # nothing new, picture not due yet: no work
    clock.now += 0.1
    assert view._poll_once() and view.timeline.value != first  # due, with no further event to prompt it
    assert not view._poll_once()  # caught up


def test_log_view_refresh_button_redraws_the_shown_timeline_at_once(event_log):
    view = WebhookLogView(event_log, live=False, timeline_interval=3600)
    view._clock = FakeClock()
    show_timeline(view)
    first = view.timeline.value
    deliver(event_log, 1)
    view.refresh()
    assert view.timeline.value == first  # not due
    view.refresh_button.click()
    assert view.timeline.value != first


def test_log_view_backs_off_to_twice_its_last_refresh(event_log, monkeypatch):
    deliver(event_log, 1)
    view = WebhookLogView(event_log, live=False, refresh_interval=0.5)
    clock = view._clock = FakeClock()
    read = event_log.frame

    def slow_read(*args, **kwargs):
        clock.now += 0.8 if kwargs.get("columns") is None else 0  # the grid's read; the new event's type is quick
        return read(*args, **kwargs)

    monkeypatch.setattr(event_log, "frame", slow_read)
    deliver(event_log, 2)
    view.refresh()
    assert view._next_wait() == pytest.approx(1.6)
    monkeypatch.setattr(event_log, "frame", read)
    deliver(event_log, 3)
    view.refresh()
    assert view._next_wait() == 0.5


def test_log_view_timeline_paces_itself_and_does_not_slow_the_table(event_log, monkeypatch):
    deliver(event_log, 1)
    view = WebhookLogView(event_log, live=False, refresh_interval=0.5, timeline_interval=5.0)
    clock = view._clock = FakeClock()
    draw = log_view._timeline_png

    def slow_draw(log):
        clock.now += 10
        return draw(log)

    monkeypatch.setattr(log_view, "_timeline_png", slow_draw)
    show_timeline(view)  # drawn: it took 10 s
    deliver(event_log, 2)
    view.refresh()
    assert view._next_wait() == 0.5  # the table keeps its pace
    clock.now += 19.9
    assert not view._timeline_due()  # twice the drawing's cost, longer than timeline_interval
    clock.now += 0.1
    assert view._timeline_due()


def test_log_view_refresh_button_and_live_off(event_log):
    view = WebhookLogView(event_log, live=False)
    deliver(event_log, 1)
    assert view._thread is None and view.frame.empty  # not live: nothing watches the log
    view.refresh_button.click()
    assert view.frame["event_id"].tolist() == [1]


def test_log_view_starts_watching_when_live_is_switched_on(event_log):
    view = WebhookLogView(event_log, live=False)
    try:
        view.live.value = True
        deliver(event_log, 1)
        wait_until(lambda: "1 event " in view.counts.value)
    finally:
        view.close()


def test_log_view_needs_an_event_log():
    with pytest.raises(TypeError):
        WebhookLogView("events.db")


@pytest.mark.parametrize(
    ("setting", "value"),
    [("max_rows", 0), ("max_rows", 2.5), ("max_rows", True), ("search_rows", -1), ("refresh_interval", 0),
     ("refresh_interval", float("nan")), ("timeline_interval", -1), ("timeline_interval", "5")],
)
def test_log_view_refuses_unusable_settings_and_names_them(event_log, setting, value):
    with pytest.raises(nb.ConfigurationError, match=rf"{setting}=\.\.\.\) must be .*got {value!r}"):
        WebhookLogView(event_log, live=False, **{setting: value})


# -- WebhookLogView on a big log: it reads what it shows and what is new, nothing more ---------


class CountingStore:
    """Wraps a real event store and counts what the view asks of it: calls, and event rows read
    (``rows``: by ``events``, what ``frame()`` reads; ``get`` reads one event, by its id)."""

    def __init__(self, store) -> None:
        self._store = store
        self.reset()

    def reset(self) -> None:
        self.calls: list[str] = []
        self.rows = 0

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls.append(name)
            result = attr(*args, **kwargs)
            if name == "events":  # a list of rows, or an iterator of batches of rows
                result = list(result)
                batched = bool(result) and isinstance(result[0], list)
                self.rows += sum(map(len, result)) if batched else len(result)
                return iter(result) if batched else result
            return result

        return counted


class WatchedLog(nb.EventLog):
    """A real event log that counts how often its timeline is computed, and reads through a CountingStore."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.timelines = 0
        self.store = self._store = CountingStore(self._store)

    def timeline(self, *args, **kwargs):
        self.timelines += 1
        return super().timeline(*args, **kwargs)


@pytest.fixture
def big_log(tmp_path):
    """300 events, every third a patient.created, read through a CountingStore."""
    log = WatchedLog(tmp_path / "events.db")
    for n in range(1, 301):
        deliver(log, n, "patient.created" if n % 3 == 0 else "patient.updated", firstName=f"First{n}")
    return log


def test_a_refresh_after_one_new_event_reads_that_event_only(big_log):
    view = WebhookLogView(big_log, live=False, max_rows=200)
    click_row(view, 300)
    deliver(big_log, 301, "patient.created", firstName="Newest")
    big_log.store.reset()
    assert view._poll_once()
    assert big_log.store.rows == 2  # the new event for the grid, and its type for the counts: not the 200 rows again
    assert big_log.store.calls.count("get") <= 1  # the selected event, for its detail
    assert "type_counts" not in big_log.store.calls and big_log.timelines == 0
    assert view.frame["event_id"].tolist() == list(range(301, 101, -1)) and grid_rows(view)[0][5] == "Newest"
    assert "301 events (200 shown)" in view.counts.value and "patient.created: <b>101</b>" in view.counts.value
    assert view.grid.selected_rows == [1] and "First300" in view.detail.value  # the clicked event stays selected


def test_the_window_keeps_the_newest_max_rows_as_events_arrive(big_log):
    view = WebhookLogView(big_log, live=False, max_rows=20)
    for n in range(301, 311):
        deliver(big_log, n, firstName=f"First{n}")
        view.refresh()
    fresh = WebhookLogView(big_log, live=False, max_rows=20)  # read in full, for comparison
    assert view.frame.equals(fresh.frame) and view.frame["event_id"].tolist() == list(range(310, 290, -1))
    assert grid_rows(view) == grid_rows(fresh)


def test_more_new_events_than_the_window_holds_reads_the_window_once(big_log):
    view = WebhookLogView(big_log, live=False, max_rows=5)
    for n in range(301, 321):
        deliver(big_log, n)
    big_log.store.reset()
    view.refresh()
    assert big_log.store.calls.count("events") == 2  # the newest 5 (not the 20 new ones), and the 20 new types for the counts
    assert view.frame["event_id"].tolist() == [320, 319, 318, 317, 316]


def test_a_redelivery_updates_the_delivery_count_on_the_grid(big_log):
    view = WebhookLogView(big_log, live=False, max_rows=10)
    deliver(big_log, 299)  # delivered again: a version change that adds no row
    view.refresh()
    assert view.frame.set_index("event_id").loc[299, "delivery_count"] == 2
    deliver(big_log, 301)
    deliver(big_log, 298)  # a new event and a redelivery between two looks
    view.refresh()
    assert view.frame.set_index("event_id").loc[298, "delivery_count"] == 2 and view.frame["event_id"].iloc[0] == 301


def test_an_unchanged_log_is_not_read_again(big_log):
    view = WebhookLogView(big_log, live=False, max_rows=20)
    big_log.store.reset()
    assert not view._poll_once()
    view.refresh()
    assert big_log.store.calls == ["version", "version"] and big_log.store.rows == 0


def test_a_type_filter_reads_the_newest_rows_of_that_type(big_log):
    view = WebhookLogView(big_log, live=False, max_rows=10)
    view.type_filter.value = "patient.created"
    assert view.frame["event_id"].tolist() == list(range(300, 270, -3))
    deliver(big_log, 301, "patient.updated")
    big_log.store.reset()
    view.refresh()
    assert big_log.store.rows <= 10 + 1  # 10 of the type, and the new event's type for the counts
    assert view.frame["event_id"].tolist()[0] == 300 and "patient.updated: <b>201</b>" in view.counts.value


def test_the_timeline_is_computed_only_when_its_tab_is_shown(big_log):
    view = WebhookLogView(big_log, live=False, timeline_interval=0)
    deliver(big_log, 301)
    view.refresh(force_plot=True)
    assert big_log.timelines == 0
    show_timeline(view)
    assert big_log.timelines == 1 and view.timeline.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_search_looks_through_the_newest_search_rows(big_log):
    view = WebhookLogView(big_log, live=False, max_rows=5, search_rows=50)
    view.search.value = "first29"  # First29 and First290..First299: only the ten newest are in reach
    assert view.frame["event_id"].tolist() == [299, 298, 297, 296, 295]
    assert "the search looks at the newest 50" in view.counts.value
    big_log.store.reset()
    view.search.value = "first2"  # the same newest rows, matched again without reading them again
    assert big_log.store.rows == 0 and view.frame["event_id"].tolist() == [299, 298, 297, 296, 295]
    view.search.value = "first251"
    assert view.frame["event_id"].tolist() == [251] and grid_rows(view)[0][1] == "251"


def test_counts_kept_up_to_date_from_new_rows_match_a_full_count(big_log, monkeypatch):
    monkeypatch.setattr(log_view, "COUNT_READ_LIMIT", 8)  # so that bursts past it are counted in full
    view = WebhookLogView(big_log, live=False, max_rows=5)
    next_id = 301
    for burst, kind in [(1, "patient.created"), (3, "patient.archived"), (0, ""), (7, "patient.updated"), (20, "x.y")]:
        for _ in range(burst):
            deliver(big_log, next_id, kind)
            next_id += 1
        deliver(big_log, 5)  # a redelivery: a version change that adds no event
        view.refresh()
        assert view._type_counts.by_type == big_log.types()
        assert list(view.type_filter.options) == ["(all types)", *sorted(big_log.types())]


def test_counts_heal_when_an_event_lands_while_they_are_counted_in_full(big_log, monkeypatch):
    monkeypatch.setattr(log_view, "COUNT_READ_LIMIT", 1)
    view = WebhookLogView(big_log, live=False)
    counted = big_log.types

    def an_event_then_types():  # lands after the version was read, before the count: counted twice
        deliver(big_log, 1000, "patient.deleted")
        return counted()

    big_log.types = an_event_then_types
    for n in (301, 302):
        deliver(big_log, n)
    view.refresh()  # two new events: past COUNT_READ_LIMIT, so counted in full
    big_log.types = counted
    monkeypatch.setattr(log_view, "COUNT_READ_LIMIT", 10_000)
    deliver(big_log, 303)  # read as new, with event 1000 again: one more than the log holds, so counted in full
    assert view._poll_once()
    assert view._type_counts.by_type == big_log.types() and view._type_counts.total == len(big_log) == 304


def test_counts_follow_events_removed_from_the_log_outside_the_view(big_log, tmp_path):
    view = WebhookLogView(big_log, live=False)
    with sqlite3.connect(tmp_path / "events.db") as pruning:  # e.g. a retention job dropping old events
        pruning.execute("DELETE FROM events WHERE event_id <= 30")
    assert view._poll_once()
    assert view._type_counts.by_type == big_log.types() and "270 events" in view.counts.value
