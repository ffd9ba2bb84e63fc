"""nb.sync: check finds exactly what the log missed, backfill repairs it, on real parts.

The outage story runs against a real sandbox (retries held with a large time_scale and fired with
retry_now, so no outcome depends on the machine's speed), a real WebhookReceiver and a real
EventLog, in both the sandbox's normal and documented-fields-only modes.
"""

from __future__ import annotations

import json

import matplotlib
import pandas as pd
import pytest

import impilo_nb as nb
from impilo_nb import sync
from impilo_nb.errors import ValidationError
from impilo_nb.frames import patient_frame, webhook_log_frame
from impilo_nb.sandbox.delivery import RETRY_DELAYS
from tests.conftest import make_patient

matplotlib.use("Agg")

#: Retries 10 days away and more: none fires by itself; the test fires them with retry_now().
HELD = 1000.0

#: Seconds before a wait gives up. Only stops a hung test: nothing here depends on speed.
HANG_GUARD = 60.0

#: An id no sandbox patient has (they count from 1).
GHOST_ID = 10**9


def delivery_body(event_id: int, payload: dict, type_: str = "patient.updated") -> bytes:
    return json.dumps({"id": event_id, "type": type_, "payload": payload}).encode()


# -- the schedule ---------------------------------------------------------------------------


def test_the_schedule_is_the_sandboxs():
    assert sync.WEBHOOK_RETRY_DELAYS == RETRY_DELAYS
    assert sync.DELIVERY_ATTEMPTS == 4  # docs/api-decisions.md#retry-schedule


def test_the_compared_fields_are_the_models():
    assert "id" not in sync.COMPARED_FIELDS
    assert {"firstName", "address.city", "site.name", "dateOfBirth", "enrolled"} <= set(sync.COMPARED_FIELDS)


# -- one form for both sides ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "kind", "expected"),
    [
        (["1975-04-02", "1975-04-02T00:00:00Z", None, ""], "date", ["1975-04-02", "1975-04-02", None, None]),
        (pd.Series(pd.to_datetime(["1975-04-02", None])), "date", ["1975-04-02", None]),
        ([12.0, None], "integer", [12, None]),
        (pd.array([12, None], dtype="Int64"), "integer", [12, None]),
        (pd.array([True, False, None], dtype="boolean"), "flag", [True, False, None]),
        ([True, False, None], "flag", [True, False, None]),
        (["Ana", "", None, float("nan")], "text", ["Ana", None, None, None]),
        (["not a date"], "date", ["not a date"]),  # kept, so it differs from a real date
    ],
)
def test_comparable_values(values, kind, expected):
    got = sync.comparable_values(pd.Series(values), kind).tolist()
    assert got == expected and [type(v) for v in got] == [type(v) for v in expected]


# -- patients, without a server ----------------------------------------------------------------


@pytest.fixture
def log(tmp_path):
    with nb.EventLog(tmp_path / "events.db") as opened:
        yield opened


def test_compare_patients_statuses_and_differences(log):
    at_impilo = [
        make_patient(1, id=1),
        make_patient(2, id=2, email="new@example.org", address=None),
        make_patient(3, id=3),
    ]
    log.record_body(delivery_body(101, make_patient(1, id=1)))
    log.record_body(delivery_body(102, make_patient(2, id=2)))
    log.record_body(delivery_body(104, make_patient(4, id=4)))
    patients, changes = sync.compare_patients(patient_frame(at_impilo), log.latest())
    status = dict(zip(patients["resource_id"], patients["status"], strict=True))
    assert status == {1: "in_sync", 2: "stale", 3: "never_seen", 4: "unknown"}
    row = patients.set_index("resource_id").loc[2]
    assert row["fields"] == ["email", "address.lineOne", "address.city", "address.state", "address.zipCode", "address.country"]
    assert row["differences"]["email"] == ("person2@example.org", "new@example.org")
    assert row["differences"]["address.city"] == ("Springfield", None)
    assert set(changes["resource_id"]) == {2} and len(changes) == 6
    assert patients.set_index("resource_id").loc[1, "event_id"] == 101


