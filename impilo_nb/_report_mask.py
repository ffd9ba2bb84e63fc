"""Masking personal data in an executed notebook's outputs, before it becomes a page.

Tables are masked by meaning (a column or row labelled with a personal field), free text by
shape (anything that looks like an email or a phone number), so a value the patterns miss is
still hidden when a table says what it is.

Two nets, one rule. ``mask_frame`` masks a DataFrame in the report's kernel, before it is
rendered (``render_for_report(mask=True)``), so no personal value reaches any output of that
frame, in any form. ``mask_personal_data`` then masks the executed notebook's outputs, HTML
and text, whatever produced them: the net for what was not a DataFrame (a Patient's card, a
printed message, an error).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from ._extras import require
from .errors import FieldError, ValidationError


def _personal_fields() -> dict[str, str]:
    """Python name -> wire name of every model field marked ``Facts(personal=True)``."""
    from .fields import facts
    from .models import Address, Patient, Site

    return {
        name: info.alias or name
        for model in (Patient, Address, Site)
        for name, info in model.model_fields.items()
        if facts(model, name).personal
    }


_PERSONAL = _personal_fields()

#: Column (or field) names whose values are personal data, in both spellings, plus the name
#: filter, ``Patient.full_name`` and the everyday "phone"; matched on the last dotted part, so
#: ``payload.firstName`` and ``address.lineOne`` are covered too.
PERSONAL_FIELDS = frozenset({*_PERSONAL, *_PERSONAL.values(), "name", "full_name", "phone"})

#: What a masked value is replaced with.
MASK = "•••"

#: The class of an element whose text is personal data (a widget's "Loaded patient 7: Ana
#: Rivera."): masked whole, since no pattern recognises a name in a sentence.
PERSONAL_CLASS = "impilo-personal"

# A label compared without case, spaces or punctuation: "First name", "first_name" and
# "firstName" are one field (the log view heads its columns "first name", "email").
_PERSONAL_KEYS = frozenset(re.sub(r"[^0-9a-z]", "", name.lower()) for name in PERSONAL_FIELDS)

_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(\.[\w-]+)+", re.UNICODE)
# Phone-like: an optional +, then digits with the usual separators, at least 7 digits in all.
_PHONE = re.compile(r"(?<![\w.])\+?\(?\d[\d ()./-]{5,}\d(?![\w.])")
# What the phone pattern takes of "2025-11-28 16:43:00": a date, and the hour after it.
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2})?$")
# A model's repr: first_name='Ana', date_of_birth=datetime.date(...).
_PYTHON_PERSONAL = re.compile(
    rf"\b({'|'.join(sorted(_PERSONAL))})="
    r"('(?:[^'\\]|\\.)*'|datetime\.date\([^)]*\))"
)
# "email: Not an email address: 'x@'." - validation messages quote the bad value, which may be
# personal data that no pattern recognises (a malformed email is not an email).
_FIELD_MESSAGE = re.compile(r"\b([\w.]+): ([^\n<]*)")
# A quote may run to the end of the text: pandas cuts long cells ("'two@@example.org...").
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*(?:'|$)")


def mask_personal_data(notebook: Any) -> Any:
    """A copy of an executed notebook with personal data masked in every output (errors
    included), and emails and phone numbers masked in the cells' own text, prose and code."""
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        # The author's prose and code may quote a patient too (a page showing code shows them).
        cell["source"] = mask_text(_joined(cell.get("source", "")))
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = mask_text(_joined(output["text"]))
            if output.get("output_type") == "error":  # a cell tagged raises-exception: its message and traceback
                output["evalue"] = mask_text(str(output.get("evalue", "")))
                output["traceback"] = [mask_text(str(line)) for line in output.get("traceback", [])]
            data = output.get("data", {})
            for mime in list(data):
                value = _joined(data[mime])
                if mime == "text/html":
                    data[mime] = mask_html(value)
                elif mime.startswith("text/") or mime == "application/json":
                    data[mime] = mask_text(value if isinstance(value, str) else str(value))
    return notebook


