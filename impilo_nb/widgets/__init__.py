"""ipywidgets for notebooks; thin: they collect input and call the public API."""

from .log_view import WebhookLogView
from .patient_form import PatientForm

__all__ = ["PatientForm", "WebhookLogView"]
