"""List queries derived from the field tables: one query parameter and one SQL condition per row.

A listed model states its query once, as ``ListFilter(wire, paths, match, type)`` rows
(``Patient.LIST_FILTERS`` and ``SORTS``, ``WebhookLogEntry.LIST_FILTERS``; see fields.py). From
each row, ``ListTable`` makes:

- one field of a pydantic model that FastAPI reads the query string into and documents in the
  OpenAPI document (which schemathesis fuzzes): the wire name, the type and its range, and a
  description of how the filter matches (``ListTable.parameters``);
- the value the SQL compares, or a 400 naming the parameter (``ListTable.values``);
- one SQL condition, chosen by the row's ``match``, over the SQL expression the store gives for
  each path (``ListQuery.where``).

Pages are numbered, but read by keyset (``PageCursors``, ``seek``): page N continues after where
page N - 1 ended, so its cost does not grow with N (docs/api-decisions.md#list-patients).

Multi-value filters (docs/api-decisions.md#multi-value-filters). An ``any_of`` filter with
several values is given as *repeated* query parameters (``?externalIdentifier=a&externalIdentifier=b``)
and a value is never split on commas, since a comma is a legal character in an external
identifier ("crm,1" is one identifier, not "crm" and "1"). ``id=1,2`` is therefore a 400 (no id
contains a comma) saying to repeat the parameter, and an empty value (``externalIdentifier=``)
is a 400 too: it is almost always a blank cell, and reading it as "no filter" would answer with
every patient.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, Field, WithJsonSchema, create_model

from .._constants import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from .._time import utc_iso
from ..fields import ListFilter
from .limits import MAX_ID, MAX_INT, MAX_PAGE, MIN_INT
from .problems import bad_query

__all__ = [
    "INT_RANGES",
    "MAX_REMEMBERED_PAGES",
    "REPEAT",
    "Cursor",
    "ListParameters",
    "ListQuery",
    "ListTable",
    "PageCursors",
    "Seek",
    "SortedListParameters",
    "describe",
    "seek",
]

#: How the multi-value filters are given, in their OpenAPI descriptions (module docstring).
REPEAT = (
    "For several values repeat the parameter (`?name=a&name=b`); a value is never split on commas, "
    "so a comma is part of the value. An empty value is refused."
)

#: Whole-number fields whose values lie in a narrower range than int64, by wire path: ids are
#: positive (docs/api-decisions.md#patient-ids), a retry count is never negative, and a response
#: status is an HTTP status. A filter on one of them refuses (400) any value outside the range.
INT_RANGES: dict[str, tuple[int, int]] = {
    "id": (1, MAX_ID),
    "site.id": (1, MAX_ID),
    "retryAttempts": (0, MAX_ID),
    "lastResponseStatus": (100, 599),
}

#: What each kind of match keeps, for the parameter's description (``{field}``: what it reads).
_MEANINGS: dict[str, str] = {
    "any_of": "Only those whose {field} is one of these (exact match).",
    "equal": "Only those whose {field} equals this (exact match).",
    "equal_ci": "Only those whose {field} equals this, ignoring case.",
    "contains_ci": "Only those whose {field} contains this, ignoring case.",
    "flag": "Only those whose {field} is this; a missing value counts as false.",
    "min": "Only those whose {field} is at least this (inclusive).",
    "max": "Only those whose {field} is at most this (inclusive).",
    "before": "Only those whose {field} is before this (exclusive).",
}

# An int64 as text: the ids are parsed here, not by pydantic, which would also accept "١", " 1", "+1", "1_0".
_WHOLE_NUMBER = re.compile("-?[0-9]{1,19}")


def describe(row: ListFilter) -> str:
    """The OpenAPI description of a filter: how it matches, and for several values how to give them."""
    joined = " ".join(row.paths)
    read = f"`{joined}`" if len(row.paths) == 1 else f'"{joined}" (those fields joined by a space)'
    meaning = _MEANINGS[row.match].format(field=read)
    return f"{meaning} {REPEAT}" if row.many else meaning


def _int_range(row: ListFilter) -> tuple[int, int]:
    return INT_RANGES.get(row.paths[0], (MIN_INT, MAX_INT))


def _parameter(row: ListFilter) -> tuple[Any, Any]:
    """The (annotation, Field) of a filter's query parameter."""
    low, high = _int_range(row)
    if row.many:
        if row.type is int:
            # Documented as integers, read as text: parsed by ``_whole_numbers`` to say what is wrong.
            item: Any = Annotated[str, WithJsonSchema({"type": "integer", "format": "int64", "minimum": low, "maximum": high})]
        elif row.type is str:
            item = str
        else:
            raise TypeError(f"ListFilter {row.wire!r}: an any_of filter takes text or whole numbers, not {row.type.__name__}.")
        return list[item] | None, Field(None, alias=row.wire, description=describe(row))
    whole = row.type is int
    field_info = Field(None, alias=row.wire, description=describe(row), ge=low if whole else None, le=high if whole else None)
    return row.type | None, field_info


