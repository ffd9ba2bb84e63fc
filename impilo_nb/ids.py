"""External identifiers derived from email and phone, as the patient-management guide shows.

The rule, exactly as the guide's Java and JavaScript snippets compute it:

    md5_hex( utf8( lower(email) + phone with every character except ASCII 0-9 removed ) )

- ``lower`` is Unicode lower-casing with no locale (Java's ``toLowerCase()`` in a non-Turkish
  locale, JavaScript's ``toLowerCase()``, Python's ``str.lower()``: they agree on every test
  vector, final sigma and dotted capital I included).
- Only ASCII digits survive in the phone. Java's ``\\D`` and JavaScript's ``/\\D/`` are ASCII-only;
  Python's ``\\D`` is Unicode-aware, so the guide's *Python* snippet keeps digits such as ``٣``
  or ``３`` and produces a different id for such phones. This module matches Java and JavaScript.
- Nothing is trimmed: a stray space changes the id (``id_hazards`` reports it).
- Only text is hashed. Both ``external_id`` and ``external_ids`` refuse a number (or any other
  non-``str`` value) rather than convert it: ``pd.read_csv`` without ``dtype=str`` reads the
  phone ``004412...`` as the float ``4412....0``, which has already lost the leading zeros and
  the ``+``, so no conversion can be trusted to give the id the other system computes from the
  text. Read files with ``dtype=str`` (``hash_csv`` always does).

``tests/data/external_id_vectors.tsv`` holds 260 pairs computed by the guide's own snippets.

``external_ids`` is vectorised: each batch of rows is normalised with a few whole-column
operations and hashed by ``_md5`` (MD5 in numpy, one 64-byte block per row), several times
faster than a loop over ``hashlib`` (``bench/ids.py``), and gives exactly the ids
``external_id`` gives, whatever the script (the tests compare the two on random Unicode).

**Plain or keyed?** A plain MD5 of email + phone is a pseudonym, not a secret: anyone who can
guess an email and a phone number can compute it and look the patient up. Use the plain form
when the id must match what another system computes from the guide. Where you choose the
scheme yourself, pass ``key=`` for HMAC-SHA256: without the key the id cannot be recomputed
from guessed inputs. Keep the key out of notebooks and version control.
"""

from __future__ import annotations

import hashlib
import hmac
import numbers
import os
import re
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pandas as pd

from . import _md5
from ._csvfiles import CsvFormat, detect_format, find_column
from .errors import FieldError, ValidationError
from .models import is_valid_unicode

__all__ = ["HashSummary", "external_id", "external_ids", "hash_csv", "id_hazards", "id_hazards_frame"]

_NOT_ASCII_DIGIT = re.compile(r"[^0-9]")
_ASCII_NON_DIGITS = bytes(b for b in range(128) if not 0x30 <= b <= 0x39)
_NON_DIGIT_BYTES = bytes(b for b in range(256) if not 0x30 <= b <= 0x39)

#: Joins a column's values into one text for the vectorised path; a batch that has it inside a
#: value takes the value-by-value path instead.
_SEPARATOR = "\x00"

#: Rows hashed per batch by ``external_ids``: bounds the temporary arrays a batch needs, and
#: keeps them in the CPU cache (measured: 16,384 to 65,536 rows equally fast, 131,072 ~10% slower).
CHUNK_ROWS = _md5.BATCH_ROWS

#: Fewer ASCII digits than this in a phone number makes ids easy to guess or to collide.
MIN_PHONE_DIGITS = 7

#: How to read a file so that every cell stays the text it was, and only empty cells are missing.
READ_AS_TEXT = "pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[''])"

#: Offending rows an error lists before it says "and N more".
SHOWN_ROWS = 5

_WHY_TEXT = (
    "Ids are hashed from the text as typed; a number has already lost a phone's formatting "
    "(leading zeros, '+'), so no conversion can be trusted to give the id other systems compute. "
    f"Read the file as text: {READ_AS_TEXT}."
)


def _key_bytes(key: str | bytes | None) -> bytes | None:
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, bytes) or len(key) < 16:
        raise ValidationError(
            "key", [FieldError("key", "A key must be at least 16 bytes (str or bytes); use secrets.token_hex(32).")]
        )
    return key


