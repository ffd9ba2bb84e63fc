"""Drive the real widgets in code: set .value, .click(), read what a person would see."""

import datetime as dt
import html
import time

import pytest

import impilo_nb as nb
from impilo_nb.widgets import PatientForm


def fill(form: PatientForm, **values):
    for path, value in values.items():
        form.fields[path].value = value


def shown_errors(form: PatientForm) -> dict:
    return {path: box.value for path, box in form.errors.items() if box.value}


def patient_count(client) -> int:
    return client.patients.page(size=1).total


def test_fill_and_click_creates_the_patient(client):
    form = PatientForm(client)
    fill(
        form,
        firstName="Ana",
        lastName="Rivera",
        email="ana@example.org",
        phoneNumber="(555) 123-4567",
        externalIdentifier="crm-1",
        sex="female",
        dateOfBirth=dt.date(1975, 4, 2),
    )
    fill(
        form,
        **{
            "address.lineOne": "10 Elm Road",
            "address.city": "Springfield",
            "address.state": "IL",
            "address.zipCode": "62701",
            "address.country": "USA",
        },
    )
    form.submit_button.click()
    assert "Created patient 1" in form.status.value
    stored = client.patients.get(1)
    assert (stored.first_name, stored.last_name, stored.email, stored.sex) == ("Ana", "Rivera", "ana@example.org", "female")
    assert stored.date_of_birth == dt.date(1975, 4, 2) and stored.address.city == "Springfield"
    assert form.patient == stored and not form.submit_button.disabled


def test_invalid_input_shows_under_each_field_and_sends_nothing(client):
    form = PatientForm(client)
    fill(form, firstName="Ana", email="x@")
    form.fields["address.city"].value = "Springfield"
    form.submit_button.click()
    errors = shown_errors(form)
    assert set(errors) == {"lastName", "email", "address"}
    assert "required" in errors["lastName"] and "x@" in errors["email"] and "lineOne" in errors["address"]
    assert "nothing was sent" in form.status.value
    assert patient_count(client) == 0


def test_errors_clear_once_corrected(client):
    form = PatientForm(client)
    fill(form, firstName="Ana")
    form.submit_button.click()
    assert shown_errors(form)
    fill(form, lastName="Rivera")
    form.submit_button.click()
    assert shown_errors(form) == {} and "Created" in form.status.value


def test_duplicate_external_identifier_shows_the_server_message(client):
    client.patients.create({"firstName": "A", "lastName": "B", "externalIdentifier": "dup"})
    form = PatientForm(client)
    fill(form, firstName="C", lastName="D", externalIdentifier="dup")
    form.submit_button.click()
    assert "409" in form.status.value and "already exists" in form.status.value
    assert "Already used" in form.errors["externalIdentifier"].value


def test_server_down_shows_a_clear_message(sandbox):
    client = nb.ImpiloClient(base_url=sandbox.url, api_key=sandbox.api_key, max_retries=0)
    sandbox.stop()
    form = PatientForm(client)
    fill(form, firstName="A", lastName="B")
    form.submit_button.click()
    assert "No answer from the server" in form.status.value and not form.submit_button.disabled


def test_wrong_key_says_what_to_do(sandbox):
    form = PatientForm(nb.ImpiloClient(base_url=sandbox.url, api_key="wrong"))
    fill(form, firstName="A", lastName="B")
    form.submit_button.click()
    assert "401" in form.status.value and "IMPILO_API_KEY" in form.status.value


def test_loading_an_existing_patient_and_saving_it(client):
    created = client.patients.create({"firstName": "Ana", "lastName": "Rivera", "email": "a@example.org"})
    form = PatientForm(client, patient_id=created.id)
    assert form.fields["firstName"].value == "Ana" and form.submit_button.description == "Save changes"
    form.fields["email"].value = "b@example.org"
    form.submit_button.click()
    assert "Saved patient 1" in form.status.value
    assert client.patients.get(created.id).email == "b@example.org"


def test_loading_a_missing_patient_says_so(client):
    form = PatientForm(client, patient_id=42)
    assert "404" in form.status.value and "not found" in form.status.value


def test_saved_callbacks_receive_the_patient(client):
    seen = []
    form = PatientForm(client)
    form.on_saved.append(seen.append)
    fill(form, firstName="A", lastName="B")
    form.submit()
    assert [p.id for p in seen] == [1]


