"""A throwaway JupyterLab for browser tests: temporary config, data, runtime and settings
folders; no token; a copy of the notebooks; the embedded kernel environment pointed at a
sandbox the test controls. Otherwise it is set up as ``make lab`` (scripts/lab) sets up the
user's Lab (``MAKE_LAB_ARGS``, ``MAKE_LAB_PAGE_CONFIG``, trusted notebooks), so the browser
tests see what users see; tests/e2e/test_first_hour.py checks scripts/lab still says the same."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# Chromium flags for a closed network (see the machine notes): no background fetches at all.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


#: The settings scripts/lab gives JupyterLab: kernels over Unix sockets (no "Kernel is running
#: over TCP without encryption"), no news or update checks.
MAKE_LAB_ARGS = [
    "--KernelManager.transport=ipc",
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
]
#: scripts/lab's labconfig/page_config.json: JupyterLab 4 asks "Would you like to get notified
#: about official Jupyter news?" unless the plugin that asks is disabled (news_url does not stop it).
MAKE_LAB_PAGE_CONFIG = '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}'


def _not_copied(folder: str, names: list[str]) -> set[str]:
    """Outputs of earlier runs, and anything but files and folders (a kernel's ipc sockets)."""
    skipped = set(shutil.ignore_patterns("*.csv", ".ipynb_checkpoints")(folder, names))
    special = {name for name in names if not Path(folder, name).is_file() and not Path(folder, name).is_dir()}
    return skipped | special


#: Tries at starting Lab when its port is taken by another process between picking and binding.
PORT_ATTEMPTS = 5

#: Seconds Lab may take to answer: a first start in a fresh clone on a loaded 2-core machine
#: (three test processes and other work) is slow, and this is a hang guard, not a speed check.
START_TIMEOUT = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lab:
    """JupyterLab serving a copy of notebooks/ from ``workdir``; ``url`` once started."""

    def __init__(self, workdir: Path, env: dict[str, str], *, disable_widgets: bool = False) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.notebooks = workdir / "notebooks"
        shutil.copytree(ROOT / "notebooks", self.notebooks, ignore=_not_copied)
        shutil.copytree(ROOT / "data", workdir / "data")
        folders = {name: workdir / name for name in ("config", "data_dir", "runtime", "settings", "workspaces", "lab_config")}
        for folder in folders.values():
            folder.mkdir(mode=0o700)  # the runtime folder holds the kernels' ipc sockets
        (folders["lab_config"] / "labconfig").mkdir()
        (folders["lab_config"] / "labconfig" / "page_config.json").write_text(MAKE_LAB_PAGE_CONFIG)
        self.env = {
            **os.environ,
            **env,
            "JUPYTER_CONFIG_DIR": str(folders["config"]),
            "JUPYTER_DATA_DIR": str(folders["data_dir"]),
            "JUPYTER_RUNTIME_DIR": str(folders["runtime"]),
            "JUPYTERLAB_SETTINGS_DIR": str(folders["settings"]),
            "JUPYTERLAB_WORKSPACES_DIR": str(folders["workspaces"]),
            "JUPYTER_CONFIG_PATH": str(folders["lab_config"]),
        }
        # As scripts/lab does: the committed outputs are ours, so Lab must not call them untrusted.
        subprocess.run(
            [sys.executable, "-m", "jupyter", "trust", *map(str, sorted(self.notebooks.glob("*.ipynb")))],
            env=self.env,
            check=True,
            capture_output=True,
        )
        if disable_widgets:  # to prove the tests notice a missing widgets front end
            # --level=user writes into this Lab's temporary JUPYTER_CONFIG_DIR; the default level
            # (sys_prefix) would disable widgets in the developer's own .venv for good.
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "jupyter",
                    "labextension",
                    "disable",
                    "--level=user",
                    "@jupyter-widgets/jupyterlab-manager",
                ],
                env=self.env,
                check=True,
                capture_output=True,
            )
        self.log = open(workdir / "lab.log", "w")  # noqa: SIM115 - closed in stop()
        self.process: subprocess.Popen | None = None

    def start(self) -> Lab:
        """Start JupyterLab and wait until it answers.

        The port was free when picked, but another test process may take it before Lab binds
        it; Lab then must not wander to the next port (``port_retries=0``), where nobody would
        look: it exits, and it is started again on a newly picked port.
        """
        for _ in range(PORT_ATTEMPTS):
            if self._start_once():
                return self
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
        raise RuntimeError(f"JupyterLab found no free port in {PORT_ATTEMPTS} tries; see {self.workdir / 'lab.log'}")

    def _start_once(self) -> bool:
        """True once Lab answers on ``self.port``; False if that port was taken meanwhile."""
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "lab",
                "--no-browser",
                "--ip=127.0.0.1",
                f"--port={self.port}",
                "--ServerApp.port_retries=0",
                "--ServerApp.token=",
                "--ServerApp.password=",
                "--ServerApp.disable_check_xsrf=True",
                f"--ServerApp.root_dir={self.notebooks}",
                *MAKE_LAB_ARGS,
                "--allow-root",
            ],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/api/status", timeout=1)
                return True
            except OSError:
                if self.process.poll() is not None:
                    self.log.flush()
                    if f"port {self.port} is already in use" in (self.workdir / "lab.log").read_text():
                        return False
                    raise RuntimeError(f"JupyterLab exited; see {self.workdir / 'lab.log'}") from None
                time.sleep(0.2)
        self.stop()  # not left running for the rest of the session: the fixture never gets to stop it
        raise RuntimeError(f"JupyterLab did not start within {START_TIMEOUT} s; see {self.workdir / 'lab.log'}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()
