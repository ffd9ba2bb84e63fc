"""The event log's timeline as a stacked bar chart (matplotlib, imported only when drawn)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .._extras import require

__all__ = ["plot_timeline"]

#: At most this many buckets are labelled on the x axis (a timeline has up to ~150 bars).
MAX_TICK_LABELS = 12


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
        _, ax = plt.subplots(figsize=(8, 3))
    if counts.empty:
        ax.text(0.5, 0.5, "no events yet", ha="center", va="center", transform=ax.transAxes)
    else:
        counts = counts.copy()
        buckets = pd.DatetimeIndex(counts.index)  # the rows are time buckets (EventLog.timeline)
        counts.index = buckets.strftime(_tick_format(buckets))
        counts.plot.bar(stacked=True, ax=ax, rot=0, width=0.8)
        step = -(-len(counts) // MAX_TICK_LABELS)
        for number, tick in enumerate(ax.get_xticklabels()):
            tick.set_visible(number % step == 0)
        ax.legend(title=None, fontsize="small")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"received (UTC, per {label})")
    ax.set_ylabel("events")
    ax.set_title("Webhook events")
    return ax


def _tick_format(index: pd.DatetimeIndex) -> str:
    """Bucket labels as short as the buckets allow: seconds only when a bucket starts mid-minute,
    the date only when the buckets span more than a day."""
    time = "%H:%M:%S" if bool((index.second != 0).any()) else "%H:%M"
    if len(index) and index[-1] - index[0] >= pd.Timedelta("1D"):
        return "%Y-%m-%d" if bool((index.hour == 0).all() and (index.minute == 0).all()) else f"%m-%d {time}"
    return time