@pytest.mark.parametrize("value", ["", "   "])
def test_blank_text_counts_as_empty(client, value):
    form = PatientForm(client)
    fill(form, firstName="A", lastName="B", email=value)
    assert form.values()["email"] is None


# -- PatientForm: every field, live validation, update review, lookup (issue 4) ---------------

from impilo_nb.ids import external_id  # noqa: E402
from impilo_nb.widgets import PatientSearch  # noqa: E402

EVERY_FIELD = {
    "firstName": "Ana",
    "lastName": "Rivera",
    "dateOfBirth": dt.date(1975, 4, 2),
    "sex": "female",
    "email": "ana.rivera@example.org",
    "phoneNumber": "+1 555 010 0100",
    "externalIdentifier": "crm-000123",
    "enrolled": True,
    "archived": False,
    "address.lineOne": "10 Elm Road",
    "address.lineTwo": "Flat 2",
    "address.lineThree": "Back door",
    "address.city": "Springfield",
    "address.state": "IL",
    "address.zipCode": "62701",
    "address.country": "USA",
    "address.note": "Ring twice",
    "site.name": "North Clinic",
    "site.active": True,
    "site.phoneNumber": "555-000-1111",
    "site.address.lineOne": "1 Main St",
    "site.address.lineTwo": "Suite 3",
    "site.address.lineThree": "Floor 2",
    "site.address.city": "Springfield",
    "site.address.state": "IL",
    "site.address.zipCode": "62702",
    "site.address.country": "USA",
    "site.address.note": "Loading bay",
}


def test_every_field_round_trips_through_the_form(client):
    form = PatientForm(client)
    assert set(form.fields) == set(EVERY_FIELD)  # the form covers every Patient field
    fill(form, **EVERY_FIELD)
    form.submit_button.click()
    assert "Created" in form.status.value, form.status.value
    stored = client.patients.get(form.patient.id)
    flat = nb.models.flatten_record(stored.to_api())
    flat["dateOfBirth"] = stored.date_of_birth
    assert {path: flat[path] for path in EVERY_FIELD} == EVERY_FIELD
    reopened = PatientForm(client, patient_id=stored.id)
    assert {path: widget.value for path, widget in reopened.fields.items()} == EVERY_FIELD


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        ("dateOfBirth", dt.date(2999, 1, 1), "cannot be in the future"),
        ("dateOfBirth", dt.date(1875, 1, 1), "typo"),
        ("email", "ana@", "Not an email address"),
        ("lastName", "", "required"),
    ],
)
def test_each_bad_value_has_its_own_message_and_nothing_is_sent(client, path, value, words):
    form = PatientForm(client)
    fill(form, firstName="Ana", lastName="Rivera", email="ana@example.org")
    fill(form, **{path: value})
    form.submit_button.click()
    assert words in form.errors[path].value
    assert [p for p, box in form.errors.items() if box.value] == [path]
    assert patient_count(client) == 0


def test_validation_as_you_type_only_for_touched_fields(client):
    form = PatientForm(client)
    form.fields["email"].value = "ana@"
    assert "Not an email address" in form.errors["email"].value
    assert form.errors["lastName"].value == ""  # not touched yet: no nagging
    form.fields["email"].value = "ana@example.org"
    assert form.errors["email"].value == ""


def test_address_errors_open_the_section(client):
    form = PatientForm(client)
    fill(form, firstName="A", lastName="B", **{"address.city": "Springfield"})
    form.submit()
    assert "lineOne" in form.errors["address"].value and form.sections.selected_index == 0


def test_button_is_disabled_while_the_request_is_in_flight(client, monkeypatch):
    form = PatientForm(client)
    fill(form, firstName="A", lastName="B")
    seen = []
    send = client.patients.create

    def create(patient):  # look at the form at the moment the request goes out
        seen.append((form.submit_button.disabled, form.status.value))
        return send(patient)

    monkeypatch.setattr(client.patients, "create", create)
    form.submit_button.click()
    [(disabled, status)] = seen
    assert disabled and "Sending" in status
    assert not form.submit_button.disabled and "Created" in form.status.value


