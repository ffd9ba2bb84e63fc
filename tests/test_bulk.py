import math
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import impilo_nb as nb
from impilo_nb.bulk import (
    LOOKUP_BATCH,
    RESULT_COLUMNS,
    STATUSES,
    RowStatus,
    execute_plan,
    plan_upserts,
    summary,
    upsert_patients,
)
from tests.conftest import make_patient

SAMPLE = Path(__file__).parent.parent / "data" / "patients_sample.csv"


def load_sample() -> pd.DataFrame:
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False, na_values=[""])
    frame["externalIdentifier"] = nb.external_ids(frame["email"], frame["phoneNumber"])
    return frame


def frame_of(*records) -> pd.DataFrame:
    return pd.DataFrame([nb.models.flatten_record(r) for r in records])


def writes(sandbox) -> int:
    counts = sandbox.request_counts()
    return counts.get("POST", 0) + counts.get("PUT", 0) + counts.get("PATCH", 0)


def test_sample_file_invalid_rows_reported_others_created_then_rerun_writes_nothing(client, sandbox):
    sample = load_sample()
    assert len(sample) == 500
    first = upsert_patients(client, sample, progress=False)
    invalid = first[first["status"] == "invalid"]
    assert len(invalid) >= 10 and invalid["error"].notna().all()
    assert set(first["status"]) == {"created", "invalid"}
    assert client.patients.page(size=1).total == (first["status"] == "created").sum()
    assert "Not a real date: '1987-02-30'" in invalid.loc[88, "error"]
    assert "lastName" in invalid.loc[7, "error"] and "email" in invalid.loc[150, "error"]
    written = writes(sandbox)
    second = upsert_patients(client, sample, progress=False)
    assert writes(sandbox) == written  # not one write
    assert (second.loc[first["status"] == "created", "status"] == "unchanged").all()
    assert (second["patient_id"].dropna() == first["patient_id"].dropna()).all()


def test_results_keep_the_input_and_add_typed_columns(client):
    source = frame_of(make_patient(1), make_patient(2, lastName=None)).assign(note=["x", "y"])
    source.index = [10, 20]
    results = upsert_patients(client, source, progress=False)
    assert list(results.columns) == [*source.columns, *RESULT_COLUMNS] and results.index.tolist() == [10, 20]
    assert results.loc[10, "status"] == "created" and results.loc[10, "http_status"] == 201
    assert results.loc[10, "attempts"] == 1 and results.loc[10, "latency_ms"] > 0
    assert results.loc[20, "status"] == "invalid" and results.loc[20, "attempts"] == 0
    assert str(results["patient_id"].dtype) == "Int64" and results.loc[10, "note"] == "x"


def test_repeated_index_labels_from_concat_are_processed_row_by_row(client):
    first = frame_of(make_patient(1), make_patient(2))
    second = frame_of(make_patient(3, lastName=None), make_patient(1, firstName="Other"))
    source = pd.concat([first, second])  # index 0, 1, 0, 1
    results = upsert_patients(client, source, progress=False)
    assert results.index.tolist() == [0, 1, 0, 1]
    assert results["externalIdentifier"].tolist() == source["externalIdentifier"].tolist()
    assert results["status"].tolist() == ["created", "created", "invalid", "invalid"]
    assert "lastName" in results["error"].iloc[2]
    assert "Same externalIdentifier as frame.iloc[0] (index label 0)" in results["error"].iloc[3]
    assert results["patient_id"].iloc[0] != results["patient_id"].iloc[1]
    assert client.patients.page(size=1).total == 2


def test_an_input_column_named_like_a_result_column_is_refused_before_any_request(client, sandbox):
    source = frame_of(make_patient(1)).assign(status=["active"], error=["none"])  # a CRM export's own columns
    before = sandbox.request_counts()
    with pytest.raises(nb.ValidationError) as caught:
        upsert_patients(client, source, progress=False)
    assert [fe.field for fe in caught.value.field_errors] == ["status", "error"]
    assert 'rename(columns={"status": "crm_status"})' in str(caught.value)
    assert sandbox.request_counts() == before and source["status"].tolist() == ["active"]


