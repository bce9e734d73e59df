"""A small price-time-priority matching engine with accounts, for the simulated exchanges.

Everything is `Decimal`. One `SimExchange` holds any number of markets (spot pairs, options,
perpetuals), the accounts' balances and positions, and every order and trade.

Accounting model (documented because the simulators expose it on the wire):

* Balances have a `total` per asset; what is `locked` is *derived* from the open orders and the
  positions each time it is asked for, so it can never drift: `free = total - locked`.
* Spot: a resting buy locks `price * remaining` of the quote asset, a resting sell locks
  `remaining` of the base asset. Fees are charged in the asset received (Binance's default):
  the buyer pays its fee in base, the seller in quote.
* Options: the premium (`price * quantity`) moves in the settlement asset from buyer to seller;
  a resting buy locks its premium plus the taker fee, a resting sell (and a short position)
  locks `short_margin` per unit. Fees are `bps` of the premium, in the settlement asset.
* Perpetuals: no premium; a resting order locks `initial_margin_rate * price * remaining`, a
  position locks the same rate of its entry notional; reducing a position realizes its PnL.
* Fees are `bps` of notional, rounded half-up to `FEE_QUANTUM`; they are paid into the
  `FEE_ACCOUNT` account, so the total of every asset across all accounts is conserved.
"""

from __future__ import annotations

import bisect
import enum
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

FEE_ACCOUNT = "__fees__"
TAPE_ACCOUNT = "__tape__"  # the counterparty of synthetic history trades: no balances, no orders
FEE_QUANTUM = Decimal("1e-8")
BPS = Decimal(10_000)
ZERO = Decimal(0)


class MarketKind(str, enum.Enum):
    SPOT = "spot"
    OPTION = "option"
    PERPETUAL = "perpetual"


class SimSide(str, enum.Enum):
    BUY = "buy"
    SELL = "sell"


class SimOrderType(str, enum.Enum):
    LIMIT = "limit"
    MARKET = "market"


