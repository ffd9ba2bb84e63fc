"""Drive the real widgets in code: set .value, .click(), read what a person would see."""

import datetime as dt

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
    assert form.fields["firstName"].value == "Ana" and form.submit_button.description == "Save patient"
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
    assert "email" not in form.values()


# -- WebhookLogView ----------------------------------------------------------------------------

import json  # noqa: E402
import time  # noqa: E402

from impilo_nb.widgets import WebhookLogView  # noqa: E402


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


def test_log_view_timeline_is_a_png(event_log):
    deliver(event_log, 1)
    view = WebhookLogView(event_log, live=False)
    assert view.timeline.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_log_view_shows_a_new_event_within_a_second(event_log):
    view = WebhookLogView(event_log)  # live
    try:
        assert "No events yet" in view.counts.value
        deliver(event_log, 1)
        deadline = time.monotonic() + 1.0
        while "1 event " not in view.counts.value and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "1 event " in view.counts.value and view.frame["event_id"].tolist() == [1]
    finally:
        view.close()


def test_log_view_refresh_button_and_live_off(event_log):
    view = WebhookLogView(event_log, live=False)
    deliver(event_log, 1)
    time.sleep(0.7)
    assert view.frame.empty  # not live: nothing changes by itself
    view.refresh_button.click()
    assert view.frame["event_id"].tolist() == [1]


def test_log_view_needs_an_event_log():
    with pytest.raises(TypeError):
        WebhookLogView("events.db")
