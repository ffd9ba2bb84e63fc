"""PatientForm: create (or load and save) a patient from a notebook.

The form only collects input and calls the public API (``Patient`` validation, then
``client.patients.create/update``). Complaints, local or from the server, appear under the
field they concern; anything else appears in the status line below the button.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from ..client import ImpiloClient
from ..errors import APIConnectionError, APIError, APIStatusError, FieldError, ValidationError
from ..models import SEX_VALUES, Patient

__all__ = ["PatientForm"]

_LABEL = w.Layout(width="11em")
_STYLE = {"description_width": "10em"}
_ERROR_STYLE = "color:#b00020;font-size:90%;margin-left:10.5em"

#: (wire path, label) of each text field, in form order.
_PERSON_FIELDS = [
    ("firstName", "First name *"),
    ("lastName", "Last name *"),
    ("email", "Email"),
    ("phoneNumber", "Phone"),
    ("externalIdentifier", "External id"),
]
_ADDRESS_FIELDS = [
    ("address.lineOne", "Line one *"),
    ("address.lineTwo", "Line two"),
    ("address.city", "City *"),
    ("address.state", "State *"),
    ("address.zipCode", "Zip code *"),
    ("address.country", "Country *"),
]

_NEXT_STEP = {
    401: "Check the API key (IMPILO_API_KEY).",
    403: "This key may not do that; ask the account owner.",
    404: "The patient no longer exists; search again.",
    409: "Use another external identifier, or load the existing patient and update it.",
    429: "The API is rate limiting; wait a moment and try again.",
}


class PatientForm(w.VBox):
    """A form for one patient. Without ``patient_id`` it creates; with one, it loads and saves.

    ``form.fields[path]`` are the input widgets (``"firstName"``, ``"address.city"``...),
    ``form.errors[path]`` the messages under them, ``form.status`` the outcome line, and
    ``form.patient`` the last patient created or saved.
    """

    def __init__(self, client: ImpiloClient, patient_id: int | None = None) -> None:
        self.client = client
        self.patient_id = patient_id
        self.patient: Patient | None = None
        self.on_saved: list[Callable[[Patient], None]] = []

        self.fields: dict[str, w.ValueWidget] = {}
        for path, label in _PERSON_FIELDS + _ADDRESS_FIELDS:
            self.fields[path] = w.Text(description=label, style=_STYLE, layout=w.Layout(width="32em"))
        self.fields["dateOfBirth"] = w.DatePicker(description="Date of birth", style=_STYLE)
        self.fields["sex"] = w.Dropdown(
            description="Sex", options=[("", None)] + [(v, v) for v in SEX_VALUES], value=None, style=_STYLE
        )
        self.errors: dict[str, w.HTML] = {path: w.HTML() for path in [*self.fields, "address"]}
        self.submit_button = w.Button(
            description="Save patient" if patient_id else "Create patient", button_style="primary", icon="check"
        )
        self.submit_button.on_click(lambda _: self.submit())
        self.status = w.HTML()

        person_order = ["firstName", "lastName", "dateOfBirth", "sex", "email", "phoneNumber", "externalIdentifier"]
        address = w.VBox([self.errors["address"], *self._rows([p for p, _ in _ADDRESS_FIELDS])])
        address_box = w.Accordion(children=[address], titles=("Address (optional; starred parts needed when given)",))
        super().__init__([*self._rows(person_order), address_box, self.submit_button, self.status])
        if patient_id is not None:
            self.load(patient_id)

    def __repr__(self) -> str:
        mode = f"patient_id={self.patient_id}" if self.patient_id is not None else "new patient"
        return f"PatientForm({mode})"

    def _rows(self, paths: list[str]) -> list[w.Widget]:
        return [w.VBox([self.fields[p], self.errors[p]], layout=w.Layout(margin="0 0 2px 0")) for p in paths]

    # -- values ----------------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        """The form as a camelCase dict; empty inputs are left out, an empty address is None."""
        data: dict[str, Any] = {}
        address: dict[str, Any] = {}
        for path, widget in self.fields.items():
            value = widget.value
            if isinstance(value, str):
                value = value if value.strip() else None
            if value is None:
                continue
            if path.startswith("address."):
                address[path.split(".", 1)[1]] = value
            else:
                data[path] = value
        if address:
            data["address"] = address
        return data

    def fill(self, patient: Patient) -> None:
        """Show ``patient`` in the form."""
        flat = patient.to_api()
        address = flat.get("address") or {}
        for path, widget in self.fields.items():
            if path.startswith("address."):
                value = address.get(path.split(".", 1)[1])
            elif path == "dateOfBirth":
                value = patient.date_of_birth
            else:
                value = flat.get(path)
            widget.value = value if value is not None or path in ("dateOfBirth", "sex") else ""

    # -- actions ---------------------------------------------------------------------------

    def load(self, patient_id: int) -> Patient | None:
        """Fetch a patient and show it; returns it, or None after showing why not."""
        try:
            patient = self.client.patients.get(patient_id)
        except (APIError, ValidationError) as exc:
            self._show_failure(exc)
            return None
        self.patient_id = patient.id
        self.patient = patient
        self.fill(patient)
        self.submit_button.description = "Save patient"
        self._set_status(f"Loaded patient {patient.id}: {patient.full_name}.", ok=True)
        return patient

    def submit(self) -> Patient | None:
        """Validate, then create or save; returns the stored patient, or None after showing why not."""
        self._clear_errors()
        try:
            patient = Patient.model_validate(self.values())
        except ValidationError as exc:
            self._show_failure(exc)
            return None
        self.submit_button.disabled = True
        self._set_status("Sending…", ok=None)
        try:
            if self.patient_id is None:
                saved = self.client.patients.create(patient)
                verb = "Created"
            else:
                saved = self.client.patients.update(self.patient_id, patient)
                verb = "Saved"
        except (APIError, ValidationError) as exc:
            self._show_failure(exc)
            return None
        finally:
            self.submit_button.disabled = False
        self.patient = saved
        self._set_status(f"{verb} patient {saved.id}: {saved.full_name}.", ok=True)
        for callback in self.on_saved:
            callback(saved)
        return saved

    # -- feedback --------------------------------------------------------------------------

    def _clear_errors(self) -> None:
        for box in self.errors.values():
            box.value = ""
        self.status.value = ""

    def _show_failure(self, exc: Exception) -> None:
        unplaced = [fe for fe in getattr(exc, "field_errors", []) if not self._place(fe)]
        if isinstance(exc, ValidationError):
            message = "Please correct the fields marked in red; nothing was sent."
        elif isinstance(exc, APIStatusError):
            message = f"The server refused it ({exc.status_code}): {exc.message}"
            hint = _NEXT_STEP.get(exc.status_code) or ("Try again in a moment." if exc.status_code >= 500 else "")
            message += f" {hint}" if hint and hint not in message else ""
        elif isinstance(exc, APIConnectionError):
            message = f"No answer from the server: {exc.message}"
        else:
            message = str(exc)
        self._set_status("\n".join([message, *map(str, unplaced)]), ok=False)

    def _place(self, error: FieldError) -> bool:
        """Show an error under its field (or the nearest enclosing one); False if none fits."""
        path = error.field or ""
        while path:
            box = self.errors.get(path)
            if box is not None:
                box.value = f"<div style='{_ERROR_STYLE}'>{html.escape(error.message)}</div>"
                return True
            path = path.rpartition(".")[0]
        return False

    def _set_status(self, message: str, *, ok: bool | None) -> None:
        """One line per line of ``message``: green for done, red for failed, grey for under way."""
        color = {True: "#1b5e20", False: "#b00020", None: "#555"}[ok]
        text = html.escape(message).replace("\n", "<br>")
        self.status.value = f"<div style='color:{color}'>{text}</div>"