def test_repeated_column_names_are_refused(client):
    source = frame_of(make_patient(1))
    source = pd.concat([source, source[["email"]].assign(email="other@example.org")], axis=1)
    with pytest.raises(nb.ValidationError) as caught:
        upsert_patients(client, source, progress=False)
    assert caught.value.field_errors[0].field == "email" and "more than once" in str(caught.value)


def test_two_spellings_of_one_field_are_refused_before_any_request(client, sandbox):
    source = frame_of(make_patient(1)).assign(first_name=["Other"])  # firstName is there too
    before = sandbox.request_counts()
    with pytest.raises(nb.ValidationError) as caught:
        upsert_patients(client, source, progress=False)
    assert caught.value.field_errors[0].field == "firstName"
    assert "'firstName', 'first_name' all name the field 'firstName'" in str(caught.value)
    assert sandbox.request_counts() == before


def test_a_key_cell_that_is_a_list_makes_that_row_invalid_not_the_run(client):
    source = pd.concat([frame_of(make_patient(1)), frame_of(make_patient(2))], ignore_index=True)
    source["externalIdentifier"] = source["externalIdentifier"].astype(object)
    source.at[0, "externalIdentifier"] = ["ext-1", "ext-2"]
    results = upsert_patients(client, source, progress=False)
    assert results["status"].tolist() == ["invalid", "created"]
    assert "one text or number value" in results["error"].iloc[0]


def test_changed_rows_are_updated_and_columns_absent_from_the_file_are_kept(client):
    created = client.patients.create(make_patient(1, enrolled=True))
    source = pd.DataFrame({"externalIdentifier": ["ext-00001"], "firstName": ["Anna"], "lastName": ["Last1"]})
    results = upsert_patients(client, source, progress=False)
    assert results.loc[0, "status"] == "updated" and results.loc[0, "patient_id"] == created.id
    stored = client.patients.get(created.id)
    assert stored.first_name == "Anna" and stored.address == created.address and stored.enrolled is True


def test_an_empty_cell_clears_its_field(client):
    created = client.patients.create(make_patient(1))
    source = frame_of(make_patient(1, email=None))
    assert upsert_patients(client, source, progress=False).loc[0, "status"] == "updated"
    assert client.patients.get(created.id).email is None


def test_snake_case_columns_work_too(client):
    source = pd.DataFrame({"external_identifier": ["e1"], "first_name": ["A"], "last_name": ["B"], "address.zip_code": [None]})
    assert upsert_patients(client, source, progress=False).loc[0, "status"] == "created"


def test_dry_run_writes_nothing_and_says_what_would_happen(client, sandbox):
    client.patients.create(make_patient(1))
    source = frame_of(make_patient(1, firstName="Changed"), make_patient(2), make_patient(3, email="x@"))
    before = writes(sandbox)
    plan = upsert_patients(client, source, dry_run=True, progress=False)
    assert plan["status"].tolist() == ["would update", "would create", "invalid"]
    assert writes(sandbox) == before


def test_duplicate_keys_in_one_file(client):
    source = frame_of(make_patient(1), make_patient(1, firstName="Other"))
    results = upsert_patients(client, source, progress=False)
    assert results["status"].tolist() == ["created", "invalid"] and "Same externalIdentifier" in results.loc[1, "error"]


def test_a_failing_row_does_not_stop_the_others(client, sandbox):
    source = frame_of(*(make_patient(n) for n in range(6)))
    sandbox.inject_fault(500, times=1)  # the first write fails (a 500 is not retried for POST)
    results = upsert_patients(client, source.iloc[:1], progress=False, workers=1)
    assert results["status"].tolist() == ["failed"] and results.loc[0, "http_status"] == 500
    results = upsert_patients(client, source, progress=False)
    assert (results["status"] == "created").all()


