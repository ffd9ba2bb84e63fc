import ast
import itertools
import json
import sqlite3
import typing
from pathlib import Path

import pytest
import requests

import impilo_nb as nb
from impilo_nb.fields import ListFilter, Match
from impilo_nb.models import Patient, Site, WebhookLogEntry
from impilo_nb.sandbox.limits import MAX_BODY_BYTES, MAX_DEPTH, MAX_TEXT_LENGTH
from impilo_nb.sandbox.queries import CONDITIONS, describe
from impilo_nb.sandbox.rendering import SafeJSONResponse
from impilo_nb.sandbox.store import EVENT_ID_BASE
from tests.conftest import make_patient

API = "/api/v3/patient"


@pytest.fixture
def http(sandbox):
    session = requests.Session()
    session.headers["Impilo-API-Key"] = sandbox.api_key

    def call(method, path, **kwargs):
        return session.request(method, sandbox.url + path, timeout=5, **kwargs)

    return call


@pytest.fixture
def people(http):
    rows = [
        make_patient(1, firstName="Ana", lastName="Rivera", dateOfBirth="1975-04-02", enrolled=True),
        make_patient(
            2,
            firstName="bruno",
            lastName="Zed",
            dateOfBirth="1990-01-01",
            enrolled=False,
            address={"lineOne": "x", "city": "Paris", "state": "IDF", "zipCode": "75001", "country": "FRA"},
        ),
        make_patient(3, firstName="Carla", lastName="anders", dateOfBirth="2001-12-31", archived=True, email="Carla@Example.org"),
    ]
    return [http("POST", API, json=row).json() for row in rows]


def ids(response):
    assert response.status_code == 200, response.text
    return [p["id"] for p in response.json()["content"]]


def test_create_returns_201_and_ignores_a_given_id(http):
    response = http("POST", API, json={**make_patient(), "id": 456})
    assert response.status_code == 201 and response.json()["id"] == 1


def test_unknown_fields_are_dropped(http):
    created = http("POST", API, json={**make_patient(), "gender": "male"}).json()
    assert "gender" not in created and "gender" not in http("GET", f"{API}/{created['id']}").json()


def test_bad_json_gets_400_with_field_errors(http):
    response = http("POST", API, json={"firstName": "A", "dateOfBirth": "1987-02-30", "email": "x@", "sex": "x"})
    body = response.json()
    assert response.status_code == 400 and body["status"] == 400 and body["error"] == "Bad Request"
    assert {fe["field"] for fe in body["fieldErrors"]} == {"lastName", "dateOfBirth", "email", "sex"}


def test_body_that_is_not_json_gets_400(http):
    response = http("POST", API, data="{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["fieldErrors"]


@pytest.mark.parametrize("headers", [{}, {"Impilo-API-Key": "wrong"}])
def test_missing_or_wrong_key_is_401(sandbox, headers):
    response = requests.get(sandbox.url + API, headers=headers, timeout=5)
    assert response.status_code == 401 and response.json()["status"] == 401


def test_every_response_has_a_request_id(http, sandbox):
    assert http("GET", API).headers["X-Request-Id"].startswith("req_")
    assert requests.get(sandbox.url + API, timeout=5).headers["X-Request-Id"].startswith("req_")


def test_openapi_is_served_without_a_key(sandbox):
    spec = requests.get(sandbox.url + "/openapi.json", timeout=5).json()
    assert {"/api/v3/patient", "/api/v3/patient/{patientId}"} <= set(spec["paths"])


def test_put_replaces_and_patch_merges(http, people):
    ana = people[0]
    put = http("PUT", f"{API}/{ana['id']}", json={"firstName": "Ana", "lastName": "Rivera"}).json()
    assert put["email"] is None and put["address"] is None
    patched = http("PATCH", f"{API}/{ana['id']}", json={"email": "new@example.org"}).json()
    assert (patched["firstName"], patched["email"]) == ("Ana", "new@example.org")


def test_patch_that_would_make_the_record_invalid_is_400(http, people):
    response = http("PATCH", f"{API}/{people[0]['id']}", json={"firstName": None})
    assert response.status_code == 400 and response.json()["fieldErrors"][0]["field"] == "firstName"


def test_duplicate_external_identifier_on_put_is_409(http, people):
    response = http("PUT", f"{API}/{people[0]['id']}", json=make_patient(9, externalIdentifier=people[1]["externalIdentifier"]))
    assert response.status_code == 409 and people[1]["externalIdentifier"] in response.json()["message"]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH"])
def test_unknown_patient_is_404(http, method):
    response = http(method, f"{API}/77", json=make_patient() if method != "GET" else None)
    assert response.status_code == 404 and response.json()["message"] == "Patient 77 not found."


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"name": "RIVERA"}, [1]),
        ({"name": "an"}, [1, 3]),  # Ana, anders: substring of "first last", any case
        ({"email": "carla@example.org"}, [3]),
        ({"enrolled": "true"}, [1]),
        ({"enrolled": "false"}, [2, 3]),
        ({"archived": "true"}, [3]),
        ({"archived": "false"}, [1, 2]),
        ({"dateOfBirthMin": "1980-01-01"}, [2, 3]),
        ({"dateOfBirthMax": "1990-01-01"}, [1, 2]),
        ({"postalCode": "75001"}, [2]),
        ({"country": "usa"}, [1, 3]),
        ({"id": ["1", "3"]}, [1, 3]),
        ({"externalIdentifier": ["ext-00001", "ext-00002"]}, [1, 2]),
        ({"externalIdentifier": "ext-00003,ext-00002"}, []),  # one identifier, with a comma in it
        ({"sort": "firstName"}, [1, 2, 3]),  # case-insensitive: Ana, bruno, Carla
        ({"sort": "lastName"}, [3, 1, 2]),  # anders, Rivera, Zed
        ({"sort": "patientId", "sortDescending": "true"}, [3, 2, 1]),
    ],
)
def test_filters_and_sorting(http, people, query, expected):
    assert ids(http("GET", API, params=query)) == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"page": 0}, "page"),
        ({"size": 0}, "size"),
        ({"size": 251}, "size"),
        ({"sort": "email"}, "sort"),
        ({"id": "x"}, "id"),
        ({"dateOfBirthMin": "1990-02-30"}, "dateOfBirthMin"),
    ],
)
def test_bad_paging_and_filters_are_400(http, query, field):
    response = http("GET", API, params=query)
    assert response.status_code == 400
    assert response.json()["fieldErrors"][0]["field"] == field


