import json
import os
import re
import sqlite3
import stat
import threading

import pandas as pd
import pytest

from impilo_nb import ConfigurationError, EventLog, InvalidDeliveryError, ValidationError
from impilo_nb.eventlog import MAX_DEPTH, NormalisedEvent, normalise_delivery, parse_delivery


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
    if log.path is not None:  # a SQLite file: not in its bytes either
        with open(log.path, "rb") as raw:
            assert b"s3cret" not in raw.read()


def test_credential_headers_of_proxies_and_gateways_are_not_stored_in_any_case(log):
    credentials = {"X-API-KEY": "gw-key-0123", "proxy-authorization": "Basic cHJveHk6cHc=", "COOKIE": "session=abc123",
                   "AUTHORIZATION": "Bearer tok-4567", "IMPILO-WEBHOOK-SECRET": "whsec-89ab", "impilo-Api-Key": "key-cdef"}
    log.record_body(body(1), headers={**credentials, "User-Agent": "x"})
    assert log.get(1)["headers"] == {"User-Agent": "x"}
    if log.path is not None:
        with open(log.path, "rb") as raw:
            stored = raw.read()
        assert not [value for value in credentials.values() if value.encode() in stored]


def test_file_is_private(tmp_path):
    with EventLog(tmp_path / "events.db") as log:
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


@pytest.mark.parametrize("number", [0, 1_700_000_000, 1_700_000_000.5, True])
def test_since_as_a_number_is_refused_not_read_as_nanoseconds_since_1970(log, number):
    log.record_body(body(1))
    with pytest.raises(ValidationError, match="unit='s'"):
        log.frame(since=number)  # time.time() would otherwise mean January 1970: every event


def test_since_finer_than_a_microsecond_keeps_an_event_from_just_before_out(log):
    log.record_body(body(1))
    received = log.frame()["received_at"].iloc[0]
    assert len(log.frame(since=received)) == 1
    assert len(log.frame(since=received + pd.Timedelta(1, "ns"))) == 0


def test_columns_may_be_any_collection_of_names_such_as_another_frames_columns(log):
    import numpy as np

    log.record_body(body(1, email="a@example.org"))
    wanted = ["event_id", "payload.email"]
    for given in (pd.Index(wanted), np.array(wanted), tuple(wanted), (name for name in wanted)):
        assert log.frame(columns=given).columns.tolist() == wanted
    for wrong in ("event_id", {"event_id": 1}, [1], b"event_id"):
        with pytest.raises(ValidationError, match="list of column names"):
            log.frame(columns=wrong)


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


# -- frame() built column by column: the same frame as flattening row by row (issue 14) -------

#: Payloads that exercise every rule of the flattening: nested and null objects, lists, flags
#: mixed with text, floats and NaN, integers past 64 bits, dotted keys, scalar and null payloads.
VARIED_BODIES = [
    {"id": 1, "type": "patient.created", "payload": {"id": 7, "firstName": "Ana", "address": {"city": "X", "zip": None},
                                                     "tags": ["a", "b"], "flag": True, "count": None}},
    {"id": 2, "type": "patient.updated", "payload": {"id": 8, "address": None, "site": {"id": 2, "address": {"city": "Y"}},
                                                     "flag": False, "score": 1.5, "count": 3}},
    {"id": 3, "type": "patient.updated", "payload": {"id": 9, "firstName": None, "extra": {"deep": {"x": 1}},
                                                     "big": 2**70, "flag": "yes"}},
    {"event": "patient.updated", "data": {"id": "12", "name": "John"}},
    {"id": 5, "type": "x.list", "payload": [1, 2]},
    {"id": 6, "type": "x.null", "payload": None},
    {"id": 7, "type": "x.none"},
    {"id": 8, "type": "x.dotted", "payload": {"a.b": 1, "a": {"b": 2}, "c": {}}},
    {"id": 9, "type": "x.nan", "payload": {"score": float("nan"), "n": 1, "address": {"city": "Z"}}},
    {"id": 10, "type": "patient.updated", "payload": {"id": 7, "firstName": "Ana", "address": {"zip": "1", "city": "X"}}},
]