def test_a_429_is_retried_and_every_row_still_succeeds(client, sandbox):
    source = frame_of(*(make_patient(n) for n in range(20)))
    sandbox.inject_fault(429, times=2, retry_after=0.2, method="POST")
    results = upsert_patients(client, source, progress=False, workers=4)
    assert (results["status"] == "created").all()
    assert (results["attempts"] == 2).sum() == 2 and (results["attempts"] == 1).sum() == 18


def test_a_patient_created_since_the_lookup_is_updated_not_duplicated(client, sandbox, monkeypatch):
    # Simulates an interrupted earlier run: the lookup misses it, the create gets 409, we update.
    source = frame_of(make_patient(1, firstName="New"))
    monkeypatch.setattr(nb.bulk, "_lookup", lambda *args: {})
    client.patients.create(make_patient(1))
    results = upsert_patients(client, source, progress=False)
    assert results.loc[0, "status"] == "updated" and client.patients.page(size=1).total == 1


def test_lookups_are_batched(client, sandbox):
    source = frame_of(*(make_patient(n) for n in range(LOOKUP_BATCH * 2 + 5)))
    upsert_patients(client, source, progress=False)
    gets_before = sandbox.request_counts()["GET"]
    upsert_patients(client, source, progress=False)
    assert sandbox.request_counts()["GET"] - gets_before == 3


def test_key_id_updates_by_impilo_id(client):
    created = client.patients.create(make_patient(1))
    source = pd.DataFrame({"id": [created.id, 999], "email": ["new@example.org", "x@example.org"]})
    results = upsert_patients(client, source, key="id", progress=False)
    assert results["status"].tolist() == ["updated", "failed"] and results.loc[1, "http_status"] == 404
    assert client.patients.get(created.id).email == "new@example.org"


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"workers": 0}, "workers"), ({"workers": 100}, "workers"), ({"key": "email"}, "key")]
)
def test_bad_arguments_are_refused(client, kwargs, field):
    with pytest.raises(nb.ValidationError) as caught:
        upsert_patients(client, frame_of(make_patient(1)), progress=False, **kwargs)
    assert caught.value.field_errors[0].field == field


def test_missing_key_column_is_refused(client):
    with pytest.raises(nb.ValidationError) as caught:
        upsert_patients(client, pd.DataFrame({"firstName": ["A"], "lastName": ["B"]}), progress=False)
    assert "externalIdentifier" in str(caught.value)


def test_server_down_fails_every_row_without_raising(sandbox):
    client = nb.ImpiloClient(base_url=sandbox.url, api_key=sandbox.api_key, max_retries=0)
    sandbox.stop()
    results = upsert_patients(client, frame_of(make_patient(1), make_patient(2)), progress=False)
    assert (results["status"] == "failed").all() and results["error"].str.contains("Lookup failed").all()


def test_summary_lists_every_status():
    results = pd.DataFrame({"status": pd.Series(["created", "created", "invalid"], dtype="string")})
    table = summary(results)
    assert table["rows"].to_dict() == {"created": 2, "updated": 0, "unchanged": 0, "invalid": 1, "failed": 0}


def test_progress_bar_counts_every_row(client, capsys):
    upsert_patients(client, frame_of(make_patient(1), make_patient(2, lastName=None)), progress=True)
    assert "2/2" in capsys.readouterr().err