def test_update_review_shows_exactly_the_changed_fields(client):
    created = client.patients.create({"firstName": "Ana", "lastName": "Rivera", "email": "a@example.org", "enrolled": True})
    form = PatientForm(client, patient_id=created.id)
    assert "No changes" in form.changes_view.value and form.changes() == []
    fill(form, email="ana.rivera@example.org", enrolled=False)
    changes = form.changes()
    assert changes == [("email", "a@example.org", "ana.rivera@example.org"), ("enrolled", True, False)]
    assert "Saving will change 2 fields" in form.changes_view.value and "firstName" not in form.changes_view.value
    form.submit_button.click()
    assert "Saved patient" in form.status.value and "No changes" in form.changes_view.value
    stored = client.patients.get(created.id)
    assert (stored.email, stored.enrolled, stored.first_name) == ("ana.rivera@example.org", False, "Ana")


def test_saving_without_changes_sends_nothing(client):
    created = client.patients.create({"firstName": "Ana", "lastName": "Rivera"})
    form = PatientForm(client, patient_id=created.id)
    assert form.submit() == created and "Nothing to save" in form.status.value


def test_clearing_an_address_removes_it(client):
    created = client.patients.create(
        {
            "firstName": "A",
            "lastName": "B",
            "address": {"lineOne": "1", "city": "c", "state": "s", "zipCode": "z", "country": "US"},
        }
    )
    form = PatientForm(client, patient_id=created.id)
    for path in [p for p in form.fields if p.startswith("address.")]:
        form.fields[path].value = ""
    assert ("address.city", "c", None) in form.changes()
    form.submit()
    assert client.patients.get(created.id).address is None


def test_fields_the_form_does_not_show_are_kept_by_a_save(client):
    form = PatientForm(client)
    form.show(
        nb.Patient.from_api({"id": 5, "firstName": "A", "lastName": "B", "legacyCode": "X1", "site": {"id": 9, "name": "N"}})
    )
    form.fields["firstName"].value = "Anna"
    record = form.values()
    assert record["legacyCode"] == "X1" and record["site"]["id"] == 9 and record["firstName"] == "Anna"


def test_load_by_external_identifier_and_by_id(client):
    created = client.patients.create({"firstName": "Ana", "lastName": "Rivera", "externalIdentifier": "crm-7"})
    form = PatientForm(client)
    form.lookup.value = "crm-7"
    form.load_button.click()
    assert form.patient_id == created.id and form.fields["firstName"].value == "Ana"
    form.new_button.click()
    assert form.patient_id is None and form.fields["firstName"].value == "" and form.submit_button.description == "Create patient"
    form.lookup.value = str(created.id)
    form.load_button.click()
    assert form.patient_id == created.id
    form.lookup.value = "nobody"
    form.load_button.click()
    assert "No patient has external identifier &#x27;nobody&#x27;." in form.status.value


@pytest.mark.parametrize("text", ["٣", "３", "²", "3²"])
def test_load_reads_only_ascii_digits_as_an_id(client, text):
    """Other scripts' digits pass str.isdigit (and int("٣") is 3), but they are no Impilo id."""
    for n in range(3):
        client.patients.create({"firstName": f"P{n}", "lastName": "X"})
    form = PatientForm(client)
    form.lookup.value = text
    form.load_button.click()
    assert form.patient_id is None and form.fields["firstName"].value == ""
    assert f"No patient has external identifier {html.escape(repr(text))}." in form.status.value


def test_load_finds_an_external_identifier_written_in_other_digits(client):
    for n in range(3):
        client.patients.create({"firstName": f"P{n}", "lastName": "X"})
    holder = client.patients.create({"firstName": "Rania", "lastName": "Haddad", "externalIdentifier": "٣"})
    form = PatientForm(client)
    form.lookup.value = "٣"
    form.load_button.click()
    assert form.patient_id == holder.id != 3 and form.fields["firstName"].value == "Rania"


def test_generate_external_identifier_fills_it_and_warns_about_hazards(client):
    form = PatientForm(client)
    fill(form, email="Ian@Example.org", phoneNumber="(555) 123-4567")
    form.generate_button.click()
    assert form.fields["externalIdentifier"].value == external_id("Ian@Example.org", "(555) 123-4567")
    assert "Turkish" in form.errors["externalIdentifier"].value  # capital I: locale hazard


def test_generate_needs_email_and_phone(client):
    form = PatientForm(client)
    form.generate_button.click()
    assert "Fill in email and phone first" in form.errors["externalIdentifier"].value