def test_missing_null_and_empty_are_one_value_and_types_do_not_matter(log):
    record = make_patient(1, id=1, enrolled=True)
    logged = {**record, "email": None, "phoneNumber": ""}  # the log's record says "no value" two other ways
    del logged["sex"]
    log.record_body(delivery_body(101, logged))
    at_impilo = {**record, "email": None, "phoneNumber": None, "sex": None}
    patients, changes = sync.compare_patients(patient_frame([at_impilo]), log.latest())
    assert patients["status"].tolist() == ["in_sync"], changes


def test_the_newest_event_wins_even_when_it_arrived_first(log):
    log.record_body(delivery_body(202, make_patient(1, id=1, email="newer@example.org")))
    log.record_body(delivery_body(201, make_patient(1, id=1, email="older@example.org")))  # a late retry
    at_impilo = [make_patient(1, id=1, email="newer@example.org")]
    patients, _ = sync.compare_patients(patient_frame(at_impilo), log.latest())
    assert patients["status"].tolist() == ["in_sync"]


# -- deliveries, without a server --------------------------------------------------------------


def entry(n: int, event_id: int | None, *, status: int | None = 200, retries: int = 0, **more) -> dict:
    created = pd.Timestamp("2026-01-01T09:00:00Z") + pd.Timedelta(minutes=n)
    payload = delivery_body(event_id, {"id": n, "firstName": "A", "lastName": "B"}).decode() if event_id else None
    return {
        "id": n,
        "webhookId": 1,
        "webhookType": "patient.updated",
        "webhookUrl": "http://127.0.0.1:9/hook",
        "payload": payload,
        "createTimestamp": created.isoformat(),
        "lastResponseStatus": status,
        "retryAttempts": retries,
        "lastRetryTimestamp": (created + pd.Timedelta(minutes=20)).isoformat() if retries else None,
        **more,
    }


def test_match_deliveries_by_the_event_id_in_the_payload(log):
    log.record_body(delivery_body(11, {"id": 1}))
    entries = webhook_log_frame(
        [
            entry(1, 11),  # in the log
            entry(2, 12),  # 2xx, not in the log
            entry(3, 13, status=500, retries=3),  # all four attempts failed
            entry(4, 14, status=None, retries=1),  # one retry failed, the next is due
            entry(5, 15, status=None),  # not tried yet, or refused once
        ]
    )
    found = sync.match_deliveries(entries, pd.Index([11]), log.latest()).set_index("delivery_id")
    assert found["status"].tolist() == ["received", "acknowledged_not_logged", "failed", "pending", "pending"]
    assert found["event_id"].tolist() == [11, 12, 13, 14, 15] and found["resource_id"].tolist() == [1, 2, 3, 4, 5]
    last_retry = pd.Timestamp(entries.loc[entries["id"] == 4, "lastRetryTimestamp"].iloc[0])
    assert found.loc[4, "next_attempt_at"] == last_retry + pd.Timedelta(seconds=RETRY_DELAYS[1])
    created = pd.Timestamp(entries.loc[entries["id"] == 5, "createTimestamp"].iloc[0])
    assert found.loc[5, "next_attempt_at"] == created + pd.Timedelta(seconds=RETRY_DELAYS[0])
    assert found.loc[[1, 2, 3], "next_attempt_at"].isna().all()


def test_a_servers_next_attempt_time_is_used_when_it_sends_one(log):
    due = pd.Timestamp("2026-01-01T09:00:03Z")
    entries = webhook_log_frame([entry(1, 11, status=None, nextAttemptTimestamp=due.isoformat())])
    found = sync.match_deliveries(entries, pd.Index([]), log.latest())
    assert found["next_attempt_at"].tolist() == [due]


