"""`make dashboard` in Chromium: scripts/dashboard itself, on free ports and temporary data.

The module starts the script as `make dashboard` does (its sandbox, receiver and Voilà), with
its data in a temporary folder: a sandbox database, an event log and a small bulk-results CSV.
Patients are created and changed through the sandbox, so webhooks really are delivered to the
script's receiver. The page is then read as a colleague would: verdict, events, bulk results
with their full error texts, no code, and nothing fetched from anywhere but this machine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest
from playwright.sync_api import expect

import impilo_nb as nb
from tests.e2e.lab import ROOT, free_port

pytestmark = pytest.mark.e2e

SCRIPT = ROOT / "scripts" / "dashboard"

#: An error text longer than pandas' default column width (50), which would cut it with "...".
LONG_ERROR = (
    "address: An address needs lineOne, city, state, zipCode, country; missing: zipCode. "
    "Add the zip code in column address.zipCode, or leave every address column empty."
)
FAILED_ERROR = "The server refused it (503): Service Unavailable; retried 3 times."

#: Where a page may fetch from: this machine, or nowhere (inline data and blobs).
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
LOCAL_SCHEMES = {"data", "blob"}

BULK_ROWS = [
    {"firstName": "Ana", "lastName": "Rivera", "email": "ana@example.org", "status": "created", "patient_id": "1"},
    {"firstName": "Ben", "lastName": "Okafor", "email": "ben@example.org", "status": "invalid", "error": LONG_ERROR},
    {"firstName": "Cleo", "lastName": "Sato", "email": "cleo@example.org", "status": "failed", "error": FAILED_ERROR,
     "http_status": "503"},
]  # fmt: skip


@dataclass
class Running:
    """One started `scripts/dashboard`: its process, ports and output file."""

    process: subprocess.Popen
    url: str
    sandbox_url: str
    receiver_url: str
    output: Path

    def stop(self) -> int:
        """TERM, as Ctrl-C or a service manager would; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
        return True
    except OSError:
        return False


#: Tries at starting the script when a port it was given is taken by another process meanwhile.
PORT_ATTEMPTS = 5


def start_dashboard(workdir: Path, env: dict[str, str], *, port: int, name: str) -> Running:
    """Run scripts/dashboard with ``env``; return once Voilà answers (or fail with its output).

    The ports were free when picked, but another test process may take one before the script
    binds it (the script then stops, saying so): the ports it was to bind are picked again, and
    ``env`` is updated in place so later tests reuse the servers where they really run.
    """
    for attempt in range(1, PORT_ATTEMPTS + 1):
        running = _start_dashboard_once(workdir, {**env, "DASHBOARD_PORT": str(port)}, port=port, name=f"{name}{attempt}")
        if running is not None:
            return running
        port = free_port()
        for key in ("SANDBOX_PORT", "RECEIVER_PORT"):
            if not answers(f"http://127.0.0.1:{env[key]}/openapi.json") and not answers(f"http://127.0.0.1:{env[key]}/health"):
                env[key] = str(free_port())
    pytest.fail(f"scripts/dashboard found no free ports in {PORT_ATTEMPTS} tries; see {workdir}")


