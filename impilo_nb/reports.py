"""Reports: execute notebooks with parameters and export self-contained HTML.

    build_report("notebooks/05_bulk_import.ipynb", "reports/", mask=True)

Each notebook runs in a fresh kernel, against the embedded sandbox unless a base URL is given
(the API key only ever comes from ``IMPILO_API_KEY``), and is written as one HTML file that
opens offline. Three steps, one module each (``reports`` itself only composes them):

- ``_report_run``: the notebook's ``parameters`` cell replaced as papermill does, a setup
  cell that calls ``render_for_report()``, then execution from the notebook's own folder;
- ``_report_mask`` (with ``mask=True``): personal data (names, emails, phones, dates of
  birth, street lines) hidden in every table, and every email or phone number anywhere;
- ``_report_html``: images inlined, network loads (require.js, MathJax, the widget manager)
  dropped and checked for, live widgets replaced by their snapshots; ``hide_code`` leaves only
  the prose and the results.

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

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._extras import require
from ._report_html import external_loads, to_offline_html
from ._report_mask import PERSONAL_FIELDS, mask_html, mask_personal_data, mask_text
from ._report_rendering import render_for_report
from ._report_run import execute
from .errors import FieldError, ReportError, ValidationError

__all__ = [
    "PERSONAL_FIELDS",
    "Report",
    "ReportError",
    "build_report",
    "external_loads",
    "mask_html",
    "mask_personal_data",
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

    Raises:
        ConfigurationError: the ``[reports]`` extra (papermill, nbconvert, ipykernel...) is not installed.
        ValidationError: ``notebook`` is not a notebook file.
        ReportError: the notebook failed to run, or its page would load from the network.
    """
    require("reports")
    source = Path(notebook)
    if not source.is_file() or source.suffix != ".ipynb":
        raise ValidationError(
            "build_report", [FieldError("notebook", f"Not a notebook file: {source}. Give the path of an .ipynb file.")]
        )
    params = dict(parameters or {})
    if base_url:
        params["base_url"] = base_url
    result = execute(source, params, live=bool(base_url), timeout=timeout)
    if mask:
        result = mask_personal_data(result)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html_path = out / f"{source.stem}.html"
    html_path.write_text(to_offline_html(result, hide_code=hide_code), encoding="utf-8")
    return Report(source, html_path)
