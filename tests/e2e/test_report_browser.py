"""A shared report in Chromium, opened from file:// with the network watched.

The page must stand alone: nothing but the file itself (and the data:/blob: URLs it makes
from its own bytes) may be requested. Its tables must sort and search in the browser, its
title block must say where the page came from, and masked personal data must be nowhere.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import pytest

from impilo_nb.reports import build_report

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "patients_sample.csv"
ROWS = 40
LONG_ERROR = (
    "sex: Must be one of female, male, other, unknown (got 'f'). The Impilo API refused the whole record; fix the "
    "sex column in the customer file and import again (the rows that were valid have been imported already)."
)

CELLS = [
    "import pandas as pd",
    f"""patients = pd.read_csv({str(SAMPLE)!r}, dtype=str, keep_default_na=False).head({ROWS})
patients["status"] = ["invalid" if i % 4 == 0 else "created" for i in range(len(patients))]
patients["error"] = [{LONG_ERROR!r} if s == "invalid" else "" for s in patients["status"]]
patients[["firstName", "lastName", "email", "status", "error"]]""",
]


def shared_report(tmp_path: Path) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# Rows that need attention"), *map(nbformat.v4.new_code_cell, CELLS)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "attention.ipynb"
    nbformat.write(notebook, path)
    return build_report(path, tmp_path / "out", share=True).html


def test_a_shared_report_works_offline_sorts_searches_and_shows_no_personal_data(browser, tmp_path):
    html = shared_report(tmp_path)
    url = html.resolve().as_uri()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    requested: list[str] = []
    problems: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    context.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
    page = context.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        page.goto(url)
        page.locator("body[data-impilo-tables='ready']").wait_for(timeout=30_000)
        check_title_block(page)
        check_table(page, shot=tmp_path / "shared_report.png")
        text = page.content()
    finally:
        context.close()
    assert [r for r in requested if r != url and not r.startswith(("data:", "blob:"))] == []
    assert problems == []
    sample = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).head(ROWS)
    personal = [v for col in ("firstName", "lastName", "email", "phoneNumber") for v in sample[col] if len(v) > 3]
    assert [v for v in personal if v in text] == []
    assert "In&nbsp;[" not in text and "patients[[" not in text  # no prompts, no code


def check_title_block(page) -> None:
    title = page.locator(".impilo-report-title")
    assert title.is_visible()
    shown = title.inner_text()
    for expected in ("Report: attention", "Generated", "UTC", "Server", "embedded sandbox", "impilo_nb ", "masked"):
        assert expected in shown, (expected, shown)


def check_table(page, *, shot: Path) -> None:
    table = page.locator("table.impilo-interactive")
    rows = table.locator("tbody tr")
    assert rows.count() == 25  # the first page of 40
    error_cell = rows.first.locator("td").last
    assert error_cell.inner_text() == LONG_ERROR  # in full: no "..." cut
    assert error_cell.evaluate("cell => getComputedStyle(cell).textAlign") in ("left", "start")
    assert error_cell.bounding_box()["width"] < 800  # wraps inside its cell, not across the page
    page.get_by_role("searchbox").fill("invalid")
    page.wait_for_function("document.querySelectorAll('table.impilo-interactive tbody tr').length === 10")
    assert all(rows.nth(i).locator("td").nth(3).inner_text() == "invalid" for i in range(rows.count()))
    page.screenshot(path=str(shot))  # the rows that need attention, errors wrapped in their cells
    print(f"screenshot: {shot}")
    page.get_by_role("searchbox").fill("")
    first_before = rows.first.locator("td").nth(3).inner_text()
    table.locator("thead th", has_text="status").click()
    page.wait_for_function(
        "document.querySelector('table.impilo-interactive tbody tr td:nth-of-type(4)').textContent === 'created'"
    )
    assert first_before == "invalid"  # row 0 was invalid; sorted ascending, "created" comes first
