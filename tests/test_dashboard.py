"""impilo_nb.dashboard: where the page's data comes from, each section, and the receiver's subscriptions."""

from __future__ import annotations

import pandas as pd
import pytest

import impilo_nb as nb
from impilo_nb import dashboard as d
from impilo_nb.errors import ConfigurationError, ValidationError

LONG_ERROR = "address: An address needs lineOne, city, state, zipCode, country; missing: zipCode. " * 2


@pytest.fixture(autouse=True)
def _no_dashboard_env(monkeypatch):
    monkeypatch.delenv(d.ENV_EVENT_LOG, raising=False)
    monkeypatch.delenv(d.ENV_BULK_RESULTS, raising=False)


def results_csv(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


ROWS = [
    {"firstName": "Ana", "email": "ana@example.org", "externalIdentifier": "abc", "status": "created", "error": None},
    {"firstName": "Ben", "email": "ben@example.org", "externalIdentifier": "def", "status": "invalid", "error": LONG_ERROR},
    {"firstName": "Cleo", "email": "cleo@example.org", "externalIdentifier": "ghi", "status": "failed", "error": "503"},
]


# -- sources -----------------------------------------------------------------------------------


def test_sources_default_to_the_lab_sandbox_and_the_project_files(tmp_path):
    sources = d.Sources.from_env(root=tmp_path)
    assert sources.base_url == d.DEFAULT_BASE_URL
    assert sources.event_log == str(tmp_path.resolve() / ".sandbox" / "events.db")
    assert sources.bulk_results == tmp_path.resolve() / "notebooks" / "bulk_import_results.csv"


def test_sources_follow_the_environment_relative_paths_from_root(tmp_path, monkeypatch):
    monkeypatch.setenv("IMPILO_BASE_URL", "https://app.impiloplatform.com")
    monkeypatch.setenv(d.ENV_EVENT_LOG, "postgresql://analyst:hunter22@db.example.org/webhooks")
    monkeypatch.setenv(d.ENV_BULK_RESULTS, "out/results.csv")
    sources = d.Sources.from_env(root=tmp_path)
    assert sources.base_url == "https://app.impiloplatform.com"
    assert sources.event_log.startswith("postgresql://")  # a URL is no path: left as it is
    assert sources.bulk_results == tmp_path.resolve() / "out" / "results.csv"
    shown = repr(sources) + sources._repr_html_()
    assert "hunter22" not in shown and "db.example.org/webhooks" in shown


def test_sources_refuse_a_root_that_is_not_a_folder(tmp_path):
    with pytest.raises(ValidationError, match="root.*No such folder"):
        d.Sources.from_env(root=tmp_path / "missing")


def test_the_sandbox_key_is_used_only_for_a_server_on_this_machine(tmp_path, sandbox):
    local = d.Sources(base_url=sandbox.url, event_log=str(tmp_path / "e.db"), bulk_results=tmp_path / "r.csv")
    assert local.client().patients.frame().empty
    remote = d.Sources(base_url="https://app.impiloplatform.com", event_log="", bulk_results=tmp_path)
    with pytest.raises(ConfigurationError, match="IMPILO_API_KEY"):
        remote.client()


# -- sections ----------------------------------------------------------------------------------


def test_missing_pieces_show_a_friendly_line_not_a_traceback(tmp_path):
    page = d.Dashboard(
        d.Sources(base_url=d.DEFAULT_BASE_URL, event_log=str(tmp_path / "none.db"), bulk_results=tmp_path / "none.csv")
    )
    for section in (page.sync(), page.log(), page.bulk()):
        assert isinstance(section, d.Notice)
        assert "Traceback" not in section._repr_html_()
    assert "run notebook 05" in page.bulk().text
    assert "No webhook has been received yet" in page.log().text
    assert not (tmp_path / "none.db").exists()  # the dashboard creates no file


def test_a_file_that_is_no_results_file_says_what_to_point_at(tmp_path):
    path = results_csv(tmp_path / "patients.csv", [{"firstName": "Ana"}])
    page = d.Dashboard(d.Sources(base_url=d.DEFAULT_BASE_URL, event_log="", bulk_results=path))
    notice = page.bulk()
    assert isinstance(notice, d.Notice)
    assert "no status, error column" in notice.text and "IMPILO_BULK_RESULTS" in notice.text


def test_bulk_results_show_counts_and_every_failed_row_with_its_full_error(tmp_path):
    path = results_csv(tmp_path / "results.csv", ROWS)
    shown = d.BulkResults(d.load_bulk_results(path), source=path)
    assert shown.attention["line"].tolist() == [3, 4]  # the CSV's own lines: 1 is the header
    assert shown.attention["error"].tolist() == [LONG_ERROR, "503"]
    assert "externalIdentifier" not in shown.attention.columns
    page = shown._repr_html_()
    assert LONG_ERROR.strip() in page  # never cut to pandas' 50 characters
    assert "Rows that need attention: 2" in page and "3 rows from results.csv" in page
    assert repr(shown) == "BulkResults(3 rows: 1 created, 1 invalid, 1 failed)"


def test_bulk_results_with_nothing_to_fix_say_so(tmp_path):
    path = results_csv(tmp_path / "results.csv", ROWS[:1])
    assert "none needs attention" in d.BulkResults(d.load_bulk_results(path))._repr_html_()


def test_load_bulk_results_refuses_what_is_not_a_path():
    with pytest.raises(ValidationError, match="path"):
        d.load_bulk_results(42)  # type: ignore[arg-type]


def test_sections_on_a_running_sandbox_and_log(tmp_path, sandbox):
    log_path = tmp_path / "events.db"
    nb.EventLog(log_path).close()
    page = d.Dashboard(d.Sources(base_url=sandbox.url, event_log=str(log_path), bulk_results=tmp_path / "r.csv"))
    view = page.sync()
    assert type(view).__name__ == "SyncView" and "in sync" in view.verdict.value
    log_view = page.log()
    assert type(log_view).__name__ == "WebhookLogView"
    log_view.close()


def test_dashboard_needs_sources():
    with pytest.raises(TypeError, match="Sources"):
        d.Dashboard("http://127.0.0.1:8765")  # type: ignore[arg-type]


# -- subscriptions -----------------------------------------------------------------------------


def test_ensure_webhooks_registers_each_type_once(api):
    url = "http://127.0.0.1:9/webhooks/impilo"
    first = d.ensure_webhooks(api, url)
    assert sorted(hook.type for hook in first) == ["patient.created", "patient.updated"]
    assert d.ensure_webhooks(api, url) == []  # a second start adds nothing
    assert sorted((hook.type, hook.url) for hook in api.webhooks.list()) == [("patient.created", url), ("patient.updated", url)]


def test_ensure_webhooks_says_what_is_wrong(api):
    with pytest.raises(ValidationError) as caught:
        d.ensure_webhooks("client", "not a url", types=["patient.deleted"])  # type: ignore[arg-type]
    assert {problem.field for problem in caught.value.field_errors} == {"client", "url", "types"}
    assert list(api.webhooks.list()) == []


# -- hostile and careless input (attack on issue 15) -----------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["POSTGRESQL://analyst:hunter22@db.example.org/webhooks", "postgresql+psycopg://analyst:hunter22@db.example.org/webhooks"],
)
def test_a_postgres_url_in_any_spelling_never_shows_its_password(tmp_path, monkeypatch, url):
    monkeypatch.setenv(d.ENV_EVENT_LOG, url)
    sources = d.Sources.from_env(root=tmp_path)
    assert sources.event_log.startswith("postgresql://")  # not taken for a path under root
    shown = repr(sources) + sources._repr_html_() + d.Dashboard(sources).bulk().text
    assert "hunter22" not in shown and "db.example.org/webhooks" in shown


