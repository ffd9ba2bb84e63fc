"""CSV files as people really have them: any common separator and encoding, everyday headers.

Reached through ``nb.bulk.read_csv`` and ``nb.bulk.suggest_columns`` (``hash_csv`` uses the
same detection and the same names). See docs/csv-import.md.

- Separator: one of ``SEPARATORS``, told by the stdlib ``csv.Sniffer`` from the first
  ``SAMPLE_BYTES`` of the file and checked against the header line.
- Encoding: UTF-16 when the file starts with its byte order mark, else UTF-8 (with or without
  a BOM), else ``FALLBACK_ENCODING`` (what Excel on Windows writes) with a warning; anything
  else is refused, naming the line with the first byte that fits neither.
- Every cell is text, and only an empty cell is missing, so phones and zip codes keep their
  leading zeros.
- Headers: ``EVERYDAY_NAMES`` states once which everyday headers name which API field; the
  API's own names, their snake_case and the fields' labels (``fields.Facts``) count too. Case,
  spaces, punctuation and underscores are ignored when comparing.
"""

from __future__ import annotations

import codecs
import csv
import functools
import html
import io
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import FieldError, ValidationError
from .fields import facts, field_at, wire_paths
from .models import Patient

__all__ = ["EVERYDAY_NAMES", "ColumnMapping", "CsvFormat", "detect_format", "find_column", "read_csv", "suggest_columns"]

#: Separators told apart, in the order a tie is broken.
SEPARATORS = (",", ";", "\t", "|")

#: Bytes of the file the separator is told from: a few hundred rows of a patient file.
SAMPLE_BYTES = 64 * 1024

#: Tried when a file is not UTF-8: Excel on Windows saves "CSV" in this code page.
FALLBACK_ENCODING = "cp1252"

#: The name of the index ``read_csv`` gives a frame: its labels are the file's line numbers.
LINE_INDEX = "line"

#: Bytes read at a time when checking a whole file's encoding (``detect_format``).
_BLOCK_BYTES = 1 << 20

#: Everyday headers per API field (wire path). The API's own names, their snake_case and the
#: top-level fields' labels need no entry.
EVERYDAY_NAMES: dict[str, tuple[str, ...]] = {
    "externalIdentifier": ("External ID", "Ext ID", "External identifier"),
    "firstName": ("Given name", "Forename", "First"),
    "lastName": ("Surname", "Family name", "Last"),
    "dateOfBirth": ("DOB", "Birthdate", "Birth date", "Birthday"),
    "sex": ("Gender",),
    "email": ("E-mail", "Email Address", "Mail"),
    "phoneNumber": ("Phone", "Mobile", "Cell", "Telephone", "Tel", "Mobile phone", "Cell phone", "Phone number"),
    "address.lineOne": ("Street", "Address", "Address 1", "Address line 1", "Street address"),
    "address.lineTwo": ("Address 2", "Address line 2"),
    "address.lineThree": ("Address 3", "Address line 3"),
    "address.city": ("City", "Town"),
    "address.state": ("State", "Province", "Region"),
    "address.zipCode": ("Zip", "Zip code", "Postcode", "Post code", "Postal code"),
    "address.country": ("Country",),
}

_NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")

#: Excel's own first line naming the separator (``sep=;``), written above the header so Excel
#: opens the file right whatever the locale; it is no header, so it is skipped and obeyed.
_EXCEL_SEP_LINE = re.compile(r"sep=(.)[ \t]*(?:\r\n|\n|\r|$)", re.IGNORECASE)


@dataclass(frozen=True)
class CsvFormat:
    """How a file is written: its separator, encoding and quote character."""

    sep: str
    encoding: str
    quotechar: str = '"'
    #: Lines above the header to skip: 1 when the file starts with Excel's ``sep=;`` line.
    skiprows: int = 0


# --- Reading --------------------------------------------------------------------------------


