"""Executing an order through the smart order router: one immediate child per venue.

The parent order is stored (and risk-checked) first, as every order is. Then it is routed on
the venues' live liquidity within its limit price, each leg is sent as an immediate-or-cancel
child at a protective price (the leg's expected average moved by `slippage_bps`; for a pool,
a bound on what the swap may cost or must return), each child's fill is recorded on the parent,
and whatever did not fill is cancelled: a smart order never rests. A child carries the
parent's id and its leg number as client order id, and is recorded before it is sent
(`VenueChildren`), so a venue execution is found again if the gateway stops in the middle.
The internal book's leg goes first: the parent takes it on the matching engine
(`InternalBook.take`), its fills recorded on the parent with the resting orders' fills.
When the gateway settles on chain, a signed order's pool leg is not swapped by the operator:
it is filled at the pool's exact price and its swap runs inside the settlement transaction
(`_pool_fill`). Its exchange legs are executed on the operator's exchange accounts as hedges
of the operator's inventory wallet, which trades each exchange fill with the trader on chain
(`OrderService.record_child_report`); the inventory must be able to carry a leg before it
is sent, else the leg is routed again without that venue. With no inventory, a signed order
is not routed to the exchanges at all (its fill could never reach the wallet).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from gateway.domain.amounts import from_units
from gateway.domain.errors import DomainError
from gateway.domain.market import VenueKind, VenueOrderRequest
from gateway.domain.orders import Order, OrderType, Side, TimeInForce
from gateway.domain.venue_child import VenueChildStatus
from gateway.oms.internal_book import InternalBook
from gateway.oms.inventory import InventoryRefused
from gateway.oms.route_sources import RouteSources
from gateway.oms.service import OrderService
from gateway.oms.venue_children import VenueChildren
from gateway.routing.allocation import Route
from gateway.telemetry import tracing
from gateway.venues.amm import UniswapV2Venue
from gateway.venues.protocol import Venue, VenueError

log = logging.getLogger("gateway.routing")
BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class ChildResult:
    venue: str
    requested: Decimal
    filled: Decimal
    average_price: Decimal | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SmartExecution:
    order: Order  # the parent after execution
    route: Route
    children: tuple[ChildResult, ...] = field(default_factory=tuple)


class SmartExecutor:
    def __init__(
        self,
        orders: OrderService,
        routes: RouteSources,
        venues: list[Venue],
        children: VenueChildren,
        *,
        slippage_bps: Decimal = Decimal(50),
    ) -> None:
        self.orders = orders
        self.routes = routes
        self.venues = {v.name: v for v in venues}
        self.children = children
        self.book: InternalBook | None = None  # set when the gateway has its own book
        self.slippage_bps = slippage_bps
        # signed orders' pool legs become swaps inside the settlement transaction (set when
        # the gateway settles on chain); otherwise the operator swaps and bears the inventory
        self.pools_settle_in_batch = False
        # signed orders' fills settle on chain (set when the gateway settles on chain)
        self.settles_on_chain = False
        self._pool_lock = asyncio.Lock()

    def _protective(self, side: Side, average: Decimal, tick: Decimal) -> Decimal:
        move = average * self.slippage_bps / BPS
        raw = average + move if side is Side.BUY else average - move
        rounding = ROUND_CEILING if side is Side.BUY else ROUND_FLOOR
        return (raw / tick).to_integral_value(rounding) * tick

    async def _pool_fill(
        self, parent: Order, venue: UniswapV2Venue, quantity: Decimal, bound: Decimal
    ) -> ChildResult:
        """Fill a pool leg at the pool's exact price now; the swap runs in the batch that
        settles the fill. Serialized, so each swap is priced on the reserves the ones before
        it leave."""
        spec = parent.spec
        assert spec.instrument is not None
        instrument = self.orders.catalogue.get(spec.instrument)
        async with self._pool_lock:
            try:
                swap = await asyncio.to_thread(
                    venue.plan_swap, spec.instrument, spec.side, quantity, bound
                )
            except VenueError as error:
                log.warning("pool leg of %s refused: %s", parent.id, error)
                return ChildResult(venue.name, quantity, Decimal(0), None, error.code)
            base_units, quote_units = (
                (swap.amount_out, swap.amount_in)
                if spec.side is Side.BUY
                else (swap.amount_in, swap.amount_out)
            )
            price = from_units(quote_units, instrument.quote.decimals) / from_units(
                base_units, instrument.base.decimals
            )
            gas = Decimal(0)
            native = self.routes.native_price()
            if native is not None:
                wei = venue.gas_estimate() * await asyncio.to_thread(venue.gas_price)
                gas = from_units(wei, 18) * native
            try:
                _, fill = await self.orders.record_pool_fill(
                    parent.id, swap, quantity=quantity, price=price, venue=venue.name, gas=gas
                )
            except DomainError as error:  # e.g. cancelled meanwhile: nothing was swapped
                log.warning("pool leg of %s not recorded: %s", parent.id, error.message)
                return ChildResult(venue.name, quantity, Decimal(0), None, error.code)
            venue.in_flight.add(fill.id, swap)
        return ChildResult(venue.name, quantity, quantity, price)

    async def execute(
        self, parent: Order, *, exclude_kinds: frozenset[VenueKind] = frozenset()
    ) -> SmartExecution:
        """Route `parent` on the live venues (those of `exclude_kinds` left out) and execute
        each leg. Traced as `route.smart`: the chosen venues and quantities (the first
        route), and what each venue filled."""
        self.children.executing.add(parent.id)
        try:
            with tracing.start_span("route.smart") as span:
                span.set_attribute("order.id", parent.id)
                result = await self._execute(parent, exclude_kinds)
                if span.is_recording():
                    legs = result.route.legs
                    span.set_attribute("route.venues", [leg.venue for leg in legs])
                    span.set_attribute("route.quantities", [str(leg.quantity) for leg in legs])
                    span.set_attribute("route.filled_venues", [c.venue for c in result.children])
                    span.set_attribute(
                        "route.filled_quantities", [str(c.filled) for c in result.children]
                    )
                    span.set_attribute("order.filled_quantity", str(result.order.filled_quantity))
                    span.set_attribute("order.status", result.order.status.value)
                return result
        finally:
            self.children.executing.discard(parent.id)

    async def _execute(self, parent: Order, exclude_kinds: frozenset[VenueKind]) -> SmartExecution:
        spec = parent.spec
        assert spec.instrument is not None
        children: list[ChildResult] = []
        unknown = False  # a child the venue did not answer for: its outcome is reconciled later
        if self.settles_on_chain and spec.signed is not None and self.orders.inventory is None:
            # nothing would take the other side of an exchange fill on chain: it would
            # leave the trader's order filled and the wallet untouched
            exclude_kinds = exclude_kinds | {VenueKind.CEX}
        excluded = frozenset(v.name for v in self.venues.values() if v.kind in exclude_kinds)
        quote = await self.routes.quote(
            spec.instrument, spec.side, parent.remaining, limit=spec.price, exclude=excluded
        )
        first_route = quote.smart
        # a leg refused before it was sent (the inventory cannot carry it) is routed again
        # without its venue; each pass excludes one more venue, so this ends
        while True:
            refused, child_unknown = await self._send_legs(parent, quote.smart, children)
            unknown = unknown or child_unknown
            if not refused:
                break
            excluded = excluded | refused
            current = await self.orders.get(parent.id)
            if not current.status.is_open or current.remaining <= 0:
                break
            quote = await self.routes.quote(
                spec.instrument, spec.side, current.remaining, limit=spec.price, exclude=excluded
            )
        final = await self.orders.get(parent.id)
        if final.status.is_open and not unknown:
            with contextlib.suppress(DomainError):
                final = await self.orders.cancel(
                    parent.id, reason="the rest found no liquidity within the limit"
                )
        return SmartExecution(final, first_route, tuple(children))

    async def _send_legs(
        self, parent: Order, route: Route, children: list[ChildResult]
    ) -> tuple[frozenset[str], bool]:
        """Execute one route's legs, the internal book's first (its price is firm, the
        others' may move meanwhile). Returns the venues that refused a leg before anything
        was sent (to route again without them) and whether a child's outcome is unknown."""
        spec = parent.spec
        assert spec.instrument is not None
        instrument = self.orders.catalogue.get(spec.instrument)
        refused: set[str] = set()
        unknown = False
        legs = sorted(route.legs, key=lambda leg: not leg.internal)
        for leg in legs:
            venue = self.venues.get(leg.venue)
            if venue is None:
                continue
            price = self._protective(spec.side, leg.average_price, instrument.rules.tick_size)
            if spec.price is not None:  # never beyond the parent's own limit
                price = min(price, spec.price) if spec.side is Side.BUY else max(price, spec.price)
            if venue.kind is VenueKind.INTERNAL:
                if self.book is None:
                    continue
                before = (await self.orders.get(parent.id)).filled_quantity
                try:
                    taken = await self.book.take(parent, leg.quantity, price)
                except DomainError as error:
                    log.warning("internal leg of %s refused: %s", parent.id, error.message)
                    children.append(
                        ChildResult(venue.name, leg.quantity, Decimal(0), None, error.code)
                    )
                    continue
                got = taken.filled_quantity - before
                children.append(ChildResult(venue.name, leg.quantity, got, price if got else None))
                continue
            if (
                self.pools_settle_in_batch
                and spec.signed is not None
                and isinstance(venue, UniswapV2Venue)
            ):
                children.append(await self._pool_fill(parent, venue, leg.quantity, price))
                continue
            inventory = self.orders.inventory
            if venue.kind is VenueKind.CEX and spec.signed is not None and inventory is not None:
                try:  # the inventory takes the other side on chain: it must carry it first
                    await inventory.check_capacity(spec.instrument, spec.side, leg.quantity, price)
                except InventoryRefused as error:
                    log.warning(
                        "exchange leg of %s on %s refused: %s", parent.id, venue.name, error
                    )
                    children.append(
                        ChildResult(venue.name, leg.quantity, Decimal(0), None, "inventory_limit")
                    )
                    refused.add(venue.name)
                    continue
            request = VenueOrderRequest(
                spec.instrument,
                spec.side,
                OrderType.LIMIT,
                leg.quantity,
                price,
                TimeInForce.IOC,
                # unique per parent across passes: one result per leg tried so far
                client_order_id=f"{parent.id}-{len(children)}",
            )
            try:
                child, _ = await self.children.send(
                    parent, venue, request, native_price=self.routes.native_price()
                )
            except VenueError as error:
                log.warning(
                    "smart child %s on %s refused: %s", request.client_order_id, venue.name, error
                )
                children.append(ChildResult(venue.name, leg.quantity, Decimal(0), None, error.code))
                continue
            unknown = unknown or child.status is VenueChildStatus.PENDING
            children.append(
                ChildResult(venue.name, leg.quantity, child.filled, child.average_price)
            )
        return frozenset(refused), unknown