def mask_frame(frame: Any) -> Any:
    """A copy of a DataFrame with personal columns masked, and emails and phone numbers (and
    values quoted in messages about personal fields) masked in every other text cell.

    A column is personal when its label, or the last dotted part of it (``address.lineOne``),
    is in ``PERSONAL_FIELDS`` (case, spaces and underscores aside); the index too, by its
    name; and so is a row labelled with a personal field (a record shown transposed, ``df.T``).
    Missing values stay missing, so a reader still sees which rows had no email.

    Raises:
        ValidationError: ``frame`` is not a pandas DataFrame.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise ValidationError("mask_frame", [FieldError("frame", f"Expected a pandas DataFrame, got {type(frame).__name__}.")])
    masked = _masked_labelled_rows(_masked_columns(frame), frame.index)
    masked.index = _masked_rows(frame.index)
    masked.columns = _masked_labels(frame.columns)  # a header may itself be an email
    return masked


def mask_series(series: Any) -> Any:
    """A copy of a Series masked as ``mask_frame`` masks a one-column frame: all of it when
    its name is a personal field (``df["email"]``), its labels when the index's name is one
    (``df["firstName"].value_counts()``), a value when its label is one (``df.iloc[0]``, a record).

    Raises:
        ValidationError: ``series`` is not a pandas Series.
    """
    import pandas as pd

    if not isinstance(series, pd.Series):
        raise ValidationError("mask_series", [FieldError("series", f"Expected a pandas Series, got {type(series).__name__}.")])
    shown = mask_frame(series.to_frame())  # a nameless Series becomes column 0, never personal
    masked = shown.iloc[:, 0]
    masked.name = None if series.name is None else shown.columns[0]
    return masked


def mask_html(html: str) -> str:
    """Mask elements marked ``PERSONAL_CLASS``, personal columns of every table (by header),
    rows headed by a personal field (a ``<th>`` label then its values), then emails and phone
    numbers anywhere in the text."""
    require("reports", "bs4")
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for marked in soup.select(f".{PERSONAL_CLASS}"):
        marked.string = MASK
    for table in soup.find_all("table"):
        _mask_table(table)
    for node in soup.find_all(string=True):
        if node.parent is not None and node.parent.name in ("script", "style"):
            continue
        masked = mask_text(str(node))
        if masked != node:
            node.replace_with(masked)
    for img in soup.find_all("img"):  # alt texts too
        alt = img.get("alt")
        if isinstance(alt, str) and alt:  # a str: alt is not one of bs4's multi-valued attributes
            img["alt"] = mask_text(alt)
    return str(soup)


def mask_text(text: str) -> str:
    """Emails, phone numbers, personal fields of Python reprs and values quoted in messages
    about personal fields, in free text, masked."""
    text = _mask_field_messages(text)
    text = _PYTHON_PERSONAL.sub(lambda m: f"{m.group(1)}={MASK!r}", text)  # before emails: it needs the quotes
    text = _EMAIL.sub(MASK, text)
    return _mask_phones(text)


def _mask_table(table: Any) -> None:
    """Mask the columns a header row labels personal (any header row: pandas puts a named
    index's name on a row of its own), then every row whose first cell is a ``<th>`` naming a
    personal field (a key/value table like a Patient's, a transposed frame)."""
    rows = table.find_all("tr")
    header_rows = [r for r in rows if r.find("th") and not r.find("td")]
    width = max((len(_spread(row)) for row in header_rows), default=0)
    columns = {i for row in header_rows for i, label in enumerate(_spread(row)) if _personal(label)}
    for row in rows:
        if row in header_rows:
            continue
        cells = row.find_all(["th", "td"])
        # Index cells that span rows (a MultiIndex) leave later rows short at the front: count from the end.
        start = width - len(cells) if len(cells) < width else 0
        for i, cell in enumerate(cells):
            if start + i in columns and cell.get_text(strip=True):
                cell.string = MASK
        if len(cells) > 1 and cells[0].name == "th" and _personal(cells[0].get_text()):
            for cell in cells[1:]:
                if cell.get_text(strip=True):
                    cell.string = MASK


def _spread(row: Any) -> list[str]:
    """A header row's labels, one per column it covers (a ``colspan`` label covers several)."""
    labels = []
    for cell in row.find_all(["th", "td"]):
        span = cell.get("colspan")
        count = int(span) if isinstance(span, str) and span.isdigit() else 1
        labels += [cell.get_text()] * max(1, min(count, 1000))
    return labels


def _masked_columns(frame: Any) -> Any:
    import pandas as pd

    masked = frame.copy()
    for position, label in enumerate(frame.columns):
        column = masked.iloc[:, position]
        if _personal(_label_text(label)):
            masked.isetitem(position, column.where(column.isna() | (column.astype(str) == ""), MASK))
        elif column.dtype == object or isinstance(column.dtype, pd.StringDtype):
            masked.isetitem(position, column.map(_masked_cell))
    return masked


def _masked_labelled_rows(masked: Any, index: Any) -> Any:
    """``masked`` with the values of rows labelled with a personal field masked (``df.T``)."""
    rows = [position for position, label in enumerate(index) if _personal(_label_text(label))]
    if not rows:
        return masked
    masked = masked.astype(object)  # a masked number becomes text
    for position in rows:
        values = masked.iloc[position]
        keep = values.isna().to_numpy() | (values.astype(str) == "").to_numpy()
        masked.iloc[position] = values.where(keep, MASK)
    return masked


def _masked_rows(index: Any) -> Any:
    """The index masked as columns are (a level named ``email`` is a personal column)."""
    import pandas as pd

    original = index.to_frame(index=False)
    levels = _masked_columns(original)
    if levels.equals(original):  # keeps a RangeIndex a RangeIndex
        return index
    if isinstance(index, pd.MultiIndex):
        return pd.MultiIndex.from_frame(levels, names=index.names)
    return pd.Index(levels.iloc[:, 0]).rename(index.name)


def _masked_labels(labels: Any) -> Any:
    """Text column labels with emails and phone numbers masked."""
    if labels.dtype != object:
        return labels
    return labels.map(lambda label: mask_text(label) if isinstance(label, str) else label)


def _masked_cell(value: Any) -> Any:
    return mask_text(value) if isinstance(value, str) else value


def _label_text(label: Any) -> str:
    """A column label as text: the last level of a MultiIndex label."""
    return str(label[-1] if isinstance(label, tuple) else label)


def _personal(header: str) -> bool:
    return re.sub(r"[^0-9a-z]", "", header.split(".")[-1].lower()) in _PERSONAL_KEYS


def _joined(value: Any) -> Any:
    """nbformat may store a text output as a list of lines."""
    return "".join(value) if isinstance(value, list) else value


def _mask_field_messages(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        if not _personal(match.group(1)):  # "ValidationError: email: ...": the field may come next
            return f"{match.group(1)}: {_mask_field_messages(match.group(2))}"
        return f"{match.group(1)}: {_QUOTED.sub(repr(MASK), match.group(2))}"

    return _FIELD_MESSAGE.sub(one, text)


def _mask_phones(text: str) -> str:
    return _PHONE.sub(lambda m: MASK if _looks_like_phone(m.group(0)) else m.group(0), text)


def _looks_like_phone(candidate: str) -> bool:
    if _ISO_DATE.match(candidate):  # a timestamp in a table or a title block, not a phone
        return False
    digits = sum(ch.isdigit() for ch in candidate)
    if candidate.isdigit():  # a bare number: phone-length only, so ids and counts survive
        return 10 <= digits <= 15
    return digits >= 7