def test_paging_envelope_and_edges(http):
    for n in range(7):
        http("POST", API, json=make_patient(n))
    first = http("GET", API, params={"size": 3}).json()
    assert (first["page"], first["size"], first["total"], first["first"], first["last"]) == (1, 3, 7, True, False)
    last = http("GET", API, params={"size": 3, "page": 3}).json()
    assert [p["id"] for p in last["content"]] == [7] and last["last"] and not last["first"]
    beyond = http("GET", API, params={"size": 3, "page": 9}).json()
    assert beyond["content"] == [] and beyond["last"]
    assert http("GET", API, params={"size": 250}).json()["size"] == 250
    assert http("GET", API).json()["size"] == 15


def test_empty_list(http):
    body = http("GET", API).json()
    assert body == {"content": [], "page": 1, "size": 15, "total": 0, "first": True, "last": True}


def test_data_survives_a_restart(tmp_path):
    db = tmp_path / "sandbox.db"
    with nb.Sandbox(db_path=db) as first:
        nb.ImpiloClient(first.url, first.api_key).patients.create(make_patient())
    with nb.Sandbox(db_path=db) as second:
        assert nb.ImpiloClient(second.url, second.api_key).patients.get(1).first_name == "First1"


def test_custom_api_key(tmp_path):
    with nb.Sandbox("my-key") as sandbox:
        assert requests.get(sandbox.url + API, headers={"Impilo-API-Key": "my-key"}, timeout=5).status_code == 200
        assert requests.get(sandbox.url + API, headers={"Impilo-API-Key": "sandbox-key"}, timeout=5).status_code == 401


def test_injected_fault_and_latency():
    with nb.Sandbox(latency_ms=50) as sandbox:
        sandbox.inject_fault(503, retry_after=2)
        response = requests.get(sandbox.url + API, headers={"Impilo-API-Key": sandbox.api_key}, timeout=5)
        assert response.status_code == 503 and response.headers["Retry-After"] == "2"
        assert response.elapsed.total_seconds() >= 0.05


@pytest.mark.parametrize(
    "kwargs",
    [{"api_key": ""}, {"time_scale": 0}, {"time_scale": float("inf")}, {"time_scale": float("nan")}, {"latency_ms": -1},
     {"port": 70000}],
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(nb.ConfigurationError):
        nb.Sandbox(**kwargs)


def test_binds_to_loopback_by_default():
    with nb.Sandbox() as sandbox:
        assert sandbox.url.startswith("http://127.0.0.1:")


def test_repr_does_not_show_the_key():
    with nb.Sandbox("secret-key-42") as sandbox:
        assert "secret-key-42" not in repr(sandbox)


# -- webhooks, secret, logs ------------------------------------------------------------------

HOOK = "http://127.0.0.1:9/hook"


def test_webhook_crud(http):
    created = http("POST", "/api/v3/webhook", json={"type": "patient.updated", "url": HOOK})
    assert created.status_code == 200 and created.json() == {"id": 1, "type": "patient.updated", "url": HOOK}
    assert http("GET", "/api/v3/webhook").json() == [created.json()]
    assert http("GET", "/api/v3/webhook/1").json() == created.json()
    moved = http("PATCH", "/api/v3/webhook/1", json={"type": "eventType", "url": HOOK + "2"})  # the docs' dummy type
    assert moved.json() == {"id": 1, "type": "patient.updated", "url": HOOK + "2"}
    assert http("DELETE", "/api/v3/webhook/1").status_code == 204
    assert http("GET", "/api/v3/webhook/1").status_code == 404
    assert http("DELETE", "/api/v3/webhook/1").status_code == 404


def test_patching_the_same_url_is_400(http):
    http("POST", "/api/v3/webhook", json={"type": "patient.updated", "url": HOOK})
    response = http("PATCH", "/api/v3/webhook/1", json={"url": HOOK})
    assert response.status_code == 400 and "same" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "patient.update", "url": HOOK}, "type"),
        ({"type": "patient.updated", "url": "ftp://x/y"}, "url"),
        ({"type": "patient.updated", "url": "javascript:alert(1)"}, "url"),
        ({"url": HOOK}, "type"),
    ],
)
def test_bad_webhooks_are_400(http, body, field):
    response = http("POST", "/api/v3/webhook", json=body)
    assert response.status_code == 400 and response.json()["fieldErrors"][0]["field"] == field