def test_server_error_5xx_is_one_clear_message(client, sandbox):
    form = PatientForm(client)
    fill(form, firstName="A", lastName="B")
    sandbox.inject_fault(500)
    form.submit_button.click()
    assert "500" in form.status.value and "Try again in a moment" in form.status.value


def test_search_by_name_email_and_external_id_then_open(client):
    for n, (first, last) in enumerate([("Ana", "Rivera"), ("Bo", "Rivers"), ("Cy", "Smith")]):
        client.patients.create(
            {"firstName": first, "lastName": last, "email": f"p{n}@example.org", "externalIdentifier": f"crm-{n}"}
        )
    search = PatientSearch(client)
    search.query.value = "river"
    search.search_button.click()
    assert [p.last_name for p in search.found] == ["Rivera", "Rivers"] and "2 patients found" in search.summary.value
    search.results.value = search.found[1].id
    assert search.form.patient_id == search.found[1].id and search.form.fields["firstName"].value == "Bo"
    search.search_by.value = "email"
    search.query.value = "p2@example.org"
    search.search_button.click()
    assert [p.first_name for p in search.found] == ["Cy"]
    search.search_by.value = "external_identifier"
    search.query.value = "crm-0"
    search.search_button.click()
    assert [p.first_name for p in search.found] == ["Ana"]


def test_search_edit_and_save_through_the_opened_form(client):
    client.patients.create({"firstName": "Ana", "lastName": "Rivera"})
    search = PatientSearch(client)
    search.query.value = "ana"
    search.search()
    search.results.value = search.found[0].id
    search.form.fields["phoneNumber"].value = "+1 555 0100"
    search.form.submit_button.click()
    assert client.patients.get(search.found[0].id).phone_number == "+1 555 0100"


def test_search_with_nothing_typed_or_nothing_found(client):
    search = PatientSearch(client)
    search.search_button.click()
    assert "Type something" in search.summary.value
    search.query.value = "zzz"
    search.search_button.click()
    assert "0 patients found" in search.summary.value and search.results.options == ()


# -- WebhookLogView ----------------------------------------------------------------------------

import json  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from impilo_nb.widgets import WebhookLogView, log_view  # noqa: E402
from impilo_nb.widgets.log_view import TIMELINE_TAB  # noqa: E402


def deliver(log, event_id, type_="patient.created", **payload):
    log.record_body(json.dumps({"id": event_id, "type": type_, "payload": {"id": event_id * 10, **payload}}).encode())


@pytest.fixture
def event_log(tmp_path):
    return nb.EventLog(tmp_path / "events.db")


def test_log_view_shows_newest_first_with_counts(event_log):
    deliver(event_log, 1, firstName="Ana")
    deliver(event_log, 2, "patient.updated", firstName="Bo")
    view = WebhookLogView(event_log, live=False)
    assert view.frame["event_id"].tolist() == [2, 1]
    assert "2 events" in view.counts.value and "patient.updated: <b>1</b>" in view.counts.value
    assert view.table.value.index("Bo") < view.table.value.index("Ana")
    assert view.type_filter.options == ("(all types)", "patient.created", "patient.updated")


def test_log_view_filters_by_type_and_text(event_log):
    deliver(event_log, 1, firstName="Ana")
    deliver(event_log, 2, "patient.updated", firstName="Bo")
    deliver(event_log, 3, "patient.updated", firstName="Cy")
    view = WebhookLogView(event_log, live=False)
    view.type_filter.value = "patient.updated"
    assert view.frame["event_id"].tolist() == [3, 2]
    view.search.value = "cy"
    assert view.frame["event_id"].tolist() == [3]
    view.search.value = "nobody"
    assert view.frame.empty and "Nothing matches" in view.table.value


def test_log_view_detail_shows_the_selected_event_json(event_log):
    deliver(event_log, 1, firstName="Ana <b>")
    deliver(event_log, 2, firstName="Bo")
    view = WebhookLogView(event_log, live=False)
    view.event_picker.value = 1
    assert "&quot;firstName&quot;: &quot;Ana &lt;b&gt;&quot;" in view.detail.value


