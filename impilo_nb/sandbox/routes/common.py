"""What the route modules share: the API prefix, how a router is made, id path parameters, pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Path
from fastapi.security import APIKeyHeader

from ..._constants import API_KEY_HEADER
from ..checks import CheckedRoute
from ..delivery import Dispatcher
from ..documented import DocumentedOnlyRoute, documented
from ..limits import MAX_ID
from ..problems import COMMON_ERRORS, SandboxProblemError
from ..store import SandboxStore

__all__ = ["API", "RouteContext", "id_path", "page_envelope"]

API = "/api/v3"

# Declared so the OpenAPI document shows the scheme; SandboxMiddleware enforces it.
_API_KEY_SCHEME = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


@dataclass(frozen=True)
class RouteContext:
    """What the routes of one app work with: the store, the dispatcher, and whether answers
    keep only the documented fields (``documented.py``)."""

    store: SandboxStore
    dispatcher: Dispatcher
    documented_only: bool = False

    def router(self) -> APIRouter:
        """A router under /api/v3 whose every operation is checked (``CheckedRoute``), declares the
        API key and the common errors, and in documented-only mode answers documented fields only."""
        route_class = DocumentedOnlyRoute if self.documented_only else CheckedRoute
        return APIRouter(prefix=API, dependencies=[Depends(_API_KEY_SCHEME)], responses=COMMON_ERRORS, route_class=route_class)

    def shown(self, shape: Any, content: Any) -> Any:
        """``content`` as the API shows it elsewhere than in a response (a webhook's payload)."""
        return documented(shape, content) if self.documented_only else content


def found(record: dict[str, Any] | None, what: str, record_id: int) -> dict[str, Any]:
    """``record``, or the API's 404 naming what was asked for (``Patient 7 not found.``)."""
    if record is None:
        raise SandboxProblemError(404, f"{what} {record_id} not found.")
    return record


def id_path(alias: str, description: str) -> Any:
    """A path parameter holding an id: an int64 from 1 (docs/api-decisions.md#patient-ids)."""
    return Path(alias=alias, ge=1, le=MAX_ID, description=description)


def page_envelope(content: list[Any], page: int, size: int, total: int) -> dict[str, Any]:
    """The API's page envelope (1-based pages; docs/api-decisions.md#pagination)."""
    pages = max(1, -(-total // size))
    return {"content": content, "page": page, "size": size, "total": total, "first": page == 1, "last": page >= pages}
