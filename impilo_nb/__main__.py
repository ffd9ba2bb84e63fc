"""Command line: ``python -m impilo_nb sandbox|...  --help``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from . import _constants as c
from .errors import ImpiloError

if TYPE_CHECKING:
    from .eventlog import EventLog


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (its defaults are part of the contract: servers on loopback)."""
    parser = argparse.ArgumentParser(prog="python -m impilo_nb", description="impilo_nb command line tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in (_add_sandbox_command, _add_receiver_command, _add_hash_command, _add_report_command):
        add_command(commands)
    return parser


_Commands = argparse._SubParsersAction  # what add_subparsers() returns; each _add_*_command adds one


def _add_sandbox_command(commands: _Commands[argparse.ArgumentParser]) -> None:
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
    sandbox.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="webhook retry delays multiplier (default: 1, i.e. 15/30/60 minutes; 0.01 gives 9/18/36 s)",
    )
    sandbox.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every API request (default: 0)")
    sandbox.add_argument(
        "--documented-only",
        action="store_true",
        help="answer with only the fields the public API docs document (no sandbox extras), to test code against them",
    )
    sandbox.set_defaults(run=_run_sandbox)


def _add_receiver_command(commands: _Commands[argparse.ArgumentParser]) -> None:
    receiver = commands.add_parser(
        "receiver",
        help="receive webhooks into an event log (SQLite or PostgreSQL), in the foreground",
        description="Receive Impilo webhooks into an event log. The secret, if any, is read from "
        "$IMPILO_WEBHOOK_SECRET (never from the command line, where other users could see it). Several "
        "receivers may share one PostgreSQL event log (--db postgresql://...), for availability.",
    )
    receiver.add_argument(
        "--db",
        required=True,
        help="the event log: a SQLite file (created if missing), or postgresql://user@host:5432/database with the "
        "password in $PGPASSWORD or ~/.pgpass (never in the URL, where other users could see it)",
    )
    receiver.add_argument("--host", default=c.DEFAULT_HOST, help="address to listen on (default: %(default)s)")
    receiver.add_argument("--port", type=int, default=8766, help="port (default: %(default)s; 0 picks a free one)")
    receiver.add_argument("--path", default="/webhooks/impilo", help="delivery path (default: %(default)s)")
    receiver.add_argument(
        "--forward-to",
        metavar="URL",
        help="also send each committed delivery, as received, to your own handler at URL (on this machine); "
        "every forward is recorded in the log's attempts",
    )
    receiver.add_argument(
        "--synchronous",
        choices=["FULL", "NORMAL"],
        default="FULL",
        help="FULL: every acknowledged event survives a power loss (default); NORMAL: a process crash "
        "(on PostgreSQL: a crash of the receiver, not of the database server)",
    )
    receiver.set_defaults(run=_run_receiver)


def _add_hash_command(commands: _Commands[argparse.ArgumentParser]) -> None:
    hash_cmd = commands.add_parser(
        "hash",
        help="add external identifiers to a CSV, streaming (files larger than memory work)",
        description="Copy a CSV adding an externalIdentifier column: MD5 of lower-cased email + the phone's ASCII "
        "digits, exactly as the guide's Java and JavaScript compute it. With --key-env, HMAC-SHA256 with the key "
        "read from that environment variable instead. The separator and encoding are detected (and kept in the "
        "output), the email and phone columns found by name; docs/csv-import.md.",
    )
    hash_cmd.add_argument("--in", dest="source", required=True, help="input CSV")
    hash_cmd.add_argument("--out", dest="destination", required=True, help="output CSV (the input plus externalIdentifier)")
    hash_cmd.add_argument("--email-col", help="email column (default: the one named email, E-mail, Email Address...)")
    hash_cmd.add_argument("--phone-col", help="phone column (default: the one named phoneNumber, Phone, Mobile...)")
    hash_cmd.add_argument("--sep", help="column separator (default: detected among , ; tab |)")
    hash_cmd.add_argument("--encoding", help="file encoding (default: detected: UTF-8 with or without BOM, else cp1252)")
    hash_cmd.add_argument("--key-env", help="name of an environment variable holding an HMAC key (keyed mode)")
    hash_cmd.add_argument("--chunk-rows", type=int, default=50_000, help="rows in memory at a time (default: %(default)s)")
    hash_cmd.add_argument("--quiet", action="store_true", help="no progress bar")
    hash_cmd.set_defaults(run=_run_hash)


