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