def read_csv(path: str | os.PathLike[str], *, sep: str | None = None, encoding: str | None = None) -> pd.DataFrame:
    """A CSV file as a DataFrame of text, indexed by each row's line number in the file.

    Args:
        path: the file.
        sep: the separator; detected when not given (``,`` ``;`` tab ``|``).
        encoding: the encoding; detected when not given (UTF-16 with a BOM, UTF-8 with or
            without one, else cp1252 with a warning).

    Returns:
        Every cell as text (``str``), an empty cell as missing. The index, named ``line``, is
        the file's own line number of each row: the header is line 1, so the first row is
        line 2, and a quoted cell spanning lines counts them all. Excel's ``sep=;`` first line
        is obeyed and skipped (the header is then line 2). A header naming a column twice is
        read with pandas' ``.1`` suffix on the copy, with a warning. ``attrs`` holds ``path``,
        ``sep`` and ``encoding`` as seen.

    Raises:
        ValidationError: no such file, an encoding or separator that cannot be told, or rows
            the separator does not split evenly; the message says how to pass ``sep=`` or
            ``encoding=``.
    """
    source = _existing_file(path, "read_csv")
    data = source.read_bytes()
    encoding = _checked_encoding(encoding, source) or _encoding_of_bytes(data, source)
    text, excel_sep, skipped = _without_excel_sep_line(_decoded(data, encoding, source))
    if sep is not None:
        sep, quotechar = _checked_sep(sep, source), '"'
    else:
        sep, quotechar = (excel_sep, '"') if excel_sep else _sniff(text[:SAMPLE_BYTES], source)
    header, (header_line, *lines) = _record_lines(text, sep, quotechar, source, first_line=1 + skipped)
    frame = _parse(text, source, sep, quotechar)
    _warn_repeated_headers(header, header_line, source)
    if len(lines) == len(frame):
        frame.index = pd.Index(lines, name=LINE_INDEX)
    else:  # a row pandas and the csv module split differently: better no line numbers than wrong ones
        warnings.warn(f"{source}: rows could not be matched to line numbers; the index counts rows from 0.", stacklevel=2)
    frame.attrs.update(path=str(source), sep=sep, encoding=encoding)
    return frame


def detect_format(
    path: str | os.PathLike[str], *, sep: str | None = None, encoding: str | None = None, caller: str = "read_csv"
) -> CsvFormat:
    """The separator and encoding of a file too large to hold: the whole file is checked for
    its encoding (a block at a time), the first ``SAMPLE_BYTES`` tell the separator."""
    source = _existing_file(path, caller)
    given = _checked_encoding(encoding, source)
    if given is not None:
        _check_file_decodes(source, given)
    encoding = given or _encoding_of_file(source)
    with open(source, encoding=encoding, newline="") as text:
        sample, excel_sep, skipped = _without_excel_sep_line(text.read(SAMPLE_BYTES))
    if sep is not None:
        return CsvFormat(_checked_sep(sep, source), encoding, skiprows=skipped)
    if excel_sep:
        return CsvFormat(excel_sep, encoding, skiprows=skipped)
    sep, quotechar = _sniff(sample, source)
    return CsvFormat(sep, encoding, quotechar)


def _without_excel_sep_line(text: str) -> tuple[str, str | None, int]:
    """``text`` without Excel's ``sep=;`` first line; the separator it names (or None); lines skipped."""
    found = _EXCEL_SEP_LINE.match(text)
    if found is None or found.group(1) in "\"\r\n":
        return text, None, 0
    return text[found.end():], found.group(1), 1


def _check_file_decodes(source: Path, encoding: str) -> None:
    """Refuse a file the given encoding cannot read, naming the line, before anything is written."""
    def blocks() -> Iterator[bytes]:
        with open(source, "rb") as raw:
            while block := raw.read(_BLOCK_BYTES):
                yield block

    if (bad_line := _first_bad_line(blocks(), encoding)) is not None:
        raise _file_error(source, "encoding", f"line {bad_line} is not {encoding}; pass the file's real encoding "
                          "(e.g. 'utf-8', 'cp1252', 'utf-16'), or leave it out to have it detected.")


