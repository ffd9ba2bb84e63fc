"""ipywidgets for notebooks; thin: they collect input and call the public API.

They need the ``[widgets]`` extra (ipywidgets, and matplotlib for the log view's timeline),
checked here first, so every way in (``nb.widgets``, ``from impilo_nb.widgets import ...``)
says which extra to install rather than failing inside ipywidgets' import.
"""

from .._extras import require

require("widgets")

from .log_view import WebhookLogView  # noqa: E402  (after the check, which must come first)
from .patient_form import PatientForm, PatientSearch, PatientTable  # noqa: E402
from .sync_view import SyncView  # noqa: E402

__all__ = ["PatientForm", "PatientSearch", "PatientTable", "SyncView", "WebhookLogView"]
