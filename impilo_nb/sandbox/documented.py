"""Documented-fields-only mode: responses carry only the fields the public API docs document.

Why: a notebook that works against the sandbox should work against the platform, which may send
none of the sandbox's extras. ``Sandbox(documented_only=True)`` (``--documented-only`` on the
command line, ``IMPILO_SANDBOX_DOCUMENTED_ONLY=1`` for ``connect()``'s embedded one) answers
with only the documented fields, so code that relies on an extra fails against the sandbox too.

What is documented is derived from the models: a model's fields are the documented ones
(``models.py`` mirrors the docs), and anything else a record holds is the sandbox's own, such
as the delivery log's ``eventId``, ``status``, ``lastError``, ``nextAttemptTimestamp`` and
``attempts``. A few fields the models declare are not in the docs; ``SANDBOX_ONLY`` marks them,
in this one place.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from ..fields import nested_model
from ..models import Site
from .checks import CheckedRoute
from .rendering import SafeJSONResponse

__all__ = ["SANDBOX_ONLY", "DocumentedOnlyRoute", "documented"]

#: Model fields (wire names) the public docs do not have. The docs' Site, embedded in a patient,
#: has no id; the toolkit models one because the List Patients ``siteId`` filter reads it.
SANDBOX_ONLY: dict[type[BaseModel], frozenset[str]] = {Site: frozenset({"id"})}


def documented(shape: Any, content: Any) -> Any:
    """``content`` with only the fields documented for ``shape``: a model, ``list[model]``,
    ``Page[model]`` or ``model | None``, nested models included. Not a model: kept as it is."""
    if isinstance(content, list):
        item = _item_shape(shape)
        return [documented(item, value) for value in content] if item is not None else content
    model = nested_model(shape)
    if model is None or not isinstance(content, dict):
        return content
    hidden = SANDBOX_ONLY.get(model, frozenset())
    kept = {}
    for name, info in model.model_fields.items():
        wire = info.alias or to_camel(name)
        if wire in content and wire not in hidden:
            kept[wire] = documented(info.annotation, content[wire])
    return kept


def _item_shape(shape: Any) -> Any:
    """The item type of ``list[X]`` (or ``list[X] | None``), else None."""
    for candidate in (shape, *typing.get_args(shape)):
        if typing.get_origin(candidate) is list:
            return typing.get_args(candidate)[0]
    return None


class DocumentedOnlyRoute(CheckedRoute):
    """A ``CheckedRoute`` whose JSON answers keep only the fields documented for its response model.

    Done here, once for every operation, so no route can forget it. Error bodies are untouched:
    their shape is the sandbox's own decision (docs/api-decisions.md#error-bodies).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        shape = self.response_model

        async def documented_only(request: Request) -> Response:
            response = await handle(request)
            if shape is None or not isinstance(response, SafeJSONResponse):
                return response
            return SafeJSONResponse(documented(shape, response.content), response.status_code)

        return documented_only
