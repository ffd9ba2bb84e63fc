import json
import os
import re
import sqlite3
import stat
import threading

import pandas as pd
import pytest

from impilo_nb import ConfigurationError, EventLog, InvalidDeliveryError
from impilo_nb.eventlog import MAX_DEPTH, NormalisedEvent, normalise_delivery


def body(event_id=1, type_="patient.created", **payload) -> bytes:
    return json.dumps({"id": event_id, "type": type_, "payload": {"id": 7, "firstName": "Ana", **payload}}).encode()


@pytest.fixture
def log(log_target):
    with EventLog(log_target) as opened:
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
    with pytest.raises(InvalidDeliveryError) as caught:
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


# -- what a body may hold: depth, Unicode, integer range (issue "Trust the wire") -------------


def nested(levels: int, inner: bytes = b"1") -> bytes:
    """A delivery whose payload nests ``levels`` objects (the envelope adds one more)."""
    return b'{"id": 1, "type": "x.y", "payload": ' + b'{"a": ' * levels + inner + b"}" * levels + b"}"


@pytest.mark.parametrize(
    "raw",
    [b"[" * 5000 + b"]" * 5000, b"[" * 5000, nested(3000), nested(MAX_DEPTH), ("[" * 5000 + "]" * 5000).encode("utf-16")],
    ids=["5000 lists", "5000 unclosed", "3000 objects in payload", "one past the limit", "UTF-16"],
)
def test_nesting_past_the_limit_is_refused_with_400(log, raw):
    with pytest.raises(InvalidDeliveryError) as caught:
        log.record_body(raw)
    assert caught.value.status == 400 and f"more than {MAX_DEPTH} levels deep" in caught.value.reason
    assert len(log) == 0


def test_nesting_up_to_the_limit_and_brackets_in_strings_are_accepted(log):
    assert log.record_body(nested(MAX_DEPTH - 1)) == 1
    in_a_string = json.dumps({"id": 2, "type": "x.y", "payload": {"note": "[{" * 5000}}).encode()
    assert log.record_body(in_a_string) == 1
    assert len(log.frame()) == 2


def test_brackets_only_inside_strings_do_not_count_as_nesting(log):
    with pytest.raises(InvalidDeliveryError, match="Expected a JSON object"):
        log.record_body(json.dumps("[{" * 5000).encode())


def test_deep_data_given_to_normalise_delivery_is_refused_not_a_recursion_error():
    data: dict = {}
    for _ in range(5000):
        data = {"a": data}
    with pytest.raises(InvalidDeliveryError) as caught:
        normalise_delivery({"id": 1, "type": "x.y", "payload": data}, b"{}")
    assert caught.value.status == 400 and "payload.a.a" in caught.value.reason


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b'{"id": 1, "type": "\\ud800"}', "at type:"),
        (b'{"id": "\\udfff", "type": "x.y"}', "at id:"),
        (b'{"id": 1, "type": "x.y", "payload": {"\\ud800": 1}}', 'at payload["\\ud800"] (in the key)'),
        (b'{"id": 1, "type": "x.y", "payload": {"tags": ["ok", "a\\udc00b"]}}', "at payload.tags[1]:"),
        (b'{"event": "x.y", "data": {"name": "\\ud83d"}}', "at data.name:"),
        (b'{"id": 1, "type": "x.y", "payload": {"name": "\xed\xa0\x80"}}', "at payload.name:"),  # raw, not escaped
    ],
    ids=["type", "id", "payload key", "payload list item", "guide data", "raw UTF-8 bytes"],
)
def test_a_lone_surrogate_anywhere_is_refused_naming_where(log, raw, where):
    with pytest.raises(InvalidDeliveryError) as caught:
        log.record_body(raw)
    assert caught.value.status == 400 and f"lone surrogate (invalid Unicode) {where}" in caught.value.reason
    assert len(log) == 0
    log.record_rejection(caught.value.status, caught.value.reason)  # the reason itself can be stored
    assert log.rejections()["reason"].tolist() == [caught.value.reason]


def test_a_surrogate_pair_is_one_character_and_is_kept(log):
    log.record_body(b'{"id": 1, "type": "x.y", "payload": {"name": "\\ud83d\\ude00"}}')
    assert log.frame()["payload.name"].tolist() == ["\U0001f600"]


@pytest.mark.parametrize("event_id", [2**70, -(2**70), 2**63, -(2**63) - 1, 2**64, str(2**70), "²", "٣", "--5", "1_000"])
def test_event_ids_that_are_not_64_bit_integers_are_hashed_and_deduplicated(log, event_id):
    raw = json.dumps({"id": event_id, "type": "x.y", "payload": {}}).encode()
    assert log.record_body(raw) == 1 and log.record_body(raw) == 2
    (stored,) = log.frame()["event_id"].tolist()
    assert stored == normalise_delivery(json.loads(raw), raw).event_id and 0 <= stored < 2**60


def test_64_bit_event_ids_are_kept_as_they_are(log):
    for event_id in (2**63 - 1, -(2**63), "-42"):
        log.record_body(json.dumps({"id": event_id, "type": "x.y"}).encode())
    assert log.frame()["event_id"].tolist() == [2**63 - 1, -(2**63), -42]


