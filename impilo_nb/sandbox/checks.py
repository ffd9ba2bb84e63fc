"""Trust the wire: every JSON body and query parameter of the API passes one set of checks.

``CheckedRoute`` runs them before any route sees the request: text must be valid Unicode (no
lone UTF-16 surrogates, which cannot be encoded as UTF-8) without NUL characters and at most
``MAX_TEXT_LENGTH`` characters; numbers must fit in 64 bits (no NaN or Infinity); arrays and
objects may nest ``MAX_DEPTH`` levels; a body may be ``MAX_BODY_BYTES`` long and must be UTF-8.
What fails is refused with a 400 (413 for a body too large) naming the field, before anything is
stored. The read side does not rely on that alone: see ``rendering.py``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from ..errors import FieldError
from .limits import MAX_BODY_BYTES, MAX_DEPTH, MAX_INT, MAX_REPORTED, MAX_TEXT_LENGTH, MIN_INT
from .problems import SandboxProblemError
from .rendering import LONE_SURROGATE

__all__ = ["CheckedRequest", "CheckedRoute", "decode_body", "json_problems", "query_problems", "text_problem"]

#: The summary of a 400 whose fieldErrors list the values refused.
REFUSED = "The body has values this API refuses; see fieldErrors."


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be accepted anywhere in the API, or None when it can."""
    surrogate = LONE_SURROGATE.search(text)
    if surrogate is not None:
        return (
            f"Contains a lone UTF-16 surrogate (U+{ord(surrogate.group()):04X}) at character {surrogate.start() + 1}: "
            "it is not a character and cannot be stored or sent as UTF-8. Send valid Unicode text."
        )
    nul = text.find("\x00")
    if nul >= 0:
        return f"Contains a NUL character (U+0000) at character {nul + 1}; remove it (text cannot hold NUL)."
    if len(text) > MAX_TEXT_LENGTH:
        return f"Is {len(text):,} characters long; the limit is {MAX_TEXT_LENGTH:,}."
    return None


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, int) and not isinstance(value, bool) and not MIN_INT <= value <= MAX_INT:
        return "Out of range: whole numbers must fit in 64 bits (-2^63 to 2^63-1)."
    if isinstance(value, float) and not math.isfinite(value):
        return "Not a finite number: NaN, Infinity and numbers beyond ±1.8e308 are not accepted."
    return None


def _shown_path(path: tuple[Any, ...]) -> str | None:
    """A JSON path as a dotted field name, shortened and printable when it is long or odd."""
    parts = [str(part) if len(str(part)) <= 40 else str(part)[:40] + "…" for part in path]
    if len(parts) > 6:
        parts = [*parts[:3], "…", *parts[-2:]]
    return ".".join(part.encode("utf-8", "backslashreplace").decode() for part in parts) or None


def json_problems(document: Any) -> list[FieldError]:
    """Every part of a decoded JSON body the API refuses, whatever the operation (at most
    ``MAX_REPORTED``): text ``text_problem`` refuses (values and member names), numbers beyond
    64 bits or not finite, and arrays or objects nested deeper than ``MAX_DEPTH``.

    Iterative, so a deep document cannot exhaust the stack here.
    """
    problems: list[FieldError] = []
    stack: list[tuple[Any, tuple[Any, ...], int]] = [(document, (), 0)]
    while stack and len(problems) < MAX_REPORTED:
        value, path, depth = stack.pop()
        if not isinstance(value, (dict, list)):
            why = _scalar_problem(value)
            if why:
                problems.append(FieldError(_shown_path(path), why))
            continue
        if depth >= MAX_DEPTH:
            problems.append(FieldError(_shown_path(path), _too_deep()))
            continue
        children = []
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            why = text_problem(key) if isinstance(key, str) else None
            if why:
                problems.append(FieldError(_shown_path((*path, key)), f"The member name: {why}"))
            children.append((item, (*path, key), depth + 1))
        stack.extend(reversed(children))  # reversed: problems are reported in document order
    return problems


def _too_deep() -> str:
    return f"Arrays and objects nested more than {MAX_DEPTH} levels deep; this API's records nest 3 (patient.site.address)."


def _parse_int(digits: str) -> int:
    # More than 20 characters cannot fit in 64 bits; not converted, as Python refuses to
    # convert over 4,300 digits at all. 2**64 stands for any of them: json_problems refuses it.
    return int(digits) if len(digits) <= 20 else 2**64


def decode_body(raw: bytes) -> Any:
    """A request body as JSON, or a SandboxProblemError (400) saying what is wrong and where."""
    try:
        text = raw.decode("utf-8")  # strict: json.loads(bytes) would let encoded surrogates through
    except UnicodeDecodeError as exc:
        message = f"Not UTF-8: invalid byte at position {exc.start}. Send the JSON encoded as UTF-8."
        raise SandboxProblemError(400, "The body is not valid JSON.", [FieldError(None, message)]) from None
    try:
        document = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        message = f"{exc.msg} at line {exc.lineno}, column {exc.colno}."
        raise SandboxProblemError(400, "The body is not valid JSON.", [FieldError(None, message)]) from None
    except RecursionError:
        raise SandboxProblemError(400, REFUSED, [FieldError(None, _too_deep())]) from None
    problems = json_problems(document)
    if problems:
        raise SandboxProblemError(400, REFUSED, problems)
    return document


def query_problems(items: list[tuple[str, str]]) -> list[FieldError]:
    """The query parameters (names and values) that ``text_problem`` refuses."""
    problems = []
    for name, value in items:
        why = text_problem(name)
        if why:
            problems.append(FieldError(_shown_path((name,)), f"The parameter name: {why}"))
        elif why := text_problem(value):
            problems.append(FieldError(name, why))
    return problems[:MAX_REPORTED]


class CheckedRequest(Request):
    """A request whose body is read up to ``MAX_BODY_BYTES`` and decoded by ``decode_body``."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):  # Starlette's own cache: stream() and form() read it too
            declared = self.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                raise _too_large(int(declared))
            chunks, size = [], 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise _too_large(None)
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = decode_body(await self.body())
        return self._json


def _too_large(size: int | None) -> SandboxProblemError:
    """The 413 for a body of ``size`` bytes (None: not declared, found while reading)."""
    what = f"The body is {size:,} bytes" if size is not None else "The body is longer"
    return SandboxProblemError(413, f"{what}; the limit is {MAX_BODY_BYTES:,} bytes (1 MiB). Send one record per request.")


class CheckedRoute(APIRoute):
    """The route of every API operation: the query and the JSON body pass the wire checks
    (see the module docstring) before FastAPI validates them against the operation."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def checked(request: Request) -> Response:
            problems = query_problems(request.query_params.multi_items())
            if problems:
                raise SandboxProblemError(400, "Invalid query parameter.", problems)
            return await handle(CheckedRequest(request.scope, request.receive))

        return checked
