"""ipywidgets for notebooks; thin: they collect input and call the public API."""

from .log_view import WebhookLogView
from .patient_form import PatientForm, PatientSearch

__all__ = ["PatientForm", "PatientSearch", "WebhookLogView"]