class FakeClock:
    """Stands in for time.monotonic, so the timing rules are checked without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_until(condition, hang_guard: float = 30.0) -> None:
    """Wait for ``condition``; the deadline only stops a hang, it asserts no speed."""
    deadline = time.monotonic() + hang_guard
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {hang_guard} s: hung"
        time.sleep(0.02)


def show_timeline(view) -> None:
    view.tabs.selected_index = TIMELINE_TAB


def test_log_view_timeline_is_a_png(event_log):
    deliver(event_log, 1)
    view = WebhookLogView(event_log, live=False)
    show_timeline(view)
    assert view.timeline.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert view.timeline.layout.display is None and view._timeline_note.value == ""


def test_log_view_draws_the_timeline_only_while_its_tab_is_shown(event_log, monkeypatch):
    drawn = []
    draw = log_view._timeline_png
    monkeypatch.setattr(log_view, "_timeline_png", lambda log: drawn.append(len(log)) or draw(log))
    deliver(event_log, 1)
    view = WebhookLogView(event_log, live=False, timeline_interval=0)
    assert drawn == [] and view.timeline.value == b""  # building the view draws nothing
    deliver(event_log, 2)
    view.refresh(force_plot=True)
    assert drawn == [] and "2 events" in view.counts.value
    assert not view._poll_once()  # a hidden timeline that lags is no reason to refresh
    show_timeline(view)
    assert drawn == [2]  # drawn when first looked at
    view.tabs.selected_index = 0
    show_timeline(view)
    assert drawn == [2]  # up to date: not drawn again
    view.tabs.selected_index = 0
    deliver(event_log, 3)
    view.refresh()
    assert drawn == [2]
    show_timeline(view)
    assert drawn == [2, 3]  # stale when opened: redrawn


def test_building_and_refreshing_the_view_never_imports_matplotlib(tmp_path):
    code = f"""
import json, sys
import impilo_nb as nb
from impilo_nb.widgets import WebhookLogView
log = nb.EventLog({str(tmp_path / "events.db")!r})
view = WebhookLogView(log, live=False, timeline_interval=0)
log.record_body(json.dumps({{"id": 1, "type": "patient.created", "payload": {{"id": 10}}}}).encode())
view.refresh_button.click()
print("matplotlib" in sys.modules, view.counts.value)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("False") and "1 event " in done.stdout


def test_log_view_report_snapshot_has_the_timeline_though_its_tab_was_never_opened(event_log):
    deliver(event_log, 1)
    view = WebhookLogView(event_log, live=False)
    snapshot = view.snapshot_html()
    assert "1 event " in snapshot and "<img alt='timeline' src='data:image/png;base64,iVBORw0KGgo" in snapshot


def test_log_view_live_shows_new_events_by_itself(event_log):
    view = WebhookLogView(event_log)  # live
    try:
        assert "No events yet" in view.counts.value
        deliver(event_log, 1)
        wait_until(lambda: "1 event " in view.counts.value)
        assert view.frame["event_id"].tolist() == [1]
    finally:
        view.close()


def test_log_view_redraws_the_timeline_at_most_every_interval_but_never_leaves_it_behind(event_log):
    view = WebhookLogView(event_log, live=False, timeline_interval=5.0)
    clock = view._clock = FakeClock()
    show_timeline(view)
    first = view.timeline.value
    clock.now += 1
    deliver(event_log, 1)
    assert view._poll_once()
    assert "1 event " in view.counts.value and view.timeline.value == first  # table now, picture later
    clock.now += 3.9
    assert not view._poll_once()  # nothing new, picture not due yet: no work
    clock.now += 0.1
    assert view._poll_once() and view.timeline.value != first  # due, with no further event to prompt it
    assert not view._poll_once()  # caught up


def test_log_view_refresh_button_redraws_the_shown_timeline_at_once(event_log):
    view = WebhookLogView(event_log, live=False, timeline_interval=3600)
    view._clock = FakeClock()
    show_timeline(view)
    first = view.timeline.value
    deliver(event_log, 1)
    view.refresh()
    assert view.timeline.value == first  # not due
    view.refresh_button.click()
    assert view.timeline.value != first


def test_log_view_backs_off_to_twice_its_last_refresh(event_log, monkeypatch):
    deliver(event_log, 1)
    view = WebhookLogView(event_log, live=False, refresh_interval=0.5)
    clock = view._clock = FakeClock()
    read = event_log.frame

    def slow_read(*args, **kwargs):
        clock.now += 0.8 if kwargs.get("limit") else 0  # the table's read; the new event's type is quick
        return read(*args, **kwargs)

    monkeypatch.setattr(event_log, "frame", slow_read)
    deliver(event_log, 2)
    view.refresh()
    assert view._next_wait() == pytest.approx(1.6)
    monkeypatch.setattr(event_log, "frame", read)
    deliver(event_log, 3)
    view.refresh()
    assert view._next_wait() == 0.5


