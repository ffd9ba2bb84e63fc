import json
import socket
import time

import pandas as pd
import pytest
import requests

import impilo_nb as nb
from impilo_nb.transport import never_reached_server as _never_reached_server
from tests.conftest import make_patient


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def count_patients(sandbox) -> int:
    return sandbox.store.list_patients(nb.sandbox.store.PatientQuery(), page=1, size=1)[1]


# -- configuration -------------------------------------------------------------------------


def test_missing_base_url_names_every_way_to_give_it():
    with pytest.raises(nb.ConfigurationError) as caught:
        nb.ImpiloClient(api_key="k")
    assert "base_url=" in str(caught.value) and "IMPILO_BASE_URL" in str(caught.value) and "connect()" in str(caught.value)


def test_missing_api_key_names_every_way_to_give_it():
    with pytest.raises(nb.ConfigurationError) as caught:
        nb.ImpiloClient(base_url="http://127.0.0.1:1")
    assert "api_key=" in str(caught.value) and "IMPILO_API_KEY" in str(caught.value)


def test_environment_is_the_fallback(monkeypatch, sandbox):
    monkeypatch.setenv("IMPILO_BASE_URL", sandbox.url)
    monkeypatch.setenv("IMPILO_API_KEY", sandbox.api_key)
    assert nb.ImpiloClient().patients.create(make_patient()).id == 1


