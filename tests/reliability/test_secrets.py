"""Secrets stay secret: the suite's API key and webhook secret appear in no log line, repr,
exception text, event log, executed notebook or report. Plus the defaults that keep data local."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import stat
from pathlib import Path

import papermill
import pytest
import requests

import impilo_nb as nb
from impilo_nb.reports import build_report

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "rk_suite_" + secrets.token_hex(12)
WEBHOOK_SECRET = "whsec_suite_" + secrets.token_hex(12)

#: Seconds before a wait or a request gives up. Only stops a hung test: nothing here depends on
#: how fast the machine is.
HANG_GUARD = 60.0


def leaks(text: str) -> list[str]:
    return [name for name, value in (("API key", API_KEY), ("webhook secret", WEBHOOK_SECRET)) if value in text]


def test_no_secret_in_logs_reprs_errors_event_log_notebooks_or_reports(tmp_path, caplog, monkeypatch, figures):
    caplog.set_level(logging.DEBUG)
    texts: dict[str, str] = {}
    with nb.Sandbox(API_KEY, time_scale=0.001) as sandbox:
        client = nb.ImpiloClient(sandbox.url, API_KEY, max_retries=1, timeout=HANG_GUARD)
        log = nb.EventLog(tmp_path / "log.db")
        receiver = nb.WebhookReceiver(log, secret=WEBHOOK_SECRET).start()
        stored_secret = client.webhook_secret.create(WEBHOOK_SECRET)
        client.webhooks.create(type="patient.created", url=receiver.url)
        patient = client.patients.create({"firstName": "Ana", "lastName": "Rivera"})
        assert log.wait_for(1, timeout=HANG_GUARD)
        texts["reprs"] = "\n".join(map(repr, [client, sandbox, receiver, stored_secret, client.webhook_secret.get(), log]))
        texts["strs"] = "\n".join(map(str, [client, stored_secret, client.webhook_secret.get()]))

        errors = []
        for call in (
            lambda: client.patients.get(999_999),
            lambda: client.patients.create({"firstName": "x"}),
            lambda: client.webhook_secret.create(WEBHOOK_SECRET),
            lambda: nb.ImpiloClient(sandbox.url, "another-key").patients.get(patient.id),
        ):
            with pytest.raises(nb.ImpiloError) as caught:
                call()
            errors += [str(caught.value), repr(caught.value)]
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            dead = nb.ImpiloClient(f"http://127.0.0.1:{closed.getsockname()[1]}", API_KEY, max_retries=0)
        with pytest.raises(nb.APIConnectionError) as caught:
            dead.patients.get(1)
        errors += [str(caught.value), repr(caught.value)]
        refused = requests.post(
            receiver.url, json={"id": 1, "type": "x"}, headers={"Impilo-Webhook-Secret": "wrong"}, timeout=HANG_GUARD
        )
        errors.append(refused.text)
        texts["exceptions"] = "\n".join(errors)
        receiver.stop()

        # Notebooks executed against this sandbox with this key, and their reports.
        monkeypatch.setenv("IMPILO_API_KEY", API_KEY)
        work = tmp_path / "notebooks"
        shutil.copytree(ROOT / "notebooks", work, ignore=shutil.ignore_patterns("*.csv"))
        for name in ("01_create_patient", "03_webhooks"):
            executed = tmp_path / f"{name}.executed.ipynb"
            papermill.execute_notebook(
                str(work / f"{name}.ipynb"),
                str(executed),
                parameters={"base_url": sandbox.url},
                cwd=str(work),
                kernel_name="python3",
                progress_bar=False,
            )
            texts[f"notebook {name}"] = executed.read_text()
            texts[f"report {name}"] = build_report(
                work / f"{name}.ipynb", tmp_path / "reports", base_url=sandbox.url
            ).html.read_text()
        texts["committed notebooks"] = "\n".join(p.read_text() for p in (ROOT / "notebooks").glob("*.ipynb"))

    texts["logs"] = caplog.text
    texts["event log file"] = b"".join(p.read_bytes() for p in tmp_path.glob("log.db*")).decode("latin-1")
    texts["stored headers"] = str(log.get(log.frame()["event_id"].iloc[0])["headers"])
    found = {where: names for where, text in texts.items() if (names := leaks(text))}
    figures["places scanned for secrets"] = ", ".join(texts)
    figures["secrets found"] = sum(len(names) for names in found.values())
    assert found == {}
    assert "patient.created" in texts["event log file"]  # the scan read real content


def test_event_log_is_private(tmp_path):
    log = nb.EventLog(tmp_path / "events.db")
    log.record_body(b'{"id": 1, "type": "x.y", "payload": {}}')
    for path in tmp_path.glob("events.db*"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path.name


def test_servers_listen_on_loopback_unless_told_otherwise(tmp_path):
    with nb.Sandbox() as sandbox, nb.WebhookReceiver(tmp_path / "log.db") as receiver:
        for server in (sandbox._server, receiver._server):
            assert server._socket.getsockname()[0] == "127.0.0.1"
    from impilo_nb.__main__ import build_parser  # the command line's defaults too

    assert build_parser().parse_args(["sandbox"]).host == "127.0.0.1"
    assert build_parser().parse_args(["receiver", "--db", "x.db"]).host == "127.0.0.1"


def test_sandbox_refuses_webhook_urls_that_are_not_http(tmp_path):
    with nb.Sandbox() as sandbox:
        for url in ("ftp://127.0.0.1/x", "file:///etc/passwd", "javascript:alert(1)", "gopher://127.0.0.1/", "127.0.0.1/x"):
            response = requests.post(
                sandbox.url + "/api/v3/webhook",
                json={"type": "patient.created", "url": url},
                headers={"Impilo-API-Key": sandbox.api_key},
                timeout=HANG_GUARD,
            )
            assert response.status_code == 400, url
            assert response.json()["fieldErrors"][0]["field"] == "url"