def _phone_digits(phone: str) -> bytes:
    # bytes.translate is ~6x faster than a regex; it is exact only for ASCII text, so anything
    # else takes the regex, which drops every character but ASCII 0-9 (as Java's \D does).
    if phone.isascii():
        return phone.encode("ascii").translate(None, _ASCII_NON_DIGITS)
    return _NOT_ASCII_DIGIT.sub("", phone).encode("ascii")


def _identifier_bytes(email: str, phone: str) -> bytes:
    return email.lower().encode("utf-8") + _phone_digits(phone)


def _is_missing(value: Any) -> bool:
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def _describe(value: Any) -> str:
    """``4295559847.0 (a number)`` or ``b'1' (bytes)``: a value that is not text, for an error."""
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return f"{value} (a number)"  # str, not repr: numpy's repr would read np.int64(5550100)
    return f"{value!r} ({type(value).__name__})"


def _not_text(field: str, value: Any) -> FieldError:
    if _is_missing(value):
        return FieldError(field, f"Is missing ({value!r}); an id needs both values. external_ids gives <NA> for rows with a gap.")
    return FieldError(field, f"Must be text (str), got {_describe(value)}. {_WHY_TEXT}")


def _text_errors(columns: dict[str, pd.Series]) -> list[FieldError]:
    """One complaint per column holding values that are neither text nor missing, naming the rows."""
    errors = []
    for field, values in columns.items():
        if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
            continue  # the common case, decided in C; anything else is checked value by value
        bad = [
            (label, v)
            for label, v in zip(values.index.tolist(), values.tolist(), strict=True)
            if not isinstance(v, str) and not _is_missing(v)
        ]
        if bad:
            shown = ", ".join(f"row {label!r}: {_describe(v)}" for label, v in bad[:SHOWN_ROWS])
            more = f" and {len(bad) - SHOWN_ROWS} more" if len(bad) > SHOWN_ROWS else ""
            errors.append(FieldError(field, f"{len(bad)} of {len(values)} values are not text ({shown}{more}). {_WHY_TEXT}"))
    return errors


def _unencodable_errors(columns: dict[str, pd.Series]) -> list[FieldError]:
    """Emails that are not valid Unicode (a lone surrogate, e.g. from a file read with
    ``errors="surrogateescape"``): they have no UTF-8 bytes, so no system could hash them. (A
    phone's surrogate is dropped like any other non-digit.)"""
    errors = []
    for field, values in columns.items():
        bad = [label for label, v in zip(values.index.tolist(), values.tolist(), strict=True)
               if isinstance(v, str) and not is_valid_unicode(v)]
        if bad:
            shown = ", ".join(f"row {label!r}" for label in bad[:SHOWN_ROWS])
            errors.append(FieldError(field, f"{len(bad)} value(s) hold a lone surrogate, not valid Unicode ({shown}); "
                                            "read the file with its real encoding (e.g. encoding='utf-8')."))
    return errors



def external_id(email: str, phone: str, *, key: str | bytes | None = None) -> str:
    """The external identifier for one email and phone (see the module docstring).

    Args:
        email: text (``str``), used lower-cased, untrimmed.
        phone: text (``str``); only its ASCII digits are used. A number is refused, not
            converted: it has already lost the phone's leading zeros and ``+``.
        key: when given, HMAC-SHA256 with this key instead of plain MD5.

    Returns:
        32 lowercase hex characters (MD5), or 64 with a key.

    Raises:
        ValidationError: email or phone is not a ``str`` (a number, None, NaN...).
    """
    errors = [_not_text(name, value) for name, value in (("email", email), ("phone", phone)) if not isinstance(value, str)]
    if errors:
        raise ValidationError("external_id", errors)
    if errors := _unencodable_errors({"email": pd.Series([email])}):
        raise ValidationError("external_id", errors)
    data = _identifier_bytes(email, phone)
    secret = _key_bytes(key)
    if secret is not None:
        return hmac.new(secret, data, hashlib.sha256).hexdigest()
    return hashlib.md5(data).hexdigest()


