"""WebhookLogView in JupyterLab in Chromium: the grid filters, gains a column, opens a row's JSON.

The test writes a small notebook (a receiver, a few patients created and one updated, then the
view), runs it in the module's own JupyterLab and sandbox, and drives the grid as a user does:
a per-column filter narrows the rows, the Columns panel adds a column, a click on a row shows
its JSON, the Timeline tab draws the chart. Screenshots at 1280x800: ``log_view.png`` (the
grid with a row's JSON) and ``timeline.png``.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tests.e2e.test_jupyterlab import open_and_run_all, wait_until_done

pytestmark = pytest.mark.e2e

NOTEBOOK = "log_view_e2e.ipynb"
PATIENTS = ["Ada", "Bram", "Chidi", "Dana"]

SETUP = f"""
import os
import tempfile

import impilo_nb as nb

client = nb.connect()
log = nb.EventLog(os.path.join(tempfile.mkdtemp(), "events.db"))
receiver = nb.WebhookReceiver(log).start()
for kind in ("patient.created", "patient.updated"):
    client.webhooks.create(type=kind, url=receiver.url)
patients = [client.patients.create({{"firstName": name, "lastName": "Lindqvist-Okonkwo",
                                     "email": f"{{name.lower()}}.lindqvist@example.org"}})
            for name in {PATIENTS!r}]
client.patients.patch(patients[0].id, {{"phoneNumber": "+1 555 010 2020"}})
assert log.wait_for({len(PATIENTS) + 1}, timeout=60)
"""

EVENTS = len(PATIENTS) + 1


def body_rows(grid):
    return grid.locator("div.dt-scroll-body table.dataTable tbody tr")


def test_filter_pick_a_column_open_a_row_and_the_timeline(page, lab, tmp_path):
    page.set_viewport_size({"width": 1280, "height": 800})
    cells = [new_code_cell(SETUP.strip()), new_code_cell("view = nb.widgets.WebhookLogView(log)\nview")]
    kernel = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}}
    nbformat.write(new_notebook(cells=cells, metadata=kernel), lab.notebooks / NOTEBOOK)
    open_and_run_all(page, lab, NOTEBOOK)
    wait_until_done(page)
    # Fold the file browser (a click on its open tab): the notebook gets the width a reader gives it.
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()
    view = page.locator(".jp-OutputArea-output").filter(has=page.get_by_role("button", name="Refresh"))
    grid = view.locator(".impilo-log-grid")
    view.get_by_text(re.compile(rf"^\s*{EVENTS} events")).wait_for(timeout=30_000)
    page.wait_for_function(f"() => document.querySelectorAll('.impilo-log-grid div.dt-scroll-body tbody tr').length === {EVENTS}",
                           timeout=30_000)

    # A per-column filter (the header's second row) narrows the rows, in the browser.
    headers = grid.locator("div.dt-scroll-head thead tr").first.locator("th")
    titles = [title.strip() for title in headers.all_inner_texts()]
    assert titles[:8] == ["time (UTC)", "event id", "type", "patient", "deliveries", "first name", "last name", "email"]
    first_name = titles.index("first name")
    grid.locator("div.dt-scroll-head thead tr").nth(1).locator("th, td").nth(first_name).locator("input").fill("Ada")
    page.wait_for_function("() => document.querySelectorAll('.impilo-log-grid div.dt-scroll-body tbody tr').length === 2",
                           timeout=10_000)  # Ada's created and updated events
    assert all("Ada" in row for row in body_rows(grid).all_inner_texts())
    grid.locator("div.dt-scroll-head thead tr").nth(1).locator("th, td").nth(first_name).locator("input").fill("")
    page.wait_for_function(f"() => document.querySelectorAll('.impilo-log-grid div.dt-scroll-body tbody tr').length === {EVENTS}",
                           timeout=10_000)

    # The Columns panel adds a column: its header appears.
    view.get_by_text("Columns", exact=True).click()
    view.locator(".widget-checkbox", has=page.get_by_text("payload.phoneNumber", exact=True)).locator("input").check()
    grid.locator("div.dt-scroll-head th", has_text="payload.phoneNumber").wait_for(timeout=15_000)
    assert body_rows(grid).filter(has_text="+1 555 010 2020").count() == 1
    view.get_by_text("Columns", exact=True).click()  # fold the panel again

    # A click on a row shows its JSON under the grid.
    body_rows(grid).filter(has_text="Chidi").first.click()
    detail = view.locator(".impilo-log-detail pre")
    detail.wait_for(timeout=15_000)
    assert '"firstName": "Chidi"' in detail.inner_text() and '"type": "patient.created"' in detail.inner_text()
    assert body_rows(grid).filter(has_text="Chidi").first.evaluate("row => row.classList.contains('selected')")

    # Nothing clipped: the grid fits its output area (wide content scrolls inside it), one line per cell.
    area = view.bounding_box()
    assert area is not None
    grid_box = grid.bounding_box()
    assert grid_box is not None and grid_box["x"] + grid_box["width"] <= area["x"] + area["width"] + 1
    scroller = grid.locator("div.dt-scroll-body")
    assert scroller.evaluate("box => getComputedStyle(box).overflowX") in ("auto", "scroll")  # wide rows scroll
    row_heights = {round(box["height"]) for box in (row.bounding_box() for row in body_rows(grid).all()) if box}
    assert len(row_heights) == 1, f"rows of different heights (a wrapped cell?): {row_heights}"
    view.locator(".widget-hbox").first.evaluate("box => box.scrollIntoView({block: 'start'})")
    shot = tmp_path / "log_view.png"
    page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")

    view.get_by_role("tab", name="Timeline").click()
    timeline = view.locator("img").first
    timeline.wait_for(state="visible", timeout=30_000)
    assert timeline.evaluate("img => img.naturalWidth") > 0
    view.locator(".widget-hbox").first.evaluate("box => box.scrollIntoView({block: 'start'})")
    shot = tmp_path / "timeline.png"
    page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
