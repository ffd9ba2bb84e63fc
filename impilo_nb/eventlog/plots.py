"""The event log's timeline as a stacked bar chart (matplotlib, imported only when drawn)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .._extras import require

__all__ = ["plot_timeline"]

#: At most this many buckets are labelled on the x axis (a timeline has up to ~150 bars), so
#: labels as long as "11-28 16:40" never touch.
MAX_TICK_LABELS = 8

#: The x axis has room for at least this many bars: a demo whose events all fall in one or two
#: buckets shows slim bars in the middle, not one bar as wide as the chart.
MIN_BAR_SLOTS = 12


def plot_timeline(counts: pd.DataFrame, *, label: str, ax: Any = None) -> Any:
    """Bars of events per time bucket (rows of ``counts``) stacked by type (its columns);
    ``label`` names the bucket size on the x axis. Returns the matplotlib Axes.

    Raises:
        ConfigurationError: matplotlib (the ``[widgets]`` extra) is not installed.
    """
    require("widgets", "matplotlib")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3), layout="constrained")  # constrained: room for the legend beside
    if counts.empty:
        ax.text(0.5, 0.5, "no events yet", ha="center", va="center", transform=ax.transAxes)
    else:
        counts = counts.copy()
        buckets = pd.DatetimeIndex(counts.index)  # the rows are time buckets (EventLog.timeline)
        counts.index = buckets.strftime(_tick_format(buckets, _width(label)))
        counts.plot.bar(stacked=True, ax=ax, rot=0, width=0.8)
        _label_some_ticks(ax, len(counts))
        _leave_room_for_bars(ax, len(counts))
        # Beside the axes, never over a bar (loc is the legend's corner that sits at the anchor).
        ax.legend(title=None, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"received (UTC, per {label})")
    ax.set_ylabel("events")
    ax.set_title("Webhook events")
    return ax


def _label_some_ticks(ax: Any, bars: int) -> None:
    """Label every ``step``-th bar, at most ``MAX_TICK_LABELS`` of them, the last one included."""
    step = -(-bars // MAX_TICK_LABELS)
    for number, tick in enumerate(ax.get_xticklabels()):
        tick.set_visible((bars - 1 - number) % step == 0)


def _leave_room_for_bars(ax: Any, bars: int) -> None:
    """Widen the x axis to ``MIN_BAR_SLOTS`` bars, the real ones centred, when there are fewer."""
    if bars < MIN_BAR_SLOTS:
        spare = (MIN_BAR_SLOTS - bars) / 2
        ax.set_xlim(-0.5 - spare, bars - 0.5 + spare)


def _width(label: str) -> pd.Timedelta | None:
    """The bucket width ``label`` names ("1s", "5min", "3h"...), None if it names none."""
    try:
        return pd.to_timedelta(label)
    except (TypeError, ValueError):
        return None


def _tick_format(index: pd.DatetimeIndex, width: pd.Timedelta | None = None) -> str:
    """Bucket labels as short as the buckets allow: seconds when buckets are shorter than a minute
    or one starts mid-minute, the date only when the buckets span more than a day."""
    to_the_second = (width is not None and width < pd.Timedelta("1min")) or bool((index.second != 0).any())
    time = "%H:%M:%S" if to_the_second else "%H:%M"
    if len(index) and index[-1] - index[0] >= pd.Timedelta("1D"):
        return "%Y-%m-%d" if bool((index.hour == 0).all() and (index.minute == 0).all()) else f"%m-%d {time}"
    return time
