"""DataFrames in a report page: readable, and sortable, searchable and paged offline.

Two steps on the exported page, after masking:

- every pandas table gets its columns aligned by content (numbers right, text left) and long
  text wraps inside its cell, so an error message is read in full without widening the page;
- the DataTables library that itables ships for its offline mode (``itables.options.dt_bundle``,
  JavaScript and CSS) is inlined once, and enhances each pandas table *from the page's own
  DOM*. No JSON copy of the data exists: what the reader can sort and search is exactly the
  masked table already in the page, so masking holds by construction. (itables' own
  ``to_html_datatable`` would embed the frame as JSON inside a script, a second copy of the
  data that the HTML masking pass cannot see into.)

The library is base64 text in a non-executable ``<script>`` and loaded as a ``blob:`` module,
as itables' offline mode does: nothing is fetched, and no address inside the library's code
reads as a load to ``external_loads``.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

#: A table with more rows than this gets a search box and pages; a smaller one only sorts
#: (a search box over four rows is clutter).
SMALL_TABLE_ROWS = 10
#: Rows per page of a large table (the reader can choose 10, 25, 100 or all).
PAGE_LENGTH = 25
#: Widest a text cell grows before it wraps, in characters of the page's font.
TEXT_CELL_MAX_WIDTH = "42em"

INTERACTIVE_CLASS = "impilo-interactive"
NUMBER_CLASS = "impilo-num"
_BUNDLE_ID = "impilo-datatables-bundle"
# A cell that reads as a number (pandas writes 1,234.5, -3, 1e-05, nan, <NA>) or is empty.
_NUMBER = re.compile(r"^[-+]?(\d[\d,]*(\.\d*)?|\.\d+)([eE][-+]?\d+)?%?$|^(nan|NaN|<NA>|None|NaT|inf|-inf)?$")

STYLE = f"""
/* tbody tr th: outweighs pandas' own ".dataframe tbody tr th:only-of-type", which centres the index */
.jp-RenderedHTMLCommon table.dataframe tbody tr th, .jp-RenderedHTMLCommon table.dataframe tr th,
.jp-RenderedHTMLCommon table.dataframe tr td {{
  text-align: left; vertical-align: top; white-space: normal;
}}
.jp-RenderedHTMLCommon table.dataframe thead tr th {{ vertical-align: bottom; }}
.jp-RenderedHTMLCommon table.dataframe td {{ max-width: {TEXT_CELL_MAX_WIDTH}; overflow-wrap: break-word; }}
.jp-RenderedHTMLCommon table.dataframe .{NUMBER_CLASS} {{ text-align: right; font-variant-numeric: tabular-nums; }}
.jp-RenderedHTMLCommon table.dataframe {{ table-layout: auto; margin-left: 0; width: auto; }}
.impilo-table-scroll {{ overflow-x: auto; max-width: 100%; }}
.impilo-table-scroll > .dt-container {{ display: inline-block; max-width: 100%; }}
.jp-RenderedHTMLCommon table.dataframe.dataTable {{ margin-left: 0; }}
.jp-RenderedHTMLCommon .dt-container {{ font-size: var(--jp-ui-font-size1); }}
"""

_ENHANCE = f"""
(async () => {{
  const text = atob(document.getElementById("{_BUNDLE_ID}").textContent.trim());
  const bytes = Uint8Array.from(text, (c) => c.charCodeAt(0));
  const url = URL.createObjectURL(new Blob([bytes], {{ type: "text/javascript;charset=utf-8" }}));
  const {{ ITable }} = await import(url);
  URL.revokeObjectURL(url);
  for (const table of document.querySelectorAll("table.{INTERACTIVE_CLASS}")) {{
    const large = table.tBodies[0].rows.length > {SMALL_TABLE_ROWS};
    new ITable(table, {{
      order: [], autoWidth: false, paging: large, searching: large, info: large,
      pageLength: {PAGE_LENGTH}, lengthMenu: [10, 25, 100, {{ label: "All", value: -1 }}],
    }});
  }}
  document.body.dataset.impiloTables = "ready";
}})();
"""


def prepare_tables(soup: Any, *, interactive: bool = True) -> int:
    """Align and wrap every pandas table in ``soup``; with ``interactive``, also make them
    sortable (and, when large, searchable and paged) and inline the library once.

    Returns:
        How many tables were made interactive.
    """
    tables = soup.select("table.dataframe")
    enhanced = 0
    for table in tables:
        _merge_index_name_row(table)
        _align_columns(table)
        _wrap_for_scrolling(soup, table)
        if interactive and _enhanceable(table):
            table["class"] = [*table.get("class", []), INTERACTIVE_CLASS]
            enhanced += 1
    if enhanced:
        _add_library(soup)
    _add_style(soup, STYLE)  # after the library's, so ours wins where both set a rule of the same weight
    return enhanced


def _align_columns(table: Any) -> None:
    """Mark the cells of columns whose every value reads as a number (data cells are a row's
    last ``<td>``s; index ``<th>``s before them may span rows, so count from the end)."""
    body_rows = [row.find_all("td", recursive=False) for row in table.select("tbody > tr")]
    width = max((len(cells) for cells in body_rows), default=0)
    numeric = [
        offset
        for offset in range(1, width + 1)
        if all(_NUMBER.match(cells[-offset].get_text(strip=True)) for cells in body_rows if len(cells) >= offset)
        and any(cells[-offset].get_text(strip=True) for cells in body_rows if len(cells) >= offset)
    ]
    for cells in body_rows:
        for offset in numeric:
            if len(cells) >= offset:
                _add_class(cells[-offset], NUMBER_CLASS)
    header = table.select("thead > tr")
    if header:
        labels = header[0].find_all("th", recursive=False)  # the column labels' row
        if not any(th.get("colspan") for th in labels):
            for offset in numeric:
                if len(labels) >= offset:
                    _add_class(labels[-offset], NUMBER_CLASS)


def _merge_index_name_row(table: Any) -> None:
    """pandas puts a named index's name on a header row of its own, empty but for that name;
    move the name into the empty corner of the labels' row instead (one header row reads
    better, and DataTables would offer to sort by the empty row)."""
    rows = table.select("thead > tr")
    if len(rows) != 2:
        return
    labels, names = (row.find_all("th", recursive=False) for row in rows)
    if len(labels) != len(names) or any(th.get("colspan") or th.get("rowspan") for th in [*labels, *names]):
        return
    if labels[0].get_text(strip=True) or any(th.get_text(strip=True) for th in names[1:]):
        return
    labels[0].string = names[0].get_text()
    rows[1].decompose()


def _enhanceable(table: Any) -> bool:
    """DataTables needs one cell per column in every body row: no spans, some rows."""
    rows = table.select("tbody > tr")
    if not rows or table.select("tbody [rowspan], tbody [colspan]"):
        return False
    return len({len(row.find_all(["th", "td"], recursive=False)) for row in rows}) == 1


def _wrap_for_scrolling(soup: Any, table: Any) -> None:
    """A table wider than the page scrolls sideways inside its output, not the whole page."""
    wrapper = soup.new_tag("div", attrs={"class": "impilo-table-scroll"})
    table.wrap(wrapper)


def _add_class(tag: Any, name: str) -> None:
    tag["class"] = [*tag.get("class", []), name]


def _add_style(soup: Any, css: str) -> None:
    style = soup.new_tag("style")
    style.string = css
    (soup.head or soup).append(style)


def _add_library(soup: Any) -> None:
    from ._extras import require

    require("widgets", "itables")
    from itables import options

    bundle = Path(options.dt_bundle)  # the offline bundle itables' own offline mode inlines
    _add_style(soup, bundle.with_suffix(".css").read_text(encoding="utf-8"))
    code = soup.new_tag("script", attrs={"type": "application/octet-stream", "id": _BUNDLE_ID})
    code.string = base64.b64encode(bundle.read_bytes()).decode("ascii")
    loader = soup.new_tag("script", attrs={"type": "module"})
    loader.string = _ENHANCE
    (soup.body or soup).append(code)
    (soup.body or soup).append(loader)