def test_a_guide_shaped_payload_matches_by_the_receivers_own_hash(log):
    body = json.dumps({"event": "patient.updated", "data": {"id": 7, "firstName": "A"}})
    log.record_body(body.encode())
    entries = webhook_log_frame([{**entry(1, None), "payload": body}])
    logged = pd.Index(log.frame()["event_id"])
    found = sync.match_deliveries(entries, logged, log.latest())
    assert found["status"].tolist() == ["received"] and found["resource_id"].tolist() == [7]


def test_the_docs_sample_payload_names_a_record_not_an_event(log):
    entries = webhook_log_frame([{**entry(1, None), "payload": "{'id':1234}"}])
    found = sync.match_deliveries(entries, pd.Index([]), log.latest())
    assert pd.isna(found["event_id"].iloc[0]) and found["resource_id"].tolist() == [1234]
    assert found["status"].tolist() == ["acknowledged_not_logged"]  # no later state of 1234 in the log


def test_a_payload_whose_id_no_int64_holds_names_nothing_and_breaks_nothing(log):
    entries = webhook_log_frame([{**entry(1, None), "payload": f"{{'id': {2**70}}}"}, entry(2, 12)])
    found = sync.match_deliveries(entries, pd.Index([12]), log.latest())
    assert found["resource_id"].isna().tolist() == [True, False]
    assert found["status"].tolist() == ["acknowledged_not_logged", "received"]


def test_a_patients_state_says_nothing_about_an_entry_of_another_family(log):
    log.record_body(delivery_body(11, {"id": 1, "firstName": "A", "lastName": "B"}))  # patient 1, received now
    device = {**entry(1, None), "webhookType": "device.lowBattery", "payload": "{'id': 1}"}  # device 1, created before
    patient = {**entry(2, None), "payload": "{'id': 1}"}
    found = sync.match_deliveries(webhook_log_frame([device, patient]), pd.Index([11]), log.latest())
    assert found["status"].tolist() == ["acknowledged_not_logged", "received"]


# -- input checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("since", ["yesterday-ish", 1700000000, True, float("nan"), ""])
def test_since_must_be_a_moment(since, log):
    client = nb.ImpiloClient(base_url="http://127.0.0.1:9", api_key="k" * 8)
    with pytest.raises(ValidationError, match="since") as caught:
        sync.check(client, log, since=since)
    assert "ISO 8601" in str(caught.value)


def test_check_and_backfill_say_which_argument_is_wrong(log):
    client = nb.ImpiloClient(base_url="http://127.0.0.1:9", api_key="k" * 8)
    with pytest.raises(ValidationError, match=r"client: Expected an ImpiloClient.*got str"):
        sync.check("http://127.0.0.1", log)
    with pytest.raises(ValidationError, match=r"log: Expected an EventLog.*got str"):
        sync.backfill(client, "events.db")
    with pytest.raises(ValidationError, match=r"report: Expected a SyncReport.*got dict"):
        sync.backfill(client, log, report={})


def test_nothing_anywhere_is_in_sync(client, log):
    report = sync.check(client, log)
    assert report.verdict == "in sync" and report.in_sync
    assert report.patients.empty and report.deliveries.empty and report.changes.empty
    assert report.summary.sum() == 0 and sync.backfill(client, log) == 0


# -- the outage story, on real parts -----------------------------------------------------------


@pytest.fixture(params=["sqlite", "sqlite-documented-only", "postgresql"])
def story(request, tmp_path):
    """(sandbox, client, log, receiver): a held sandbox, its client, an event log and a receiver
    subscribed to patient.created and patient.updated."""
    backend, _, mode = request.param.partition("-")
    target = tmp_path / "events.db" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    with (
        nb.Sandbox(time_scale=HELD, documented_only=bool(mode)) as sandbox,
        nb.ImpiloClient(base_url=sandbox.url, api_key=sandbox.api_key, timeout=HANG_GUARD) as client,
        nb.EventLog(target) as log,
        nb.WebhookReceiver(log) as receiver,
    ):
        for type_ in ("patient.created", "patient.updated"):
            client.webhooks.create(type=type_, url=receiver.url)
        yield sandbox, client, log, receiver


