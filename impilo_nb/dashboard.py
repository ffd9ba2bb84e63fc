"""The dashboard's parts: where its data comes from, and each section ready to display.

``dashboard/dashboard.ipynb`` (served by ``make dashboard`` through Voilà, code hidden) is a
title and three calls to a ``Dashboard``: ``sync()``, ``log()``, ``bulk()``. Everything that
decides something lives here, so the notebook stays a page layout (docs/dashboard.md).

Where the data comes from, each read from the environment with a default (``Sources.from_env``):

- Impilo: ``$IMPILO_BASE_URL`` (default: the ``make lab`` sandbox, ``http://127.0.0.1:8765``)
  with ``$IMPILO_API_KEY`` (default ``sandbox-key``, for a sandbox on this machine only).
- The webhook log: ``$IMPILO_EVENT_LOG``, a SQLite file (default ``.sandbox/events.db``, which
  ``make dashboard``'s receiver writes) or a ``postgresql://`` URL.
- The bulk import's results: ``$IMPILO_BULK_RESULTS`` (default
  ``notebooks/bulk_import_results.csv``, which notebook 05 writes).

A relative path is taken from the project folder (``root``). A piece that is missing (no log
yet, no results file) shows as one friendly line saying how to get it, never as a traceback:
the page is read by colleagues who do not code.
"""

from __future__ import annotations

import datetime as dt
import html
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pandas as pd

from . import bulk
from ._constants import ENV_API_KEY, ENV_BASE_URL, SANDBOX_API_KEY
from ._csvfiles import LINE_INDEX
from .client import ImpiloClient
from .errors import FieldError, ImpiloError, ValidationError
from .eventlog import EventLog
from .models import WEBHOOK_TYPES, Webhook
from .transport import is_loopback_host, origin

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_BULK_RESULTS",
    "DEFAULT_EVENT_LOG",
    "ENV_BULK_RESULTS",
    "ENV_EVENT_LOG",
    "RECEIVED_TYPES",
    "BulkResults",
    "Dashboard",
    "Notice",
    "Sources",
    "ensure_webhooks",
    "load_bulk_results",
]

#: Environment variables naming the dashboard's two files (Impilo's are ``connect()``'s own).
ENV_EVENT_LOG: Final = "IMPILO_EVENT_LOG"
ENV_BULK_RESULTS: Final = "IMPILO_BULK_RESULTS"

#: The ``make lab`` / ``make dashboard`` sandbox: what a colleague sees without any setting.
DEFAULT_BASE_URL: Final = "http://127.0.0.1:8765"

#: Where ``make dashboard``'s receiver writes, and where notebook 05 saves its results.
DEFAULT_EVENT_LOG: Final = ".sandbox/events.db"
DEFAULT_BULK_RESULTS: Final = "notebooks/bulk_import_results.csv"

#: The event types the dashboard's receiver subscribes to: the ones the sync check compares.
RECEIVED_TYPES: Final = ("patient.created", "patient.updated")

#: Rows of the bulk import that need attention shown on the page; the CSV holds them all.
MAX_ATTENTION_ROWS = 100

#: Columns that tell a person which patient a result row is about, in this order, when present
#: (not the external identifier: a hash means nothing to a reader, and the email leads to it).
_IDENTIFYING = ("firstName", "lastName", "email")

#: Text reads left-aligned and top-aligned (JupyterLab right-aligns every cell, for numbers).
_TABLE_STYLE = (
    "<style>table.dataframe.impilo-bulk-attention th, table.dataframe.impilo-bulk-attention td"
    " {text-align: left; vertical-align: top}"
    " table.dataframe.impilo-bulk-summary th:first-child, table.dataframe.impilo-bulk-summary td:first-child"
    " {text-align: left}</style>"
)

#: Statuses of rows that need nothing more (a dry run's included): every other row needs attention.
_IMPORTED = tuple(
    status.value for status in bulk.RowStatus if status not in (bulk.RowStatus.INVALID, bulk.RowStatus.FAILED)
)

#: The columns a results file must have to be read as ``upsert_patients`` results.
_RESULT_NEEDS = ("status", "error")

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