@pytest.mark.parametrize("resource_id", [2**70, -(2**70), 2**64, str(2**70), "²", "9" * 5000])
def test_a_payload_id_that_is_no_64_bit_integer_leaves_resource_id_null(log, resource_id):
    log.record_body(json.dumps({"id": 1, "type": "x.y", "payload": {"id": resource_id}}).encode())
    assert log.frame()["resource_id"].isna().all()
    assert log.get(1)["payload"]["id"] == resource_id


def test_large_integers_elsewhere_are_kept_exactly_and_the_frame_still_builds(log):
    log.record_body(body(1, big=2**70, small=1))
    log.record_body(body(2, big=-(2**100), small=2))
    frame = log.frame()
    assert frame["payload.big"].tolist() == [2**70, -(2**100)] and str(frame["payload.small"].dtype) == "Int64"
    assert log.get(2)["payload"]["big"] == -(2**100)


def test_decimal_text_with_any_number_of_leading_zeros_reads_as_its_integer(log):
    log.record_body(json.dumps({"id": "0" * 5000 + "12", "type": "x.y", "payload": {"id": "-" + "0" * 5000 + "7"}}).encode())
    assert log.frame()[["event_id", "resource_id"]].values.tolist() == [[12, -7]]


@pytest.mark.parametrize(
    ("data", "where"),
    [({"id": 10**5000, "type": "x.y"}, "at id"), ({"type": "x.y", "payload": {"n": [-(10**5000)]}}, "at payload.n[0]")],
)
def test_integers_too_long_to_convert_in_given_data_are_refused_naming_where(data, where):
    with pytest.raises(InvalidDeliveryError, match=f"more than 4300 digits {re.escape(where)}"):
        normalise_delivery(data, b"{}")


def test_an_integer_too_long_to_convert_is_refused_naming_its_length(log):
    with pytest.raises(InvalidDeliveryError) as caught:
        log.record_body(b'{"id": 1, "type": "x.y", "payload": {"n": ' + b"9" * 5000 + b"}}")
    assert caught.value.status == 400 and "integer of 5000 digits" in caught.value.reason


def test_a_hand_built_event_is_checked_before_it_reaches_sqlite(log):
    with pytest.raises(InvalidDeliveryError) as caught:
        NormalisedEvent(2**70, "x.y", {}, None, "impilo")
    assert caught.value.status == 422 and "64 bits" in str(caught.value)
    with pytest.raises(InvalidDeliveryError):
        NormalisedEvent(1, "\ud800", {}, None, "impilo")
    assert len(log) == 0


def test_a_rejection_reason_of_any_text_is_stored(log):
    log.record_rejection(400, "bad \ud800 text" + "x" * 10_000)
    (reason,) = log.rejections()["reason"].tolist()
    assert reason.startswith("bad \\ud800 text") and len(reason) <= 500


# -- opening a path that is no event log ------------------------------------------------------


def sqlite_of_another_app(path):
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE invoices (n INTEGER)")
    other.commit()
    other.close()


@pytest.mark.parametrize(
    ("name", "make", "says"),
    [
        ("patients.csv", lambda p: p.write_text("id,name\n1,Ana\n"), "is not a SQLite database"),
        ("noise.db", lambda p: p.write_bytes(bytes(range(256)) * 4), "is not a SQLite database"),
        ("short.db", lambda p: p.write_bytes(b"SQLite"), "is not a SQLite database"),
        ("app.db", sqlite_of_another_app, "is a SQLite database of something else (tables: invoices)"),
    ],
)
def test_a_file_that_is_no_event_log_is_refused_and_left_untouched(tmp_path, name, make, says):
    path = tmp_path / name
    make(path)
    path.chmod(0o640)
    before = (path.read_bytes(), os.stat(path).st_mode, sorted(os.listdir(tmp_path)))
    with pytest.raises(ConfigurationError) as caught:
        EventLog(path)
    assert str(path) in str(caught.value) and says in str(caught.value)
    assert (path.read_bytes(), os.stat(path).st_mode, sorted(os.listdir(tmp_path))) == before  # no -wal, -shm either


def test_a_directory_is_refused_naming_it(tmp_path):
    with pytest.raises(ConfigurationError, match="is a directory") as caught:
        EventLog(tmp_path)
    assert str(tmp_path) in str(caught.value) and os.listdir(tmp_path) == []


def test_a_folder_that_cannot_be_created_is_named(tmp_path):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    with pytest.raises(ConfigurationError, match="Cannot create the folder") as caught:
        EventLog(tmp_path / "notes.txt" / "logs" / "events.db")
    assert str(tmp_path / "notes.txt" / "logs") in str(caught.value)
    assert (tmp_path / "notes.txt").read_text() == "a file, not a folder"


def test_an_empty_file_becomes_a_log(tmp_path):
    (tmp_path / "events.db").touch()
    with EventLog(tmp_path / "events.db") as opened:
        assert opened.record_body(body(1)) == 1


def test_a_database_with_a_foreign_events_table_is_left_untouched(tmp_path):
    import sqlite3

    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT)")
    before = path.read_bytes()
    with pytest.raises(ConfigurationError, match="not an event log"):
        EventLog(path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]
