"""The webhook subscriptions (create, list, read, change the URL, delete) and the delivery log.

Decisions: docs/api-decisions.md#webhook-subscriptions and #delivery-log. The log's query
parameters and SQL come from ``WebhookLogEntry.LIST_FILTERS`` (``queries.py``).
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations, and
# the log's parameter model is built per app from the table, so it must be a real object.

from typing import Annotated, Any, cast

from fastapi import APIRouter, Query
from fastapi.responses import Response

from ...errors import FieldError
from ...models import Page, Webhook, WebhookLogEntry, WebhookUrlChange
from ..problems import NOT_FOUND, SandboxProblemError
from ..queries import ListParameters, ListTable
from ..rendering import SafeJSONResponse
from ..store import DeliveryQuery
from .common import RouteContext, found, id_path, page_envelope

__all__ = ["router"]

_WEBHOOK_ID = id_path("webhookId", "The webhook id.")


def router(context: RouteContext) -> APIRouter:
    """The webhook operations over ``context``'s store."""
    api = context.router()
    _add_collection(api, context)
    _add_logs(api, context)  # before /webhook/{webhookId}, so "logs" is not read as an id
    _add_items(api, context)
    return api


def _add_collection(api: APIRouter, context: RouteContext) -> None:
    @api.post("/webhook", response_model=Webhook, tags=["webhooks"])
    def create_webhook(webhook: Webhook) -> SafeJSONResponse:
        return SafeJSONResponse(context.store.create_webhook(webhook.type, webhook.url))

    @api.get("/webhook", response_model=list[Webhook], tags=["webhooks"])
    def list_webhooks() -> SafeJSONResponse:
        return SafeJSONResponse(context.store.list_webhooks())


def _add_logs(api: APIRouter, context: RouteContext) -> None:
    table = ListTable.of(WebhookLogEntry)  # read now, so the app serves the table as it is at its creation
    parameters = table.parameters("WebhookLogsQuery")

    @api.get("/webhook/logs", response_model=Page[WebhookLogEntry], tags=["webhooks"])
    def webhook_logs(params: Annotated[parameters, Query()]) -> SafeJSONResponse:  # type: ignore[valid-type]
        given = cast(ListParameters, params)  # built at run time; statically, its base
        query = DeliveryQuery(values=table.values(given), filters=table.filters)
        content, total = context.store.list_deliveries(query, page=given.page, size=given.size)
        return SafeJSONResponse(page_envelope(content, given.page, given.size, total))


def _add_items(api: APIRouter, context: RouteContext) -> None:
    store = context.store

    def load(webhook_id: int) -> dict[str, Any]:
        return found(store.get_webhook(webhook_id), "Webhook", webhook_id)

    @api.get("/webhook/{webhookId}", response_model=Webhook, tags=["webhooks"], responses=NOT_FOUND)
    def get_webhook(webhook_id: int = _WEBHOOK_ID) -> SafeJSONResponse:
        return SafeJSONResponse(load(webhook_id))

    @api.patch("/webhook/{webhookId}", response_model=Webhook, tags=["webhooks"], responses=NOT_FOUND)
    def change_webhook_url(change: WebhookUrlChange, webhook_id: int = _WEBHOOK_ID) -> SafeJSONResponse:
        hook = load(webhook_id)
        if change.url == hook["url"]:
            raise SandboxProblemError(400, "The new URL is the same as the current one.", [FieldError("url", "Unchanged.")])
        store.set_webhook_url(webhook_id, change.url)
        return SafeJSONResponse({**hook, "url": change.url})

    @api.delete("/webhook/{webhookId}", status_code=204, tags=["webhooks"], responses=NOT_FOUND)
    def delete_webhook(webhook_id: int = _WEBHOOK_ID) -> Response:
        if not store.delete_webhook(webhook_id):
            raise SandboxProblemError(404, f"Webhook {webhook_id} not found.")
        return Response(status_code=204)