def test_concurrent_imports_do_not_duplicate(client):
    source = frame_of(*(make_patient(n) for n in range(30)))
    threads = [threading.Thread(target=upsert_patients, args=(client, source), kwargs={"progress": False}) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.patients.page(size=1).total == 30


def sent_since(sandbox, before: dict[str, int]) -> dict[str, int]:
    """Requests by method since ``before`` (an earlier ``request_counts()``), methods with none left out."""
    now = sandbox.request_counts()
    return {method: count - before.get(method, 0) for method, count in now.items() if count != before.get(method, 0)}


def mixed_frame(client) -> pd.DataFrame:
    """One row of each planned fate: would update, would create, unchanged, invalid."""
    client.patients.create(make_patient(1))
    client.patients.create(make_patient(3))
    return frame_of(make_patient(1, firstName="Changed"), make_patient(2), make_patient(3), make_patient(4, email="x@"))


def test_planning_decides_every_row_and_sends_no_write(client, sandbox):
    source = mixed_frame(client)
    before = sandbox.request_counts()
    actions = plan_upserts(client, source)
    assert sent_since(sandbox, before) == {"GET": 1}  # one lookup batch, no write
    statuses = [action.planned.status for action in actions]
    assert statuses == [RowStatus.WOULD_UPDATE, RowStatus.WOULD_CREATE, RowStatus.UNCHANGED, RowStatus.INVALID]
    assert [action.is_write for action in actions] == [True, True, False, False]
    assert actions[0].patient.first_name == "Changed" and actions[0].current.first_name != "Changed"
    assert actions[1].current is None and actions[2].patient is None and "email" in actions[3].planned.error
    dry = upsert_patients(client, source, dry_run=True, progress=False)
    assert dry["status"].tolist() == [status.value for status in statuses]  # a dry run is the plan


def test_executing_a_plan_turns_each_action_into_an_outcome(client, sandbox):
    actions = plan_upserts(client, mixed_frame(client))
    before = sandbox.request_counts()
    settled = []
    outcomes = execute_plan(client, actions, workers=2, on_done=settled.append)
    assert [outcome.status for outcome in outcomes] == ["updated", "created", "unchanged", "invalid"]
    assert sent_since(sandbox, before) == {"POST": 1, "PUT": 1}  # the unchanged row costs nothing
    assert outcomes[0].patient_id == actions[0].current.id and outcomes[1].attempts == 1
    assert outcomes[2] is actions[2].planned and sum(settled) == len(actions)


def test_result_statuses_are_plain_strings_and_statuses_keep_their_spelling(client):
    results = upsert_patients(client, frame_of(make_patient(1)), progress=False)
    assert type(results["status"].iloc[0]) is str and results["status"].iloc[0] == "created"
    assert STATUSES == ("created", "updated", "unchanged", "invalid", "failed")
    assert (RowStatus.WOULD_CREATE, RowStatus.WOULD_UPDATE) == ("would create", "would update")


def test_results_say_whether_they_come_from_a_dry_run(client):
    source = frame_of(make_patient(1))
    assert upsert_patients(client, source, dry_run=True, progress=False).attrs["dry_run"] is True
    assert upsert_patients(client, source, progress=False).attrs["dry_run"] is False


def test_a_dry_run_of_only_invalid_rows_is_summarised_as_a_dry_run(client, sandbox):
    source = frame_of(make_patient(1, email="x@"), make_patient(2, lastName=None))
    plan = upsert_patients(client, source, dry_run=True, progress=False)
    assert plan["status"].tolist() == ["invalid", "invalid"] and writes(sandbox) == 0
    table = summary(plan)
    assert table.attrs["dry_run"] is True and table.index.name == "status"
    assert table["rows"].to_dict() == {"would create": 0, "would update": 0, "unchanged": 0, "invalid": 2, "failed": 0}


def test_summary_reads_the_flag_and_never_drops_a_status():
    flagged = pd.DataFrame({"status": pd.Series(["unchanged"], dtype="string")})
    flagged.attrs["dry_run"] = True
    assert list(summary(flagged).index[:2]) == ["would create", "would update"]
    # A dry run read back from CSV has lost its flag: its rows are still counted, under their own names.
    reread = pd.DataFrame({"status": ["would create", "would create", "invalid"]})
    table = summary(reread)
    assert table.attrs["dry_run"] is False and list(table.index[:2]) == ["created", "updated"]
    assert table.loc["would create", "rows"] == 2 and table["rows"].sum() == 3


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        (None, None),
        (float("nan"), None),
        (np.float64("nan"), None),
        (pd.NA, None),
        (pd.NaT, None),
        ("  ", None),
        (" a ", " a "),
        (np.int64(3), 3),
        (np.bool_(True), True),
    ],
)
def test_cells_become_plain_values(cell, expected):
    value = nb.bulk._cell(cell)
    assert value == expected and type(value) is type(expected)