def external_ids(
    emails: pd.Series | pd.DataFrame,
    phones: pd.Series | str | None = None,
    *,
    email_col: str | None = None,
    key: str | bytes | None = None,
) -> pd.Series:
    """External identifiers for whole columns: ``external_ids(df.email, df.phone)``.

    Or pass a DataFrame and the two column names: ``external_ids(df, "phone", email_col="email")``
    (the email column defaults to ``"email"``). A row with a missing email or phone (None, NaN,
    ``pd.NA``) gets a missing id (``<NA>``). Every other value must be text, as for
    ``external_id``: a column holding numbers (``pd.read_csv`` without ``dtype=str``) raises a
    ValidationError naming the rows, since the numbers have lost the phones' formatting and
    would hash to ids no other system computes. Returns a string Series aligned with the input.
    """
    if isinstance(emails, pd.DataFrame):
        frame = emails
        phone_col = phones if isinstance(phones, str) else "phone"
        email_col = email_col or "email"
        for col in (email_col, phone_col):
            if col not in frame.columns:
                raise ValidationError("external_ids", [FieldError(col, f"No such column; columns are {list(frame.columns)}.")])
        emails, phones = frame[email_col], frame[phone_col]
    if not isinstance(emails, pd.Series) or not isinstance(phones, pd.Series):
        raise ValidationError("external_ids", [FieldError(None, "Pass two Series, or a DataFrame and column names.")])
    if len(emails) != len(phones):
        raise ValidationError("external_ids", [FieldError(None, f"{len(emails)} emails but {len(phones)} phones.")])
    if not emails.index.equals(phones.index):  # rows are paired by position: another order would pair other people
        problem = ("The emails and phones have different indexes, so their rows would be paired by position, not by"
                   " label. Align them first (phones.reindex(emails.index)), or pair them by position on purpose"
                   " (both .reset_index(drop=True)).")
        raise ValidationError("external_ids", [FieldError(None, problem)])
    secret = _key_bytes(key)
    named = {(s.name if isinstance(s.name, str) else role): s for role, s in (("email", emails), ("phone", phones))}
    if errors := _text_errors(named):
        raise ValidationError("external_ids", errors)
    digests = np.empty(len(emails), dtype=object)  # an object array becomes a string Series twice as fast as a list
    try:
        for begin in range(0, len(emails), CHUNK_ROWS):
            chunk = _hash_chunk(emails.iloc[begin : begin + CHUNK_ROWS], phones.iloc[begin : begin + CHUNK_ROWS], secret)
            digests[begin : begin + len(chunk)] = np.array(chunk, dtype=object)
    except UnicodeEncodeError:  # rare, so looked for only when it happens
        raise ValidationError("external_ids", _unencodable_errors({"email": emails})) from None
    return pd.Series(digests, index=emails.index, dtype="string", name="externalIdentifier")


def _hash_chunk(emails: pd.Series, phones: pd.Series, secret: bytes | None) -> list[str | None]:
    """Ids for one batch, ``None`` where the email or the phone is missing.

    Every value must already be text or missing (callers check, or read as text): nothing here
    converts, so a number that slipped through fails loudly instead of hashing its repr.
    """
    email_missing, phone_missing = emails.isna().to_numpy(), phones.isna().to_numpy()
    email_values, phone_values = emails.to_numpy(dtype=object, copy=True), phones.to_numpy(dtype=object, copy=True)
    email_values[email_missing] = phone_values[phone_missing] = ""
    out: list[str | None]
    if secret is None:
        out = list(_md5_ids(email_values, phone_values))
    else:
        out = [
            hmac.new(secret, _identifier_bytes(e, p), hashlib.sha256).hexdigest()
            for e, p in zip(email_values.tolist(), phone_values.tolist(), strict=True)
        ]
    for index in np.flatnonzero(email_missing | phone_missing).tolist():
        out[index] = None
    return out


def _md5_ids(emails: npt.NDArray[np.object_], phones: npt.NDArray[np.object_]) -> list[str]:
    """Plain ids for text columns, vectorised (``_md5``): the hot path of a million-row file.

    Each column is joined into one text, normalised in a few C-speed calls, and cut back into
    rows where the separators were; see ``_email_part`` and ``_phone_digits_part`` for why
    that gives exactly what ``external_id`` gives row by row.
    """
    email_list, phone_list = emails.tolist(), phones.tolist()
    return _md5.hexdigests([_email_part(email_list), _phone_digits_part(phone_list)], len(email_list))


