"""Report rendering: a kernel told, by one call, to display widgets with static snapshots.

See the ``reports`` module docstring for why this is a call on the kernel's display rather than a flag
the widgets read.
"""

from __future__ import annotations

from typing import Any

from .errors import ReportError

#: The cell ``build_report`` runs before a notebook's first code cell. It stays in the page,
#: so a reader sees how the widgets there were rendered.
SETUP_SOURCE = "import impilo_nb\n\nimpilo_nb.reports.render_for_report()  # widgets also display as static HTML\n"
SETUP_TAG = "impilo-report-setup"


def render_for_report(shell: Any = None) -> None:
    """From now on, display every impilo_nb widget with a static HTML snapshot beside the live view.

    A report page has no kernel behind it, so a live widget there would be an empty box; with
    this, each widget's display also carries ``text/html`` (what it showed at that moment),
    which the exporter keeps when it drops the live view. JupyterLab still shows the live
    widget. ``build_report`` calls this first in every notebook it runs; call it yourself
    before displaying widgets if you export an executed notebook some other way.

    Only the display of ``shell`` changes (default: the running IPython kernel): no
    environment variable or global flag, so other processes and kernels are unaffected.
    Calling it again changes nothing.

    Raises:
        ReportError: no IPython shell is running here.
    """
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    if shell is None:
        raise ReportError(
            "render_for_report() sets up a notebook kernel's display, but no IPython shell is running "
            "here. Call it in a notebook cell (build_report does so for you) or pass shell=."
        )
    from .widgets._snapshot import Snapshot

    # IPython adds what a type's registered text/html formatter returns to the widget's own bundle.
    shell.display_formatter.formatters["text/html"].for_type(Snapshot, _snapshot_html)


def _snapshot_html(widget: Any) -> str:
    return f"<div class='impilo-snapshot'>{widget.snapshot_html()}</div>"
