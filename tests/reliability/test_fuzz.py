"""Generated inputs: the sandbox API against its own OpenAPI document, the receiver against
random bodies and headers, and the models through JSON."""

from __future__ import annotations

import json

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import impilo_nb as nb
from tests.reliability.conftest import size

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def fuzz_sandbox():
    with nb.Sandbox("fuzz-key", time_scale=0.001) as sandbox:
        yield sandbox


def test_sandbox_api_conforms_to_its_openapi(fuzz_sandbox, figures):
    schema = schemathesis.openapi.from_url(fuzz_sandbox.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    cases, server_errors, failures = 0, 0, []
    session = requests.Session()
    for operation in operations:

        @settings(
            max_examples=size("fuzz_examples_per_operation"),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(operation.as_strategy())
        def run(case):
            nonlocal cases, server_errors
            cases += 1
            response = case.call(session=session, headers={"Impilo-API-Key": fuzz_sandbox.api_key})
            server_errors += response.status_code >= 500
            try:
                case.validate_response(response, checks=CHECKS)
            except Exception as exc:  # collect all, report at the end
                failures.append(f"{case.operation.method.upper()} {case.operation.path}: {str(exc)[:400]}")

        run()
    figures["API cases fuzzed (schemathesis)"] = f"{cases} over {len(operations)} operations"
    figures["API 5xx found"] = server_errors
    assert len(operations) >= 12
    assert server_errors == 0 and failures == [], "\n\n".join(failures[:5])


@pytest.fixture(scope="module")
def fuzz_receiver(tmp_path_factory):
    with nb.WebhookReceiver(tmp_path_factory.mktemp("rx") / "log.db", secret="fuzz-secret") as receiver:
        yield receiver


bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    ).map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries(
        {
            "id": st.integers() | st.text(max_size=10) | st.none(),
            "type": st.text(max_size=20) | st.integers(),
            "payload": st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=3),
        }
    ).map(lambda value: json.dumps(value).encode()),
)
# Trimmed: requests itself refuses to send a header value with leading or trailing whitespace.
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip)
headers = st.dictionaries(
    st.sampled_from(["Impilo-Webhook-Secret", "Content-Type", "X-Random", "Content-Encoding", "Accept"]),
    header_values,
    max_size=4,
)


def test_receiver_answers_random_input_with_2xx_or_4xx_and_stays_up(fuzz_receiver, figures):
    seen = {"2xx": 0, "4xx": 0}
    session = requests.Session()

    @settings(max_examples=size("receiver_fuzz_examples"), deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(bodies, headers, st.booleans())
    def run(body, extra_headers, with_secret):
        sent = {**extra_headers, **({"Impilo-Webhook-Secret": "fuzz-secret"} if with_secret else {})}
        response = session.post(fuzz_receiver.url, data=body, headers=sent, timeout=10)
        assert 200 <= response.status_code < 500, (response.status_code, body[:80], sent)
        seen["2xx" if response.status_code < 300 else "4xx"] += 1

    run()
    health = session.get(fuzz_receiver.url.replace("/webhooks/impilo", "/health"), timeout=5)
    figures["receiver random inputs"] = f"{sum(seen.values())} ({seen['2xx']} accepted, {seen['4xx']} refused, 0 5xx)"
    assert health.status_code == 200 and seen["4xx"] > 0


names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=30).filter(str.strip)
addresses = st.fixed_dictionaries(
    {"lineOne": names, "city": names, "state": names, "zipCode": names, "country": names},
    optional={"lineTwo": names, "note": names},
)
patients = st.fixed_dictionaries(
    {"firstName": names, "lastName": names},
    optional={
        "id": st.integers(1, 2**63 - 1),
        "externalIdentifier": names,
        "phoneNumber": names,
        "dateOfBirth": st.dates(min_value=nb.models.EARLIEST_BIRTH_DATE, max_value=__import__("datetime").date(2020, 1, 1)),
        "sex": st.sampled_from(nb.models.SEX_VALUES),
        "enrolled": st.booleans(),
        "archived": st.booleans(),
        "address": addresses,
        "site": st.fixed_dictionaries({}, optional={"name": names, "active": st.booleans(), "address": addresses}),
        "email": st.from_regex(r"[a-z][a-z0-9]{0,6}([._][a-z0-9]{1,6})?@[a-z]{2,10}\.(org|com|io)", fullmatch=True),
    },
)


@settings(max_examples=200, deadline=None)
@given(patients)
def test_patients_round_trip_through_json(record):
    patient = nb.Patient.model_validate(record)
    again = nb.Patient.model_validate(json.loads(json.dumps(patient.to_api())))
    assert again == patient
    assert nb.Patient.from_api(json.loads(json.dumps(patient.to_api()))) == patient