def _email_part(emails: list[str]) -> _md5.Pieces:
    """The lower-cased emails as UTF-8, cut from one buffer.

    ``str.lower`` is quick on ASCII text but several times slower on any other, and on ASCII it
    maps A-Z to a-z and nothing else. So only the emails with a non-ASCII character go through
    ``str.lower`` (one by one, since a capital sigma's lower case depends on its neighbours),
    and the ASCII letters of the whole batch are lowered at once as bytes: in UTF-8 the bytes
    0x41-0x5A stand for A-Z and nothing else, and a lowered email has no A-Z left to change.
    """
    joined = _SEPARATOR.join(emails)
    text = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)
    pieces = _pieces_between_separators(text)
    if len(pieces.starts) != len(emails):  # a separator inside an email: go one by one
        encoded = [email.lower().encode("utf-8") for email in emails]
        return _md5.Pieces.back_to_back(b"".join(encoded), np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)))
    if not joined.isascii():
        non_ascii_bytes = np.zeros(len(text) + 1, dtype=np.uint8)  # 0x80 and above: part of a non-ASCII character
        non_ascii_bytes[:-1] = text >= 0x80
        lowered = list(emails)
        for row in np.flatnonzero(np.add.reduceat(non_ascii_bytes, pieces.starts, dtype=np.int64)).tolist():
            lowered[row] = emails[row].lower()
        text = np.frombuffer(_SEPARATOR.join(lowered).encode("utf-8"), dtype=np.uint8)
        pieces = _pieces_between_separators(text)
    text = text.copy()
    text += (text - np.uint8(ord("A")) < 26) * np.uint8(ord("a") - ord("A"))
    return pieces._replace(data=text)


def _phone_digits_part(phones: list[str]) -> _md5.Pieces:
    """The phones' ASCII digits, back to back.

    In UTF-8 the bytes 0x30-0x39 stand for the ASCII digits and nothing else (every byte of a
    non-ASCII character is 0x80 or above), so the digit bytes of the joined UTF-8 text are
    exactly ``_phone_digits`` of each phone. ``surrogatepass`` lets a lone surrogate through as
    bytes that are no digit, as the scalar rule drops it.
    """
    text = _SEPARATOR.join(phones).encode("utf-8", "surrogatepass")
    codes = np.frombuffer(text, dtype=np.uint8)
    starts = np.concatenate(([0], np.flatnonzero(codes == 0) + 1))
    if len(starts) != len(phones):  # a separator inside a phone: go one by one
        digits = [_phone_digits(phone) for phone in phones]
        return _md5.Pieces.back_to_back(b"".join(digits), np.fromiter(map(len, digits), dtype=np.int64, count=len(digits)))
    # Digits per phone: a 0/1 flag per byte, summed from each phone's start to the next's (its
    # separator included, which is no digit). The extra 0 keeps a last, empty phone in range.
    flags = np.zeros(len(codes) + 1, dtype=np.uint8)
    flags[:-1] = codes - np.uint8(ord("0")) < 10
    return _md5.Pieces.back_to_back(text.translate(None, _NON_DIGIT_BYTES), np.add.reduceat(flags, starts, dtype=np.int64))


def _pieces_between_separators(text: npt.NDArray[np.uint8]) -> _md5.Pieces:
    """The values of a separator-joined UTF-8 text (UTF-8 has a zero byte for U+0000 only)."""
    ends = np.append(np.flatnonzero(text == 0), len(text))
    starts = np.concatenate(([0], ends[:-1] + 1))
    return _md5.Pieces(text, starts, ends - starts)


def id_hazards(email: Any, phone: Any) -> list[str]:
    """Reasons the id for this email and phone may differ between systems, or be weak.

    An empty list means no known hazard. Each reason is a sentence a person can act on.
    """
    hazards: list[str] = []
    if not isinstance(email, str) or not email:
        hazards.append("The email is empty: every patient without one shares ids more easily.")
        email = ""
    if not isinstance(phone, str) or not phone:
        hazards.append("The phone is empty.")
        phone = ""
    if email != email.strip():
        hazards.append(
            "The email has leading or trailing spaces; the guide does not trim them, so other systems may see another id."
        )
    if phone != phone.strip():
        hazards.append("The phone has leading or trailing spaces (harmless to the id, but a sign of untidy data).")
    if email and not email.isascii():
        hazards.append(
            "The email has non-ASCII characters: lower-casing and encoding them depends on the platform "
            "(Java's getBytes() uses the platform charset, locales differ), so check the other system's id."
        )
    if "I" in email:
        hazards.append("The email has a capital I: Java in a Turkish locale lower-cases it to 'ı', giving another id.")
    other_digits = sorted({ch for ch in phone if unicodedata.category(ch) == "Nd" and not ("0" <= ch <= "9")})
    if other_digits:
        hazards.append(
            f"The phone has non-ASCII digits ({''.join(other_digits)}): Java and JavaScript drop them "
            "(as this toolkit does), the guide's Python snippet keeps them."
        )
    ascii_digits = len(_NOT_ASCII_DIGIT.sub("", phone))
    if phone and ascii_digits < MIN_PHONE_DIGITS:
        hazards.append(f"The phone has only {ascii_digits} ASCII digits: ids are easy to guess and may collide.")
    if email.strip() and not _looks_like_email(email.strip()):
        hazards.append("The email does not look like an email address.")
    return hazards