def test_secret_lifecycle(http):
    assert http("GET", "/api/v3/webhook-secret").status_code == 404
    assert http("POST", "/api/v3/webhook-secret", json={"secret": "s1"}).json() == {"secret": "s1"}
    assert http("POST", "/api/v3/webhook-secret", json={"secret": "s2"}).status_code == 409
    assert http("GET", "/api/v3/webhook-secret").json() == {"secret": "s1"}
    assert http("DELETE", "/api/v3/webhook-secret").status_code == 204
    assert http("DELETE", "/api/v3/webhook-secret").status_code == 404
    assert http("POST", "/api/v3/webhook-secret", json={"secret": "  "}).status_code == 400


def test_logs_page_and_filters(http, sandbox):
    http("POST", "/api/v3/webhook", json={"type": "patient.created", "url": "http://192.0.2.1/x"})  # blocked: fails fast
    for n in range(3):
        http("POST", API, json=make_patient(n))
    sandbox.wait_for_deliveries()
    page = http("GET", "/api/v3/webhook/logs", params={"size": 2}).json()
    assert (page["total"], len(page["content"]), page["last"]) == (3, 2, False)
    entry = page["content"][0]
    assert {
        "id",
        "webhookId",
        "webhookType",
        "webhookUrl",
        "payload",
        "createTimestamp",
        "lastResponseStatus",
        "retryAttempts",
        "lastRetryTimestamp",
    } <= set(entry)
    assert isinstance(entry["payload"], str) and entry["retryAttempts"] == 0
    assert http("GET", "/api/v3/webhook/logs", params={"webhookType": "patient.updated"}).json()["total"] == 0
    assert http("GET", "/api/v3/webhook/logs", params={"retryAttemptsMin": 1}).json()["total"] == 0
    assert http("GET", "/api/v3/webhook/logs", params={"retryAttemptsMax": 0}).json()["total"] == 3
    assert http("GET", "/api/v3/webhook/logs", params={"endTimestamp": "2000-01-01T00:00:00Z"}).json()["total"] == 0
    assert http("GET", "/api/v3/webhook/logs", params={"startTimestamp": "2000-01-01T00:00:00Z"}).json()["total"] == 3
    assert http("GET", "/api/v3/webhook/logs", params={"size": 251}).status_code == 400


def test_a_failed_create_leaves_no_empty_patient(tmp_path, monkeypatch):
    from impilo_nb.sandbox.store import SandboxStore

    store = SandboxStore(str(tmp_path / "s.db"))
    real_execute = store._db.execute

    class CrashError(Exception):
        pass

    def crash_on_update(sql, *args):
        if sql.startswith("UPDATE patients"):
            raise CrashError  # as if the process died between the two statements
        return real_execute(sql, *args)

    store._db = type("Db", (), {"execute": staticmethod(crash_on_update)})()
    with pytest.raises(CrashError):
        store.create_patient({"firstName": "A", "lastName": "B"})
    store._db = type("Db", (), {"execute": staticmethod(real_execute)})()
    assert store.list_patients(nb.sandbox.store.PatientQuery(), page=1, size=10) == ([], 0, True)


# -- multi-value filters: repeated parameters, never split on commas ------------------------


def test_an_external_identifier_with_a_comma_is_one_value(http):
    crm = http("POST", API, json=make_patient(1, externalIdentifier="crm")).json()
    with_comma = http("POST", API, json=make_patient(2, externalIdentifier="crm,1")).json()
    assert ids(http("GET", API, params={"externalIdentifier": "crm,1"})) == [with_comma["id"]]
    assert ids(http("GET", API, params={"externalIdentifier": "crm"})) == [crm["id"]]
    assert ids(http("GET", API, params={"externalIdentifier": ["crm", "crm,1"]})) == [crm["id"], with_comma["id"]]


def test_site_ids_are_repeated_parameters(http):
    created = [http("POST", API, json=make_patient(site, site={"id": site, "name": "Clinic"})).json() for site in (7, 8, 9)]
    assert ids(http("GET", API, params={"siteId": ["7", "9"]})) == [created[0]["id"], created[2]["id"]]