def reference_frame(log) -> pd.DataFrame:
    """What frame() gave before it was built by columns: a dict per row through flatten_record."""
    from impilo_nb.eventlog.frames import COLUMNS, UTC_DTYPE, _tidy_exactly
    from impilo_nb.models import flatten_record

    fixed = log.frame(columns=COLUMNS)
    records = []
    for row in fixed.to_dict("records"):
        record = dict(row)
        data = log.get(int(row["event_id"]))["payload"]
        if isinstance(data, dict):
            record.update(flatten_record(data, "payload."))
        elif data is not None:
            record["payload"] = data
        records.append(record)
    frame = pd.DataFrame(records, columns=None if records else COLUMNS, dtype=object)
    frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True).astype(UTC_DTYPE)
    for col in ("event_id", "resource_id", "delivery_count"):
        frame[col] = frame[col].astype("Int64")
    frame["type"] = frame["type"].astype("string")
    for col in frame.columns[len(COLUMNS):]:
        frame[col] = _tidy_exactly(frame[col])
    return frame


def record_varied(log):
    for data in VARIED_BODIES:
        log.record_body(json.dumps(data).encode())
    log.record_body(json.dumps(VARIED_BODIES[0]).encode())  # a redelivery


def test_wide_payloads_of_many_shapes_equal_flattening_each_row(log):
    """Thousands of keys, a shape per event, every kind of column: ints (one beyond 64 bits), flags,
    text, lists, nulls; the columns (and latest()'s, sorted by resource) are built as for a few keys."""

    def value(event_id: int, k: int):
        return [k, k % 2 == 0, f"v{k}", [k], None, 2**64 + k if event_id == 7 else k][k % 6]

    for event_id in range(1, 41):
        keys = range(event_id * 13, event_id * 13 + 1500)
        payload = {"id": 41 - event_id, **{f"k{k}": value(event_id, k) for k in keys}}
        log.record_body(json.dumps({"id": event_id, "type": "patient.updated", "payload": payload}).encode())
    frame = log.frame()
    assert frame.shape == (40, 5 + 1 + 39 * 13 + 1500)
    pd.testing.assert_frame_equal(frame, reference_frame(log))
    assert [str(frame[f"payload.k{k}"].dtype) for k in (13, 18, 95)] == ["boolean", "Int64", "object"]  # 95: 2**64 + 95
    latest = log.latest()
    assert latest["resource_id"].tolist() == list(range(1, 41)) and latest["event_id"].tolist() == list(range(40, 0, -1))
    payload_columns = [c for c in frame.columns if c.startswith("payload.")]
    by_event = frame.set_index("event_id")[payload_columns]
    pd.testing.assert_frame_equal(latest[payload_columns].set_axis(latest["event_id"]),
                                  by_event.loc[latest["event_id"]], check_names=False)


def test_frame_equals_flattening_each_row(log):
    record_varied(log)
    frame = log.frame()
    pd.testing.assert_frame_equal(frame, reference_frame(log))
    assert list(frame.columns[5:8]) == ["payload.id", "payload.firstName", "payload.address.city"]
    assert frame["payload.big"].tolist()[2] == 2**70 and frame["payload.a.b"].tolist()[7] == 2
    assert frame["payload"].tolist()[4] == [1, 2] and str(frame["payload.flag"].dtype) == "object"


def test_rows_stored_before_the_flat_form_read_the_same(tmp_path):
    with EventLog(tmp_path / "e.db") as log:
        record_varied(log)
        expected = log.frame()
    with sqlite3.connect(tmp_path / "e.db") as db:  # as a log written by an older version holds them
        db.execute("UPDATE events SET shape = NULL, flat = NULL WHERE event_id % 2 = 0")
    with EventLog(tmp_path / "e.db") as log:
        pd.testing.assert_frame_equal(log.frame(), expected)