def id_hazards_frame(frame: pd.DataFrame, *, email_col: str = "email", phone_col: str = "phone") -> pd.DataFrame:
    """Hazards per row: the input's email and phone, ``hazard_count`` and ``hazards`` (joined text).

    Rows with no hazard have count 0 and an empty text, so ``result[result.hazard_count > 0]``
    lists the rows to look at.
    """
    for col in (email_col, phone_col):
        if col not in frame.columns:
            raise ValidationError("id_hazards_frame", [FieldError(col, f"No such column; columns are {list(frame.columns)}.")])
    found = [
        id_hazards(e if isinstance(e, str) else None, p if isinstance(p, str) else None)
        for e, p in zip(frame[email_col], frame[phone_col], strict=True)
    ]
    return pd.DataFrame(
        {
            email_col: frame[email_col],
            phone_col: frame[phone_col],
            "hazard_count": pd.Series([len(h) for h in found], index=frame.index, dtype="Int64"),
            "hazards": pd.Series([" | ".join(h) for h in found], index=frame.index, dtype="string"),
        }
    )


def _looks_like_email(text: str) -> bool:
    import email_validator

    try:
        email_validator.validate_email(text, check_deliverability=False)
    except email_validator.EmailNotValidError:
        return False
    return True


#: Rows per chunk when streaming a CSV. Peak RSS stays ~130 MiB whatever the file size (2M rows
#: measured); at 200,000 it grew with the file, so smaller batches it is, at no cost in speed.
CSV_CHUNK_ROWS = 50_000

#: Name of the column ``hash_csv`` adds.
ID_COLUMN = "externalIdentifier"


@dataclass(frozen=True)
class HashSummary:
    """What ``hash_csv`` did: rows written, rows without an id (missing email or phone), seconds."""

    rows: int
    missing: int
    seconds: float

    def __str__(self) -> str:
        rate = self.rows / self.seconds if self.seconds else 0
        return f"{self.rows:,} rows ({self.missing:,} without an id) in {self.seconds:.1f} s, {rate:,.0f} rows/s"


def hash_csv(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    email_col: str | None = None,
    phone_col: str | None = None,
    key: str | bytes | None = None,
    chunk_rows: int = CSV_CHUNK_ROWS,
    progress: bool = True,
    sep: str | None = None,
    encoding: str | None = None,
) -> HashSummary:
    """Copy a CSV, adding an ``externalIdentifier`` column, one chunk at a time.

    Memory stays bounded by ``chunk_rows`` whatever the file's size. Every cell is read as
    text (a phone's leading zeros survive); an empty email or phone cell gives an empty id.
    The file is read as ``nb.bulk.read_csv`` reads it (separator and encoding detected unless
    given) and written with the same separator and encoding. The email and phone columns are
    found by name when not given (``email``, ``E-mail``...; ``phoneNumber``, ``Phone``,
    ``Mobile``...: the names ``nb.bulk.suggest_columns`` knows). Every check is made before the
    first row is read, so an error never follows a progress bar. The progress bar counts bytes.

    Raises:
        ValidationError: no such file, the destination is the source, an encoding or separator
            that cannot be told, or no (or several) email or phone columns, a destination folder
            that does not exist; each message names the file and its columns and says what to pass.
    """
    source, destination = _checked_paths(source, destination)
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValidationError(str(source), [FieldError("chunk_rows", f"Rows per chunk must be a whole number of at least 1 "
                                                                     f"(default {CSV_CHUNK_ROWS:,}), got {chunk_rows!r}.")])
    secret = _key_bytes(key)
    form = detect_format(source, sep=sep, encoding=encoding, caller=str(source))
    try:
        header = _read_chunks(source, form, nrows=0).columns
    except pd.errors.EmptyDataError:
        raise ValidationError(str(source), [FieldError("source", f"{source} is empty: it needs a header line.")]) from None
    email_col = find_column(header, "email", email_col, source=source, option="email_col")
    phone_col = find_column(header, "phoneNumber", phone_col, source=source, option="phone_col")
    return _hash_file(source, destination, form, (email_col, phone_col), secret, chunk_rows=chunk_rows, progress=progress)