def exhaust_retries(sandbox: nb.Sandbox) -> None:
    """Fire every remaining retry, one attempt at a time, until all four attempts are spent."""
    assert sandbox.wait_for_deliveries(timeout=HANG_GUARD)
    for _ in RETRY_DELAYS:
        sandbox.retry_now()
        assert sandbox.wait_for_deliveries(timeout=HANG_GUARD)


def statuses(report: sync.SyncReport, status: str) -> set[int]:
    return set(report.patients.loc[report.patients["status"] == status, "resource_id"])


def test_outage_check_finds_exactly_what_was_missed_and_backfill_repairs_it(story):
    sandbox, client, log, receiver = story
    patients = [client.patients.create(make_patient(n)) for n in range(100)]
    assert log.wait_for(100, timeout=HANG_GUARD) and sandbox.wait_for_deliveries(timeout=HANG_GUARD)
    before = sync.check(client, log)
    assert before.verdict == "in sync" and len(statuses(before, "in_sync")) == 100
    assert before.deliveries["status"].value_counts()["received"] == 100

    receiver.stop()  # the outage
    changed = patients[::5]  # 20 of them
    for n, patient in enumerate(changed):
        change = {"email": f"moved{n}@example.org"} if n % 2 else {"phoneNumber": "+1 555 000 0000", "enrolled": True}
        client.patients.patch(patient.id, change)
    newcomer = client.patients.create(make_patient(500))
    exhaust_retries(sandbox)
    log.record_body(delivery_body(1, {"id": GHOST_ID, "firstName": "No", "lastName": "Body"}))

    report = sync.check(client, log)
    assert statuses(report, "stale") == {p.id for p in changed}
    assert statuses(report, "never_seen") == {newcomer.id} and statuses(report, "unknown") == {GHOST_ID}
    assert len(statuses(report, "in_sync")) == 80
    stale = report.patients.set_index("resource_id")
    assert stale.loc[changed[1].id, "differences"] == {"email": (patients[5].email, "moved1@example.org")}
    assert stale.loc[changed[0].id, "fields"] == ["phoneNumber", "enrolled"]
    assert (stale.loc[[p.id for p in changed], "failed_deliveries"] == 1).all()
    failed = report.deliveries[report.deliveries["status"] == "failed"]
    assert set(failed["resource_id"]) == {p.id for p in changed} | {newcomer.id} and len(failed) == 21
    assert report.summary[("deliveries", "received")] == 100 and report.summary[("deliveries", "pending")] == 0
    assert report.verdict == "20 patients stale, 1 never seen, 1 unknown to Impilo; 21 deliveries failed"

    assert sync.backfill(client, log) == 21
    after = sync.check(client, log)
    assert statuses(after, "stale") == set() and statuses(after, "never_seen") == set()
    assert len(statuses(after, "in_sync")) == 101 and after.repaired == 21
    assert after.verdict == "1 patient unknown to Impilo"
    assert sync.backfill(client, log) == 0
    assert set(log.latest().loc[lambda f: f["source"] == "backfill", "resource_id"]) == statuses(report, "stale") | {newcomer.id}


def test_since_limits_both_sides_to_what_happened_after(story):
    sandbox, client, log, receiver = story
    patients = [client.patients.create(make_patient(n)) for n in range(10)]
    assert log.wait_for(10, timeout=HANG_GUARD) and sandbox.wait_for_deliveries(timeout=HANG_GUARD)
    outage = pd.Timestamp.now(tz="UTC")
    receiver.stop()
    client.patients.patch(patients[3].id, {"email": "new@example.org"})
    exhaust_retries(sandbox)
    report = sync.check(client, log, since=outage)
    assert report.patients["resource_id"].tolist() == [patients[3].id]
    assert report.patients["status"].tolist() == ["stale"] and len(report.deliveries) == 1
    assert report.since == outage
    assert len(sync.check(client, log).patients) == 10


# -- what an analyst sees --------------------------------------------------------------------