# -- where the data comes from -----------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """Where each section reads from. Holds no key: ``client()`` reads it when it connects.

    Attributes:
        base_url: the Impilo API (or sandbox) the sync check asks.
        event_log: a SQLite file path or a ``postgresql://`` URL (password never in it).
        bulk_results: the CSV notebook 05 writes.
    """

    base_url: str
    event_log: str
    bulk_results: Path

    @classmethod
    def from_env(cls, *, root: str | os.PathLike[str] = ".") -> Sources:
        """The sources named by the environment, else the defaults; relative paths from ``root``.

        Raises:
            ValidationError: ``root`` is not an existing folder.
        """
        if not isinstance(root, (str, os.PathLike)):
            problem = f"Expected a folder path (str or Path), got {type(root).__name__}. The notebook passes '..'."
            raise ValidationError("Sources.from_env", [FieldError("root", problem)])
        base = Path(root)
        if not base.is_dir():
            problem = f"No such folder: {str(root)!r}. Give the project folder (the notebook passes '..')."
            raise ValidationError("Sources.from_env", [FieldError("root", problem)])
        log = os.environ.get(ENV_EVENT_LOG, "").strip() or DEFAULT_EVENT_LOG
        # Any URL but PostgreSQL's stays as given: _open_log explains it, its password masked.
        log = _postgres_spelled(log) if _is_url(log) else str((base / log).resolve())
        results = (base / (os.environ.get(ENV_BULK_RESULTS, "").strip() or DEFAULT_BULK_RESULTS)).resolve()
        base_url = os.environ.get(ENV_BASE_URL, "").strip() or DEFAULT_BASE_URL
        return cls(base_url=base_url, event_log=log, bulk_results=results)

    @property
    def log_shown(self) -> str:
        """The event log as it may be shown: a URL (PostgreSQL, or any other) without its password."""
        if _is_url(self.event_log):
            from .eventlog.postgres import redacted_url

            return redacted_url(self.event_log)
        return self.event_log

    @property
    def base_url_shown(self) -> str:
        """``base_url`` as it may be shown on the page: scheme, host, port and path only (a
        ``user:password@``, a query or a fragment could carry a credential; ``client()`` refuses them)."""
        parts = urlsplit(self.base_url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:  # a port that is not a number: shown without it
            port = ""
        return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else "(not a URL)"

    def client(self) -> ImpiloClient:
        """A client for ``base_url``, with ``$IMPILO_API_KEY``; the sandbox key only on loopback.

        Raises:
            ConfigurationError: no key for a server that is not on this machine, or a bad URL.
        """
        key = os.environ.get(ENV_API_KEY)
        if not key and _on_this_machine(self.base_url):
            key = SANDBOX_API_KEY
        return ImpiloClient(base_url=self.base_url, api_key=key)

    def _repr_html_(self) -> str:
        parts = (
            ("Impilo", self.base_url_shown),
            ("webhook log", self.log_shown),
            ("bulk results", str(self.bulk_results)),
        )
        shown = " · ".join(f"{name} <code>{html.escape(value)}</code>" for name, value in parts)
        return f"<p class='impilo-dashboard-sources' style='color:#555'><small>Data: {shown}</small></p>"

    def __repr__(self) -> str:
        return f"Sources(base_url={self.base_url_shown!r}, event_log={self.log_shown!r}, bulk_results={str(self.bulk_results)!r})"


def _is_url(value: str) -> bool:
    """A ``scheme://`` value (``postgresql://``, ``POSTGRES://``, ``postgresql+psycopg://``...), never a path."""
    scheme, found, _ = value.partition("://")
    return bool(found) and bool(scheme) and all(ch.isalnum() or ch in "+-." for ch in scheme)


def _postgres_spelled(url: str) -> str:
    """A PostgreSQL URL in the spelling the event log opens: ``POSTGRES://`` and SQLAlchemy's
    ``postgresql+psycopg://`` mean the same server. Other URLs are returned unchanged."""
    scheme, _, rest = url.partition("://")
    if scheme.lower().partition("+")[0] in ("postgresql", "postgres"):
        return f"postgresql://{rest}"
    return url


def _on_this_machine(url: str) -> bool:
    found = origin(url)
    return found is not None and is_loopback_host(found[1])


# -- what the page shows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """One friendly line shown instead of a section that has nothing to show yet."""

    text: str

    def _repr_html_(self) -> str:
        return f"<p class='impilo-dashboard-notice' style='color:#555;font-style:italic'>{html.escape(self.text)}</p>"

    def __repr__(self) -> str:
        return self.text


