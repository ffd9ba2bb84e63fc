"""Shared fixtures: a real sandbox server on loopback, and a client for it."""

from __future__ import annotations

import pytest

import impilo_nb as nb
from tests import pg


@pytest.fixture(autouse=True)
def _no_platform_env(monkeypatch):
    """Tests never talk to the real platform, whatever the developer's shell exports."""
    monkeypatch.delenv("IMPILO_BASE_URL", raising=False)
    monkeypatch.delenv("IMPILO_API_KEY", raising=False)


@pytest.fixture
def sandbox():
    with nb.Sandbox() as running:
        yield running


#: A sandbox whose webhook retries follow after 0.18, 0.36 and 0.72 s: an outage runs its course
#: in about a second.
FAST_TIME_SCALE = 0.0002

#: Seconds before a wait gives up. Only stops a hung test: no outcome depends on the machine's speed.
HANG_GUARD = 60.0


@pytest.fixture
def fast_sandbox():
    with nb.Sandbox(time_scale=FAST_TIME_SCALE) as running:
        yield running


@pytest.fixture
def api(fast_sandbox):
    """A client of ``fast_sandbox``."""
    with nb.ImpiloClient(base_url=fast_sandbox.url, api_key=fast_sandbox.api_key, timeout=HANG_GUARD) as client:
        yield client


@pytest.fixture
def client(sandbox):
    with nb.ImpiloClient(base_url=sandbox.url, api_key=sandbox.api_key, max_retries=2) as api:
        yield api


def make_patient(n: int = 1, **overrides) -> dict:
    """A valid camelCase patient record, distinct for each ``n``."""
    record = {
        "externalIdentifier": f"ext-{n:05d}",
        "firstName": f"First{n}",
        "lastName": f"Last{n}",
        "dateOfBirth": "1975-04-02",
        "email": f"person{n}@example.org",
        "phoneNumber": "+1 555 123 4567",
        "sex": "female",
        "address": {"lineOne": f"{n} Elm Road", "city": "Springfield", "state": "IL", "zipCode": "62701", "country": "USA"},
    }
    record.update(overrides)
    return record


#: The event-log backends every event-log and receiver test runs against: a SQLite file, and a
#: database on a real PostgreSQL server started once for the session (tests/pg.py).
LOG_BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the whole session, on loopback; skips when none is installed."""
    if pg.bin_dir() is None:
        pytest.skip(pg.INSTALL_HINT)
    with pg.PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server):
    """The URL of a new, empty database on the session's PostgreSQL server."""
    return postgres_server.database()


@pytest.fixture(params=LOG_BACKENDS)
def log_target(request, tmp_path):
    """Where a fresh, empty event log lives for this test: a SQLite path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "events.db"
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    raise AssertionError(f"unknown event-log backend {request.param!r}")
