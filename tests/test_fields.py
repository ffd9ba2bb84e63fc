"""One source of truth per fact: the field table in the models, and every list derived from it.

Adding a patient field is one edit to ``models.py``; these tests check that each list the
toolkit uses (frame columns, form inputs, personal-data mask, client filters) is derived from
the models rather than kept beside them, by comparing each with what the models say.
"""

from __future__ import annotations

from typing import Annotated

import impilo_nb as nb
from impilo_nb import fields, frames
from impilo_nb._report_mask import PERSONAL_FIELDS
from impilo_nb.fields import Facts, facts, leaf_kind, wire_paths
from impilo_nb.resources import PATIENT_FILTERS, SORT_FIELDS, WEBHOOK_LOG_FILTERS


class Extended(nb.Patient):
    """A patient with one more field, as a future API version might add."""

    middle_name: Annotated[str | None, Facts("Middle name", personal=True)] = None


def test_a_new_field_appears_wherever_the_table_is_read():
    assert "middleName" in wire_paths(Extended)
    assert facts(Extended, "middle_name") == Facts("Middle name", personal=True)
    assert leaf_kind(Extended, "middleName") == "text"
    frame = frames._typed(frames.pd.DataFrame([{"firstName": "A", "middleName": "B"}]), Extended, wire_paths(Extended))
    assert frame.loc[0, "middleName"] == "B" and str(frame["middleName"].dtype) == "string"


def test_kinds_come_from_the_types():
    kinds = {path: leaf_kind(nb.Patient, path) for path in wire_paths(nb.Patient)}
    assert kinds["id"] == kinds["site.id"] == "integer" and kinds["dateOfBirth"] == "date"
    assert kinds["sex"] == "choice" and kinds["enrolled"] == kinds["site.active"] == "flag"
    assert leaf_kind(nb.models.WebhookLogEntry, "createTimestamp") == "datetime"


def test_frame_columns_are_the_models_fields():
    assert wire_paths(nb.Patient) == frames.PATIENT_COLUMNS
    assert wire_paths(nb.models.WebhookLogEntry) == frames.WEBHOOK_LOG_COLUMNS


def test_the_form_has_an_input_for_every_field_but_the_ids(client):
    form = nb.widgets.PatientForm(client)
    assert set(form.fields) == {p for p in wire_paths(nb.Patient) if p.rsplit(".", 1)[-1] != "id"}
    assert form.fields["sex"].options[1:] == tuple((v, v) for v in nb.models.SEX_VALUES)
    assert form.fields["address.city"].description.endswith("*")  # required when an address is sent


def test_the_report_masks_every_field_the_models_mark_personal():
    for model in (nb.Patient, nb.Address, nb.Site):
        for name, info in model.model_fields.items():
            if facts(model, name).personal:
                assert info.alias in PERSONAL_FIELDS and name in PERSONAL_FIELDS, name
    assert "externalIdentifier" not in PERSONAL_FIELDS and "city" not in PERSONAL_FIELDS


def test_the_address_rule_and_its_message_come_from_the_facts():
    required = [info.alias for name, info in nb.Address.model_fields.items() if facts(nb.Address, name).required_when_sent]
    assert nb.Address.model_json_schema()["required"] == required
    try:
        nb.Address(line_one="1 Elm Road")
    except nb.ValidationError as exc:
        assert ", ".join(required) in str(exc)


def test_client_filters_are_the_list_tables():
    assert {f.wire for f in nb.Patient.LIST_FILTERS} | {"sort", "sortDescending"} == set(PATIENT_FILTERS.values())
    assert {f.wire for f in nb.models.WebhookLogEntry.LIST_FILTERS} == set(WEBHOOK_LOG_FILTERS.values())
    assert tuple(nb.Patient.SORTS) == SORT_FIELDS
    assert all(f.python_name in PATIENT_FILTERS for f in nb.Patient.LIST_FILTERS)


def test_a_field_without_facts_gets_a_label_from_its_name():
    class Bare(nb.models.WireModel):
        shoe_size: int | None = None

    assert fields.facts(Bare, "shoe_size").label == "Shoe size"