def test_frame_selects_columns_in_the_order_asked(log):
    record_varied(log)
    frame = log.frame(columns=["payload.address.city", "type", "event_id"])
    assert list(frame.columns) == ["payload.address.city", "type", "event_id"]
    pd.testing.assert_frame_equal(frame, log.frame()[["payload.address.city", "type", "event_id"]])
    assert list(log.frame(columns=["type"]).columns) == ["type"]


@pytest.mark.parametrize(
    ("columns", "says"),
    [
        (["type", "recieved_at"], "Unknown: 'recieved_at'"),
        (["type", "type"], "'type' is given twice"),
        ("type", "Give a list of column names"),
        (["payload.firstname"], "No event read has 'payload.firstname'. The payload columns there are: payload.id,"),
    ],
)
def test_frame_columns_are_checked_and_unknown_ones_named(log, columns, says):
    record_varied(log)
    with pytest.raises(ValidationError) as caught:
        log.frame(columns=columns)
    assert says in str(caught.value)


def test_frame_limit_keeps_the_newest_and_after_seq_reads_only_what_is_new(log):
    for n in range(1, 6):
        log.record_body(body(n))
    newest = log.frame(limit=2)
    assert newest["event_id"].tolist() == [4, 5]
    last_seq = log.frame().attrs["last_seq"]
    assert last_seq == log.version()[1]
    assert log.frame(after_seq=last_seq).empty and log.frame(after_seq=last_seq).attrs["last_seq"] is None
    log.record_body(body(6))
    log.record_body(body(2))  # a redelivery adds no row
    assert log.frame(after_seq=last_seq)["event_id"].tolist() == [6]


@pytest.mark.parametrize(
    ("name", "value"), [("limit", -1), ("limit", "5"), ("after_seq", 1.5), ("type", 5), ("since", "yesterday")]
)
def test_frame_arguments_are_checked(log, name, value):
    with pytest.raises(ValidationError, match=name):
        log.frame(**{name: value})


@pytest.mark.parametrize(("name", "value"), [("limit", 2**63), ("after_seq", 2**70), ("type", "patient.\ud800")])
def test_frame_arguments_no_database_can_take_are_a_validation_error(log, name, value):
    log.record_body(body(1))
    with pytest.raises(ValidationError, match=name):
        log.frame(**{name: value})


def test_an_event_id_beyond_64_bits_is_simply_not_stored(log):
    log.record_body(body(1))
    assert log.get(2**64) is None and log.get(-(2**70)) is None
    assert [event_id for event_id, _ in log.bodies([2**70, 1])] == [1]
    with pytest.raises(ValidationError, match="event_id"):
        log.get("1")


# -- timeline(): counted by the database, at most ~150 bars -------------------------------------


def record_at(log, when: str, event_id: int, type_="patient.updated"):
    """Store a delivery as received at ``when`` (the store takes the time; EventLog stamps now)."""
    from impilo_nb.eventlog.frames import flat_payload

    raw = body(event_id, type_)
    event = parse_delivery(raw)
    shape, flat = flat_payload(event.payload)
    log._store.record(event, when, body=raw, headers=None, remote_addr=None, position=event_id, shape=shape, flat=flat)


def test_timeline_picks_a_round_width_for_at_most_150_bars(log):
    record_at(log, "2025-01-01T00:00:10.000000Z", 1)
    record_at(log, "2025-01-01T00:00:20.000000Z", 2, "patient.created")
    record_at(log, "2025-01-03T23:59:59.999999Z", 3)
    counts = log.timeline()
    assert counts.attrs["freq"] == "30min" and len(counts) <= 150
    assert str(counts.index.dtype) == "datetime64[ns, UTC]" and counts.index[0] == pd.Timestamp("2025-01-01", tz="UTC")
    assert counts.sum().to_dict() == {"patient.created": 1, "patient.updated": 2}
    assert (counts.iloc[1:-1] == 0).all().all()  # zero-filled between


