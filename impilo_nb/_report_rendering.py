"""Report rendering: a kernel told, by one call, how to display for a page that has no kernel.

Widgets get static snapshots, DataFrames are shown complete (every character of every cell,
up to ``REPORT_MAX_ROWS`` rows) and, when asked, masked before they are rendered. See the
``reports`` module docstring for why this is a call on the kernel's display rather than a flag
the widgets read.
"""

from __future__ import annotations

from typing import Any

from .errors import FieldError, ReportError, ValidationError

SETUP_TAG = "impilo-report-setup"

#: Rows of a DataFrame a report shows before pandas elides the middle ("..."): a colleague
#: should not miss a row that needs attention, but a million-row frame must not make a
#: page no browser can open.
REPORT_MAX_ROWS = 5_000
#: Columns shown before pandas elides some; wide result frames (the input plus status,
#: id, error, ...) stay whole.
REPORT_MAX_COLUMNS = 200
#: pandas options while a report renders a DataFrame: no cell cut with "..." (an error
#: message is read in full), and the row and column limits above.
_FULL_TABLE_OPTIONS = (
    "display.max_colwidth",
    None,
    "display.max_rows",
    REPORT_MAX_ROWS,
    "display.max_columns",
    REPORT_MAX_COLUMNS,
)


def setup_source(*, mask: bool) -> str:
    """The cell ``build_report`` runs before a notebook's first code cell. It stays in a page
    that shows code, so a reader sees how the widgets and tables there were rendered."""
    call = "render_for_report(mask=True)" if mask else "render_for_report()"
    return f"import impilo_nb\n\nimpilo_nb.reports.{call}  # widgets as static HTML, tables in full\n"


def render_for_report(shell: Any = None, *, mask: bool = False) -> None:
    """From now on, display impilo_nb widgets and pandas DataFrames as a report page needs them.

    A report page has no kernel behind it, so a live widget there would be an empty box; with
    this, each widget's display also carries ``text/html`` (what it showed at that moment),
    which the exporter keeps when it drops the live view. JupyterLab still shows the live
    widget. DataFrames are rendered complete: no text cell cut with "...", up to
    ``REPORT_MAX_ROWS`` rows. With ``mask=True`` every DataFrame is masked (``mask_frame``)
    before it is rendered, as HTML and as text, and every Series (``mask_series``), so
    personal data never reaches their outputs.
    ``build_report`` calls this first in every notebook it runs; call it yourself before
    displaying anything if you export an executed notebook some other way.

    Only the display of ``shell`` changes (default: the running IPython kernel): no
    environment variable, global flag or global pandas option, so other processes and
    kernels are unaffected. Calling it again replaces the earlier call's choices.

    Raises:
        ValidationError: ``mask`` is not a bool.
        ReportError: no IPython shell is running here.
    """
    if not isinstance(mask, bool):
        raise ValidationError("render_for_report", [FieldError("mask", f"Expected True or False, got {type(mask).__name__}.")])
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    if shell is None:
        raise ReportError(
            "render_for_report() sets up a notebook kernel's display, but no IPython shell is running "
            "here. Call it in a notebook cell (build_report does so for you) or pass shell=."
        )
    import pandas as pd

    from .widgets._snapshot import Snapshot

    formatters = shell.display_formatter.formatters
    # IPython adds what a type's registered text/html formatter returns to the widget's own bundle.
    formatters["text/html"].for_type(Snapshot, _snapshot_html)
    # A registered printer wins over DataFrame._repr_html_, for this shell only.
    formatters["text/html"].for_type(pd.DataFrame, lambda frame: _frame_html(frame, mask=mask))
    if mask:
        formatters["text/plain"].for_type(pd.DataFrame, _masked_frame_text)
        # A Series has only text: a column (df["firstName"]), a record (df.iloc[0]), value counts.
        formatters["text/plain"].for_type(pd.Series, _masked_series_text)
    else:
        formatters["text/plain"].type_printers.pop(pd.DataFrame, None)
        formatters["text/plain"].type_printers.pop(pd.Series, None)


def _snapshot_html(widget: Any) -> str:
    return f"<div class='impilo-snapshot'>{widget.snapshot_html()}</div>"


def _frame_html(frame: Any, *, mask: bool) -> str | None:
    import pandas as pd

    from ._report_mask import mask_frame

    shown = mask_frame(frame) if mask else frame
    with pd.option_context(*_FULL_TABLE_OPTIONS):
        html: str | None = shown._repr_html_()
    return html


def _masked_frame_text(frame: Any, printer: Any, cycle: bool) -> None:
    """IPython's plain-text printer protocol: write the masked frame's repr to ``printer``."""
    from ._report_mask import mask_frame

    printer.text(repr(mask_frame(frame)))


def _masked_series_text(series: Any, printer: Any, cycle: bool) -> None:
    """As ``_masked_frame_text``, for a Series (``mask_series``)."""
    from ._report_mask import mask_series

    printer.text(repr(mask_series(series)))
