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
    """A copy of an executed notebook with personal data masked in every output."""
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = mask_text(_joined(output["text"]))
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
    is in ``PERSONAL_FIELDS``; the index too, by its name. Missing values stay missing, so a
    reader still sees which rows had no email.

    Raises:
        ValidationError: ``frame`` is not a pandas DataFrame.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise ValidationError("mask_frame", [FieldError("frame", f"Expected a pandas DataFrame, got {type(frame).__name__}.")])
    masked = _masked_columns(frame)
    masked.index = _masked_rows(frame.index)
    masked.columns = _masked_labels(frame.columns)  # a header may itself be an email
    return masked


def mask_html(html: str) -> str:
    """Mask personal columns of every table (by header), personal rows of two-column tables
    (a ``<th>`` label then its value), then emails and phone numbers anywhere in the text."""
    require("reports", "bs4")
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
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
    rows = table.find_all("tr")
    header_rows = [r for r in rows if r.find("th") and not r.find("td")]
    if header_rows:
        labels = [cell.get_text() for cell in header_rows[-1].find_all(["th", "td"])]
        columns = {i for i, label in enumerate(labels) if _personal(label)}
        for row in rows:
            if row in header_rows:
                continue
            for i, cell in enumerate(row.find_all(["th", "td"])):
                if i in columns and cell.get_text(strip=True):
                    cell.string = MASK
    for row in rows:  # key/value tables, like a Patient's
        cells = row.find_all(["th", "td"])
        if len(cells) == 2 and cells[0].name == "th" and _personal(cells[0].get_text()):
            cells[1].string = MASK


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
    return header.strip().split(".")[-1] in PERSONAL_FIELDS


def _joined(value: Any) -> Any:
    """nbformat may store a text output as a list of lines."""
    return "".join(value) if isinstance(value, list) else value


def _mask_field_messages(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        if not _personal(match.group(1)):
            return match.group(0)
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