class Dashboard:
    """The dashboard page's sections, each a widget or an HTML-displayable object.

    ``Dashboard.from_env(root="..")`` reads ``Sources.from_env``; the event log is opened once,
    on first use, and only if it exists (a dashboard creates no file).
    """

    def __init__(self, sources: Sources) -> None:
        if not isinstance(sources, Sources):
            raise TypeError(f"Dashboard needs a Sources (Sources.from_env()), got {type(sources).__name__}.")
        self.sources = sources
        self._log: EventLog | Notice | None = None

    @classmethod
    def from_env(cls, *, root: str | os.PathLike[str] = ".") -> Dashboard:
        """A dashboard on the sources the environment names (see ``Sources.from_env``)."""
        return cls(Sources.from_env(root=root))

    def __repr__(self) -> str:
        return f"Dashboard({self.sources!r})"

    def event_log(self) -> EventLog | Notice:
        """The webhook log, or a ``Notice`` saying why there is none to read."""
        if self._log is None:
            self._log = _open_log(self.sources)
        return self._log

    def sync(self) -> Any:
        """``SyncView`` on Impilo and the log: the verdict, counts, and what differs."""
        log = self.event_log()
        if isinstance(log, Notice):
            return Notice(f"The sync check compares Impilo with the webhook log, and there is none yet. {log.text}")
        try:
            client = self.sources.client()
        except ImpiloError as exc:
            return Notice(f"Cannot ask Impilo: {exc}")
        from .widgets import SyncView

        return SyncView(client, log)

    def log(self) -> Any:
        """``WebhookLogView`` on the log: newest events first, filters, each event's JSON."""
        log = self.event_log()
        if isinstance(log, Notice):
            return log
        from .widgets import WebhookLogView

        return WebhookLogView(log)

    def bulk(self) -> BulkResults | Notice:
        """The latest bulk import's results, or a ``Notice`` saying how to produce them."""
        path = self.sources.bulk_results
        if path.is_dir():
            return Notice(f"The bulk results path {path} is a folder; point {ENV_BULK_RESULTS} at the CSV file notebook 05 "
                          "saves (bulk_import_results.csv).")
        if not path.is_file():
            return Notice(f"Nothing yet: run notebook 05 (bulk import), which saves its results to {path}.")
        try:
            return BulkResults(load_bulk_results(path), source=path)
        except ImpiloError as exc:
            return Notice(f"The bulk results file cannot be shown: {exc}")


def _open_log(sources: Sources) -> EventLog | Notice:
    target = sources.event_log
    if _is_url(target) and not target.startswith(_POSTGRES_SCHEMES):
        return Notice(f"The webhook log {sources.log_shown} is neither a file nor a postgresql:// URL; set "
                      f"{ENV_EVENT_LOG} to a SQLite file path or postgresql://user@host:5432/database.")
    if not target.startswith(_POSTGRES_SCHEMES) and not Path(target).is_file():
        return Notice(
            f"No webhook has been received yet (no log at {target}). `make dashboard` starts a receiver that "
            "writes it; create or change a patient (notebook 01 or 05) and reload this page."
        )
    try:
        return EventLog(target)
    except ImpiloError as exc:
        return Notice(f"The webhook log at {sources.log_shown} cannot be opened: {exc}")


# -- the bulk import's results ---------------------------------------------------------------


def load_bulk_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a results CSV that ``nb.bulk.upsert_patients`` results were saved to, every cell as text.

    Raises:
        ValidationError: the file cannot be read as CSV, or lacks the ``status``/``error`` columns.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValidationError("load_bulk_results", [FieldError("path", f"Give a file path, got {type(path).__name__}.")])
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        problem = f"{path} cannot be read as CSV ({exc}). Run notebook 05 again to rewrite it."
        raise ValidationError("load_bulk_results", [FieldError("path", problem)]) from None
    missing = [name for name in _RESULT_NEEDS if name not in frame.columns]
    if missing:
        problem = (
            f"{path} has no {', '.join(missing)} column: it is not a bulk import's results. "
            "Point IMPILO_BULK_RESULTS at the file notebook 05 saves (results.to_csv)."
        )
        raise ValidationError("load_bulk_results", [FieldError("path", problem)])
    return frame


