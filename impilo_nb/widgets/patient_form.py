"""PatientForm, PatientSearch and PatientTable: create, find, review, update and list patients.

The widgets only collect input and call the public API: ``Patient`` validation,
``patient_changes``, ``external_id``/``id_hazards`` and ``client.patients``. Complaints, local or
from the server, appear under the field they concern; anything else in the status line.
"""

from __future__ import annotations

import copy
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as w
import pandas as pd

from .. import _constants as c
from .._report_mask import PERSONAL_CLASS
from ..client import ImpiloClient
from ..errors import APIConnectionError, APIError, APIStatusError, ConfigurationError, FieldError, ValidationError
from ..fields import facts, field_at, leaf_kind, wire_paths
from ..frames import PATIENT_COLUMNS, patient_frame
from ..ids import external_id, id_hazards
from ..models import Change, Patient, get_path, patient_changes, prune_empty_objects, set_path
from ._snapshot import Snapshot

__all__ = ["PatientForm", "PatientSearch", "PatientTable"]

#: The columns a ``PatientTable`` shows unless told otherwise: who the patient is, not every field.
TABLE_COLUMNS = ("id", "externalIdentifier", "firstName", "lastName", "dateOfBirth", "email", "address.city")
#: Rows a ``PatientTable`` shows: the newest patients, one page, so a redraw after each save
#: costs one request however large the account is.
TABLE_ROWS = 25

_STYLE = {"description_width": "10em"}
_WIDE = w.Layout(width="34em")
_ERROR = "color:#b00020;font-size:90%;margin-left:10.5em"
_WARNING = "color:#8a5a00;font-size:90%;margin-left:10.5em"
_FLAG_OPTIONS = [("—", None), ("yes", True), ("no", False)]

_NEXT_STEP = {
    401: "Check the API key (IMPILO_API_KEY).",
    403: "This key may not do that; ask the account owner.",
    404: "The patient no longer exists; search again.",
    409: "Use another external identifier, or load the patient that has it and update that one.",
    429: "The API is rate limiting; wait a moment and try again.",
}


@dataclass(frozen=True)
class _Spec:
    path: str  # the wire path, e.g. "address.zipCode"
    label: str
    kind: str = "text"  # a fields.leaf_kind: text | date | choice | flag | integer
    choices: tuple[str, ...] = ()


def _spec(path: str) -> _Spec:
    """An input for the field at ``path``, labelled from the model's facts (* when required)."""
    owner, name = field_at(Patient, path)
    fact = facts(owner, name)
    star = " *" if owner.model_fields[name].is_required() or fact.required_when_sent else ""
    return _Spec(path, fact.label + star, leaf_kind(Patient, path), fact.choices)


# Every field of Patient but the ids, which the server assigns (a site id the form does not show
# is kept on save).
_PATHS = [path for path in wire_paths(Patient) if path.rsplit(".", 1)[-1] != "id"]
_TOP = [path for path in _PATHS if "." not in path]
# The external id follows email and phone: its Generate button derives it from them.
_TOP.remove("externalIdentifier")
_TOP.insert(_TOP.index("phoneNumber") + 1, "externalIdentifier")
_PERSON = [_spec(path) for path in _TOP]
_ADDRESS = [_spec(path) for path in _PATHS if path.startswith("address.")]
_SITE_OWN = [_spec(path) for path in _PATHS if path.startswith("site.") and path.count(".") == 1]
_SITE_ADDRESS = [_spec(path) for path in _PATHS if path.startswith("site.address.")]
# Nested objects have an error line of their own ("address", "site", "site.address").
_OBJECTS = tuple(dict.fromkeys(path.rsplit(".", 1)[0] for path in _PATHS if "." in path))


def _make_widget(spec: _Spec) -> w.ValueWidget:
    if spec.kind == "date":
        return w.DatePicker(description=spec.label, style=_STYLE)
    if spec.kind == "choice":
        return w.Dropdown(description=spec.label, options=[("", None)] + [(v, v) for v in spec.choices], value=None, style=_STYLE)
    if spec.kind == "flag":
        # Three states: a patient may have no value at all, which must survive a round trip.
        return w.Dropdown(description=spec.label, options=_FLAG_OPTIONS, value=None, style=_STYLE)
    return w.Text(description=spec.label, style=_STYLE, layout=_WIDE)


