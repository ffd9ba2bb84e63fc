import logging

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from impilo_nb.frames import _PATIENT_SHAPE, PATIENT_COLUMNS, _typed, patient_frame
from impilo_nb.models import Patient, flatten_record
from impilo_nb.responses import is_plain, not_plain, wire_records
from tests.conftest import make_patient


def test_empty_frame_has_every_column_with_its_dtype():
    frame = patient_frame([])
    assert list(frame.columns) == PATIENT_COLUMNS
    assert str(frame["id"].dtype) == "Int64" and str(frame["enrolled"].dtype) == "boolean"


def test_rows_are_flattened_and_typed():
    frame = patient_frame(
        [
            Patient(
                id=1,
                first_name="A",
                last_name="B",
                date_of_birth="1980-01-02",
                enrolled=True,
                address={"lineOne": "1", "city": "C", "state": "S", "zipCode": "Z", "country": "US"},
            ),
            {"id": 2, "firstName": "C", "lastName": "D", "legacyCode": "x"},
        ]
    )
    assert frame.loc[0, "address.city"] == "C" and pd.isna(frame.loc[1, "address.city"])
    assert frame.loc[0, "dateOfBirth"] == pd.Timestamp("1980-01-02") and pd.isna(frame.loc[1, "dateOfBirth"])
    assert frame.loc[0, "enrolled"] and pd.isna(frame.loc[1, "enrolled"])
    assert list(frame.columns)[-1] == "legacyCode"  # server extras kept, after the known columns


# -- the fast paths give what the models give --------------------------------------------------

def frame_as_before(rows):
    """patient_frame as it was: each row flattened whole, then DataFrame.from_records; except that
    known columns are typed from their values as given, not from a float64 that pandas inferred
    where some are missing (which turned 2**60 + 1 into 2**60, and an id 7 in a text column into "7.0")."""
    flat = [flatten_record(p.to_api() if isinstance(p, Patient) else dict(p)) for p in rows]
    frame, given = pd.DataFrame.from_records(flat), pd.DataFrame(flat, dtype=object)
    for column in set(PATIENT_COLUMNS) & set(frame.columns):
        frame[column] = given[column]
    return _typed(frame, Patient, PATIENT_COLUMNS)


def read_as_before(items):
    """What list() then to_api() gives: each item through the model, the unreadable ones skipped."""
    records = []
    for item in items:
        try:
            records.append(Patient.from_api(item).to_api())
        except Exception:  # noqa: BLE001 - an unreadable record is skipped, whatever is wrong with it
            continue
    return records


ODD_TEXT = st.sampled_from(["", " ", "Ana", "ANA", "female", "Female", "x@", None, 7, 7.5, True, [], {}, {"a": 1}])
ODD_DATE = st.sampled_from(["1980-01-02", "1980-01-02T00:00:00Z", "1980-02-30", "19800102", "١٩٨٠-01-02", "", None, 1980])
ODD_INT = st.sampled_from([1, 2**60 + 1, 0, -3, "5", "x", 5.0, 5.5, True, None, [1]])
ODD_FLAG = st.sampled_from([True, False, None, "true", "yes", 1, 0, 2])
JSON_EXTRA = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3) | st.floats(allow_nan=True, allow_infinity=True),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(["a", "b", "city"]), inner, max_size=2),
    max_leaves=4,
)
ADDRESS = st.one_of(
    st.none(),
    st.just("12 Elm Road"),
    st.fixed_dictionaries(
        {},
        optional={"lineOne": ODD_TEXT, "city": ODD_TEXT, "zipCode": ODD_TEXT, "country": ODD_TEXT, "note": JSON_EXTRA},
    ),
)
RECORD = st.fixed_dictionaries(
    {},
    optional={
        "id": ODD_INT,
        "externalIdentifier": ODD_TEXT,
        "firstName": ODD_TEXT,
        "lastName": ODD_TEXT,
        "first_name": ODD_TEXT,
        "dateOfBirth": ODD_DATE,
        "sex": ODD_TEXT,
        "email": ODD_TEXT,
        "enrolled": ODD_FLAG,
        "address": ADDRESS,
        "site": st.none() | st.fixed_dictionaries({}, optional={"id": ODD_INT, "active": ODD_FLAG, "address": ADDRESS}),
        "legacyCode": JSON_EXTRA,
        "payload": JSON_EXTRA,
        "address.city": ODD_TEXT,
    },
)
PLAIN = Patient.from_api(make_patient(3, site={"id": 4, "name": "Clinic", "active": True})).to_api()
#: A plain record with one field changed to an odd value: the cases where one check must catch it.
ONE_ODD = st.tuples(st.sampled_from([*PLAIN, "address", "legacyCode"]), ODD_TEXT | ODD_DATE | ODD_INT | ODD_FLAG | ADDRESS).map(
    lambda change: {**PLAIN, change[0]: change[1]}
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RECORD | ONE_ODD | st.just(PLAIN) | st.just(make_patient(5)) | st.sampled_from(["junk", 3, None]), max_size=6))
def test_wire_records_are_what_the_model_reads(items):
    read = wire_records(Patient, items, where="GET /x")
    assert [filled(record, _PATIENT_SHAPE) for record in read] == read_as_before(items)  # same records, in order
    pd.testing.assert_frame_equal(patient_frame(read), frame_as_before(read_as_before(items)))


