import os
import subprocess
import sys

import pytest

import impilo_nb as nb


def test_without_environment_an_embedded_sandbox_is_used_once_per_process():
    first, second = nb.connect(), nb.connect()
    assert first.base_url == second.base_url == nb.embedded_sandbox().url
    assert first.base_url.startswith("http://127.0.0.1:")
    assert first.patients.page().total == second.patients.page().total


def test_environment_points_at_another_server(monkeypatch, sandbox):
    monkeypatch.setenv("IMPILO_BASE_URL", sandbox.url)
    monkeypatch.setenv("IMPILO_API_KEY", sandbox.api_key)
    client = nb.connect()
    assert client.base_url == sandbox.url
    assert client.patients.create({"firstName": "A", "lastName": "B"}).id == 1


def test_base_url_without_a_key_is_a_configuration_error(monkeypatch):
    monkeypatch.setenv("IMPILO_BASE_URL", "https://app.impiloplatform.com")
    with pytest.raises(nb.ConfigurationError) as caught:
        nb.connect()
    assert "IMPILO_API_KEY" in str(caught.value)


def test_a_client_on_the_embedded_sandbox_says_so_in_its_repr():
    shown = repr(nb.connect())
    assert shown.startswith(f"ImpiloClient(base_url={nb.embedded_sandbox().url!r}, api_key=***)")
    assert "embedded sandbox, data lost when the kernel stops" in shown
    assert "set IMPILO_BASE_URL (and IMPILO_API_KEY) for the real platform" in shown
    assert nb.embedded_sandbox().api_key not in shown


def test_a_client_for_a_configured_server_keeps_its_plain_repr(monkeypatch, sandbox):
    monkeypatch.setenv("IMPILO_BASE_URL", sandbox.url)
    monkeypatch.setenv("IMPILO_API_KEY", "configured-key-42")
    assert repr(nb.connect()) == f"ImpiloClient(base_url={sandbox.url!r}, api_key=***)"


def test_the_embedded_sandbox_says_once_per_process_on_one_line_of_stderr():
    # A fresh process: this one's embedded sandbox may have started in an earlier test.
    script = "import impilo_nb as nb\nnb.connect(); nb.connect(); nb.embedded_sandbox()\nprint('done')"
    env = {k: v for k, v in os.environ.items() if k not in ("IMPILO_BASE_URL", "IMPILO_API_KEY")}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert run.stdout == "done\n"
    notices = [line for line in run.stderr.splitlines() if line.startswith("impilo_nb:")]
    assert notices == [
        "impilo_nb: no IMPILO_BASE_URL set, so connect() started an embedded sandbox; its data is lost when the "
        "kernel stops. Set IMPILO_BASE_URL (and IMPILO_API_KEY) for the real platform."
    ], run.stderr


def test_a_configured_server_prints_no_notice(monkeypatch, sandbox, capsys):
    monkeypatch.setenv("IMPILO_BASE_URL", sandbox.url)
    monkeypatch.setenv("IMPILO_API_KEY", sandbox.api_key)
    nb.connect()
    assert capsys.readouterr().err == ""
