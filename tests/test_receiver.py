import json
import socket
import threading

import pandas as pd
import pytest
import requests

import impilo_nb as nb
from impilo_nb._time import poll_until
from impilo_nb.eventlog.replay import STOPPED, Forwarder
from impilo_nb.receiver import MAX_BODY_BYTES
from tests.hostile import HostileServer, raw

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
    if not hasattr(log._store, "_db"):
        pytest.skip("a full disk is simulated with SQLite's max_page_count")
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
    def broken(event, **kwargs):
        raise RuntimeError(f"bug while holding {SECRET} and {kwargs['headers'].get('impilo-api-key')}")

    monkeypatch.setattr(log, "record", broken)
    response = post(receiver, event(1), headers={"Impilo-API-Key": "key-0123456789"})
    assert response.status_code == 500 and response.json()["error"].startswith("internal error in the webhook receiver")
    assert "Traceback" not in response.text and SECRET not in response.text
    logged = caplog.text + "".join(capfd.readouterr())
    assert "RuntimeError: bug while holding *** and ***" in logged
    assert SECRET not in logged and "key-0123456789" not in logged
    monkeypatch.undo()
    assert post(receiver, event(1)).status_code == 200


# -- forwarding each committed delivery to the customer's own handler (forward_to) --

#: Seconds before a wait gives up. Only stops a hung test: no outcome depends on speed.
HANG_GUARD = 60.0


def ok(seen):
    return raw(200, {"ok": True})


def forwards(log, count):
    """The log's forward attempts once there are ``count`` of them."""
    assert poll_until(lambda: len(log.attempts()) >= count, timeout=HANG_GUARD)
    attempts = log.attempts()
    assert set(attempts["kind"]) <= {"forward"}
    return attempts


def test_a_committed_delivery_is_forwarded_as_received_with_the_secret(log):
    data = b'{"type": "patient.created",  "id": 7, "payload": {"id": 3}}'
    with HostileServer(ok) as handler, nb.WebhookReceiver(log, secret=SECRET, forward_to=handler.url + "/mine") as receiver:
        assert post(receiver, data=data).status_code == 200
        attempts = forwards(log, 1)
    seen = handler.seen[0]
    assert (seen.path, seen.body, seen.headers["Impilo-Webhook-Secret"]) == ("/mine", data, SECRET)
    assert seen.headers["Content-Type"] == "application/json"
    row = attempts.iloc[0]
    assert (row["event_id"], row["status_code"], row["target"]) == (7, 200, handler.url + "/mine") and pd.isna(row["error"])


def test_no_secret_header_when_the_receiver_has_none(log):
    with HostileServer(ok) as handler, nb.WebhookReceiver(log, forward_to=handler.url) as receiver:
        post(receiver, event(1), secret=None)
        forwards(log, 1)
    assert "Impilo-Webhook-Secret" not in handler.seen[0].headers


def test_a_redelivery_is_forwarded_again_and_a_refused_one_never(log):
    with HostileServer(ok) as handler, nb.WebhookReceiver(log, secret=SECRET, forward_to=handler.url) as receiver:
        post(receiver, event(9))
        post(receiver, data="not json")
        post(receiver, event(10), secret="wrong")
        post(receiver, event(9))
        attempts = forwards(log, 2)
        receiver.stop()  # drains: nothing else can be on its way
    assert attempts["event_id"].tolist() == [9, 9] and len(handler.seen) == 2 and len(log.attempts()) == 2


def test_a_handler_that_is_down_loses_nothing_and_changes_no_answer(log):
    with HostileServer(ok) as gone:
        url = gone.url
    with nb.WebhookReceiver(log, secret=SECRET, forward_to=url) as receiver:
        assert [post(receiver, event(n)).status_code for n in range(3)] == [200, 200, 200]
        attempts = forwards(log, 3)
    assert len(log) == 3 and attempts["error"].tolist() == ["connection refused"] * 3
    assert attempts["status_code"].isna().all()


def test_a_stuck_handler_does_not_hold_up_the_answer(log):
    release = threading.Event()

    def stuck(seen):
        release.wait(HANG_GUARD)
        return raw(500)

    with HostileServer(stuck) as handler, nb.WebhookReceiver(log, secret=SECRET, forward_to=handler.url) as receiver:
        try:
            assert post(receiver, event(1)).status_code == 200  # answered while the handler holds the forward
            assert post(receiver, event(2)).status_code == 200
            assert not release.is_set() and len(log) == 2
        finally:
            release.set()
        attempts = forwards(log, 2)
    assert attempts["status_code"].tolist() == [500, 500] and attempts["error"].tolist() == ["HTTP 500"] * 2


def stuck_forwarder(log, **settings):
    """A started Forwarder whose handler holds each request until ``release`` is set."""
    release = threading.Event()

    def respond(seen):
        release.wait(HANG_GUARD)
        return raw(200)

    handler = HostileServer(respond).__enter__()
    forwarder = Forwarder(log, handler.url, **settings)
    forwarder.start()
    return forwarder, handler, release


def test_a_full_queue_records_the_forward_it_skips(log):
    forwarder, handler, release = stuck_forwarder(log, queue_size=1)
    try:
        forwarder.submit(1, json.dumps(event(1)).encode())
        assert poll_until(lambda: handler.seen, timeout=HANG_GUARD)  # in flight, held by the handler
        forwarder.submit(2, json.dumps(event(2)).encode())  # waits in the queue
        forwarder.submit(3, json.dumps(event(3)).encode())  # no room
        skipped = log.attempts()
        assert skipped["event_id"].tolist() == [3] and skipped["error"][0].startswith("skipped: the forward queue was full")
    finally:
        release.set()
        forwarder.stop()
        handler.__exit__()
    attempts = log.attempts().set_index("event_id")
    assert attempts.loc[1, "status_code"] == 200 and attempts.loc[2, "status_code"] == 200 and len(attempts) == 3