def _start_dashboard_once(workdir: Path, env: dict[str, str], *, port: int, name: str) -> Running | None:
    """A started dashboard; None if it stopped because a port was taken."""
    output = workdir / f"{name}.log"
    with open(output, "w") as sink:
        # Its own process group: stopping it must not depend on a terminal's Ctrl-C reaching everyone.
        process = subprocess.Popen([str(SCRIPT)], env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    running = Running(
        process,
        f"http://127.0.0.1:{port}/",
        f"http://127.0.0.1:{env['SANDBOX_PORT']}",
        f"http://127.0.0.1:{env['RECEIVER_PORT']}",
        output,
    )
    deadline = time.monotonic() + 180  # a hang guard for a loaded machine, not a speed check
    while not answers(running.url):
        if process.poll() is not None or time.monotonic() > deadline:
            running.stop()
            if "already in use" in output.read_text():
                return None
            pytest.fail(f"scripts/dashboard did not serve {running.url}:\n{output.read_text()}")
        time.sleep(0.3)
    return running


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The temporary data the script is pointed at, and its environment."""
    workdir = tmp_path_factory.mktemp("dashboard")
    results = workdir / "bulk_results.csv"
    pd.DataFrame(BULK_ROWS).to_csv(results, index=False)
    env = {name: value for name, value in os.environ.items() if not name.startswith("IMPILO_")}
    env |= {
        "SANDBOX_PORT": str(free_port()),
        "RECEIVER_PORT": str(free_port()),
        "SANDBOX_DB": str(workdir / "sandbox.db"),
        "IMPILO_EVENT_LOG": str(workdir / "events.db"),
        "IMPILO_BULK_RESULTS": str(results),
    }
    return workdir, env


@pytest.fixture(scope="module")
def dashboard(data):
    """The script running, with three patients created and one changed, their webhooks received."""
    workdir, env = data
    port = free_port()
    running = start_dashboard(workdir, env, port=port, name="dashboard")
    try:
        client = nb.ImpiloClient(base_url=running.sandbox_url, api_key="sandbox-key")
        patients = [client.patients.create({"firstName": name, "lastName": "Dashboard"}) for name in ("Ana", "Ben", "Cleo")]
        client.patients.patch(patients[0].id, {"email": "ana.dashboard@example.org"})
        with nb.EventLog(env["IMPILO_EVENT_LOG"]) as log:
            assert log.wait_for(4, timeout=60), f"{len(log)} of 4 webhooks received; see {running.output}"
        yield running
    finally:
        status = running.stop()
    # What it started stops with it, the sandbox, the receiver and Voilà, whatever its exit status.
    assert status in (0, 143), f"exit status {status}; see {running.output}"
    for url in (running.url, running.sandbox_url + "/openapi.json", running.receiver_url + "/health"):
        assert not answers(url), f"{url} still answers after the dashboard stopped; see {running.output}"


def cell_after(page, heading_id: str):
    """The code cell (its output) after the markdown cell holding heading ``heading_id`` (Voilà wraps each cell)."""
    heading = page.locator("#rendered_cells .jp-Cell", has=page.locator(f"#{heading_id}"))
    return heading.locator("xpath=following::div[contains(@class, 'jp-CodeCell')][1]")


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in LOCAL_SCHEMES or parts.hostname in LOCAL_HOSTS


def test_the_dashboard_shows_sync_events_and_bulk_results_with_no_code_and_nothing_from_outside(page, dashboard, tmp_path):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("websocket", lambda socket: requested.append(socket.url))
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(dashboard.url)

    verdict = page.locator(".impilo-sync-verdict")
    verdict.wait_for(timeout=120_000)
    assert re.fullmatch(r"\s*Sync check: in sync\s*", verdict.inner_text()), verdict.inner_text()

    events = cell_after(page, "Webhooks-received")
    expect(events).to_contain_text("patient.updated", timeout=30_000)
    expect(events).to_contain_text("patient.created")
    expect(events.locator("table").get_by_text("Ana", exact=True).first).to_be_visible()

    bulk = cell_after(page, "Latest-bulk-import")
    assert bulk.locator("table.impilo-bulk-attention").get_by_text(LONG_ERROR, exact=True).count() == 1  # in full
    assert bulk.get_by_text(FAILED_ERROR, exact=True).count() == 1
    assert "Rows that need attention: 2" in bulk.inner_text()

    text = page.locator("#rendered_cells").inner_text()
    assert page.locator(".jp-CodeCell .jp-InputArea, .jp-CodeMirrorEditor").count() == 0
    assert "Dashboard.from_env" not in text and "page.sync()" not in text, "code is shown"
    assert "Traceback" not in text

    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    # The page scrolls inside #rendered_cells, not the document: a tall viewport shows it all.
    height = page.evaluate("document.querySelector('#rendered_cells').scrollHeight")
    page.set_viewport_size({"width": 1280, "height": height + 40})
    whole = tmp_path / "dashboard-full.png"
    page.screenshot(path=str(whole))
    print(f"screenshot: {whole}")

    outside = sorted({url for url in requested if not is_local(url)})
    assert requested and not outside, f"the page fetched from outside this machine: {outside}"


def test_a_second_start_reuses_the_sandbox_and_receiver_and_registers_no_duplicate(data, dashboard):
    workdir, env = data
    port = free_port()
    again = start_dashboard(workdir, env, port=port, name="again")
    again.stop()
    output = again.output.read_text()
    assert "Using the sandbox already running" in output and "Using the receiver already running" in output, output
    assert "0 registered now" in output, output
    client = nb.ImpiloClient(base_url=dashboard.sandbox_url, api_key="sandbox-key")
    hooks = sorted((hook.type, hook.url) for hook in client.webhooks.list())
    receiver = dashboard.receiver_url + "/webhooks/impilo"
    assert hooks == [("patient.created", receiver), ("patient.updated", receiver)]
    # It stopped only what it started: the first dashboard's servers still answer.
    assert answers(dashboard.sandbox_url + "/openapi.json") and answers(dashboard.receiver_url + "/health")
    assert answers(dashboard.url)
