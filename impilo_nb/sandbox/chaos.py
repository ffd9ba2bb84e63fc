"""Chaos: deliveries the way a busy platform makes them, so a handler can be proven safe.

``Sandbox(chaos=Chaos(duplicate=0.2, reorder=True, delay_s=(0, 2), seed=1))`` makes the
sandbox's dispatcher deliver

- **duplicates**: after a delivery succeeds, the same body (same event id) is sent once more
  with probability ``duplicate``, as happens on a real platform when an acknowledgement is lost;
- **out of order** (``reorder``): about half of the deliveries wait until a later event's
  attempt has finished (or ``REORDER_MAX_HOLD_S`` has passed), so they surely arrive after it;
- **late**: each first attempt, and each duplicate, waits a uniform draw in ``delay_s``
  seconds (real seconds, not scaled by ``time_scale``).

Chaos changes only when and how often bodies are sent, never what they contain, and every send
is a real attempt in the delivery log (docs/api-decisions.md#chaos). The draws come from one
``random.Random(seed)`` taken in the order events are published, so the same seed and the same
events give the same duplicates, delays and holds.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError

__all__ = ["REORDER_HOLD_CHANCE", "REORDER_MAX_HOLD_S", "Chaos", "ChaosPlan", "Planner"]

#: Share of deliveries held back under ``reorder``: half, so runs of two or three in a row
#: swap places as often as single pairs.
REORDER_HOLD_CHANCE = 0.5

#: Real seconds a held delivery waits for a later one before it goes anyway, so the last
#: event of a burst is never held for ever.
REORDER_MAX_HOLD_S = 1.0


@dataclass(frozen=True)
class Chaos:
    """How the sandbox misbehaves when it delivers webhooks (see the module docstring).

    Args:
        duplicate: probability in [0, 1] that a delivered event is sent a second time.
        reorder: hold some deliveries back until a later event's attempt is done.
        delay_s: ``(low, high)`` seconds; each send first waits a uniform draw in it.
        seed: makes the draws reproducible.
    """

    duplicate: float = 0.2
    reorder: bool = True
    delay_s: tuple[float, float] = (0.0, 2.0)
    seed: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "duplicate", _probability(self.duplicate))
        if not isinstance(self.reorder, bool):
            raise ConfigurationError(f"Chaos(reorder=...) must be True or False, got {self.reorder!r}.")
        object.__setattr__(self, "delay_s", _delay_pair(self.delay_s))
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigurationError(f"Chaos(seed=...) must be a whole number, got {self.seed!r}.")


def _probability(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigurationError(
            f"Chaos(duplicate=...) must be a probability between 0 and 1, got {value!r}; e.g. 0.2 sends one event in five twice."
        )
    return float(value)


def _delay_pair(value: Any) -> tuple[float, float]:
    example = "e.g. delay_s=(0, 2) delays each delivery by 0 to 2 seconds, (0, 0) not at all"
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ConfigurationError(f"Chaos(delay_s=...) must be a pair (low, high) of seconds, got {value!r}; {example}.")
    low, high = value
    for bound in (low, high):
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
            raise ConfigurationError(f"Chaos(delay_s=...) must hold two numbers of seconds, got {value!r}; {example}.")
    if not 0 <= low <= high:
        raise ConfigurationError(f"Chaos(delay_s=...) needs 0 <= low <= high, got {value!r}; {example}.")
    return float(low), float(high)


@dataclass(frozen=True)
class ChaosPlan:
    """What chaos does to one delivery: wait ``delay_s`` before the first attempt; if ``hold``,
    also wait for a later delivery's attempt; after success, send a duplicate
    ``duplicate_after_s`` later (None: no duplicate)."""

    delay_s: float
    hold: bool
    duplicate_after_s: float | None


class Planner:
    """Draws a ``ChaosPlan`` for each delivery, in publication order, from ``Chaos.seed``."""

    def __init__(self, chaos: Chaos) -> None:
        self.chaos = chaos
        self._random = random.Random(chaos.seed)
        self._lock = threading.Lock()

    def plan(self) -> ChaosPlan:
        """The next delivery's plan. Every draw is taken whatever the settings, so changing one
        setting (say ``reorder``) leaves the others' draws for each event as they were."""
        low, high = self.chaos.delay_s
        with self._lock:
            delay = self._random.uniform(low, high)
            hold = self._random.random() < REORDER_HOLD_CHANCE
            duplicate = self._random.random() < self.chaos.duplicate
            duplicate_after = self._random.uniform(low, high)
        return ChaosPlan(
            delay_s=delay, hold=hold and self.chaos.reorder, duplicate_after_s=duplicate_after if duplicate else None
        )
