"""The sandbox API's limits, each explained once: what a request may hold and what an id may be.

The checks (``checks.py``), the safe rendering (``rendering.py``), the routes and the API's
OpenAPI description all read them from here.
"""

from __future__ import annotations

from .._constants import MAX_PAGE_SIZE

__all__ = ["MAX_BODY_BYTES", "MAX_DEPTH", "MAX_ID", "MAX_INT", "MAX_PAGE", "MAX_REPORTED", "MAX_TEXT_LENGTH", "MIN_INT"]

#: Bodies longer than this are refused (413) unread: a patient record is a few KB.
MAX_BODY_BYTES = 1024 * 1024

#: The most characters a JSON string, a member name or a query value may hold.
MAX_TEXT_LENGTH = 4096

#: How deep arrays and objects may nest in a body; a patient needs 3 (patient, site, address).
MAX_DEPTH = 32

#: The range of a JSON whole number the API accepts: a signed 64-bit integer, like its ids.
MIN_INT, MAX_INT = -(2**63), 2**63 - 1

#: Ids are int64 (docs/api-decisions.md#patient-ids); anything larger is a 400, not passed to SQLite.
MAX_ID = MAX_INT

#: The largest page number whose offset still fits in 64 bits at the largest page size.
MAX_PAGE = MAX_ID // MAX_PAGE_SIZE

#: How many problems one error response lists at most.
MAX_REPORTED = 20
