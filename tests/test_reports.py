import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pandas as pd
import pytest

import impilo_nb as nb
from impilo_nb.reports import ReportError, build_report, external_loads, mask_html, mask_text, render_for_report

ROOT = Path(__file__).parent.parent
SAMPLE = ROOT / "data" / "patients_sample.csv"


def small_notebook(tmp_path: Path, *cells: str) -> Path:
    notebook = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("base_url = None\ngreeting = 'hello'")
    params.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell("# Title"), params, *(nbformat.v4.new_code_cell(c) for c in cells)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "small.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("contact ana.rivera@example.org today", "contact ••• today"),
        ("call +1 (429) 555-9847 now", "call ••• now"),
        ("email: Not an email address: 'x@'.", "email: Not an email address: '•••'."),
        ("email: Not an email address: 'two@@example.org...", "email: Not an email address: '•••'"),
        ("Patient(first_name='Ana', date_of_birth=datetime.date(1975, 4, 2))", "Patient(first_name='•••', date_of_birth='•••')"),
        ("488 created, 2,000 rows, patient 1234567, event 576384731234567890", None),
        ("sex: Must be one of female (got 'f').", None),
    ],
)
def test_mask_text(text, kept):
    assert mask_text(text) == (kept if kept is not None else text)


def test_mask_html_masks_personal_columns_and_key_value_rows():
    frame = pd.DataFrame({"id": [1], "firstName": ["Ana"], "address.lineOne": ["10 Elm Road"], "status": ["created"]})
    masked = mask_html(frame.to_html())
    assert "Ana" not in masked and "10 Elm Road" not in masked and "created" in masked and "<td>1</td>" in masked
    kv = "<table><tr><th>lastName</th><td>Rivera</td></tr><tr><th>sex</th><td>female</td></tr></table>"
    assert "Rivera" not in mask_html(kv) and "female" in mask_html(kv)


def test_external_loads_finds_what_a_page_would_fetch():
    page = (
        '<script src="https://cdn.example/x.js"></script><link href="//cdn.example/s.css" rel="stylesheet">'
        '<img src="data:image/png;base64,AAAA"><a href="https://example.org">a link is not a load</a>'
        '<style>@import "https://fonts.example/f.css"; .x{background:url(http://img.example/b.png)}</style>'
    )
    assert sorted(external_loads(page)) == sorted(
        ["https://cdn.example/x.js", "//cdn.example/s.css", "https://fonts.example/f.css", "http://img.example/b.png"]
    )


def test_report_runs_with_parameters_and_loads_nothing(tmp_path):
    path = small_notebook(tmp_path, "print(greeting.upper())", "import pandas as pd\npd.DataFrame({'a': [1]})")
    report = build_report(path, tmp_path / "out", parameters={"greeting": "bonjour"})
    html = report.html.read_text()
    assert report.html.name == "small.html" and "BONJOUR" in html and "<table" in html
    assert external_loads(html) == [] and "cdnjs" not in html and "x-mathjax-config" not in html


def test_the_exported_notebook_stays_valid_markdown_cells_get_no_outputs():
    # Found by running the report tests on nbconvert 7.1 (the floor), which validates what it exports.
    from impilo_nb._report_html import _static_widgets

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("1")])
    static = _static_widgets(notebook)
    assert "outputs" not in static.cells[0] and static.cells[1].outputs == []
    nbformat.validate(static)


def test_hide_code_leaves_results_only(tmp_path):
    path = small_notebook(tmp_path, "secret_sauce = 6 * 7\nprint(secret_sauce)")
    html = build_report(path, tmp_path / "out", hide_code=True).html.read_text()
    assert "42" in html and "secret_sauce" not in html


def test_a_failing_cell_is_a_clear_error(tmp_path):
    path = small_notebook(tmp_path, "1 / 0")
    with pytest.raises(ReportError) as caught:
        build_report(path, tmp_path / "out")
    # [3]: the setup cell and the parameters cell run first, and the page numbers cells the same way.
    assert "small.ipynb: cell [3] failed: ZeroDivisionError" in str(caught.value)


def test_a_cell_that_runs_too_long_is_a_clear_error(tmp_path):
    path = small_notebook(tmp_path, "import time\ntime.sleep(60)")
    with pytest.raises(ReportError) as caught:
        build_report(path, tmp_path / "out", timeout=2)
    assert "small.ipynb: a cell ran longer than 2 s" in str(caught.value) and "timeout" in str(caught.value)


def test_not_a_notebook_is_refused(tmp_path):
    with pytest.raises(Exception) as caught:
        build_report(tmp_path / "missing.ipynb", tmp_path / "out")
    assert "Not a notebook" in str(caught.value)


def test_widgets_become_static_snapshots(tmp_path):
    path = small_notebook(tmp_path, "import impilo_nb as nb\nform = nb.widgets.PatientForm(nb.connect(base_url))\nform")
    html = build_report(path, tmp_path / "out").html.read_text()
    assert "impilo-snapshot" in html and "Patient form: new patient" in html
    assert "widget-view" not in html and external_loads(html) == []
    assert "render_for_report" in html  # the page says how it was rendered


def displayed(shell, widget):
    data, _ = shell.display_formatter.format(widget)
    return data


def test_render_for_report_adds_snapshots_to_that_shell_only(tmp_path):
    from IPython.core.formatters import DisplayFormatter

    view = nb.widgets.WebhookLogView(nb.EventLog(tmp_path / "events.db"), live=False)
    report_shell = SimpleNamespace(display_formatter=DisplayFormatter())
    other_shell = SimpleNamespace(display_formatter=DisplayFormatter())
    assert "text/html" not in displayed(report_shell, view)  # widgets never snapshot by themselves
    render_for_report(report_shell)
    render_for_report(report_shell)  # twice is once
    data = displayed(report_shell, view)
    assert data["text/html"].startswith("<div class='impilo-snapshot'><b>Webhook log</b>")
    assert "application/vnd.jupyter.widget-view+json" in data  # JupyterLab still gets the live widget
    assert "text/html" not in displayed(other_shell, view)


def test_render_for_report_outside_ipython_says_where_to_call_it():
    with pytest.raises(ReportError) as caught:
        render_for_report()
    assert "no IPython shell" in str(caught.value) and "notebook cell" in str(caught.value)


def test_reports_run_against_the_sandbox_even_when_the_shell_points_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("IMPILO_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("IMPILO_API_KEY", "k")
    path = small_notebook(tmp_path, "import impilo_nb as nb\nprint(nb.connect(base_url).patients.page().total)")
    assert "0" in build_report(path, tmp_path / "out").html.read_text()
    assert os.environ["IMPILO_BASE_URL"] == "http://127.0.0.1:9"  # only the kernel's environment differed


def test_bulk_report_with_masking_has_no_sample_email_or_phone(tmp_path):
    report = build_report(ROOT / "notebooks" / "05_bulk_import.ipynb", tmp_path / "out", mask=True)
    html = report.html.read_text()
    sample = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    assert [e for e in sample["email"] if e and e in html] == []
    assert [p for p in sample["phoneNumber"] if p and p in html] == []
    assert external_loads(html) == [] and "Rows by outcome" in html
    assert "patient/s" not in html  # the progress bars (widgets with no snapshot) are left out, not frozen


def test_report_command_line(tmp_path):
    path = small_notebook(tmp_path, "print('from the cli')")
    done = subprocess.run(
        [sys.executable, "-m", "impilo_nb", "report", str(path), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "wrote" in done.stdout and (tmp_path / "r" / "small.html").exists()
