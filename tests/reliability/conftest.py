"""The reliability and security suite: fuzzing, faults, load, secrets.

Short by default (it runs in ``make test``); ``IMPILO_RELIABILITY=full`` (``make reliability``)
runs the full sizes. Every test records its figures; a table of them closes the run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

FULL = os.environ.get("IMPILO_RELIABILITY") == "full"

#: Sizes per mode: (short, full).
SIZES = {
    "fuzz_examples_per_operation": (6, 45),
    "sandbox_raw_fuzz_examples": (4, 40),
    "receiver_fuzz_examples": (100, 500),
    "burst_events": (1000, 5000),
    "team_burst_events": (400, 5000),  # each event goes to two receivers
    "bulk_rows": (400, 2000),
    "load_rate": (500, 500),
    "load_seconds": (8, 60),
    "hostile_server_cases": (150, 1500),
}


def size(name: str) -> int:
    short, full = SIZES[name]
    return full if FULL else short


FIGURES: dict[str, object] = {}


@pytest.fixture
def figures():
    """Record a figure for the closing table: ``figures["events lost"] = 0``."""
    return FIGURES


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    mode = "full" if FULL else "short (make reliability runs the full sizes)"
    terminalreporter.section(f"reliability figures, {mode}")
    width = max(len(name) for name in FIGURES)
    for name, value in FIGURES.items():
        terminalreporter.write_line(f"  {name:<{width}}  {value}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class CliServer:
    """``python -m impilo_nb <command> ... --port P`` as a separate process, killable for fault tests."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> CliServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "impilo_nb", *self.args, "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        line = self.process.stdout.readline()
        if "http://" not in line:
            raise RuntimeError(f"{self.args[0]} did not start: {line}{self.process.stdout.read()}")
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, as a crash or an OOM kill would do."""
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)

    def wait_ready(self, path: str = "/health", timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                requests.get(self.base + path, timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("server did not answer")
