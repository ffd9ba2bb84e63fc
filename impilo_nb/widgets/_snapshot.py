"""Static snapshots of widgets for reports, where no kernel is there to drive them."""

from __future__ import annotations


class Snapshot:
    """Mixin: a widget that can describe itself as static HTML, ``snapshot_html()``.

    Widgets never decide by themselves to render a snapshot: a report's kernel calls
    ``impilo_nb.reports.render_for_report()``, which has IPython add the snapshot to the
    display of every ``Snapshot``; the report exporter then drops the live view and keeps
    this picture of the widget as it was when displayed. JupyterLab shows the live widget.
    """

    def snapshot_html(self) -> str:  # pragma: no cover - each widget overrides it
        raise NotImplementedError