def test_another_url_for_the_log_is_explained_without_its_password(tmp_path, monkeypatch):
    monkeypatch.setenv(d.ENV_EVENT_LOG, "mysql://analyst:hunter22@db.example.org/webhooks")
    sources = d.Sources.from_env(root=tmp_path)
    notice = d.Dashboard(sources).log()
    assert isinstance(notice, d.Notice) and "postgresql://" in notice.text and d.ENV_EVENT_LOG in notice.text
    assert "hunter22" not in notice.text + repr(sources) + sources._repr_html_()


@pytest.mark.parametrize("root", [None, 3])
def test_sources_refuse_a_root_that_is_not_a_path(root):
    with pytest.raises(ValidationError, match="root: Expected a folder path"):
        d.Sources.from_env(root=root)  # type: ignore[arg-type]


def test_blank_settings_fall_back_to_the_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv(d.ENV_EVENT_LOG, "  ")
    monkeypatch.setenv(d.ENV_BULK_RESULTS, "")
    sources = d.Sources.from_env(root=tmp_path)
    assert sources.event_log == str(tmp_path.resolve() / ".sandbox" / "events.db")
    assert sources.bulk_results == tmp_path.resolve() / "notebooks" / "bulk_import_results.csv"


def test_attention_shows_the_imported_files_line_when_the_results_carry_it(tmp_path):
    # notebook 05 saves results.to_csv(path): read_csv's index becomes a "line" column; a note over
    # three lines put the second row on line 5 of the imported file, not line 3.
    path = tmp_path / "results.csv"
    path.write_text("line,firstName,status,error\n2,Ana,created,\n5,Ben,invalid,lastName: required\n")
    assert d.BulkResults(d.load_bulk_results(path)).attention["line"].tolist() == [5]