def test_timeline_with_an_explicit_width(log):
    record_at(log, "2025-01-01T00:00:10.000000Z", 1)
    record_at(log, "2025-01-01T02:30:00.000000Z", 2)
    counts = log.timeline("1h")
    assert counts.index.tolist() == [pd.Timestamp(f"2025-01-01T0{h}:00", tz="UTC") for h in range(3)]
    assert counts["patient.updated"].tolist() == [1, 0, 1] and counts.attrs["freq"] == "1h"


@pytest.mark.parametrize(
    ("last", "width"),
    [("2025-01-01T00:00:18.500000Z", "1s"),  # a demo of a few seconds: per second, not one per-minute bar
     ("2025-01-01T00:40:00.000000Z", "30s"), ("2025-01-08T00:00:00.000000Z", "3h")],  # a week: hours
)
def test_timeline_buckets_follow_the_span(log, last, width):
    record_at(log, "2025-01-01T00:00:10.000000Z", 1)
    record_at(log, last, 2)
    assert log.timeline().attrs["freq"] == width


def test_timeline_plot_keeps_the_legend_beside_the_bars_and_a_lone_bucket_slim(log):
    from matplotlib.figure import Figure

    record_at(log, "2025-01-01T16:40:12.000000Z", 1)
    record_at(log, "2025-01-01T16:40:12.500000Z", 2, "patient.created")
    figure = Figure(figsize=(8, 3), layout="constrained")
    ax = log.plot_timeline(ax=figure.subplots())
    figure.canvas.draw()
    legend, axes = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= axes.x1  # to the right of the axes, over no bar
    (bar, *_) = ax.patches
    assert bar.get_width() / (ax.get_xlim()[1] - ax.get_xlim()[0]) < 0.1  # one bucket is not a chart-wide bar
    assert [tick.get_text() for tick in ax.get_xticklabels() if tick.get_visible()] == ["16:40:12"]  # per second


@pytest.mark.parametrize("freq", ["MS", "banana", "500ms", "0s", "1000000000D", "-1h"])
def test_timeline_refuses_a_width_that_is_not_whole_seconds(log, freq):
    record_at(log, "2025-01-01T00:00:10.000000Z", 1)
    with pytest.raises(ValidationError, match="freq"):
        log.timeline(freq)


# -- latest(): each resource's newest known state (issue 13) ------------------------------------


def patient_event(event_id, resource_id, type_="patient.updated", **payload):
    return json.dumps({"id": event_id, "type": type_, "payload": {"id": resource_id, **payload}}).encode()


def test_latest_prefers_the_higher_event_id_whatever_the_arrival_order(log):
    log.record_body(patient_event(10, 1, email="new@example.org"))
    log.record_body(patient_event(5, 1, "patient.created", email="old@example.org"))  # older, delivered late
    log.record_body(patient_event(10, 1, email="new@example.org"))  # a redelivery
    log.record_body(patient_event(7, 2, email="two@example.org"))
    latest = log.latest()
    assert list(latest.columns[:5]) == ["resource_id", "event_id", "received_at", "type", "source"]
    assert latest[["resource_id", "event_id", "payload.email"]].values.tolist() == [
        [1, 10, "new@example.org"], [2, 7, "two@example.org"]]
    assert latest["source"].tolist() == ["delivery", "delivery"] and str(latest["resource_id"].dtype) == "Int64"


def test_latest_keeps_one_family_and_skips_events_without_a_resource(log):
    log.record_body(patient_event(1, 1))
    log.record_body(patient_event(2, 1, "device.lowBattery"))
    log.record_body(json.dumps({"id": 3, "type": "patient.updated", "payload": {"note": "no id"}}).encode())
    assert log.latest()["event_id"].tolist() == [1]
    assert log.latest(family="device")["event_id"].tolist() == [2]
    assert log.latest(family="order").empty