def test_log_view_timeline_paces_itself_and_does_not_slow_the_table(event_log, monkeypatch):
    deliver(event_log, 1)
    view = WebhookLogView(event_log, live=False, refresh_interval=0.5, timeline_interval=5.0)
    clock = view._clock = FakeClock()
    draw = log_view._timeline_png

    def slow_draw(log):
        clock.now += 10
        return draw(log)

    monkeypatch.setattr(log_view, "_timeline_png", slow_draw)
    show_timeline(view)  # drawn: it took 10 s
    deliver(event_log, 2)
    view.refresh()
    assert view._next_wait() == 0.5  # the table keeps its pace
    clock.now += 19.9
    assert not view._timeline_due()  # twice the drawing's cost, longer than timeline_interval
    clock.now += 0.1
    assert view._timeline_due()


def test_log_view_refresh_button_and_live_off(event_log):
    view = WebhookLogView(event_log, live=False)
    deliver(event_log, 1)
    assert view._thread is None and view.frame.empty  # not live: nothing watches the log
    view.refresh_button.click()
    assert view.frame["event_id"].tolist() == [1]


def test_log_view_starts_watching_when_live_is_switched_on(event_log):
    view = WebhookLogView(event_log, live=False)
    try:
        view.live.value = True
        deliver(event_log, 1)
        wait_until(lambda: "1 event " in view.counts.value)
    finally:
        view.close()


def test_log_view_needs_an_event_log():
    with pytest.raises(TypeError):
        WebhookLogView("events.db")


@pytest.mark.parametrize(
    ("setting", "value"),
    [("max_rows", 0), ("max_rows", 2.5), ("max_rows", True), ("search_rows", -1), ("refresh_interval", 0),
     ("refresh_interval", float("nan")), ("timeline_interval", -1), ("timeline_interval", "5")],
)
def test_log_view_refuses_unusable_settings_and_names_them(event_log, setting, value):
    with pytest.raises(nb.ConfigurationError, match=rf"{setting}=\.\.\.\) must be .*got {value!r}"):
        WebhookLogView(event_log, live=False, **{setting: value})


# -- WebhookLogView on a big log: it reads what it shows and what is new, nothing more ---------


class CountingStore:
    """Wraps a real event store and counts what the view asks of it: calls, and event rows read
    (``rows``: by ``events``, what ``frame()`` reads; ``get`` reads one event, by its id)."""

    def __init__(self, store) -> None:
        self._store = store
        self.reset()

    def reset(self) -> None:
        self.calls: list[str] = []
        self.rows = 0

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls.append(name)
            result = attr(*args, **kwargs)
            if name == "events":  # a list of rows, or an iterator of batches of rows
                result = list(result)
                batched = bool(result) and isinstance(result[0], list)
                self.rows += sum(map(len, result)) if batched else len(result)
                return iter(result) if batched else result
            return result

        return counted


