"""Webhook delivery from the sandbox to real receivers on loopback."""

import threading

import anyio
import pandas as pd
import pytest
import requests
from starlette.applications import Starlette
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

import impilo_nb as nb
from impilo_nb._time import poll_until
from impilo_nb.sandbox.delivery import BLOCKED, RETRY_DELAYS, Dispatcher, is_loopback_url
from impilo_nb.sandbox.store import DeliveryQuery, SandboxStore
from impilo_nb.serving import BackgroundServer
from tests.conftest import FAST_TIME_SCALE, HANG_GUARD

SCALE = FAST_TIME_SCALE  # the fast_sandbox's: retries after 0.18 s, 0.36 s, 0.72 s
HELD = 1000.0  # retries 10 days away and more: none fires by itself; the test calls retry_now()


@pytest.fixture
def held_sandbox():
    with nb.Sandbox(time_scale=HELD) as sandbox:
        yield sandbox


@pytest.fixture
def held_api(held_sandbox):
    return nb.ImpiloClient(base_url=held_sandbox.url, api_key=held_sandbox.api_key, timeout=HANG_GUARD)


@pytest.fixture
def log(tmp_path):
    return nb.EventLog(tmp_path / "events.db")


def newest(api, column):
    """A scalar column of the newest delivery-log entry; None while missing (not yet attempted)."""
    logs = api.webhooks.logs()
    value = logs.iloc[0][column] if len(logs) else None
    return None if pd.isna(value) else value


def wait_until(condition, timeout: float = HANG_GUARD) -> bool:
    return poll_until(condition, timeout=timeout)


class Scripted:
    """A receiver answering a scripted list of statuses (then 200), recording what it got."""

    def __init__(self, statuses=(), *, hold: threading.Event | None = None, redirect=False):
        self.statuses = list(statuses)
        self.hold = hold
        self.redirect = redirect
        self.bodies, self.headers = [], []

        async def hook(request):
            self.bodies.append(await request.json())
            self.headers.append(dict(request.headers))
            if self.hold is not None:
                await _wait_event(self.hold)
            if self.redirect:
                return RedirectResponse("/elsewhere", 307)
            status = self.statuses.pop(0) if self.statuses else 200
            return JSONResponse({}, status)

        self.server = BackgroundServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))

    def __enter__(self):
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.port}/hook"
        return self

    def __exit__(self, *exc):
        if self.hold is not None:
            self.hold.set()
        self.server.stop()


async def _wait_event(event):
    await anyio.to_thread.run_sync(event.wait)


def test_create_then_update_gives_exactly_two_rows(api, fast_sandbox, log):
    # Latency (p50 ~5 ms, p99 ~10 ms) is measured in bench/webhooks.py, not asserted here.
    with nb.WebhookReceiver(log) as receiver:
        api.webhooks.create(type="patient.created", url=receiver.url)
        api.webhooks.create(type="patient.updated", url=receiver.url)
        patient = api.patients.create({"firstName": "Ana", "lastName": "Rivera"})
        api.patients.patch(patient.id, {"email": "ana@example.org"})
        assert log.wait_for(2, timeout=HANG_GUARD)
        assert fast_sandbox.wait_for_deliveries(timeout=HANG_GUARD)
        frame = log.frame().sort_values("event_id")  # deliveries run concurrently: no order promised
    assert len(frame) == 2
    assert frame["type"].tolist() == ["patient.created", "patient.updated"]
    assert frame["payload.id"].tolist() == [patient.id, patient.id] == frame["resource_id"].tolist()
    assert frame["payload.email"].tolist()[1] == "ana@example.org"
    assert str(frame["received_at"].dtype) == "datetime64[ns, UTC]"


def test_an_update_that_changes_nothing_sends_nothing(api, fast_sandbox):
    with Scripted() as hook:
        api.webhooks.create(type="patient.updated", url=hook.url)
        patient = api.patients.create({"firstName": "A", "lastName": "B"})
        api.patients.update(patient.id, patient)
        api.patients.patch(patient.id, {"firstName": "A"})
        assert fast_sandbox.wait_for_deliveries(timeout=HANG_GUARD)
        assert hook.bodies == []


def test_receiver_down_at_first_attempt_gets_the_event_on_a_retry(held_api, held_sandbox, log):
    api = held_api
    receiver = nb.WebhookReceiver(log).start()
    api.webhooks.create(type="patient.created", url=receiver.url)
    receiver.stop()
    api.patients.create({"firstName": "A", "lastName": "B"})
    assert wait_until(lambda: newest(api, "lastError"))
    failed = api.webhooks.logs().iloc[0]
    assert (failed["status"], failed["retryAttempts"], failed["lastError"]) == ("pending", 0, "connection refused")
    receiver.start()
    assert held_sandbox.retry_now() == 1  # the retry happens now, with the receiver surely back
    assert log.wait_for(1, timeout=HANG_GUARD)
    receiver.stop()
    assert wait_until(lambda: newest(api, "status") == "delivered")
    entry = api.webhooks.logs().iloc[0]
    assert entry["retryAttempts"] == 1 and entry["lastResponseStatus"] == 200
    assert [a["error"] for a in entry["attempts"]] == ["connection refused", None]
    assert pd.notna(entry["lastRetryTimestamp"])


