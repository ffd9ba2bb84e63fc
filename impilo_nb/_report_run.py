"""Running a notebook for a report: parameters in, a fresh kernel, the executed notebook out."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import _constants as c
from ._report_rendering import SETUP_SOURCE, SETUP_TAG
from .errors import ReportError

KERNEL = "python3"


def execute(source: Path, parameters: Mapping[str, Any], *, live: bool, timeout: float) -> Any:
    """Run ``source`` from its own folder in a fresh kernel and return the executed notebook.

    The ``parameters`` replace the notebook's ``parameters`` cell as papermill does (an
    ``injected-parameters`` cell after it). A setup cell before the first code cell calls
    ``render_for_report()``, so widgets display with their static snapshots. Unless ``live``,
    the kernel's environment has no ``IMPILO_BASE_URL``, so a shell pointed at a real
    deployment still reports against the embedded sandbox; the caller's own environment is
    never changed.

    Raises:
        ReportError: a cell failed, ran longer than ``timeout`` seconds, or killed the kernel.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    notebook = load_notebook_node(str(source))  # papermill's reader: it adds the metadata its injection reads
    if parameters:
        notebook = parameterize_notebook(notebook, dict(parameters), kernel_name=KERNEL, language="python")
    _insert_setup_cell(notebook)
    folder = str(source.parent.resolve())
    client = NotebookClient(notebook, timeout=timeout, kernel_name=KERNEL, resources={"metadata": {"path": folder}})
    try:
        client.execute(env=_kernel_environment(live=live))
    except CellExecutionError as exc:
        raise ReportError(
            f"{source.name}: cell [{_failed_cell(notebook)}] failed: {exc.ename}: {exc.evalue}. "
            "Run the notebook in JupyterLab to see the traceback, fix it, then build the report again."
        ) from None
    except CellTimeoutError:
        raise ReportError(
            f"{source.name}: a cell ran longer than {timeout:g} s and was stopped. If it is only slow, "
            "pass a larger timeout to build_report; if it waits for something (a webhook), check it can arrive."
        ) from None
    except DeadKernelError:
        raise ReportError(
            f"{source.name}: the kernel died while running it (out of memory, or a crash in native code). "
            "Run the notebook in JupyterLab to see which cell does it."
        ) from None
    return notebook


def _insert_setup_cell(notebook: Any) -> None:
    """Before the first code cell, so the title and any prose above it stay on top."""
    import nbformat

    cell = nbformat.v4.new_code_cell(SETUP_SOURCE)
    cell.metadata["tags"] = [SETUP_TAG]
    first_code = next((i for i, existing in enumerate(notebook.cells) if existing.cell_type == "code"), len(notebook.cells))
    notebook.cells.insert(first_code, cell)


def _kernel_environment(*, live: bool) -> dict[str, str]:
    environment = dict(os.environ)
    if not live:
        environment.pop(c.ENV_BASE_URL, None)
    return environment


def _failed_cell(notebook: Any) -> int | str:
    """The execution count of the cell that raised, as the page and JupyterLab number it."""
    for cell in notebook.cells:
        if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
            return cell.get("execution_count") or "?"
    return "?"
