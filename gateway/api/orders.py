"""Order and strategy endpoints."""

from __future__ import annotations

import asyncio
import base64
import heapq
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import Field

from gateway.api import order_entry
from gateway.api.access import (
    ensure_account,
    ensure_may_trade,
    ensure_order_visible,
    principal_of,
)
from gateway.api.dependencies import runtime
from gateway.api.legging import LeggingOut, legging_out
from gateway.api.schemas import (
    Address,
    AmendIn,
    ErrorOut,
    OrderIn,
    OrderOut,
    OrderPageOut,
    StrategyIn,
    Symbol,
    _Strict,
)
from gateway.chain import signatures as chain_signatures
from gateway.domain.errors import DomainError, InvalidOrder
from gateway.domain.lifecycle import OrderStatus
from gateway.domain.orders import Order, OrderSignature, TimeInForce
from gateway.oms.legging_runner import LeggingParams
from gateway.oms.order_facts import order_facts
from gateway.oms.service import OrderPage
from gateway.routing.legging import FailurePolicy
from gateway.runtime import Runtime
from gateway.store import order_repository as orders_repo
from gateway.store.order_repository import OrderFilter

router = APIRouter(prefix="/v1", tags=["orders"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut},
    404: {"model": ErrorOut},
    409: {"model": ErrorOut},
    413: {"model": ErrorOut},
    422: {"model": ErrorOut},
}
# what refuses a signed order (README "Signing orders"); codes are stable
SIGNED_ORDER_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    403: {
        "model": ErrorOut,
        "description": "forbidden: not one of the caller's accounts; signature_required: an "
        "API key, a trading key or a Safe owner sends only signed orders; signed by a trading "
        "key the wallet would refuse: key_revoked, key_expired, key_scope (an instrument "
        "outside the key's allow-list), key_max_notional (over the key's maximum notional)",
    },
    422: {
        "model": ErrorOut,
        "description": "validation_error (e.g. a malformed signature); invalid_signature: "
        "not the owner's nor a trading key's, a contract owner refuses it (EIP-1271), or its "
        "deadline passed; signature_required: the gateway requires signed orders",
    },
}
OrderId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_]+$")]
RuntimeDep = Annotated[Runtime, Depends(runtime)]


def _json(order: Order, status_code: int = 200) -> Response:
    body = OrderOut.model_validate(order_facts(order)).model_dump_json()
    return Response(body, status_code=status_code, media_type="application/json")


@router.post(
    "/orders",
    response_model=OrderOut,
    status_code=201,
    responses={
        200: {"model": OrderOut, "description": "The same request was seen before"},
        **SIGNED_ORDER_ERRORS,
    },
    summary="Submit an order (idempotent on account + client_order_id)",
)
async def submit_order(body: OrderIn, rt: RuntimeDep, request: Request) -> Response:
    order, created = await order_entry.place(request, rt, body)
    return _json(order, 201 if created else 200)


@router.post(
    "/orders/batch",
    response_model=order_entry.BatchOut,
    responses=SIGNED_ORDER_ERRORS,
    summary="Submit up to 100 directly routed orders at once, each with its own result",
)
async def submit_batch(
    body: order_entry.BatchOrdersIn, rt: RuntimeDep, request: Request
) -> Response:
    """Each order is idempotent on its own `client_order_id` and gets the status it would
    have had alone (201, 200 for a request seen before, or a 4xx with its error); they are
    risk-checked in order, so the batch counts towards the limits as a whole, then placed
    on the book one after the other with nothing in between, and committed together."""
    out = await order_entry.place_batch(request, rt, body)
    return Response(out.model_dump_json(), media_type="application/json")


@router.post(
    "/orders/cancel",
    response_model=order_entry.BatchOut,
    responses=ERRORS,
    summary="Cancel orders by ids, or every resting order of an account (by instrument, side)",
)
async def cancel_orders(
    body: order_entry.CancelOrdersIn, rt: RuntimeDep, request: Request
) -> Response:
    out = await order_entry.cancel_many(request, rt, body)
    return Response(out.model_dump_json(), media_type="application/json")


