import json
import os
import stat
import threading

import pandas as pd
import pytest

from impilo_nb import EventLog, InvalidDelivery
from impilo_nb.eventlog import normalise_delivery


def body(event_id=1, type_="patient.created", **payload) -> bytes:
    return json.dumps({"id": event_id, "type": type_, "payload": {"id": 7, "firstName": "Ana", **payload}}).encode()


@pytest.fixture
def log(tmp_path):
    with EventLog(tmp_path / "events.db") as opened:
        yield opened


def test_one_row_per_event_with_the_documented_columns(log):
    log.record_body(body(1), headers={"Content-Type": "application/json"}, remote_addr="127.0.0.1")
    log.record_body(body(2, "patient.updated", email="a@example.org"))
    frame = log.frame()
    assert list(frame.columns[:5]) == ["received_at", "event_id", "type", "resource_id", "delivery_count"]
    assert frame["event_id"].tolist() == [1, 2] and frame["type"].tolist() == ["patient.created", "patient.updated"]
    assert frame["resource_id"].tolist() == [7, 7] and frame["payload.firstName"].tolist() == ["Ana", "Ana"]
    assert str(frame["received_at"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["event_id"].dtype) == "Int64" and str(frame["payload.id"].dtype) == "Int64"


def test_a_repeated_event_id_counts_instead_of_adding_a_row(log):
    assert log.record_body(body(5)) == 1
    assert log.record_body(body(5)) == 2
    assert len(log) == 1 and log.frame()["delivery_count"].tolist() == [2]


def test_the_guides_envelope_is_normalised_and_deduplicated_by_body(log):
    guide = json.dumps({"event": "patient.updated", "data": {"id": "12345", "name": "John Doe"}}).encode()
    log.record_body(guide)
    log.record_body(guide)
    row = log.frame().iloc[0]
    assert (row["type"], row["resource_id"], row["delivery_count"], row["payload.name"]) == (
        "patient.updated",
        12345,
        2,
        "John Doe",
    )
    assert log.get(row["event_id"])["envelope"] == "guide"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b'"text"', 400),
        (b'{"id": 1, "payload": {}}', 422),
        (b'{"type": "", "payload": {}}', 422),
        (b'{"type": 5}', 422),
        (b"\xff\xfe\x00", 400),
    ],
)
def test_bodies_that_are_not_deliveries_are_refused(log, raw, status):
    with pytest.raises(InvalidDelivery) as caught:
        log.record_body(raw)
    assert caught.value.status == status and len(log) == 0


def test_non_integer_event_ids_become_stable_integers():
    first = normalise_delivery({"id": "evt_abc", "type": "x.y"}, b"1")
    again = normalise_delivery({"id": "evt_abc", "type": "x.y"}, b"2")
    assert first.event_id == again.event_id and 0 < first.event_id < 2**63


def test_secret_and_credential_headers_are_not_stored(log):
    log.record_body(body(1), headers={"Impilo-Webhook-Secret": "s3cret", "impilo-api-key": "k", "User-Agent": "x"})
    assert log.get(1)["headers"] == {"User-Agent": "x"}
    with open(log.path, "rb") as raw:
        assert b"s3cret" not in raw.read()


def test_file_is_private(log):
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600


def test_survives_reopening(tmp_path):
    with EventLog(tmp_path / "e.db") as first:
        first.record_body(body(1))
    with EventLog(tmp_path / "e.db") as second:
        assert len(second) == 1 and second.record_body(body(1)) == 2


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "e.db"
    logs = [EventLog(path) for _ in range(2)]  # two connections, as two processes would have

    def write(log, start):
        for n in range(start, start + 200):
            log.record_body(body(n))
            log.record_body(body(n % 50))  # overlapping redeliveries

    threads = [threading.Thread(target=write, args=(logs[i % 2], i * 200)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    frame = logs[0].frame()
    assert len(frame) == 800 and frame["event_id"].is_unique
    assert frame["delivery_count"].sum() == 1600


def test_filter_by_type_and_since(log):
    log.record_body(body(1))
    log.record_body(body(2, "patient.updated"))
    assert log.frame(type="patient.updated")["event_id"].tolist() == [2]
    assert len(log.frame(since="2000-01-01")) == 2 and len(log.frame(since=pd.Timestamp.now(tz="UTC") + pd.Timedelta("1h"))) == 0


def test_empty_log_has_typed_columns(log):
    frame = log.frame()
    assert frame.empty and str(frame["event_id"].dtype) == "Int64"
    assert log.timeline().empty


def test_rejections_are_counted_without_bodies(log):
    log.record_rejection(401, "wrong secret", remote_addr="127.0.0.1")
    rejected = log.rejections()
    assert rejected[["status", "reason"]].values.tolist() == [[401, "wrong secret"]]


def test_timeline_counts_per_minute_by_type(log):
    for n in range(3):
        log.record_body(body(n, "patient.created" if n else "patient.updated"))
    counts = log.timeline()
    assert counts.sum().to_dict() == {"patient.created": 2, "patient.updated": 1}
    assert log.plot_timeline().get_title() == "Webhook events"


def test_wait_for(log):
    assert not log.wait_for(1, timeout=0.1)
    log.record_body(body(1))
    assert log.wait_for(1, timeout=0.1)


def test_repr_and_html(log):
    log.record_body(body(1))
    assert "events=1" in repr(log) and "patient.created: 1" in log._repr_html_()
