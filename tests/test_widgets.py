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