class ListParameters(BaseModel):
    """The paging every list takes (docs/api-decisions.md#pagination); ``ListTable.parameters``
    adds one field per filter."""

    page: int = Field(1, ge=1, le=MAX_PAGE, description="1-based page number.")
    size: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Records per page.")


class SortedListParameters(ListParameters):
    """Paging and sorting; ``ListTable.parameters`` narrows ``sort`` to the table's sort values."""

    sort: str = Field(description="The field to sort by.")
    sort_descending: bool = Field(False, alias="sortDescending", description="Sort from last to first.")


@dataclass(frozen=True)
class ListTable:
    """A listed model's query, read once from its tables: the filter rows and the sorts."""

    filters: tuple[ListFilter, ...]
    sorts: Mapping[str, str] = field(default_factory=dict)  # sort value -> the wire path it sorts by

    @classmethod
    def of(cls, model: type[BaseModel]) -> ListTable:
        """The table ``model`` states (``LIST_FILTERS``, and ``SORTS`` when it has one)."""
        return cls(tuple(model.LIST_FILTERS), dict(getattr(model, "SORTS", {})))  # type: ignore[attr-defined]

    @property
    def default_sort(self) -> str | None:
        """The sort by ``id`` (List Patients' ``patientId``): the order when none is asked for."""
        return next((name for name, path in self.sorts.items() if path == "id"), None)

    def parameters(self, name: str) -> type[ListParameters]:
        """The query as a pydantic model: paging, the sorts if any, then one field per filter.

        A ``SortedListParameters`` when the table has sorts, else a ``ListParameters``.
        """
        fields: dict[str, Any] = {row.python_name: _parameter(row) for row in self.filters}
        if not self.sorts:
            return create_model(name, __base__=ListParameters, **fields)
        sort: Any = (Literal[tuple(self.sorts)], Field(self.default_sort, description="The field to sort by."))
        return create_model(name, __base__=SortedListParameters, sort=sort, **fields)

    def values(self, params: ListParameters) -> dict[str, Any]:
        """The filters given in ``params``, by wire name, as the SQL compares them; a 400 for a
        value that cannot be used (an empty one, ``id=1,2``, a moment UTC cannot hold)."""
        given: dict[str, Any] = {}
        for row in self.filters:
            value = getattr(params, row.python_name)
            if value is not None:
                given[row.wire] = _sql_value(row, value)
        return given


def _sql_value(row: ListFilter, value: Any) -> Any:
    if row.many:
        return _whole_numbers(value, row) if row.type is int else _texts(value, row.wire)
    if isinstance(value, datetime):  # before date: a datetime is a date
        return _timestamp(value, row.wire)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _whole_numbers(values: list[str], row: ListFilter) -> list[int]:
    """The numbers of a repeated parameter (``id=1&id=2``); never split on commas (module docstring)."""
    low, high = _int_range(row)
    name = row.wire
    numbers = []
    for value in _texts(values, name):
        number = int(value) if _WHOLE_NUMBER.fullmatch(value) else None
        if number is None or not low <= number <= high:
            shown_high = "2^63-1" if high == MAX_INT else f"{high:,}"
            message = f"Not a whole number from {low} to {shown_high}: {_excerpt(value)}."
            if "," in value:
                message += f" For several, repeat the parameter ({name}=1&{name}=2); commas do not separate values."
            raise bad_query(name, message)
        numbers.append(number)
    return numbers


def _texts(values: list[str], name: str) -> list[str]:
    """The values of a repeated parameter, each taken whole (a comma is part of the value)."""
    for value in values:
        if not value:
            raise bad_query(name, f"Empty: give a value, or leave {name} out to not filter by it.")
    return list(values)


def _timestamp(value: datetime, name: str) -> str:
    """``value`` as the store's UTC ISO text; a 400 when UTC cannot represent it (year 1 or 9999)."""
    try:
        return utc_iso(value)
    except OverflowError:
        raise bad_query(name, "Out of range: in UTC this is before year 1 or after year 9999.") from None


def _excerpt(value: str) -> str:
    return repr(value) if len(value) <= 40 else repr(value[:40]) + "…"


# -- the SQL -----------------------------------------------------------------------------------


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


#: The SQL condition of each kind of match, over the SQL expression of the field(s) it reads.
CONDITIONS: dict[str, Callable[[str, Any], tuple[str, list[Any]]]] = {
    "any_of": lambda sql, values: (f"{sql} IN ({', '.join('?' * len(values))})", list(values)),
    "equal": lambda sql, value: (f"{sql} = ?", [value]),
    "equal_ci": lambda sql, value: (f"lower({sql}) = lower(?)", [value]),
    "contains_ci": lambda sql, value: (f"lower({sql}) LIKE ? ESCAPE '\\'", [_like_pattern(value)]),
    "flag": lambda sql, value: (f"coalesce({sql}, 0) = ?", [int(value)]),
    "min": lambda sql, value: (f"{sql} >= ?", [value]),
    "max": lambda sql, value: (f"{sql} <= ?", [value]),
    "before": lambda sql, value: (f"{sql} < ?", [value]),
}