@router.post(
    "/quotes",
    response_model=order_entry.MassQuoteOut,
    responses=SIGNED_ORDER_ERRORS,
    summary="Mass quote: replace an account's bids and asks on a set of instruments",
)
async def mass_quote(body: order_entry.MassQuoteIn, rt: RuntimeDep, request: Request) -> Response:
    """Levels whose price and quantity did not change keep their orders and queue places; a
    smaller quantity is amended in place; the rest is cancelled and placed again post-only,
    cancels first, in one step nothing else runs in between."""
    out = await order_entry.mass_quote(request, rt, body)
    return Response(out.model_dump_json(), media_type="application/json")


@router.post(
    "/strategies",
    response_model=OrderOut,
    status_code=201,
    responses={
        200: {"model": OrderOut, "description": "The same request was seen before"},
        **SIGNED_ORDER_ERRORS,
    },
    summary="Submit a multi-leg strategy (all legs or none)",
)
async def submit_strategy(body: StrategyIn, rt: RuntimeDep, request: Request) -> Response:
    spec = body.to_spec()
    await ensure_may_trade(request, spec, rt.signatures is not None)
    await rt.check_signature(spec)
    if body.route == "legged":
        params = _legging_params(body)
        rt.orders.validate(spec)
        rt.legging.check(spec, params)  # refused before anything is written
        submitted = await rt.orders.submit(spec, routed=True)  # legged, not on the book
        if submitted.created:
            await rt.legging.start(submitted.order, params)
        order = await rt.orders.get(submitted.order.id)
        return _json(order, 201 if submitted.created else 200)
    if body.legging is not None:
        raise InvalidOrder("legging bounds are for legged strategies", field="legging")
    submitted = await rt.orders.submit(spec)
    return _json(submitted.order, 201 if submitted.created else 200)


def _seconds(text: str, field: str) -> timedelta:
    value = Decimal(text)
    if value <= 0 or value > 86_400:
        raise InvalidOrder("must be between 0 and 86400 seconds", field=field)
    return timedelta(microseconds=int(value * 1_000_000))


def _legging_params(body: StrategyIn) -> LeggingParams:
    given = body.legging
    if given is None:
        raise InvalidOrder("a legged strategy needs its legging bounds", field="legging")
    if body.time_in_force not in (TimeInForce.GTC, TimeInForce.GTD):
        raise InvalidOrder("a legged strategy runs until done: gtc or gtd", field="time_in_force")
    return LeggingParams(
        max_unhedged_notional=Decimal(given.max_unhedged_notional),
        max_legging_time=_seconds(given.max_legging_time, "legging.max_legging_time"),
        on_failure=FailurePolicy(given.on_failure),
        max_slippage_bps=Decimal(given.max_slippage_bps),
        deadline=body.expires_at,
        retry_interval=_seconds(given.retry_interval, "legging.retry_interval"),
        max_attempts=given.max_attempts,
    )


@router.get(
    "/strategies/{order_id}/legging",
    response_model=LeggingOut,
    responses=ERRORS,
    summary="Progress and legging cost of a legged strategy",
)
async def get_legging(order_id: OrderId, rt: RuntimeDep, request: Request) -> LeggingOut:
    await ensure_order_visible(request, order_id, (await rt.orders.get(order_id)).spec.account)
    return legging_out(await rt.legging.report(order_id))


class TypedDataIn(_Strict):
    """An order or a strategy (as `POST /v1/orders` / `/v1/strategies` take them, without
    `signature`) and the nonce and deadline to sign it with."""

    order: OrderIn | None = None
    strategy: StrategyIn | None = None
    nonce: str = Field(pattern=r"^[0-9]{1,78}$")
    deadline: int = Field(ge=0, lt=1 << 64)


@router.post(
    "/orders/typed-data",
    responses=ERRORS,
    summary="The EIP-712 payload (eth_signTypedData_v4) the wallet owner signs for an order",
)
async def typed_data(body: TypedDataIn, rt: RuntimeDep, request: Request) -> dict[str, Any]:
    if (body.order is None) == (body.strategy is None):
        raise InvalidOrder("give either an order or a strategy", field="order")
    given = body.order or body.strategy
    assert given is not None
    spec = given.to_spec()
    await ensure_account(request, spec.account)
    if rt.signatures is None:
        raise DomainError(
            "no chain is configured: there is nothing to sign for", field="order", code="no_chain"
        )
    signed = OrderSignature(int(body.nonce), body.deadline, b"")
    chain_id = await rt.signatures.chain_id()
    return rt.signatures.onchain.typed_data(spec, signed, chain_id)


