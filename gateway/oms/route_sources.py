"""What the smart order router can split an order across, right now.

Book venues (CEX and the internal book) contribute their own latest book from the market
data hub (stale venues are left out) with their taker fee and the instrument's lot size and
minimum; the operator's free balance on each CEX caps what can be bought or sold there. AMM
pools contribute their current reserves and the gas of one swap in quote terms (gas units ×
gas price × the native token's price, taken from the consolidated mid of its wrapped token).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from gateway.domain.benchmarks import ArrivalPrice, arrival_from_books
from gateway.domain.instruments import Instrument, InstrumentCatalogue
from gateway.domain.market import VenueKind
from gateway.domain.orders import Side
from gateway.routing.allocation import (
    AmmPool,
    BookVenue,
    Route,
    best_single_venue,
    gas_in_quote,
    route,
)
from gateway.routing.allocation import Venue as RouteVenue
from gateway.venues.amm import UniswapV2Venue
from gateway.venues.market_data import MarketDataHub
from gateway.venues.protocol import Venue, VenueError

log = logging.getLogger("gateway.routing")
NATIVE_PAIR = "WETH/USDC"  # gas is paid in ETH; its price in quote is WETH's mid


class RouteSources:
    def __init__(
        self,
        hub: MarketDataHub,
        venues: Sequence[Venue],
        catalogue: InstrumentCatalogue,
        *,
        balance_timeout: float = 2.0,
    ) -> None:
        self.hub = hub
        self.venues = {v.name: v for v in venues}
        self.catalogue = catalogue
        self.balance_timeout = balance_timeout

    async def _cap(self, venue: Venue, instrument: Instrument, side: Side) -> Decimal | None:
        """The operator's free balance there: quote to spend on a buy, base to sell."""
        if venue.kind is not VenueKind.CEX:
            return None
        try:
            balances = await asyncio.wait_for(venue.fetch_balances(), self.balance_timeout)
        except (VenueError, TimeoutError) as error:
            log.warning("no balances from %s: %s; routing without a cap", venue.name, error)
            return None
        asset = instrument.quote.symbol if side is Side.BUY else instrument.base.symbol
        held = balances.get(asset)
        return Decimal(0) if held is None else held.free

    async def _pool(self, venue: UniswapV2Venue, instrument: Instrument) -> AmmPool | None:
        try:
            pool, reserve_base, reserve_quote = await asyncio.to_thread(
                venue.reserves, instrument.symbol
            )
            gas_price = await asyncio.to_thread(venue.gas_price)
        except VenueError as error:
            log.warning("pool %s unavailable: %s", venue.name, error)
            return None
        gas = gas_in_quote(venue.gas_estimate(), gas_price, self.native_price() or Decimal(0))
        return AmmPool(
            venue.name,
            reserve_base,
            reserve_quote,
            pool.base_decimals,
            pool.quote_decimals,
            instrument.rules.lot_size,
            fee_bps=pool.fee_bps,
            gas_quote=gas,
            min_quantity=instrument.rules.min_quantity,
        )

    async def sources(self, symbol: str, side: Side) -> list[RouteVenue]:
        instrument = self.catalogue.get(symbol)
        found: list[RouteVenue] = []
        books = self.hub.venue_books(symbol)
        caps: dict[str, Decimal | None] = {}
        book_venues = [
            self.venues[name]
            for name in sorted(books)
            if name in self.venues and not isinstance(self.venues[name], UniswapV2Venue)
        ]
        for venue, cap in zip(
            book_venues,
            await asyncio.gather(*(self._cap(v, instrument, side) for v in book_venues)),
            strict=True,
        ):
            caps[venue.name] = cap
        for venue in book_venues:
            book = books[venue.name]
            levels = book.asks if side is Side.BUY else book.bids
            if not levels:
                continue
            found.append(
                BookVenue(
                    venue.name,
                    levels,
                    venue.fees(symbol).taker_bps,
                    instrument.rules.lot_size,
                    instrument.rules.min_quantity,
                    caps.get(venue.name),
                    internal=venue.kind is VenueKind.INTERNAL,
                )
            )
        for venue in self.venues.values():
            if isinstance(venue, UniswapV2Venue) and venue.name not in self.hub.stale_venues():
                try:
                    venue.pool(symbol)
                except VenueError:
                    continue
                pool = await self._pool(venue, instrument)
                if pool is not None:
                    found.append(pool)
        return found

    def resting_venue(self, symbol: str, side: Side) -> Venue | None:
        """Where a passive order of ours rests best: the live exchange showing the most
        quantity on our side near the touch (where passive orders of that side trade).
        Pools cannot hold an order; the internal book is the matching engine's."""
        books = self.hub.venue_books(symbol)
        ranked = sorted(
            (
                -sum((level.quantity for level in (b.bids if side is Side.BUY else b.asks)[:5])),
                name,
            )
            for name, b in books.items()
            if name in self.venues and self.venues[name].kind is VenueKind.CEX
        )
        return self.venues[ranked[0][1]] if ranked else None

    def native_price(self) -> Decimal | None:
        """The chain's native asset (gas) in quote: its wrapped token's consolidated mid."""
        if NATIVE_PAIR not in self.catalogue:
            return None
        return self.hub.book(NATIVE_PAIR, depth=1).mid

    def arrival(self, symbol: str, now: datetime) -> ArrivalPrice:
        """The touch across the live venues' own books now: a parent order's TCA benchmark."""
        return arrival_from_books(symbol, self.hub.venue_books(symbol), now)

    async def quote(
        self,
        symbol: str,
        side: Side,
        quantity: Decimal,
        *,
        limit: Decimal | None = None,
        exclude: frozenset[str] = frozenset(),
    ) -> Quote:
        """The smart route for `quantity` now (the consolidated mid as the slippage
        reference), and the best single-venue route on the same liquidity to compare.

        With a `limit`, nothing is routed at a marginal all-in price (fees and gas included)
        beyond it: book levels past it are dropped and the quantity is cut back on the lot
        grid until the route's marginal price is within it. Venues in `exclude` are left
        out (a venue that refused this order's leg)."""
        venues = [v for v in await self.sources(symbol, side) if v.name not in exclude]
        if limit is not None:
            venues = [_within(v, side, limit) for v in venues]
            venues = [v for v in venues if not isinstance(v, BookVenue) or v.levels]
        mid = self.hub.book(symbol, depth=1).mid
        lot = self.catalogue.get(symbol).rules.lot_size

        def solve() -> Quote:
            if not venues:
                return Quote(_empty(side, quantity, mid), None)
            found = route(side, quantity, venues, mid=mid)
            if limit is not None and _beyond(found, side, limit):
                low, high = Decimal(0), found.filled  # in lots: low fits, high does not
                while high - low > lot:
                    middle = ((low + high) / 2 / lot).to_integral_value() * lot
                    if _beyond(route(side, middle, venues, mid=mid), side, limit):
                        high = middle
                    else:
                        low = middle
                # nothing within the limit: an empty route (everything unfilled)
                found = (
                    route(side, low, venues, mid=mid) if low > 0 else _empty(side, quantity, mid)
                )
            return Quote(found, best_single_venue(side, quantity, venues, mid=mid))

        return await asyncio.to_thread(solve)


def _empty(side: Side, quantity: Decimal, mid: Decimal | None) -> Route:
    """No liquidity (within the limit): nothing routed, everything unfilled."""
    zero = Decimal(0)
    return Route(side, quantity, (), zero, quantity, zero, zero, zero, zero, None, mid, None, None)


def _beyond(found: Route, side: Side, limit: Decimal) -> bool:
    marginal = found.marginal_price
    if marginal is None or found.filled == 0:
        return False
    return marginal > limit if side is Side.BUY else marginal < limit


def _within(venue: RouteVenue, side: Side, limit: Decimal) -> RouteVenue:
    """A book venue without the levels whose all-in price is beyond `limit`."""
    if not isinstance(venue, BookVenue):
        return venue
    factor = 1 + side.sign * venue.taker_fee_bps / 10_000
    kept = tuple(
        level
        for level in venue.levels
        if (level.price * factor <= limit if side is Side.BUY else level.price * factor >= limit)
    )
    return replace(venue, levels=kept)


@dataclass(frozen=True, slots=True)
class Quote:
    smart: Route
    best_single_venue: Route | None
