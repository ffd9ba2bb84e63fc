"""Execute notebooks in place, as nbval will, so their committed outputs stay current.

Runs each notebook from its own folder against a fresh embedded sandbox (IMPILO_* unset), so
outputs are deterministic, and stores widget state so JupyterLab shows the widgets.
Usage: python scripts/execute_notebooks.py notebooks/*.ipynb
"""

import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from impilo_nb._report_run import kernel_config


def execute(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="impilo-kernel-") as sockets:  # the reports' kernel settings: ipc, no TCP
        client = NotebookClient(
            notebook,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
            config=kernel_config(Path(sockets)),
        )
        client.execute()
    nbformat.write(notebook, path)
    print(f"executed {path}")


if __name__ == "__main__":
    for name in ("IMPILO_BASE_URL", "IMPILO_API_KEY"):
        os.environ.pop(name, None)
    for arg in sys.argv[1:]:
        execute(Path(arg))
