"""A new user's first hour in JupyterLab, set up as ``make lab`` sets it up.

No news pop-up, notebooks trusted, kernels without the "TCP without encryption" warning, and
notebook 01's form showing the patient it saved where the user is looking (under its button,
and in the table of patients the form redraws), after Run All drew everything else.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.lab import MAKE_LAB_ARGS, MAKE_LAB_PAGE_CONFIG, ROOT
from tests.e2e.test_jupyterlab import NOTEBOOK_TIMEOUT, text_input, wait_until_done

pytestmark = pytest.mark.e2e

NOTEBOOK = "01_create_patient.ipynb"


def test_the_browser_tests_lab_is_set_up_as_make_lab_sets_it_up():
    script = (ROOT / "scripts" / "lab").read_text()
    for arg in MAKE_LAB_ARGS:
        assert arg in script, f"scripts/lab no longer passes {arg}; update MAKE_LAB_ARGS in tests/e2e/lab.py to match"
    assert f"echo '{MAKE_LAB_PAGE_CONFIG}'" in script
    assert ".venv/bin/jupyter trust notebooks/*.ipynb" in script


def test_first_hour_in_jupyterlab(page, lab, tmp_path):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?reset")
    page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(timeout=60_000)
    # Before running anything: once run, every cell is trusted whatever the notebook's signature.
    trust = page.locator(".jp-StatusItem-trust")
    title = trust.get_attribute("title") or ""
    assert re.match(r"Notebook trusted: (\d+) of \1 code cells trusted", title), title

    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.locator("li[data-command='runmenu:run-all']").click()
    wait_until_done(page)
    assert page.locator(".jp-Notification-Toast, .Toastify__toast").count() == 0, "a notification pop-up is shown"
    assert page.get_by_text("official Jupyter news").count() == 0
    log = (lab.workdir / "lab.log").read_text()
    assert "Kernel started" in log and "without encryption" not in log

    form = page.locator(".jp-OutputArea-output").filter(has=page.get_by_role("button", name="Create patient"))
    text_input(form, "First name *").fill("Zelda")
    text_input(form, "Last name *").fill("Quist")
    text_input(form, "Email").fill("zelda.quist@example.org")
    form.get_by_role("button", name="Create patient").click()
    result = page.locator(".impilo-saved-patient")
    result.get_by_text("zelda.quist@example.org", exact=True).wait_for(timeout=NOTEBOOK_TIMEOUT)
    status = page.get_by_text(re.compile(r"Created patient \d+: Zelda Quist"))
    assert status.count() == 1
    table = page.locator(".impilo-patient-table")
    table.get_by_text("zelda.quist@example.org", exact=True).wait_for(timeout=NOTEBOOK_TIMEOUT)
    assert table.locator("tbody tr").first.get_by_text("Zelda", exact=True).count() == 1  # newest first

    status.scroll_into_view_if_needed()
    page.mouse.wheel(0, 200)  # the status line, the saved patient under it, the start of the table
    shot = tmp_path / "first_hour.png"
    page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    table.scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "first_hour_table.png"))
    print(f"screenshot: {tmp_path / 'first_hour_table.png'}")
