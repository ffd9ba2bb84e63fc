"""Drive the real widgets in code: set .value, .click(), read what a person would see."""

import datetime as dt
import html

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


# -- PatientForm: the result where the user looks, and what a report shows (issue 15) ---------


def test_the_saved_patient_appears_under_the_button(client):
    form = PatientForm(client)
    assert form.children.index(form.result) > form.children.index(form.submit_button)
    assert form.result.value == ""
    fill(form, firstName="Zelda", lastName="Quist", email="zelda@example.org")
    saved = form.submit()
    assert "<td style='text-align:left'>zelda@example.org</td>" in form.result.value
    assert f"<td style='text-align:left'>{saved.id}</td>" in form.result.value
    form.new()
    assert form.result.value == ""


def test_a_failed_save_shows_no_earlier_result(client):
    form = PatientForm(client)
    fill(form, firstName="A", lastName="B", externalIdentifier="dup-1")
    form.submit()
    form.new()
    fill(form, firstName="C", lastName="D", externalIdentifier="dup-1")
    assert form.submit() is None and form.result.value == ""


def test_an_empty_form_snapshot_is_one_line_not_a_row_per_field(client):
    snapshot = PatientForm(client).snapshot_html()
    assert "Patient form (empty)" in snapshot and "fill it in JupyterLab" in snapshot
    assert "<tr" not in snapshot and "—" not in snapshot


def test_a_filled_form_snapshot_shows_only_the_filled_fields(client):
    form = PatientForm(client)
    fill(form, firstName="Ana", **{"address.city": "Springfield"})
    snapshot = form.snapshot_html()
    assert snapshot.count("<tr>") == 2 and "Springfield" in snapshot and "lastName" not in snapshot


def test_a_saved_form_snapshot_shows_the_result(client):
    form = PatientForm(client)
    fill(form, firstName="Ana", lastName="Rivera")
    saved = form.submit()
    snapshot = form.snapshot_html()
    assert f"Created patient {saved.id}: <span class='impilo-personal'>Ana Rivera</span>." in snapshot
    assert form.result.value in snapshot


def test_a_patient_table_redraws_when_the_form_saves(client):
    from impilo_nb.widgets.patient_form import PatientTable

    table = PatientTable(client, columns=["id", "firstName", "email"])
    form = PatientForm(client)
    form.on_saved.append(table.refresh)
    assert repr(table) == "PatientTable(0 patients)" and "none yet" in table.summary.value
    fill(form, firstName="Zelda", lastName="Quist")
    form.submit()
    assert repr(table) == "PatientTable(1 patient)" and list(table.frame.columns) == ["id", "firstName", "email"]
    assert "<td>Zelda</td>" in table.table.value and "&lt;NA&gt;" not in table.table.value
    assert table.snapshot_html() == table.summary.value + table.table.value


def test_a_patient_table_shows_the_newest_first_and_says_how_many_it_leaves_out(client):
    from impilo_nb.widgets.patient_form import PatientTable

    for n in range(3):
        client.patients.create({"firstName": f"P{n}", "lastName": "T", "dateOfBirth": f"1980-01-0{n + 1}"})
    table = PatientTable(client, max_rows=2)
    assert table.frame["firstName"].tolist() == ["P2", "P1"]
    assert "<td>1980-01-03</td>" in table.table.value and "00:00:00" not in table.table.value
    assert "the newest 2 of 3" in table.summary.value


def test_a_patient_table_keeps_its_rows_and_says_why_when_a_refresh_fails(sandbox):
    from impilo_nb.widgets.patient_form import PatientTable

    client = nb.ImpiloClient(base_url=sandbox.url, api_key=sandbox.api_key, max_retries=0)
    client.patients.create({"firstName": "Kept", "lastName": "Row"})
    table = PatientTable(client)
    sandbox.stop()
    table.refresh()
    assert "Could not refresh the patients" in table.summary.value and "Kept" in table.table.value


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ({"columns": ["id", "shoeSize"]}, "'shoeSize'"),
        ({"columns": "id"}, "list of column names"),
        ({"columns": []}, "list of column names"),
        ({"max_rows": 0}, "from 1 to 250"),
        ({"max_rows": 251}, "from 1 to 250"),
    ],
)
def test_a_patient_table_refuses_unusable_settings_and_names_them(client, setting, words):
    from impilo_nb.widgets.patient_form import PatientTable

    with pytest.raises(nb.ConfigurationError, match=words):
        PatientTable(client, **setting)


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


def test_a_shared_report_masks_the_update_review_of_a_form(client):
    from impilo_nb.reports import mask_html

    created = client.patients.create({"firstName": "Anastasia", "lastName": "Rivera", "dateOfBirth": "1975-04-02"})
    form = PatientForm(client, patient_id=created.id)
    fill(form, firstName="Anastacia", lastName="Riviera", dateOfBirth=dt.date(1975, 4, 3), sex="female")
    assert "Saving will change 4 fields" in form.changes_view.value
    shared = mask_html(form.snapshot_html())
    for personal in ("Anastasia", "Anastacia", "Rivera", "Riviera", "1975-04-02", "1975-04-03"):
        assert personal not in shared
    assert "female" in shared  # not personal: the reader still sees what changed


def test_a_shared_report_masks_who_a_search_found_and_who_was_saved(client):
    from impilo_nb.reports import mask_html
    from impilo_nb.widgets import PatientSearch

    client.patients.create(
        {"firstName": "Anastasia", "lastName": "Rivera", "dateOfBirth": "1975-04-02", "email": "ana@example.org"}
    )
    search = PatientSearch(client)
    search.query.value = "Anastasia"
    search.choose(search.found[0].id)
    search.form.fields["lastName"].value = "Riviera"
    search.form.submit_button.click()
    assert "Saved patient" in search.form.status.value and "Anastasia" in search.snapshot_html()
    shared = mask_html(search.snapshot_html())
    for personal in ("Anastasia", "Rivera", "Riviera", "1975-04-02", "ana@example.org"):
        assert personal not in shared
    assert "1 patient found" in shared and "Saved patient" in shared


@pytest.mark.parametrize("not_a_client", [None, "http://127.0.0.1:8765", object()])
def test_a_patient_table_refuses_what_is_not_a_client_before_any_widget(not_a_client):
    with pytest.raises(TypeError, match="PatientTable needs an impilo_nb.ImpiloClient"):
        nb.widgets.PatientTable(not_a_client)
