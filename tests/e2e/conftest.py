"""Browser-test fixtures: one sandbox, one JupyterLab and one Chromium for the module."""

from __future__ import annotations

import os

import pytest

import impilo_nb as nb
from tests.e2e.lab import CHROMIUM, CHROMIUM_ARGS, Lab

if not os.path.exists(CHROMIUM):
    pytest.skip(
        f"{CHROMIUM} is missing: `apt-get install chromium` (make test does it when run as root)", allow_module_level=True
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="module")
def e2e_sandbox():
    with nb.Sandbox(time_scale=0.01) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def lab(tmp_path_factory, e2e_sandbox):
    env = {"IMPILO_BASE_URL": e2e_sandbox.url, "IMPILO_API_KEY": e2e_sandbox.api_key}
    disable = os.environ.get("IMPILO_E2E_DISABLE_WIDGETS") == "1"  # to prove the tests notice (see README)
    server = Lab(tmp_path_factory.mktemp("lab"), env, disable_widgets=disable).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request, tmp_path):
    """A fresh page; afterwards a screenshot of the end state (failure.png if the test failed),
    then no browser console error and no "Error displaying widget" may have appeared."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    tab = context.new_page()
    problems: list[str] = []
    tab.on(
        "console", lambda message: problems.append(f"console {message.type}: {message.text}") if message.type == "error" else None
    )
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    yield tab
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    shot = tmp_path / ("failure.png" if failed else "end.png")
    tab.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    widget_errors = tab.get_by_text("Error displaying widget").count()
    context.close()
    if not failed:
        assert widget_errors == 0, f"'Error displaying widget' shown {widget_errors} times; see {shot}"
        assert problems == [], f"browser reported errors (see {shot}): {problems}"