@pytest.mark.parametrize("name", ["id", "siteId"])
def test_comma_separated_ids_are_400_saying_to_repeat_the_parameter(http, people, name):
    response = http("GET", API, params={name: "1,2"})
    assert response.status_code == 400
    error = response.json()["fieldErrors"][0]
    assert error["field"] == name and "repeat the parameter" in error["message"] and f"{name}=1&{name}=2" in error["message"]


@pytest.mark.parametrize("name", ["id", "siteId", "externalIdentifier"])
def test_an_empty_filter_value_is_400_not_every_patient(http, people, name):
    response = http("GET", API, params={name: ""})
    errors = response.json().get("fieldErrors", [])
    assert response.status_code == 400 and [e["field"] for e in errors] == [name] and errors[0]["message"].startswith("Empty")


@pytest.mark.parametrize("value", ["١", "1_0", " 1", "+1", "0x1"])
def test_ids_are_ascii_digits_only(http, people, value):
    assert http("GET", API, params={"id": value}).status_code == 400


def test_openapi_documents_repeated_filters_and_the_body_limit(sandbox):
    spec = requests.get(sandbox.url + "/openapi.json", timeout=5).json()
    params = {p["name"]: p for p in spec["paths"][API]["get"]["parameters"]}
    for name in ("id", "siteId", "externalIdentifier"):
        assert "repeat the parameter" in params[name]["description"] and "never split on commas" in params[name]["description"]
    assert params["id"]["schema"]["anyOf"][0]["items"]["type"] == "integer"
    assert "413" in spec["paths"][API]["post"]["responses"] and "413" not in spec["paths"][API]["get"]["responses"]


# -- trust the wire: every body and query parameter is checked before anything is stored ----

JSON = {"Content-Type": "application/json"}


def raw_patient(**fields) -> str:
    """A patient body as JSON text, with raw JSON text for each of ``fields`` (e.g. "\\ud800")."""
    body = json.dumps(make_patient(5))[:-1]
    return body + "".join(f', "{name}": {text}' for name, text in fields.items()) + "}"


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", API, raw_patient(firstName='"\\ud800"'), "firstName"),
        ("PUT", f"{API}/1", raw_patient(address='{"lineOne": "x", "city": "a\\udfffb"}'), "address.city"),
        ("PATCH", f"{API}/1", '{"lastName": "Ro\\udc00se"}', "lastName"),
        ("PATCH", f"{API}/1", '{"\\ud83d": 1}', "\\ud83d"),
        ("POST", "/api/v3/webhook", '{"type": "patient.created", "url": "http://127.0.0.1/\\udc00"}', "url"),
        ("PATCH", "/api/v3/webhook/1", '{"url": "http://127.0.0.1/\\ud800"}', "url"),
        ("POST", "/api/v3/webhook-secret", '{"secret": "abc\\ud800"}', "secret"),
    ],
)
def test_a_lone_surrogate_is_400_naming_the_field_and_nothing_is_stored(http, method, path, body, field):
    created = http("POST", API, json=make_patient(1)).json()
    hook = http("POST", "/api/v3/webhook", json={"type": "patient.created", "url": HOOK}).json()
    response = http(method, path, data=body.encode(), headers=JSON)
    assert response.status_code == 400, response.text
    error = response.json()["fieldErrors"][0]
    assert error["field"] == field and "surrogate" in error["message"]
    assert http("GET", API).json()["content"] == [created]
    assert http("GET", "/api/v3/webhook").json() == [hook]
    assert http("GET", "/api/v3/webhook-secret").status_code == 404


def test_a_body_that_is_not_utf8_is_400(http):
    # A surrogate encoded as bytes (CESU-8): json.loads(bytes) would have decoded it.
    response = http("POST", API, data=b'{"firstName": "\xed\xa0\x80", "lastName": "x"}', headers=JSON)
    assert response.status_code == 400 and "UTF-8" in response.json()["fieldErrors"][0]["message"]
    assert http("GET", API).json()["total"] == 0


