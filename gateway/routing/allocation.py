"""Smart order routing core: split a parent order across venues at equal marginal all-in prices.

Pure: no I/O, no framework. Venue adapters (or the API layer) describe each venue's liquidity
for the side we take as a `BookVenue` (a CEX or the internal book: a fee-adjusted ladder) or an
`AmmPool` (Uniswap v2 reserves, pool fee, gas of one swap in quote), and `route` returns the
allocation with the lowest all-in cost for a buy (highest all-in proceeds for a sell).

Why equal marginal prices: with divisible quantities, every venue's cost curve is convex (a book
ladder is piecewise linear with rising prices, a constant-product pool's cost is x*y=k convex),
so the sum is minimised exactly where every used venue's marginal all-in price equals one
common price `lambda` and every unused venue's first unit is worse than `lambda` (KKT). A greedy
walk of a consolidated book would treat a pool as a fixed ladder and ignore that each slice taken
moves the pool's price; solving for `lambda` takes the curvature into account exactly.

Algorithm (see `route`):

1. Prepare each venue: the ladder truncated at what the account's balance allows, the maximum
   quantity (capacity) rounded down to the lot size, and exact cost functions.
2. Relaxation for a given set of pools: the book levels are merged by fee-adjusted price; a pool's
   quantity at marginal price `lambda` has a closed form that is *linear* in u = 1/sqrt(lambda)
   (buy: q = Rb - c*u, sell: q = c*u - Rb/g, with c = sqrt(Rq*Rb/g), g = 1 - fee). A binary
   search over the distinct book prices finds the book level where supply reaches the order
   size; between two book prices only the pools move, and their (clipped) piecewise-linear supply
   in u is solved exactly. Ties at `lambda` are filled internal venue first.
3. Gas is a fixed cost per pool used, which makes the problem non-convex. For every subset of
   pools (all subsets up to `MAX_EXHAUSTIVE_POOLS` pools, otherwise a drop-one local search) the
   convex relaxation is solved and priced exactly with the gas of the pools that end up used. Any
   allocation uses some set U of pools and costs at least the relaxation over U plus gas(U), so
   the minimum over subsets is the optimum of the divisible problem. Pools whose first unit is
   no better than the books-alone marginal price get nothing in any subset, so they are not
   branched on (`_split_dormant`): usually only a few subsets remain.
4. Lots, minimums and caps: each allocation is rounded down to its lot. A venue whose share
   rounds below its minimum is tried both ways, excluded or held at exactly its minimum, with
   the rest re-solved (for up to `MAX_MINIMUM_BRANCHES` such venues; beyond, excluded). The
   remaining lots go one at a time to the venue whose exact next-lot cost per unit is lowest
   (internal first on ties). Nothing ever exceeds a venue's capacity, so balance caps hold by
   construction. Quantity finer than every lot, or beyond all liquidity, is `unfilled`.
5. The best candidate (most filled, then cheapest, then most internal) is compared with every
   single-venue route, so the result is never worse than the best single venue.

Units: book prices and quantities are Decimal (quote per base, base). Pool reserves are integer
token units with their decimals, exactly what the pair contract holds, so an AMM leg's amounts
are `gateway.domain.amm` integer math on those reserves (what the swap will really move). Gas is
a Decimal in quote units (see `gas_in_quote`). All internal arithmetic is Decimal at
`PRECISION` significant digits; outputs are Decimal, never float.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

from gateway.domain import amm
from gateway.domain.amounts import from_units, to_units
from gateway.domain.errors import DomainError
from gateway.domain.market import BookLevel
from gateway.domain.orders import Side

BPS = Decimal(10_000)
PRECISION = 60  # significant digits for every intermediate; far beyond any token amount
MAX_EXHAUSTIVE_POOLS = 4  # 2**4 pool subsets; above this a local search decides the pool set
MAX_MINIMUM_BRANCHES = 3  # venues below their minimum tried both ways (excluded / at minimum)
_ZERO = Decimal(0)
_ONE = Decimal(1)


class RoutingError(DomainError):
    """The routing request itself is malformed (not: liquidity is short, that is a partial)."""

    code = "invalid_route_request"


def _check(condition: bool, message: str, field: str) -> None:
    if not condition:
        raise RoutingError(message, field=field)


def _finite(value: Decimal) -> bool:
    return isinstance(value, Decimal) and value.is_finite()


@dataclass(frozen=True, slots=True)
class BookVenue:
    """A venue with an order book (a CEX, or the internal book when `internal`).

    `levels` is the side we take, best first: asks ascending for a buy, bids descending for a
    sell. `balance_cap` is what the account holds there: the most quote it can spend, fees
    included, for a buy; the most base it can deliver for a sell. None means unlimited.
    """

    name: str
    levels: tuple[BookLevel, ...]
    taker_fee_bps: Decimal
    lot_size: Decimal
    min_quantity: Decimal = _ZERO
    balance_cap: Decimal | None = None
    internal: bool = False

    def __post_init__(self) -> None:
        _check(bool(self.name), "a venue needs a name", "venue")
        _check(
            _finite(self.taker_fee_bps) and _ZERO <= self.taker_fee_bps < BPS,
            f"{self.name}: taker fee must be in [0, 10000) bps",
            "taker_fee_bps",
        )
        _check(_finite(self.lot_size) and self.lot_size > 0, f"{self.name}: lot size", "lot_size")
        _check(
            _finite(self.min_quantity) and self.min_quantity >= 0,
            f"{self.name}: minimum quantity must be >= 0",
            "min_quantity",
        )
        _check(
            self.balance_cap is None or (_finite(self.balance_cap) and self.balance_cap >= 0),
            f"{self.name}: balance cap must be >= 0",
            "balance_cap",
        )
        for level in self.levels:
            _check(
                _finite(level.price) and level.price > 0,
                f"{self.name}: level prices must be positive",
                "levels",
            )
            _check(
                _finite(level.quantity) and level.quantity > 0,
                f"{self.name}: level quantities must be positive",
                "levels",
            )


@dataclass(frozen=True, slots=True)
class AmmPool:
    """A Uniswap v2 style constant-product pool, reserves in integer token units.

    `gas_quote` is the gas of one swap converted to quote units; it is paid once if the pool is
    used at all. `balance_cap`: the most quote the swap may take in for a buy (gas is paid in
    the native token, so it is not part of it), the most base it may sell. None: unlimited.
    """

    name: str
    reserve_base: int
    reserve_quote: int
    base_decimals: int
    quote_decimals: int
    lot_size: Decimal
    fee_bps: int = 30
    gas_quote: Decimal = _ZERO
    min_quantity: Decimal = _ZERO
    balance_cap: Decimal | None = None

    def __post_init__(self) -> None:
        _check(bool(self.name), "a venue needs a name", "venue")
        _check(
            self.reserve_base > 0 and self.reserve_quote > 0,
            f"{self.name}: reserves must be positive",
            "reserves",
        )
        _check(
            0 <= self.base_decimals <= 36 and 0 <= self.quote_decimals <= 36,
            f"{self.name}: decimals must be in [0, 36]",
            "decimals",
        )
        _check(0 <= self.fee_bps < 10_000, f"{self.name}: pool fee in [0, 10000) bps", "fee_bps")
        _check(
            _finite(self.gas_quote) and self.gas_quote >= 0,
            f"{self.name}: gas must be >= 0",
            "gas_quote",
        )
        _check(_finite(self.lot_size) and self.lot_size > 0, f"{self.name}: lot size", "lot_size")
        try:
            to_units(self.lot_size, self.base_decimals)
        except DomainError:
            raise RoutingError(
                f"{self.name}: lot size {self.lot_size} is finer than the token's decimals",
                field="lot_size",
            ) from None
        _check(
            _finite(self.min_quantity) and self.min_quantity >= 0,
            f"{self.name}: minimum quantity must be >= 0",
            "min_quantity",
        )
        _check(
            self.balance_cap is None or (_finite(self.balance_cap) and self.balance_cap >= 0),
            f"{self.name}: balance cap must be >= 0",
            "balance_cap",
        )

    @property
    def spot_price(self) -> Decimal:
        """Quote per base at the current reserves, before the fee (the pool's mid)."""
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return from_units(self.reserve_quote, self.quote_decimals) / from_units(
                self.reserve_base, self.base_decimals
            )


Venue = BookVenue | AmmPool


def gas_in_quote(gas_units: int, gas_price_wei: int, quote_per_native: Decimal) -> Decimal:
    """Gas of one swap in quote units: gas * price (wei) / 1e18 * quote per native token.

    Why here: the router must compare gas with fees and price impact in one unit.
    """
    if gas_units < 0 or gas_price_wei < 0 or quote_per_native < 0:
        raise RoutingError("gas, gas price and native price must be >= 0", field="gas")
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return from_units(gas_units * gas_price_wei, 18) * quote_per_native


@dataclass(frozen=True, slots=True)
class RouteLeg:
    """One child order. All amounts in quote units.

    `notional` is at the venue's own prices before fees (for a pool: the swap without its fee),
    `fee` the taker or pool fee, `gas` the swap's gas, `quote_amount` the all-in amount paid
    (buy: notional + fee + gas) or received (sell: notional - fee - gas).
    """

    venue: str
    kind: str  # "book" or "amm"
    internal: bool
    quantity: Decimal
    average_price: Decimal  # notional / quantity
    all_in_price: Decimal  # quote_amount / quantity
    notional: Decimal
    fee: Decimal
    gas: Decimal
    quote_amount: Decimal


@dataclass(frozen=True, slots=True)
class Route:
    """The allocation of one parent order and what it is expected to cost.

    `reference_price` is the mid given to `route`, or the best raw price at the touch when no
    mid was given; `slippage_bps` is how much worse than it the all-in average is (positive:
    paid more on a buy, received less on a sell). `marginal_price` is the common marginal
    all-in price of the divisible relaxation (None when no quantity was routed).
    """

    side: Side
    requested: Decimal
    legs: tuple[RouteLeg, ...]
    filled: Decimal
    unfilled: Decimal
    notional: Decimal
    fees: Decimal
    gas: Decimal
    quote_amount: Decimal
    average_price: Decimal | None
    reference_price: Decimal | None
    slippage_bps: Decimal | None
    marginal_price: Decimal | None

    @property
    def complete(self) -> bool:
        return self.unfilled == 0

    def leg(self, venue: str) -> RouteLeg | None:
        for leg in self.legs:
            if leg.venue == venue:
                return leg
        return None


@dataclass(frozen=True, slots=True)
class RelaxedAllocation:
    """The divisible optimum before lots and minimums: quantity per venue and common `lambda`."""

    quantities: dict[str, Decimal]
    marginal_price: Decimal | None


# -- prepared venues: capacity and exact costs -----------------------------------------------


def _floor_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(ROUND_FLOOR) * step


def _ceil_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(ROUND_CEILING) * step


class _Prepared:
    """A venue ready for routing on one side. `cost(q)` is signed: buy pays, sell is negative.

    Signed costs let one minimisation serve both sides: minimising -proceeds maximises proceeds.
    """

    __slots__ = ("capacity", "first_step", "index", "internal", "lot", "name", "sign", "venue")

    def __init__(self, venue: Venue, index: int, side: Side) -> None:
        self.venue = venue
        self.name = venue.name
        self.index = index
        self.sign = Decimal(side.sign)
        self.lot = venue.lot_size
        self.internal = isinstance(venue, BookVenue) and venue.internal
        # The first order on a venue is at least its minimum, rounded up to whole lots.
        self.first_step = max(self.lot, _ceil_to(venue.min_quantity, self.lot))
        self.capacity = _ZERO

    def cost(self, quantity: Decimal) -> Decimal:
        raise NotImplementedError

    def amounts(self, quantity: Decimal) -> tuple[Decimal, Decimal, Decimal]:
        """(notional before fees, fee, gas) for `quantity` in quote units."""
        raise NotImplementedError

    def marginal(self, quantity: Decimal) -> Decimal:
        """Right-hand marginal all-in price at `quantity` (no gas)."""
        raise NotImplementedError

    def last_marginal(self, quantity: Decimal) -> Decimal:
        """Left-hand marginal all-in price at `quantity`: the price of the last unit taken."""
        raise NotImplementedError


class _Book(_Prepared):
    __slots__ = ("cum_notional", "cum_qty", "factor", "keys", "prices", "quantities")

    def __init__(self, venue: BookVenue, index: int, side: Side) -> None:
        super().__init__(venue, index, side)
        fee = venue.taker_fee_bps / BPS
        self.factor = _ONE + fee if side is Side.BUY else _ONE - fee
        levels = venue.levels
        for previous, level in itertools.pairwise(levels):
            better = (
                previous.price < level.price if side is Side.BUY else previous.price > level.price
            )
            _check(
                better or previous.price == level.price,
                f"{venue.name}: levels must be best first for a {side.value}",
                "levels",
            )
        total = sum((level.quantity for level in levels), _ZERO)
        if venue.balance_cap is not None:
            if side is Side.SELL:
                total = min(total, venue.balance_cap)
            else:
                total = min(total, self._affordable(levels, venue.balance_cap))
        capacity = _floor_to(total, self.lot)
        # Ladder truncated at the capacity, so no allocation can pass the balance cap.
        prices: list[Decimal] = []
        quantities: list[Decimal] = []
        left = capacity
        for level in levels:
            if left <= 0:
                break
            take = min(level.quantity, left)
            prices.append(level.price)
            quantities.append(take)
            left -= take
        self.prices = prices
        self.quantities = quantities
        self.keys = [self.sign * price * self.factor for price in prices]
        self.cum_qty = [_ZERO]
        self.cum_notional = [_ZERO]
        for price, quantity in zip(prices, quantities, strict=True):
            self.cum_qty.append(self.cum_qty[-1] + quantity)
            self.cum_notional.append(self.cum_notional[-1] + price * quantity)
        self.capacity = capacity
        if venue.balance_cap is not None and side is Side.BUY:
            while self.capacity > 0 and self.cost(self.capacity) > venue.balance_cap:
                self.capacity -= self.lot  # division rounding at the boundary: stay inside

    def _affordable(self, levels: Sequence[BookLevel], cap: Decimal) -> Decimal:
        """Base quantity that `cap` quote buys, fees included."""
        spent = _ZERO
        bought = _ZERO
        for level in levels:
            unit = level.price * self.factor
            cost = unit * level.quantity
            if spent + cost > cap:
                return bought + ((cap - spent) / unit)
            spent += cost
            bought += level.quantity
        return bought

    def notional(self, quantity: Decimal) -> Decimal:
        k = bisect.bisect_right(self.cum_qty, quantity) - 1
        if k >= len(self.prices):
            return self.cum_notional[-1]
        return self.cum_notional[k] + (quantity - self.cum_qty[k]) * self.prices[k]

    def cost(self, quantity: Decimal) -> Decimal:
        return self.sign * self.notional(quantity) * self.factor

    def amounts(self, quantity: Decimal) -> tuple[Decimal, Decimal, Decimal]:
        notional = self.notional(quantity)
        return notional, notional * (self.factor - _ONE) * self.sign, _ZERO

    def _level_price(self, k: int) -> Decimal:
        if not self.prices:  # nothing tradable (cap 0): the touch, for reporting only
            levels = self.venue.levels if isinstance(self.venue, BookVenue) else ()
            return levels[0].price * self.factor if levels else Decimal("NaN")
        return self.prices[min(max(k, 0), len(self.prices) - 1)] * self.factor

    def marginal(self, quantity: Decimal) -> Decimal:
        return self._level_price(bisect.bisect_right(self.cum_qty, quantity) - 1)

    def last_marginal(self, quantity: Decimal) -> Decimal:
        return self._level_price(bisect.bisect_left(self.cum_qty, quantity) - 1)


class _Pool(_Prepared):
    __slots__ = ("a", "b", "c", "gamma", "rb", "rq")

    def __init__(self, pool: AmmPool, index: int, side: Side) -> None:
        super().__init__(pool, index, side)
        self.rb = from_units(pool.reserve_base, pool.base_decimals)
        self.rq = from_units(pool.reserve_quote, pool.quote_decimals)
        self.gamma = _ONE - Decimal(pool.fee_bps) / BPS
        # Marginal all-in price p at quantity q, with u = 1/sqrt(p), is linear in u:
        # buy  C(q) = Rq*q / (g*(Rb-q)),  C'(q) = Rq*Rb / (g*(Rb-q)^2)  ->  q = Rb - c*u
        # sell P(q) = g*q*Rq / (Rb+g*q),  P'(q) = g*Rq*Rb / (Rb+g*q)^2  ->  q = c*u - Rb/g
        self.c = (self.rq * self.rb / self.gamma).sqrt()
        if side is Side.BUY:
            self.a, self.b = self.rb, -self.c
            max_units = pool.reserve_base - 1  # a pool never gives out its last unit
            if pool.balance_cap is not None:
                spend = int(
                    pool.balance_cap.scaleb(pool.quote_decimals).to_integral_value(ROUND_FLOOR)
                )
                affordable = (
                    amm.amount_out(spend, pool.reserve_quote, pool.reserve_base, pool.fee_bps)
                    if spend > 0
                    else 0
                )
                while affordable > 0 and self._in_units(affordable) > spend:
                    affordable -= 1
                max_units = min(max_units, affordable)
            limit: Decimal | None = from_units(max_units, pool.base_decimals)
        else:
            self.a, self.b = -self.rb / self.gamma, self.c
            limit = pool.balance_cap
        if limit is None:
            self.capacity = Decimal("Infinity")
        else:
            self.capacity = _floor_to(limit, self.lot)

    def _in_units(self, base_units: int) -> int:
        pool = self.venue
        assert isinstance(pool, AmmPool)
        return amm.amount_in(base_units, pool.reserve_quote, pool.reserve_base, pool.fee_bps)

    def swap_units(self, quantity: Decimal, fee_bps: int) -> int:
        """Quote units the swap moves for `quantity` base: the pair contract's integer math."""
        pool = self.venue
        assert isinstance(pool, AmmPool)
        units = to_units(quantity, pool.base_decimals)
        if self.sign > 0:
            return amm.amount_in(units, pool.reserve_quote, pool.reserve_base, fee_bps)
        return amm.amount_out(units, pool.reserve_base, pool.reserve_quote, fee_bps)

    def amounts(self, quantity: Decimal) -> tuple[Decimal, Decimal, Decimal]:
        pool = self.venue
        assert isinstance(pool, AmmPool)
        if quantity == 0:
            return _ZERO, _ZERO, _ZERO
        with_fee = from_units(self.swap_units(quantity, pool.fee_bps), pool.quote_decimals)
        without = from_units(self.swap_units(quantity, 0), pool.quote_decimals)
        return without, (with_fee - without) * self.sign, pool.gas_quote

    def cost(self, quantity: Decimal) -> Decimal:
        if quantity == 0:
            return _ZERO
        pool = self.venue
        assert isinstance(pool, AmmPool)
        quote = from_units(self.swap_units(quantity, pool.fee_bps), pool.quote_decimals)
        return self.sign * quote + pool.gas_quote

    def marginal(self, quantity: Decimal) -> Decimal:
        if self.sign > 0:
            return self.rq * self.rb / (self.gamma * (self.rb - quantity) ** 2)
        return self.gamma * self.rq * self.rb / (self.rb + self.gamma * quantity) ** 2

    def last_marginal(self, quantity: Decimal) -> Decimal:
        return self.marginal(quantity)

    def at_u(self, u: Decimal) -> Decimal:
        """Quantity at which this pool's marginal price is 1/u^2, clipped to [0, capacity]."""
        return min(max(self.a + self.b * u, _ZERO), self.capacity)


def _prepare(side: Side, quantity: Decimal, venues: Sequence[Venue]) -> list[_Prepared]:
    _check(isinstance(side, Side), "side must be buy or sell", "side")
    _check(_finite(quantity) and quantity > 0, "quantity must be a positive decimal", "quantity")
    _check(len(venues) > 0, "at least one venue is needed", "venues")
    names = [venue.name for venue in venues]
    _check(len(set(names)) == len(names), "venue names must be unique", "venues")
    prepared: list[_Prepared] = []
    for index, venue in enumerate(venues):
        if isinstance(venue, BookVenue):
            prepared.append(_Book(venue, index, side))
        elif isinstance(venue, AmmPool):
            prepared.append(_Pool(venue, index, side))
        else:
            raise RoutingError(f"unknown venue description {venue!r}", field="venues")
    return prepared


# -- the divisible relaxation -----------------------------------------------------------------


class _Ladder:
    """All book levels merged by signed fee-adjusted price (key), ties internal first."""

    __slots__ = ("cum", "entries", "keys")

    def __init__(self, books: Sequence[_Book]) -> None:
        entries = [
            (key, 0 if book.internal else 1, book.index, quantity)
            for book in books
            for key, quantity in zip(book.keys, book.quantities, strict=True)
        ]
        entries.sort()
        self.entries = entries
        keys: list[Decimal] = []
        cum: list[Decimal] = []  # cum[k]: quantity with key <= keys[k]
        total = _ZERO
        for key, _tie, _index, quantity in entries:
            total += quantity
            if keys and keys[-1] == key:
                cum[-1] = total
            else:
                keys.append(key)
                cum.append(total)
        self.keys = keys
        self.cum = cum


def _u_of(key: Decimal) -> Decimal:
    return _ONE / abs(key).sqrt()


def _pool_supply(pools: Sequence[_Pool], u: Decimal) -> Decimal:
    return sum((pool.at_u(u) for pool in pools), _ZERO)


def _solve_pools(pools: Sequence[_Pool], target: Decimal, buy: bool) -> Decimal | None:
    """The u at which the pools together supply `target` (their supply is piecewise linear in u).

    Returns None when they cannot supply it even at their capacities (u = 0 / u = inf).
    """
    if not pools or target <= 0:
        return None
    points: set[Decimal] = set()
    for pool in pools:
        points.add(-pool.a / pool.b)  # q = 0
        if pool.capacity.is_finite():
            points.add((pool.capacity - pool.a) / pool.b)  # q = capacity
    us = sorted(u for u in points if u > 0)
    if not buy:
        # sell: supply rises with u; past the last breakpoint every uncapped pool is linear
        previous_u, previous = _ZERO, _ZERO
        for u in us:
            supply = _pool_supply(pools, u)
            if supply >= target:
                return previous_u + (target - previous) * (u - previous_u) / (supply - previous)
            previous_u, previous = u, supply
        slope = sum((pool.b for pool in pools if not pool.capacity.is_finite()), _ZERO)
        if slope == 0:
            return None
        return previous_u + (target - previous) / slope
    # buy: supply falls with u, from the capacities near u = 0 to 0 at the largest breakpoint
    us.reverse()
    previous_u, previous = (us[0] if us else _ZERO), _ZERO
    for u in us:
        supply = _pool_supply(pools, u)
        if supply >= target:
            if supply == previous:
                return u
            return previous_u + (target - previous) * (u - previous_u) / (supply - previous)
        previous_u, previous = u, supply
    return None


class _Cache:
    """Per-request memo: merged ladders per set of books, u = 1/sqrt(price) per book price.

    The pool subsets and minimum-quantity branches re-solve the relaxation many times over
    the same books; Decimal square roots dominate otherwise.
    """

    __slots__ = ("ladders", "us")

    def __init__(self) -> None:
        self.ladders: dict[frozenset[int], _Ladder] = {}
        self.us: dict[Decimal, Decimal] = {}

    def u_of(self, key: Decimal) -> Decimal:
        u = self.us.get(key)
        if u is None:
            u = self.us[key] = _u_of(key)
        return u


def _relax(
    side: Side,
    quantity: Decimal,
    prepared: Sequence[_Prepared],
    enabled: Collection[int],
    cache: _Cache | None = None,
) -> tuple[list[Decimal], Decimal | None]:
    """Divisible optimum over the enabled venues: (quantity per venue, common marginal price)."""
    buy = side is Side.BUY
    books = [v for v in prepared if isinstance(v, _Book) and v.index in enabled]
    pools = [v for v in prepared if isinstance(v, _Pool) and v.index in enabled and v.capacity > 0]
    book_set = frozenset(book.index for book in books)
    cache = cache or _Cache()
    ladder = cache.ladders.get(book_set)
    if ladder is None:
        ladder = cache.ladders[book_set] = _Ladder(books)
    result = [_ZERO] * len(prepared)
    u_of = cache.u_of

    def pools_at_key(key: Decimal) -> Decimal:
        return _pool_supply(pools, u_of(key)) if pools else _ZERO

    keys, cum = ladder.keys, ladder.cum
    lo, hi = 0, len(keys)
    while lo < hi:  # smallest k with books(<= key_k) + pools(key_k) >= quantity
        mid = (lo + hi) // 2
        if cum[mid] + pools_at_key(keys[mid]) >= quantity:
            hi = mid
        else:
            lo = mid + 1
    k = lo
    below = cum[k - 1] if k > 0 else _ZERO
    tie_key: Decimal | None = None
    tie_rest = _ZERO
    if k == len(keys):  # the books run out: the pools take the rest, up to their capacities
        book_limit = None
        u = _solve_pools(pools, quantity - below, buy)
        if u is None and pools:
            u = _ZERO if buy else Decimal("Infinity")
    else:
        book_limit = keys[k]
        at_key = pools_at_key(book_limit)
        if below + at_key >= quantity:  # lambda strictly between two book prices
            u = _solve_pools(pools, quantity - below, buy)
            if u is None:  # rounding at a capacity: the pools are (almost) exactly at the key
                u = u_of(book_limit)
        else:  # lambda is this book price; its levels take what the pools leave
            u = u_of(book_limit) if pools else None
            tie_key = book_limit
            tie_rest = quantity - below - at_key
    for key, _tie, index, level_quantity in ladder.entries:
        if book_limit is not None and key >= book_limit:
            if key == tie_key and tie_rest > 0:
                take = min(level_quantity, tie_rest)
                result[index] += take
                tie_rest -= take
                continue
            break
        result[index] += level_quantity
    marginal: Decimal | None = None
    if u is not None:
        for pool in pools:
            result[pool.index] = pool.at_u(u) if u.is_finite() else pool.capacity
        if u.is_finite() and u > 0:
            marginal = _ONE / (u * u)
    if tie_key is not None:
        marginal = abs(tie_key)
    elif marginal is None or (u is not None and not u.is_finite()):
        marks = [v.last_marginal(result[v.index]) for v in prepared if result[v.index] > 0]
        if marks:  # everything is at capacity: the worst marginal price among the used venues
            marginal = max(marks) if buy else min(marks)
    return result, marginal


# -- lots, minimums, caps ---------------------------------------------------------------------


def _discretize(
    side: Side,
    quantity: Decimal,
    prepared: Sequence[_Prepared],
    enabled: Collection[int],
    fixed: dict[int, Decimal] | None = None,
    depth: int = 0,
    cache: _Cache | None = None,
) -> tuple[list[Decimal], Decimal | None]:
    """Lot-feasible allocation near the relaxation, then the leftover lots greedily.

    A venue whose relaxed share rounds below its minimum either gets nothing or exactly its
    minimum (held fixed while the rest is re-solved); both are tried for the first few such
    venues, because neither choice is right in general (excluding a small, cheap venue can leave
    a remainder that no other venue can take, forcing the minimum can overpay).
    """
    fixed = fixed or {}
    active = {i for i in enabled if i not in fixed}
    target = quantity - sum(fixed.values(), _ZERO)
    marginal: Decimal | None = None
    while True:
        if target > 0:
            relaxed, marginal = _relax(side, target, prepared, active, cache)
        else:
            relaxed = [_ZERO] * len(prepared)
        allocation = [
            _floor_to(min(q, v.capacity), v.lot) if v.index in active else _ZERO
            for q, v in zip(relaxed, prepared, strict=True)
        ]
        for i, amount in fixed.items():
            allocation[i] = amount
        # relaxed > 0 but rounded below the minimum (even to zero): decide it explicitly
        short = [i for i in active if relaxed[i] > 0 and allocation[i] < prepared[i].first_step]
        if not short:
            break
        if depth < MAX_MINIMUM_BRANCHES:
            i = max(short, key=lambda j: (relaxed[j], -j))
            excluded = _discretize(
                side, quantity, prepared, enabled, {**fixed, i: _ZERO}, depth + 1, cache
            )
            options = [excluded]
            venue = prepared[i]
            if venue.first_step <= min(target, venue.capacity):
                options.append(
                    _discretize(
                        side,
                        quantity,
                        prepared,
                        enabled,
                        {**fixed, i: venue.first_step},
                        depth + 1,
                        cache,
                    )
                )
            return min(options, key=lambda option: _rank(prepared, option[0]))
        active -= set(short)  # too small to trade there: re-solve without those venues
    _fill_remainder(quantity, prepared, enabled, allocation)
    return allocation, marginal


def _fill_remainder(
    quantity: Decimal,
    prepared: Sequence[_Prepared],
    enabled: Collection[int],
    allocation: list[Decimal],
) -> None:
    """Give the lots that rounding left over, one at a time, to the cheapest next lot."""
    remaining = quantity - sum(allocation, _ZERO)
    costs = {i: prepared[i].cost(allocation[i]) for i in enabled}
    while remaining > 0:
        best: tuple[Decimal, int, int, Decimal, Decimal] | None = None
        for i in enabled:
            venue = prepared[i]
            current = allocation[i]
            step = venue.lot if current > 0 else venue.first_step
            if step > remaining or current + step > venue.capacity:
                continue
            cost = venue.cost(current + step)
            per_unit = (cost - costs[i]) / step
            candidate = (per_unit, 0 if venue.internal else 1, i, step, cost)
            if best is None or candidate[:3] < best[:3]:
                best = candidate
        if best is None:
            break
        _per_unit, _tie, i, step, cost = best
        allocation[i] += step
        costs[i] = cost
        remaining -= step


def _total_cost(prepared: Sequence[_Prepared], allocation: Sequence[Decimal]) -> Decimal:
    return sum((v.cost(q) for v, q in zip(prepared, allocation, strict=True) if q > 0), _ZERO)


def _pool_subsets(pools: Sequence[int]) -> Iterator[frozenset[int]]:
    for size in range(len(pools) + 1):
        for subset in itertools.combinations(pools, size):
            yield frozenset(subset)


# -- routes -----------------------------------------------------------------------------------


def _reference(prepared: Sequence[_Prepared], side: Side) -> Decimal | None:
    touches: list[Decimal] = []
    for venue in prepared:
        if isinstance(venue.venue, BookVenue) and venue.venue.levels:
            touches.append(venue.venue.levels[0].price)
        elif isinstance(venue, _Pool):
            touches.append(venue.rq / venue.rb)
    if not touches:
        return None
    return min(touches) if side is Side.BUY else max(touches)


def _build(
    side: Side,
    quantity: Decimal,
    prepared: Sequence[_Prepared],
    allocation: Sequence[Decimal],
    marginal: Decimal | None,
    mid: Decimal | None,
) -> Route:
    legs: list[RouteLeg] = []
    sign = Decimal(side.sign)
    for venue, amount in zip(prepared, allocation, strict=True):
        if amount <= 0:
            continue
        notional, fee, gas = venue.amounts(amount)
        quote_amount = notional + sign * (fee + gas)
        legs.append(
            RouteLeg(
                venue=venue.name,
                kind="book" if isinstance(venue, _Book) else "amm",
                internal=venue.internal,
                quantity=amount,
                average_price=notional / amount,
                all_in_price=quote_amount / amount,
                notional=notional,
                fee=fee,
                gas=gas,
                quote_amount=quote_amount,
            )
        )
    filled = sum((leg.quantity for leg in legs), _ZERO)
    total = sum((leg.quote_amount for leg in legs), _ZERO)
    reference = mid if mid is not None else _reference(prepared, side)
    average = total / filled if filled > 0 else None
    slippage = None
    if average is not None and reference is not None and reference > 0:
        slippage = sign * (average - reference) / reference * BPS
    return Route(
        side=side,
        requested=quantity,
        legs=tuple(legs),
        filled=filled,
        unfilled=quantity - filled,
        notional=sum((leg.notional for leg in legs), _ZERO),
        fees=sum((leg.fee for leg in legs), _ZERO),
        gas=sum((leg.gas for leg in legs), _ZERO),
        quote_amount=total,
        average_price=average,
        reference_price=reference,
        slippage_bps=slippage,
        marginal_price=marginal if filled > 0 else None,
    )


def _rank(
    prepared: Sequence[_Prepared], allocation: Sequence[Decimal]
) -> tuple[Decimal, Decimal, Decimal]:
    """Most filled, then cheapest (signed cost), then most internal quantity."""
    filled = sum(allocation, _ZERO)
    internal = sum((q for v, q in zip(prepared, allocation, strict=True) if v.internal), _ZERO)
    return -filled, _total_cost(prepared, allocation), -internal


def _single_allocations(
    prepared: Sequence[_Prepared], quantity: Decimal
) -> Iterator[list[Decimal]]:
    for venue in prepared:
        amount = _floor_to(min(quantity, venue.capacity), venue.lot)
        if amount >= venue.first_step:
            allocation = [_ZERO] * len(prepared)
            allocation[venue.index] = amount
            yield allocation


def _split_dormant(
    side: Side,
    quantity: Decimal,
    prepared: Sequence[_Prepared],
    books: list[int],
    pools: list[int],
    cache: _Cache,
) -> tuple[list[int], frozenset[int]]:
    """Pools worth choosing subsets over, and pools that no subset's relaxation would use.

    Enabling more venues can only improve the relaxation's common marginal price, so the worst
    it can be is with the books alone. A pool whose first unit is no better than that price
    gets nothing in every subset's relaxation: enumerating subsets with and without it would
    solve the same problem twice. It stays enabled (for the leftover lots), but is not branched
    on. Only when the books alone can fill the order; otherwise every pool is a candidate.
    """
    if not pools or not books:
        return pools, frozenset()
    relaxed, books_price = _relax(side, quantity, prepared, books, cache)
    if books_price is None or sum(relaxed, _ZERO) < quantity:
        return pools, frozenset()
    buy = side is Side.BUY
    candidates: list[int] = []
    dormant: set[int] = set()
    for index in pools:
        first = prepared[index].marginal(_ZERO)
        if (first < books_price) if buy else (first > books_price):
            candidates.append(index)
        else:
            dormant.add(index)
    return candidates, frozenset(dormant)


def route(
    side: Side, quantity: Decimal, venues: Sequence[Venue], *, mid: Decimal | None = None
) -> Route:
    """Split `quantity` base across `venues` for the lowest all-in cost (best proceeds on a sell).

    Never worse than the best single venue; fills as much as lots, minimums, balances and
    liquidity allow and reports the rest as `unfilled`. `mid` is the reference for slippage.
    """
    with localcontext() as ctx:
        ctx.prec = PRECISION
        prepared = _prepare(side, quantity, venues)
        _check(mid is None or (_finite(mid) and mid > 0), "mid must be positive", "mid")
        books = [v.index for v in prepared if isinstance(v, _Book)]
        pools = [v.index for v in prepared if isinstance(v, _Pool)]
        cache = _Cache()
        candidates: list[
            tuple[tuple[Decimal, Decimal, Decimal], list[Decimal], Decimal | None]
        ] = []

        pools, dormant = _split_dormant(side, quantity, prepared, books, pools, cache)

        def evaluate(
            subset: frozenset[int],
        ) -> tuple[tuple[Decimal, Decimal, Decimal], list[Decimal]]:
            enabled = [*books, *sorted(subset | dormant)]
            allocation, marginal = _discretize(side, quantity, prepared, enabled, cache=cache)
            rank = _rank(prepared, allocation)
            candidates.append((rank, allocation, marginal))
            return rank, allocation

        if len(pools) <= MAX_EXHAUSTIVE_POOLS:
            for subset in _pool_subsets(pools):
                evaluate(subset)
        else:  # drop-one local search from all pools: each pass removes the pool that helps most
            current = frozenset(pools)
            best_rank, _ = evaluate(current)
            improved = True
            while improved and current:
                improved = False
                trials = [(evaluate(current - {p})[0], current - {p}) for p in sorted(current)]
                rank, subset = min(trials, key=lambda trial: trial[0])
                if rank < best_rank:
                    best_rank, current, improved = rank, subset, True
        for allocation in _single_allocations(prepared, quantity):
            candidates.append((_rank(prepared, allocation), allocation, None))
        rank, allocation, marginal = min(candidates, key=lambda candidate: candidate[0])
        if marginal is None:  # a single-venue route won: its own last marginal price
            used = [v for v in prepared if allocation[v.index] > 0]
            if used:
                marginal = used[0].last_marginal(allocation[used[0].index])
        return _build(side, quantity, prepared, allocation, marginal, mid)


def relaxed_allocation(
    side: Side,
    quantity: Decimal,
    venues: Sequence[Venue],
    *,
    pools: Collection[str] | None = None,
) -> RelaxedAllocation:
    """The divisible optimum (no lots, minimums or gas) with the named pools enabled (all: None).

    Exposed so that tests can check the equal-marginal-price (KKT) conditions directly.
    """
    with localcontext() as ctx:
        ctx.prec = PRECISION
        prepared = _prepare(side, quantity, venues)
        enabled = [
            v.index for v in prepared if isinstance(v, _Book) or pools is None or v.name in pools
        ]
        result, marginal = _relax(side, quantity, prepared, enabled)
        return RelaxedAllocation({v.name: result[v.index] for v in prepared}, marginal)


def marginal_price(venue: Venue, side: Side, quantity: Decimal) -> Decimal:
    """All-in price of the next unit after `quantity` on `venue` (fees in, gas out)."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        prepared = _prepare(side, Decimal(1), [venue])[0]
        return prepared.marginal(quantity)


def single_venue_routes(
    side: Side, quantity: Decimal, venues: Sequence[Venue], *, mid: Decimal | None = None
) -> list[Route]:
    """Every route that puts the whole order (as far as it fits) on one venue."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        prepared = _prepare(side, quantity, venues)
        return [
            _build(side, quantity, prepared, allocation, None, mid)
            for allocation in _single_allocations(prepared, quantity)
        ]


def best_single_venue(
    side: Side, quantity: Decimal, venues: Sequence[Venue], *, mid: Decimal | None = None
) -> Route | None:
    """Reference: the best route on one venue (most filled, then best all-in amount)."""
    routes = single_venue_routes(side, quantity, venues, mid=mid)
    if not routes:
        return None
    sign = Decimal(side.sign)
    return min(routes, key=lambda r: (-r.filled, sign * r.quote_amount))


def evaluate(
    side: Side,
    quantity: Decimal,
    venues: Sequence[Venue],
    allocation: Mapping[str, Decimal],
    *,
    mid: Decimal | None = None,
) -> Route:
    """Price a given allocation (venue name -> base quantity) with the router's exact costs.

    For comparing other strategies (a greedy walk, a quote computed earlier) on equal terms.
    Refuses quantities beyond a venue's capacity (depth or balance cap) or off its lot size.
    """
    with localcontext() as ctx:
        ctx.prec = PRECISION
        prepared = _prepare(side, quantity, venues)
        by_name = {v.name: v for v in prepared}
        amounts = [_ZERO] * len(prepared)
        for name, amount in allocation.items():
            _check(name in by_name, f"unknown venue {name!r}", "allocation")
            venue = by_name[name]
            _check(
                _finite(amount) and 0 <= amount <= venue.capacity and amount % venue.lot == 0,
                f"{name}: {amount} is off the lot size or beyond what the venue can take",
                "allocation",
            )
            amounts[venue.index] = amount
        _check(sum(amounts, _ZERO) <= quantity, "the allocation exceeds the quantity", "allocation")
        return _build(side, quantity, prepared, amounts, None, mid)


def grid_search(
    side: Side,
    quantity: Decimal,
    venues: Sequence[Venue],
    *,
    steps: int,
    mid: Decimal | None = None,
) -> Route | None:
    """Reference: brute force over every split of `quantity` in multiples of quantity/steps.

    Only complete fills that respect every lot, minimum and capacity count; costs are the same
    exact functions `route` uses. Cost grows as steps**(venues-1): for small instances only.
    """
    _check(steps > 0, "steps must be positive", "steps")
    with localcontext() as ctx:
        ctx.prec = PRECISION
        prepared = _prepare(side, quantity, venues)
        unit = quantity / steps
        table: list[list[Decimal | None]] = []
        for venue in prepared:
            row: list[Decimal | None] = []
            for k in range(steps + 1):
                amount = unit * k
                feasible = k == 0 or (
                    amount >= venue.first_step
                    and amount <= venue.capacity
                    and amount % venue.lot == 0
                )
                row.append(venue.cost(amount) if feasible else None)
            table.append(row)
        best: tuple[Decimal, tuple[int, ...]] | None = None
        count = len(prepared)

        def search(position: int, left: int, spent: Decimal, chosen: tuple[int, ...]) -> None:
            nonlocal best
            row = table[position]
            if position == count - 1:
                cost = row[left]
                if cost is not None and (best is None or spent + cost < best[0]):
                    best = (spent + cost, (*chosen, left))
                return
            for k in range(left + 1):
                cost = row[k]
                if cost is not None:
                    search(position + 1, left - k, spent + cost, (*chosen, k))

        search(0, steps, _ZERO, ())
        if best is None:
            return None
        allocation = [unit * k for k in best[1]]
        return _build(side, quantity, prepared, allocation, None, mid)
