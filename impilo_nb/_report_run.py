"""Running a notebook for a report: parameters in, a fresh kernel, the executed notebook out.

The kernel talks to us over IPC (Unix sockets in a private temporary folder), not TCP:
ipykernel warns "Kernel is running over TCP without encryption" on every TCP start without
CurveZMQ keys, which is noise beside patient data in a report's log, and a socket file
readable by this user only is also the tighter channel.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import _constants as c
from ._report_rendering import SETUP_TAG, setup_source
from .errors import ReportError

KERNEL = "python3"
#: How the report's kernel and this process talk: see the module docstring.
KERNEL_TRANSPORT = "tcp" if sys.platform == "win32" else "ipc"  # ZeroMQ has no IPC on Windows


def execute(source: Path, parameters: Mapping[str, Any], *, live: bool, mask: bool, timeout: float) -> Any:
    """Run ``source`` from its own folder in a fresh kernel and return the executed notebook.

    The ``parameters`` replace the notebook's ``parameters`` cell as papermill does (an
    ``injected-parameters`` cell after it). A setup cell before the first code cell calls
    ``render_for_report(mask=mask)``, so widgets display with their static snapshots and
    DataFrames in full (masked before rendering when ``mask``). Unless ``live``,
    the kernel's environment has no ``IMPILO_BASE_URL``, so a shell pointed at a real
    deployment still reports against the embedded sandbox; the caller's own environment is
    never changed.

    Raises:
        ReportError: a cell failed, ran longer than ``timeout`` seconds, or killed the kernel.
    """
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    notebook = load_notebook_node(str(source))  # papermill's reader: it adds the metadata its injection reads
    if parameters:
        notebook = parameterize_notebook(notebook, dict(parameters), kernel_name=KERNEL, language="python")
    _insert_setup_cell(notebook, mask=mask)
    with tempfile.TemporaryDirectory(prefix="impilo-kernel-") as sockets:
        _run(notebook, source, sockets=Path(sockets), live=live, timeout=timeout)
    _drop_sandbox_notice(notebook)
    return notebook


def _drop_sandbox_notice(notebook: Any) -> None:
    """Remove ``connect()``'s embedded-sandbox line from stderr outputs (an emptied output goes
    too): a colleague reading the page would see an alarm box, and the title block names the server."""
    for cell in notebook.cells:
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                lines = output.get("text", "").splitlines(keepends=True)
                output["text"] = "".join(line for line in lines if line.rstrip("\n") != c.EMBEDDED_NOTICE)
                if not output["text"]:
                    continue
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept


def _run(notebook: Any, source: Path, *, sockets: Path, live: bool, timeout: float) -> None:
    """Execute ``notebook`` in place from ``source``'s folder; nbclient's errors as ``ReportError``."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(source.parent.resolve())}},
        config=kernel_config(sockets),
    )
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


def kernel_config(sockets: Path) -> Any:
    """The kernel manager's settings (traitlets config reaches the subclass nbclient creates).

    With IPC the socket files need an absolute prefix: jupyter_client's default, "kernel-ipc",
    is relative, and the kernel starts in the notebook's folder, so it would bind where this
    process never looks. A private temporary folder also keeps them out of the notebooks.
    """
    from traitlets.config import Config

    settings: dict[str, Any] = {"transport": KERNEL_TRANSPORT}
    if KERNEL_TRANSPORT == "ipc":
        settings["ip"] = str(sockets / "kernel")
    return Config({"KernelManager": settings})


def _insert_setup_cell(notebook: Any, *, mask: bool) -> None:
    """Before the first code cell, so the title and any prose above it stay on top."""
    import nbformat

    cell = nbformat.v4.new_code_cell(setup_source(mask=mask))
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