class SimTimeInForce(str, enum.Enum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class SimOrderStatus(str, enum.Enum):
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def is_open(self) -> bool:
        return self in (SimOrderStatus.NEW, SimOrderStatus.PARTIALLY_FILLED)


class SimErrorKind(str, enum.Enum):
    INSUFFICIENT_FUNDS = "insufficient_funds"
    ORDER_NOT_FOUND = "order_not_found"
    UNKNOWN_SYMBOL = "unknown_symbol"
    PRICE_FILTER = "price_filter"
    LOT_SIZE = "lot_size"
    MIN_NOTIONAL = "min_notional"
    POST_ONLY_WOULD_TAKE = "post_only_would_take"
    BAD_REQUEST = "bad_request"


class SimError(Exception):
    def __init__(self, kind: SimErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class MarketSpec:
    symbol: str
    kind: MarketKind
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_quantity: Decimal
    min_notional: Decimal = ZERO
    maker_bps: Decimal = ZERO
    taker_bps: Decimal = ZERO
    settle: str | None = None  # options/perpetuals: the asset premium, margin and fees are in
    short_margin: Decimal = ZERO  # options: locked per unit sold
    initial_margin_rate: Decimal = Decimal("0.1")  # perpetuals

    @property
    def cash_asset(self) -> str:
        return self.settle if self.settle is not None else self.quote


@dataclass(slots=True)
class SimTrade:
    trade_id: int
    symbol: str
    price: Decimal
    quantity: Decimal
    taker_side: SimSide
    maker_order_id: int
    taker_order_id: int
    maker_account: str
    taker_account: str
    maker_fee: Decimal
    taker_fee: Decimal
    maker_fee_asset: str
    taker_fee_asset: str
    timestamp_ms: int

    def side_of(self, account: str, order_id: int) -> SimSide:
        if order_id == self.taker_order_id:
            return self.taker_side
        return SimSide.SELL if self.taker_side is SimSide.BUY else SimSide.BUY

    def fee_of(self, order_id: int) -> tuple[Decimal, str]:
        if order_id == self.taker_order_id:
            return self.taker_fee, self.taker_fee_asset
        return self.maker_fee, self.maker_fee_asset

    def is_maker(self, order_id: int) -> bool:
        return order_id == self.maker_order_id


@dataclass(slots=True)
class SimOrder:
    order_id: int
    account: str
    symbol: str
    side: SimSide
    order_type: SimOrderType
    quantity: Decimal
    price: Decimal | None
    time_in_force: SimTimeInForce
    post_only: bool
    client_order_id: str | None
    created_ms: int
    updated_ms: int
    sequence: int
    filled: Decimal = ZERO
    notional: Decimal = ZERO  # sum of price * quantity over fills
    fee: Decimal = ZERO
    fee_asset: str | None = None
    status: SimOrderStatus = SimOrderStatus.NEW
    trades: list[SimTrade] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled

    @property
    def average_price(self) -> Decimal | None:
        if self.filled == 0:
            return None
        return self.notional / self.filled


@dataclass(slots=True)
class SimPosition:
    size: Decimal = ZERO  # signed: long > 0
    average_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO


class _Book:
    """Resting orders of one market: price levels, FIFO within a level."""

    def __init__(self) -> None:
        self.bid_prices: list[Decimal] = []  # ascending; best bid is the last
        self.ask_prices: list[Decimal] = []  # ascending; best ask is the first
        self.bids: dict[Decimal, deque[SimOrder]] = {}
        self.asks: dict[Decimal, deque[SimOrder]] = {}

    def _side(self, side: SimSide) -> tuple[list[Decimal], dict[Decimal, deque[SimOrder]]]:
        return (self.bid_prices, self.bids) if side is SimSide.BUY else (self.ask_prices, self.asks)

    def add(self, order: SimOrder) -> None:
        assert order.price is not None
        prices, levels = self._side(order.side)
        if order.price not in levels:
            bisect.insort(prices, order.price)
            levels[order.price] = deque()
        levels[order.price].append(order)

    def remove(self, order: SimOrder) -> None:
        assert order.price is not None
        prices, levels = self._side(order.side)
        level = levels.get(order.price)
        if level is None:
            return
        try:
            level.remove(order)
        except ValueError:
            return
        if not level:
            del levels[order.price]
            prices.remove(order.price)

    def opposite_in_priority(self, taker_side: SimSide) -> Iterable[SimOrder]:
        """Resting orders a taker on `taker_side` would meet, best price first, then time."""
        if taker_side is SimSide.BUY:
            for price in list(self.ask_prices):
                yield from list(self.asks.get(price, ()))
        else:
            for price in reversed(list(self.bid_prices)):
                yield from list(self.bids.get(price, ()))

    def levels(self, side: SimSide, limit: int) -> list[tuple[Decimal, Decimal]]:
        prices, levels = self._side(side)
        ordered = reversed(prices) if side is SimSide.BUY else iter(prices)
        result: list[tuple[Decimal, Decimal]] = []
        for price in ordered:
            if len(result) >= limit:
                break
            result.append((price, sum((o.remaining for o in levels[price]), ZERO)))
        return result


def _crosses(taker: SimOrder, maker_price: Decimal) -> bool:
    if taker.price is None:
        return True
    if taker.side is SimSide.BUY:
        return maker_price <= taker.price
    return maker_price >= taker.price


def _fee(notional: Decimal, bps: Decimal) -> Decimal:
    return (notional * bps / BPS).quantize(FEE_QUANTUM, rounding=ROUND_HALF_UP)


class SimExchange:
    """Markets, accounts and the matching engine of one simulated exchange."""

    def __init__(self, clock_ms: Callable[[], int]) -> None:
        self.clock_ms = clock_ms
        self.markets: dict[str, MarketSpec] = {}
        self._books: dict[str, _Book] = {}
        self._totals: dict[str, dict[str, Decimal]] = {}
        self._positions: dict[str, dict[str, SimPosition]] = {}
        self._orders: dict[int, SimOrder] = {}
        self._open: dict[str, dict[int, SimOrder]] = {}
        self._trades: list[SimTrade] = []
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._sequence = itertools.count(1)
        self.change_id = 0  # bumped on every book change
        self.book_versions: dict[str, int] = {}  # per market, bumped on every change of its book

    # --- setup --------------------------------------------------------------------------------

    def add_market(self, spec: MarketSpec) -> None:
        self.markets[spec.symbol] = spec
        self._books[spec.symbol] = _Book()

    def deposit(self, account: str, asset: str, amount: Decimal) -> None:
        totals = self._totals.setdefault(account, {})
        totals[asset] = totals.get(asset, ZERO) + amount

    def market(self, symbol: str) -> MarketSpec:
        try:
            return self.markets[symbol]
        except KeyError:
            raise SimError(SimErrorKind.UNKNOWN_SYMBOL, f"unknown symbol {symbol}") from None

    # --- queries ------------------------------------------------------------------------------

    def total(self, account: str, asset: str) -> Decimal:
        return self._totals.get(account, {}).get(asset, ZERO)

    def locked(self, account: str, asset: str) -> Decimal:
        locked = ZERO
        for order in self._open.get(account, {}).values():
            locked += self._reservation(order, order.remaining).get(asset, ZERO)
        for symbol, position in self._positions.get(account, {}).items():
            locked += self._position_margin(self.markets[symbol], position).get(asset, ZERO)
        return locked

    def free(self, account: str, asset: str) -> Decimal:
        return self.total(account, asset) - self.locked(account, asset)

    def assets(self, account: str) -> list[str]:
        names = set(self._totals.get(account, {}))
        for market in self.markets.values():
            names.update({market.base, market.quote, market.cash_asset})
        return sorted(names)

    def all_accounts(self) -> list[str]:
        return sorted(self._totals)

    def position(self, account: str, symbol: str) -> SimPosition:
        return self._positions.get(account, {}).get(symbol, SimPosition())

    def positions(self, account: str) -> dict[str, SimPosition]:
        return dict(self._positions.get(account, {}))

    def order(self, account: str, order_id: int) -> SimOrder:
        order = self._orders.get(order_id)
        if order is None or order.account != account:
            raise SimError(SimErrorKind.ORDER_NOT_FOUND, "Order does not exist.")
        return order

    def find_order(self, order_id: int) -> SimOrder | None:
        return self._orders.get(order_id)

    def all_trades(self, symbol: str | None = None) -> list[SimTrade]:
        return [t for t in self._trades if symbol is None or t.symbol == symbol]

    def record_tape_trade(
        self,
        symbol: str,
        price: Decimal,
        quantity: Decimal,
        taker_side: SimSide,
        timestamp_ms: int,
    ) -> SimTrade:
        """Append a trade to the public tape only: no order, no book, no balance, no position
        and no account's own trades change (synthetic venue history, see `history`)."""
        self.market(symbol)
        trade = SimTrade(
            trade_id=next(self._trade_ids),
            symbol=symbol,
            price=price,
            quantity=quantity,
            taker_side=taker_side,
            maker_order_id=0,
            taker_order_id=0,
            maker_account=TAPE_ACCOUNT,
            taker_account=TAPE_ACCOUNT,
            maker_fee=ZERO,
            taker_fee=ZERO,
            maker_fee_asset=self.markets[symbol].cash_asset,
            taker_fee_asset=self.markets[symbol].cash_asset,
            timestamp_ms=timestamp_ms,
        )
        self._trades.append(trade)
        return trade

    def order_by_client_id(self, account: str, client_order_id: str) -> SimOrder:
        for order in self._orders.values():
            if order.account == account and order.client_order_id == client_order_id:
                return order
        raise SimError(SimErrorKind.ORDER_NOT_FOUND, "Order does not exist.")

    def open_orders(self, account: str, symbol: str | None = None) -> list[SimOrder]:
        orders = self._open.get(account, {}).values()
        return sorted(
            (o for o in orders if symbol is None or o.symbol == symbol), key=lambda o: o.sequence
        )

    def trades(self, account: str, symbol: str | None = None) -> list[SimTrade]:
        return [
            t
            for t in self._trades
            if account in (t.maker_account, t.taker_account)
            and (symbol is None or t.symbol == symbol)
        ]

    def depth(
        self, symbol: str, limit: int = 100
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        book = self._books[self.market(symbol).symbol]
        return book.levels(SimSide.BUY, limit), book.levels(SimSide.SELL, limit)

    # --- commands -----------------------------------------------------------------------------

    def submit(
        self,
        account: str,
        symbol: str,
        side: SimSide,
        order_type: SimOrderType,
        quantity: Decimal | None,
        price: Decimal | None = None,
        *,
        time_in_force: SimTimeInForce = SimTimeInForce.GTC,
        post_only: bool = False,
        client_order_id: str | None = None,
        quote_quantity: Decimal | None = None,
    ) -> SimOrder:
        """Validate, check funds, match, rest the remainder. Raises `SimError` on refusal."""
        market = self.market(symbol)
        book = self._books[symbol]
        if order_type is SimOrderType.LIMIT:
            if price is None:
                raise SimError(SimErrorKind.BAD_REQUEST, "price is required for a limit order")
            self._check_price(market, price)
        else:
            price = None
            post_only = False
            if time_in_force is SimTimeInForce.GTC:
                time_in_force = SimTimeInForce.IOC
        if quantity is None:
            if quote_quantity is None or order_type is not SimOrderType.MARKET:
                raise SimError(SimErrorKind.BAD_REQUEST, "quantity is required")
            quantity = self._quantity_for_quote(market, book, side, quote_quantity)
            if quantity <= 0:
                raise SimError(SimErrorKind.LOT_SIZE, "Filter failure: LOT_SIZE")
        self._check_quantity(market, quantity)
        plan = self._plan(book, side, price, quantity)
        planned_qty = sum((q for _, q in plan), ZERO)
        # a market order's notional is what it would trade now
        planned_notional = sum((p * q for p, q in plan), ZERO)
        notional = price * quantity if price is not None else planned_notional
        checks_notional = price is not None or planned_qty > 0
        if checks_notional and notional < market.min_notional:
            raise SimError(SimErrorKind.MIN_NOTIONAL, "Filter failure: NOTIONAL")
        if post_only and plan:
            raise SimError(
                SimErrorKind.POST_ONLY_WOULD_TAKE, "Order would immediately match and take."
            )
        now = self.clock_ms()
        order = SimOrder(
            order_id=next(self._order_ids),
            account=account,
            symbol=symbol,
            side=side,
            order_type=order_type,
            quantity=quantity,
            price=price,
            time_in_force=time_in_force,
            post_only=post_only,
            client_order_id=client_order_id,
            created_ms=now,
            updated_ms=now,
            sequence=next(self._sequence),
        )
        required = self._requirement(market, order, plan)
        for asset, amount in required.items():
            if amount > 0 and self.free(account, asset) < amount:
                raise SimError(
                    SimErrorKind.INSUFFICIENT_FUNDS,
                    "Account has insufficient balance for requested action.",
                )
        self._orders[order.order_id] = order
        if time_in_force is SimTimeInForce.FOK and planned_qty < quantity:
            order.status = SimOrderStatus.EXPIRED
            return order
        self._match(market, book, order)
        if order.remaining > 0:
            if order.order_type is SimOrderType.LIMIT and time_in_force is SimTimeInForce.GTC:
                book.add(order)
                self._open.setdefault(account, {})[order.order_id] = order
                self._bump(symbol)
            else:
                order.status = SimOrderStatus.EXPIRED
        return order

    def cancel(self, account: str, order_id: int) -> SimOrder:
        order = self._orders.get(order_id)
        if order is None or order.account != account or not order.status.is_open:
            raise SimError(SimErrorKind.ORDER_NOT_FOUND, "Unknown order sent.")
        self._books[order.symbol].remove(order)
        self._open.get(account, {}).pop(order_id, None)
        order.status = SimOrderStatus.CANCELED
        order.updated_ms = self.clock_ms()
        self._bump(order.symbol)
        return order

    def cancel_all(self, account: str, symbol: str | None = None) -> list[SimOrder]:
        return [self.cancel(account, o.order_id) for o in self.open_orders(account, symbol)]

    # --- internals ----------------------------------------------------------------------------

    def _bump(self, symbol: str) -> None:
        self.change_id += 1
        self.book_versions[symbol] = self.book_versions.get(symbol, 0) + 1

    def _check_price(self, market: MarketSpec, price: Decimal) -> None:
        if price <= 0 or price % market.tick_size != 0:
            raise SimError(SimErrorKind.PRICE_FILTER, "Filter failure: PRICE_FILTER")

    def _check_quantity(self, market: MarketSpec, quantity: Decimal) -> None:
        if quantity < market.min_quantity or quantity % market.step_size != 0:
            raise SimError(SimErrorKind.LOT_SIZE, "Filter failure: LOT_SIZE")

    def _quantity_for_quote(
        self, market: MarketSpec, book: _Book, side: SimSide, quote_quantity: Decimal
    ) -> Decimal:
        """How much base a market order spending `quote_quantity` buys (or sells for it)."""
        spend = quote_quantity
        quantity = ZERO
        for maker in book.opposite_in_priority(side):
            assert maker.price is not None
            take = min(maker.remaining, (spend / maker.price))
            take = take.quantize(market.step_size, rounding=ROUND_DOWN)
            if take <= 0:
                break
            quantity += take
            spend -= take * maker.price
            if take < maker.remaining:
                break
        return quantity

    def _plan(
        self, book: _Book, side: SimSide, price: Decimal | None, quantity: Decimal
    ) -> list[tuple[Decimal, Decimal]]:
        plan: list[tuple[Decimal, Decimal]] = []
        left = quantity
        for maker in book.opposite_in_priority(side):
            assert maker.price is not None
            if left <= 0:
                break
            if price is not None and not (
                maker.price <= price if side is SimSide.BUY else maker.price >= price
            ):
                break
            take = min(left, maker.remaining)
            plan.append((maker.price, take))
            left -= take
        return plan

    def _reservation(self, order: SimOrder, remaining: Decimal) -> dict[str, Decimal]:
        """What a resting order locks for its `remaining` quantity."""
        market = self.markets[order.symbol]
        if order.price is None or remaining <= 0:
            return {}
        if market.kind is MarketKind.SPOT:
            if order.side is SimSide.BUY:
                return {market.quote: order.price * remaining}
            return {market.base: remaining}
        cash = market.cash_asset
        if market.kind is MarketKind.OPTION:
            if order.side is SimSide.BUY:
                premium = order.price * remaining
                return {cash: premium + _fee(premium, max(market.taker_bps, market.maker_bps))}
            return {cash: market.short_margin * remaining}
        return {cash: market.initial_margin_rate * order.price * remaining}

    def _position_margin(self, market: MarketSpec, position: SimPosition) -> dict[str, Decimal]:
        if market.kind is MarketKind.OPTION and position.size < 0:
            return {market.cash_asset: market.short_margin * -position.size}
        if market.kind is MarketKind.PERPETUAL and position.size != 0:
            margin = market.initial_margin_rate * abs(position.size) * position.average_price
            return {market.cash_asset: margin}
        return {}

    def _requirement(
        self, market: MarketSpec, order: SimOrder, plan: list[tuple[Decimal, Decimal]]
    ) -> dict[str, Decimal]:
        """Free funds the order needs now: its reservation at the limit, or its planned fills."""
        if order.price is not None:
            return self._reservation(order, order.quantity)
        notional = sum((p * q for p, q in plan), ZERO)
        quantity = sum((q for _, q in plan), ZERO)
        if market.kind is MarketKind.SPOT:
            if order.side is SimSide.BUY:
                return {market.quote: notional}
            return {market.base: quantity}
        cash = market.cash_asset
        if market.kind is MarketKind.OPTION:
            if order.side is SimSide.BUY:
                return {cash: notional + _fee(notional, market.taker_bps)}
            return {cash: market.short_margin * quantity}
        return {cash: market.initial_margin_rate * notional + _fee(notional, market.taker_bps)}

    def _match(self, market: MarketSpec, book: _Book, taker: SimOrder) -> None:
        for maker in book.opposite_in_priority(taker.side):
            if taker.remaining <= 0:
                break
            assert maker.price is not None
            if not _crosses(taker, maker.price):
                break
            quantity = min(taker.remaining, maker.remaining)
            self._fill(market, maker, taker, maker.price, quantity)
            if maker.remaining == 0:
                book.remove(maker)
                self._open.get(maker.account, {}).pop(maker.order_id, None)
            self._bump(market.symbol)

    def _fill(
        self, market: MarketSpec, maker: SimOrder, taker: SimOrder, price: Decimal, qty: Decimal
    ) -> None:
        now = self.clock_ms()
        notional = price * qty
        buyer, seller = (taker, maker) if taker.side is SimSide.BUY else (maker, taker)
        fees: dict[int, tuple[Decimal, str]] = {}
        for order, bps in ((maker, market.maker_bps), (taker, market.taker_bps)):
            if market.kind is MarketKind.SPOT:
                if order is buyer:
                    fees[order.order_id] = (_fee(qty, bps), market.base)
                else:
                    fees[order.order_id] = (_fee(notional, bps), market.quote)
            else:
                fees[order.order_id] = (_fee(notional, bps), market.cash_asset)
        if market.kind is MarketKind.SPOT:
            self.deposit(buyer.account, market.quote, -notional)
            self.deposit(seller.account, market.quote, notional)
            self.deposit(seller.account, market.base, -qty)
            self.deposit(buyer.account, market.base, qty)
        else:
            if market.kind is MarketKind.OPTION:
                self.deposit(buyer.account, market.cash_asset, -notional)
                self.deposit(seller.account, market.cash_asset, notional)
            self._move_position(market, buyer.account, qty, price)
            self._move_position(market, seller.account, -qty, price)
        for order in (maker, taker):
            fee, asset = fees[order.order_id]
            self.deposit(order.account, asset, -fee)
            self.deposit(FEE_ACCOUNT, asset, fee)
        trade = SimTrade(
            trade_id=next(self._trade_ids),
            symbol=market.symbol,
            price=price,
            quantity=qty,
            taker_side=taker.side,
            maker_order_id=maker.order_id,
            taker_order_id=taker.order_id,
            maker_account=maker.account,
            taker_account=taker.account,
            maker_fee=fees[maker.order_id][0],
            taker_fee=fees[taker.order_id][0],
            maker_fee_asset=fees[maker.order_id][1],
            taker_fee_asset=fees[taker.order_id][1],
            timestamp_ms=now,
        )
        self._trades.append(trade)
        for order in (maker, taker):
            order.filled += qty
            order.notional += notional
            fee, asset = fees[order.order_id]
            order.fee += fee
            order.fee_asset = asset
            order.updated_ms = now
            order.trades.append(trade)
            order.status = (
                SimOrderStatus.FILLED if order.remaining == 0 else SimOrderStatus.PARTIALLY_FILLED
            )

    def _move_position(
        self, market: MarketSpec, account: str, delta: Decimal, price: Decimal
    ) -> None:
        positions = self._positions.setdefault(account, {})
        position = positions.setdefault(market.symbol, SimPosition())
        size = position.size
        if size == 0 or (size > 0) == (delta > 0):
            new_size = size + delta
            position.average_price = (
                abs(size) * position.average_price + abs(delta) * price
            ) / abs(new_size)
            position.size = new_size
            return
        closing = min(abs(delta), abs(size))
        if market.kind is MarketKind.PERPETUAL:
            direction = Decimal(1) if size > 0 else Decimal(-1)
            pnl = (price - position.average_price) * closing * direction
            position.realized_pnl += pnl
            self.deposit(account, market.cash_asset, pnl)
        new_size = size + delta
        if new_size == 0:
            position.size = ZERO
            position.average_price = ZERO
        elif (new_size > 0) == (size > 0):
            position.size = new_size
        else:  # flipped: the rest opens at this price
            position.size = new_size
            position.average_price = price
