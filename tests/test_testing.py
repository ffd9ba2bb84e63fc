"""impilo_nb.testing: the client against a handler, no socket."""

import impilo_nb as nb
from impilo_nb.testing import Reply, mock_session


def test_a_handler_answers_the_client_and_every_request_is_kept():
    def handler(request):
        if request.path_url == "/api/v3/patient/7":
            return Reply(200, json={"id": 7, "firstName": "Ana", "lastName": "Rivera"})
        return Reply(404, json={"message": "No such patient."}, headers={"X-Request-Id": "req_9"})

    session = mock_session(handler)
    client = nb.ImpiloClient(base_url="https://impilo.test", api_key="test-key-123", session=session)
    assert client.patients.get(7).full_name == "Ana Rivera"
    try:
        client.patients.get(8)
    except nb.NotFoundError as exc:
        assert exc.request_id == "req_9" and exc.message == "No such patient."
    sent = session.adapters["https://"].requests
    assert [r.path_url for r in sent] == ["/api/v3/patient/7", "/api/v3/patient/8"]
    assert sent[0].headers["Impilo-API-Key"] == "test-key-123"


def test_raw_bodies_and_headers():
    session = mock_session(lambda request: Reply(200, body="<html>login</html>", headers={"Content-Type": "text/html"}))
    client = nb.ImpiloClient(base_url="https://impilo.test", api_key="test-key-123", session=session)
    try:
        client.patients.get(1)
    except nb.UnexpectedResponseError as exc:
        assert "login" in str(exc)
    else:
        raise AssertionError("a web page must not read as a patient")
