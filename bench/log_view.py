"""WebhookLogView on a big event log: building it, a refresh after one new event, the timeline.

For each size (10k, 100k, 1M events by default) a SQLite event log is filled by
``bench/eventlog.py``'s ``fill`` (patient, reading and device events over 30 days, in the
project's own schema), then this is timed:

- build: ``WebhookLogView(log, live=False)``;
- refresh: one event is recorded, then the live watch's check (``log.version()`` and the
  refresh it triggers), the median of ``--repeats``; with no filter, then with a type filter;
- timeline: opening the Timeline tab (``EventLog.timeline()`` and the matplotlib drawing);
- a 100,000-row window (``max_rows=100_000``, when the log has that many): building it, a
  refresh after one new event, and what the grid sends to the browser on each change (the JSON
  of ``grid._dt_args``, MB). Its baseline is reading the window again on each refresh
  (``log.frame(limit=100_000)``), what a view without ``_Window`` would do.

The naive baseline, measured in the same run, is what the view did before: read the whole log
with ``log.frame()`` on every refresh and filter and count it in pandas (44 s a refresh at 1M on
the machine where issue 14 was measured, and 6 GB, so by default only up to 100k events).

The view's promise, checked at the end: a refresh after one new event takes at most 0.5 s at
1M events and stays flat from 10k to 1M (at most 3x the 10k time, plus 50 ms of noise).

Usage: python bench/log_view.py [--sizes 10000,100000,1000000] [--naive-max 100000] [--timeline-max N] [--keep DIR]
Files go to a temporary folder (or ``--keep DIR``, reused if already filled). Figures vary by
machine; compare within one run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from eventlog import fill  # bench/eventlog.py: this folder is on sys.path when a script in it runs

import impilo_nb as nb
from impilo_nb.widgets import WebhookLogView
from impilo_nb.widgets.log_view import TIMELINE_TAB, _grid_frame

#: The large live window measured: a view of this many newest events.
BIG_WINDOW = 100_000

#: The refresh budget at 1M events, and how much slower than at 10k "flat" allows.
REFRESH_BUDGET_S = 0.5
FLAT_FACTOR = 3.0
FLAT_NOISE_S = 0.05


def filled_log(folder: Path, events: int) -> nb.EventLog:
    """The log of ``events`` events in ``folder``, filled unless a previous run left it there."""
    path = folder / f"log-{events}.db"
    if path.exists():
        log = nb.EventLog(path)
        if len(log) >= events:
            return log
        log.close()
        path.unlink()
    started = time.perf_counter()
    fill(path, events)
    print(f"   (filled {events:,} events in {time.perf_counter() - started:.0f} s)", flush=True)
    return nb.EventLog(path)


def seconds(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


class NextEvent:
    """Records one more event in ``log`` per call (ids above the filled ones)."""

    def __init__(self, log: nb.EventLog) -> None:
        # Above the filled ids (bench/eventlog.py starts at 2**48) and those of earlier runs on a kept log.
        self.log, self.next_id = log, 2**50 + len(log)

    def __call__(self) -> None:
        self.next_id += 1
        body = {"id": self.next_id, "type": "patient.updated", "payload": {"id": 7, "firstName": "Late"}}
        self.log.record_body(json.dumps(body).encode())


def refresh_after_one_event(view: WebhookLogView, new_event: NextEvent, repeats: int) -> float:
    """Median seconds of the live watch's check after one new event (which must refresh)."""
    times = []
    for _ in range(repeats):
        new_event()
        started = time.perf_counter()
        refreshed = view._poll_once()
        times.append(time.perf_counter() - started)
        if not refreshed:
            sys.exit("FAILED: the view did not see the new event")
    return statistics.median(times)


