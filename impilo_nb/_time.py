"""Time helpers shared by the package: one way to write a UTC timestamp, one way to wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["poll_until", "utc_iso"]


def utc_iso(moment: datetime | None = None) -> str:
    """``moment`` (default now) as the API writes timestamps: ISO 8601 UTC, microseconds, ``Z``.

    A naive datetime is taken to be UTC already (never the machine's local time), so the same
    value gives the same text on every machine.
    """
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def poll_until(predicate: Callable[[], object], *, timeout: float, interval: float = 0.02) -> bool:
    """Call ``predicate`` until it is true or ``timeout`` seconds pass; whether it became true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True