class WatchedLog(nb.EventLog):
    """A real event log that counts how often its timeline is computed, and reads through a CountingStore."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.timelines = 0
        self.store = self._store = CountingStore(self._store)

    def timeline(self, *args, **kwargs):
        self.timelines += 1
        return super().timeline(*args, **kwargs)


@pytest.fixture
def big_log(tmp_path):
    """300 events, every third a patient.created, read through a CountingStore."""
    log = WatchedLog(tmp_path / "events.db")
    for n in range(1, 301):
        deliver(log, n, "patient.created" if n % 3 == 0 else "patient.updated", firstName=f"First{n}")
    return log


def test_a_refresh_after_one_new_event_reads_the_newest_rows_only(big_log):
    view = WebhookLogView(big_log, live=False, max_rows=20)
    deliver(big_log, 301, "patient.created", firstName="Newest")
    big_log.store.reset()
    assert view._poll_once()
    assert big_log.store.rows <= 20 + 1  # the newest 20 rows and the new event's type: no count over the log
    assert big_log.store.calls.count("get") <= 1  # the selected event, for its detail
    assert "type_counts" not in big_log.store.calls and big_log.timelines == 0
    assert view.frame["event_id"].tolist() == list(range(301, 281, -1)) and "Newest" in view.table.value
    assert "301 events (20 shown)" in view.counts.value and "patient.created: <b>101</b>" in view.counts.value
    assert view.event_picker.options[0][1] == 301 and view.event_picker.value == 300  # the selection is kept


def test_an_unchanged_log_is_not_read_again(big_log):
    view = WebhookLogView(big_log, live=False, max_rows=20)
    big_log.store.reset()
    assert not view._poll_once()
    view.refresh()
    assert big_log.store.calls == ["version", "version"] and big_log.store.rows == 0


def test_a_type_filter_reads_the_newest_rows_of_that_type(big_log):
    view = WebhookLogView(big_log, live=False, max_rows=10)
    view.type_filter.value = "patient.created"
    assert view.frame["event_id"].tolist() == list(range(300, 270, -3))
    deliver(big_log, 301, "patient.updated")
    big_log.store.reset()
    view.refresh()
    assert big_log.store.rows <= 10 + 1  # 10 of the type, and the new event's type for the counts
    assert view.frame["event_id"].tolist()[0] == 300 and "patient.updated: <b>201</b>" in view.counts.value


def test_the_timeline_is_computed_only_when_its_tab_is_shown(big_log):
    view = WebhookLogView(big_log, live=False, timeline_interval=0)
    deliver(big_log, 301)
    view.refresh(force_plot=True)
    assert big_log.timelines == 0
    show_timeline(view)
    assert big_log.timelines == 1 and view.timeline.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_search_looks_through_the_newest_search_rows(big_log):
    view = WebhookLogView(big_log, live=False, max_rows=5, search_rows=50)
    view.search.value = "first29"  # First29 and First290..First299: only the ten newest are in reach
    assert view.frame["event_id"].tolist() == [299, 298, 297, 296, 295]
    assert "the search looks at the newest 50" in view.counts.value
    big_log.store.reset()
    view.search.value = "first2"  # the same newest rows, matched again without reading them again
    assert big_log.store.rows == 0 and view.frame["event_id"].tolist() == [299, 298, 297, 296, 295]
    view.search.value = "first251"
    assert view.frame["event_id"].tolist() == [251] and "Nothing matches" not in view.table.value


def test_counts_kept_up_to_date_from_new_rows_match_a_full_count(big_log, monkeypatch):
    monkeypatch.setattr(log_view, "COUNT_READ_LIMIT", 8)  # so that bursts past it are counted in full
    view = WebhookLogView(big_log, live=False, max_rows=5)
    next_id = 301
    for burst, kind in [(1, "patient.created"), (3, "patient.archived"), (0, ""), (7, "patient.updated"), (20, "x.y")]:
        for _ in range(burst):
            deliver(big_log, next_id, kind)
            next_id += 1
        deliver(big_log, 5)  # a redelivery: a version change that adds no event
        view.refresh()
        assert view._type_counts.by_type == big_log.types()
        assert list(view.type_filter.options) == ["(all types)", *sorted(big_log.types())]


def test_counts_heal_when_an_event_lands_while_they_are_counted_in_full(big_log, monkeypatch):
    monkeypatch.setattr(log_view, "COUNT_READ_LIMIT", 1)
    view = WebhookLogView(big_log, live=False)
    counted = big_log.types

    def an_event_then_types():  # lands after the version was read, before the count: counted twice
        deliver(big_log, 1000, "patient.deleted")
        return counted()

    big_log.types = an_event_then_types
    for n in (301, 302):
        deliver(big_log, n)
    view.refresh()  # two new events: past COUNT_READ_LIMIT, so counted in full
    big_log.types = counted
    monkeypatch.setattr(log_view, "COUNT_READ_LIMIT", 10_000)
    deliver(big_log, 303)  # read as new, with event 1000 again: one more than the log holds, so counted in full
    assert view._poll_once()
    assert view._type_counts.by_type == big_log.types() and view._type_counts.total == len(big_log) == 304


def test_counts_follow_events_removed_from_the_log_outside_the_view(big_log, tmp_path):
    view = WebhookLogView(big_log, live=False)
    with sqlite3.connect(tmp_path / "events.db") as pruning:  # e.g. a retention job dropping old events
        pruning.execute("DELETE FROM events WHERE event_id <= 30")
    assert view._poll_once()
    assert view._type_counts.by_type == big_log.types() and "270 events" in view.counts.value