def _existing_file(path: Any, caller: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ValidationError(caller, [FieldError("path", f"Expected a file path (str or Path), got {type(path).__name__}.")])
    source = Path(path)
    if source.is_dir():
        raise ValidationError(caller, [FieldError("path", f"{source} is a folder, not a file; give the CSV file's path.")])
    if not source.is_file():
        raise ValidationError(caller, [FieldError("path", f"No such file: {source} (the working folder is {Path.cwd()}).")])
    return source


def _checked_encoding(encoding: Any, source: Path) -> str | None:
    if encoding is None:
        return None
    try:
        codecs.lookup(encoding)
        "x".encode(encoding)  # rot13, base64, hex...: codecs, but not text encodings
    except (LookupError, TypeError):
        raise _file_error(source, "encoding", f"unknown encoding {encoding!r}; try 'utf-8', 'cp1252' or 'latin-1'.") from None
    return str(encoding)


def _checked_sep(sep: Any, source: Path) -> str:
    if not isinstance(sep, str) or len(sep) != 1 or sep in "\"\r\n":
        raise _file_error(source, "sep", f"a separator is one character such as ';' or '\\t', got {sep!r}.")
    return sep


def _file_error(source: Path, field: str, message: str) -> ValidationError:
    """An error about the file, its message naming it, so it reads alone (the CLI prints one line)."""
    return ValidationError(str(source), [FieldError(field, f"{source}: {message}")])


# --- Encoding -------------------------------------------------------------------------------


def _bom_encoding(head: bytes) -> str | None:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else None


def _encoding_of_bytes(data: bytes, source: Path) -> str:
    return _bom_encoding(data[:4]) or _first_that_decodes(lambda: iter((data,)), source)


def _encoding_of_file(source: Path) -> str:
    with open(source, "rb") as raw:
        head = raw.read(4)
    if found := _bom_encoding(head):
        return found

    def blocks() -> Iterator[bytes]:
        with open(source, "rb") as raw:
            while block := raw.read(_BLOCK_BYTES):
                yield block

    return _first_that_decodes(blocks, source)


def _first_that_decodes(blocks: Callable[[], Iterator[bytes]], source: Path) -> str:
    """UTF-8 if every block decodes as UTF-8, else the fallback (with a warning), else an error."""
    if b"\x00" in next(blocks(), b"")[:SAMPLE_BYTES]:  # valid UTF-8, but no CSV holds zero bytes
        raise _file_error(source, "encoding", "holds zero bytes, as UTF-16 without a byte order mark does; "
                          "pass encoding='utf-16-le' (or 'utf-16-be').")
    if (bad_line := _first_bad_line(blocks(), "utf-8")) is None:
        return "utf-8"
    if _first_bad_line(blocks(), FALLBACK_ENCODING) is None:
        warnings.warn(f"{source} is not UTF-8 (line {bad_line} is the first that is not), so it was read as "
                      f"{FALLBACK_ENCODING} (Windows, Western European); if accents look wrong, pass its encoding, "
                      "e.g. encoding='latin-1'.", stacklevel=2)
        return FALLBACK_ENCODING
    raise _file_error(source, "encoding", f"is neither UTF-8 nor {FALLBACK_ENCODING} (line {bad_line}); pass its "
                      "encoding, e.g. encoding='latin-1' (on the command line: --encoding latin-1).")


def _first_bad_line(blocks: Iterable[bytes], encoding: str) -> int | None:
    """None if the blocks decode, else the line holding the first byte that does not."""
    decoder = codecs.getincrementaldecoder(encoding)()
    lines = 1
    for block in blocks:
        try:
            decoder.decode(block)
        except UnicodeError as exc:  # utf-16 without a BOM raises a bare UnicodeError, with no position
            return lines + block.count(b"\n", 0, max(getattr(exc, "start", 0), 0))
        lines += block.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeError:
        return lines
    return None


def _decoded(data: bytes, encoding: str, source: Path) -> str:
    try:
        return data.decode(encoding)
    except UnicodeError as exc:  # utf-16 without a BOM raises a bare UnicodeError, with no position
        line = data.count(b"\n", 0, getattr(exc, "start", 0)) + 1
        raise _file_error(source, "encoding", f"line {line} is not {encoding}; pass the file's encoding, "
                          "e.g. encoding='cp1252'.") from None


# --- Separator and rows ---------------------------------------------------------------------


def _sniff(sample: str, source: Path) -> tuple[str, str]:
    """The separator (and quote character) ``csv.Sniffer`` sees, if the header line holds it."""
    sample = sample.lstrip("\r\n")
    header = sample.partition("\n")[0]
    in_header = [sep for sep in SEPARATORS if sep in header]
    try:  # whole lines only: a cut-off last row would mislead it
        guessed: Any = csv.Sniffer().sniff(sample[: sample.rfind("\n") + 1] or sample, delimiters="".join(SEPARATORS))
    except csv.Error:
        guessed = None
    if guessed is not None and guessed.delimiter in header:
        return guessed.delimiter, guessed.quotechar or '"'
    if len(in_header) <= 1:
        return (in_header or [","])[0], '"'  # no candidate at all: one column, nothing to split
    counts = ", ".join(f"{header.count(sep)} × {_shown_sep(sep)}" for sep in in_header)
    guess = f"; csv.Sniffer guessed {_shown_sep(guessed.delimiter)}" if guessed is not None else ""
    raise _file_error(source, "sep", f"cannot tell the separator: the header line holds {counts}{guess}. Pass it, e.g. "
                      f"sep={in_header[-1]!r} (on the command line: --sep {_shown_sep(in_header[-1])}).")


def _shown_sep(sep: str) -> str:
    return "tab" if sep == "\t" else repr(sep)


def _parse(text: str, source: Path, sep: str, quotechar: str) -> pd.DataFrame:
    try:
        # index_col=False: a row wider than the header must not turn its first cells into an index.
        return pd.read_csv(io.StringIO(text, newline=None), sep=sep, quotechar=quotechar, index_col=False, dtype=str,
                           keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise _file_error(source, "path", "the file is empty: it needs a header line naming the columns.") from None
    except pd.errors.ParserError as exc:
        raise _file_error(source, "sep", f"rows do not split evenly on {_shown_sep(sep)} ({exc}). A cell holding the "
                          "separator must be quoted; or pass the right separator, e.g. sep=';'.") from None


def _record_lines(text: str, sep: str, quotechar: str, source: Path, *, first_line: int = 1) -> tuple[list[str], list[int]]:
    """The header's cells, and the line each record starts on (the header's first), counted as
    pandas counts rows (blank lines skipped); ``text`` starts on line ``first_line`` of the file.

    Refuses a row with more cells than the header has names: its cells would land under the
    wrong columns (one with fewer is fine: its last cells are empty).
    """
    reader = csv.reader(io.StringIO(text, newline=None), delimiter=sep, quotechar=quotechar)
    starts: list[int] = []
    width = previous_end = 0
    header: list[str] = []
    for row in reader:
        if row and not (len(row) == 1 and not row[0].strip()):
            header = header or row
            width = width or len(row)
            if len(row) > width:
                raise _file_error(source, "sep", _too_wide(previous_end + first_line, len(row), header, sep, starts))
            starts.append(previous_end + first_line)
        previous_end = reader.line_num
    return header, starts or [first_line]


def _too_wide(line: int, cells: int, header: list[str], sep: str, starts: list[int]) -> str:
    """Why a row wider than the header is refused: most often an unquoted separator, or a title line."""
    if len(header) == 1 and len(starts) == 1:  # the first row after a one-cell "header"
        return (f"line {starts[0]} holds one cell ({header[0]!r}) but line {line} has {cells} cells on {_shown_sep(sep)}. "
                f"If line {starts[0]} is a title above the header, delete it from the file (or pass the separator, "
                "e.g. sep=';', if it is another).")
    return (f"line {line} has {cells} cells on {_shown_sep(sep)} but the header names {len(header)} columns. A cell holding "
            "the separator must be quoted; or pass the right separator, e.g. sep=';'.")


def _warn_repeated_headers(header: list[str], header_line: int, source: Path) -> None:
    """Warn when the header names a column twice: pandas keeps both, the copy renamed ``Phone.1``,
    which no API field is named like, so its values would silently go unused."""
    counts: dict[str, int] = {}
    for name in filter(None, header):  # empty names are pandas' "Unnamed: 0", "Unnamed: 1"...
        counts[name] = counts.get(name, 0) + 1
    for name, count in counts.items():
        if count > 1:
            copies = ", ".join(repr(f"{name}.{n}") for n in range(1, count))
            warnings.warn(f"{source}: the header (line {header_line}) names {name!r} {count} times; the copies are "
                          f"read as {copies}. Rename them in the file, or choose which one to import, e.g. "
                          f"suggest_columns(frame, overrides={{{name!r}: None, {name + '.1'!r}: ...}}).", stacklevel=3)


# --- Column names ---------------------------------------------------------------------------


def _normal(name: str) -> str:
    return _NOT_LETTER_OR_DIGIT.sub("", name.casefold())


@functools.cache
def _field_names() -> dict[str, str]:
    """Normalised header -> wire path: the API's paths (so snake_case too), top-level labels,
    ``EVERYDAY_NAMES``."""
    table: dict[str, str] = {}
    for path in wire_paths(Patient):
        table[_normal(path)] = path
        if "." not in path:
            table.setdefault(_normal(facts(*field_at(Patient, path)).label), path)
    for path, names in EVERYDAY_NAMES.items():
        for name in names:
            if table.setdefault(_normal(name), path) != path:
                raise AssertionError(f"{name!r} names both {table[_normal(name)]} and {path}")
    return table


def field_for(header: Any) -> str | None:
    """The API field (wire path) a header names, or None."""
    return _field_names().get(_normal(header)) if isinstance(header, str) else None


def find_column(columns: Iterable[Any], field: str, given: str | None, *, source: Any, option: str) -> str:
    """The column holding ``field``: ``given`` if it exists, else the one column named like the field.

    ``option`` is the argument that names it (``phone_col``): the errors say how to pass it.
    """
    columns = list(columns)
    shown = ", ".join(map(str, columns))
    how = f"pass {option}='NAME' (on the command line: --{option.replace('_', '-')} NAME)"
    if given is not None:
        if given in columns:
            return given
        raise ValidationError(str(source), [FieldError(option, f"{source} has no column {given!r}; its columns are: {shown}.")])
    found = [str(col) for col in columns if field_for(col) == field]
    exact = [col for col in found if col == field]
    if len(exact) == 1 or len(found) == 1:
        return (exact or found)[0]
    noun = field.removesuffix("Number").lower()
    if not found:
        message = f"{source} has no {noun} column; its columns are: {shown}; {how}."
    else:
        message = f"{source} has {len(found)} {noun} columns ({', '.join(map(str, found))}); {how} to choose."
    raise ValidationError(str(source), [FieldError(option, message)])


class ColumnMapping(MutableMapping[str, str]):
    """A file's column names -> the API's field names, and the columns it ignores.

    A mapping from CSV column to wire path (``"First Name" -> "firstName"``); change it like a
    dict (``mapping["Cell 2"] = "phoneNumber"``, ``del mapping["Notes"]`` to ignore a column),
    then ``apply`` it. Ignored columns stay in the frame and are carried into the import's
    results untouched, never sent.
    """

    def __init__(self, columns: Iterable[str], mapped: Mapping[str, str]):
        if isinstance(columns, (str, bytes)) or not isinstance(columns, Iterable):
            problem = f"Expected the file's column names (e.g. list(frame.columns)), got {type(columns).__name__}."
            raise ValidationError("ColumnMapping", [FieldError("columns", problem)])
        if not isinstance(mapped, Mapping):
            problem = f"Expected a mapping of column -> API field, got {type(mapped).__name__}."
            raise ValidationError("ColumnMapping", [FieldError("mapped", problem)])
        self.columns = list(columns)
        self._mapped: dict[str, str] = {}
        for column, path in mapped.items():
            self[column] = path

    def __getitem__(self, column: str) -> str:
        return self._mapped[column]

    def __setitem__(self, column: str, path: str) -> None:
        if column not in self.columns:
            raise _mapping_error(column, f"No such column; the columns are: {', '.join(map(str, self.columns))}.")
        wire = field_for(path)
        if wire is None:
            raise _mapping_error(column, f"{path!r} is not an API field; the fields are: {', '.join(_known_paths())}.")
        self._mapped[column] = wire

    def __delitem__(self, column: str) -> None:
        """Ignore ``column``: an ignored column stays ignored (not a ``KeyError``), an unknown one is refused."""
        if column not in self.columns:
            raise _mapping_error(column, f"No such column; the columns are: {', '.join(map(str, self.columns))}.")
        self._mapped.pop(column, None)

    def __iter__(self) -> Iterator[str]:
        return (column for column in self.columns if column in self._mapped)

    def __len__(self) -> int:
        return len(self._mapped)

    @property
    def ignored(self) -> list[str]:
        """Every column that names no API field: kept in the frame, not sent."""
        return [column for column in self.columns if column not in self._mapped]

    @property
    def conflicts(self) -> dict[str, list[str]]:
        """Fields that two or more columns name (``phoneNumber: [Phone, Mobile]``): which would win is a guess."""
        by_field: dict[str, list[str]] = {}
        for column, path in self.items():
            by_field.setdefault(path, []).append(column)
        return {path: columns for path, columns in by_field.items() if len(columns) > 1}

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the API's column names; ignored columns kept as they are (and ``attrs``, index)."""
        if not isinstance(frame, pd.DataFrame):
            raise _mapping_error(None, f"Expected a pandas DataFrame, got {type(frame).__name__}.")
        problems = [FieldError(column, "Not in this frame: make the mapping from it, nb.bulk.suggest_columns(frame).")
                    for column in self if column not in frame.columns]
        for path, columns in self.conflicts.items():
            keep, *others = columns
            problems.append(FieldError(path, f"Columns {', '.join(map(repr, columns))} all name {path}; keep one, e.g. "
                                             f"del mapping[{others[0]!r}] (or overrides={{{others[0]!r}: None}})."))
        renamed = [self[c] for c in self if c != self[c]]
        problems += [FieldError(path, f"The ignored column {path!r} already has this name; rename or drop it first.")
                     for path in renamed if path in self.ignored]
        if problems:
            raise ValidationError("the column mapping", problems)
        return frame.rename(columns=dict(self))

    def __repr__(self) -> str:
        lines = [f"ColumnMapping: {len(self)} of {len(self.columns)} columns name API fields"]
        lines += [f"  {column!r:<24} -> {path}{self._flag(path)}" for column, path in self.items()]
        if self.ignored:
            lines.append(f"  ignored (kept, not sent): {', '.join(map(repr, self.ignored))}")
        return "\n".join(lines)

    def _flag(self, path: str) -> str:
        return "   ! also named by another column" if path in self.conflicts else ""

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(str(column))}</td><td>{self._html_field(column)}</td></tr>" for column in self.columns
        )
        caption = f"{len(self)} of {len(self.columns)} columns name API fields, {len(self.ignored)} ignored"
        return (f"<table><caption>{html.escape(caption)}</caption><thead><tr><th style=\"text-align:left\">CSV column</th>"
                f"<th style=\"text-align:left\">API field</th></tr>"
                f"</thead><tbody>{rows}</tbody></table>")

    def _html_field(self, column: str) -> str:
        if column not in self._mapped:
            return "<em>ignored (kept, not sent)</em>"
        path = self._mapped[column]
        return f"<code>{html.escape(path)}</code>" + (" <strong>⚠ named twice</strong>" if path in self.conflicts else "")


