import datetime as dt

import pandas as pd
import pytest

from impilo_nb.errors import ValidationError
from impilo_nb.models import Address, Page, Patient, PatientPatch, flatten_record
from tests.conftest import make_patient


def fields_of(exc: ValidationError) -> dict:
    return {fe.field: fe.message for fe in exc.field_errors}


def test_both_spellings_are_accepted_and_camel_case_is_sent():
    by_alias = Patient.model_validate({"firstName": "Ana", "lastName": "Rivera", "phoneNumber": "1"})
    by_name = Patient(first_name="Ana", last_name="Rivera", phone_number="1")
    assert by_alias == by_name
    assert by_name.to_api(exclude_none=True) == {"firstName": "Ana", "lastName": "Rivera", "phoneNumber": "1"}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"lastName": None}, "lastName", "required"),
        ({"lastName": "   "}, "lastName", "required"),
        ({"dateOfBirth": "1987-02-30"}, "dateOfBirth", "Not a real date: '1987-02-30'"),
        ({"dateOfBirth": "02/03/1987"}, "dateOfBirth", "YYYY-MM-DD"),
        ({"dateOfBirth": "1987-02-03T10:30:00Z"}, "dateOfBirth", "YYYY-MM-DD"),
        ({"email": "x@"}, "email", "Not an email address: 'x@'"),
        ({"sex": "x"}, "sex", "female, male, other, unknown"),
        ({"address": {"lineOne": "1 Main St"}}, "address", "missing: city, state, zipCode, country"),
        ({"enrolled": "maybe"}, "enrolled", "true or false"),
    ],
)
def test_bad_values_are_refused_naming_the_field(change, field, words):
    record = {k: v for k, v in {**make_patient(), **change}.items() if v is not None}
    with pytest.raises(ValidationError) as caught:
        Patient.model_validate(record)
    assert words in fields_of(caught.value)[field]
    assert field in str(caught.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValidationError) as caught:
        Patient(first_name="", last_name="", email="nope")
    assert set(fields_of(caught.value)) == {"firstName", "lastName", "email"}


def test_validation_error_is_a_value_error_and_pickles():
    import pickle

    with pytest.raises(ValueError):
        Patient(first_name="a")
    try:
        Patient(first_name="a")
    except ValidationError as exc:
        clone = pickle.loads(pickle.dumps(exc))
        assert clone.field_errors == exc.field_errors


@pytest.mark.parametrize(
    "value",
    ["1980-01-01", "1980-01-01T00:00:00Z", "1980-01-01T00:00:00.000+00:00", dt.date(1980, 1, 1), pd.Timestamp("1980-01-01")],
)
def test_date_of_birth_accepts_dates_and_midnight_datetimes(value):
    assert Patient(first_name="a", last_name="b", date_of_birth=value).date_of_birth == dt.date(1980, 1, 1)


def test_date_is_sent_as_date_only():
    assert Patient(first_name="a", last_name="b", date_of_birth="1980-01-01T00:00:00Z").to_api()["dateOfBirth"] == "1980-01-01"


def test_sex_is_case_insensitive_and_normalised():
    assert Patient(first_name="a", last_name="b", sex="Female").sex == "female"


def test_email_is_kept_exactly_as_typed():
    # Normalising would silently change the external identifier derived from it.
    assert Patient(first_name="a", last_name="b", email="Ana.Rivera@Example.ORG").email == "Ana.Rivera@Example.ORG"


def test_unknown_server_fields_are_kept_and_sent_back():
    patient = Patient.from_api(
        {"id": 5, "firstName": "a", "lastName": "b", "createdAt": "2024-01-01", "site": {"id": 9, "name": "N"}}
    )
    assert patient.model_extra == {"createdAt": "2024-01-01"}
    sent = patient.to_api()
    assert sent["createdAt"] == "2024-01-01"
    assert sent["site"]["id"] == 9


def test_server_data_is_read_leniently_but_user_input_strictly():
    odd = {"firstName": "a", "lastName": "b", "email": "legacy-without-at", "sex": "F", "address": {"city": "X"}}
    patient = Patient.from_api(odd)
    assert patient.email == "legacy-without-at"
    assert patient.address.city == "X"
    with pytest.raises(ValidationError) as caught:
        Patient.model_validate(odd)
    assert set(fields_of(caught.value)) == {"email", "sex", "address"}


