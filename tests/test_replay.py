"""Replaying stored deliveries to the customer's own handler: a real HTTP server on loopback."""

from __future__ import annotations

import json
import math
import threading

import pytest
import requests

import impilo_nb as nb
from impilo_nb.eventlog.replay import REPLAY_COLUMNS, UNKNOWN_EVENT, is_loopback_url, replay, target_problem
from tests.hostile import HostileServer, raw

SECRET = "whsec-replay-0123"


@pytest.fixture
def log(log_target):
    with nb.EventLog(log_target) as opened:
        yield opened


def body(n: int) -> bytes:
    """A delivery as a sender might format it: odd spacing, escapes and key order that any
    re-encoding would change, so only the stored bytes themselves compare equal."""
    text = '{ "type" :"reading.weight",  "id": N, "payload": {"id": N, "weight": 70.10, "note": "Jos\\u00e9 N"} }'
    return text.replace("N", str(n)).encode()


def ok(seen):
    return raw(200, {"ok": True})


def fill(log, count, start=1):
    for n in range(start, start + count):
        log.record_body(body(n))
    return list(range(start, start + count))


def test_a_thousand_events_each_sent_once_as_received_and_every_answer_recorded(log):
    ids = fill(log, 1000)
    with HostileServer(ok) as handler:
        url = handler.url + "/webhooks"
        results = replay(log, url, progress=False)
    assert list(results.columns) == REPLAY_COLUMNS and len(results) == 1000
    assert results["event_id"].tolist() == ids and set(results["status_code"]) == {200}
    assert results["error"].isna().all() and (results["latency_ms"] >= 0).all()
    assert [seen.body for seen in handler.seen] == [body(n) for n in ids]  # the bytes, in arrival order
    assert [json.loads(seen.body)["id"] for seen in handler.seen] == ids  # so each event id, once
    assert {seen.headers["Content-Type"] for seen in handler.seen} == {"application/json"}
    assert {seen.path for seen in handler.seen} == {"/webhooks"}
    assert not any("Impilo-Webhook-Secret" in seen.headers for seen in handler.seen)  # none given, none sent
    attempts = log.attempts()
    assert len(attempts) == 1000 and attempts["event_id"].tolist() == ids
    assert set(attempts["kind"]) == {"replay"} and set(attempts["target"]) == {url} and set(attempts["status_code"]) == {200}


def test_the_secret_goes_in_its_header_only_and_never_into_the_log(log):
    fill(log, 2)
    with HostileServer(ok) as handler:
        replay(log, handler.url, secret=SECRET)
    assert [seen.headers["Impilo-Webhook-Secret"] for seen in handler.seen] == [SECRET, SECRET]
    assert SECRET not in log.attempts().to_string()


def test_only_the_ids_asked_for_in_arrival_order_and_unknown_ids_reported(log):
    fill(log, 5)
    with HostileServer(ok) as handler:
        results = replay(log, handler.url, event_ids=[4, 2, 999, 2])
    assert [json.loads(seen.body)["id"] for seen in handler.seen] == [2, 4]  # arrival order, each once
    assert results["event_id"].tolist() == [2, 4, 999]
    unknown = results.iloc[2]
    assert unknown["error"] == UNKNOWN_EVENT and unknown.isna()[["status_code", "latency_ms"]].all()
    assert log.attempts()["event_id"].tolist() == [2, 4]  # nothing was attempted for 999


def test_a_failing_handler_gives_rows_never_an_exception(log):
    fill(log, 4)
    answers = iter([raw(500, "boom"), raw(307, headers={"Location": "/elsewhere"}), None, raw(503)])
    release = threading.Event()

    def respond(seen):
        answer = next(answers)
        if answer is None:  # the third: no answer before the client's timeout
            release.wait(30)
            return raw(200)
        return answer

    with HostileServer(respond) as handler:
        results = replay(log, handler.url + "/hook", timeout=0.3)
        release.set()
    assert results["status_code"].tolist()[:2] == [500, 307] and results["error"].tolist()[:2] == ["HTTP 500", "HTTP 307"]
    assert results["error"][2] == "timeout: no answer within 0.3 s"
    assert results["error"][3] == "HTTP 503"
    assert [seen.path for seen in handler.seen] == ["/hook"] * 4  # the redirect was not followed
    assert log.attempts()["error"].tolist() == results["error"].tolist()