def filled(record, shape):
    """``record`` with the fields it leaves out as null, at every level (as ``to_api`` writes them)."""
    nested = {k: filled(v, shape.objects[k]) if k in shape.objects and isinstance(v, dict) else v for k, v in record.items()}
    return {**dict.fromkeys(shape.names), **nested}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RECORD | ONE_ODD | st.just(PLAIN), max_size=6))
def test_a_frame_of_any_mappings_is_what_flattening_each_row_gives(rows):
    # from_records made no row at all when every row flattened to nothing; now there is one per row.
    assume(not rows or any(flatten_record(dict(row)) for row in rows))
    try:
        expected = frame_as_before(rows)
    except (ValueError, TypeError, OverflowError):  # values no column dtype takes: the rows are kept, that column as it came
        assert len(patient_frame(rows)) == len(rows)
        return
    pd.testing.assert_frame_equal(patient_frame(rows), expected)


def test_only_plain_records_skip_the_model():
    assert is_plain(Patient, PLAIN) and is_plain(Patient, make_patient(1))
    assert is_plain(Patient, {**PLAIN, "createdAt": "2024-01-01T00:00:00Z", "tags": ["a", {"b": 1.5}]})
    for changed in (
        {"email": ""},  # read as null
        {"sex": "Female"},  # read as female
        {"dateOfBirth": "1980-01-02T00:00:00Z"},  # read as 1980-01-02
        {"id": True},
        {"first_name": "Ana"},  # read into firstName
        {"address": {**PLAIN["address"], "floor": 2}},  # an extra field inside an object
        {"legacyCode": float("nan")},  # written back as null
    ):
        assert not is_plain(Patient, {**PLAIN, **changed}), changed
    assert not is_plain(Patient, {k: v for k, v in PLAIN.items() if k != "lastName"})  # read with an empty name
    assert not_plain(Patient, [PLAIN, "junk", {**PLAIN, "sex": "x"}, PLAIN, {**PLAIN, "site": {"id": "4"}}]) == {1, 2, 4}


def test_a_skipped_record_is_named_by_its_position(caplog):
    with caplog.at_level(logging.WARNING):
        read = wire_records(Patient, [PLAIN, "junk", {**PLAIN, "id": "x"}, {**PLAIN, "email": ""}], where="GET /p")
    assert [r["id"] for r in read] == [PLAIN["id"], PLAIN["id"]] and read[1]["email"] is None
    assert "GET /p: skipped record 1" in caplog.text and "skipped record 2" in caplog.text
    assert "skipped record 3" not in caplog.text


def test_large_ids_keep_every_digit():
    frame = patient_frame([{**PLAIN, "id": 2**62 + 1}, {**PLAIN, "id": None}])
    assert frame.loc[0, "id"] == 2**62 + 1 and pd.isna(frame.loc[1, "id"])


def test_an_id_beyond_64_bits_from_a_server_keeps_its_digits_and_breaks_no_frame(caplog):
    with caplog.at_level(logging.WARNING):
        frame = patient_frame([{**PLAIN, "id": 2**70}, {**PLAIN, "id": 3, "site": {"id": -(2**64), "name": "S"}}])
    assert frame["id"].tolist() == [2**70, 3] and frame.loc[1, "site.id"] == -(2**64)
    assert "Column id holds an integer beyond 64 bits" in caplog.text and "Column site.id" in caplog.text
    assert str(patient_frame([{**PLAIN, "id": 3}])["id"].dtype) == "Int64"


def test_a_dotted_extra_key_colliding_with_a_nested_field_reads_as_through_the_model():
    items = [{"address.city": "Dotted", **PLAIN}, {**PLAIN, "address.city": "Dotted"}]  # before and after "address"
    through_model = patient_frame([Patient.from_api(item) for item in items])
    pd.testing.assert_frame_equal(patient_frame(wire_records(Patient, items, where="GET /p")), through_model)


@pytest.mark.parametrize(
    "extra", [{"eventId": "abc"}, {"eventId": 1.5}, {"nextAttemptTimestamp": "zzz"}, {"createTimestamp": "0001-01-01T00:00:00Z"}]
)
def test_one_odd_value_in_a_delivery_log_column_keeps_the_listing(extra, caplog):
    from impilo_nb.frames import webhook_log_frame

    entries = [{"id": 1, "createTimestamp": "2024-06-01T12:00:00Z"}, {"id": 2, **extra}]
    frame = webhook_log_frame(entries)
    assert frame["id"].tolist() == [1, 2]
    assert "keeps its values as they came" in caplog.text or frame[next(iter(extra))].notna().any()