def test_a_list_cell_is_left_alone_not_asked_whether_it_is_missing():
    value = nb.bulk._cell([1, float("nan")])
    assert value[0] == 1 and math.isnan(value[1])


def test_a_row_laid_over_a_stored_record_leaves_the_stored_record_as_it_was():
    base = {"firstName": "A", "address": {"city": "Durban", "zipCode": "4001"}}
    record = nb.bulk._row_record({"city": "Cape Town"}, {"city": "address.city"}, base)
    assert record["address"] == {"city": "Cape Town", "zipCode": "4001"} and base["address"]["city"] == "Durban"


@pytest.mark.parametrize("cell", [2.7, True, "٣", "2 3", "x"])
def test_an_id_cell_that_is_not_a_whole_number_updates_nobody(client, sandbox, cell):
    for n in (1, 2, 3):
        client.patients.create(make_patient(n))
    before = sandbox.request_counts().get("PUT", 0)
    frame = pd.DataFrame({"id": [cell], "firstName": ["Changed"], "lastName": ["Name"]}, dtype=object)
    results = nb.bulk.upsert_patients(client, frame, key="id", progress=False)
    assert results.loc[0, "status"] == "invalid" and sandbox.request_counts().get("PUT", 0) == before


# --- CSV files as people have them (docs/csv-import.md) --------------------------------------

EVERYDAY = Path(__file__).parent / "data" / "patients_everyday.csv"
EVERYDAY_CP1252 = Path(__file__).parent / "data" / "patients_everyday_cp1252.csv"


@pytest.mark.filterwarnings("ignore:.*read as cp1252")
@pytest.mark.parametrize("source", [EVERYDAY, EVERYDAY_CP1252], ids=["utf8-bom", "cp1252"])
def test_an_everyday_file_imports_after_suggest_columns_keyed_by_its_line_numbers(client, source):
    frame = nb.bulk.read_csv(source)
    mapping = nb.bulk.suggest_columns(frame)
    assert mapping.ignored == ["Notes"]
    patients = mapping.apply(frame)
    patients["externalIdentifier"] = nb.external_ids(patients["email"], patients["phoneNumber"])
    results = upsert_patients(client, patients, progress=False)
    assert results.index.tolist() == [2, 3, 4, 6, 7, 8] and results.index.name == "line"  # lines of the file
    assert results["status"].tolist() == ["created"] * 4 + ["invalid", "created"]
    assert "lastName" in results.loc[7, "error"]  # line 7 of the file: Chidi, no surname
    assert results.loc[3, "Notes"] == "interpreter: Spanish; bring forms"  # carried through, not sent
    stored = client.patients.get(int(results.loc[4, "patient_id"]))
    assert (stored.first_name, stored.last_name, stored.address.city, stored.sex) == ("Amélie", "Côté", "Austin", "female")
    assert client.patients.get(int(results.loc[2, "patient_id"])).address.zip_code == "05401"


def test_everyday_headers_left_unmapped_are_refused_before_any_request_pointing_to_suggest_columns(client, sandbox):
    frame = nb.bulk.read_csv(EVERYDAY)
    frame["externalIdentifier"] = nb.external_ids(frame["E-mail"], frame["Phone"])
    before = sandbox.request_counts()
    with pytest.raises(nb.ValidationError) as caught:
        upsert_patients(client, frame, progress=False)
    message = str(caught.value)
    assert "'First Name' (firstName)" in message and "'Surname' (lastName)" in message
    assert "nb.bulk.suggest_columns(frame).apply(frame)" in message and "This field is required" not in message
    assert sandbox.request_counts() == before