def test_stop_records_what_it_could_not_send(log):
    forwarder, handler, release = stuck_forwarder(log, drain_s=0, timeout=0.5)
    try:
        for n in (1, 2, 3):
            forwarder.submit(n, json.dumps(event(n)).encode())
            assert poll_until(lambda: handler.seen, timeout=HANG_GUARD)  # 1 in flight, then 2 and 3 queued
        forwarder.stop()  # the one in flight times out; the queued two are not sent
        forwarder.submit(4, json.dumps(event(4)).encode())  # after the stop
    finally:
        release.set()
        handler.__exit__()
    attempts = log.attempts().set_index("event_id")
    assert attempts.loc[1, "error"] == "timeout: no answer within 0.5 s"
    assert attempts.loc[[2, 3, 4], "error"].tolist() == [STOPPED] * 3 and len(handler.seen) == 1


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("https://example.org/hook", "allow_external=True"),
        ("ftp://127.0.0.1/hook", "http:// or https://"),
        ("http://u:p@127.0.0.1:9/hook", "credentials"),
        (42, "as text"),
    ],
)
def test_forward_to_must_be_a_handler_on_this_machine(log, target, says):
    with pytest.raises(nb.ConfigurationError) as caught:
        nb.WebhookReceiver(log, forward_to=target)
    assert says in str(caught.value) and str(caught.value).startswith("forward_to: ")


def test_allow_external_forward_lifts_the_loopback_rule(log):
    receiver = nb.WebhookReceiver(log, forward_to="https://example.org/hook", allow_external_forward=True)
    assert "forward_to='https://example.org/hook'" in repr(receiver)  # built, never started: nothing is sent


def test_forwarding_to_itself_is_refused(log):
    with nb.WebhookReceiver(log) as first:
        port = first._server.port
    receiver = nb.WebhookReceiver(log, port=port, forward_to=f"http://127.0.0.1:{port}/webhooks/impilo/")
    with pytest.raises(nb.ConfigurationError, match="this receiver's own URL"):
        receiver.start()
    assert not receiver.running


@pytest.mark.parametrize("spelling", ["http://localhost:{port}/webhooks/impilo", "http://127.0.0.1:{port}/webhooks/%69mpilo"])
def test_forwarding_to_itself_by_another_spelling_stops_at_the_first_return(log, spelling):
    """The start-up check compares URLs; another name for the same endpoint gets past it. The
    forward that comes back is refused (508) instead of being stored and forwarded again, for ever."""
    with nb.WebhookReceiver(log) as first:
        port = first._server.port
    with nb.WebhookReceiver(log, port=port, forward_to=spelling.format(port=port)) as receiver:
        assert post(receiver, event(1), secret=None).status_code == 200
        forwards(log, 1)
        receiver.stop()  # drains: any further forward would be recorded by now
    attempts = log.attempts()
    assert attempts["status_code"].tolist() == [508] and attempts["error"].tolist() == ["HTTP 508"]
    assert log.frame()["delivery_count"].tolist() == [1]
    assert log.rejections()["status"].tolist() == [508]


def test_the_handler_killed_mid_burst_loses_no_event_and_no_acknowledgement(log):
    """Acceptance: the sandbox delivers a burst to a forwarding receiver; the handler dies halfway."""
    held = threading.Event()
    release = threading.Event()

    def respond(seen):
        if len(handler.seen) == 50:  # the 50th forward: hold it while the handler is killed
            held.set()
            release.wait(HANG_GUARD)
        return raw(200)

    handler = HostileServer(respond).__enter__()
    with nb.Sandbox(time_scale=1000) as sandbox, nb.WebhookReceiver(log, secret=SECRET, forward_to=handler.url) as receiver:
        api = nb.ImpiloClient(base_url=sandbox.url, api_key=sandbox.api_key, timeout=HANG_GUARD)
        api.webhook_secret.create(SECRET)
        api.webhooks.create(type="reading.weight", url=receiver.url)
        emitted = [sandbox.emit("reading.weight", {"id": n, "weight": 70}) for n in range(100)]
        assert held.wait(HANG_GUARD)
        handler.__exit__()  # killed: no more connections
        release.set()
        emitted += [sandbox.emit("reading.weight", {"id": n, "weight": 70}) for n in range(100, 200)]
        assert sandbox.wait_for_deliveries(timeout=HANG_GUARD)
        deliveries = api.webhooks.logs()
        attempts = forwards(log, 200)
    assert sorted(log.frame()["event_id"]) == sorted(emitted)  # 0 events lost from the log
    assert len(deliveries) == 200 and set(deliveries["status"]) == {"delivered"}  # every delivery acknowledged
    assert set(deliveries["lastResponseStatus"]) == {200} and set(deliveries["retryAttempts"]) == {0}
    assert sorted(attempts["event_id"]) == sorted(emitted)  # every forward recorded, none silently dropped
    assert (attempts["status_code"] == 200).sum() >= 50 and (attempts["error"] == "connection refused").sum() >= 100


def test_the_cli_takes_forward_to_and_refuses_one_off_this_machine(tmp_path, capsys):
    from impilo_nb.__main__ import build_parser, main

    args = build_parser().parse_args(["receiver", "--db", "x.db", "--forward-to", "http://127.0.0.1:9000/hook"])
    assert args.forward_to == "http://127.0.0.1:9000/hook"
    assert main(["receiver", "--db", str(tmp_path / "e.db"), "--port", "0", "--forward-to", "https://example.org/hook"]) == 2
    assert capsys.readouterr().err.startswith("error: forward_to: 'https://example.org/hook' is not on this machine")