@dataclass(frozen=True)
class ListQuery:
    """One list request: the filter values by wire name (from ``ListTable.values``), the table
    they belong to, and the wire path to sort by (None: the store's own order)."""

    values: Mapping[str, Any] = field(default_factory=dict)
    filters: tuple[ListFilter, ...] = ()
    sort: str | None = None
    sort_descending: bool = False

    def where(self, column: Callable[[str], str]) -> tuple[str, list[Any]]:
        """`` WHERE ...`` (or nothing) and its arguments; ``column`` gives a wire path's SQL."""
        clauses: list[str] = []
        args: list[Any] = []
        for row in self.filters:
            value = self.values.get(row.wire)
            if value is None or (row.match == "contains_ci" and value == ""):
                continue  # nothing given; an empty part is part of every value, so no filter either
            sql = " || ' ' || ".join(column(path) for path in row.paths)
            if len(row.paths) > 1:
                sql = f"({sql})"
            clause, clause_args = CONDITIONS[row.match](sql, value)
            clauses.append(clause)
            args.extend(clause_args)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args

    @property
    def identity(self) -> Hashable:
        """What tells this listing from another, page and size aside: the filter values and the sort."""
        values = tuple(sorted((wire, tuple(v) if isinstance(v, list) else v) for wire, v in self.values.items()))
        return values, self.sort, self.sort_descending


# -- keyset paging -------------------------------------------------------------------------------
#
# The API numbers its pages (docs/api-decisions.md#pagination), and OFFSET makes page N read and
# throw away the (N - 1) * size rows before it. So the store remembers where each page it serves
# ended (``PageCursors``), and reads page N as "the rows after page N - 1's last row" (``seek``),
# which an index on (sort key, id) answers at the same cost for every N.

#: How many page ends the sandbox remembers (``PageCursors``). A walk through the pages needs
#: only the one before the page it asks for, so this serves many walks at once in little memory.
MAX_REMEMBERED_PAGES = 4096


@dataclass(frozen=True)
class Cursor:
    """Where a served page ended: its last row's sort key (None for a null key) and id."""

    key: Any
    id: int


class PageCursors:
    """The end of each recently served page, by (listing, page number): a bounded LRU.

    A listing is anything hashable that tells requests apart except by page number (filters, sort,
    page size). Not thread-safe: the store calls it under its lock.
    """

    def __init__(self, maxsize: int = MAX_REMEMBERED_PAGES) -> None:
        if maxsize < 1:
            raise ValueError(f"PageCursors needs room for at least one page end, got maxsize={maxsize}.")
        self.maxsize = maxsize
        self._ends: OrderedDict[tuple[Hashable, int], Cursor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ends)

    def get(self, listing: Hashable, page: int) -> Cursor | None:
        """Where ``page`` of ``listing`` ended when it was last served, or None if not remembered."""
        end = self._ends.get((listing, page))
        if end is not None:
            self._ends.move_to_end((listing, page))
        return end

    def put(self, listing: Hashable, page: int, end: Cursor | None) -> None:
        """Remember where ``page`` ended; None forgets it (the last page, or an end keyset cannot use)."""
        if end is None:
            self._ends.pop((listing, page), None)
            return
        self._ends[(listing, page)] = end
        self._ends.move_to_end((listing, page))
        while len(self._ends) > self.maxsize:
            self._ends.popitem(last=False)


class Seek(NamedTuple):
    """One range of the rows ``seek`` selects: its SQL condition and arguments, and whether its
    rows all share one sort key (the cursor's ties), to be ordered by id alone."""

    condition: str
    args: list[Any]
    ties: bool = False


def seek(key: str, after: Cursor, *, descending: bool) -> list[Seek]:
    """The ranges of rows following ``after`` in ``ORDER BY key, id`` (both ascending, or both
    descending), to be read one after the other until the page is full.

    Each is one range of the index on (key, id), so SQLite seeks to it: first the rest of the
    cursor's own key (its ties, by id), then the keys beyond it. SQLite sorts null keys first,
    so they come first in an ascending order and last in a descending one. (A row-value
    comparison ``(key, id) > (?, ?)`` says the same in one condition, but SQLite 3.40 then
    scans the index from its start; an OR of the two parts scans all the cursor's ties; and
    the ties ordered by key and id are sorted in a temporary tree, by id alone they are not.)
    """
    beyond = "<" if descending else ">"
    if key == "id":
        return [Seek(f"id {beyond} ?", [after.id])]
    if after.key is None:
        ties = Seek(f"{key} IS NULL AND id {beyond} ?", [after.id], ties=True)
        return [ties] if descending else [ties, Seek(f"{key} IS NOT NULL", [])]
    ties = Seek(f"{key} = ? AND id {beyond} ?", [after.key, after.id], ties=True)
    rest = Seek(f"{key} {beyond} ?", [after.key])
    return [ties, rest, Seek(f"{key} IS NULL", [], ties=True)] if descending else [ties, rest]