def test_four_failed_attempts_on_the_documented_schedule_then_give_up(api, fast_sandbox):
    with Scripted([500, 503, 502, 500]) as hook:
        api.webhooks.create(type="patient.created", url=hook.url)
        api.patients.create({"firstName": "A", "lastName": "B"})
        assert wait_until(lambda: newest(api, "status") == "failed")
        entry = api.webhooks.logs().iloc[0]
    assert entry["retryAttempts"] == 3 and entry["lastResponseStatus"] == 500 and entry["lastError"] == "HTTP 500"
    times = [pd.Timestamp(a["timestamp"]) for a in entry["attempts"]]
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(times, times[1:], strict=False)]
    for gap, delay in zip(gaps, RETRY_DELAYS, strict=True):
        assert gap >= delay * SCALE * 0.99  # never early
    assert len(hook.bodies) == 4 and len({b["id"] for b in hook.bodies}) == 1  # same event id every time


def test_envelope_and_secret_header(api, fast_sandbox):
    with Scripted() as hook:
        api.webhook_secret.create("shh-123")
        api.webhooks.create(type="patient.created", url=hook.url)
        patient = api.patients.create({"firstName": "A", "lastName": "B"})
        assert wait_until(lambda: hook.bodies)
    body, headers = hook.bodies[0], hook.headers[0]
    assert set(body) == {"id", "type", "payload"} and body["type"] == "patient.created"
    assert body["payload"]["id"] == patient.id and body["payload"]["firstName"] == "A"
    assert headers["impilo-webhook-secret"] == "shh-123" and headers["content-type"] == "application/json"


def test_no_secret_header_when_none_is_set(api):
    with Scripted() as hook:
        api.webhooks.create(type="patient.created", url=hook.url)
        api.patients.create({"firstName": "A", "lastName": "B"})
        assert wait_until(lambda: hook.headers)
    assert "impilo-webhook-secret" not in hook.headers[0]


def test_a_redirect_is_a_failure(api):
    with Scripted(redirect=True) as hook:
        api.webhooks.create(type="patient.created", url=hook.url)
        api.patients.create({"firstName": "A", "lastName": "B"})
        assert wait_until(lambda: newest(api, "lastResponseStatus") == 307)


def test_delivery_never_blocks_the_api_request(api):
    hold = threading.Event()
    with Scripted(hold=hold) as hook:
        api.webhooks.create(type="patient.created", url=hook.url)
        api.patients.create({"firstName": "A", "lastName": "B"})  # returns while the receiver is stuck
        assert wait_until(lambda: hook.bodies)
        assert not hold.is_set()
        api.patients.create({"firstName": "C", "lastName": "D"})
        hold.set()


def test_slow_receiver_times_out(tmp_path):
    store = SandboxStore(str(tmp_path / "s.db"))
    dispatcher = Dispatcher(store, time_scale=1000, timeout=0.2)  # no retry within the test
    hold = threading.Event()
    with Scripted(hold=hold) as hook:
        store.create_webhook("patient.created", hook.url)
        dispatcher.start()
        dispatcher.publish("patient.created", {"id": 1})
        assert wait_until(lambda: store.list_deliveries(DeliveryQuery(), page=1, size=1)[0][0]["attempts"])
        hold.set()
    dispatcher.stop()
    entry = store.list_deliveries(DeliveryQuery(), page=1, size=1)[0][0]
    assert entry["lastError"].startswith("timeout") and entry["status"] == "pending"


def only_entry(store):
    return store.list_deliveries(DeliveryQuery(), page=1, size=1)[0][0]


def test_retry_now_sends_scheduled_retries_at_once(tmp_path):
    store = SandboxStore(str(tmp_path / "s.db"))
    dispatcher = Dispatcher(store, time_scale=HELD)
    try:
        with Scripted([503]) as hook:
            store.create_webhook("patient.created", hook.url)
            dispatcher.start()
            assert dispatcher.retry_now() == 0  # nothing scheduled
            dispatcher.publish("patient.created", {"id": 1})
            assert wait_until(lambda: dispatcher.pending_now() == 0 and only_entry(store)["lastError"])
            assert (only_entry(store)["status"], len(hook.bodies)) == ("pending", 1)  # the retry waits
            assert dispatcher.retry_now() == 1
            assert wait_until(lambda: only_entry(store)["status"] == "delivered")
            assert dispatcher.retry_now() == 0  # delivered: nothing left to retry
        entry = only_entry(store)
    finally:
        dispatcher.stop()
    assert entry["retryAttempts"] == 1 and [a["error"] for a in entry["attempts"]] == ["HTTP 503", None]
    assert len(hook.bodies) == 2 and hook.bodies[0] == hook.bodies[1]  # the same event, resent


