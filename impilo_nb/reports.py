"""Reports: execute notebooks with parameters and export self-contained HTML.

    build_report("notebooks/05_bulk_import.ipynb", "reports/", mask=True)

Each notebook runs with papermill in a fresh kernel, against the embedded sandbox unless a
base URL is given (the API key only ever comes from ``IMPILO_API_KEY``), and is written as one
HTML file that opens offline:

- widgets are replaced by a static snapshot of what they showed (they render themselves as
  HTML when ``IMPILO_REPORT`` is set, which the report run sets), and progress bars are off;
- images are inlined; scripts and stylesheets from the network (require.js, MathJax, the
  widget manager) are dropped, and the result is checked: a page that would still load
  anything from the network is refused rather than written;
- ``hide_code`` leaves only the prose and the results;
- ``mask`` hides personal data (names, emails, phones, dates of birth, street lines) in every
  table and every email or phone number anywhere in the outputs.
"""

from __future__ import annotations

import copy
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _constants as c
from .errors import FieldError, ImpiloError, ValidationError

__all__ = ["ReportError", "build_report", "external_loads", "mask_personal_data"]

#: Column (or field) names whose values are personal data; matched on the last dotted part,
#: so ``payload.firstName`` and ``address.lineOne`` are covered too.
PERSONAL_FIELDS = frozenset(
    {
        "firstName",
        "lastName",
        "first_name",
        "last_name",
        "name",
        "full_name",
        "email",
        "phone",
        "phoneNumber",
        "phone_number",
        "dateOfBirth",
        "date_of_birth",
        "lineOne",
        "lineTwo",
        "lineThree",
        "line_one",
        "line_two",
        "line_three",
    }
)
MASK = "•••"

_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(\.[\w-]+)+", re.UNICODE)
# Phone-like: an optional +, then digits with the usual separators, at least 7 digits in all.
_PHONE = re.compile(r"(?<![\w.])\+?\(?\d[\d ()./-]{5,}\d(?![\w.])")
_PYTHON_PERSONAL = re.compile(
    r"\b(first_name|last_name|email|phone_number|date_of_birth|line_one|line_two|line_three)="
    r"('(?:[^'\\]|\\.)*'|datetime\.date\([^)]*\))"
)


class ReportError(ImpiloError):
    """A report could not be built; the message says which notebook and why."""


@dataclass(frozen=True)
class Report:
    """One report written: the notebook it came from and the HTML file."""

    notebook: Path
    html: Path

    def __str__(self) -> str:
        return f"{self.notebook.name} -> {self.html}"


# -- masking -----------------------------------------------------------------------------------


def _looks_like_phone(candidate: str) -> bool:
    digits = sum(ch.isdigit() for ch in candidate)
    if candidate.isdigit():  # a bare number: phone-length only, so ids and counts survive
        return 10 <= digits <= 15
    return digits >= 7


def _mask_phones(text: str) -> str:
    return _PHONE.sub(lambda m: MASK if _looks_like_phone(m.group(0)) else m.group(0), text)


