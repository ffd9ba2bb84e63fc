"""JSON responses that render whatever they hold, so one bad stored record never fails a response.

The API checks what it stores, but the SQLite file may hold records written before those checks
existed, or planted by other tools: lone surrogates, NaN, nesting deeper than any record needs.
``SafeJSONResponse`` renders the usual way first and, only if that raises, a cleaned copy.
"""

from __future__ import annotations

import math
import re
from typing import Any

from fastapi.responses import JSONResponse

from .limits import MAX_DEPTH

__all__ = ["LONE_SURROGATE", "SafeJSONResponse", "clean_text", "renderable"]

#: A lone UTF-16 surrogate: a code point Python strings can hold but UTF-8 cannot encode.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class SafeJSONResponse(JSONResponse):
    """JSON that renders whatever it holds (see the module docstring).

    ``content`` stays readable after rendering, so a route class can reshape a response
    (documented-only mode keeps only the documented fields).
    """

    def __init__(self, content: Any, status_code: int = 200, headers: dict[str, str] | None = None, **kwargs: Any) -> None:
        self.content = content
        super().__init__(content, status_code, headers, **kwargs)

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except (ValueError, TypeError, RecursionError):  # UnicodeEncodeError is a ValueError
            return super().render(renderable(content))


def renderable(content: Any) -> Any:
    """A copy of ``content`` that json.dumps cannot fail on: lone surrogates become U+FFFD,
    NaN and infinities null, anything nested deeper than ``MAX_DEPTH`` null, other objects text.

    Iterative, so any depth is safe.
    """
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(content, root, 0, 0)]
    while stack:
        value, parent, key, depth = stack.pop()
        if isinstance(value, (dict, list, tuple)) and depth < MAX_DEPTH:
            pairs: list[tuple[Any, Any]]
            if isinstance(value, dict):
                pairs = [(clean_text(str(k)), v) for k, v in value.items()]
                copy: Any = dict.fromkeys(k for k, _ in pairs)
            else:
                pairs = list(enumerate(value))
                copy = [None] * len(pairs)
            parent[key] = copy
            stack.extend((item, copy, k, depth + 1) for k, item in pairs)
        elif value is None or isinstance(value, (bool, int)):
            parent[key] = value
        elif isinstance(value, float):
            parent[key] = value if math.isfinite(value) else None
        elif isinstance(value, (dict, list, tuple)):
            parent[key] = None
        else:
            parent[key] = clean_text(value if isinstance(value, str) else str(value))
    return root[0]


def clean_text(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD, so it can be encoded as UTF-8."""
    return LONE_SURROGATE.sub("\ufffd", text)
