"""The event log on a real PostgreSQL server (tests/pg.py): what only this backend has to get right.

URLs are shown without their password; an unreachable server is a ConfigurationError at open and
an EventLogUnavailableError (503 at the receiver) afterwards, until the server is back, when the
same EventLog carries on; writers in several threads and processes keep one row per event id; a
reader following ``seq`` never skips a row that commits late; nothing secret reaches the database.
Every test that applies to SQLite as well runs on both in tests/test_eventlog.py and
tests/test_receiver.py (the ``log_target`` fixture).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading

import psycopg
import pytest
import requests

import impilo_nb as nb
from impilo_nb._time import poll_until
from impilo_nb.errors import EventLogUnavailableError
from impilo_nb.eventlog.postgres import DEFAULT_POOL_SIZE, PostgresStore, redacted_url
from impilo_nb.eventlog.store import EventQuery
from tests import pg

PASSWORD = "pg-Passw0rd-never-shown"

#: Seconds before a wait gives up: only stops a hung test, no outcome depends on speed.
HANG_GUARD = 60.0


def body(event_id: int, type_: str = "patient.updated", **payload) -> bytes:
    return json.dumps({"id": event_id, "type": type_, "payload": {"id": 7, **payload}}).encode()


def with_password(url: str) -> str:
    return url.replace("impilo@", f"impilo:{PASSWORD}@")


def wait_until(condition, timeout: float = HANG_GUARD) -> bool:
    return poll_until(condition, timeout=timeout)


# --- URLs and what is shown ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://team:s3cr3t-pass@db.example.org:5433/events", "postgresql://team@db.example.org:5433/events"),
        ("postgres://team:p%40ss%3Aword@db/events", "postgres://team@db/events"),
        ("postgresql://team@db/events?password=s3cr3t-pass&sslmode=require", "postgresql://team@db/events?sslmode=require"),
        ("postgresql://team:s3cr3t-pass@h1:5432,h2:5433/events", "postgresql://team@h1:5432,h2:5433/events"),
        ("postgresql://db.example.org/events", "postgresql://db.example.org/events"),
        ("postgresql://user:pa@ss@db/events", "postgresql://user@db/events"),  # an unescaped @ in the password
        ("postgresql://u:p@ss/word9@db/events", "postgresql://u@db/events"),  # ... and a / after it
        ("postgresql://u:pa#ss9wd@db/events", "postgresql://u@db/events"),
        ("postgresql://u:pa?ss9wd@db/events", "postgresql://u@db/events"),
        ("postgresql://u@db/events?PASSWORD=s3cr3t-pass", "postgresql://u@db/events"),  # libpq refuses it, naming it
        ("postgresql://u@db/events?password=s3cr3t-one&Password=s3cr3t-two&sslmode=require",
         "postgresql://u@db/events?sslmode=require"),
    ],
)
def test_a_url_is_shown_without_its_password(url, shown):
    assert redacted_url(url) == shown


def test_where_repr_and_html_show_no_password(postgres_url):
    with nb.EventLog(with_password(postgres_url)) as log:
        log.record_body(body(1))
        shown = [repr(log), log._repr_html_()]
    assert log.path is None
    assert all(postgres_url in text and PASSWORD not in text for text in shown)


def test_a_server_that_does_not_answer_is_named_without_the_password():
    port = pg.free_port()  # nothing listens there
    with pytest.raises(nb.ConfigurationError) as raised:
        nb.EventLog(f"postgresql://team:{PASSWORD}@127.0.0.1:{port}/teamlog")
    text = str(raised.value) + repr(raised.value)
    assert f"host 127.0.0.1, port {port}, database teamlog as user team" in text
    assert "PGPASSWORD" in text and PASSWORD not in text


def test_a_database_that_does_not_exist_is_named(postgres_server):
    with pytest.raises(nb.ConfigurationError) as raised:
        nb.EventLog(with_password(postgres_server.url("no_such_db")))
    assert 'database "no_such_db" does not exist' in str(raised.value) and PASSWORD not in str(raised.value)


def test_a_url_libpq_cannot_read_is_refused_without_the_password():
    with pytest.raises(nb.ConfigurationError) as raised:
        nb.EventLog(f"postgresql://team:{PASSWORD}@db/events?no_such_option=1")
    assert "postgresql://team@db/events" in str(raised.value) and PASSWORD not in str(raised.value)


@pytest.mark.parametrize("password", ["p4ss@w0rd5/word9", "pw/with9/slashes9", "xq7:yq7@zq7?wq7#vq7"])
def test_a_password_libpq_would_cut_in_two_is_refused_showing_none_of_it(postgres_server, password):
    """Unescaped, libpq takes part of such a password for the host or database and quotes it in errors."""
    with pytest.raises(nb.ConfigurationError, match="PGPASSWORD") as raised:
        nb.EventLog(f"postgresql://impilo:{password}@127.0.0.1:{postgres_server.port}/postgres")
    text = str(raised.value) + repr(raised.value)
    assert not [piece for piece in re.split(r"[@/?#:]", password) if len(piece) >= 3 and piece in text], text


def test_an_uppercase_password_parameter_is_refused_without_showing_it():
    secret = "never-registered-elsewhere-4711"  # so no earlier test's masking can hide it
    with pytest.raises(nb.ConfigurationError, match="PASSWORD") as raised:
        nb.EventLog(f"postgresql://team@127.0.0.1:{pg.free_port()}/events?PASSWORD={secret}")
    assert secret not in str(raised.value) + repr(raised.value)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "8"])
def test_pool_size_must_be_a_whole_number(postgres_url, bad):
    with pytest.raises(nb.ConfigurationError, match="pool_size"):
        PostgresStore(postgres_url, pool_size=bad)


def test_without_psycopg_the_error_names_the_extra(monkeypatch, postgres_url):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as when it is not installed
    monkeypatch.delitem(sys.modules, "impilo_nb.eventlog.postgres")
    with pytest.raises(nb.ConfigurationError) as raised:
        nb.EventLog(postgres_url)
    assert "pip install 'impilo_nb[postgres]'" in str(raised.value)


# --- Secrets never reach the database -----------------------------------------------------------


def test_no_credential_header_anywhere_in_the_database(postgres_server, postgres_url):
    with nb.EventLog(postgres_url) as log:
        log.record_body(body(1), headers={"Impilo-Webhook-Secret": "whsec-0123456789", "Authorization": "Bearer tok-98765"})
        log.record_rejection(401, "wrong Impilo-Webhook-Secret")
    dump = subprocess.run([str(postgres_server.bin / "pg_dump"), postgres_url], capture_output=True, text=True, check=True).stdout
    assert "INSERT" in dump or "COPY public.events" in dump  # the dump holds the rows
    assert "whsec-0123456789" not in dump and "tok-98765" not in dump


# --- What PostgreSQL's types would refuse is stored as on SQLite, but for NUL in a type --------------


def test_nan_and_nul_in_a_payload_are_kept_and_nul_in_a_type_is_422(postgres_url):
    with nb.EventLog(postgres_url) as log:
        with pytest.raises(nb.InvalidDeliveryError) as raised:
            log.record_body(b'{"id": 1, "type": "x\\u0000y", "payload": {}}')
        assert raised.value.status == 422 and "NUL" in raised.value.reason
        log.record_body(b'{"id": 2, "type": "x.y", "payload": {"w": NaN, "note": "a\\u0000b"}}')  # no json type takes NaN
        payload = log.get(2)["payload"]
        assert payload["note"] == "a\x00b" and payload["w"] != payload["w"] and len(log) == 1


def test_payload_keys_keep_their_order(postgres_url):
    with nb.EventLog(postgres_url) as log:
        log.record_body(b'{"id": 1, "type": "x.y", "payload": {"zeta": 1, "id": 2, "alpha": 3}}')
        assert list(log.frame().columns[5:]) == ["payload.zeta", "payload.id", "payload.alpha"]


# --- Outages: record raises while the server is down, and the same log carries on after ----------


@pytest.fixture
def restartable(postgres_server):
    """The session's server, started again after the test whatever happened."""
    yield postgres_server
    if not postgres_server.running():
        postgres_server.start()