def test_retry_now_during_an_attempt_retries_it_at_once_if_it_fails(tmp_path):
    store = SandboxStore(str(tmp_path / "s.db"))
    dispatcher = Dispatcher(store, time_scale=HELD)
    hold = threading.Event()
    try:
        with Scripted([500], hold=hold) as hook:
            store.create_webhook("patient.created", hook.url)
            dispatcher.start()
            dispatcher.publish("patient.created", {"id": 1})
            assert wait_until(lambda: hook.bodies)  # the first attempt is under way, held by the receiver
            assert dispatcher.retry_now() == 1
            hold.set()  # the attempt fails (500) after the call: it is retried at once all the same
            assert wait_until(lambda: only_entry(store)["status"] == "delivered")
        entry = only_entry(store)
    finally:
        dispatcher.stop()
    assert entry["retryAttempts"] == 1 and [a["error"] for a in entry["attempts"]] == ["HTTP 500", None]


def test_non_loopback_urls_are_kept_but_never_contacted(api, fast_sandbox):
    api.webhooks.create(type="patient.created", url="http://192.0.2.10/hook")  # TEST-NET-1
    api.patients.create({"firstName": "A", "lastName": "B"})
    assert wait_until(lambda: newest(api, "status") == "failed")
    entry = api.webhooks.logs().iloc[0]
    assert entry["lastError"] == BLOCKED and pd.isna(entry["lastResponseStatus"])


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8/x", True),
        ("http://127.9.9.9/x", True),
        ("http://localhost/x", True),
        ("http://[::1]:80/", True),
        ("http://10.0.0.1/", False),
        ("https://example.org/", False),
        ("http://localhost.evil.org/", False),
    ],
)
def test_is_loopback_url(url, loopback):
    assert is_loopback_url(url) is loopback


def test_emit_sends_other_event_types(fast_sandbox, api, log):
    with nb.WebhookReceiver(log) as receiver:
        api.webhooks.create(type="reading.weight", url=receiver.url)
        event_id = fast_sandbox.emit("reading.weight", {"id": 77, "weight": 71.5})
        assert log.wait_for(1, timeout=HANG_GUARD)
    row = log.frame().iloc[0]
    assert (row["event_id"], row["type"], row["payload.weight"]) == (event_id, "reading.weight", 71.5)
    with pytest.raises(nb.ValidationError) as caught:
        fast_sandbox.emit("reading.unknown", {})
    assert caught.value.field_errors[0].field == "event_type" and "reading.weight" in str(caught.value)


def test_pending_retries_survive_a_sandbox_restart(tmp_path, log):
    db = tmp_path / "sandbox.db"
    receiver = nb.WebhookReceiver(log)
    receiver.start()
    receiver.stop()  # a URL that refuses, for now
    with nb.Sandbox(db_path=db, time_scale=0.002) as first:  # retry due 1.8 s after the failure
        api = nb.ImpiloClient(first.url, first.api_key, timeout=HANG_GUARD)
        api.webhooks.create(type="patient.created", url=receiver.url)
        api.patients.create({"firstName": "A", "lastName": "B"})
        assert wait_until(lambda: newest(api, "lastError") == "connection refused")
    receiver.start()
    with nb.Sandbox(db_path=db, time_scale=0.002):  # the stored due time holds, whatever this one's scale
        assert log.wait_for(1, timeout=HANG_GUARD)
    receiver.stop()


def test_receiver_secret_mismatch_is_retried_not_lost(held_api, held_sandbox, log):
    api = held_api
    with nb.WebhookReceiver(log, secret="right") as receiver:
        api.webhook_secret.create("wrong")
        api.webhooks.create(type="patient.created", url=receiver.url)
        api.patients.create({"firstName": "A", "lastName": "B"})
        assert wait_until(lambda: newest(api, "lastResponseStatus") == 401)
        api.webhook_secret.create("right", replace=True)  # rotation applies to the retries
        assert held_sandbox.retry_now() == 1  # the retry happens now, after the rotation
        assert log.wait_for(1, timeout=HANG_GUARD)


def test_direct_post_to_the_api_is_not_affected(fast_sandbox):
    # Sanity: the dispatcher's own HTTP use leaves the API reachable and unauthenticated calls refused.
    assert requests.get(fast_sandbox.url + "/api/v3/webhook", timeout=HANG_GUARD).status_code == 401


def test_a_url_that_parsers_read_differently_is_not_loopback():
    from impilo_nb.sandbox.delivery import is_loopback_url

    assert not is_loopback_url("http://evil.example\\@127.0.0.1:9/hook")
    assert not is_loopback_url("http://[::1/hook") and is_loopback_url("http://[::1]:9/hook")
    with pytest.raises(nb.ValidationError):
        nb.Webhook(type="patient.created", url="http://localhost:9\\@127.0.0.1:1/hook")