def _distinct_names(columns: list[Any]) -> list[Any]:
    """``columns`` with each repeated name's copies numbered (``Phone``, ``Phone 2``), for an error's example."""
    seen: dict[Any, int] = {}
    names = []
    for name in columns:
        seen[name] = seen.get(name, 0) + 1
        names.append(f"{name} {seen[name]}" if seen[name] > 1 else name)
    return names


def _known_paths() -> list[str]:
    return wire_paths(Patient)


def _mapping_error(column: str | None, message: str) -> ValidationError:
    return ValidationError("the column mapping", [FieldError(column, message)])


def suggest_columns(frame: pd.DataFrame, *, overrides: Mapping[str, str | None] | None = None) -> ColumnMapping:
    """Which API field each column of ``frame`` holds, by its header: everyday headers
    ("First Name", "DOB", "Phone") -> API fields (firstName, dateOfBirth, phoneNumber).

    Args:
        frame: the file as read (``read_csv``).
        overrides: corrections, column -> API field, or None to ignore the column.

    Returns:
        A ``ColumnMapping``: shows what maps to what and every ignored column; ``.apply(frame)``
        renames. Two columns naming one field are flagged (``.conflicts``) and ``apply``
        refuses them until one is dropped.
    """
    if not isinstance(frame, pd.DataFrame):
        raise _mapping_error(None, f"Expected a pandas DataFrame, got {type(frame).__name__}.")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise _mapping_error(None, f"overrides must be a dict of column -> API field, got {type(overrides).__name__}.")
    columns = list(frame.columns)
    if repeated := list(dict.fromkeys(frame.columns[frame.columns.duplicated()])):
        # A mapping is keyed by name: it could neither tell the copies apart nor rename one of them.
        raise ValidationError("the column mapping", [
            FieldError(str(name), f"This column name appears more than once; rename the copies first, e.g. "
                                  f"frame.columns = {_distinct_names(columns)!r}.")
            for name in repeated])
    suggested = {column: path for column in columns if (path := field_for(column)) is not None}
    mapping = ColumnMapping(columns, suggested)
    for column, path in (overrides or {}).items():
        if path is None:
            if column not in columns:
                raise _mapping_error(column, f"No such column; the columns are: {', '.join(map(str, columns))}.")
            mapping.pop(column, None)
        else:
            mapping[column] = path
    return mapping
