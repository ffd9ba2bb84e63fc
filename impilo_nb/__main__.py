"""Command line: ``python -m impilo_nb sandbox|...  --help``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from . import _constants as c
from .errors import ImpiloError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m impilo_nb", description="impilo_nb command line tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sandbox = commands.add_parser("sandbox", help="run the Impilo-compatible sandbox API in the foreground")
    sandbox.add_argument("--host", default=c.DEFAULT_HOST, help="address to listen on (default: %(default)s, this machine only)")
    sandbox.add_argument("--port", type=int, default=8765, help="port (default: %(default)s; 0 picks a free one)")
    sandbox.add_argument("--db", help="SQLite file to keep patients in between runs (default: a temporary file)")
    sandbox.add_argument("--reset", action="store_true", help="delete the --db file first")
    sandbox.add_argument(
        "--api-key",
        default=os.environ.get("IMPILO_SANDBOX_API_KEY", c.SANDBOX_API_KEY),
        help="the key clients must send (default: $IMPILO_SANDBOX_API_KEY or 'sandbox-key')",
    )
    sandbox.add_argument("--time-scale", type=float, default=1.0, help="webhook retry delays multiplier (default: 1)")
    sandbox.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every API request (default: 0)")
    sandbox.set_defaults(run=_run_sandbox)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ImpiloError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import Sandbox

    if args.reset and args.db:
        for suffix in ("", "-wal", "-shm"):
            Path(args.db + suffix).unlink(missing_ok=True)
    sandbox = Sandbox(
        args.api_key, db_path=args.db, port=args.port, host=args.host, time_scale=args.time_scale, latency_ms=args.latency_ms
    )
    sandbox.start()
    key_note = f"API key: {c.SANDBOX_API_KEY}" if args.api_key == c.SANDBOX_API_KEY else "API key: the one you set"
    print(f"Impilo sandbox on {sandbox.url} ({key_note}; data: {args.db or 'temporary'}). Ctrl-C stops it.", flush=True)
    _wait_for_signal()
    sandbox.stop()
    return 0


def _wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


if __name__ == "__main__":
    sys.exit(main())