def test_guide_shaped_events_are_newest_by_arrival(log):
    for name in ("first", "second"):
        log.record_body(json.dumps({"event": "patient.updated", "data": {"id": 3, "name": name}}).encode())
    assert log.latest()["payload.name"].tolist() == ["second"]


def test_a_backfill_beats_what_was_received_and_loses_to_a_later_higher_id(log):
    log.record_body(patient_event(10, 1, email="stale@example.org"))
    log.record_body(patient_event(20, 2, email="other@example.org"))
    assert log.record_backfill(1, {"id": 1, "email": "api@example.org"}) is True
    row = log.latest().iloc[0]
    assert (row["type"], row["source"], row["payload.email"]) == ("patient.backfill", "backfill", "api@example.org")
    assert row["event_id"] < 0 and log.get(int(row["event_id"]))["headers"] == {}
    log.record_body(patient_event(15, 1, email="older@example.org"))  # older than the log's newest: loses
    assert log.latest()["payload.email"].tolist()[0] == "api@example.org"
    log.record_body(patient_event(21, 1, email="newer@example.org"))
    assert log.latest()["payload.email"].tolist()[0] == "newer@example.org"
    assert "patient.backfill" in set(log.frame()["type"])


def test_recording_the_same_backfill_twice_adds_nothing(log):
    log.record_body(patient_event(10, 1))
    assert log.record_backfill(1, {"id": 1, "email": "a@example.org"}) is True
    assert log.record_backfill(1, {"email": "a@example.org", "id": 1}) is False  # key order does not matter
    assert log.record_backfill(1, {"id": 1, "email": "b@example.org"}) is True  # another state
    assert len(log) == 3
    log.record_body(patient_event(11, 2))
    assert log.record_backfill(1, {"id": 1, "email": "a@example.org"}) is True  # something new arrived since
    body_of = dict(log.bodies([int(log.latest()["event_id"].iloc[0])]))
    (raw,) = body_of.values()
    assert set(json.loads(raw)) == {"id", "type", "payload"}


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((0, {}), "resource_id"), ((True, {}), "resource_id"), (("5", {}), "resource_id"), ((2**63, {}), "resource_id"),
        ((1, [1]), "payload"), ((1, {"x": float("nan")}), "payload"), ((1, {"x": object()}), "payload"),
        ((1, {"id": 2}), "payload"), ((1, {"x": "\ud800"}), "payload"),
    ],
)
def test_record_backfill_checks_its_arguments(log, args, field):
    with pytest.raises(ValidationError) as caught:
        log.record_backfill(*args)
    assert caught.value.field_errors[0].field == field and len(log) == 0


def test_record_backfill_checks_the_family(log):
    with pytest.raises(ValidationError, match="family"):
        log.record_backfill(1, {}, family="patient.x")
    with pytest.raises(ValidationError, match="family"):
        log.latest(family="")


# -- bodies and replay/forward attempts ---------------------------------------------------------


def test_bodies_are_given_back_as_received_in_arrival_order(log):
    raws = [body(3), body(1), json.dumps({"event": "x.y", "data": {}}).encode()]
    for raw in raws:
        log.record_body(raw)
    assert [raw for _, raw in log.bodies()] == raws
    assert list(log.bodies([1, 999, 3])) == [(3, raws[0]), (1, raws[1])]
    assert list(log.bodies([])) == []
    with pytest.raises(ValidationError, match="event_ids"):
        log.bodies(["3"])