def test_a_handler_that_is_down_is_a_row_per_event(log):
    fill(log, 3)
    with HostileServer(ok) as gone:
        url = gone.url
    results = replay(log, url)
    assert results["error"].tolist() == ["connection refused"] * 3 and results["status_code"].isna().all()
    assert len(log.attempts()) == 3


def test_an_empty_log_gives_an_empty_typed_frame(log):
    results = replay(log, "http://127.0.0.1:9/never")
    assert results.empty and list(results.columns) == REPLAY_COLUMNS
    assert str(results["event_id"].dtype) == "Int64" and str(results["status_code"].dtype) == "Int64"


def test_a_given_session_is_used_and_left_open(log):
    fill(log, 1)
    with HostileServer(ok) as handler, requests.Session() as session:
        session.headers["X-Trace"] = "t-1"
        replay(log, handler.url, session=session)
        replay(log, handler.url, session=session)  # still usable
    assert [seen.headers.get("X-Trace") for seen in handler.seen] == ["t-1", "t-1"]


def test_a_long_run_shows_progress_unless_told_not_to(log, capsys):
    fill(log, 3)
    with HostileServer(ok) as handler:
        replay(log, handler.url)
        assert "replaying" not in capsys.readouterr().err  # short: no bar by default
        replay(log, handler.url, progress=True)
        assert "replaying" in capsys.readouterr().err


def test_the_event_log_method_delegates(log):
    fill(log, 2)
    with HostileServer(ok) as handler:
        results = log.replay(handler.url, event_ids=[2], secret=SECRET)
    assert results["event_id"].tolist() == [2] and handler.seen[0].headers["Impilo-Webhook-Secret"] == SECRET


@pytest.mark.parametrize(
    ("kwargs", "field", "says"),
    [
        ({"url": "https://example.org/hook"}, "url", "allow_external=True"),
        ({"url": "http://10.1.2.3/hook"}, "url", "not on this machine"),
        ({"url": "ftp://127.0.0.1/hook"}, "url", "http:// or https://"),
        ({"url": "127.0.0.1:8000/hook"}, "url", "http:// or https://"),
        ({"url": "http://evil.example\\@127.0.0.1/"}, "url", "parsers agree"),
        ({"url": "http://user:pw@127.0.0.1:9/hook"}, "url", "credentials"),
        ({"url": None}, "url", "as text"),
        ({"timeout": 0}, "timeout", "positive number"),
        ({"timeout": math.nan}, "timeout", "positive number"),
        ({"timeout": "5"}, "timeout", "positive number"),
        ({"timeout": True}, "timeout", "positive number"),
        ({"event_ids": "123"}, "event_ids", "list of event ids"),
        ({"event_ids": 123}, "event_ids", "list of event ids"),
        ({"event_ids": [1, 2.5]}, "event_ids", "Item 1 is 2.5"),
        ({"event_ids": [True]}, "event_ids", "whole number"),
        ({"secret": ""}, "secret", "printable ASCII"),
        ({"secret": "line\nbreak"}, "secret", "printable ASCII"),
    ],
)
def test_unusable_arguments_say_what_and_send_nothing(log, kwargs, field, says):
    fill(log, 1)
    arguments = {"url": "http://127.0.0.1:9/hook", **kwargs}
    with pytest.raises(nb.ValidationError) as caught:
        replay(log, **arguments)
    assert caught.value.field_errors[0].field == field and says in str(caught.value)
    assert log.attempts().empty


def test_allow_external_lifts_only_the_loopback_rule():
    assert target_problem("https://example.org/hook", allow_external=True) is None
    assert "credentials" in target_problem("https://u:p@example.org/hook", allow_external=True)
    assert is_loopback_url("http://localhost:9/x") and not is_loopback_url("http://example.org/")


def test_a_handler_that_trickles_its_answer_holds_the_sender_no_longer_than_the_timeout(log):
    """The status came at once, then the answer comes a byte at a time: the sender drops it at
    the timeout instead of reading it to its end (which would hold replay, forwards and the
    sandbox's workers for as long as the handler likes)."""
    fill(log, 1)
    trickle = 400  # bytes, one per gap: far longer than the timeout to read them all
    sent = []

    def respond(seen):
        yield b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % trickle
        for _ in range(trickle):
            sent.append(1)
            yield b"x"

    handler = HostileServer(respond, gap=0.05)
    with handler:
        results = replay(log, handler.url, timeout=0.5, progress=False)
    assert results["status_code"].tolist() == [200] and results["error"].isna().all()
    assert len(sent) < trickle  # the sender hung up before the handler had sent it all