@pytest.mark.parametrize(
    ("method", "body", "field", "words"),
    [
        ("PUT", raw_patient(id=str(2**70)), "id", "64 bits"),
        ("POST", raw_patient(site='{"id": 18446744073709551616}'), "site.id", "64 bits"),
        ("POST", raw_patient(extra=str(-(2**63) - 1)), "extra", "64 bits"),
        ("POST", raw_patient(id="9" * 5000), "id", "64 bits"),  # past Python's 4,300-digit limit
        ("POST", raw_patient(extra="NaN"), "extra", "finite"),
        ("POST", raw_patient(extra="-Infinity"), "extra", "finite"),
        ("POST", raw_patient(extra="1e999"), "extra", "finite"),
        ("POST", raw_patient(firstName='"a\\u0000b"'), "firstName", "NUL"),
        ("POST", raw_patient(lastName=json.dumps("x" * (MAX_TEXT_LENGTH + 1))), "lastName", "characters long"),
        ("POST", raw_patient(site="[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)), "site.0.0.….0.0", "nested"),
        ("PATCH", '{"x": ' + "[" * 500 + "]" * 500 + "}", "x.0.0.….0.0", "nested"),
        ("POST", raw_patient(site='{"address": ' * 5000 + "{}" + "}" * 5000), None, "nested"),
    ],
)
def test_values_the_api_cannot_hold_are_400_naming_the_problem(http, method, body, field, words):
    created = http("POST", API, json=make_patient(1)).json()
    response = http(method, API if method == "POST" else f"{API}/1", data=body.encode(), headers=JSON)
    assert response.status_code == 400, response.text
    error = response.json()["fieldErrors"][0]
    assert error["field"] == field and words in error["message"]
    assert http("GET", API).json()["content"] == [created]


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_413(http, chunked):
    body = json.dumps(make_patient(1, note="x" * MAX_BODY_BYTES)).encode()
    chunks = (body[start : start + 65536] for start in range(0, len(body), 65536))  # no Content-Length
    response = http("POST", API, data=chunks if chunked else body, headers=JSON)
    assert response.status_code == 413 and "1 MiB" in response.json()["message"]
    assert http("GET", API).json()["total"] == 0


@pytest.mark.parametrize(
    ("path", "query", "field", "words"),
    [
        (API, {"name": "a\x00b"}, "name", "NUL"),
        (API, {"country": "x" * (MAX_TEXT_LENGTH + 1)}, "country", "characters long"),
        (API, {"page": "9" * 5000}, "page", "characters long"),
        (API, {"unknown\x00": "1"}, "unknown\x00", "NUL"),
        ("/api/v3/webhook/logs", {"startTimestamp": "0001-01-01T00:00:00+05:00"}, "startTimestamp", "Out of range"),
        ("/api/v3/webhook/logs", {"endTimestamp": "9999-12-31T23:59:59-05:00"}, "endTimestamp", "Out of range"),
    ],
)
def test_bad_query_values_are_400_naming_the_parameter(http, path, query, field, words):
    response = http("GET", path, params=query)
    assert response.status_code == 400, response.text
    error = response.json()["fieldErrors"][0]
    assert error["field"] == field and words in error["message"]


def test_refusals_never_echo_the_secret(http):
    response = http("POST", "/api/v3/webhook-secret", data=b'{"secret": "hunter2-\\u0000"}', headers=JSON)
    assert response.status_code == 400 and "hunter2" not in response.text


# -- the read side: one bad stored record never fails a response -----------------------------


def test_listing_survives_rows_planted_in_the_database(http, sandbox):
    good = http("POST", API, json=make_patient(1)).json()
    planted = [
        json.dumps({"firstName": "\ud800", "lastName": "Surrogate"}),  # what the old sandbox stored
        '{"firstName": NaN, "lastName": "NotANumber"}',
        b'{"firstName": "\xff\xfe", "lastName": "NotUtf8"}',
        "{not json",
        "[1, 2]",
        "[" * 5000 + "]" * 5000,
    ]
    with sqlite3.connect(sandbox.db_path) as db:
        for data in planted:
            db.execute("INSERT INTO patients (data) VALUES (CAST(? AS TEXT))", (data,))
    listed = http("GET", API, params={"size": 50})
    assert listed.status_code == 200, listed.text
    content = listed.json()["content"]
    assert content[0] == good and [p["id"] for p in content] == list(range(1, 8))
    assert content[1]["firstName"] == "\ufffd" and content[2]["firstName"] is None
    assert "\ufffd" in content[3]["firstName"] and content[4:] == [{"id": 5}, {"id": 6}, {"id": 7}]
    for query in ({"sort": "firstName"}, {"sort": "lastName"}, {"name": "a"}, {"enrolled": "true"}, {"country": "usa"}):
        assert http("GET", API, params=query).status_code == 200, query
    assert all(http("GET", f"{API}/{n}").status_code == 200 for n in range(1, 8))


def test_any_content_renders():
    deep: list = []
    inner = deep
    for _ in range(5000):
        inner.append([])
        inner = inner[0]
    content = {"text": "a\ud800b", "\udc00key": 1, "nan": float("nan"), "inf": float("-inf"), "deep": deep, "other": {1, 2}}
    rendered = json.loads(SafeJSONResponse(content).body)
    assert rendered["text"] == "a\ufffdb" and rendered["\ufffdkey"] == 1
    assert rendered["nan"] is None and rendered["inf"] is None and isinstance(rendered["other"], str)
    assert json.dumps(rendered["deep"]).count("[") == MAX_DEPTH - 1  # cut below the limit, not an error


# -- the list queries come from the field tables ----------------------------------------------

LOGS = "/api/v3/webhook/logs"


def documented_parameters(sandbox, path):
    spec = requests.get(sandbox.url + "/openapi.json", timeout=5).json()
    return {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}


@pytest.mark.parametrize(("path", "model"), [(API, Patient), (LOGS, WebhookLogEntry)])
def test_every_table_row_is_a_documented_parameter_and_every_parameter_comes_from_the_tables(sandbox, path, model):
    params = documented_parameters(sandbox, path)
    sorts = {"sort", "sortDescending"} if hasattr(model, "SORTS") else set()
    assert set(params) == {"page", "size"} | sorts | {row.wire for row in model.LIST_FILTERS}
    for row in model.LIST_FILTERS:
        assert params[row.wire]["description"] == describe(row)
        assert (params[row.wire]["schema"]["anyOf"][0]["type"] == "array") is row.many
    if sorts:
        assert params["sort"]["schema"]["enum"] == list(model.SORTS)


def test_every_kind_of_match_has_a_condition_and_a_description():
    for kind in typing.get_args(Match):
        assert kind in CONDITIONS and describe(ListFilter("x", ("x",), kind))


def test_a_row_added_to_a_table_becomes_a_documented_parameter_that_filters(monkeypatch):
    monkeypatch.setattr(
        Patient,
        "LIST_FILTERS",
        (
            *Patient.LIST_FILTERS,
            ListFilter("phoneNumber", ("phoneNumber",), "equal"),
            ListFilter("place", ("address.city", "address.state"), "contains_ci"),
            ListFilter("externalIdentifierBefore", ("externalIdentifier",), "before"),
        ),
    )
    monkeypatch.setattr(Patient, "SORTS", {**Patient.SORTS, "email": "email"})
    log_filters = (*WebhookLogEntry.LIST_FILTERS, ListFilter("webhookUrl", ("webhookUrl",), "equal"))
    monkeypatch.setattr(WebhookLogEntry, "LIST_FILTERS", log_filters)
    with nb.Sandbox(time_scale=1000) as sandbox:
        patients, logs = documented_parameters(sandbox, API), documented_parameters(sandbox, LOGS)
        assert patients["place"]["description"] == (
            'Only those whose "address.city address.state" (those fields joined by a space) contains this, ignoring case.'
        )
        assert {"phoneNumber", "externalIdentifierBefore"} <= set(patients) and "email" in patients["sort"]["schema"]["enum"]
        assert logs["webhookUrl"]["description"] == "Only those whose `webhookUrl` equals this (exact match)."
        headers = {"Impilo-API-Key": sandbox.api_key}
        for url in ("http://192.0.2.1/a", "http://192.0.2.2/b"):  # blocked: each delivery fails at once
            hook = {"type": "patient.created", "url": url}
            requests.post(sandbox.url + "/api/v3/webhook", json=hook, headers=headers, timeout=5)
        for n, city in ((1, "Springfield"), (2, "Paris"), (3, "Springfield")):
            address = {"lineOne": "x", "city": city, "state": "IL", "zipCode": "1", "country": "USA"}
            patient = make_patient(n, phoneNumber=f"+1 555 000 000{n}", email=f"{'zyx'[n - 1]}@example.org", address=address)
            requests.post(sandbox.url + API, json=patient, headers=headers, timeout=5)

        def listed(path, **query):
            response = requests.get(sandbox.url + path, params=query, headers=headers, timeout=5)
            assert response.status_code == 200, response.text
            return response.json()

        assert [p["id"] for p in listed(API, phoneNumber="+1 555 000 0002")["content"]] == [2]
        assert [p["id"] for p in listed(API, place="FIELD il")["content"]] == [1, 3]
        assert [p["id"] for p in listed(API, externalIdentifierBefore="ext-00002")["content"]] == [1]
        assert [p["id"] for p in listed(API, sort="email")["content"]] == [3, 2, 1]
        assert listed(LOGS, webhookUrl="http://192.0.2.2/b")["total"] == 3


# -- documented-fields-only mode ---------------------------------------------------------------

DOCUMENTED_LOG_FIELDS = {"id", "webhookId", "webhookType", "webhookUrl", "payload", "createTimestamp"}
DOCUMENTED_LOG_FIELDS |= {"lastResponseStatus", "retryAttempts", "lastRetryTimestamp"}
SANDBOX_LOG_EXTRAS = {"eventId", "status", "lastError", "nextAttemptTimestamp", "attempts"}


@pytest.mark.parametrize("documented_only", [False, True])
def test_documented_only_mode_leaves_out_what_the_docs_do_not_have(documented_only):
    with nb.Sandbox(documented_only=documented_only) as sandbox:
        headers = {"Impilo-API-Key": sandbox.api_key}
        hook = {"type": "patient.created", "url": "http://192.0.2.1/x"}  # blocked: fails at once
        requests.post(sandbox.url + "/api/v3/webhook", json=hook, headers=headers, timeout=5)
        body = make_patient(1, site={"id": 7, "name": "Clinic"}, extra="dropped")
        created = requests.post(sandbox.url + API, json=body, headers=headers, timeout=5).json()
        sandbox.wait_for_deliveries()
        read = requests.get(f"{sandbox.url}{API}/{created['id']}", headers=headers, timeout=5).json()
        by_site = requests.get(sandbox.url + API, params={"siteId": 7}, headers=headers, timeout=5).json()["content"]
        entry = requests.get(sandbox.url + LOGS, headers=headers, timeout=5).json()["content"][0]
        frame = nb.ImpiloClient(sandbox.url, sandbox.api_key).webhooks.logs()
    site = {"name": "Clinic", "active": None, "phoneNumber": None, "address": None}
    assert read["site"] == ({**site, "id": 7} if not documented_only else site) and "extra" not in read
    assert by_site == [read] and created == read  # the filter still reads the stored site id
    assert set(entry) == DOCUMENTED_LOG_FIELDS | (set() if documented_only else SANDBOX_LOG_EXTRAS)
    assert ("id" in json.loads(entry["payload"])["payload"]["site"]) is not documented_only  # the webhook's body too
    assert (set(frame.columns) >= SANDBOX_LOG_EXTRAS) is not documented_only


def test_only_model_fields_count_as_documented():
    from impilo_nb.sandbox.documented import SANDBOX_ONLY, documented

    record = {"id": 1, "firstName": "A", "lastName": "B", "site": {"id": 7, "name": "C"}, "sandboxExtra": 1}
    assert documented(Patient, record) == {"id": 1, "firstName": "A", "lastName": "B", "site": {"name": "C"}}
    assert documented(list[Patient], [record, "not a record"])[1] == "not a record"
    assert set(SANDBOX_ONLY) == {Site}


def test_the_command_line_has_a_documented_only_switch():
    from impilo_nb.__main__ import build_parser

    assert build_parser().parse_args(["sandbox", "--documented-only"]).documented_only
    assert not build_parser().parse_args(["sandbox"]).documented_only


# -- event ids are unique across sandbox databases -----------------------------------------


def test_event_ids_differ_between_databases_and_rise_within_one(tmp_path):
    firsts = []
    for name in ("a.db", "b.db"):
        with nb.Sandbox(db_path=tmp_path / name) as sandbox:
            first, second = sandbox.emit("reading.weight", {}), sandbox.emit(event_type="reading.weight", payload={})
        assert EVENT_ID_BASE < first < second < 2**53
        firsts.append(first)
    assert firsts[0] != firsts[1]  # the same by chance once in 2**48 runs
    with nb.Sandbox(db_path=tmp_path / "a.db") as again:  # an existing database keeps counting
        assert again.emit("reading.weight", {}) == firsts[0] + 2


# -- keyset paging: the same pages as OFFSET, at a cost that does not grow with the page ------------

NAMES = ["ana", "Ana", "ANA", "bruno", "Chen", "chen", "dana", "Émile", "zoe", "ana"]


@pytest.fixture
def crowd(tmp_path):
    """A store whose sort keys tie (names differing only in case), are missing (rows planted with no
    or unreadable names), are not text (a number) or not UTF-8; and the filters have something to keep."""
    from impilo_nb.sandbox.store import SandboxStore

    store = SandboxStore(str(tmp_path / "crowd.db"))
    for n in range(40):
        store.create_patient(
            make_patient(
                n,
                firstName=NAMES[n % len(NAMES)],
                lastName=NAMES[(n * 7) % len(NAMES)].upper() if n % 3 else NAMES[(n * 7) % len(NAMES)],
                enrolled=n % 2 == 0,
                archived=n % 5 == 0 or None,
                dateOfBirth=f"19{50 + n}-01-01",
            )
        )
    for data in ('{"lastName": "NoFirst"}', '{"firstName": 42, "lastName": 7}', "{not json", '{"firstName": "\u00e9a"}'):
        store._db.execute("INSERT INTO patients (data) VALUES (?)", (data,))
    store._db.execute("INSERT INTO patients (data) VALUES (CAST(? AS TEXT))", (b'{"firstName": "\xff\xfe", "lastName": "x"}',))
    store.create_patient(make_patient(99, firstName="ana", lastName="ana"))  # ids after the planted rows tie too
    yield store
    store.close()


def offset_ids(store, query, *, page, size):
    """The plain OFFSET answer, read straight from the file: what every page was before keyset paging."""
    from impilo_nb.sandbox.store import _patient_column

    where, args = query.where(_patient_column)
    with sqlite3.connect(store.path) as db:
        sql = f"SELECT id FROM patients{where}{query.order_by()} LIMIT ? OFFSET ?"
        return [row[0] for row in db.execute(sql, [*args, size, (page - 1) * size])]


def walk(store, query, size):
    """Every page from 1 until the last, as a client walks them: (ids per page, SQL run after page 1)."""
    pages, statements, page = [], [], 1
    while True:
        listing = store.list_patients(query, page=page, size=size)
        pages.append([record["id"] for record in listing.records])
        if listing.last:
            return pages, statements
        if page == 1:
            store._db.set_trace_callback(statements.append)
        page += 1


FILTER_VALUES = [
    {},
    {"enrolled": True},
    {"archived": False},
    {"name": "an"},
    {"id": [3, 1, 44, 45, 41, 20, 21, 22]},
    {"dateOfBirthMin": "1970-01-01", "enrolled": False},
]


@pytest.mark.parametrize("values", FILTER_VALUES, ids=str)
@pytest.mark.parametrize("sort", ["id", "firstName", "lastName"])
@pytest.mark.parametrize("descending", [False, True])
def test_keyset_pages_are_the_offset_pages(crowd, values, sort, descending):
    from impilo_nb.sandbox.store import PatientQuery

    query = PatientQuery(values=values, sort=sort, sort_descending=descending)
    everyone = offset_ids(crowd, query, page=1, size=1000)
    for size in (1, 3, 7, 250):
        pages, statements = walk(crowd, query, size)
        assert pages == [offset_ids(crowd, query, page=n, size=size) for n in range(1, len(pages) + 1)]
        assert [i for page in pages for i in page] == everyone
        # Keyset, not OFFSET, after page 1, except after the one page whose last key is not UTF-8.
        offsets = [sql for sql in statements if "OFFSET" in sql]
        assert len(offsets) <= (1 if sort == "firstName" else 0), offsets
        crowd._db.set_trace_callback(None)


def test_a_page_out_of_the_blue_or_forgotten_is_read_by_position(crowd):
    from impilo_nb.sandbox.queries import PageCursors
    from impilo_nb.sandbox.store import PatientQuery

    query = PatientQuery(sort="lastName", sort_descending=True)
    assert [r["id"] for r in crowd.list_patients(query, page=4, size=5).records] == offset_ids(crowd, query, page=4, size=5)
    crowd._page_ends = PageCursors(maxsize=1)
    other = PatientQuery(sort="firstName")
    crowd.list_patients(query, page=1, size=5)
    crowd.list_patients(other, page=1, size=5)  # pushes out where the first listing's page 1 ended
    assert len(crowd._page_ends) == 1
    assert [r["id"] for r in crowd.list_patients(query, page=2, size=5).records] == offset_ids(crowd, query, page=2, size=5)
    with pytest.raises(ValueError, match="at least one"):
        PageCursors(maxsize=0)


def test_every_sort_has_an_index_that_keyset_pages_seek_in(crowd):
    from impilo_nb.sandbox.queries import Cursor, seek
    from impilo_nb.sandbox.store import PatientQuery

    for path in Patient.SORTS.values():
        for descending, key in itertools.product((False, True), ("m", None)):
            query = PatientQuery(sort=path, sort_descending=descending)
            for part in seek(query.sort_key(), Cursor(key, 5), descending=descending):
                order = f" ORDER BY id {'DESC' if descending else 'ASC'}" if part.ties else query.order_by()
                sql = f"EXPLAIN QUERY PLAN SELECT id FROM patients WHERE {part.condition}{order} LIMIT 3"
                plan = " ".join(row[-1] for row in crowd._db.execute(sql, part.args))
                assert "TEMP B-TREE" not in plan and ("SEARCH" in plan or "IS NOT NULL" in part.condition), (part, plan)


def test_writes_between_pages_never_shift_the_pages_after(http):
    """The rule in docs/api-decisions.md#list-patients: a page continues after the last patient
    of the page before it, in the order asked for, whatever was written in between."""
    created = {last: http("POST", API, json=make_patient(n, lastName=last)).json()["id"] for n, last in enumerate("bdfhjl")}

    def page(number):
        body = http("GET", API, params={"sort": "lastName", "size": 2, "page": number}).json()
        return [p["lastName"] for p in body["content"]], body["total"], body["last"]

    assert page(1) == (["b", "d"], 6, False)
    http("POST", API, json=make_patient(10, lastName="a"))  # before the part already read: not in this walk
    http("POST", API, json=make_patient(11, lastName="e"))  # after it: in its place
    http("PATCH", f"{API}/{created['h']}", json={"lastName": "c"})  # moved into the part read: not seen again
    http("PATCH", f"{API}/{created['b']}", json={"lastName": "k"})  # moved out of it: seen a second time
    assert page(2) == (["e", "f"], 8, False)  # by position it would have been ["c", "d"]: "d" twice
    assert page(3) == (["j", "k"], 8, False)
    assert page(4) == (["l"], 8, True)
    assert page(1) == (["a", "c"], 8, False)  # a walk from the start sees the list as it is now
    assert page(2) == (["d", "e"], 8, False)


def test_a_walk_after_another_clients_write_and_read_continues_where_position_would(http):
    """Two walkers share the sandbox's page ends: after a write, a page N - 1 served to another
    walker decides where this walk's page N starts. That is where reading by position would
    continue too, so sharing never costs a walk more than position-based paging would."""
    ids = [http("POST", API, json=make_patient(n)).json()["id"] for n in range(1, 8)]

    def page(number):
        return [p["id"] for p in http("GET", API, params={"size": 2, "page": number, "archived": "false"}).json()["content"]]

    assert page(1) == ids[0:2]  # walker A
    http("PATCH", f"{API}/{ids[1]}", json={"archived": True})
    assert page(1) == [ids[0], ids[2]]  # walker B starts after the write
    assert page(2) == [ids[3], ids[4]]  # walker A's page 2: as by position (ids[2] is missed either way)
    assert page(3) == [ids[5], ids[6]]


# -- the shape of the code ----------------------------------------------------------------------


def test_no_function_in_the_sandbox_is_over_60_lines():
    root = Path(nb.sandbox.__file__).parent
    long = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{path.relative_to(root)}:{node.lineno} {node.name}")
    assert long == []