class NextNonceOut(_Strict):
    account: str
    next_nonce: str = Field(
        description="The nonce to sign the account's next order with: above every nonce its "
        "orders here hold, and not below the wallet's min_nonce on chain"
    )
    min_nonce: str | None = Field(description="The wallet's min_nonce (None: no chain)")


@router.get(
    "/accounts/{account}/next-nonce",
    response_model=NextNonceOut,
    responses=ERRORS,
    summary="The nonce to sign an account's next order with",
    description="A signature's nonce is used once: a signed order whose nonce another order "
    "of the wallet holds is refused (422 invalid_signature on signature.nonce). A client that "
    "lost count of its nonces starts again from here.",
)
async def next_nonce(
    account: Annotated[Address, Path()], rt: RuntimeDep, request: Request
) -> NextNonceOut:
    await ensure_account(request, account)
    floor = rt.orders.nonces.next_free(account)
    minimum: int | None = None
    if rt.signatures is not None:
        w3 = rt.signatures.w3
        minimum = await asyncio.to_thread(chain_signatures.min_nonce, w3, account)
        floor = max(floor, minimum)
    return NextNonceOut(
        account=account,
        next_nonce=str(max(floor, 1)),
        min_nonce=None if minimum is None else str(minimum),
    )


@router.get("/orders/{order_id}", response_model=OrderOut, responses=ERRORS)
async def get_order(order_id: OrderId, rt: RuntimeDep, request: Request) -> Response:
    return _json(await order_entry.visible_order(request, rt, order_id))


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"o:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "o" or not number.isdigit():
            raise ValueError(cursor)
        return int(number)
    except (ValueError, UnicodeDecodeError):
        raise DomainError(
            "cursor is not one this API gave out", field="cursor", code="invalid_cursor"
        ) from None


@router.get("/orders", response_model=OrderPageOut, responses=ERRORS)
async def list_orders(
    rt: RuntimeDep,
    request: Request,
    account: Annotated[Address | None, Query()] = None,
    status: Annotated[OrderStatus | None, Query()] = None,
    instrument: Annotated[Symbol | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    after = 0 if cursor is None else _decode_cursor(cursor)
    limit = min(limit, rt.settings.page_size_max)
    accounts = principal_of(request).accounts
    if account is not None:
        await ensure_account(request, account)
    elif accounts is not None:
        # a caller bound to accounts lists only theirs, merged in submission order
        filters = [OrderFilter(account=a, status=status, instrument=instrument) for a in accounts]
        page = await _merged_page(rt, filters, after, limit)
        return _page_json(page.orders, page.next_after)
    page = await rt.orders.list(
        OrderFilter(account=account, status=status, instrument=instrument), after=after, limit=limit
    )
    return _page_json(page.orders, page.next_after)


async def _merged_page(
    rt: Runtime, filters: list[OrderFilter], after: int, limit: int
) -> OrderPage:
    def read() -> list[orders_repo.StoredOrder]:
        with rt.read_engine.connect() as connection:
            pages = [
                orders_repo.list_orders(connection, f, after_seq=after, limit=limit + 1)
                for f in filters
            ]
        return list(heapq.merge(*pages, key=lambda stored: stored.seq))[: limit + 1]

    rows = await asyncio.to_thread(read)
    more = len(rows) > limit
    rows = rows[:limit]
    return OrderPage([r.order for r in rows], rows[-1].seq if more and rows else None)


def _page_json(orders: list[Order], next_after: int | None) -> Response:
    out = OrderPageOut(
        items=[OrderOut.model_validate(order_facts(o)) for o in orders],
        next_cursor=None if next_after is None else _encode_cursor(next_after),
    )
    return Response(out.model_dump_json(), media_type="application/json")


@router.patch("/orders/{order_id}", response_model=OrderOut, responses=ERRORS)
async def amend_order(
    order_id: OrderId, body: AmendIn, rt: RuntimeDep, request: Request
) -> Response:
    """Change the price and/or total quantity of an open order."""
    return _json(await order_entry.amend(request, rt, order_id, body))


@router.delete("/orders/{order_id}", response_model=OrderOut, responses=ERRORS)
async def cancel_order(
    order_id: OrderId,
    rt: RuntimeDep,
    request: Request,
    expected_version: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    return _json(await order_entry.cancel(request, rt, order_id, expected_version))