def _add_report_command(commands: _Commands[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report",
        help="execute notebooks and write self-contained HTML reports",
        description="Execute notebooks with papermill (against the embedded sandbox unless --base-url is given; the "
        "API key comes from IMPILO_API_KEY) and write OUT/<name>.html pages that open offline: a title block (when, "
        "which server, which parameters), tables you can sort and search, error texts in full. --share makes a page "
        "to send: results only, personal data masked (make report's default).",
    )
    report.add_argument("notebooks", nargs="*", help="notebooks to run (default: every notebooks/*.ipynb)")
    report.add_argument("--out", default="reports", help="output folder (default: %(default)s)")
    report.add_argument("--base-url", help="run against this Impilo API instead of the sandbox")
    report.add_argument("--input", dest="input_file", help="value for the notebooks' input_file parameter")
    report.add_argument(
        "--share", action="store_true", help="a page to send to a colleague: --hide-code and --mask together"
    )
    report.add_argument("--hide-code", action="store_true", help="leave code cells and In/Out prompts out")
    report.add_argument("--mask", action="store_true", help="mask names, emails, phones, dates of birth in outputs")
    report.set_defaults(run=_run_report)


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status. An ``ImpiloError`` (a missing extra among them) is one
    ``error:`` line and status 2, never a traceback: it already says what to do."""
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run  # each subparser's set_defaults(run=...)
    try:
        return run(args)
    except ImpiloError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run_sandbox(args: argparse.Namespace) -> int:
    from ._connect import sandbox_class

    if args.reset and args.db:
        for suffix in ("", "-wal", "-shm"):
            Path(args.db + suffix).unlink(missing_ok=True)
    sandbox = sandbox_class()(
        args.api_key,
        db_path=args.db,
        port=args.port,
        host=args.host,
        time_scale=args.time_scale,
        latency_ms=args.latency_ms,
        documented_only=args.documented_only,
    )
    sandbox.start()
    key_note = f"API key: {c.SANDBOX_API_KEY}" if args.api_key == c.SANDBOX_API_KEY else "API key: the one you set"
    fields = "; documented fields only" if args.documented_only else ""
    print(f"Impilo sandbox on {sandbox.url} ({key_note}; data: {args.db or 'temporary'}{fields}). Ctrl-C stops it.", flush=True)
    _wait_for_signal()
    sandbox.stop()
    return 0


def _run_receiver(args: argparse.Namespace) -> int:
    from .receiver import WebhookReceiver

    secret = os.environ.get(c.ENV_WEBHOOK_SECRET) or None
    from .eventlog import EventLog

    log = EventLog(args.db, synchronous=args.synchronous)
    receiver = WebhookReceiver(log, secret, host=args.host, port=args.port, path=args.path, forward_to=args.forward_to)
    receiver.start()
    secret_note = "secret required" if secret else f"no secret: set {c.ENV_WEBHOOK_SECRET} to require one"
    if args.forward_to:
        secret_note += f"; forwarding to {args.forward_to}"
    print(f"Receiving webhooks at {receiver.url} into {_shown(args.db, log)} ({secret_note}). Ctrl-C stops it.", flush=True)
    _wait_for_signal()
    receiver.stop()
    return 0


def _shown(db: str, log: EventLog) -> str:
    """Where the log is, to print: a PostgreSQL URL without its password."""
    if log.path is not None:
        return db
    from .eventlog.postgres import redacted_url

    return redacted_url(db)


def _run_hash(args: argparse.Namespace) -> int:
    from .errors import ValidationError
    from .ids import hash_csv

    key = None
    if args.key_env:
        key = os.environ.get(args.key_env)
        if not key:
            print(f"error: --key-env {args.key_env}: that environment variable is not set.", file=sys.stderr)
            return 2
    try:
        summary = hash_csv(
            args.source,
            args.destination,
            email_col=args.email_col,
            phone_col=args.phone_col,
            key=key,
            chunk_rows=args.chunk_rows,
            progress=not args.quiet,
            sep="\t" if args.sep in ("tab", "\\t") else args.sep,
            encoding=args.encoding,
        )
    except ValidationError as exc:  # its messages name the file, the columns and the flag to pass: one line
        print(f"error: {'; '.join(fe.message for fe in exc.field_errors)}", file=sys.stderr)
        return 2
    print(f"{summary}; wrote {args.destination}; peak RSS {_peak_rss_mib():,.0f} MiB", flush=True)
    return 0


def _peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM first: ru_maxrss survives exec on Linux, so a
    process started from a big parent would report the parent's peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_report(args: argparse.Namespace) -> int:
    import glob

    from .reports import ReportError, build_report

    notebooks = args.notebooks or sorted(glob.glob("notebooks/*.ipynb"))
    if not notebooks:
        print("error: no notebooks given and none in notebooks/.", file=sys.stderr)
        return 2
    failed = 0
    for notebook in notebooks:
        parameters = {"input_file": str(Path(args.input_file).resolve())} if args.input_file else None
        try:
            report = build_report(
                notebook,
                args.out,
                parameters=parameters,
                base_url=args.base_url,
                share=args.share,
                hide_code=args.hide_code or None,  # not given: as --share decides
                mask=args.mask or None,
            )
        except ReportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"wrote {report.html}", flush=True)
    return 1 if failed else 0


def _wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


if __name__ == "__main__":
    sys.exit(main())
