"""Every notebook runs against a server that sends only the fields Impilo documents.

nbval checks the notebooks' committed outputs against the full sandbox; this runs each one
again with the embedded sandbox in documented-only mode (``IMPILO_SANDBOX_DOCUMENTED_ONLY``),
as the real platform would answer, and requires that no cell fails.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_notebook_runs_on_documented_fields_only(path, monkeypatch):
    monkeypatch.setenv("IMPILO_SANDBOX_DOCUMENTED_ONLY", "1")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # the kernel inherits the environment; a cell that raises fails the test
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
