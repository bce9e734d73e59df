"""Sending a gateway order's children to venues so that no execution is ever lost or doubled.

Every child is written to `venue_orders` (status `pending`, its client order id
`<gateway order id>-<n>` fixed) *before* it is sent. Each venue report is folded into the
child (`gateway.domain.venue_child.progress`) and whatever it adds is recorded as a fill on
the gateway order in the same transaction as the child's new totals. So:

- a crash after the venue executed but before the fill was recorded leaves the child
  `pending` (or `open`): `reconcile` at the next start asks the venue for it, by its venue id
  or, when the answer never arrived, by its client order id, and records the missing fills;
- a report seen twice adds nothing the second time (the child's totals already hold it);
- a child the venue never received (not found by client order id) is closed as such;
- a child found after its parent was cancelled still fills it (the venue executed it).

On a centralized exchange, a signed order's child fill becomes a trade with the operator's
inventory wallet in that same transaction (`OrderService._inventory_trade`): exactly once,
sized by what the exchange filled, settled on chain like any other trade.

A swap on an AMM pool is a transaction, not an order a venue can be asked about by client id;
a swap child left pending by a crash is closed as `outcome unknown` with an error logged (the
settlement reconciler, which follows the chain, owns that case).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from decimal import Decimal

from sqlalchemy import Engine

from gateway.domain.errors import DomainError
from gateway.domain.instruments import Instrument, InstrumentCatalogue
from gateway.domain.market import VenueKind, VenueOrder, VenueOrderRequest, VenueOrderStatus
from gateway.domain.orders import Order, TimeInForce
from gateway.domain.venue_child import ChildReport, VenueChild
from gateway.oms.service import OrderService
from gateway.store import venue_orders
from gateway.venues.protocol import (
    Venue,
    VenueError,
    VenueOrderNotFound,
    VenueUnavailable,
)

log = logging.getLogger("gateway.routing")
_ZERO = Decimal(0)
_IMMEDIATE = (TimeInForce.IOC, TimeInForce.FOK)


def fee_in_quote(
    fee: Decimal, asset: str | None, instrument: Instrument, price: Decimal | None
) -> Decimal:
    """A venue fee in the quote asset: exchanges charge a buy's fee in the base received."""
    if asset in (None, instrument.quote.symbol):
        return fee
    if asset == instrument.base.symbol and price is not None:
        return fee * price
    log.warning("fee of %s %s not in %s's assets: not counted", fee, asset, instrument.symbol)
    return _ZERO


