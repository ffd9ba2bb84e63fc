"""SyncView driven as a person would: click its buttons, read what it shows.

Everything is real: a sandbox on loopback, a WebhookReceiver writing an EventLog, a small HTTP
handler on loopback for replays. The outage is real too: the receiver is stopped while
patients change, and the sandbox's retries (run fast with a small ``time_scale``) run out.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import impilo_nb as nb
from impilo_nb._time import poll_until
from impilo_nb.widgets import SyncView
from tests.conftest import HANG_GUARD, make_patient

SECRET = "sync-view-secret-0123456789"


@pytest.fixture
def log(tmp_path):
    with nb.EventLog(tmp_path / "events.db") as event_log:
        yield event_log


@pytest.fixture
def receiver(api, log):
    """A receiver for both patient events, registered with the sandbox."""
    running = nb.WebhookReceiver(log).start()
    for kind in ("patient.created", "patient.updated"):
        api.webhooks.create(type=kind, url=running.url)
    yield running
    running.stop()


@pytest.fixture
def in_sync(api, log, receiver):
    """Five patients, every event received: ``(api, log, receiver, patients)``."""
    patients = [api.patients.create(make_patient(n)) for n in range(1, 6)]
    assert log.wait_for(5, timeout=HANG_GUARD)
    return api, log, receiver, patients


def settled(api, log) -> bool:
    """No delivery still waiting for a retry: each one was received or ran out of retries."""
    return not (nb.sync.check(api, log).deliveries["status"] == "pending").any()


@pytest.fixture
def outage(in_sync):
    """The receiver was down while patients 1 and 2 changed and patient 6 was created, and
    their retries ran out; it is back up now."""
    api, log, receiver, patients = in_sync
    receiver.stop()
    api.patients.patch(patients[0].id, {"email": "moved@example.org"})
    api.patients.patch(patients[1].id, {"phoneNumber": "+1 555 999 0000"})
    api.patients.create(make_patient(6))
    assert poll_until(lambda: settled(api, log), timeout=HANG_GUARD, interval=0.1)
    receiver.start()
    return api, log, receiver, patients


class Handler:
    """The customer's handler on loopback: records each body and secret header, answers 200.

    ``during`` runs inside each request, while the sender waits for the answer.
    """

    def __init__(self, during=None) -> None:
        self.bodies: list[dict] = []
        self.secrets: list[str | None] = []
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.bodies.append(json.loads(body))
                owner.secrets.append(self.headers.get("Impilo-Webhook-Secret"))
                if during is not None:
                    during()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # quiet test output
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def handler():
    running = Handler()
    yield running
    running.close()


def everything_shown(view: SyncView) -> str:
    """All the text a person can see in the view, HTML included."""
    parts = (view.verdict, view.counts, view.status, view.stale, view.missing, view.deliveries, view.replay_result)
    return "".join(part.value for part in parts) + repr(view.events.options) + view.handler_url.value


# -- what it shows ---------------------------------------------------------------------------


def test_in_sync_says_so_and_lists_nothing_to_repair(in_sync):
    api, log, _, _ = in_sync
    view = SyncView(api, log)
    assert "in sync" in view.verdict.value.lower()
    assert "No stale patient" in view.stale.value
    assert "No failed or pending delivery" in view.deliveries.value
    assert view.report is not None and (view.report.patients["status"] == "in_sync").all()


def test_an_outage_shows_each_stale_field_old_and_new_the_never_seen_and_the_failed(outage):
    api, log, _, patients = outage
    view = SyncView(api, log)
    verdict = view.verdict.value.lower()
    assert "in sync" not in verdict.replace("not in sync", "") and "stale" in verdict
    stale = view.stale.value
    assert "email" in stale and patients[0].email in stale and "moved@example.org" in stale
    assert "phoneNumber" in stale and "+1 555 999 0000" in stale
    assert f">{patients[2].id}<" not in stale  # an unchanged patient is not listed
    assert "6" in view.missing.value.split("Never seen")[1].split("</div>")[0]
    assert view.deliveries.value.count("failed") >= 3
    assert "stale: <b>2</b>" in view.counts.value and "never_seen: <b>1</b>" in view.counts.value


def test_unknown_lists_a_patient_the_log_has_but_impilo_does_not(in_sync):
    api, log, _, _ = in_sync
    assert log.record_backfill(9999, make_patient(9999, id=9999))
    view = SyncView(api, log)
    unknown = view.missing.value.split("Unknown")[1]
    assert "9999" in unknown


# -- the buttons -----------------------------------------------------------------------------


def test_backfill_repairs_and_the_verdict_turns_in_sync(outage):
    api, log, _, _ = outage
    view = SyncView(api, log)
    assert "stale" in view.verdict.value.lower()
    view.backfill_button.click()
    assert "in sync" in view.verdict.value.lower() and "stale" not in view.verdict.value.lower()
    assert "Backfill recorded 3 events" in view.status.value
    assert "No stale patient" in view.stale.value
    view.backfill_button.click()
    assert "Backfill recorded 0 events" in view.status.value
    assert not any(button.disabled for button in (view.check_button, view.backfill_button, view.replay_button))


def test_check_again_sees_a_change_made_since(in_sync):
    api, log, receiver, patients = in_sync
    view = SyncView(api, log)
    assert "in sync" in view.verdict.value.lower()
    receiver.stop()
    api.patients.patch(patients[3].id, {"firstName": "Renamed"})
    view.check_button.click()
    assert "stale" in view.verdict.value.lower()
    assert "Renamed" in view.stale.value


def test_replay_sends_the_selected_events_and_shows_the_result(in_sync, handler):
    api, log, _, _ = in_sync
    view = SyncView(api, log, secret=SECRET)
    chosen = [value for _, value in view.events.options[:2]]
    view.handler_url.value = handler.url
    view.events.value = tuple(chosen)
    view.replay_button.click()
    assert sorted(body["id"] for body in handler.bodies) == sorted(chosen)
    assert handler.secrets == [SECRET, SECRET]
    assert list(view.replayed["event_id"]) == chosen or sorted(view.replayed["event_id"]) == sorted(chosen)
    assert view.replay_result.value.count("<td>200</td>") == 2
    assert "Replayed 2 of 2" in view.status.value
    assert SECRET not in everything_shown(view) and SECRET not in repr(view)


def test_buttons_are_disabled_while_an_action_runs(in_sync):
    api, log, _, _ = in_sync
    seen: list[bool] = []
    view: SyncView | None = None

    def look() -> None:
        seen.extend(button.disabled for button in (view.check_button, view.backfill_button, view.replay_button))

    slow_handler = Handler(during=look)
    try:
        view = SyncView(api, log)
        view.handler_url.value = slow_handler.url
        view.events.value = (view.events.options[0][1],)
        view.replay_button.click()
    finally:
        slow_handler.close()
    assert seen == [True, True, True]
    assert not any(button.disabled for button in (view.check_button, view.backfill_button, view.replay_button))


def test_replay_asks_for_a_url_and_a_selection(in_sync, handler):
    api, log, _, _ = in_sync
    view = SyncView(api, log)
    view.replay_button.click()
    assert "Type the URL of your handler" in view.status.value
    view.handler_url.value = handler.url
    view.replay_button.click()
    assert "Select the events to replay" in view.status.value
    assert handler.bodies == []


def test_a_handler_that_is_down_is_a_row_with_its_error_not_a_traceback(in_sync):
    api, log, _, _ = in_sync
    gone = Handler()
    url = gone.url
    gone.close()
    view = SyncView(api, log)
    view.handler_url.value = url
    view.events.value = (view.events.options[0][1],)
    view.replay_button.click()
    assert "1 failed" in view.status.value and "Traceback" not in everything_shown(view)
    assert view.replayed is not None and view.replayed["error"].notna().all()


def test_a_non_loopback_handler_is_refused_with_a_reason(in_sync):
    api, log, _, _ = in_sync
    view = SyncView(api, log)
    view.handler_url.value = "http://example.org/webhooks"
    view.events.value = (view.events.options[0][1],)
    view.replay_button.click()
    assert "loopback" in view.status.value.lower() and "Traceback" not in everything_shown(view)
    assert "#b00020" in view.status.value  # shown as a failure


def test_a_refused_check_is_readable_and_never_shows_the_key(fast_sandbox, log):
    wrong_key = "wrong-key-abcdef-123456"
    with nb.ImpiloClient(base_url=fast_sandbox.url, api_key=wrong_key, max_retries=0) as bad:
        view = SyncView(bad, log)
    assert "401" in view.status.value and "Traceback" not in everything_shown(view)
    assert wrong_key not in everything_shown(view) and wrong_key not in view.snapshot_html()
    assert view.report is None
    assert not view.check_button.disabled


# -- construction and reports ----------------------------------------------------------------


def test_wrong_arguments_say_what_to_pass(api, log):
    with pytest.raises(TypeError, match="ImpiloClient"):
        SyncView("http://127.0.0.1:1", log)
    with pytest.raises(TypeError, match="EventLog"):
        SyncView(api, "events.db")
    with pytest.raises(ValueError, match="max_rows"):
        SyncView(api, log, max_rows=0)
    with pytest.raises(nb.ValidationError, match="since"):
        SyncView(api, log, since="last tuesday")


def test_snapshot_shows_the_verdict_and_the_tables(outage):
    api, log, _, _ = outage
    view = SyncView(api, log)
    snapshot = view.snapshot_html()
    assert view.verdict.value in snapshot and view.stale.value in snapshot and "moved@example.org" in snapshot