def _checked_paths(source: Any, destination: Any) -> tuple[Path, Path]:
    """The input and output paths, once the input is a file and the output can be written beside it."""
    for name, value in (("source", source), ("destination", destination)):
        if not isinstance(value, (str, os.PathLike)):
            raise ValidationError(name, [FieldError(name, f"Expected a file path (str or Path), got {type(value).__name__}.")])
    source, destination = Path(source), Path(destination)
    problem = None
    if source.is_dir():
        problem = FieldError("source", f"{source} is a folder, not a file; give the CSV file's path.")
    elif not source.is_file():
        problem = FieldError("source", f"No such file: {source} (the working folder is {Path.cwd()}).")
    elif destination.is_dir():
        problem = FieldError("destination", f"{destination} is a folder; give a file name, e.g. {destination / source.name}.")
    elif not destination.parent.is_dir():
        problem = FieldError("destination", f"{destination}: the folder {destination.parent} does not exist; create it "
                                            f"first (mkdir -p {destination.parent}) or write elsewhere.")
    elif source.resolve() == destination.resolve() or (destination.exists() and os.path.samefile(source, destination)):
        problem = FieldError("destination", f"{destination} is the input file itself; write to another file.")
    if problem is not None:
        raise ValidationError(str(source), [problem])
    return source, destination


def _read_chunks(source: Path | BinaryIO, form: CsvFormat, **options: Any) -> Any:
    """``pd.read_csv`` over a file in its format, every cell as text (one frame, or chunks with ``chunksize``)."""
    return pd.read_csv(source, sep=form.sep, quotechar=form.quotechar, encoding=form.encoding, dtype=str,
                       keep_default_na=False, na_values=[""], skiprows=form.skiprows, **options)


def _hash_file(
    source: Path, destination: Path, form: CsvFormat, columns: tuple[str, str], secret: bytes | None, *,
    chunk_rows: int, progress: bool,
) -> HashSummary:
    """The streaming copy itself, once every argument is known to be usable."""
    from tqdm.auto import tqdm

    email_col, phone_col = columns
    started = time.perf_counter()
    rows = missing = 0
    try:
        out = open(destination, "w", encoding=form.encoding, newline="")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise ValidationError(str(source), [FieldError("destination", f"{destination} cannot be written "
                                                                      f"({exc.strerror}); write elsewhere.")]) from None
    try:
        with (
            open(source, "rb") as raw,
            out,
            tqdm(total=source.stat().st_size, unit="B", unit_scale=True, desc="hashing", disable=not progress) as bar,
        ):
            for number, chunk in enumerate(_checked_chunks(_read_chunks(raw, form, chunksize=chunk_rows), source, form)):
                ids = pd.Series(_hash_chunk(chunk[email_col], chunk[phone_col], secret), index=chunk.index, dtype="string")
                chunk[ID_COLUMN] = ids
                chunk.to_csv(out, sep=form.sep, header=number == 0, index=False)
                rows += len(chunk)
                missing += int(ids.isna().sum())
                bar.update(raw.tell() - bar.n)
    except BaseException:  # a refused file, a full disk, Ctrl-C: a half-written copy would pass for a complete one
        destination.unlink(missing_ok=True)
        raise
    return HashSummary(rows, missing, time.perf_counter() - started)


def _checked_chunks(chunks: Iterator[pd.DataFrame], source: Path, form: CsvFormat) -> Iterator[pd.DataFrame]:
    """The chunks, with a row the separator does not split evenly reported as the file's fault.

    pandas takes a first row with one cell more than the header names for a file whose first
    column is an index, and would shift every cell one column left (the email read from the
    phone's cell): such chunks come with an index of their own instead of row numbers.
    """
    try:
        for chunk in chunks:
            if not isinstance(chunk.index, pd.RangeIndex):
                raise pd.errors.ParserError(f"the rows have more cells than the header's {len(chunk.columns)} names")
            yield chunk
    except pd.errors.ParserError as exc:
        reason = " ".join(str(exc).split())
        message = (f"{source}: rows do not split evenly on {form.sep!r} ({reason}); a cell holding the separator must be "
                   "quoted, or pass the right separator (--sep).")
        raise ValidationError(str(source), [FieldError("source", message)]) from None