def a_report(log) -> sync.SyncReport:
    log.record_body(delivery_body(101, make_patient(1, id=1, firstName="<b>Old</b>")))
    log.record_body(delivery_body(104, make_patient(4, id=4)))
    patients, changes = sync.compare_patients(patient_frame([make_patient(1, id=1), make_patient(3, id=3)]), log.latest())
    entries = webhook_log_frame([entry(1, 11, status=500, retries=3), entry(3, 13, status=None, retries=3)])
    deliveries = sync.match_deliveries(entries, pd.Index([]), log.latest())
    return sync.SyncReport(patients, changes, deliveries, since=None, checked_at=pd.Timestamp.now(tz="UTC"))


def test_summary_verdict_and_repr(log):
    report = a_report(log)
    assert report.verdict == "1 patient stale, 1 never seen, 1 unknown to Impilo; 2 deliveries failed"
    assert not report.in_sync
    assert report.summary.to_dict() == {
        ("patients", "in_sync"): 0,
        ("patients", "stale"): 1,
        ("patients", "never_seen"): 1,
        ("patients", "unknown"): 1,
        ("deliveries", "received"): 0,
        ("deliveries", "failed"): 2,
        ("deliveries", "pending"): 0,
        ("deliveries", "acknowledged_not_logged"): 0,
    }
    assert repr(report).startswith("SyncReport(1 patient stale") and "3 patients, 2 deliveries" in repr(report)


def test_html_leads_with_the_verdict_and_escapes_values(log):
    page = a_report(log)._repr_html_()
    assert page.startswith("<p><b>Sync check: 1 patient stale")
    assert "&lt;b&gt;Old&lt;/b&gt;" in page and "<b>Old</b>" not in page
    assert (
        "Never seen (no event in the log)</b> (1): 3" in page
        and "Impilo (only in the log)</b> (1): 4" in page
        and "Deliveries not received" in page
    )


def test_plot_draws_one_bar_per_status(log):
    ax = a_report(log).plot()
    assert len(ax.patches) == len(sync.PATIENT_STATUSES) + len(sync.DELIVERY_STATUSES)
    assert ax.get_title().startswith("Sync check: 1 patient stale")
    assert sorted(p.get_width() for p in ax.patches) == [0, 0, 0, 0, 1, 1, 1, 2]


# -- under chaos -------------------------------------------------------------------------------


def test_under_chaos_latest_equals_impilo_once_deliveries_settle(tmp_path):
    chaos_module = pytest.importorskip("impilo_nb.sandbox.chaos")
    chaos = chaos_module.Chaos(duplicate=0.2, reorder=True, delay_s=(0, 0.05), seed=1)
    with (
        nb.Sandbox(chaos=chaos) as sandbox,
        nb.ImpiloClient(base_url=sandbox.url, api_key=sandbox.api_key, timeout=HANG_GUARD) as client,
        nb.EventLog(tmp_path / "events.db") as log,
        nb.WebhookReceiver(log) as receiver,
    ):
        for type_ in ("patient.created", "patient.updated"):
            client.webhooks.create(type=type_, url=receiver.url)
        ids = [client.patients.create(make_patient(n)).id for n in range(20)]
        for n in range(200):
            client.patients.patch(ids[n % 20], {"email": f"v{n}@example.org"})
        assert log.wait_for(220, timeout=HANG_GUARD) and sandbox.wait_for_deliveries(timeout=HANG_GUARD)
        report = sync.check(client, log)
        latest = log.latest().set_index("resource_id")["payload.email"].to_dict()
        impilo = client.patients.frame().set_index("id")["email"].to_dict()
        arrivals = log.frame(columns=["event_id", "delivery_count"])
    assert (arrivals["delivery_count"] > 1).any()  # chaos sent duplicates...
    assert (arrivals["event_id"].diff().dropna() < 0).any()  # ...and older events after newer ones
    assert latest == impilo
    assert report.verdict == "in sync" and statuses(report, "in_sync") == set(ids)
    assert report.deliveries["status"].eq("received").all()
