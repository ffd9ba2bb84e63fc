import socket
import time

import pytest
import requests

import impilo_nb as nb
from impilo_nb.client import _never_reached_server
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


def test_user_agent_names_the_package(client):
    assert client._session.headers["User-Agent"].startswith(f"impilo_nb/{nb.__version__}")


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
    assert response.status_code == 200 and response.attempts == 3


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
    assert client.webhooks.list() == [hook] and client.webhooks.get(hook.id) == hook
    moved = client.webhooks.update_url(hook.id, HOOK + "2")
    assert moved.url == HOOK + "2" and moved.type == "patient.updated"
    with pytest.raises(nb.BadRequestError):
        client.webhooks.update_url(hook.id, HOOK + "2")
    client.webhooks.delete(hook.id)
    assert client.webhooks.list() == []


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
