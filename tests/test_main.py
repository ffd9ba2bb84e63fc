import subprocess
import sys

import pytest
import requests

import impilo_nb as nb
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


def test_hash_command_works_on_the_projects_sample_with_no_column_flags(tmp_path, capsys):
    out = tmp_path / "x.csv"
    assert main(["hash", "--in", "data/patients_sample.csv", "--out", str(out), "--quiet"]) == 0
    assert "500 rows (1 without an id)" in capsys.readouterr().out and "externalIdentifier" in out.read_text().splitlines()[0]


def test_hash_command_prints_a_column_error_as_one_line_before_any_progress_bar(tmp_path, capsys):
    source = tmp_path / "in.csv"
    source.write_text("email;fax\na@b.org;555\n")
    assert main(["hash", "--in", str(source), "--out", str(tmp_path / "out.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {source} has no phone column; its columns are: email, fax;")
    assert "--phone-col NAME" in err and "hashing" not in err and "hash_csv is not valid" not in err


def test_hash_command_takes_the_separator_as_a_flag(tmp_path, capsys):
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text("email;phone,ext\na@b.org;555\nc@d.org,1\n")  # ';' or ','? No telling
    assert main(["hash", "--in", str(source), "--out", str(out), "--quiet"]) == 2
    assert "cannot tell the separator" in capsys.readouterr().err
    source.write_text("email;phone;ext\na@b.org;555;1,2\nc@d.org;556;3\n")
    assert main(["hash", "--in", str(source), "--out", str(out), "--quiet", "--sep", ";"]) == 0
    header, first = out.read_text().splitlines()[:2]
    assert header == "email;phone;ext;externalIdentifier" and first == f"a@b.org;555;1,2;{nb.external_id('a@b.org', '555')}"


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--out", "{tmp}/missing/out.csv"], "does not exist; create it first"),
        (["--out", "{tmp}"], "is a folder"),
        (["--out", "{tmp}/out.csv", "--chunk-rows", "0"], "Rows per chunk"),
        (["--out", "{tmp}/out.csv", "--encoding", "rot13"], "unknown encoding 'rot13'"),
    ],
)
def test_hash_command_reports_bad_flags_in_one_line_not_a_traceback(tmp_path, capsys, extra, words):
    source = tmp_path / "in.csv"
    source.write_text("email,phone\nana@example.org,5550100\n")
    argv = ["hash", "--quiet", "--in", str(source), *(arg.replace("{tmp}", str(tmp_path)) for arg in extra)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and "Traceback" not in err