class VenueChildren:
    def __init__(
        self,
        orders: OrderService,
        read_engine: Engine,
        venues: Sequence[Venue],
        catalogue: InstrumentCatalogue,
    ) -> None:
        self._orders = orders
        self._read_engine = read_engine
        self.venues = {v.name: v for v in venues}
        self._catalogue = catalogue
        # this process's children on their way (sent, answer not folded in yet) and parents
        # still being executed: the reconciler leaves both to their sender
        self._sending: set[str] = set()
        self.executing: set[str] = set()
        # replicas: raises unless this process still holds the roles (by its own clock), so a
        # holder paused past its lease never sends an order on waking up; the child stays
        # pending and the new holder's reconciler finds the venue never had it
        self.before_send: Callable[[], None] | None = None

    async def send(
        self,
        order: Order,
        venue: Venue,
        request: VenueOrderRequest,
        *,
        native_price: Decimal | None = None,
    ) -> tuple[VenueChild, Order]:
        """Record the child, send it, record what the venue answered. `native_price`: the
        chain's native asset in quote, to count a swap's gas (charged to its first fill)."""
        assert request.client_order_id is not None
        child = VenueChild(
            request.client_order_id,
            order.id,
            venue.name,
            request.instrument,
            request.side,
            request.order_type,
            request.time_in_force,
            request.quantity,
            request.price,
        )
        await self._orders.create_venue_child(child)
        self._sending.add(child.client_order_id)
        try:
            try:
                if self.before_send is not None:
                    self.before_send()
                placed = await venue.place_order(request)
            except VenueUnavailable as error:
                # The venue may or may not have it: the child stays pending for `reconcile`.
                log.warning(
                    "child %s on %s: no answer (%s)", child.client_order_id, venue.name, error
                )
                return child, await self._orders.get(order.id)
            except VenueError as error:
                await self._orders.close_venue_child(
                    child.client_order_id, f"{error.code}: {error}"
                )
                raise
            return await self.apply(child, placed, native_price=native_price)
        finally:
            self._sending.discard(child.client_order_id)

    async def apply(
        self, child: VenueChild, report: VenueOrder, *, native_price: Decimal | None = None
    ) -> tuple[VenueChild, Order]:
        """Fold a venue report of `child` in (against the child as stored, so a report
        that another path already recorded adds nothing) and record what it adds."""
        instrument = self._catalogue.get(child.instrument)
        gas = report.network_fee * native_price if native_price is not None else _ZERO
        fee = fee_in_quote(report.fee, report.fee_asset, instrument, report.average_price)
        venue = self.venues.get(child.venue)
        return await self._orders.record_child_report(
            child.client_order_id,
            ChildReport(
                report.venue_order_id,
                report.filled,
                report.average_price,
                fee,
                final=report.status is not VenueOrderStatus.OPEN,
                reason=None if report.status is VenueOrderStatus.OPEN else report.status.value,
            ),
            gas=gas,
            exchange=venue is not None and venue.kind is VenueKind.CEX,
        )

    async def sync(self, child: VenueChild) -> tuple[VenueChild, Order]:
        """Ask the venue where `child` stands and record what is new."""
        venue = self.venues.get(child.venue)
        if venue is None:
            raise VenueError(f"venue {child.venue} is not configured", venue=child.venue)
        if child.venue_order_id is None:
            if venue.kind is VenueKind.AMM:
                log.error(
                    "swap %s outcome unknown after a stop: left to the chain reconciler",
                    child.client_order_id,
                )
                return await self._close(child, "outcome unknown: swap not confirmed before a stop")
            found = await venue.find_order(child.client_order_id, child.instrument)
            if found is None:
                return await self._close(child, "never reached the venue")
            return await self.apply(child, found)
        try:
            report = await venue.fetch_order(child.venue_order_id, child.instrument)
        except VenueOrderNotFound:
            return await self._close(child, "the venue no longer knows it")
        return await self.apply(child, report)

    async def cancel(self, child: VenueChild) -> tuple[VenueChild, Order]:
        """Cancel a resting child on its venue and record its final fills."""
        venue = self.venues[child.venue]
        if child.venue_order_id is None:
            child, order = await self.sync(child)
            if child.status.is_final or child.venue_order_id is None:
                return child, order
        assert child.venue_order_id is not None
        try:
            report = await venue.cancel_order(child.venue_order_id, child.instrument)
        except VenueOrderNotFound:  # already finished there: read its outcome
            return await self.sync(child)
        return await self.apply(child, report)

    async def _close(self, child: VenueChild, reason: str) -> tuple[VenueChild, Order]:
        closed = await self._orders.close_venue_child(child.client_order_id, reason)
        return closed, await self._orders.get(child.order_id)

    async def children_of(self, order_id: str) -> list[VenueChild]:
        def read() -> list[VenueChild]:
            with self._read_engine.connect() as connection:
                return venue_orders.children_of(connection, order_id)

        return await asyncio.to_thread(read)

    async def reconcile(self) -> int:
        """At start-up: every child whose outcome was not final is looked up and its missing
        fills recorded. Returns how many children were looked up."""

        def read() -> list[VenueChild]:
            with self._read_engine.connect() as connection:
                return venue_orders.unfinished_children(connection)

        unfinished = [
            c for c in await asyncio.to_thread(read) if c.client_order_id not in self._sending
        ]
        parents: dict[str, None] = {}
        for child in unfinished:
            try:
                await self.sync(child)
            except VenueError as error:
                log.error("cannot reconcile child %s: %s", child.client_order_id, error)
            parents[child.order_id] = None
        for order_id in parents:
            await self._finish_immediate(order_id)
        return len(unfinished)

    async def _finish_immediate(self, order_id: str) -> None:
        """An immediate order whose children are all done gets the rest cancelled, as the
        smart executor would have done had it heard back from every venue."""
        if order_id in self.executing:  # its executor ends it when its legs are done
            return
        order = await self._orders.get(order_id)
        if not order.status.is_open or order.spec.time_in_force not in _IMMEDIATE:
            return
        if any(not c.status.is_final for c in await self.children_of(order_id)):
            return
        with contextlib.suppress(DomainError):
            await self._orders.cancel(
                order_id, reason="the rest found no liquidity within the limit"
            )
