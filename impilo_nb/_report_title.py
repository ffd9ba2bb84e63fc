"""A report's title block: what a reader needs to trust a page that arrived by email.

Which notebook, when (UTC), against which server, with which parameters, by which version
of the toolkit, and whether personal data was masked. Never the API key: it is not a
parameter (it only ever comes from ``IMPILO_API_KEY``), and the server is shown by the base
URL, which ``build_report`` has already refused if it carried a user or password.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ._report_mask import MASK, _personal, mask_text

#: What the server line says when the report ran against the in-process sandbox.
EMBEDDED_SANDBOX = "embedded sandbox"
#: Parts of a parameter's name that say its value is a credential (``webhook_secret``); "key"
#: only as ``api_key`` or alone (a ``sort_key`` is not one).
SECRET_WORDS = frozenset({"secret", "password", "passwd", "token", "credential", "credentials"})
#: The class of the block, for the page's style and for tests.
TITLE_CLASS = "impilo-report-title"

_STYLE = f"""<style>
.{TITLE_CLASS} {{ margin: 0 0 1.5em; padding: 0.8em 1em; border-left: 4px solid #4c72b0;
  background: var(--jp-layout-color2, #f5f5f5); font-family: var(--jp-ui-font-family, sans-serif); }}
.{TITLE_CLASS} h1 {{ margin: 0 0 0.4em; font-size: 1.4em; }}
.{TITLE_CLASS} dl {{ display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; margin: 0; }}
.{TITLE_CLASS} dt {{ font-weight: bold; }}
.{TITLE_CLASS} dd {{ margin: 0; overflow-wrap: anywhere; }}
</style>"""


@dataclass(frozen=True)
class TitleBlock:
    """The facts at the top of a report; ``html()`` renders them."""

    notebook: str
    generated_at: datetime
    base_url: str | None
    version: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    masked: bool = False
    code_shown: bool = True

    def html(self) -> str:
        """The block as one ``<header>``, every value escaped."""
        rows = "".join(f"<dt>{html.escape(label)}</dt><dd>{value}</dd>" for label, value in self._rows())
        name = html.escape(self.notebook.removesuffix(".ipynb"))
        return f'{_STYLE}<header class="{TITLE_CLASS}"><h1>Report: {name}</h1><dl>{rows}</dl></header>'

    def _rows(self) -> list[tuple[str, str]]:
        return [
            ("Generated", html.escape(self.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"))),
            ("Server", html.escape(self.base_url or EMBEDDED_SANDBOX)),
            ("Parameters", _parameters_html(self.parameters, masked=self.masked)),
            ("Notebook", html.escape(self.notebook)),
            ("Toolkit", f"impilo_nb {html.escape(self.version)}"),
            ("Contents", html.escape(_contents(masked=self.masked, code_shown=self.code_shown))),
        ]


def secret_name(name: str) -> bool:
    """Whether a parameter's name says it holds a credential: a part of it (split at ``_``,
    ``-`` and case changes) is in ``SECRET_WORDS``, it says ``apikey``, or it is ``key``."""
    parts = re.findall(r"[a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower())
    return any(part in SECRET_WORDS for part in parts) or "apikey" in "".join(parts) or parts == ["key"]


def _parameters_html(parameters: Mapping[str, Any], *, masked: bool) -> str:
    if not parameters:
        return "none (the notebook's own defaults)"

    def shown(name: str, value: Any) -> str:  # a parameter may be an email or a phone number
        return html.escape(mask_text(repr(_masked_value(name, value))) if masked else repr(_hidden_secrets(name, value)))

    return "<br>".join(f"<code>{html.escape(name)} = {shown(name, value)}</code>" for name, value in parameters.items())


def _masked_value(name: Any, value: Any) -> Any:
    """``value`` with whatever a personal or secret name labels masked, in nested mappings and lists too."""
    return _mask_by_name(name, value, lambda label: _personal(label) or secret_name(label))


def _hidden_secrets(name: Any, value: Any) -> Any:
    """``value`` with whatever a secret's name labels masked (an unmasked page still shows no credential)."""
    return _mask_by_name(name, value, secret_name)


def _mask_by_name(name: Any, value: Any, hidden: Callable[[str], bool]) -> Any:
    """``value`` with ``MASK`` wherever ``hidden(name)`` holds for the name labelling it, nested too."""
    if isinstance(name, str) and hidden(name):
        return MASK
    if isinstance(value, Mapping):
        return {key: _mask_by_name(key, item, hidden) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_by_name(name, item, hidden) for item in value]
    return value


def _contents(*, masked: bool, code_shown: bool) -> str:
    data = "personal data masked" if masked else "personal data shown (not masked)"
    code = "code shown" if code_shown else "results only (code hidden)"
    return f"{code}; {data}"
