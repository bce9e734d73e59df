"""The steps of order entry after the caller's access is checked, shared by every entry point
(REST, the stream, FIX): a signed order's signature is checked, a smart order is routed and
executed at once, a cancel stops a legged strategy's clips first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from gateway.domain.errors import InvalidOrder
from gateway.domain.orders import Order, OrderSpec, Side, TimeInForce

if TYPE_CHECKING:
    from gateway.runtime import Runtime

Route = Literal["direct", "smart"]


async def place(rt: Runtime, spec: OrderSpec, route: Route) -> tuple[Order, bool]:
    """One order: the order and whether this request created it (False: the same
    `client_order_id` was seen before, and this is that order)."""
    await rt.check_signature(spec)
    if route == "smart":
        if spec.time_in_force is not TimeInForce.IOC:
            raise InvalidOrder(
                "a smart-routed order executes at once: time_in_force must be ioc",
                field="time_in_force",
                code="smart_route_needs_ioc",
            )
        assert spec.instrument is not None
        arrival = rt.routes.arrival(spec.instrument, rt.clock.now())
        submitted = await rt.orders.submit(spec, routed=True, arrival=arrival)
        order = submitted.order
        if submitted.created:
            order = (await rt.smart.execute(order)).order
        return order, submitted.created
    submitted = await rt.orders.submit(spec)
    return submitted.order, submitted.created


async def cancel(rt: Runtime, order_id: str, expected_version: int | None = None) -> Order:
    if rt.legging.is_running(order_id):  # stop new clips; an unbalanced one is rebalanced
        await rt.legging.cancel(order_id)
        return await rt.orders.get(order_id)
    return await rt.orders.cancel(order_id, expected_version=expected_version)


async def cancel_where(
    rt: Runtime, account: str, instrument: str | None, side: Side | None
) -> list[Order]:
    """Every resting order of `account` on the internal book that matches the filter."""
    return await rt.book.cancel_where(
        lambda view: (
            "cancelled by filter"
            if view.account == account
            and (instrument is None or view.book == instrument)
            and (side is None or view.side is side)
            else None
        )
    )
