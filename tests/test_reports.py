import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pandas as pd
import pytest

import impilo_nb as nb
from impilo_nb.errors import ConfigurationError, ValidationError
from impilo_nb.reports import (
    ReportError,
    build_report,
    external_loads,
    mask_frame,
    mask_html,
    mask_text,
    render_for_report,
)

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
        ("ValidationError: email: Not an email address: 'x@'.", "ValidationError: email: Not an email address: '•••'."),
        ("email: Not an email address: 'two@@example.org...", "email: Not an email address: '•••'"),
        ("Patient(first_name='Ana', date_of_birth=datetime.date(1975, 4, 2))", "Patient(first_name='•••', date_of_birth='•••')"),
        ("488 created, 2,000 rows, patient 1234567, event 576384731234567890", None),
        ("sex: Must be one of female (got 'f').", None),
        ("received 2025-11-28 16:43:00+00:00, generated 2025-11-28T16:43:00Z", None),  # timestamps are not phones
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
    assert "impilo-snapshot" in html and "Patient form" in html
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
    assert data["text/html"].startswith("<div class='impilo-snapshot'>") and "Webhook log" in data["text/html"]
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


def personal_values_in(html: str, sample: pd.DataFrame) -> list[str]:
    """Sample values found anywhere in the page: text, attributes, scripts. Names as whole
    words of four letters or more (a two-letter name is in ordinary words too)."""
    found = [v for col in ("email", "phoneNumber", "address.lineOne") for v in sample[col] if v and v in html]
    names = {v for col in ("firstName", "lastName") for v in sample[col] if len(v) >= 4}
    return found + [name for name in names if re.search(rf"\b{re.escape(name)}\b", html)]


def prompts_and_code(html: str) -> list[str]:
    from bs4 import BeautifulSoup

    found = BeautifulSoup(html, "html.parser").select(".jp-InputPrompt, .jp-OutputPrompt, .jp-CodeMirrorEditor")
    return [str(tag)[:80] for tag in found]


def test_shared_bulk_report_has_no_personal_data_anywhere_and_reads_as_a_report(tmp_path):
    report = build_report(
        ROOT / "notebooks" / "05_bulk_import.ipynb",
        tmp_path / "out",
        share=True,
        parameters={"results_file": str(tmp_path / "results.csv")},
    )
    html = report.html.read_text()
    assert personal_values_in(html, pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)) == []
    assert external_loads(html) == [] and 'src="data:image/png;base64,' in html  # the chart, inlined
    assert "patient/s" not in html  # the progress bars (widgets with no snapshot) are left out, not frozen
    assert "upsert_patients(" not in html and prompts_and_code(html) == []
    assert 'class="impilo-report-title"' in html and "embedded sandbox" in html and nb.__version__ in html
    assert "impilo-interactive" in html  # enhanced in the browser, from the page's own (masked) rows
    assert "dateOfBirth: A date of birth cannot be in the future (got 2999-01-01)." in html  # an error text in full
    assert "started an embedded sandbox" not in html  # connect()'s stderr notice: the title block says it


def test_the_embedded_sandbox_notice_is_left_out_of_a_report_and_other_stderr_kept(tmp_path):
    cell = "import sys\nimport impilo_nb as nb\nclient = nb.connect()\nprint('kept on stderr', file=sys.stderr)"
    html = build_report(small_notebook(tmp_path, cell), tmp_path / "out").html.read_text()
    assert "started an embedded sandbox" not in html
    assert "kept on stderr" in html


def test_the_unmasked_page_does_have_the_names_so_the_search_above_can_fail(tmp_path):
    path = small_notebook(tmp_path, f"import pandas as pd\npd.read_csv({str(SAMPLE)!r}, dtype=str).head(3)")
    html = build_report(path, tmp_path / "out").html.read_text()
    assert personal_values_in(html, pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).head(3)) != []


LONG_ERROR = "email: Not an email address: 'ana.rivera@@example.org'. " + "The part after the @-sign is wrong. " * 8


