import json
import socket
import threading

import pytest
import requests

import impilo_nb as nb
from impilo_nb.receiver import MAX_BODY_BYTES

SECRET = "whsec-test-123"


@pytest.fixture
def log(tmp_path):
    return nb.EventLog(tmp_path / "events.db")


@pytest.fixture
def receiver(log):
    with nb.WebhookReceiver(log, secret=SECRET) as running:
        yield running


def post(receiver, payload=None, *, data=None, secret=SECRET, **kwargs):
    headers = {"Content-Type": "application/json", **({"Impilo-Webhook-Secret": secret} if secret else {})}
    body = data if data is not None else json.dumps(payload)
    return requests.post(receiver.url, data=body, headers=headers, timeout=5, **kwargs)


def event(event_id=1, type_="patient.created"):
    return {"id": event_id, "type": type_, "payload": {"id": 3, "firstName": "Ana"}}


def test_delivery_is_stored_before_the_answer(receiver, log):
    response = post(receiver, event())
    assert response.status_code == 200 and response.json() == {"received": True, "deliveryCount": 1}
    assert len(log) == 1  # no waiting: committed before the 2xx


@pytest.mark.parametrize("secret", [None, "wrong", SECRET + "x", ""])
def test_missing_or_wrong_secret_is_401_and_nothing_is_kept(receiver, log, secret):
    response = post(receiver, event(), secret=secret)
    assert response.status_code == 401
    assert len(log) == 0
    assert log.rejections()["status"].tolist() == [401]


def test_same_event_twice_is_one_row_counted_twice(receiver, log):
    post(receiver, event(9))
    assert post(receiver, event(9)).json()["deliveryCount"] == 2
    assert len(log) == 1 and log.frame()["delivery_count"].tolist() == [2]


@pytest.mark.parametrize(
    ("data", "status"),
    [("not json", 400), ("[1, 2]", 400), ('{"id": 1, "payload": {}}', 422), ("x" * (2 * 1024 * 1024), 413)],
)
def test_bad_bodies_get_4xx_and_the_receiver_keeps_serving(receiver, log, data, status):
    assert post(receiver, data=data).status_code == status
    assert post(receiver, event(1)).status_code == 200
    assert len(log) == 1


def test_oversize_body_without_content_length_is_refused(receiver, log):
    def chunks():  # chunked transfer: the size is only known while reading
        for _ in range(3):
            yield b"x" * (MAX_BODY_BYTES // 2)

    assert post(receiver, data=chunks()).status_code == 413
    assert len(log) == 0


def test_guide_envelope_is_accepted(receiver, log):
    assert post(receiver, {"event": "patient.updated", "data": {"id": "5", "name": "John"}}).status_code == 200
    assert log.frame()["type"].tolist() == ["patient.updated"]


def test_without_a_secret_any_sender_is_accepted(log):
    with nb.WebhookReceiver(log) as open_receiver:
        assert post(open_receiver, event(), secret=None).status_code == 200


def test_health_and_wrong_method(receiver):
    assert requests.get(receiver.url.replace("/webhooks/impilo", "/health"), timeout=5).json() == {"status": "ok", "events": 0}
    assert requests.get(receiver.url, timeout=5).status_code == 405


def test_restart_keeps_the_url_and_the_log(receiver, log):
    url = receiver.url
    receiver.stop()
    with pytest.raises(requests.ConnectionError):
        post(receiver, event(1))
    receiver.start()
    assert receiver.url == url and post(receiver, event(1)).status_code == 200


def test_concurrent_deliveries_are_all_kept(receiver, log):
    def send(start):
        session = requests.Session()
        for n in range(start, start + 50):
            session.post(receiver.url, json=event(n), headers={"Impilo-Webhook-Secret": SECRET}, timeout=5)

    threads = [threading.Thread(target=send, args=(i * 50,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(log) == 200


def test_secret_never_in_repr(receiver):
    assert SECRET not in repr(receiver) and "secret=required" in repr(receiver)


def test_binds_to_loopback_by_default(receiver):
    assert receiver.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("bad", ["", "naïve", "line\nbreak"])
def test_secret_must_fit_in_a_header(log, bad):
    with pytest.raises(nb.ConfigurationError):
        nb.WebhookReceiver(log, secret=bad)


def test_port_in_use_is_clear(log):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(nb.ConfigurationError):
            nb.WebhookReceiver(log, port=taken.getsockname()[1]).start()


def test_opens_a_log_from_a_path(tmp_path):
    with nb.WebhookReceiver(tmp_path / "new.db") as receiver:
        assert post(receiver, event(), secret=None).status_code == 200
        assert len(receiver.log) == 1