@pytest.mark.parametrize("kwargs", [{"base_url": "ftp://x"}, {"timeout": 0}, {"max_retries": -1}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(nb.ConfigurationError):
        nb.ImpiloClient(**{"base_url": "http://127.0.0.1:1", "api_key": "k", **kwargs})


def test_api_key_never_in_repr_or_errors(sandbox):
    secret = "very-secret-key-123"
    client = nb.ImpiloClient(base_url=sandbox.url, api_key=secret)
    assert secret not in repr(client)
    with pytest.raises(nb.AuthenticationError) as caught:
        client.patients.get(1)
    assert secret not in str(caught.value) and secret not in repr(caught.value)


def test_repr_shows_the_caveat_only_when_there_is_one():
    client = nb.ImpiloClient(base_url="https://app.impiloplatform.com", api_key="repr-key-77")
    assert repr(client) == "ImpiloClient(base_url='https://app.impiloplatform.com', api_key=***)"
    client.caveat = "embedded sandbox, data lost when the kernel stops"
    assert repr(client) == (
        "ImpiloClient(base_url='https://app.impiloplatform.com', api_key=***) — embedded sandbox, data lost when the kernel stops"
    )
    assert "repr-key-77" not in repr(client)


def test_user_agent_names_the_package(client):
    assert client.headers["User-Agent"].startswith(f"impilo_nb/{nb.__version__}")


# -- patients --------------------------------------------------------------------------------


def test_create_get_update_patch_round_trip(client):
    created = client.patients.create(make_patient(1))
    assert created.id == 1 and created.first_name == "First1"
    assert client.patients.get(created.id) == created

    replaced = client.patients.update(created.id, {"firstName": "Ana", "lastName": "Rivera"})
    assert replaced.email is None and replaced.address is None  # PUT replaces the whole record
    patched = client.patients.patch(created.id, {"email": "ana@example.org"})
    assert (patched.first_name, patched.email) == ("Ana", "ana@example.org")
    assert client.patients.get(created.id).email == "ana@example.org"


def test_create_accepts_a_patient_model_and_ignores_a_given_id(client):
    created = client.patients.create(nb.Patient(id=999, first_name="A", last_name="B"))
    assert created.id == 1


def test_invalid_patient_is_refused_before_any_request(client, sandbox):
    for bad in ({"firstName": "A"}, make_patient(dateOfBirth="1987-02-30"), make_patient(email="x@"), make_patient(sex="x")):
        with pytest.raises(nb.ValidationError):
            client.patients.create(bad)
    assert count_patients(sandbox) == 0


def test_wrong_key_is_401(sandbox):
    client = nb.ImpiloClient(base_url=sandbox.url, api_key="wrong")
    with pytest.raises(nb.AuthenticationError) as caught:
        client.patients.get(1)
    assert caught.value.status_code == 401 and caught.value.request_id.startswith("req_")


def test_unknown_patient_is_404(client):
    with pytest.raises(nb.NotFoundError) as caught:
        client.patients.get(12345)
    assert "12345" in caught.value.message


def test_duplicate_external_identifier_is_409(client):
    client.patients.create(make_patient(1, externalIdentifier="same"))
    with pytest.raises(nb.ConflictError) as caught:
        client.patients.create(make_patient(2, externalIdentifier="same"))
    assert "same" in caught.value.message
    assert caught.value.field_errors[0].field == "externalIdentifier"


def test_server_field_errors_reach_the_caller(client):
    with pytest.raises(nb.BadRequestError) as caught:
        client.request("POST", "/api/v3/patient", json={"firstName": "A", "email": "x@"})
    assert {fe.field for fe in caught.value.field_errors} == {"lastName", "email"}


@pytest.mark.parametrize("bad_id", [0, -1, "7", 1.5, True, None])
def test_bad_patient_ids_are_refused_locally(client, bad_id):
    with pytest.raises(nb.ValidationError):
        client.patients.get(bad_id)


def test_find_by_external_id(client):
    created = client.patients.create(make_patient(3))
    assert client.patients.find_by_external_id("ext-00003") == created
    assert client.patients.find_by_external_id("nobody") is None


def test_list_yields_every_patient_exactly_once_across_pages(client, sandbox):
    for n in range(1000):
        sandbox.store.create_patient(nb.Patient.model_validate(make_patient(n)).to_api())
    ids = [p.id for p in client.patients.list(size=250)]
    assert len(ids) == 1000 and len(set(ids)) == 1000
    frame = client.patients.frame()
    assert len(frame) == 1000 and frame["id"].is_unique


def test_list_filters_in_either_spelling(client):
    for n in range(5):
        client.patients.create(make_patient(n, enrolled=n % 2 == 0))
    assert [p.id for p in client.patients.list(enrolled=True)] == [1, 3, 5]
    assert [p.id for p in client.patients.list(externalIdentifier=["ext-00001", "ext-00002"])] == [2, 3]
    assert [p.id for p in client.patients.list(sort="patientId", sort_descending=True)][:2] == [5, 4]


def test_unknown_filter_is_refused_with_the_known_ones(client):
    with pytest.raises(nb.ValidationError) as caught:
        client.patients.list(nmae="x")
    assert "name" in str(caught.value) and "nmae" in str(caught.value)


def test_frame_columns_and_dtypes(client):
    client.patients.create(make_patient(1))
    frame = client.patients.frame()
    assert str(frame["id"].dtype) == "Int64"
    assert frame.loc[0, "address.city"] == "Springfield"
    assert str(frame["dateOfBirth"].dtype).startswith("datetime64")


# -- transport: retries, timeouts, connection errors ------------------------------------------


def test_server_down_is_a_connection_error():
    client = nb.ImpiloClient(base_url=f"http://127.0.0.1:{closed_port()}", api_key="k", max_retries=0)
    with pytest.raises(nb.APIConnectionError) as caught:
        client.patients.get(1)
    assert not isinstance(caught.value, nb.APITimeoutError)
    assert "Could not reach" in str(caught.value)


def test_refused_connection_is_known_not_to_have_reached_the_server():
    try:
        requests.post(f"http://127.0.0.1:{closed_port()}/", timeout=2)
    except requests.exceptions.RequestException as exc:
        assert _never_reached_server(exc)


def test_slow_server_is_a_timeout(sandbox):
    sandbox.inject_fault(status=None, delay=1.0)
    client = nb.ImpiloClient(base_url=sandbox.url, api_key=sandbox.api_key, timeout=0.2, max_retries=0)
    with pytest.raises(nb.APITimeoutError) as caught:
        client.patients.get(1)
    assert "0.2s" in str(caught.value)


def test_503_then_success_is_retried(client, sandbox):
    created = client.patients.create(make_patient())
    sandbox.inject_fault(503, times=2, retry_after=0)
    response = client.request("GET", f"/api/v3/patient/{created.id}")
    assert response.status_code == 200 and nb.transport.attempts(response) == 3


def test_retries_give_up_after_max_retries(client, sandbox):
    sandbox.inject_fault(503, times=5, retry_after=0)
    with pytest.raises(nb.InternalServerError) as caught:
        client.patients.list().__next__()
    assert caught.value.attempts == client.max_retries + 1


def test_post_is_retried_on_503_and_creates_once(client, sandbox):
    sandbox.inject_fault(503, retry_after=0)
    client.patients.create(make_patient())
    assert count_patients(sandbox) == 1


def test_post_is_not_retried_on_502(client, sandbox):
    # A gateway error may hide a request that reached the API: retrying could create twice.
    sandbox.inject_fault(502, times=2)
    with pytest.raises(nb.InternalServerError) as caught:
        client.patients.create(make_patient())
    assert caught.value.attempts == 1


def test_retry_after_is_honoured(client, sandbox):
    sandbox.inject_fault(429, retry_after=0.3)
    started = time.monotonic()
    client.patients.page()
    assert time.monotonic() - started >= 0.3


def test_a_429_pauses_every_thread_sharing_the_client(client, sandbox):
    import threading

    sandbox.inject_fault(429, retry_after=0.5, method="POST")
    done = {}

    def create():
        client.patients.create(make_patient(1))
        done["create"] = time.monotonic()

    worker = threading.Thread(target=create)
    worker.start()
    while client._paused_until == 0.0:  # until the 429 has been seen
        time.sleep(0.005)
    paused_until = client._paused_until
    client.patients.page()  # another thread's request: must wait for the pause to end
    assert time.monotonic() >= paused_until
    worker.join()
    assert done["create"] >= paused_until


def test_retry_after_beyond_the_cap_gives_up_at_once(client, sandbox):
    sandbox.inject_fault(429, retry_after=3600)
    with pytest.raises(nb.RateLimitError) as caught:
        client.patients.page()
    assert caught.value.attempts == 1


# -- webhooks ----------------------------------------------------------------------------------

HOOK = "http://127.0.0.1:9/hook"


def test_webhook_resource_round_trip(client):
    hook = client.webhooks.create(type="patient.updated", url=HOOK)
    assert list(client.webhooks.list()) == [hook] and client.webhooks.get(hook.id) == hook
    moved = client.webhooks.update_url(hook.id, HOOK + "2")
    assert moved.url == HOOK + "2" and moved.type == "patient.updated"
    with pytest.raises(nb.BadRequestError):
        client.webhooks.update_url(hook.id, HOOK + "2")
    client.webhooks.delete(hook.id)
    assert list(client.webhooks.list()) == []


def test_webhook_is_validated_before_sending(client, sandbox):
    with pytest.raises(nb.ValidationError) as caught:
        client.webhooks.create(type="patient.update", url="ftp://x")
    assert {fe.field for fe in caught.value.field_errors} == {"type", "url"}
    assert sandbox.store.list_webhooks() == []


def test_webhook_secret_resource(client):
    assert client.webhook_secret.get() is None
    created = client.webhook_secret.create("s3cret-value")
    assert "s3cret-value" not in repr(created) and "s3cret-value" not in str(created)
    assert client.webhook_secret.get().secret.get_secret_value() == "s3cret-value"
    with pytest.raises(nb.ConflictError):
        client.webhook_secret.create("other")
    client.webhook_secret.create("other", replace=True)
    assert client.webhook_secret.get().secret.get_secret_value() == "other"
    assert client.webhook_secret.delete() is True and client.webhook_secret.delete() is False


@pytest.mark.parametrize("bad", ["", "naïve", "two\nlines", None])
def test_webhook_secret_must_fit_a_header(client, bad):
    with pytest.raises(nb.ValidationError):
        client.webhook_secret.create(bad)


def test_logs_frame_types_and_filters(client, sandbox):
    client.webhooks.create(type="patient.created", url="http://192.0.2.1/x")  # blocked, so logged as failed
    for n in range(300):  # more than one page of logs
        sandbox.dispatcher.publish("patient.created", {"id": n})
    assert sandbox.wait_for_deliveries(timeout=30)
    logs = client.webhooks.logs()
    assert len(logs) == 300 and logs["id"].is_unique
    assert str(logs["createTimestamp"].dtype) == "datetime64[ns, UTC]" and str(logs["retryAttempts"].dtype) == "Int64"
    assert client.webhooks.logs(webhook_type="patient.updated").empty
    assert len(client.webhooks.logs(retryAttemptsMax=0)) == 300


def test_a_success_status_with_a_web_page_is_an_unexpected_response():
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    from impilo_nb.serving import BackgroundServer

    portal = Starlette(routes=[Route("/api/v3/patient/1", lambda r: HTMLResponse("<html>Please log in</html>"))])
    with BackgroundServer(portal) as server:
        client = nb.ImpiloClient(base_url=server.url, api_key="k")
        with pytest.raises(nb.UnexpectedResponseError) as caught:
            client.patients.get(1)
    assert "Please log in" in str(caught.value) and "base URL" in str(caught.value)


# -- hostile servers (issue "Trust the wire") ------------------------------------------------

from tests.hostile import HostileServer, raw  # noqa: E402

KEY = "hostile-test-key-0123456789"
PATIENT = {"id": 7, "firstName": "Ana", "lastName": "Rivera"}


def hostile_client(server, **kwargs):
    return nb.ImpiloClient(base_url=server.url, api_key=KEY, max_retries=0, **kwargs)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_origin_is_not_followed_and_the_key_stays(status):
    with HostileServer(lambda seen: raw(200, PATIENT)) as elsewhere:
        with HostileServer(lambda seen: raw(status, headers={"Location": elsewhere.url + "/steal"})) as api:
            with pytest.raises(nb.RedirectError) as caught:
                hostile_client(api).patients.get(7)
    assert elsewhere.seen == []  # not even a request without the key
    assert caught.value.location == elsewhere.url + "/steal" and caught.value.status_code == status
    assert elsewhere.url in str(caught.value) and "another origin" in str(caught.value)


def test_a_redirect_to_another_port_or_scheme_is_another_origin():
    from impilo_nb.transport import origin

    assert origin("http://h:80/a") == origin("http://H/b")
    assert origin("http://h/a") != origin("https://h/a") and origin("http://h:1/") != origin("http://h:2/")


def test_a_redirect_within_the_origin_is_followed_for_reads():
    def respond(seen):
        return raw(302, headers={"Location": "/api/v3/patient/7?moved=1"}) if "moved" not in seen.path else raw(200, PATIENT)

    with HostileServer(respond) as api:
        assert hostile_client(api).patients.get(7).first_name == "Ana"
    assert [s.headers.get("Impilo-API-Key") for s in api.seen] == [KEY, KEY]


@pytest.mark.parametrize("status", [301, 302, 303])
@pytest.mark.parametrize("write", ["create", "update", "patch"])
def test_a_write_answered_with_a_redirect_is_never_reported_done(status, write):
    with HostileServer(lambda seen: raw(status, headers={"Location": "/api/v3/patient/7"})) as api:
        patients = hostile_client(api).patients
        call = {
            "create": lambda: patients.create(make_patient()),
            "update": lambda: patients.update(7, make_patient()),
            "patch": lambda: patients.patch(7, {"email": "a@example.org"}),
        }[write]
        with pytest.raises(nb.RedirectError) as caught:
            call()
    assert len(api.seen) == 1 and api.seen[0].method != "GET"  # not turned into a GET
    assert "/api/v3/patient/7" in str(caught.value) and "may or may not have happened" in str(caught.value)


def test_a_307_within_the_origin_repeats_the_write_with_its_body():
    def respond(seen):
        if seen.path == "/api/v3/patient":
            return raw(307, headers={"Location": "/api/v3/patient?again=1"})
        return raw(201, {**json.loads(seen.body), "id": 7})

    with HostileServer(respond) as api:
        created = hostile_client(api).patients.create(make_patient())
    assert created.id == 7 and [s.method for s in api.seen] == ["POST", "POST"] and api.seen[0].body == api.seen[1].body


def test_plain_http_to_another_machine_is_refused_unless_allowed():
    with pytest.raises(nb.ConfigurationError) as caught:
        nb.ImpiloClient(base_url="http://api.example.org", api_key=KEY)
    assert "unencrypted" in str(caught.value) and "allow_insecure_http=True" in str(caught.value)
    assert nb.ImpiloClient(base_url="http://api.example.org", api_key=KEY, allow_insecure_http=True)
    for fine in ("https://api.example.org", "http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1"):
        nb.ImpiloClient(base_url=fine, api_key=KEY)


@pytest.mark.parametrize(
    "body",
    [
        {"status": 401, "message": f"Invalid key {KEY}"},
        {"message": "bad", "fieldErrors": [{"field": "x", "message": f"key was {KEY}"}]},
        f"<html><title>Denied {KEY}</title></html>",
        f"key={KEY}",
    ],
)
def test_a_key_echoed_by_the_server_never_reaches_an_error_text(body):
    with HostileServer(lambda seen: raw(401, body)) as api, pytest.raises(nb.AuthenticationError) as caught:
        hostile_client(api).patients.get(7)
    error = caught.value
    for text in (str(error), repr(error), error.message, json.dumps(error.body), *map(str, error.field_errors)):
        assert KEY not in text
    assert "***" in str(error)


def test_a_webhook_secret_echoed_by_the_server_is_masked_too():
    secret = "whsec-echoed-0123456789"
    with HostileServer(lambda seen: raw(400, {"message": f"secret {secret} is weak"})) as api:
        with pytest.raises(nb.BadRequestError) as caught:
            hostile_client(api).webhook_secret.create(secret)
    assert secret not in str(caught.value) and secret not in repr(caught.value)


@pytest.mark.parametrize(
    ("key", "problem"),
    [(KEY + "\n", "whitespace at its start or end"), (" " + KEY, "whitespace at its start or end"),
     ("ab cd-123456", "whitespace inside"), ("abc\x00def1234", "control characters"), ("clé-0123456789", "non-ASCII")],
)
def test_an_unusable_key_is_refused_when_the_client_is_built(key, problem):
    with pytest.raises(nb.ConfigurationError) as caught:
        nb.ImpiloClient(base_url="http://127.0.0.1:1", api_key=key)
    assert problem in str(caught.value) and key.strip() not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None


@pytest.mark.parametrize("body", [b"", b"[]", b'"text"', b"42", b'{"unexpected": true}', b'{"id": "x", "firstName": 1}'])
def test_a_success_that_is_not_a_patient_is_an_unexpected_response(body):
    with HostileServer(lambda seen: raw(200, body, headers={"Content-Type": "application/json"})) as api:
        client = hostile_client(api)
        with pytest.raises(nb.UnexpectedResponseError) as read:
            client.patients.get(7)
        with pytest.raises(nb.UnexpectedResponseError) as created:
            client.patients.create(make_patient())
    assert not isinstance(read.value, nb.ValidationError)
    assert "not a Patient" in str(read.value) and "may have been created" in str(created.value)


def test_one_unreadable_record_never_breaks_a_listing(caplog):
    page = {"content": [PATIENT, "junk", {"id": "not-a-number"}, {**PATIENT, "id": 8}], "page": 1, "size": 4,
            "total": 4, "first": True, "last": True}
    with HostileServer(lambda seen: raw(200, page)) as api:
        listed = list(hostile_client(api).patients.list())
    assert [p.id for p in listed] == [7, 8]
    assert "skipped record 1" in caplog.text and "skipped record 2" in caplog.text


def test_a_page_of_the_wrong_shape_is_an_unexpected_response():
    with HostileServer(lambda seen: raw(200, [PATIENT])) as api, pytest.raises(nb.UnexpectedResponseError):
        list(hostile_client(api).patients.list())


def test_find_by_external_id_returns_only_an_exact_match():
    # A server that ignores the filter, or splits it on commas, must not open the wrong patient.
    everyone = {"content": [{**PATIENT, "externalIdentifier": "crm"}, {**PATIENT, "id": 8, "externalIdentifier": "CRM,1 "}],
                "page": 1, "size": 15, "total": 2, "first": True, "last": True}
    with HostileServer(lambda seen: raw(200, everyone)) as api:
        client = hostile_client(api)
        assert client.patients.find_by_external_id("crm,1") is None
        assert client.patients.find_by_external_id("crm").id == 7
    assert "externalIdentifier=crm%2C1" in api.seen[0].path


def test_an_empty_list_filter_matches_nobody_and_sends_nothing():
    with HostileServer(lambda seen: raw(200, {"content": [PATIENT], "page": 1, "size": 1, "total": 1, "first": True,
                                              "last": True})) as api:
        patients = hostile_client(api).patients
        assert list(patients.list(id=[])) == [] and patients.frame(external_identifier=[]).empty
    assert api.seen == []


@pytest.mark.parametrize("suffix", ["/api/v3", "/api/v3/", "/api", "/"])
def test_a_base_url_with_the_api_prefix_is_accepted(sandbox, suffix):
    client = nb.ImpiloClient(base_url=sandbox.url + suffix, api_key=sandbox.api_key)
    assert client.base_url == sandbox.url and client.patients.create(make_patient()).id == 1


def test_error_texts_read_well():
    with HostileServer(lambda seen: raw(401, {"message": "Invalid Impilo-API-Key."})) as api:
        with pytest.raises(nb.AuthenticationError) as unauthorised:
            hostile_client(api).patients.get(7)
    with HostileServer(lambda seen: raw(502, "<html><title>502 Bad Gateway</title></html>")) as api:
        with pytest.raises(nb.InternalServerError) as gateway:
            hostile_client(api).patients.get(7)
    assert ".." not in str(unauthorised.value) and "Invalid Impilo-API-Key. Check" in str(unauthorised.value)
    assert "502 502" not in str(gateway.value) and str(gateway.value).startswith("502 Bad Gateway")


@pytest.mark.parametrize("method", ["get", "create"])
def test_a_body_cut_short_says_the_server_was_reached(method):
    with HostileServer(lambda seen: raw(200, json.dumps(PATIENT)[:10], length=500)) as api:
        patients = hostile_client(api).patients
        with pytest.raises(nb.APIConnectionError) as caught:
            patients.get(7) if method == "get" else patients.create(make_patient())
    assert "Could not reach" not in str(caught.value) and "server answered" in str(caught.value)
    assert len(api.seen) == 1  # a cut-off write is never retried: it may have happened
    if method == "create":
        assert "may or may not have happened" in str(caught.value)


def test_an_unreadable_retry_after_does_not_fail_the_request():
    answers = iter([raw(503, headers={"Retry-After": "soon, maybe"}), raw(200, PATIENT)])
    with HostileServer(lambda seen: next(answers)) as api:
        client = nb.ImpiloClient(base_url=api.url, api_key=KEY, max_retries=1)
        assert client.patients.get(7).id == 7


# -- without a server (impilo_nb.testing) ------------------------------------------------------

from impilo_nb.testing import Reply, mock_session  # noqa: E402


def offline_client(handler=lambda request: Reply(500)):
    session = mock_session(handler)
    return nb.ImpiloClient(base_url="https://impilo.test", api_key=KEY, session=session), session.adapters["https://"]


def test_invalid_input_sends_nothing():
    client, adapter = offline_client()
    for call in (
        lambda: client.patients.create({"firstName": "A"}),
        lambda: client.patients.update(0, make_patient()),
        lambda: client.patients.patch(1, {"sex": "x"}),
        lambda: client.patients.list(colour="red"),
        lambda: client.patients.page(sort="age"),
        lambda: client.webhooks.create(type="patient.update", url="ftp://x"),
        lambda: client.webhook_secret.create("two\nlines"),
    ):
        with pytest.raises(nb.ValidationError):
            call()
    assert adapter.requests == []


def test_every_request_carries_the_key_and_names_the_package():
    client, adapter = offline_client(lambda request: Reply(200, json=PATIENT))
    client.patients.get(7)
    headers = adapter.requests[0].headers
    assert headers["Impilo-API-Key"] == KEY and headers["User-Agent"].startswith(f"impilo_nb/{nb.__version__}")


def test_list_follows_pages_until_the_last():
    def handler(request):
        number = int(request.path_url.split("page=")[1].split("&")[0])
        content = [{**PATIENT, "id": number * 10 + n} for n in range(2)]
        return Reply(200, json={"content": content, "page": number, "size": 2, "total": 6, "first": number == 1,
                                "last": number == 3})

    client, adapter = offline_client(handler)
    assert [p.id for p in client.patients.list(size=2)] == [10, 11, 20, 21, 30, 31]
    assert len(adapter.requests) == 3


def test_filters_are_sent_in_the_wire_spelling_with_lists_as_repeated_parameters():
    client, adapter = offline_client(lambda request: Reply(200, json={"content": [], "page": 1, "size": 15, "total": 0,
                                                                     "first": True, "last": True}))
    client.patients.page(external_identifier=["a,b", "c"], date_of_birth_min=__import__("datetime").date(1980, 1, 2),
                         archived=False)
    url = adapter.requests[0].path_url
    assert "externalIdentifier=a%2Cb&externalIdentifier=c" in url
    assert "dateOfBirthMin=1980-01-02" in url and "archived=false" in url


# -- found by an attack on the fixes above ------------------------------------------------------


@pytest.mark.parametrize("location", ["{other}\\\\@{api}/x", "http://127.0.0.1:99999/", "http://[::1/", "http://h:1:2/"])
def test_an_ambiguous_or_broken_location_is_never_followed(location):
    with HostileServer(lambda seen: raw(200, PATIENT)) as elsewhere:
        other = elsewhere.url.replace("127.0.0.1", "localhost")
        with HostileServer(lambda seen: raw(302, headers={"Location": location.format(other=other, api="127.0.0.1:1")})) as api:
            with pytest.raises(nb.UnexpectedResponseError):  # RedirectError, or a Location that is no URL
                hostile_client(api).patients.get(7)
    assert elsewhere.seen == []


def test_a_key_is_masked_however_the_server_encodes_or_cuts_it():
    import base64
    import re
    from urllib.parse import quote

    key = "sk/live+Key=0123456789-abcdefgh"
    lower_hex = re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(key, safe=""))
    echoes = [lower_hex, quote(key), base64.b64encode(key.encode()).decode(), "x" * 190 + key]
    for echo in echoes:
        with HostileServer(lambda seen, echo=echo: raw(200, f"<html>{echo}</html>")) as api:
            with pytest.raises(nb.UnexpectedResponseError) as caught:
                nb.ImpiloClient(base_url=api.url, api_key=key, max_retries=0).patients.get(7)
        assert key[:12] not in str(caught.value) and echo[-20:] not in str(caught.value), echo
    with HostileServer(lambda seen: raw(400, {"fieldErrors": [{"field": key, "message": "x"}]})) as api:
        with pytest.raises(nb.BadRequestError) as caught:
            nb.ImpiloClient(base_url=api.url, api_key=key, max_retries=0).patients.get(7)
    assert key not in repr(caught.value.field_errors)


def test_any_empty_collection_filter_matches_nobody():
    import numpy as np
    import pandas as pd

    with HostileServer(lambda seen: raw(200, {"content": [PATIENT], "page": 1, "size": 1, "total": 1, "first": True,
                                              "last": True})) as api:
        patients = hostile_client(api).patients
        for empty in (np.array([]), pd.Series([], dtype="Int64"), range(0), [None], pd.Series([pd.NA], dtype="Int64")):
            assert list(patients.list(id=empty)) == []
    assert api.seen == []


@pytest.mark.parametrize("body", [{**PATIENT, "id": 8}, {**PATIENT, "id": True}])
def test_a_record_for_another_id_is_not_the_answer(body):
    with HostileServer(lambda seen: raw(200, body)) as api:
        with pytest.raises(nb.UnexpectedResponseError, match="not the 7 asked for"):
            hostile_client(api).patients.get(7)


def test_json_nested_beyond_python_is_an_unexpected_response():
    with HostileServer(lambda seen: raw(200, "[" * 100_000 + "]" * 100_000, headers={"Content-Type": "application/json"})) as api:
        with pytest.raises(nb.UnexpectedResponseError):
            hostile_client(api).patients.get(7)


def test_an_answer_that_inflates_past_the_cap_is_refused_not_read_into_memory(monkeypatch):
    import gzip

    monkeypatch.setattr(nb._constants, "MAX_RESPONSE_BYTES", 1024 * 1024)
    bomb = gzip.compress(b"[" + b"0," * 2_000_000 + b"0]")  # 4 MB of JSON, 8 kB on the wire
    answer = raw(200, bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    with HostileServer(lambda seen: answer) as api, pytest.raises(nb.UnexpectedResponseError) as caught:
        hostile_client(api).patients.get(7)
    assert "larger than 1 MiB" in str(caught.value)


def test_an_answer_that_trickles_in_is_cut_off_although_every_read_is_quick():
    head = raw(200, b"", headers={"Content-Type": "application/json"}, length=10_000)
    pieces = [head] + [b" "] * 10_000  # one byte per gap, each read well within the timeout
    with HostileServer(lambda seen: pieces, gap=0.05) as api, pytest.raises(nb.APITimeoutError) as caught:
        hostile_client(api, timeout=0.3).patients.get(7)
    assert "still arriving" in str(caught.value)


# -- paging: walks that see every patient once; frame() reads what list() reads -------------------


def test_a_walk_sees_each_patient_once_although_one_leaves_the_filter_mid_walk(client):
    """Archiving a patient already read shrinks the total; the walk must still reach the end
    (the sandbox says ``last`` by whether a patient follows, not by total / size)."""
    for n in range(11):
        client.patients.create(make_patient(n, archived=False))
    walk = client.patients.list(size=5, archived=False)
    seen = [next(walk).id for _ in range(5)]
    client.patients.patch(seen[1], {"archived": True})
    seen += [p.id for p in walk]
    assert seen == list(range(1, 12))


def test_patients_created_during_a_walk_by_id_come_at_its_end(client):
    for n in range(6):
        client.patients.create(make_patient(n))
    walk = client.patients.list(size=2)
    seen = [next(walk).id for _ in range(3)]
    client.patients.create(make_patient(6))
    seen += [p.id for p in walk]
    assert seen == list(range(1, 8))


def test_frame_is_the_frame_of_what_list_reads(client, sandbox, caplog):
    import sqlite3

    from impilo_nb.frames import patient_frame

    for n in range(30):
        extra = {"site": {"id": n % 4 + 1, "name": "Clinic"}} if n % 3 else {"address": None, "email": None}
        client.patients.create(make_patient(n, enrolled=n % 2 == 0, sex=["female", "male", "other"][n % 3], **extra))
    with sqlite3.connect(sandbox.db_path) as db:  # records the API would refuse now, as an older server stored them
        for data in ('{"firstName": "A", "lastName": "B", "email": "", "sex": "FEMALE"}', '{"firstName": 5}', "[1]"):
            db.execute("INSERT INTO patients (data) VALUES (?)", (data,))
    skipped = []
    for filters in ({}, {"size": 7}, {"sort": "lastName", "sort_descending": True}, {"enrolled": True, "size": 4}):
        caplog.clear()
        expected = patient_frame(client.patients.list(**filters))
        listed = [r.getMessage() for r in caplog.records if "skipped record" in r.getMessage()]
        caplog.clear()
        pd.testing.assert_frame_equal(client.patients.frame(**filters), expected)
        skipped.append([r.getMessage() for r in caplog.records if "skipped record" in r.getMessage()])
        assert skipped[-1] == listed  # the same warnings, naming the same positions
    assert [len(warnings) for warnings in skipped] == [1, 1, 1, 0]  # firstName 5; the others are read


# -- paging against a server that does not page as documented ------------------------------------


def page_number(seen) -> int:
    return int(seen.path.split("page=")[1].split("&")[0])


def listings(client):
    """Every way the client walks pages: records, a frame, the delivery log."""
    return {"list": lambda: list(client.patients.list(size=2)), "frame": lambda: client.patients.frame(size=2),
            "logs": lambda: list(client.webhook_logs.list())}


@pytest.mark.parametrize("walk", ["list", "frame", "logs"])
def test_a_server_that_repeats_one_page_and_never_says_last_is_refused_not_looped(walk):
    record = PATIENT if walk != "logs" else {"id": 1, "webhookId": 1, "webhookType": "patient.created"}

    def respond(seen):
        return raw(200, {"content": [record], "page": page_number(seen), "size": 2, "total": 99, "first": False,
                         "last": False})

    with HostileServer(respond) as api, pytest.raises(nb.UnexpectedResponseError, match="same records as page 1"):
        listings(hostile_client(api))[walk]()
    assert len(api.seen) == 2


@pytest.mark.parametrize("walk", ["list", "frame"])
def test_a_server_numbering_pages_from_0_is_refused_not_half_read(walk):
    def respond(seen):
        number = page_number(seen) - 1  # its page 0 is what the API calls page 1
        return raw(200, {"content": [{**PATIENT, "id": number + 1}], "page": number, "size": 1, "total": 2,
                         "first": number == 0, "last": number == 1})

    with HostileServer(respond) as api, pytest.raises(nb.UnexpectedResponseError, match="answered page 0 when asked for page 1"):
        listings(hostile_client(api))[walk]()


@pytest.mark.parametrize("walk", ["list", "frame"])
def test_a_page_of_only_unreadable_records_does_not_end_the_listing(walk, caplog):
    pages = {1: [{**PATIENT, "id": 1}], 2: [{"firstName": 5}, {"id": "x"}], 3: [{**PATIENT, "id": 3}]}

    def respond(seen):
        number = page_number(seen)
        return raw(200, {"content": pages[number], "page": number, "size": 2, "total": 5, "first": number == 1,
                         "last": number == 3})

    with HostileServer(respond) as api:
        result = listings(hostile_client(api))[walk]()
    ids = [p.id for p in result] if walk == "list" else result["id"].tolist()
    assert ids == [1, 3] and len(api.seen) == 3
    assert sum("skipped record" in r.getMessage() for r in caplog.records) == 2


@pytest.mark.parametrize("size", [0, -1, 251, True, 2.5, "5", None])
def test_a_page_size_the_api_cannot_take_is_refused_before_any_request(size):
    with HostileServer(lambda seen: raw(500)) as api:
        patients = hostile_client(api).patients
        for call in (lambda: patients.list(size=size), lambda: patients.frame(size=size), lambda: patients.page(size=size)):
            with pytest.raises(nb.ValidationError, match="size"):
                call()
        with pytest.raises(nb.ValidationError, match="page"):
            patients.page(page=0)
    assert api.seen == []
