"""A real PostgreSQL server for the tests: Debian's binaries, a private data folder, loopback only.

``PostgresServer()`` runs ``initdb`` into a fresh temporary folder, then ``postgres`` listening on
127.0.0.1 only, on a free port, with its unix socket in that folder (no other user's socket
directory is touched) and trust authentication (only this machine can reach it). ``database()``
creates an empty database per test, so tests never see each other's rows. ``stop()`` /
``start()`` take the server down and bring it back with its data, for outage tests.

``initdb`` refuses to run as root, so when the tests run as root the server runs as an
unprivileged user (``postgres`` when the Debian package created it, else ``nobody``), and its
folder is handed to that user.

For the tests, durability is relaxed (``fsync=off``: nothing is lost unless the machine itself
fails), which makes a database per test cheap; ``PostgresServer(durable=True)`` keeps
PostgreSQL's defaults, for benchmarks (``bench/webhooks.py``).
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

#: Where Debian installs each PostgreSQL version's server binaries.
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"

#: What a test says when there is no server to run.
INSTALL_HINT = "PostgreSQL is not installed here: sudo apt-get install postgresql (make test does it when run as root)"

#: The superuser the tests connect as (trust authentication: no password).
SUPERUSER = "impilo"

#: Seconds pg_ctl waits for the server to start or stop.
PG_CTL_TIMEOUT = 60


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin folder (``$IMPILO_PG_BIN`` if set), or None when there is none."""
    override = os.environ.get("IMPILO_PG_BIN")
    candidates = [Path(override)] if override else sorted(Path("/").glob(DEBIAN_BIN_GLOB.lstrip("/")), key=_version)
    found = [path for path in candidates if (path / "initdb").is_file() and (path / "pg_ctl").is_file()]
    return found[-1] if found else None


def _version(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in path.parent.name.split(".") if part.isdigit())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> str | None:
    """The unprivileged user to run the server as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL as")


class PostgresServer:
    """One PostgreSQL server in a temporary folder, for one test session (or one benchmark)."""

    def __init__(self, *, durable: bool = False) -> None:
        found = bin_dir()
        if found is None:
            raise RuntimeError(INSTALL_HINT)
        self.bin = found
        self.user = _run_as()
        self.folder = Path(tempfile.mkdtemp(prefix="impilo-pg-"))
        self.data = self.folder / "data"
        self.sockets = self.folder / "sockets"
        self.port = free_port()
        self.durable = durable
        self._names = itertools.count(1)
        self.sockets.mkdir()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.folder, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "--pgdata", str(self.data), "--username", SUPERUSER, "--auth", "trust", "--encoding", "UTF8",
                  "--no-sync", "--no-instructions")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / tool), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        run = subprocess.run(command, capture_output=True, text=True, cwd=self.folder)
        if check and run.returncode != 0:
            raise RuntimeError(f"{tool} failed ({run.returncode}): {run.stderr or run.stdout}")
        return run

    def start(self) -> PostgresServer:
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.sockets}"
                   " -c max_connections=200")
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "start", "--pgdata", str(self.data), "--wait", "--timeout", str(PG_CTL_TIMEOUT),
                  "--log", str(self.folder / "server.log"), "-o", options)
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends sessions cleanly, ``immediate`` as a crash would."""
        self._run("pg_ctl", "stop", "--pgdata", str(self.data), "--wait", "--timeout", str(PG_CTL_TIMEOUT), "--mode", mode,
                  check=False)

    def running(self) -> bool:
        return self._run("pg_ctl", "status", "--pgdata", str(self.data), check=False).returncode == 0

    def remove(self) -> None:
        """Stop the server and delete its folder."""
        if self.data.exists():
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with psql; its unaligned output."""
        run = subprocess.run([str(self.bin / "psql"), "--no-psqlrc", "-qAtX", "-v", "ON_ERROR_STOP=1", "-d", self.url(database),
                              "-c", statement], capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"psql failed: {run.stderr}")
        return run.stdout.strip()

    def database(self) -> str:
        """A new, empty database; its URL."""
        name = f"test_{next(self._names)}"
        self.sql(f"CREATE DATABASE {name} TEMPLATE template0 STRATEGY file_copy")
        return self.url(name)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()
