"""`POST /v1/orders` and `/v1/orders/batch` without the framework's routing and dependency
solving.

A market maker's orders are the hottest requests the gateway takes. FastAPI still declares
the routes (their OpenAPI, their docs, and every request this layer does not take), but a
valid body is handled here, inside the access guard (so authenticated and rate-limited as
before) and right above the exception handlers' layer: parsed straight from bytes by the
route's own model (`OrderIn`, `BatchOrdersIn`), handed to the route's own handler in
`order_entry`, and answered with the route's own response model. Anything else goes on
to FastAPI untouched, the body replayed: a body that is not JSON, not the schema, or not
sent as `application/json` gets exactly the framework's answer. A domain error is answered
by the app's own exception handler for it, as the route would have been.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api import order_entry
from gateway.api.access import replay_body
from gateway.api.schemas import OrderIn
from gateway.runtime import Runtime


class OrderSubmitFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in ROUTES:
            await self.app(scope, receive, send)
            return
        model, handle = ROUTES[scope["path"]]
        request = Request(scope, receive)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            await self.app(scope, receive, send)
            return
        body = await request.body()
        try:
            parsed = model.model_validate_json(body)
        except ValidationError:
            await self.app(scope, replay_body(body, receive), send)  # the framework's own answer
            return
        try:
            response = await handle(request, scope["app"].state.runtime, parsed)
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


async def _place(request: Request, rt: Runtime, body: Any) -> Response:
    placed, created = await order_entry.place(request, rt, body)
    return Response(
        order_entry.order_out(placed).model_dump_json(),
        status_code=201 if created else 200,
        media_type="application/json",
    )


async def _batch(request: Request, rt: Runtime, body: Any) -> Response:
    out = await order_entry.place_batch(request, rt, body)
    return Response(out.model_dump_json(), media_type="application/json")


Handler = Callable[[Request, Runtime, Any], Awaitable[Response]]
# path -> (the route's body model, the route's handler), for POST
ROUTES: dict[str, tuple[type[BaseModel], Handler]] = {
    "/v1/orders": (OrderIn, _place),
    "/v1/orders/batch": (order_entry.BatchOrdersIn, _batch),
}