def view_work_after_one_event(view: WebhookLogView, new_event: NextEvent, repeats: int) -> float:
    """Median seconds of the view's own part of that refresh: all but reading ``log.version()``."""
    times = []
    for _ in range(repeats):
        new_event()
        version = view.event_log.version()
        started = time.perf_counter()
        view._refresh(version, started=view._clock())
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_view(log: nb.EventLog, repeats: int, *, timeline: bool) -> dict[str, float]:
    """Seconds to build a view of ``log``, refresh it after one new event (without and with a
    type filter), and open its timeline; and the process's peak memory so far."""
    new_event = NextEvent(log)
    out: dict[str, float] = {}
    views: list[WebhookLogView] = []
    out["build"] = seconds(lambda: views.append(WebhookLogView(log, live=False)))
    view = views[0]
    out["refresh"] = refresh_after_one_event(view, new_event, repeats)
    out["  log.version()"] = statistics.median(seconds(log.version) for _ in range(repeats))
    out["  the view's own work"] = view_work_after_one_event(view, new_event, repeats)
    view.type_filter.value = "patient.created"
    out["refresh, type filter"] = refresh_after_one_event(view, new_event, repeats)
    view.type_filter.value = "(all types)"
    if timeline:
        out["timeline tab"] = seconds(lambda: setattr(view.tabs, "selected_index", TIMELINE_TAB))
    if view._type_counts.by_type != log.types():
        sys.exit("FAILED: the view's counts differ from log.types()")
    view.close()
    if len(log) >= BIG_WINDOW:
        out.update(measure_big_window(log, new_event, repeats))
    out["peak RSS GB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return out


def measure_big_window(log: nb.EventLog, new_event: NextEvent, repeats: int) -> dict[str, float]:
    """A view of the newest ``BIG_WINDOW`` events: build, refresh after one event, MB sent, and
    the baseline: the window read again (what each refresh cost before ``_Window``)."""
    views: list[WebhookLogView] = []
    out = {"100k window: build": seconds(lambda: views.append(WebhookLogView(log, live=False, max_rows=BIG_WINDOW)))}
    view = views[0]
    out["100k window: refresh"] = refresh_after_one_event(view, new_event, repeats)
    out["100k window: MB sent"] = len(json.dumps(view.grid._dt_args)) / 1e6
    out["100k window: cells"] = seconds(lambda: _grid_frame(view.frame, view.columns))
    out["100k naive: re-read"] = statistics.median(seconds(lambda: log.frame(limit=BIG_WINDOW)) for _ in range(repeats))
    view.close()
    return out


def naive_refresh(log: nb.EventLog) -> None:
    """What the view did on each refresh before: the whole log, filtered and counted in pandas."""
    full = log.frame()
    sorted(full["type"].dropna().unique())  # the type filter's options
    full["type"].value_counts()  # the badges
    full.iloc[::-1].reset_index(drop=True).head(50).to_html()  # the table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--naive-max", type=int, default=100_000, help="largest log the naive baseline reads")
    parser.add_argument("--timeline-max", type=int, default=10**9, help="largest log whose timeline tab is opened")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="folder for the logs, kept and reused between runs")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        results, naive = {}, {}
        for size in sizes:
            print(f"{size:,} events", flush=True)
            with filled_log(folder, size) as log:
                results[size] = measure_view(log, args.repeats, timeline=size <= args.timeline_max)
        for size in (s for s in sizes if s <= args.naive_max):
            with filled_log(folder, size) as log:
                naive[size] = seconds(lambda log=log: naive_refresh(log))
    report(results, naive)


def report(results: dict[int, dict[str, float]], naive: dict[int, float]) -> None:
    names = list(dict.fromkeys(name for row in results.values() for name in row))
    print(f"\n{'seconds':<24}" + "".join(f"{size:>14,}" for size in results))
    for name in names:
        print(f"{name:<24}" + "".join(f"{row[name]:>14.3f}" if name in row else f"{'-':>14}" for row in results.values()))
    print(f"{'naive refresh':<24}" + "".join(f"{naive[s]:>14.3f}" if s in naive else f"{'-':>14}" for s in results))
    print(f"{'naive / refresh':<24}" + "".join(
        f"{naive[s] / results[s]['refresh']:>13.0f}x" if s in naive else f"{'-':>14}" for s in results))
    print(f"{'re-read / 100k refresh':<24}" + "".join(
        f"{row['100k naive: re-read'] / row['100k window: refresh']:>13.1f}x" if "100k window: refresh" in row else f"{'-':>14}"
        for row in results.values()))
    smallest, largest = min(results), max(results)
    print()
    verdicts = []
    for name in ("refresh", "  the view's own work"):
        low, high = results[smallest][name], results[largest][name]
        flat = high <= FLAT_FACTOR * low + FLAT_NOISE_S
        within = largest < 1_000_000 or high <= REFRESH_BUDGET_S
        verdicts.append(flat and within)
        print(f"{name.strip().capitalize()} after one event: {low * 1000:.1f} ms at {smallest:,}, {high * 1000:.1f} ms at"
              f" {largest:,} events: {'flat' if flat else 'NOT flat'}; {'within' if within else 'OVER'} the"
              f" {REFRESH_BUDGET_S} s budget at 1M.")
    if not all(verdicts):
        sys.exit("FAILED")


if __name__ == "__main__":
    main()
