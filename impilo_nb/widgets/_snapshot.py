"""Static snapshots of widgets for reports, where no kernel is there to drive them."""

from __future__ import annotations

from typing import Any

from .._constants import report_mode


class Snapshot:
    """Mixin: in a report run, a widget's display also carries ``text/html`` from ``snapshot_html()``.

    JupyterLab shows the live widget (it ranks the widget view first); the report exporter
    drops the live view and keeps this picture of the widget as it was when displayed.
    """

    def snapshot_html(self) -> str:  # pragma: no cover - each widget overrides it
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle = super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]
        if bundle is not None and report_mode():
            bundle["text/html"] = f"<div class='impilo-snapshot'>{self.snapshot_html()}</div>"
        return bundle
