"""Exporting an executed notebook as one HTML page that opens offline.

nbconvert's page expects a network (require.js, MathJax, the widget manager from CDNs) and a
kernel (live widgets). Here images are inlined, whatever would load from the network is
dropped, live widget views give way to their static snapshots (a widget without one, such as
a progress bar, is left out rather than frozen at its first frame), a title block goes on
top, pandas tables are aligned and made interactive (``_report_tables``), and the result is
checked: a page that would still load anything from the network is refused rather than
written.
"""

from __future__ import annotations

import copy
import re
from typing import Any, TypeGuard

from ._extras import require
from ._report_tables import prepare_tables
from .errors import ReportError

#: Which attribute of which tag makes a browser fetch something by itself.
_LOADING_ATTRIBUTES = {
    "script": "src",
    "link": "href",
    "img": "src",
    "iframe": "src",
    "source": "src",
    "audio": "src",
    "video": "src",
    "embed": "src",
    "object": "data",
    "track": "src",
}
_REMOTE_IN_CODE = re.compile(r"""["'`]((?:https?:)?//[^"'`\s]+)["'`]""")
_REMOTE_IN_CSS = re.compile(r"""(?:url\(|@import\s+)["']?((?:https?:)?//[^"')\s]+)""")
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def to_offline_html(
    notebook: Any,
    *,
    hide_code: bool = False,
    header: str | None = None,
    title: str | None = None,
    interactive_tables: bool = True,
) -> str:
    """Export an executed notebook as one HTML page that loads nothing from the network.

    Args:
        notebook: the executed notebook (an nbformat node).
        hide_code: leave out code cells and every ``In``/``Out`` prompt: results and prose only.
        header: HTML put first in the page (``build_report`` passes its title block).
        title: the browser tab's title (default: nbconvert's, "Notebook").
        interactive_tables: pandas tables sortable, and when large searchable and paged, offline.

    Raises:
        ReportError: something in the outputs would still load from the network.
        ConfigurationError: ``interactive_tables`` and the page has a table, but itables is not installed.
    """
    require("reports", "nbconvert", "bs4")
    from bs4 import BeautifulSoup
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", embed_images=True)
    if hide_code:
        exporter.exclude_input = True
        exporter.exclude_input_prompt = True
        exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(_static_widgets(notebook))
    soup = BeautifulSoup(body, "html.parser")
    _drop_external_loads(soup)
    _add_header(soup, header=header, title=title)
    prepare_tables(soup, interactive=interactive_tables)
    html = str(soup)
    remaining = external_loads(html)
    if remaining:
        raise ReportError(
            f"The page would still load from the network: {remaining[:3]}. An output embeds a remote "
            "script, stylesheet or image; display it inline (e.g. as PNG data) instead of by address."
        )
    return html


def external_loads(html: str) -> list[str]:
    """Every network address the page would load by itself (not links a reader may click)."""
    require("reports", "bs4")
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    found = [url for name, attr in _LOADING_ATTRIBUTES.items() for tag in soup.find_all(name) if _remote(url := tag.get(attr))]
    for script in soup.find_all("script"):  # inline code that would fetch, e.g. import("https://...")
        found += _REMOTE_IN_CODE.findall(script.string or "")
    for style in [*soup.find_all("style"), *soup.find_all(style=True)]:
        text = style.string if style.name == "style" else style.get("style")
        found += _REMOTE_IN_CSS.findall(text if isinstance(text, str) else "")
    return found


def _static_widgets(notebook: Any) -> Any:
    """Drop live-widget views (their snapshot, text/html, stays) and the saved widget state."""
    notebook = copy.deepcopy(notebook)
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        if "outputs" not in cell:  # markdown and raw cells have none, and must not get the key
            continue
        for output in cell.outputs:
            data = output.get("data", {})
            if _WIDGET_VIEW in data:
                del data[_WIDGET_VIEW]
                if "text/html" not in data:  # no snapshot: its text/plain is a stale first frame
                    data.pop("text/plain", None)
        # A display left with no data (a progress bar's) would render as an empty box.
        cell["outputs"] = [o for o in cell.outputs if o.get("output_type") != "display_data" or o.get("data")]
    return notebook


def _drop_external_loads(soup: Any) -> None:
    for name, attr in _LOADING_ATTRIBUTES.items():
        for tag in soup.find_all(name):
            if _remote(tag.get(attr)):
                tag.decompose()
    for script in soup.find_all("script"):  # nbconvert's Mermaid and MathJax loaders fetch from CDNs
        if _REMOTE_IN_CODE.search(script.string or "") or script.get("type") == "text/x-mathjax-config":
            script.decompose()


def _add_header(soup: Any, *, header: str | None, title: str | None) -> None:
    from bs4 import BeautifulSoup

    if title is not None and soup.title is not None:
        soup.title.string = title
    if header:
        main = soup.find("main") or soup.body or soup
        main.insert(0, BeautifulSoup(header, "html.parser"))


def _remote(value: object) -> TypeGuard[str]:
    """Whether an attribute's value is an address on the network (bs4 gives str, a list, or None)."""
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://", "//"))