@dataclass(frozen=True, repr=False)
class BulkResults:
    """A bulk import's results as the dashboard shows them: counts per status, then every row
    that needs attention (invalid or failed) with its full error text.

    Attributes:
        frame: the results (``load_bulk_results``), one row per input row, in input order.
        source: the file they were read from, if any.
    """

    frame: pd.DataFrame
    source: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.frame, pd.DataFrame) or "status" not in self.frame.columns:
            got = type(self.frame).__name__ if not isinstance(self.frame, pd.DataFrame) else "a DataFrame without status"
            problem = f"Expected bulk import results (load_bulk_results(path)), got {got}."
            raise ValidationError("BulkResults", [FieldError("frame", problem)])

    @property
    def summary(self) -> pd.DataFrame:
        """Rows per status with their share (``nb.bulk.summary``)."""
        return bulk.summary(self.frame)

    @property
    def attention(self) -> pd.DataFrame:
        """The rows that were not imported, with their line and their error.

        Every row whose status says it was not imported: invalid, failed, and any status the
        import does not write (empty, or edited by hand), so nothing is hidden. ``line`` is the
        imported file's line when the results carry it (a frame from ``read_csv`` saved with its
        index), else the row's line in the results CSV (1 is the header).
        """
        status = self.frame["status"].astype("string")
        rows = self.frame[~status.isin(_IMPORTED).fillna(False).astype(bool)]
        shown = [name for name in (*_IDENTIFYING, "status", "http_status", "error") if name in rows.columns]
        table = rows[shown].copy()
        if LINE_INDEX in rows.columns:
            lines: Any = pd.to_numeric(rows[LINE_INDEX], errors="coerce").astype("Int64")
        else:
            lines = rows.index + 2
        table.insert(0, "line", lines)
        return table.reset_index(drop=True)

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in self.summary["rows"].items() if n)
        return f"BulkResults({len(self.frame)} rows: {counts or 'none'})"

    def _repr_html_(self) -> str:
        attention = self.attention
        summary = self.summary.rename_axis("status").reset_index()
        parts = [
            _TABLE_STYLE,
            f"<p>{html.escape(self._caption())}</p>",
            summary.to_html(index=False, classes="impilo-bulk-summary"),
        ]
        if attention.empty:
            parts.append("<p>Every row was imported: none needs attention.</p>")
            return "".join(parts)
        more = f" (the first {MAX_ATTENTION_ROWS}; the file holds all)" if len(attention) > MAX_ATTENTION_ROWS else ""
        parts.append(f"<p><b>Rows that need attention: {len(attention)}</b>{more}</p>")
        # to_html, not the frame's _repr_html_, which would cut each error to 50 characters with "...".
        parts.append(attention.head(MAX_ATTENTION_ROWS).to_html(index=False, na_rep="", classes="impilo-bulk-attention"))
        return "".join(parts)

    def _caption(self) -> str:
        rows = f"{len(self.frame)} row{'s' * (len(self.frame) != 1)}"
        try:
            saved = dt.datetime.fromtimestamp(self.source.stat().st_mtime, tz=dt.UTC) if self.source else None
        except OSError:  # moved or deleted since it was read
            saved = None
        if self.source is None or saved is None:
            return f"{rows}."
        return f"{rows} from {self.source.name}, saved {saved:%Y-%m-%d %H:%M} UTC."


# -- the receiver's subscriptions ------------------------------------------------------------


def ensure_webhooks(client: ImpiloClient, url: str, *, types: Iterable[str] = RECEIVED_TYPES) -> list[Webhook]:
    """Subscribe ``url`` to each of ``types`` that is not delivered there yet; the new subscriptions.

    Idempotent: a second call (a dashboard started again) finds them and creates none, so no
    event is delivered twice to the same receiver.

    Raises:
        ValidationError: ``client``, ``url`` or ``types`` is not usable; the message says why.
        APIError: Impilo could not be read or refused a subscription.
    """
    wanted = _check_subscription(client, url, types)
    existing = {(hook.type, hook.url) for hook in client.webhooks.list()}
    return [client.webhooks.create(type=kind, url=url) for kind in wanted if (kind, url) not in existing]


def _check_subscription(client: Any, url: Any, types: Any) -> list[str]:
    problems = []
    if not isinstance(client, ImpiloClient):
        problems.append(FieldError("client", f"Expected an ImpiloClient (nb.connect()), got {type(client).__name__}."))
    if not isinstance(url, str) or origin(url) is None or not url.startswith(("http://", "https://")):
        problems.append(FieldError("url", f"Expected the receiver's http(s) URL (receiver.url), got {url!r}."))
    wanted = [types] if isinstance(types, str) else list(types) if isinstance(types, Iterable) else None
    if not wanted or any(kind not in WEBHOOK_TYPES for kind in wanted):
        problems.append(FieldError("types", f"Expected event types among {', '.join(WEBHOOK_TYPES)}; got {types!r}."))
    if problems:
        raise ValidationError("ensure_webhooks", problems)
    return list(dict.fromkeys(wanted or ()))