def test_a_missing_key_column_says_how_to_get_one(client):
    everyday = nb.bulk.read_csv(EVERYDAY)
    with pytest.raises(nb.ValidationError, match="suggest_columns"):
        upsert_patients(client, everyday, progress=False)
    with pytest.raises(nb.ValidationError, match=r"nb\.external_ids\(frame\[\"email\"\], frame\[\"phoneNumber\"\]\)"):
        upsert_patients(client, pd.DataFrame({"firstName": ["A"], "lastName": ["B"]}), progress=False)
    misread = pd.read_csv(EVERYDAY, dtype=str)  # a ';' file read as ',': one column
    with pytest.raises(nb.ValidationError, match=r"separator was not recognised.*nb\.bulk\.read_csv"):
        upsert_patients(client, misread, progress=False)


def test_a_look_alike_of_an_optional_field_is_carried_through_with_a_warning(client):
    source = frame_of(make_patient(1)).drop(columns=["dateOfBirth"]).assign(DOB=["1980-01-01"])
    with pytest.warns(UserWarning, match=r"'DOB' \(dateOfBirth\).*carried into the results"):
        results = upsert_patients(client, source, progress=False)
    assert results.loc[0, "status"] == "created" and client.patients.get(int(results.loc[0, "patient_id"])).date_of_birth is None


def test_a_repeated_key_names_the_line_of_the_first(client, tmp_path):
    source = tmp_path / "twice.csv"
    source.write_text("externalIdentifier;firstName;lastName\nx-1;A;B\n\nx-1;C;D\n")
    results = upsert_patients(client, nb.bulk.read_csv(source), progress=False)
    assert results.index.tolist() == [2, 4] and results.loc[4, "error"].startswith("Same externalIdentifier as line 2;")


def test_summary_gives_percentages():
    results = pd.DataFrame({"status": ["unchanged"] * 488 + ["invalid"] * 12})
    table = summary(results)
    assert table.loc["unchanged", "percent"] == 97.6 and table.loc["invalid", "percent"] == 2.4
    assert table.loc["created", "percent"] == 0.0 and str(table["percent"].dtype) == "float64"
    assert "share" not in table.columns


def test_a_dry_run_of_a_file_whose_rows_are_all_invalid_is_summarised_as_a_dry_run(client, tmp_path, sandbox):
    source = tmp_path / "bad.csv"
    source.write_text("externalIdentifier,firstName\nx-1,A\nx-2,B\n")  # no lastName column: every row invalid
    plan = upsert_patients(client, nb.bulk.read_csv(source), dry_run=True, progress=False)
    assert plan["status"].tolist() == ["invalid", "invalid"] and plan.index.tolist() == [2, 3]
    table = summary(plan)
    assert table.attrs["dry_run"] is True and list(table.index[:2]) == ["would create", "would update"]
    assert table.loc["invalid", "percent"] == 100.0 and writes(sandbox) == 0


def test_summary_refuses_what_is_not_results_and_counts_rows_without_a_status():
    with pytest.raises(nb.ValidationError, match="results: .*status column.*got list"):
        nb.bulk.summary([1])  # type: ignore[arg-type]
    with pytest.raises(nb.ValidationError, match="without a status column"):
        nb.bulk.summary(pd.DataFrame({"x": [1]}))
    table = nb.bulk.summary(pd.DataFrame({"status": ["created", None, float("nan")]}))
    assert table.loc[nb.bulk.NO_STATUS, "rows"] == 2 and table["rows"].sum() == 3
    assert table["percent"].sum() == pytest.approx(100.0)