def test_attempts_round_trip(log):
    log.record_body(body(1))
    log.record_attempt(event_id=1, kind="replay", target="http://127.0.0.1:9/hook", status_code=200, latency_ms=3.5)
    log.record_attempt(event_id=1, kind="forward", target="http://127.0.0.1:9/hook", status_code=None, latency_ms=0,
                       error="connection refused", attempted_at="2025-01-01T00:00:00Z")
    attempts = log.attempts()
    assert list(attempts.columns) == ["event_id", "kind", "target", "attempted_at", "status_code", "latency_ms", "error"]
    assert attempts["kind"].tolist() == ["replay", "forward"] and attempts["status_code"].tolist()[0] == 200
    assert attempts["status_code"].isna().tolist() == [False, True]
    assert str(attempts["attempted_at"].dtype) == "datetime64[ns, UTC]" and str(attempts["status_code"].dtype) == "Int64"
    assert attempts["attempted_at"].iloc[1] == pd.Timestamp("2025-01-01", tz="UTC")


def test_attempts_are_checked_and_credentials_never_stored(log):
    with pytest.raises(ValidationError) as caught:
        log.record_attempt(event_id="1", kind="resend", target="http://user:hunter2secret@127.0.0.1/", status_code=42,
                           latency_ms=-1, attempted_at="not a time")
    fields = [fe.field for fe in caught.value.field_errors]
    assert fields == ["event_id", "kind", "target", "status_code", "latency_ms", "attempted_at"]
    assert "hunter2secret" not in str(caught.value) and log.attempts().empty


# -- a log written by the first schema -----------------------------------------------------------

#: The events table as the first version created it (no source, position, shape, flat).
OLD_SCHEMA = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id INTEGER NOT NULL UNIQUE, type TEXT NOT NULL,
    resource_id INTEGER, received_at TEXT NOT NULL, last_received_at TEXT NOT NULL,
    delivery_count INTEGER NOT NULL DEFAULT 1, envelope TEXT NOT NULL, payload TEXT, body BLOB NOT NULL,
    headers TEXT NOT NULL, remote_addr TEXT
);
CREATE TABLE rejections (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_at TEXT NOT NULL, status INTEGER NOT NULL, reason TEXT NOT NULL,
    remote_addr TEXT
);
CREATE INDEX events_received_at ON events (received_at);
"""


def test_a_log_of_the_first_schema_opens_keeps_its_events_and_gains_the_columns(tmp_path):
    path = tmp_path / "old.db"
    guide = json.dumps({"event": "patient.updated", "data": {"id": 4, "name": "G"}})
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        for seq, (event_id, envelope, raw) in enumerate([(9, "impilo", patient_event(9, 1, email="b")),
                                                           (5, "impilo", patient_event(5, 1, email="a")),
                                                           (77, "guide", guide.encode())]):
            data = json.loads(raw)
            payload = data.get("payload", data.get("data"))
            db.execute(
                "INSERT INTO events (event_id, type, resource_id, received_at, last_received_at, envelope, payload, body,"
                " headers) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{}')",
                (event_id, data.get("type", "patient.updated"), payload["id"], f"2025-01-01T00:00:0{seq}.000000Z",
                 f"2025-01-01T00:00:0{seq}.000000Z", envelope, json.dumps(payload), raw),
            )
    with EventLog(path) as log:
        assert len(log) == 3 and log.frame()["payload.email"].tolist()[:2] == ["b", "a"]
        assert log.latest()[["resource_id", "event_id"]].values.tolist() == [[1, 9], [4, 77]]
        log.record_body(patient_event(10, 1, email="c"))
        assert log.latest()["payload.email"].tolist()[0] == "c"
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
        positions = db.execute("SELECT event_id, position, source FROM events ORDER BY seq").fetchall()
    assert {"source", "position", "shape", "flat"} <= columns
    assert positions == [(9, 9, "delivery"), (5, 5, "delivery"), (77, None, "delivery"), (10, 10, "delivery")]
    with EventLog(path) as again:  # opening twice changes nothing more
        assert len(again) == 4


@pytest.mark.parametrize("target", ["mysql://db.example.org/events", "sqlite:///events.db", "https://example.org/log"])
def test_a_url_of_another_scheme_is_refused_not_made_into_a_folder(tmp_path, monkeypatch, target):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="not an event log backend"):
        EventLog(target)
    assert list(tmp_path.iterdir()) == []
