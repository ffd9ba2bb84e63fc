"""SyncView in JupyterLab in Chromium: an outage leaves patients stale, Backfill repairs them.

The test writes a small notebook (a receiver, an outage while two patients change, then the
view), runs it in the module's own JupyterLab and sandbox, clicks Backfill in the page and
reads the verdict the widget shows.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tests.e2e.test_jupyterlab import open_and_run_all, wait_until_done

pytestmark = pytest.mark.e2e

NOTEBOOK = "sync_view_e2e.ipynb"

SETUP = """
import os
import tempfile

import impilo_nb as nb

client = nb.connect()
log = nb.EventLog(os.path.join(tempfile.mkdtemp(), "events.db"))
receiver = nb.WebhookReceiver(log).start()
for kind in ("patient.created", "patient.updated"):
    client.webhooks.create(type=kind, url=receiver.url)
patients = [client.patients.create({"firstName": f"Sync{n}", "lastName": "Browser"}) for n in range(3)]
assert log.wait_for(3, timeout=60)
receiver.stop()  # the outage: the next two changes never reach the log
for patient in patients[:2]:
    client.patients.patch(patient.id, {"email": f"sync{patient.id}@example.org"})
"""


def test_backfill_in_the_browser_turns_the_verdict_in_sync(page, lab):
    cells = [new_code_cell(SETUP.strip()), new_code_cell("nb.widgets.SyncView(client, log)")]
    kernel = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}}
    nbformat.write(new_notebook(cells=cells, metadata=kernel), lab.notebooks / NOTEBOOK)
    open_and_run_all(page, lab, NOTEBOOK)
    wait_until_done(page)
    view = page.locator(".jp-OutputArea-output").filter(has=page.get_by_role("button", name="Backfill"))
    verdict = view.locator(".impilo-sync-verdict")
    verdict.wait_for(timeout=30_000)
    assert re.search(r"2 patients stale", verdict.inner_text()), verdict.inner_text()
    assert view.get_by_role("tab", name="Stale").count() == 1
    assert view.locator("table").get_by_text("sync1@example.org").count() == 1  # the stale field's new value

    view.get_by_role("button", name="Backfill").click()
    view.locator(".impilo-sync-verdict", has_text=re.compile(r"^\s*Sync check: in sync\s*$")).wait_for(timeout=30_000)
    view.get_by_text("Backfill recorded 2 events").wait_for(timeout=10_000)
    assert view.get_by_role("button", name="Backfill").is_enabled()