def test_attention_lists_rows_whose_status_is_empty_or_unknown(tmp_path):
    path = results_csv(tmp_path / "results.csv", [
        {"firstName": "Ana", "status": "created", "error": None},
        {"firstName": "Ben", "status": None, "error": None},
        {"firstName": "Cleo", "status": "FAILED", "error": "edited by hand"},
        {"firstName": "Dan", "status": "would update", "error": None},
    ])
    shown = d.BulkResults(d.load_bulk_results(path), source=path)
    assert shown.attention["firstName"].tolist() == ["Ben", "Cleo"]
    assert shown.summary["rows"].sum() == 4


def test_bulk_results_survive_their_file_being_removed_and_refuse_a_non_frame(tmp_path):
    path = results_csv(tmp_path / "results.csv", ROWS)
    shown = d.BulkResults(d.load_bulk_results(path), source=path)
    path.unlink()
    assert "3 rows." in shown._repr_html_()
    with pytest.raises(ValidationError, match="frame: Expected bulk import results"):
        d.BulkResults([1])  # type: ignore[arg-type]


def test_a_results_path_that_is_a_folder_says_so(tmp_path):
    page = d.Dashboard(d.Sources(base_url=d.DEFAULT_BASE_URL, event_log="", bulk_results=tmp_path))
    notice = page.bulk()
    assert isinstance(notice, d.Notice) and "is a folder" in notice.text and d.ENV_BULK_RESULTS in notice.text


@pytest.mark.parametrize(
    "base_url", ["https://user:S3cretPass@impilo.example.org", "https://impilo.example.org/?api_key=S3cretPass#S3cretPass"]
)
def test_credentials_in_the_base_url_are_never_shown_on_the_page(tmp_path, monkeypatch, base_url):
    monkeypatch.setenv("IMPILO_BASE_URL", base_url)
    sources = d.Sources.from_env(root=tmp_path)
    shown = repr(sources) + sources._repr_html_()
    assert "S3cretPass" not in shown and "impilo.example.org" in shown