def test_a_report_has_a_title_block_and_frames_in_full_even_unshared(tmp_path):
    cell = f"import pandas as pd\npd.DataFrame({{'firstName': ['Ana'], 'status': ['invalid'], 'error': [{LONG_ERROR!r}]}})"
    path = small_notebook(tmp_path, cell)
    html = build_report(path, tmp_path / "out", parameters={"greeting": "hi"}).html.read_text()
    block = html[html.index('class="impilo-report-title"') :]
    assert "Report: small" in block and "UTC" in block and "embedded sandbox" in block and "greeting = 'hi'" in block
    assert "code shown; personal data shown (not masked)" in block
    assert LONG_ERROR.strip() in html and "..." not in html.split("<main>")[1]  # nothing cut
    assert "<title>Report: small</title>" in html


def test_masking_happens_in_the_kernel_before_rendering(tmp_path):
    cell = f"import pandas as pd\npd.DataFrame({{'firstName': ['Anastasia'], 'error': [{LONG_ERROR!r}]}})"
    path = small_notebook(tmp_path, cell)
    report = build_report(path, tmp_path / "out", share=True)
    html = report.html.read_text()
    assert "Anastasia" not in html and "ana.rivera" not in html
    assert "email: Not an email address: '•••'." in html
    assert "render_for_report(mask=True)" not in html  # the setup cell is code: hidden when shared


def test_a_base_url_carrying_a_password_is_refused_and_never_echoed(tmp_path):
    path = small_notebook(tmp_path, "1")
    with pytest.raises(ConfigurationError) as caught:
        build_report(path, tmp_path / "out", base_url="https://user:s3cret@example.org")
    assert "s3cret" not in str(caught.value) and "IMPILO_API_KEY" in str(caught.value)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"share": True, "mask": False}, "mask"),
        ({"share": True, "hide_code": False}, "hide_code"),
        ({"share": "yes"}, "share"),
        ({"parameters": ["input_file"]}, "parameters"),
        ({"parameters": {"base_url": "x"}}, "parameters"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
    ],
)
def test_contradictory_or_wrong_options_are_refused_before_running(tmp_path, options, field):
    path = small_notebook(tmp_path, "1")
    with pytest.raises(ValidationError) as caught:
        build_report(path, tmp_path / "out", **options)
    assert caught.value.field_errors[0].field == field


@pytest.mark.parametrize(
    "value",
    ["postgresql://app:S3cretPass@db.internal/events", ["x", {"log": "https://u:S3cretPass@example.org/x"}]],
)
def test_a_parameter_holding_a_url_with_a_password_is_refused_without_echoing_it(tmp_path, value):
    path = small_notebook(tmp_path, "1")
    with pytest.raises(ValidationError) as caught:
        build_report(path, tmp_path / "out", parameters={"event_log": value})
    assert "event_log" in str(caught.value) and "S3cretPass" not in str(caught.value)
    assert not (tmp_path / "out").exists()  # refused before anything ran or was written


def test_an_out_dir_that_is_a_file_or_not_a_path_is_refused_before_the_notebook_runs(tmp_path):
    path = small_notebook(tmp_path, "raise SystemExit('the notebook must not run')")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for out_dir in (blocker, None, 3):
        with pytest.raises(ValidationError) as caught:
            build_report(path, out_dir)
        assert caught.value.field_errors[0].field == "out_dir"


def test_the_report_kernel_starts_without_the_tcp_warning(tmp_path, capfd):
    path = small_notebook(tmp_path, "print('ran')")
    html = build_report(path, tmp_path / "out").html.read_text()
    out, err = capfd.readouterr()  # the kernel process writes its log to the stderr it inherited
    assert "ran" in html
    assert "without encryption" not in out + err + html
    assert list(tmp_path.glob("kernel-ipc*")) == [] and list(Path.cwd().glob("kernel-ipc*")) == []