# "email: Not an email address: 'x@'." - validation messages quote the bad value, which may be
# personal data that no pattern recognises (a malformed email is not an email).
_FIELD_MESSAGE = re.compile(r"\b([\w.]+): ([^\n<]*)")
# A quote may run to the end of the text: pandas cuts long cells ("'two@@example.org...").
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*(?:'|$)")


def _mask_field_messages(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        if not _personal(match.group(1)):
            return match.group(0)
        return f"{match.group(1)}: {_QUOTED.sub(repr(MASK), match.group(2))}"

    return _FIELD_MESSAGE.sub(one, text)


def mask_text(text: str) -> str:
    """Emails, phone numbers, personal fields of Python reprs and values quoted in messages
    about personal fields, in free text, masked."""
    text = _mask_field_messages(text)
    text = _PYTHON_PERSONAL.sub(lambda m: f"{m.group(1)}={MASK!r}", text)  # before emails: it needs the quotes
    text = _EMAIL.sub(MASK, text)
    return _mask_phones(text)


def _personal(header: str) -> bool:
    return header.strip().split(".")[-1] in PERSONAL_FIELDS


def mask_html(html: str) -> str:
    """Mask personal columns of every table (by header), personal rows of two-column tables
    (a ``<th>`` label then its value), then emails and phone numbers anywhere in the text."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for table in soup.find_all("table"):
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
    for node in soup.find_all(string=True):
        if node.parent is not None and node.parent.name in ("script", "style"):
            continue
        masked = mask_text(str(node))
        if masked != node:
            node.replace_with(masked)
    for img in soup.find_all("img"):  # alt texts too
        if img.get("alt"):
            img["alt"] = mask_text(img["alt"])
    return str(soup)


def mask_personal_data(notebook: Any) -> Any:
    """A copy of an executed notebook with personal data masked in every output."""
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = mask_text("".join(output["text"]) if isinstance(output["text"], list) else output["text"])
            data = output.get("data", {})
            for mime in list(data):
                value = "".join(data[mime]) if isinstance(data[mime], list) else data[mime]
                if mime == "text/html":
                    data[mime] = mask_html(value)
                elif mime.startswith("text/") or mime == "application/json":
                    data[mime] = mask_text(value if isinstance(value, str) else str(value))
    return notebook


# -- offline HTML -------------------------------------------------------------------------------

_LOADING_ATTRIBUTES = {
    "script": "src",
    "link": "href",
    "img": "src",
    "iframe": "src",
    "source": "src",
    "audio": "src",
    "video": "src",
    "embed": "src",
    "object": "data",
    "track": "src",
}


_REMOTE_IN_CODE = re.compile(r"""["'`]((?:https?:)?//[^"'`\s]+)["'`]""")


def _remote(url: str | None) -> bool:
    return bool(url) and url.strip().lower().startswith(("http://", "https://", "//"))


def external_loads(html: str) -> list[str]:
    """Every network address the page would load by itself (not links a reader may click)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    found = [tag.get(attr) for name, attr in _LOADING_ATTRIBUTES.items() for tag in soup.find_all(name) if _remote(tag.get(attr))]
    for script in soup.find_all("script"):  # inline code that would fetch, e.g. import("https://...")
        found += _REMOTE_IN_CODE.findall(script.string or "")
    for style in [*soup.find_all("style"), *soup.find_all(style=True)]:
        text = style.string or "" if style.name == "style" else style.get("style", "")
        found += [m.group(1) for m in re.finditer(r"""(?:url\(|@import\s+)["']?((?:https?:)?//[^"')\s]+)""", text or "")]
    return found


def _drop_external_loads(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for name, attr in _LOADING_ATTRIBUTES.items():
        for tag in soup.find_all(name):
            if _remote(tag.get(attr)):
                tag.decompose()
    for script in soup.find_all("script"):  # nbconvert's Mermaid and MathJax loaders fetch from CDNs
        if _REMOTE_IN_CODE.search(script.string or "") or script.get("type") == "text/x-mathjax-config":
            script.decompose()
    return str(soup)


def _static_widgets(notebook: Any) -> Any:
    """Drop live-widget views (their snapshot, text/html, stays) and the saved widget state."""
    notebook = copy.deepcopy(notebook)
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                del data["application/vnd.jupyter.widget-view+json"]
                if "text/html" not in data:  # a widget without a snapshot (e.g. a progress bar)
                    data.pop("text/plain", None)
        # A display left with no data (a progress bar's) would render as an empty box.
        cell["outputs"] = [o for o in cell.get("outputs", []) if o.get("output_type") != "display_data" or o.get("data")]
    return notebook


def to_offline_html(notebook: Any, *, hide_code: bool = False) -> str:
    """Export an executed notebook as one HTML page that loads nothing from the network."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", embed_images=True)
    if hide_code:
        exporter.exclude_input = True
        exporter.exclude_input_prompt = True
        exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(_static_widgets(notebook))
    html = _drop_external_loads(body)
    remaining = external_loads(html)
    if remaining:
        raise ReportError(f"The page would still load from the network: {remaining[:3]}")
    return html


# -- running -------------------------------------------------------------------------------------


def build_report(
    notebook: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] = "reports",
    *,
    parameters: Mapping[str, Any] | None = None,
    base_url: str | None = None,
    hide_code: bool = False,
    mask: bool = False,
    timeout: float = 600,
) -> Report:
    """Execute one notebook and write ``<out_dir>/<name>.html``; see the module docstring.

    Args:
        notebook: the .ipynb to run (it runs from its own folder, so relative paths work).
        out_dir: where the HTML goes (created if missing).
        parameters: values for the notebook's ``parameters`` cell (e.g. ``input_file``).
        base_url: run against this API (key from ``IMPILO_API_KEY``); default the embedded sandbox.
        hide_code: leave out code cells.
        mask: mask personal data in the outputs.
        timeout: seconds any one cell may run.
    """
    import nbformat
    import papermill

    source = Path(notebook)
    if not source.is_file() or source.suffix != ".ipynb":
        raise ValidationError("build_report", [FieldError("notebook", f"Not a notebook file: {source}.")])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = dict(parameters or {})
    if base_url:
        params["base_url"] = base_url
    with tempfile.TemporaryDirectory(prefix="impilo-report-") as tmp, _report_environment(live=bool(base_url)):
        executed = Path(tmp) / source.name
        try:
            papermill.execute_notebook(
                str(source),
                str(executed),
                parameters=params,
                cwd=str(source.parent.resolve()),
                kernel_name="python3",
                progress_bar=False,
                log_output=False,
                execution_timeout=timeout,
            )
        except papermill.PapermillExecutionError as exc:
            raise ReportError(f"{source.name}: cell {exc.exec_count} failed: {exc.ename}: {exc.evalue}") from None
        result = nbformat.read(executed, as_version=4)
    if mask:
        result = mask_personal_data(result)
    html_path = out / f"{source.stem}.html"
    html_path.write_text(to_offline_html(result, hide_code=hide_code), encoding="utf-8")
    return Report(source, html_path)


class _report_environment:
    """Environment of the report's kernel: report mode on; the sandbox unless running live."""

    def __init__(self, *, live: bool) -> None:
        self.live = live
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        names = [c.ENV_REPORT] + ([] if self.live else [c.ENV_BASE_URL])
        self.saved = {name: os.environ.get(name) for name in names}
        os.environ[c.ENV_REPORT] = "1"
        if not self.live:
            os.environ.pop(c.ENV_BASE_URL, None)

    def __exit__(self, *exc_info: object) -> None:
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
