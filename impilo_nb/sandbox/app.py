"""The sandbox's HTTP API: FastAPI routes mirroring Impilo's /api/v3, as docs/api-decisions.md decides.

``create_app`` assembles the parts, each in a module of its own:

- ``routes/``: the operations, one APIRouter per resource (patients, webhooks and their
  delivery log, the webhook secret);
- ``queries.py``: the list queries, derived from the models' filter tables;
- ``checks.py``: the wire checks every body and query passes first;
- ``problems.py``: the one error body; ``rendering.py``: responses that always render;
- ``documented.py``: the documented-fields-only mode;
- ``middleware.py``: request ids, latency, injected faults and the API key.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .._version import __version__
from .delivery import Dispatcher
from .limits import MAX_BODY_BYTES, MAX_DEPTH, MAX_TEXT_LENGTH
from .middleware import FaultQueue, SandboxMiddleware
from .problems import install_handlers
from .rendering import SafeJSONResponse
from .routes import patients, secret, webhooks
from .routes.common import RouteContext
from .store import SandboxStore

# The limits are re-exported: they are the API's published promises (see DESCRIPTION).
__all__ = ["MAX_BODY_BYTES", "MAX_DEPTH", "MAX_TEXT_LENGTH", "create_app"]

#: The API's description in its OpenAPI document: what every operation refuses.
DESCRIPTION = (
    "An offline, Impilo-compatible API for impilo_nb. Mirrors /api/v3 as impilo_nb's docs/api-decisions.md decides. "
    "Every JSON body and query parameter is checked before anything else: text must be valid Unicode "
    f"(no lone surrogates), without NUL, at most {MAX_TEXT_LENGTH} characters; whole numbers must fit in 64 bits, "
    f"other numbers be finite; arrays and objects may nest {MAX_DEPTH} levels; a body may be {MAX_BODY_BYTES} bytes "
    "of UTF-8. Anything else is refused with a 400 naming the field (413 for a body too large)."
)

#: Added to every operation that takes a body.
TOO_LARGE = {"413": {"description": f"The body is over {MAX_BODY_BYTES} bytes."}}


def create_app(
    store: SandboxStore,
    dispatcher: Dispatcher,
    *,
    api_key: str,
    latency_ms: float = 0.0,
    faults: FaultQueue | None = None,
    documented_only: bool = False,
) -> SandboxMiddleware:
    """The sandbox ASGI app over ``store``, accepting only ``api_key``; events go to ``dispatcher``.

    ``documented_only``: answer with only the fields the public API docs document (``documented.py``).
    """
    app = FastAPI(title="Impilo sandbox", version=__version__, description=DESCRIPTION, default_response_class=SafeJSONResponse)
    install_handlers(app)
    context = RouteContext(store, dispatcher, documented_only=documented_only)
    for resource in (patients, webhooks, secret):
        app.include_router(resource.router(context))
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return SandboxMiddleware(app, api_key=api_key, latency_ms=latency_ms, faults=faults or FaultQueue())


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, minus the 422 it lists by default (this API answers 400 instead),
    plus the 413 of every operation that takes a body."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
                if "requestBody" in operation:
                    operation["responses"].update(TOO_LARGE)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema
