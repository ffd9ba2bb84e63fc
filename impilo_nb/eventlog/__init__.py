"""The durable webhook log: what a delivery may be (``envelope``), where rows are kept
(``store``, ``sqlite``), how they read as DataFrames (``frames``) and plots (``plots``), and the
``EventLog`` that holds the rules (``log``)."""

from .envelope import MAX_DEPTH, InvalidDeliveryError, NormalisedEvent, normalise_delivery, parse_delivery
from .log import EventLog
from .store import SECRET_HEADERS, EventStore

__all__ = [
    "MAX_DEPTH",
    "SECRET_HEADERS",
    "EventLog",
    "EventStore",
    "InvalidDeliveryError",
    "NormalisedEvent",
    "normalise_delivery",
    "parse_delivery",
]