def test_mask_frame_masks_by_column_and_by_shape_and_keeps_types():
    frame = pd.DataFrame(
        {
            "firstName": ["Ana", None],
            "address.lineOne": ["10 Elm Road", ""],
            "error": ["email: Not an email address: 'x@'.", "call +1 (429) 555-9847"],
            "rows": pd.array([1, None], dtype="Int64"),
        },
        index=pd.Index(["ana@example.org", "bo@example.org"], name="email"),
    )
    masked = mask_frame(frame)
    assert masked["firstName"].tolist()[0] == "•••" and masked["firstName"].isna().tolist()[1]
    assert masked["address.lineOne"].tolist() == ["•••", ""]
    assert masked["error"].tolist() == ["email: Not an email address: '•••'.", "call •••"]
    assert masked["rows"].dtype == "Int64" and list(masked.index) == ["•••", "•••"] and masked.index.name == "email"
    assert frame.loc["ana@example.org", "firstName"] == "Ana"  # a copy: the caller's frame is untouched
    with pytest.raises(ValidationError):
        mask_frame([{"firstName": "Ana"}])


def test_render_for_report_shows_frames_in_full_masked_when_asked_and_leaves_pandas_alone():
    from IPython.core.formatters import DisplayFormatter

    frame = pd.DataFrame({"firstName": ["Anastasia"], "error": [LONG_ERROR]})
    shell = SimpleNamespace(display_formatter=DisplayFormatter())
    render_for_report(shell)
    data = displayed(shell, frame)
    assert LONG_ERROR.strip() in data["text/html"] and "Anastasia" in data["text/html"]
    render_for_report(shell, mask=True)
    data = displayed(shell, frame)
    assert "Anastasia" not in data["text/html"] + data["text/plain"] and "ana.rivera" not in data["text/html"]
    assert pd.get_option("display.max_colwidth") == 50  # the process's own options never change
    with pytest.raises(ValidationError):
        render_for_report(shell, mask="yes")


def test_tables_are_aligned_by_content_and_one_header_row():
    from bs4 import BeautifulSoup

    from impilo_nb._report_tables import prepare_tables

    summary = pd.DataFrame({"rows": [488, 12], "share": [0.976, 0.024]}, index=pd.Index(["created", "invalid"], name="status"))
    errors = pd.DataFrame({"status": ["invalid"] * 12, "error": ["lastName: This field is required."] * 12})
    soup = BeautifulSoup(f"<html><head></head><body>{summary.to_html()}{errors.to_html()}</body></html>", "html.parser")
    assert prepare_tables(soup) == 2
    first, second = soup.select("table.dataframe")
    assert len(first.select("thead tr")) == 1 and first.select("thead th")[0].get_text() == "status"
    assert [("impilo-num" in td.get("class", [])) for td in first.select("tbody tr")[0].find_all("td")] == [True, True]
    assert all("impilo-num" not in td.get("class", []) for td in second.select("td"))
    assert "impilo-interactive" in second["class"] and soup.find("script", id="impilo-datatables-bundle") is not None
    assert external_loads(str(soup)) == []


