import subprocess
import sys

import requests

from impilo_nb.__main__ import main


def test_sandbox_command_serves_until_terminated(tmp_path):
    db = tmp_path / "s.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "impilo_nb", "sandbox", "--port", "0", "--db", str(db)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = line.split(" on ")[1].split(" ")[0]
        headers = {"Impilo-API-Key": "sandbox-key"}
        created = requests.post(f"{url}/api/v3/patient", json={"firstName": "A", "lastName": "B"}, headers=headers, timeout=5)
        assert created.status_code == 201
    finally:
        process.terminate()
    assert process.wait(10) == 0
    assert db.exists()


def test_sandbox_command_reports_a_taken_port(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code = main(["sandbox", "--port", str(taken.getsockname()[1])])
    assert code == 2 and "already in use" in capsys.readouterr().err
