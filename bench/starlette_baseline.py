"""The baseline: a bare Starlette route doing the same parse and serialize, no persistence.

Parses the body with the same `OrderIn` model, builds the same `OrderOut` response.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.api.schemas import OrderIn, OrderOut
from gateway.domain.orders import Order
from gateway.oms.ids import new_id
from gateway.oms.order_facts import order_facts


async def submit(request: Request) -> Response:
    try:
        body = OrderIn.model_validate_json(await request.body())
    except ValueError as error:
        return JSONResponse({"error": {"code": "validation_error", "message": str(error)}}, 422)
    now = datetime.now(UTC)
    order = Order.new(new_id("ord"), body.to_spec(), now).accept(now)
    return Response(
        OrderOut.model_validate(order_facts(order)).model_dump_json(),
        status_code=201,
        media_type="application/json",
    )


app = Starlette(routes=[Route("/v1/orders", submit, methods=["POST"])])
