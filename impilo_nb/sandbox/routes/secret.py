"""The account's webhook secret: create, read, delete (docs/api-decisions.md#webhook-secret)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from ...models import WebhookSecret
from ..problems import CONFLICT, NOT_FOUND, SandboxProblemError
from ..rendering import SafeJSONResponse
from .common import RouteContext

__all__ = ["SecretBody", "router"]


class SecretBody(BaseModel):
    """The secret as the API returns it (readable: the docs echo it back)."""

    secret: str


def router(context: RouteContext) -> APIRouter:
    """The webhook-secret operations over ``context``'s store."""
    api = context.router()
    store = context.store

    @api.post("/webhook-secret", response_model=SecretBody, tags=["webhooks"], responses=CONFLICT)
    def create_secret(secret: WebhookSecret) -> SafeJSONResponse:
        if not store.create_secret(secret.secret.get_secret_value()):
            raise SandboxProblemError(409, "A webhook secret already exists; DELETE /api/v3/webhook-secret first to replace it.")
        return SafeJSONResponse(secret.to_api())

    @api.get("/webhook-secret", response_model=SecretBody, tags=["webhooks"], responses=NOT_FOUND)
    def get_secret() -> SafeJSONResponse:
        secret = store.get_secret()
        if secret is None:
            raise SandboxProblemError(404, "No webhook secret is set.")
        return SafeJSONResponse({"secret": secret})

    @api.delete("/webhook-secret", status_code=204, tags=["webhooks"], responses=NOT_FOUND)
    def delete_secret() -> Response:
        if not store.delete_secret():
            raise SandboxProblemError(404, "No webhook secret is set.")
        return Response(status_code=204)

    return api
