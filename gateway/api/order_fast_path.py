"""`POST /v1/orders` without the framework's routing and dependency solving.

A market maker's order is the hottest request the gateway takes. FastAPI still declares the
route (its OpenAPI, its docs, and every request this layer does not take), but a valid
order body is handled here, inside the access guard (so authenticated and rate-limited as
before) and right above the exception handlers' layer: the body is parsed straight from
bytes by the route's own `OrderIn` model, handed to the route's own handler
(`order_entry.place`), and answered with the route's own `OrderOut`. Anything else goes on
to FastAPI untouched, the body replayed: a body that is not JSON, not the schema, or not
sent as `application/json` gets exactly the framework's answer. A domain error is answered
by the app's own exception handler for it, as the route would have been.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api import order_entry
from gateway.api.access import replay_body
from gateway.api.schemas import OrderIn

PATH = "/v1/orders"


class OrderSubmitFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            await self.app(scope, receive, send)
            return
        body = await request.body()
        try:
            order = OrderIn.model_validate_json(body)
        except ValidationError:
            await self.app(scope, replay_body(body, receive), send)  # the framework's own answer
            return
        try:
            placed, created = await order_entry.place(request, scope["app"].state.runtime, order)
            response: Response = Response(
                order_entry.order_out(placed).model_dump_json(),
                status_code=201 if created else 200,
                media_type="application/json",
            )
        except Exception as error:
            handler = _handler_for(scope["app"], error)
            if handler is None:
                raise
            response = await handler(request, error)
        await response(scope, receive, send)


def _handler_for(app: Any, error: Exception) -> Any:
    handlers = app.exception_handlers
    for cls in type(error).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