class PatientForm(Snapshot, w.VBox):  # type: ignore[misc]  # ipywidgets has no types: VBox is Any
    """Every field of a patient, validated as you type. Creates, or loads and saves (PUT).

    ``form.fields[path]`` are the inputs (``"firstName"``, ``"address.city"``, ``"site.active"``...),
    ``form.errors[path]`` the messages under them, ``form.status`` the outcome line,
    ``form.changes_view`` the review of what a save would change, ``form.result`` the patient
    just saved (under the button, where the user looks), and ``form.patient`` the patient last
    loaded or saved. ``form.on_saved`` callbacks receive each saved patient (e.g. a
    ``PatientTable``'s ``refresh``).
    """

    def __init__(self, client: ImpiloClient, patient_id: int | None = None) -> None:
        self.client = client
        self.patient_id: int | None = None
        self.patient: Patient | None = None
        self.original: Patient | None = None  # as loaded: what a save is compared with
        self.on_saved: list[Callable[[Patient], None]] = []
        self._touched: set[str] = set()
        self._filling = False

        specs = _PERSON + _ADDRESS + _SITE_OWN + _SITE_ADDRESS
        self.fields: dict[str, w.ValueWidget] = {s.path: _make_widget(s) for s in specs}
        self.errors: dict[str, w.HTML] = {path: w.HTML() for path in [*self.fields, *_OBJECTS]}
        for path, widget in self.fields.items():
            widget.observe(lambda _, path=path: self._edited(path), names="value")

        self.lookup = w.Text(placeholder="patient id or external identifier", layout=w.Layout(width="22em"))
        self.load_button = w.Button(description="Load", icon="search", layout=w.Layout(width="7em"))
        self.new_button = w.Button(description="New patient", icon="plus", layout=w.Layout(width="10em"))
        self.load_button.on_click(lambda _: self.load_any(self.lookup.value))
        self.new_button.on_click(lambda _: self.new())
        self.generate_button = w.Button(description="Generate from email + phone", icon="key", layout=w.Layout(width="auto"))
        self.generate_button.on_click(lambda _: self.generate_external_id())
        self.submit_button = w.Button(description="Create patient", button_style="primary", icon="check")
        self.submit_button.on_click(lambda _: self.submit())
        self.status = w.HTML()
        self.result = w.HTML()
        self.changes_view = w.HTML()

        person = [self._row(s.path) for s in _PERSON]
        ext_index = [s.path for s in _PERSON].index("externalIdentifier")
        person.insert(ext_index + 1, w.HBox([w.Label(layout=w.Layout(width="10.5em")), self.generate_button]))
        self.sections = w.Accordion(
            children=[
                w.VBox([self.errors["address"], *(self._row(s.path) for s in _ADDRESS)]),
                w.VBox(
                    [
                        self.errors["site"],
                        *(self._row(s.path) for s in _SITE_OWN),
                        w.HTML("<b>Site address</b>"),
                        self.errors["site.address"],
                        *(self._row(s.path) for s in _SITE_ADDRESS),
                    ]
                ),
            ],
            titles=("Address (optional; starred parts needed when given)", "Site (optional)"),
        )
        super().__init__(
            [
                w.HBox([self.lookup, self.load_button, self.new_button]),
                *person,
                self.sections,
                self.changes_view,
                self.submit_button,
                self.status,
                self.result,
            ]
        )
        if patient_id is not None:
            self.load(patient_id)

    def __repr__(self) -> str:
        mode = f"patient_id={self.patient_id}" if self.patient_id is not None else "new patient"
        return f"PatientForm({mode})"

    def snapshot_html(self) -> str:
        """What a report shows for the form: one line when it is empty, else only its filled
        fields with the change review and outcome; once saved, the outcome and the saved patient."""
        filled = {path: widget.value for path, widget in self.fields.items() if not _blank(widget.value)}
        if not filled and not self.status.value:
            return "<p><b>Patient form (empty)</b>: fill it in JupyterLab to create a patient.</p>"
        title = f"Patient form: patient {self.patient_id}" if self.patient_id is not None else "Patient form: new patient"
        if self.result.value:  # the saved record says it all; its fields again would only repeat it
            return f"<b>{title}</b>{self.status.value}{self.result.value}"
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(path)}</th>"
            f"<td style='text-align:left'>{html.escape(str(value))}</td></tr>"
            for path, value in filled.items()
        )
        return f"<b>{title}</b> (interactive in JupyterLab){self.changes_view.value}<table>{rows}</table>{self.status.value}"

    def _row(self, path: str) -> w.Widget:
        return w.VBox([self.fields[path], self.errors[path]], layout=w.Layout(margin="0 0 2px 0"))

    # -- values ------------------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        """The record the form describes, in wire form.

        When editing, it starts from the loaded record, so fields the form does not show (a
        site id, fields newer than this toolkit) are kept by the save.
        """
        record = copy.deepcopy(self.original.to_api()) if self.original is not None else {}
        for path, widget in self.fields.items():
            value = widget.value
            if isinstance(value, str) and not value.strip():
                value = None
            set_path(record, path, value)
        prune_empty_objects(record)
        record.pop("id", None)
        return record

    def candidate(self) -> Patient:
        """The form as a validated ``Patient``; raises ``ValidationError`` naming each bad field."""
        return Patient.model_validate(self.values())

    def changes(self) -> list[Change]:
        """What saving would change in the loaded patient (empty when creating or unchanged)."""
        if self.original is None:
            return []
        try:
            return patient_changes(self.original, self.candidate())
        except ValidationError:
            return []

    def fill(self, patient: Patient) -> None:
        """Show ``patient`` in the form (no validation messages: nothing was typed yet)."""
        data = patient.to_api()
        self._filling = True
        try:
            for path, widget in self.fields.items():
                value = patient.date_of_birth if path == "dateOfBirth" else get_path(data, path)
                if isinstance(widget, w.Text):
                    value = "" if value is None else str(value)
                widget.value = value
        finally:
            self._filling = False
        self._touched.clear()
        self._clear_errors()

    # -- actions -----------------------------------------------------------------------------

    def new(self) -> None:
        """Empty the form for a new patient."""
        self.original = self.patient = None
        self.patient_id = None
        self.fill(Patient.model_construct(first_name=None, last_name=None))
        self.submit_button.description = "Create patient"
        self.changes_view.value = ""
        self._set_status("", ok=None)

    def load(self, patient_id: int) -> Patient | None:
        """Fetch a patient by Impilo id and show it for editing; None (with the reason shown) if not."""
        return self._load(lambda: self.client.patients.get(patient_id))

    def load_external_id(self, external_identifier: str) -> Patient | None:
        """Fetch a patient by external identifier and show it for editing."""

        return self._load(
            lambda: self.client.patients.find_by_external_id(external_identifier),
            missing=f"No patient has external identifier {external_identifier!r}.",
        )

    def load_any(self, text: str) -> Patient | None:
        """Load by Impilo id when ``text`` is ASCII digits, else by external identifier (the Load button).

        ASCII only: ``str.isdigit`` and ``int`` also accept other scripts' digits ("٣" is 3), and
        such text is an external identifier to look up exactly, never an id.
        """
        text = (text or "").strip()
        if not text:
            self._set_status("Type a patient id or an external identifier to load.", ok=False)
            return None
        return self.load(int(text)) if text.isascii() and text.isdigit() else self.load_external_id(text)

    def _load(self, fetch: Callable[[], Patient | None], missing: str = "") -> Patient | None:
        try:
            patient = fetch()
        except (APIError, ValidationError) as exc:
            self._show_failure(exc)
            return None
        if patient is None:
            self._set_status(missing, ok=False)
            return None
        self.show(patient)
        self._set_status(
            f"Loaded patient {patient.id}: {patient.full_name}. Edit, review the changes below, then save.",
            ok=True,
            personal=patient.full_name,
        )
        return patient

    def show(self, patient: Patient) -> None:
        """Edit ``patient`` (already fetched) in this form."""
        self.original = self.patient = patient
        self.patient_id = patient.id
        self.fill(patient)
        self.submit_button.description = "Save changes"
        self._refresh_changes()

    def generate_external_id(self) -> str | None:
        """Fill the external identifier from email + phone, and warn about hazards if any."""
        email, phone = self.fields["email"].value, self.fields["phoneNumber"].value
        if not email or not phone:
            self._place(FieldError("externalIdentifier", "Fill in email and phone first."))
            return None
        value = external_id(email, phone)
        self.fields["externalIdentifier"].value = value
        hazards = id_hazards(email, phone)
        if hazards:
            items = "".join(f"<li>{html.escape(h)}</li>" for h in hazards)
            self.errors["externalIdentifier"].value = f"<div style='{_WARNING}'>Check before relying on it:<ul>{items}</ul></div>"
        return value

    def submit(self) -> Patient | None:
        """Validate, then create or save (PUT); returns the stored patient, or None with the reason shown."""
        self._clear_errors()
        self._touched.update(self.fields)
        try:
            patient = self.candidate()
        except ValidationError as exc:
            self._show_failure(exc)
            return None
        if self.original is not None and not patient_changes(self.original, patient):
            self._set_status("Nothing to save: no field was changed.", ok=None)
            return self.original
        self.submit_button.disabled = True
        self._set_status("Sending…", ok=None)
        try:
            if self.patient_id is None:
                saved, verb = self.client.patients.create(patient), "Created"
            else:
                saved, verb = self.client.patients.update(self.patient_id, patient), "Saved"
        except (APIError, ValidationError) as exc:
            self._show_failure(exc)
            return None
        finally:
            self.submit_button.disabled = False
        self.show(saved)
        self._set_status(f"{verb} patient {saved.id}: {saved.full_name}.", ok=True, personal=saved.full_name)
        self.result.value = f"<div class='impilo-saved-patient'>{saved._repr_html_()}</div>"
        for callback in self.on_saved:
            callback(saved)
        return saved

    # -- feedback ----------------------------------------------------------------------------

    def _edited(self, path: str) -> None:
        """Validate as the user types: show errors only for fields already touched."""
        if self._filling:
            return
        self._touched.add(path)
        for box in self.errors.values():
            box.value = ""
        try:
            self.candidate()
        except ValidationError as exc:
            for error in exc.field_errors:
                if error.field and any(t == error.field or t.startswith(error.field + ".") for t in self._touched):
                    self._place(error)
        self._refresh_changes()

    def _refresh_changes(self) -> None:
        if self.original is None:
            self.changes_view.value = ""
            return
        changes = self.changes()
        if not changes:
            self.changes_view.value = "<i>No changes yet.</i>"
            return
        rows = "".join(
            # The field as a row header: a shared report masks the values of a row headed by a personal field.
            f"<tr><th style='text-align:left;font-weight:normal'>{html.escape(c.field)}</th>"
            f"<td>{html.escape(_show(c.old))}</td><td>{html.escape(_show(c.new))}</td></tr>"
            for c in changes
        )
        self.changes_view.value = (
            f"<b>Saving will change {len(changes)} field{'s' * (len(changes) != 1)}:</b>"
            f"<table><tr><th>field</th><th>now</th><th>after saving</th></tr>{rows}</table>"
        )

    def _clear_errors(self) -> None:
        for box in self.errors.values():
            box.value = ""
        self.status.value = ""
        self.result.value = ""

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
                box.value = f"<div style='{_ERROR}'>{html.escape(error.message)}</div>"
                if path.startswith(("address", "site")):  # open the section so the error is seen
                    self.sections.selected_index = 0 if path.startswith("address") else 1
                return True
            path = path.rpartition(".")[0]
        return False

    def _set_status(self, message: str, *, ok: bool | None, personal: str = "") -> None:
        """One line per line of ``message``: green for done, red for failed, grey otherwise.
        ``personal`` (a name in the message) is marked so that a shared report masks it."""
        color = {True: "#1b5e20", False: "#b00020", None: "#555"}[ok]
        text = html.escape(message).replace("\n", "<br>")
        if personal:
            text = text.replace(html.escape(personal), f"<span class='{PERSONAL_CLASS}'>{html.escape(personal)}</span>", 1)
        self.status.value = f"<div style='color:{color}'>{text}</div>" if message else ""


def _show(value: Any) -> str:
    return "—" if value is None else str(value)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class PatientSearch(Snapshot, w.VBox):  # type: ignore[misc]  # ipywidgets has no types: VBox is Any
    """Find patients by name, email or external identifier; choosing one opens it in ``.form``."""

    SEARCH_FIELDS = (("Name", "name"), ("Email", "email"), ("External id", "external_identifier"))

    def __init__(self, client: ImpiloClient, *, max_results: int = 25) -> None:
        self.client = client
        self.max_results = max_results
        self.found: list[Patient] = []
        # continuous_update=False: the value changes on Enter (or leaving the box), which searches.
        self.query = w.Text(
            placeholder="part of a name; a whole email or external id", layout=w.Layout(width="24em"), continuous_update=False
        )
        self.search_by = w.ToggleButtons(options=self.SEARCH_FIELDS, value="name")
        self.search_button = w.Button(description="Search", icon="search", button_style="info", layout=w.Layout(width="8em"))
        self.search_button.on_click(lambda _: self.search())
        self.query.observe(lambda _: self.search() if self.query.value.strip() else None, names="value")
        self.summary = w.HTML()
        self.results = w.Select(options=[], rows=8, layout=w.Layout(width="46em"))
        self.results.observe(lambda change: self.choose(change["new"]) if change["new"] is not None else None, names="value")
        self.form = PatientForm(client)
        super().__init__([w.HBox([self.query, self.search_button]), self.search_by, self.summary, self.results, self.form])

    def __repr__(self) -> str:
        return f"PatientSearch({len(self.found)} found)"

    def snapshot_html(self) -> str:
        """The search as it stands: the query, the results, and the form below."""
        results = "".join(f"<li>{_result_html(patient)}</li>" for patient in self.found)
        # What was searched for is a name, an email or an identifier: personal in a shared report.
        query = html.escape(self.query.value)
        query = f"<span class='{PERSONAL_CLASS}'>{query}</span>" if query else "<i>nothing yet</i>"
        return (
            f"<b>Patient search</b> (interactive in JupyterLab): {query}<div>{self.summary.value}</div>"
            f"<ul>{results}</ul>{self.form.snapshot_html()}"
        )

    def search(self) -> list[Patient]:
        """Run the search; fills ``found`` and the result list."""
        text = self.query.value.strip()
        if not text:
            self.summary.value = "<span style='color:#b00020'>Type something to search for.</span>"
            return []
        try:
            page = self.client.patients.page(size=self.max_results, sort="lastName", **{self.search_by.value: text})
        except (APIError, ValidationError) as exc:
            self.summary.value = f"<span style='color:#b00020'>{html.escape(str(exc))}</span>"
            return []
        self.found = page.content
        more = f", showing the first {len(self.found)}" if page.total > len(self.found) else ""
        self.summary.value = f"{page.total} patient{'s' * (page.total != 1)} found{more}." + (
            " Choose one to open it below." if self.found else ""
        )
        self.results.value = None
        self.results.options = [(_result_label(p), p.id) for p in self.found]
        return self.found

    def choose(self, patient_id: int) -> Patient | None:
        """Open one of the results in the form."""
        return self.form.load(patient_id)


def _result_html(patient: Patient) -> str:
    """``_result_label`` as HTML, who the patient is marked personal (a shared report masks it)."""
    def marked(text: str) -> str:
        return f"<span class='{PERSONAL_CLASS}'>{html.escape(text)}</span>"

    parts = [f"#{patient.id}", marked(patient.full_name)]
    if patient.date_of_birth:
        parts.append(f"born {marked(patient.date_of_birth.isoformat())}")
    if patient.email:
        parts.append(marked(patient.email))
    if patient.external_identifier:
        parts.append(f"ext {html.escape(patient.external_identifier)}")
    if patient.archived:
        parts.append("(archived)")
    return " · ".join(parts)


def _result_label(patient: Patient) -> str:
    parts = [f"#{patient.id}", patient.full_name]
    if patient.date_of_birth:
        parts.append(f"born {patient.date_of_birth.isoformat()}")
    if patient.email:
        parts.append(patient.email)
    if patient.external_identifier:
        parts.append(f"ext {patient.external_identifier}")
    if patient.archived:
        parts.append("(archived)")
    return " · ".join(parts)


class PatientTable(Snapshot, w.VBox):  # type: ignore[misc]  # ipywidgets has no types: VBox is Any
    """The newest patients as a table that redraws itself on ``refresh()``.

    Give ``refresh`` to a form (``form.on_saved.append(table.refresh)``) and a patient saved
    there appears here at once: Run All draws the table before anyone has used the form.
    ``table.frame`` is the DataFrame shown (the ``client.patients.frame()`` columns).

    Raises:
        ConfigurationError: an unknown column, or ``max_rows`` outside 1..250.
    """

    def __init__(
        self, client: ImpiloClient, *, columns: Sequence[str] = TABLE_COLUMNS, max_rows: int = TABLE_ROWS
    ) -> None:
        if not isinstance(client, ImpiloClient):
            raise TypeError(f"PatientTable needs an impilo_nb.ImpiloClient (nb.connect()), got {type(client).__name__}.")
        _check_table_settings(columns, max_rows)
        self.client = client
        self.columns = list(columns)
        self.max_rows = max_rows
        self.total = 0
        self.frame = pd.DataFrame(columns=self.columns)
        self.summary = w.HTML()
        self.table = w.HTML()
        super().__init__([self.summary, self.table])
        self.refresh()

    def __repr__(self) -> str:
        return f"PatientTable({self.total} patient{'s' * (self.total != 1)})"

    def snapshot_html(self) -> str:
        """The table as it was last drawn."""
        return f"{self.summary.value}{self.table.value}"

    def refresh(self, saved: Patient | None = None) -> pd.DataFrame:
        """Fetch the newest patients and redraw; ``saved`` (from ``on_saved``) is not needed.

        A failure is shown above the table, which keeps its last rows: a callback of a form's
        save must not undo the save's own success message.
        """
        try:
            page = self.client.patients.page(size=self.max_rows, sort="patientId", sort_descending=True)
        except (APIError, ValidationError) as exc:
            self.summary.value = f"<div style='color:#b00020'>Could not refresh the patients: {html.escape(str(exc))}</div>"
            return self.frame
        self.total = page.total
        self.frame = patient_frame(page.content).reindex(columns=self.columns)
        shown = f"the newest {len(page.content)} of " if page.total > len(page.content) else ""
        count = f"{shown}{page.total}, newest first" if page.total else "none yet"
        self.summary.value = f"<b>Patients</b>: {count}."
        self.table.value = _as_html_table(self.frame)
        return self.frame


def _as_html_table(frame: pd.DataFrame) -> str:
    """``frame`` as a left-aligned HTML table: dates as dates (the patient's are days, not
    midnights) and missing values blank (pd.NA would print as "<NA>")."""
    shown = frame.copy()
    for column in shown.select_dtypes(include=["datetime", "datetimetz"]).columns:
        shown[column] = shown[column].dt.strftime("%Y-%m-%d")
    shown = shown.astype(object).where(shown.notna(), "")
    return shown.to_html(index=False, classes="impilo-patient-table", border=0, justify="left")


def _check_table_settings(columns: Sequence[str], max_rows: int) -> None:
    if isinstance(columns, str) or not columns or not all(isinstance(column, str) for column in columns):
        raise ConfigurationError(f"PatientTable(columns=...) must be a list of column names, got {columns!r}.")
    unknown = [column for column in columns if column not in PATIENT_COLUMNS]
    if unknown:
        raise ConfigurationError(
            f"PatientTable(columns=...) has unknown column(s) {', '.join(map(repr, unknown))}; "
            f"use the names of client.patients.frame(): {', '.join(PATIENT_COLUMNS)}."
        )
    if not isinstance(max_rows, int) or isinstance(max_rows, bool) or not 1 <= max_rows <= c.MAX_PAGE_SIZE:
        raise ConfigurationError(
            f"PatientTable(max_rows=...) must be a whole number from 1 to {c.MAX_PAGE_SIZE}, got {max_rows!r}."
        )