def test_patch_sends_only_what_was_given():
    patch = PatientPatch.model_validate({"email": "new@example.org", "enrolled": False})
    assert patch.to_api(exclude_unset=True) == {"email": "new@example.org", "enrolled": False}


def test_patch_cannot_clear_a_required_name():
    with pytest.raises(ValidationError) as caught:
        PatientPatch.model_validate({"lastName": None})
    assert "lastName" in fields_of(caught.value)


def test_address_requires_its_parts_only_when_given():
    assert Patient(first_name="a", last_name="b").address is None
    assert Address(line_one="1", city="c", state="s", zip_code="z", country="US").zip_code == "z"


def test_page_envelope():
    page = Page[Patient].from_api(
        {
            "content": [{"id": 1, "firstName": "a", "lastName": "b"}],
            "page": 1,
            "size": 15,
            "total": 1,
            "first": True,
            "last": True,
        }
    )
    assert page.content[0].id == 1 and page.last


def test_flatten_record_dots_nested_objects_and_skips_null_objects():
    assert flatten_record({"a": 1, "address": {"city": "c", "x": None}, "site": None}) == {
        "a": 1,
        "address.city": "c",
        "address.x": None,
    }


def test_repr_html_shows_fields_escaped():
    html = Patient(first_name="<b>Ana</b>", last_name="R", address=make_patient()["address"])._repr_html_()
    assert "&lt;b&gt;Ana&lt;/b&gt;" in html and "address.city" in html


@pytest.mark.parametrize(("value", "words"), [("2999-01-01", "future"), ("1875-03-04", "typo")])
def test_implausible_dates_of_birth_are_refused(value, words):
    with pytest.raises(ValidationError) as caught:
        Patient(first_name="a", last_name="b", date_of_birth=value)
    assert words in fields_of(caught.value)["dateOfBirth"]
    assert Patient.from_api({"firstName": "a", "lastName": "b", "dateOfBirth": value}).date_of_birth.isoformat() == value


def test_patient_changes_lists_only_what_differs():
    from impilo_nb.models import patient_changes

    before = Patient.model_validate(make_patient(1, enrolled=True))
    after = before.model_copy(update={"email": "new@example.org", "enrolled": None})
    assert patient_changes(before, after) == [("email", "person1@example.org", "new@example.org"), ("enrolled", True, None)]
    assert patient_changes(before, before) == []


def test_patient_changes_compares_nested_parts_and_ignores_id():
    from impilo_nb.models import patient_changes

    before = Patient.model_validate({**make_patient(1), "id": 1})
    moved = {**make_patient(1)["address"], "city": "Chicago"}
    after = Patient.model_validate({**make_patient(1), "id": 2, "address": moved})
    assert patient_changes(before, after) == [("address.city", "Springfield", "Chicago")]
    assert patient_changes(before, Patient.model_validate({**make_patient(1), "address": None}))[0] == (
        "address.lineOne",
        "1 Elm Road",
        None,
    )


def test_a_server_record_without_names_is_read_with_empty_names():
    # One damaged record on a server must not make a whole listing fail to parse.
    page = Page[Patient].from_api(
        {
            "content": [{"id": 1}, {"id": 2, "firstName": "A", "lastName": "B"}],
            "page": 1,
            "size": 15,
            "total": 2,
            "first": True,
            "last": True,
        }
    )
    assert (page.content[0].first_name, page.content[0].last_name) == ("", "")
    with pytest.raises(ValidationError):
        Patient.model_validate({"id": 1})  # what users send is still checked


@pytest.mark.parametrize("invisible", ["\u200b", "\u200b\u200d", "\ufeff ", "\u2028", "\x00"])
def test_a_name_of_invisible_characters_is_missing(invisible):
    with pytest.raises(ValidationError) as caught:
        Patient(first_name=invisible, last_name="Rivera")
    assert caught.value.field_errors[0].field == "firstName"


def test_a_name_with_a_joiner_inside_visible_letters_is_kept():
    assert Patient(first_name="Zo\u200de", last_name="Rivera").first_name == "Zo\u200de"


def test_a_delivery_log_payload_sent_as_an_object_is_kept_as_its_json_text():
    from impilo_nb.models import WebhookLogEntry

    entry = WebhookLogEntry.from_api({"id": 7, "payload": {"id": 90210, "type": "patient.updated"}})
    assert entry.payload == '{"id": 90210, "type": "patient.updated"}'