def test_report_command_line(tmp_path):
    path = small_notebook(tmp_path, "print('from the cli')")
    done = subprocess.run(
        [sys.executable, "-m", "impilo_nb", "report", str(path), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "wrote" in done.stdout and (tmp_path / "r" / "small.html").exists()


def test_report_command_line_share(tmp_path):
    path = small_notebook(tmp_path, "secret_sauce = 6 * 7\nprint(secret_sauce)")
    done = subprocess.run(
        [sys.executable, "-m", "impilo_nb", "report", str(path), "--out", str(tmp_path / "r"), "--share"],
        capture_output=True,
        text=True,
        check=True,
    )
    html = (tmp_path / "r" / "small.html").read_text()
    assert "42" in html and "secret_sauce" not in html and "personal data masked" in html
    assert "without encryption" not in done.stderr


# -- attacks on a shared page (issue 15) ------------------------------------------------------

PATIENTS = pd.DataFrame(
    {"id": [1, 2], "firstName": ["Anastasia", "Bartholomew"], "dateOfBirth": ["1975-04-02", "1980-01-03"], "status": ["ok", "ok"]}
)


def test_mask_html_reads_every_header_row_and_rows_headed_by_a_personal_field():
    # display(HTML(df.set_index("id").to_html())): pandas puts the index name on a second header row.
    by_id = mask_html(PATIENTS.set_index("id").to_html())
    assert "Anastasia" not in by_id and "1975-04-02" not in by_id and "<td>ok</td>" in by_id
    # A record shown transposed: a row headed by a personal field, whatever its number of cells.
    transposed = mask_html(PATIENTS.T.to_html())
    assert "Bartholomew" not in transposed and "1980-01-03" not in transposed and "<td>ok</td>" in transposed
    # Headers written as words, as the log view's snapshot heads its columns.
    words = mask_html("<table><thead><tr><th>first name</th><th>Date of birth</th><th>type</th></tr></thead>"
                      "<tbody><tr><td>Ana</td><td>1975-04-02</td><td>patient.created</td></tr></tbody></table>")
    assert "Ana" not in words and "1975-04-02" not in words and "patient.created" in words


def test_a_masked_report_masks_series_a_record_a_column_and_value_counts():
    from IPython.core.formatters import DisplayFormatter

    from impilo_nb.reports import mask_series

    shell = SimpleNamespace(display_formatter=DisplayFormatter())
    render_for_report(shell, mask=True)
    for series in (PATIENTS.iloc[0], PATIENTS["firstName"], PATIENTS["firstName"].value_counts(), PATIENTS.T[0]):
        text = displayed(shell, series)["text/plain"]
        assert "Anastasia" not in text and "1975-04-02" not in text, text
    assert displayed(shell, PATIENTS["status"])["text/plain"] == repr(PATIENTS["status"])  # not personal: as is
    assert mask_series(PATIENTS["id"]).tolist() == [1, 2]
    render_for_report(shell)
    assert "Anastasia" in displayed(shell, PATIENTS.iloc[0])["text/plain"]
    with pytest.raises(ValidationError):
        mask_series(PATIENTS)


def test_mask_personal_data_masks_error_outputs_prose_and_code():
    from impilo_nb.reports import mask_personal_data

    notebook = nbformat.v4.new_notebook()
    prose = nbformat.v4.new_markdown_cell("Ana wrote from ana.rivera@example.org, +1 (429) 555-9847.")
    code = nbformat.v4.new_code_cell("client.patients.create({'email': 'ana.rivera@example.org'})")
    code.outputs = [
        nbformat.v4.new_output(
            "error",
            ename="ValidationError",
            evalue="email: Not an email address: 'ana.rivera@@example.org'.",
            traceback=["\x1b[0;31mValidationError\x1b[0m: email: Not an email address: 'ana.rivera@@example.org'."],
        )
    ]
    notebook.cells = [prose, code]
    masked = mask_personal_data(notebook)
    assert "ana.rivera" not in str(masked) and "555-9847" not in str(masked)
    assert masked.cells[1].outputs[0].ename == "ValidationError" and "ana.rivera" in str(notebook)  # a copy


def test_the_title_block_masks_parameters_by_name_and_never_shows_a_secret():
    from datetime import UTC, datetime

    from impilo_nb._report_title import TitleBlock

    parameters = {"first_name": "Anastasia", "contact": {"phoneNumber": "12345", "dateOfBirth": "1975-04-02"},
                  "webhook_secret": "whsec-do-not-show", "rows": 3}
    block = TitleBlock("x.ipynb", datetime.now(UTC), None, "1", parameters, masked=True)
    shown = block.html()
    assert "Anastasia" not in shown and "12345" not in shown and "1975-04-02" not in shown and "rows = 3" in shown
    assert "whsec" not in shown
    unmasked = TitleBlock("x.ipynb", datetime.now(UTC), None, "1", parameters, masked=False).html()
    assert "Anastasia" in unmasked and "whsec" not in unmasked


@pytest.mark.parametrize("name", ["api_key", "apiKey", "webhook_secret", "token", "key", "db_password"])
def test_a_parameter_named_like_a_secret_is_refused_without_echoing_it(tmp_path, name):
    path = small_notebook(tmp_path, "1")
    with pytest.raises(ValidationError) as caught:
        build_report(path, tmp_path / "out", parameters={name: "s3cret-value"})
    assert caught.value.field_errors[0].field == "parameters" and "s3cret" not in str(caught.value)
    assert "environment" in str(caught.value)
