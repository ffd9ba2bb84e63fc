import json
import socket
import threading

import pandas as pd
import pytest
import requests

import impilo_nb as nb
from impilo_nb.receiver import MAX_BODY_BYTES

SECRET = "whsec-test-123"


@pytest.fixture
def log(log_target):
    return nb.EventLog(log_target)


@pytest.fixture
def receiver(log):
    with nb.WebhookReceiver(log, secret=SECRET) as running:
        yield running


def post(receiver, payload=None, *, data=None, secret=SECRET, headers=None, **kwargs):
    headers = {"Content-Type": "application/json", **({"Impilo-Webhook-Secret": secret} if secret else {}), **(headers or {})}
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


# -- bad input is a 4xx, a storage failure a 503, never a traceback (issue "Trust the wire") --


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"[" * 5000 + b"]" * 5000, "levels deep"),
        (b'{"id": 1, "type": "x.y", "payload": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3001, "levels deep"),
        (b'{"id": 1, "type": "\\ud800"}', "lone surrogate (invalid Unicode) at type"),
        (b'{"id": "\\ud800", "type": "x.y"}', "lone surrogate (invalid Unicode) at id"),
        (b'{"id": 1, "type": "x.y", "payload": {"\\udfff": "v"}}', "lone surrogate (invalid Unicode) at payload["),
        (b'{"id": 1, "type": "x.y", "payload": {"name": "\\udfff"}}', "lone surrogate (invalid Unicode) at payload.name"),
    ],
    ids=["deep lists", "deep payload", "surrogate type", "surrogate id", "surrogate key", "surrogate value"],
)
def test_hostile_bodies_get_400_naming_the_problem_and_are_counted(receiver, log, data, says):
    response = post(receiver, data=data)
    assert response.status_code == 400 and says in response.json()["error"]
    assert says in log.rejections()["reason"].iloc[-1]
    assert post(receiver, event(1)).status_code == 200 and len(log) == 1


@pytest.mark.parametrize("big", [2**70, -(2**70), 2**64])
def test_ids_beyond_64_bits_are_stored_not_a_server_error(receiver, log, big):
    response = post(receiver, {"id": big, "type": "patient.updated", "payload": {"id": big, "n": big}})
    assert response.status_code == 200 and response.json()["deliveryCount"] == 1
    row = log.frame().iloc[0]
    assert pd.isna(row["resource_id"]) and row["payload.n"] == big
    assert post(receiver, {"id": big, "type": "patient.updated", "payload": {}}).json()["deliveryCount"] == 2


def test_a_storage_failure_is_503_so_the_sender_retries(receiver, log):
    assert post(receiver, event(1)).status_code == 200
    # A real SQLITE_FULL: the file may not grow past its current pages, as on a full disk.
    (pages,) = log._store._db.execute("PRAGMA page_count").fetchone()
    log._store._db.execute(f"PRAGMA max_page_count = {pages}")
    response = post(receiver, {"id": 2, "type": "x.y", "payload": {"note": "x" * 100_000}})
    assert response.status_code == 503 and response.headers["Retry-After"].isdigit()
    assert "retry later" in response.json()["error"] and "Traceback" not in response.text
    log._store._db.execute("PRAGMA max_page_count = 1073741823")  # space again: the retry lands
    assert post(receiver, {"id": 2, "type": "x.y", "payload": {"note": "x" * 100_000}}).status_code == 200
    assert len(log) == 2


def test_an_unexpected_error_is_500_without_traceback_or_secret(receiver, log, monkeypatch, caplog, capfd):
    def broken(body, **kwargs):
        raise RuntimeError(f"bug while holding {SECRET} and {kwargs['headers'].get('impilo-api-key')}")

    monkeypatch.setattr(log, "record_body", broken)
    response = post(receiver, event(1), headers={"Impilo-API-Key": "key-0123456789"})
    assert response.status_code == 500 and response.json()["error"].startswith("internal error in the webhook receiver")
    assert "Traceback" not in response.text and SECRET not in response.text
    logged = caplog.text + "".join(capfd.readouterr())
    assert "RuntimeError: bug while holding *** and ***" in logged
    assert SECRET not in logged and "key-0123456789" not in logged
    monkeypatch.undo()
    assert post(receiver, event(1)).status_code == 200
