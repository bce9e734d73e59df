"""Order entry, whatever carries it: the REST routes and the WebSocket's request messages
call these, so both get the same access checks, validation, risk, idempotency and audit.

Single orders, amends and cancels; batches of up to 100 orders (each idempotent on its own
`client_order_id`, each with its own result, all placed in one hold of the book's lock and
one group commit); cancels by ids or by filter; and mass quotes (an account's bids and asks
on a set of instruments replaced in one step).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from starlette.requests import HTTPConnection

from gateway.api.access import (
    ACCESS_STATUS,
    ensure_account,
    ensure_may_trade,
    ensure_not_delegate,
    ensure_order_visible,
)
from gateway.api.errors import error_status
from gateway.api.schemas import (
    Address,
    AmendIn,
    DecimalText,
    ErrorDetail,
    OrderIn,
    OrderOut,
    SignatureIn,
    Symbol,
    _Strict,
)
from gateway.domain.errors import DomainError, InvalidOrder
from gateway.domain.orders import Order, OrderSpec, Side
from gateway.oms import order_entry
from gateway.oms.internal_book import QuoteLevel, QuoteOutcome
from gateway.oms.order_facts import order_facts
from gateway.oms.order_signatures import SignatureRequired
from gateway.runtime import Runtime

MAX_BATCH = 100
MAX_QUOTE_INSTRUMENTS = 50
MAX_QUOTE_LEVELS = 20  # per side and instrument


class BatchOrdersIn(_Strict):
    orders: list[OrderIn] = Field(min_length=1, max_length=MAX_BATCH)


class ItemOut(BaseModel):
    """One item's outcome: the HTTP status it would have had alone (201 created, 200 the
    same request seen before, 4xx refused) and the order or the error."""

    status: int
    order: OrderOut | None = None
    error: ErrorDetail | None = None


class BatchOut(BaseModel):
    results: list[ItemOut] = Field(description="One per item, in the request's order")


class CancelOrdersIn(_Strict):
    """Either `order_ids`, or `account` with an optional `instrument` and `side` (every
    resting order of the account on the internal book that matches)."""

    order_ids: list[str] | None = Field(default=None, min_length=1, max_length=500)
    account: Address | None = None
    instrument: Symbol | None = None
    side: Side | None = None

    @model_validator(mode="after")
    def _one_way(self) -> CancelOrdersIn:
        if (self.order_ids is None) == (self.account is None):
            raise ValueError("give either order_ids or account (with instrument and side)")
        if self.order_ids is not None and (self.instrument or self.side):
            raise ValueError("instrument and side filter an account's orders, not ids")
        return self


class QuoteLevelIn(_Strict):
    price: DecimalText
    quantity: DecimalText
    signature: SignatureIn | None = Field(
        default=None,
        description="The level's order signed by the wallet (a post-only GTC limit order of "
        "this price and quantity; `POST /v1/orders/typed-data` gives the payload): it then "
        "settles on chain. Required from callers that may send only signed orders (API keys, "
        "trading keys). Checked as a single order's signature is; a level refused here is "
        "answered `refused`, and a quote resting at its price is withdrawn.",
    )


class InstrumentQuoteIn(_Strict):
    instrument: Symbol
    bids: list[QuoteLevelIn] = Field(default_factory=list, max_length=MAX_QUOTE_LEVELS)
    asks: list[QuoteLevelIn] = Field(default_factory=list, max_length=MAX_QUOTE_LEVELS)


class MassQuoteIn(_Strict):
    """The account's quotes on each listed instrument become exactly these levels (an
    instrument listed with no levels pulls its quotes)."""

    account: Address
    quotes: list[InstrumentQuoteIn] = Field(min_length=1, max_length=MAX_QUOTE_INSTRUMENTS)


class QuoteLevelOut(BaseModel):
    instrument: str
    side: Side
    price: str
    quantity: str
    action: Literal["kept", "amended", "placed", "refused"]
    order_id: str | None = None
    order: OrderOut | None = Field(default=None, description="When it changed (amended, placed)")
    error: ErrorDetail | None = None


class MassQuoteOut(BaseModel):
    levels: list[QuoteLevelOut]
    cancelled: list[OrderOut] = Field(
        description="Quotes withdrawn: at prices no longer given, or replaced by a signed "
        "level's own order"
    )


def order_out(order: Order) -> OrderOut:
    return OrderOut.model_validate(order_facts(order))


def status_of(error: DomainError) -> int:
    """The status the error has on its own REST route (access errors included)."""
    return ACCESS_STATUS.get(type(error)) or error_status(error)


def error_item(error: DomainError) -> ItemOut:
    return ItemOut(
        status=status_of(error),
        error=ErrorDetail(code=error.code, message=error.message, field=error.field),
    )


async def place(conn: HTTPConnection, rt: Runtime, body: OrderIn) -> tuple[Order, bool]:
    """One order, as `POST /v1/orders`: the order and whether this request created it."""
    spec = body.to_spec()
    await ensure_may_trade(conn, spec, rt.signatures is not None)
    return await order_entry.place(rt, spec, body.route)


async def place_batch(conn: HTTPConnection, rt: Runtime, body: BatchOrdersIn) -> BatchOut:
    """Up to 100 directly routed orders, each with its own outcome, in the given order."""
    results: list[ItemOut | None] = [None] * len(body.orders)
    allowed: list[tuple[int, OrderSpec]] = []
    for index, item in enumerate(body.orders):
        try:
            if item.route != "direct":
                raise InvalidOrder(
                    "a batch takes directly routed orders; send a smart order on its own",
                    field=f"orders.{index}.route",
                    code="batch_direct_only",
                )
            spec = item.to_spec()
            await ensure_may_trade(conn, spec, rt.signatures is not None)
            allowed.append((index, spec))
        except DomainError as error:
            results[index] = error_item(error)
    # every signature checked against the chain in one read
    checked = await rt.check_signatures([spec for _, spec in allowed])
    admitted: list[tuple[int, OrderSpec]] = []
    for (index, spec), refusal in zip(allowed, checked, strict=True):
        if refusal is None:
            admitted.append((index, spec))
        else:
            results[index] = error_item(refusal)
    outcomes = await rt.orders.submit_many([spec for _, spec in admitted])
    for (index, _), outcome in zip(admitted, outcomes, strict=True):
        if isinstance(outcome, DomainError):
            results[index] = error_item(outcome)
        else:
            results[index] = ItemOut(
                status=201 if outcome.created else 200, order=order_out(outcome.order)
            )
    return BatchOut(results=[r for r in results if r is not None])


async def amend(conn: HTTPConnection, rt: Runtime, order_id: str, body: AmendIn) -> Order:
    order = await visible_order(conn, rt, order_id)
    # the order's signature covers its price and quantity: a key signs a new order instead
    await ensure_not_delegate(conn, order.spec.account, "amend an order")
    if body.price is None and body.quantity is None:
        raise DomainError("give a price, a quantity or both", field="body", code="nothing_to_amend")
    return await rt.orders.amend(
        order_id,
        price=None if body.price is None else Decimal(body.price),
        quantity=None if body.quantity is None else Decimal(body.quantity),
        expected_version=body.expected_version,
    )


async def cancel(
    conn: HTTPConnection, rt: Runtime, order_id: str, expected_version: int | None = None
) -> Order:
    await visible_order(conn, rt, order_id)
    return await order_entry.cancel(rt, order_id, expected_version)


async def cancel_many(conn: HTTPConnection, rt: Runtime, body: CancelOrdersIn) -> BatchOut:
    """By ids (each with its own outcome, in order) or by filter (the orders cancelled)."""
    if body.order_ids is not None:
        results = []
        for order_id in body.order_ids:
            try:
                results.append(
                    ItemOut(status=200, order=order_out(await cancel(conn, rt, order_id)))
                )
            except DomainError as error:
                results.append(error_item(error))
        return BatchOut(results=results)
    account = body.account
    assert account is not None
    await ensure_account(conn, account)
    cancelled = await order_entry.cancel_where(rt, account, body.instrument, body.side)
    return BatchOut(results=[ItemOut(status=200, order=order_out(o)) for o in cancelled])


async def mass_quote(conn: HTTPConnection, rt: Runtime, body: MassQuoteIn) -> MassQuoteOut:
    """Replace the account's quotes on the listed instruments (post-only, unsigned)."""
    instruments = [quote.instrument for quote in body.quotes]
    if len(set(instruments)) != len(instruments):
        raise InvalidOrder("an instrument is listed twice", field="quotes")
    levels = [
        QuoteLevel(
            quote.instrument,
            side,
            Decimal(level.price),
            Decimal(level.quantity),
            None if level.signature is None else level.signature.to_domain(),
        )
        for quote in body.quotes
        for side, given in ((Side.BUY, quote.bids), (Side.SELL, quote.asks))
        for level in given
    ]
    if len({(lv.instrument, lv.side, lv.price) for lv in levels}) != len(levels):
        raise InvalidOrder("two levels of one side share a price", field="quotes")
    specs = [level.spec(body.account) for level in levels]
    # who may send only signed orders mass-quotes only signed levels
    for spec in specs:
        await ensure_may_trade(conn, spec, rt.signatures is not None)
    if not specs:
        await ensure_account(conn, body.account)
    # every level's signature checked against the chain in one read; a refused level is not
    # part of the quote (a quote resting at its price is withdrawn)
    checked = await rt.check_signatures(specs)
    for refusal in checked:
        if isinstance(refusal, SignatureRequired):
            raise refusal  # unsigned where signatures are required: the whole quote, untouched
    refused = [
        QuoteOutcome(level, "refused", None, refusal)
        for level, refusal in zip(levels, checked, strict=True)
        if refusal is not None
    ]
    accepted = [level for level, refusal in zip(levels, checked, strict=True) if refusal is None]
    outcomes, cancelled = await rt.orders.mass_quote(body.account, frozenset(instruments), accepted)
    by_level = {_level_key(o.level): o for o in [*refused, *outcomes]}
    out = []
    for outcome in (by_level[_level_key(level)] for level in levels):  # in the request's order
        level, error = outcome.level, outcome.error
        out.append(
            QuoteLevelOut(
                instrument=level.instrument,
                side=level.side,
                price=str(level.price),
                quantity=str(level.quantity),
                action=outcome.action,
                order_id=outcome.order_id,
                order=None if outcome.order is None else order_out(outcome.order),
                error=None
                if not isinstance(error, DomainError)
                else ErrorDetail(code=error.code, message=error.message, field=error.field),
            )
        )
    return MassQuoteOut(levels=out, cancelled=[order_out(o) for o in cancelled])


def _level_key(level: QuoteLevel) -> tuple[str, Side, Decimal]:
    return level.instrument, level.side, level.price


async def visible_order(conn: HTTPConnection, rt: Runtime, order_id: str) -> Order:
    """The order, if the caller may see its account; another account's is not found."""
    order = await rt.orders.get(order_id)
    await ensure_order_visible(conn, order_id, order.spec.account)
    return order