def test_server_down_then_back_the_same_log_carries_on(restartable, postgres_url):
    with nb.EventLog(postgres_url) as log:
        assert log.record_body(body(1)) == 1
        restartable.stop()
        with pytest.raises(EventLogUnavailableError) as raised:
            log.record_body(body(2))
        assert isinstance(raised.value, OSError) and "reconnects by itself" in str(raised.value)
        with pytest.raises(EventLogUnavailableError):
            len(log)
        restartable.start()
        assert log.record_body(body(2)) == 1 and log.record_body(body(1)) == 2
        assert log.frame()["event_id"].tolist() == [1, 2]


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_restart_between_calls_costs_no_failed_call(restartable, postgres_url, mode):
    """Every pooled connection is to the old server; each is noticed as closed before use."""
    with nb.EventLog(postgres_url) as log:
        barrier = threading.Barrier(DEFAULT_POOL_SIZE)

        def fill_the_pool(n: int) -> None:
            barrier.wait(HANG_GUARD)  # all at once, so the pool opens every connection it may
            log.record_body(body(100 + n))

        workers = [threading.Thread(target=fill_the_pool, args=(n,)) for n in range(DEFAULT_POOL_SIZE)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        restartable.stop(mode)
        restartable.start()
        for n in range(2 * DEFAULT_POOL_SIZE):
            assert log.record_body(body(n)) == 1
        assert len(log) == 3 * DEFAULT_POOL_SIZE


def test_the_receiver_answers_503_while_the_server_is_down(restartable, postgres_url):
    with nb.EventLog(postgres_url) as log, nb.WebhookReceiver(log) as receiver:
        restartable.stop()
        down = requests.post(receiver.url, data=body(1), timeout=HANG_GUARD)
        restartable.start()
        up = requests.post(receiver.url, data=body(1), timeout=HANG_GUARD)
        assert (down.status_code, up.status_code) == (503, 200)
        assert "Retry-After" in down.headers and "retry later" in down.json()["error"]
        assert len(log) == 1 and log.get(1)["delivery_count"] == 1


# --- Many writers: one row per event id, every delivery counted ------------------------------------


def test_two_logs_in_many_threads_writing_the_same_ids_sum_their_counts(postgres_url):
    ids, rounds = 20, 5
    logs = [nb.EventLog(postgres_url) for _ in range(2)]
    try:
        def write(log) -> None:
            for _ in range(rounds):
                for event_id in range(ids):
                    log.record_body(body(event_id))

        workers = [threading.Thread(target=write, args=(logs[n % 2],)) for n in range(6)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        frame = logs[0].frame()
    finally:
        for log in logs:
            log.close()
    assert sorted(frame["event_id"]) == list(range(ids))
    assert set(frame["delivery_count"]) == {6 * rounds}


WRITER = """
import json, sys
import impilo_nb as nb
url, ids, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
log = nb.EventLog(url)
sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.readline()
for _ in range(rounds):
    for n in range(ids):
        log.record_body(json.dumps({"id": n, "type": "x.y", "payload": {"id": n}}).encode())
"""


def test_processes_opening_one_new_database_at_once_and_writing_the_same_ids(postgres_url):
    """Schema setup races (every process finds no table) and the same ids from every process."""
    processes, ids, rounds = 2, 100, 3
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, postgres_url, str(ids), str(rounds)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    # Each has opened the log (so created the schema, all at about the same moment): now write.
    ready = [writer.stdout.readline() for writer in writers]
    for writer in writers:
        writer.stdin.write("go\n")
        writer.stdin.flush()
    errors = [writer.communicate(timeout=HANG_GUARD)[1] for writer in writers]
    assert ready == ["ready\n"] * processes, errors
    assert [writer.returncode for writer in writers] == [0] * processes, errors
    with nb.EventLog(postgres_url) as log:
        frame = log.frame()
    assert sorted(frame["event_id"]) == list(range(ids)) and set(frame["delivery_count"]) == {processes * rounds}


def test_schema_setup_by_many_sessions_at_once_on_a_new_database(postgres_url):
    """Eight sessions find no table at the same moment; without the advisory lock most fail
    on PostgreSQL's catalog (duplicate key in pg_type), with it every one opens the log."""
    barrier = threading.Barrier(8)
    errors: list[Exception] = []

    def open_log() -> None:
        barrier.wait(HANG_GUARD)
        try:
            nb.EventLog(postgres_url).close()
        except Exception as exc:
            errors.append(exc)

    openers = [threading.Thread(target=open_log) for _ in range(8)]
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join()
    assert errors == []


def test_an_events_table_of_another_application_is_left_untouched(postgres_server, postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id serial PRIMARY KEY, title text)")
        conn.execute("INSERT INTO events (title) VALUES ('launch')")
    with pytest.raises(nb.ConfigurationError, match="not an event log's"):
        nb.EventLog(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        tables = {name for (name,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert tables == {"events"} and conn.execute("SELECT title FROM events").fetchall() == [("launch",)]


def test_a_payload_of_many_keys_is_stored_and_a_log_made_before_shape_digests_gains_them(postgres_url):
    """Shapes were once UNIQUE on their names, which a btree entry (~2.7 kB) cannot hold for a
    payload of a few hundred keys: such a delivery was refused as 'cannot be reached' (503) for ever."""
    with nb.EventLog(postgres_url) as log:
        log.record_body(body(1, email="a@example.org"))
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # back to the earlier version's table
        conn.execute("DROP INDEX shapes_digest")
        conn.execute("ALTER TABLE shapes DROP COLUMN digest, ADD CONSTRAINT shapes_names_key UNIQUE (names)")
    wide = {f"field_{n:04d}": n for n in range(1000)}
    with nb.EventLog(postgres_url) as log:
        log.record_body(body(2, email="b@example.org"))  # the shape stored before the upgrade
        log.record_body(body(3, **wide))
        frame = log.frame()
        assert frame["payload.email"].tolist()[:2] == ["a@example.org", "b@example.org"]
        assert frame.loc[2, "payload.field_0999"] == 999 and frame.shape == (3, 5 + 2 + 1000)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM shapes").fetchone() == (2,)


@pytest.mark.parametrize("table", ["shapes", "rejections", "attempts"])
def test_another_applications_table_of_a_name_the_log_uses_is_left_untouched(postgres_url, table):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, name text)")
        conn.execute(f"INSERT INTO {table} (name) VALUES ('theirs')")
    with pytest.raises(nb.ConfigurationError, match=f"'{table}' table that is not an event log's"):
        nb.EventLog(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        tables = {name for (name,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        columns = [name for (name,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position", (table,))]
        assert tables == {table} and columns == ["id", "name"]
        assert conn.execute(f"SELECT name FROM {table}").fetchall() == [("theirs",)]


# --- Reading what is new by seq never skips a row that commits late --------------------------------


def test_a_reader_following_seq_waits_for_a_write_still_in_flight(postgres_url):
    """A writer takes seq 1 and has not committed; another takes seq 2 and commits. A reader
    asking for rows after seq 0 must not get 2 without 1 (it would never ask for 1 again)."""
    store = PostgresStore(postgres_url)
    slow = psycopg.connect(postgres_url)  # a transaction of its own, left open
    try:
        slow.execute(
            "INSERT INTO events (event_id, type, received_at, last_received_at, envelope, body, headers)"
            " SELECT 1, 'x.y', now(), now(), 'impilo', '', '{}' FROM (SELECT pg_advisory_xact_lock_shared(%s)) AS settled",
            (store_write_lock(),),
        )
        nb.EventLog(postgres_url).record_body(body(2, "x.y"))
        seen: list[list[int]] = []
        reader = threading.Thread(target=lambda: seen.append(
            [event_id for batch in store.events(EventQuery(after_seq=0)) for event_id in json.loads(batch.columns[2])]))
        reader.start()
        assert wait_until(lambda: _waiting_for_advisory_lock(postgres_url))  # the reader waits for the writer
        assert seen == []
        slow.commit()
        reader.join(HANG_GUARD)
        assert seen == [[1, 2]]
    finally:
        slow.close()
        store.close()


def store_write_lock() -> int:
    from impilo_nb.eventlog.postgres import WRITE_LOCK

    return WRITE_LOCK


def _waiting_for_advisory_lock(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()
        return bool(row and row[0])


# --- The command line ------------------------------------------------------------------------------


def test_receiver_command_on_postgresql_prints_the_url_without_the_password(postgres_url):
    port = pg.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "impilo_nb", "receiver", "--db", with_password(postgres_url), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = process.stdout.readline()
        assert f"into {postgres_url} " in line and PASSWORD not in line, line
        assert requests.post(f"http://127.0.0.1:{port}/webhooks/impilo", data=body(1), timeout=HANG_GUARD).status_code == 200
    finally:
        process.terminate()
        process.wait(HANG_GUARD)
    with nb.EventLog(postgres_url) as log:
        assert len(log) == 1
