"""JupyterLab in Chromium: the notebooks run, and the widgets render and work in a real page.

A missing widgets front end shows "Error displaying widget" (or only a text fallback) while
every Python test passes; these tests catch that. Each scenario saves a screenshot of its end
state under its temporary folder.
"""

from __future__ import annotations

import re

import pytest

import impilo_nb as nb

pytestmark = pytest.mark.e2e

NOTEBOOK_TIMEOUT = 90_000  # ms: notebook 03 waits ~10 s for a webhook retry


def open_and_run_all(page, lab, name: str) -> None:
    # ?reset: a clean workspace, so no notebook of an earlier scenario comes back and takes the menu's commands.
    page.goto(f"{lab.url}/lab/tree/{name}?reset")
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current", has_text=name).wait_for(timeout=60_000)
    page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(timeout=60_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.locator("li[data-command='runmenu:run-all']").click()


def wait_until_done(page) -> None:
    """Until no cell is queued or running ("[*]") and the kernel is idle."""
    page.wait_for_function(
        """() => ![...document.querySelectorAll('.jp-InputArea-prompt')].some(p => p.textContent.includes('*'))
              && document.querySelector(".jp-Notebook-ExecutionIndicator[data-status='idle']") !== null""",
        timeout=NOTEBOOK_TIMEOUT,
    )


def text_input(scope, label: str):
    return scope.locator(".widget-text", has=scope.page.get_by_text(label, exact=True)).locator("input")


def client_for(sandbox) -> nb.ImpiloClient:
    return nb.ImpiloClient(base_url=sandbox.url, api_key=sandbox.api_key)


def test_create_a_patient_with_the_form(page, lab, e2e_sandbox):
    open_and_run_all(page, lab, "01_create_patient.ipynb")
    form = page.locator(".jp-OutputArea-output").filter(has=page.get_by_role("button", name="Create patient"))
    text_input(form, "First name *").fill("Zelda")
    text_input(form, "Last name *").fill("Quist")
    text_input(form, "Email").fill("zelda.quist@example.org")
    form.locator(".widget-datepicker input").fill("1980-05-06")
    form.locator(".widget-dropdown", has=page.get_by_text("Sex", exact=True)).locator("select").select_option("female")
    form.get_by_role("button", name="Create patient").click()
    page.get_by_text(re.compile(r"Created patient \d+: Zelda Quist")).wait_for(timeout=30_000)
    wait_until_done(page)
    stored = client_for(e2e_sandbox).patients.list(name="zelda quist")
    (patient,) = list(stored)
    assert (patient.first_name, patient.last_name, patient.email, patient.sex) == (
        "Zelda",
        "Quist",
        "zelda.quist@example.org",
        "female",
    )
    assert patient.date_of_birth.isoformat() == "1980-05-06"


def test_search_load_edit_and_save(page, lab, e2e_sandbox):
    open_and_run_all(page, lab, "02_update_patient.ipynb")
    wait_until_done(page)
    search = page.locator(".jp-OutputArea-output").filter(has=page.get_by_role("button", name="Search"))
    search.get_by_placeholder("part of a name").fill("Rivers")
    search.get_by_role("button", name="Search").click()
    page.get_by_text("1 patient found").wait_for(timeout=15_000)
    results = search.locator("select").first
    results.select_option(label=results.locator("option", has_text="Bruno Rivers").first.text_content())
    page.get_by_text(re.compile(r"Loaded patient \d+: Bruno Rivers")).wait_for(timeout=15_000)
    text_input(search, "Email").fill("bruno.rivers@clinic.example.org")
    search.get_by_text("Saving will change 1 field").wait_for(timeout=10_000)
    search.get_by_role("button", name="Save changes").click()
    page.get_by_text(re.compile(r"Saved patient \d+: Bruno Rivers")).wait_for(timeout=15_000)
    stored = client_for(e2e_sandbox).patients.find_by_external_id("crm-000124")
    assert stored.email == "bruno.rivers@clinic.example.org"


def test_webhook_log_view_shows_deliveries_and_timeline(page, lab):
    open_and_run_all(page, lab, "03_webhooks.ipynb")
    wait_until_done(page)
    view = page.locator(".jp-OutputArea-output").filter(has=page.get_by_role("button", name="Refresh"))
    view.get_by_text(re.compile(r"^\s*3 events")).wait_for(timeout=15_000)
    assert view.locator("table").get_by_text("patient.created").count() >= 1
    assert view.locator("table").get_by_text("patient.updated").count() >= 2
    view.get_by_role("tab", name="Timeline").click()
    timeline = view.locator("img").first
    timeline.wait_for(state="visible", timeout=10_000)
    assert timeline.evaluate("img => img.naturalWidth") > 0
