"""Reports: execute notebooks with parameters and export self-contained HTML.

    build_report("notebooks/05_bulk_import.ipynb", "reports/", share=True)

Each notebook runs in a fresh kernel, against the embedded sandbox unless a base URL is given
(the API key only ever comes from ``IMPILO_API_KEY``), and is written as one HTML file that
opens offline. Three steps, one module each (``reports`` itself only composes them):

- ``_report_run``: the notebook's ``parameters`` cell replaced as papermill does, a setup
  cell that calls ``render_for_report()``, then execution from the notebook's own folder, in
  a kernel reached over IPC sockets (over TCP, ipykernel warns of an unencrypted channel);
- ``_report_mask`` (with ``mask=True``): personal data (names, emails, phones, dates of
  birth, street lines) hidden in every table, and every email or phone number anywhere;
- ``_report_html``: images inlined, network loads (require.js, MathJax, the widget manager)
  dropped and checked for, live widgets replaced by their snapshots, the title block on top
  (``_report_title``), pandas tables aligned and interactive (``_report_tables``);
  ``hide_code`` leaves only the prose and the results, without ``In``/``Out`` prompts.

Reports to share
----------------
``share=True`` (``--share``; ``make report``'s default) is the page a colleague gets by email:
results only and personal data masked. Every report, shared or not, opens with a title
block: notebook, when (UTC), which server (the base URL, or "embedded sandbox"; never the
key), which parameters, which ``impilo_nb`` version, and whether it is masked. It is in every
report because a page without provenance misleads whoever reads it, the author a month later
included, and nothing in it is secret.

Tables are masked twice and made interactive without a second copy of the data. With
``mask`` the kernel masks each DataFrame before rendering it (``render_for_report(mask=True)``
registers ``mask_frame`` with the display), and the exporter masks every output's HTML and
text again, the net for what was not a DataFrame. DataFrames render complete (no "..." in a
long error text; up to ``REPORT_MAX_ROWS`` rows), and in the page DataTables, from itables'
offline bundle, enhances each table from its own, already masked, rows: sort, search and
pages, with no JSON copy of the data for masking to miss, and no network.

How a report renders widgets and progress bars
----------------------------------------------
A page has no kernel, so a widget must be saved as a static picture, and a progress bar would
stay frozen at its first frame. Nothing in the process switches into a "report mode" for this:

- Widgets know how to describe themselves (``snapshot_html()``) and never ask whether they are
  in a report. ``render_for_report()`` tells one kernel's display, IPython's formatters, to add
  that snapshot to every widget it shows. The report run executes it as a visible first code
  cell, so the executed notebook says how it was rendered, and a notebook exported any other
  way can call it too.
- Progress bars need nothing: in a kernel they are widgets without a snapshot, and the
  exporter leaves those out of the page. ``upsert_patients(progress=False)`` remains for
  callers who want no bar at all.

Why not the alternatives: an environment variable (what this replaced) is read behind the
caller's back and leaks to every child process; a ``report=True`` parameter passed along by
each notebook would thicken every widget and bulk call, and one forgotten argument would break
a page silently. This way the notebooks stay as they are and run the same in JupyterLab and
in a report.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._extras import require
from ._report_html import external_loads, to_offline_html
from ._report_mask import PERSONAL_FIELDS, mask_frame, mask_html, mask_personal_data, mask_series, mask_text
from ._report_rendering import render_for_report
from ._report_run import execute
from ._report_title import TitleBlock, secret_name
from ._version import __version__
from .client import _check_base_url
from .errors import FieldError, ReportError, ValidationError

#: Seconds any one cell of a report's notebook may run before the report fails.
DEFAULT_TIMEOUT = 600.0

__all__ = [
    "PERSONAL_FIELDS",
    "Report",
    "ReportError",
    "build_report",
    "external_loads",
    "mask_frame",
    "mask_html",
    "mask_personal_data",
    "mask_series",
    "mask_text",
    "render_for_report",
    "to_offline_html",
]


@dataclass(frozen=True)
class Report:
    """One report written: the notebook it came from and the HTML file."""

    notebook: Path
    html: Path

    def __str__(self) -> str:
        return f"{self.notebook.name} -> {self.html}"


def build_report(
    notebook: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] = "reports",
    *,
    parameters: Mapping[str, Any] | None = None,
    base_url: str | None = None,
    share: bool = False,
    hide_code: bool | None = None,
    mask: bool | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Report:
    """Execute one notebook and write ``<out_dir>/<name>.html``; see the module docstring.

    Args:
        notebook: the .ipynb to run (it runs from its own folder, so relative paths work).
        out_dir: where the HTML goes (created if missing).
        parameters: values for the notebook's ``parameters`` cell (e.g. ``input_file``).
        base_url: run against this API (key from ``IMPILO_API_KEY``); default the embedded sandbox.
        share: a page to send to a colleague: results only (no code, no prompts) and personal
            data masked; the same as ``hide_code=True, mask=True``.
        hide_code: leave out code cells and prompts (default: as ``share``).
        mask: mask personal data in the outputs (default: as ``share``).
        timeout: seconds any one cell may run.

    Raises:
        ConfigurationError: the ``[reports]`` extra (papermill, nbconvert, ipykernel...) is not
            installed, or ``base_url`` is not a plain http(s) address.
        ValidationError: ``notebook`` is not a notebook file, an option has the wrong type,
            ``share=True`` is contradicted by ``hide_code=False`` or ``mask=False``, or a
            parameter's name says it holds a key or secret (``api_key``, ``webhook_secret``...).
        ReportError: the notebook failed to run, or its page would load from the network.
    """
    require("reports")
    source = _checked_notebook(notebook)
    hide_code, mask = _sharing(share=share, hide_code=hide_code, mask=mask)
    params = _checked_parameters(parameters)
    _check_timeout(timeout)
    out = _checked_out_dir(out_dir)  # before the run: a bad folder must not cost minutes of work first
    if base_url is not None:
        base_url = _check_base_url(base_url, allow_insecure_http=True)  # the kernel's client decides on http
    title = TitleBlock(
        notebook=source.name,
        generated_at=datetime.now(UTC),
        base_url=base_url,
        version=__version__,
        parameters=params,
        masked=mask,
        code_shown=not hide_code,
    )
    if base_url:
        params["base_url"] = base_url
    result = execute(source, params, live=bool(base_url), mask=mask, timeout=timeout)
    if mask:
        result = mask_personal_data(result)
    html_path = out / f"{source.stem}.html"
    page = to_offline_html(result, hide_code=hide_code, header=title.html(), title=f"Report: {source.stem}")
    html_path.write_text(page, encoding="utf-8")
    return Report(source, html_path)


def _refused(field: str, message: str) -> ValidationError:
    return ValidationError("build_report", [FieldError(field, message)])


def _checked_notebook(notebook: Any) -> Path:
    if not isinstance(notebook, (str, os.PathLike)):
        raise _refused("notebook", f"Expected a path to an .ipynb file, got {type(notebook).__name__}.")
    source = Path(notebook)
    if not source.is_file() or source.suffix != ".ipynb":
        raise _refused("notebook", f"Not a notebook file: {source}. Give the path of an .ipynb file.")
    return source


def _sharing(*, share: Any, hide_code: Any, mask: Any) -> tuple[bool, bool]:
    """``hide_code`` and ``mask`` as decided, ``share`` filling in what was not given."""
    for name, value in (("share", share), ("hide_code", hide_code), ("mask", mask)):
        if not isinstance(value, bool) and not (value is None and name != "share"):
            raise _refused(name, f"Expected True or False, got {type(value).__name__}.")
    if share:
        for name, value in (("hide_code", hide_code), ("mask", mask)):
            if value is False:
                raise _refused(
                    name,
                    f"share=True always sets {name}=True (a shared page shows results only, masked). "
                    f"Drop {name}=False, or drop share=True and choose hide_code and mask yourself.",
                )
    return bool(share if hide_code is None else hide_code), bool(share if mask is None else mask)


def _checked_parameters(parameters: Any) -> dict[str, Any]:
    if parameters is None:
        return {}
    if not isinstance(parameters, Mapping):
        raise _refused("parameters", f"Expected a mapping of name -> value, got {type(parameters).__name__}.")
    for name in parameters:
        if not isinstance(name, str) or not name.isidentifier():
            raise _refused("parameters", f"{name!r} is not a Python name; the notebook's parameters cell assigns variables.")
    if "base_url" in parameters:
        raise _refused("parameters", "base_url is not a parameter here: pass build_report(base_url=...).")
    # Each refusal names the parameter only: its value is, or holds, the credential.
    for holds_credential, why, instead in (
        (lambda name, _: secret_name(name), "looks like a key or secret", "(the API key comes from IMPILO_API_KEY)"),
        (lambda _, value: _has_url_password(value), "holds a URL with a user:password@ part",
         "without the password (for PostgreSQL, PGPASSWORD or ~/.pgpass)"),
    ):
        named = next((name for name, value in parameters.items() if holds_credential(name, value)), None)
        if named is not None:
            raise _refused(
                "parameters",
                f"{named!r} {why}, and parameters are written into the report (its title block, and its parameters "
                f"cell when code is shown). Let the notebook read it from the environment {instead}.",
            )
    return dict(parameters)


def _has_url_password(value: Any) -> bool:
    """True for text (or text inside lists and dicts) holding a ``scheme://user:password@`` URL."""
    if isinstance(value, str):
        return _URL_PASSWORD.search(value) is not None
    if isinstance(value, Mapping):
        return any(_has_url_password(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_url_password(item) for item in value)
    return False


#: ``scheme://user:password@`` anywhere in a text: a credential a report would print.
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s@:]*:[^/\s@]*@")


def _checked_out_dir(out_dir: Any) -> Path:
    """``out_dir`` as a folder that exists (created if missing)."""
    if isinstance(out_dir, bool) or not isinstance(out_dir, (str, os.PathLike)):
        raise _refused("out_dir", f"Expected a folder path, got {type(out_dir).__name__}.")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise _refused("out_dir", f"{out} is a file, not a folder. Pass a folder for the HTML pages.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _refused("out_dir", f"Cannot create {out}: {exc.strerror}. Pass a folder you can write to.") from None
    return out


def _check_timeout(timeout: Any) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (0 < timeout < math.inf):
        raise _refused("timeout", f"Expected a finite number of seconds above 0, got {timeout!r}.")
