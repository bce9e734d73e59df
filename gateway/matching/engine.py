"""The matching engine: commands in, events out. Pure: no I/O, no clock, no randomness.

Rules:

- Price-time priority: a better price fills first; at one price, the earlier arrival first.
  Trades happen at the resting (maker) order's price.
- Limit orders rest what they do not fill (GTC; GTD rests like GTC, the caller cancels it
  at expiry). IOC cancels its remainder (reason `ioc_remainder`); market orders are IOC or
  FOK with no price limit. FOK fills completely at once or is cancelled without trading
  (`fok_unfilled`); the check runs before any trade, counting only what self-trade
  prevention would let it take.
- Post-only orders that would take liquidity are cancelled (`post_only_would_cross`).
- Amend keeps priority when only the quantity goes down; a new price or a larger quantity
  loses it (back of the queue at the new price) and a new price may trade at once.
- Self-trade prevention: the incoming order's mode (see `SelfTradePrevention`) decides when
  it meets a resting order of the same account; no trade between one account ever happens.
- Combos (see `strategy` for normalisation and `units` for strategy ticks and lots): an
  incoming combo order matches, best net price first, both
  (a) resting combo orders of the same normalised strategy (ties go to them), and
  (b) implied liquidity from the legs' single-instrument books: strategy lots are filled
  whole, every leg in ratio, each lot only when its net price (sum over legs of sign *
  ratio * leg price, averaged over the lot's leg quantity) satisfies the combo's limit; the
  quantity is the largest whole number of lots every leg can fill. Implied matching never
  trades against the combo's own account: a leg's liquidity ends at that account's first
  resting order. Combo self-trade prevention against resting combos works as for single
  instruments. A FOK combo counts both sources before trading (they draw on different
  books, so they add up) and is killed if a resting combo of its own account is within its
  limit, unless its mode is cancel-oldest. Resting combos do not (yet) trade against
  incoming single-leg orders ("implied in").
- Determinism: state changes only through commands, and iteration follows price and arrival
  sequence only, so the same commands always give the same events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from heapq import heappop, heappush

from gateway.domain.instruments import TradingRules
from gateway.domain.orders import MAX_LEGS, Leg, OrderType, Side, TimeInForce
from gateway.matching.book import BookSide, BookSnapshot, OrderBook, PriceLevel, RestingOrder
from gateway.matching.commands import (
    AmendOrder,
    CancelOrder,
    CancelReason,
    Command,
    PlaceCombo,
    PlaceOrder,
    SelfTradePrevention,
)
from gateway.matching.events import (
    ComboFill,
    Event,
    LegFill,
    Liquidity,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderReduced,
    OrderRejected,
    RejectReason,
    Trade,
)
from gateway.matching.strategy import Strategy, normalise
from gateway.matching.units import StrategyUnits

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
GTC, GTD, IOC, FOK = TimeInForce.GTC, TimeInForce.GTD, TimeInForce.IOC, TimeInForce.FOK
CANCEL_NEWEST = SelfTradePrevention.CANCEL_NEWEST
CANCEL_OLDEST = SelfTradePrevention.CANCEL_OLDEST
CANCEL_BOTH = SelfTradePrevention.CANCEL_BOTH
SELF_TRADE = CancelReason.SELF_TRADE

# Events on the hot paths are built with `tuple.__new__`: the same named tuple as calling the
# class, at about half the cost (no generated `__new__` frame, no keyword handling). Every
# field is given, defaults included, in declaration order.
_event = tuple.__new__
_new_order = object.__new__  # see `place`


class StrategyBook:
    """A normalised strategy, its units, its combo book and its legs' books."""

    __slots__ = ("book", "leg_books", "signs", "strategy", "units")

    def __init__(self, strategy: Strategy, units: StrategyUnits, leg_books: list[OrderBook]):
        self.strategy = strategy
        self.units = units
        self.book = OrderBook(strategy.key)
        self.leg_books = tuple(leg_books)
        self.signs = tuple(1 if leg.side is BUY else -1 for leg in strategy.legs)


class ComboDetails:
    __slots__ = ("flipped", "strategy", "time_in_force")

    def __init__(self, strategy: StrategyBook, flipped: bool, time_in_force: TimeInForce):
        self.strategy = strategy
        self.flipped = flipped
        self.time_in_force = time_in_force


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """A read-only view of an open order, in the book's terms."""

    order_id: str
    account: str
    book: str
    side: Side
    price: int | None
    quantity: int
    remaining: int
    priority: int


def _crosses(is_buy: bool, price: int | Fraction, limit: int | Fraction | None) -> bool:
    if limit is None:
        return True
    return price <= limit if is_buy else price >= limit


class MatchingEngine:
    """All books of one shard. `execute` (or the command's own method) returns the events."""

    __slots__ = ("_books", "_orders", "_rules", "_seq", "_strategies")

    def __init__(self, instruments: Mapping[str, TradingRules] | None = None) -> None:
        self._rules: dict[str, TradingRules] = {}
        self._books: dict[str, OrderBook] = {}
        self._strategies: dict[str, StrategyBook] = {}
        self._orders: dict[str, RestingOrder] = {}
        self._seq = 1
        for symbol, rules in (instruments or {}).items():
            self.add_instrument(symbol, rules)

    def add_instrument(self, symbol: str, rules: TradingRules) -> None:
        if symbol not in self._books:
            self._rules[symbol] = rules
            self._books[symbol] = OrderBook(symbol)

    # -- reads ---------------------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        return self._seq

    @property
    def open_order_count(self) -> int:
        return len(self._orders)

    def snapshot(self, book: str) -> BookSnapshot:
        """Open orders of a book (an instrument or a strategy key), best level first."""
        if book in self._books:
            return self._books[book].snapshot()
        return self._strategies[book].book.snapshot()

    def depth(self, book: str, count: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best `count` levels of each side of a book as (price, open lots), best first:
        read from the levels' totals, in O(levels), whatever the number of orders."""
        order_book = self._books[book] if book in self._books else self._strategies[book].book
        return (
            [(level.price, level.total) for level in order_book.bids.top(count)],
            [(level.price, level.total) for level in order_book.asks.top(count)],
        )

    def books(self) -> list[str]:
        return [*self._books, *self._strategies]

    def order(self, order_id: str) -> OpenOrder | None:
        order = self._orders.get(order_id)
        if order is None:
            return None
        return OpenOrder(
            order.order_id,
            order.account,
            order.book.name,
            BUY if order.is_buy else SELL,
            order.price,
            order.quantity,
            order.remaining,
            order.priority,
        )

    def open_orders(self) -> list[OpenOrder]:
        return [view for order_id in self._orders if (view := self.order(order_id)) is not None]

    def best_bid(self, book: str) -> int | None:
        level = self._book(book).bids.best()
        return None if level is None else level.price

    def best_ask(self, book: str) -> int | None:
        level = self._book(book).asks.best()
        return None if level is None else level.price

    def strategy_units(self, legs: Iterable[Leg]) -> StrategyUnits:
        """Units of the strategy the legs normalise to (for converting a combo's price)."""
        strategy, _ = normalise(list(legs))
        return StrategyUnits.of(strategy.legs, self._rules)

    def _book(self, name: str) -> OrderBook:
        return self._books[name] if name in self._books else self._strategies[name].book

    # -- commands ------------------------------------------------------------------------

    def execute(self, command: Command) -> list[Event]:
        # Single-instrument commands first, without a lookup: this is the per-command path.
        if type(command) is PlaceOrder:
            return self.place(command)
        if type(command) is CancelOrder:
            return self.cancel(command)
        if type(command) is AmendOrder:
            return self.amend(command)
        if type(command) is PlaceCombo:
            return self.place_combo(command)
        raise TypeError(f"not a matching command: {command!r}")

    def _reject(self, order_id: str, reason: RejectReason) -> list[Event]:
        seq = self._seq
        self._seq = seq + 1
        return [_event(OrderRejected, (seq, order_id, reason))]

    def place(self, command: PlaceOrder) -> list[Event]:
        order_id = command.order_id
        if order_id in self._orders:
            return self._reject(order_id, RejectReason.DUPLICATE_ORDER_ID)
        book = self._books.get(command.instrument)
        if book is None:
            return self._reject(order_id, RejectReason.UNKNOWN_INSTRUMENT)
        quantity, price = command.quantity, command.price
        order_type, tif, post_only = command.order_type, command.time_in_force, command.post_only
        if quantity <= 0:
            return self._reject(order_id, RejectReason.INVALID_QUANTITY)
        if order_type is LIMIT:
            if price is None:
                return self._reject(order_id, RejectReason.PRICE_REQUIRED)
            if price <= 0:
                return self._reject(order_id, RejectReason.INVALID_PRICE)
        elif order_type is MARKET:
            if price is not None:
                return self._reject(order_id, RejectReason.PRICE_NOT_ALLOWED)
            if tif is not IOC and tif is not FOK:
                return self._reject(order_id, RejectReason.MARKET_NEEDS_IOC_OR_FOK)
        else:
            return self._reject(order_id, RejectReason.UNSUPPORTED_ORDER_TYPE)
        if post_only and (order_type is MARKET or tif is IOC or tif is FOK):
            return self._reject(order_id, RejectReason.POST_ONLY_NEEDS_RESTING_LIMIT)

        side, account, stp = command.side, command.account, command.stp
        is_buy = side is BUY
        seq = self._seq
        self._seq = seq + 1
        events: list[Event] = [
            _event(
                OrderAccepted,
                (
                    seq,
                    order_id,
                    account,
                    book.name,
                    side,
                    price,
                    quantity,
                    order_type,
                    tif,
                    post_only,
                    stp,
                    (),  # legs
                    False,  # flipped
                ),
            )
        ]
        # Most orders do not cross: one look at the opposite touch decides (`BookSide.best`,
        # without the call when the top level is live).
        opposite = book.asks if is_buy else book.bids
        heap = opposite.heap
        best = opposite.levels[heap[0]] if heap else None
        if best is not None and best.head is None:
            best = opposite.best()
        order: RestingOrder | None = None
        if best is not None and (
            price is None or (best.price <= price if is_buy else best.price >= price)
        ):
            order = RestingOrder(
                order_id, account, is_buy, price, quantity, stp, book, seq, post_only
            )
            if post_only:
                self._close(order, CancelReason.POST_ONLY_WOULD_CROSS, events)
                return events
            if tif is FOK and not self._fillable(book, order):
                self._close(order, CancelReason.FOK_UNFILLED, events)
                return events
            self._match(book, order, events)
            quantity = order.remaining
            if not quantity:
                return events
        elif tif is FOK:
            self._cancel_unrested(order_id, quantity, CancelReason.FOK_UNFILLED, events)
            return events
        if tif is IOC or tif is FOK or price is None:
            self._cancel_unrested(order_id, quantity, CancelReason.IOC_REMAINDER, events)
            return events
        # rest: BookSide.add and PriceLevel.append, inlined on the hot path
        book_side = book.bids if is_buy else book.asks
        key = -price if is_buy else price
        level = book_side.levels.get(key)
        if level is None:
            level = book_side.levels[key] = PriceLevel(price, key)
            heappush(book_side.heap, key)
        tail = level.tail
        if order is None:
            # An order that rests without trading (most of them): built without the call to
            # `RestingOrder.__init__` (a third cheaper), every slot set here.
            order = _new_order(RestingOrder)
            order.order_id = order_id
            order.account = account
            order.is_buy = is_buy
            order.price = price
            order.quantity = order.remaining = quantity
            order.stp = stp
            order.book = book
            order.post_only = post_only
            order.combo = None
            order.priority = seq
            order.next = None
        order.level = level
        order.prev = tail
        level.total += quantity
        if tail is None:
            level.head = order
        else:
            tail.next = order
        level.tail = order
        self._orders[order_id] = order
        return events

    def cancel(self, command: CancelOrder) -> list[Event]:
        order_id = command.order_id
        order = self._orders.pop(order_id, None)
        if order is None:
            return self._reject(order_id, RejectReason.UNKNOWN_ORDER)
        # PriceLevel.unlink, inlined on the hot path; the order itself is dropped, so its own
        # links need no clearing
        level = order.level
        assert level is not None
        level.total -= order.remaining
        prev, following = order.prev, order.next
        if prev is None:
            level.head = following
        else:
            prev.next = following
        if following is None:
            level.tail = prev
        else:
            following.prev = prev
        seq = self._seq
        self._seq = seq + 1
        return [_event(OrderCancelled, (seq, order_id, order.remaining, command.reason))]

    def amend(self, command: AmendOrder) -> list[Event]:
        order_id = command.order_id
        order = self._orders.get(order_id)
        if order is None:
            return self._reject(order_id, RejectReason.UNKNOWN_ORDER)
        new_price, quantity = command.price, command.quantity
        if new_price is None and quantity is None:
            return self._reject(order_id, RejectReason.NOTHING_TO_AMEND)
        combo = order.combo
        assert combo is None or isinstance(combo, ComboDetails)
        price = old_price = order.price
        if new_price is not None:
            price = -new_price if combo is not None and combo.flipped else new_price
            if combo is None and price <= 0:
                return self._reject(order_id, RejectReason.INVALID_PRICE)
        old_quantity = order.quantity
        if quantity is None:
            quantity = old_quantity
        elif quantity <= 0:
            return self._reject(order_id, RejectReason.INVALID_QUANTITY)
        if price == old_price and quantity == old_quantity:
            return self._reject(order_id, RejectReason.NOTHING_TO_AMEND)
        filled = old_quantity - order.remaining
        if quantity <= filled:
            return self._reject(order_id, RejectReason.AMEND_BELOW_FILLED)

        seq = self._seq
        self._seq = seq + 1
        remaining = quantity - filled
        if price == old_price and quantity < old_quantity:
            level = order.level
            assert level is not None
            level.total -= order.remaining - remaining
            order.quantity, order.remaining = quantity, remaining
            return [
                _event(OrderAmended, (seq, order_id, price, quantity, remaining, True))  # kept
            ]

        self._remove(order)
        order.price, order.quantity, order.remaining, order.priority = (
            price,
            quantity,
            remaining,
            seq,
        )
        events: list[Event] = [
            _event(OrderAmended, (seq, order_id, price, quantity, remaining, False))
        ]
        book = order.book
        if order.post_only and self._would_cross(book, order):
            self._close(order, CancelReason.POST_ONLY_WOULD_CROSS, events)
            return events
        if combo is None:
            self._match(book, order, events)
        else:
            self._match_combo(order, combo, events)
        if order.remaining:
            book.side(order.is_buy).add(order)
            self._orders[order_id] = order
        return events

    def place_combo(self, command: PlaceCombo) -> list[Event]:
        order_id = command.order_id
        if order_id in self._orders:
            return self._reject(order_id, RejectReason.DUPLICATE_ORDER_ID)
        legs = command.legs
        if not 2 <= len(legs) <= MAX_LEGS or any(leg.ratio < 1 for leg in legs):
            return self._reject(order_id, RejectReason.INVALID_LEGS)
        if len({leg.instrument for leg in legs}) != len(legs):
            return self._reject(order_id, RejectReason.INVALID_LEGS)
        if any(leg.instrument not in self._books for leg in legs):
            return self._reject(order_id, RejectReason.UNKNOWN_INSTRUMENT)
        if command.quantity <= 0:
            return self._reject(order_id, RejectReason.INVALID_QUANTITY)
        tif = command.time_in_force
        strategy, flipped = normalise(legs)
        strategy_book = self._strategies.get(strategy.key)
        if strategy_book is None:
            strategy_book = self._strategies[strategy.key] = StrategyBook(
                strategy,
                StrategyUnits.of(strategy.legs, self._rules),
                [self._books[leg.instrument] for leg in strategy.legs],
            )
        is_buy = (command.side is BUY) != flipped
        price = -command.price if flipped else command.price
        combo = ComboDetails(strategy_book, flipped, tif)
        seq = self._seq
        self._seq = seq + 1
        order = RestingOrder(
            order_id,
            command.account,
            is_buy,
            price,
            command.quantity,
            command.stp,
            strategy_book.book,
            seq,
            combo=combo,
        )
        events: list[Event] = [
            OrderAccepted(
                seq,
                order_id,
                command.account,
                strategy.key,
                BUY if is_buy else SELL,
                price,
                command.quantity,
                LIMIT,
                tif,
                False,
                command.stp,
                strategy.legs,
                flipped,
            )
        ]
        if tif is FOK and not self._combo_fillable(order, strategy_book):
            self._close(order, CancelReason.FOK_UNFILLED, events)
            return events
        self._match_combo(order, combo, events)
        if order.remaining:
            if tif is IOC or tif is FOK:
                self._close(order, CancelReason.IOC_REMAINDER, events)
            else:
                strategy_book.book.side(is_buy).add(order)
                self._orders[order_id] = order
        return events

    # -- single-instrument matching ------------------------------------------------------

    def _match(self, book: OrderBook, taker: RestingOrder, events: list[Event]) -> None:
        # The hot path: locals, no helper calls per trade (`BookSide.best` and
        # `PriceLevel.unlink` inlined). The sequence and the taker's remaining live in locals
        # and are written back around every call that numbers events itself.
        is_buy = taker.is_buy
        opposite = book.asks if is_buy else book.bids
        heap, levels = opposite.heap, opposite.levels
        limit = taker.price
        aggressor = BUY if is_buy else SELL
        orders = self._orders
        name = book.name
        taker_id, taker_account = taker.order_id, taker.account
        append = events.append
        seq = self._seq
        taker_left = taker.remaining
        while taker_left and heap:
            level = levels[heap[0]]
            maker = level.head
            if maker is None:  # an emptied level reached the top: drop it
                heappop(heap)
                del levels[level.key]
                continue
            price = level.price
            if limit is not None and (price > limit if is_buy else price < limit):
                break
            # `maker` is always the level's head here: makers before it were filled or
            # cancelled and unlinked, or the taker stopped.
            while maker is not None:
                following = maker.next
                if maker.account == taker_account:
                    taker.remaining = taker_left
                    self._seq = seq
                    self._self_trade(taker, maker, events)
                    seq = self._seq
                    taker_left = taker.remaining
                    if not taker_left:
                        break
                    maker = following
                    continue
                maker_left = maker.remaining
                if taker_left < maker_left:
                    quantity = taker_left
                    maker_left -= quantity
                    taker_left = 0
                else:
                    quantity = maker_left
                    maker_left = 0
                    taker_left -= quantity
                maker.remaining = maker_left
                level.total -= quantity
                append(
                    _event(
                        Trade,
                        (
                            seq,
                            name,
                            price,
                            quantity,
                            aggressor,
                            maker.order_id,
                            maker.account,
                            maker_left,
                            taker_id,
                            taker_account,
                            taker_left,
                            False,  # implied
                        ),
                    )
                )
                seq += 1
                if not maker_left:
                    level.head = following
                    if following is None:
                        level.tail = None
                    else:
                        following.prev = None
                    del orders[maker.order_id]
                if not taker_left:
                    break
                maker = following
        taker.remaining = taker_left
        self._seq = seq

    def _would_cross(self, book: OrderBook, order: RestingOrder) -> bool:
        level = book.side(not order.is_buy).best()
        return level is not None and _crosses(order.is_buy, level.price, order.price)

    def _fillable(self, book: OrderBook, taker: RestingOrder) -> bool:
        """Would the taker fill completely now (FOK)? Walks without changing anything."""
        need = taker.remaining
        for level in book.side(not taker.is_buy).in_priority():
            if not _crosses(taker.is_buy, level.price, taker.price):
                return False
            maker = level.head
            while maker is not None:
                if maker.account == taker.account:
                    if taker.stp is not CANCEL_OLDEST:  # the taker would lose quantity
                        return False
                else:
                    need -= maker.remaining
                    if need <= 0:
                        return True
                maker = maker.next
        return False

    def _self_trade(self, taker: RestingOrder, maker: RestingOrder, events: list[Event]) -> None:
        mode = taker.stp
        if mode is CANCEL_OLDEST or mode is CANCEL_BOTH:
            self._remove(maker)
            self._close(maker, SELF_TRADE, events)
        if mode is CANCEL_NEWEST or mode is CANCEL_BOTH:
            self._close(taker, SELF_TRADE, events)
        if mode is SelfTradePrevention.DECREMENT_AND_CANCEL:
            quantity = min(taker.remaining, maker.remaining)
            level = maker.level
            assert level is not None
            level.total -= quantity  # the maker's part; the taker rests in no level
            for order in (maker, taker):
                order.quantity -= quantity
                order.remaining -= quantity
                seq = self._seq
                self._seq = seq + 1
                if order.remaining:
                    events.append(
                        OrderReduced(seq, order.order_id, quantity, order.remaining, SELF_TRADE)
                    )
                else:
                    events.append(OrderCancelled(seq, order.order_id, quantity, SELF_TRADE))
            if not maker.remaining:
                level.unlink(maker)
                del self._orders[maker.order_id]

    def _remove(self, order: RestingOrder) -> None:
        """Take an open order out of its level and the index (its remaining is unchanged)."""
        level = order.level
        assert level is not None
        level.unlink(order)
        del self._orders[order.order_id]

    def _cancel_unrested(
        self, order_id: str, quantity: int, reason: CancelReason, events: list[Event]
    ) -> None:
        """Cancel what is left of an accepted order that does not rest (IOC, FOK, market)."""
        seq = self._seq
        self._seq = seq + 1
        events.append(_event(OrderCancelled, (seq, order_id, quantity, reason)))

    def _close(self, order: RestingOrder, reason: CancelReason, events: list[Event]) -> None:
        """Cancel what remains of an order that is not (or no longer) in a book."""
        seq = self._seq
        self._seq = seq + 1
        events.append(_event(OrderCancelled, (seq, order.order_id, order.remaining, reason)))
        order.remaining = 0

    # -- combo matching ------------------------------------------------------------------

    def _match_combo(self, order: RestingOrder, combo: ComboDetails, events: list[Event]) -> None:
        strategy = combo.strategy
        opposite = strategy.book.side(not order.is_buy)
        is_buy, limit = order.is_buy, order.price
        while order.remaining:
            level = opposite.best()
            if level is not None and not _crosses(is_buy, level.price, limit):
                level = None
            implied = self._implied_quote(order, strategy)
            if implied is not None and not _crosses(is_buy, implied[0], limit):
                implied = None
            if level is not None and (
                implied is None or _crosses(is_buy, level.price, implied[0])  # ties: resting
            ):
                maker = level.head
                assert maker is not None
                if maker.account == order.account:
                    self._self_trade(order, maker, events)
                else:
                    self._combo_trade(order, maker, level, events)
            elif implied is not None:
                self._implied_fill(order, strategy, implied[0], implied[1], events)
            else:
                return

    def _combo_fillable(self, order: RestingOrder, strategy: StrategyBook) -> bool:
        """Would a FOK combo fill completely now? Resting combos and implied liquidity come
        from different books, so what each can give within the limit adds up whatever the
        order of matching. A resting combo of the same account within the limit makes the
        answer no (unless the order cancels the resting one), as self-trade prevention could
        stop the order part-way."""
        need = order.remaining
        for level in strategy.book.side(not order.is_buy).in_priority():
            if not _crosses(order.is_buy, level.price, order.price) or need <= 0:
                break
            for maker in level.orders():
                if maker.account == order.account:
                    if order.stp is not CANCEL_OLDEST:
                        return False
                else:
                    need -= maker.remaining
        return need <= 0 or self._implied_capacity(order, strategy, need) >= need

    def _implied_capacity(self, order: RestingOrder, strategy: StrategyBook, need: int) -> int:
        """How many strategy lots (up to `need`) implied matching would fill now, lot by lot
        as `_implied_quote` prices them, without touching the books."""
        runs: list[list[list[int]]] = []  # per leg: [price, quantity] in priority, to the wall
        for leg_book, leg in zip(strategy.leg_books, strategy.strategy.legs, strict=True):
            leg_runs: list[list[int]] = []
            for level in leg_book.side((leg.side is SELL) == order.is_buy).in_priority():
                available = 0
                walled = False
                for maker in level.orders():
                    if maker.account == order.account:
                        walled = True
                        break
                    available += maker.remaining
                if available:
                    leg_runs.append([level.price, available])
                if walled:
                    break
            runs.append(leg_runs)
        units = strategy.units
        filled = 0
        while filled < need:
            net = Fraction(0)
            run = need - filled
            for leg_runs, sign, factor, per_unit in zip(
                runs, strategy.signs, units.price_factors, units.lots_per_unit, strict=True
            ):
                if not leg_runs:
                    return filled
                if leg_runs[0][1] >= per_unit:
                    run = min(run, leg_runs[0][1] // per_unit)
                    net += sign * factor * leg_runs[0][0]
                    continue
                run, left, cost = 1, per_unit, 0
                for price, quantity in leg_runs:
                    take = min(left, quantity)
                    cost += take * price
                    left -= take
                    if not left:
                        break
                if left:
                    return filled
                net += Fraction(sign * factor * cost, per_unit)
            if not _crosses(order.is_buy, net, order.price):
                return filled
            for leg_runs, per_unit in zip(runs, units.lots_per_unit, strict=True):
                left = run * per_unit
                while left:
                    take = min(left, leg_runs[0][1])
                    leg_runs[0][1] -= take
                    left -= take
                    if not leg_runs[0][1]:
                        leg_runs.pop(0)
            filled += run
        return filled

    def _combo_trade(
        self, taker: RestingOrder, maker: RestingOrder, level: PriceLevel, events: list[Event]
    ) -> None:
        quantity = min(taker.remaining, maker.remaining)
        taker.remaining -= quantity
        maker.remaining -= quantity
        level.total -= quantity
        price = Fraction(level.price)
        self._combo_fill(taker, quantity, price, Liquidity.TAKER, maker.order_id, None, events)
        self._combo_fill(maker, quantity, price, Liquidity.MAKER, taker.order_id, None, events)
        if not maker.remaining:
            level.unlink(maker)
            del self._orders[maker.order_id]

    def _combo_fill(
        self,
        order: RestingOrder,
        quantity: int,
        price: Fraction,
        liquidity: Liquidity,
        counterparty: str | None,
        legs: tuple[LegFill, ...] | None,
        events: list[Event],
    ) -> None:
        combo = order.combo
        assert isinstance(combo, ComboDetails)
        strategy = combo.strategy
        if legs is None:  # combo against combo: the legs' quantities, no leg prices
            legs = tuple(
                LegFill(leg.instrument, leg.side if order.is_buy else leg.side.opposite, q, None)
                for leg, q in zip(
                    strategy.strategy.legs,
                    (quantity * per_unit for per_unit in strategy.units.lots_per_unit),
                    strict=True,
                )
            )
        client_buys = order.is_buy != combo.flipped
        seq = self._seq
        self._seq = seq + 1
        events.append(
            ComboFill(
                seq,
                order.order_id,
                order.account,
                strategy.strategy.key,
                BUY if client_buys else SELL,
                quantity,
                -price if combo.flipped else price,
                order.remaining,
                liquidity,
                counterparty,
                legs,
            )
        )

    def _implied_quote(
        self, order: RestingOrder, strategy: StrategyBook
    ) -> tuple[Fraction, int] | None:
        """Net price (strategy ticks, normalised terms) of the next implied strategy lot and
        how many lots in a row have that price; None when some leg cannot fill a lot."""
        net = Fraction(0)
        run = order.remaining
        spans_levels = False
        account = order.account
        for leg_book, leg, sign, factor, per_unit in zip(
            strategy.leg_books,
            strategy.strategy.legs,
            strategy.signs,
            strategy.units.price_factors,
            strategy.units.lots_per_unit,
            strict=True,
        ):
            side = leg_book.side((leg.side is BUY) != order.is_buy)  # the side we take from
            level = side.best()
            if level is None:
                return None
            available = 0
            maker = level.head
            while maker is not None and maker.account != account:
                available += maker.remaining
                maker = maker.next
            if available >= per_unit:
                run = min(run, available // per_unit)
                net += sign * factor * level.price
                continue
            cost = _cost_of(side, account, per_unit)
            if cost is None:
                return None
            spans_levels = True
            net += Fraction(sign * factor * cost, per_unit)
        return net, 1 if spans_levels else run

    def _implied_fill(
        self,
        order: RestingOrder,
        strategy: StrategyBook,
        net: Fraction,
        lots: int,
        events: list[Event],
    ) -> None:
        aggressor_left = order.remaining - lots
        leg_fills: list[LegFill] = []
        for leg_book, leg, per_unit in zip(
            strategy.leg_books, strategy.strategy.legs, strategy.units.lots_per_unit, strict=True
        ):
            takes_buy = (leg.side is BUY) == order.is_buy
            side = leg_book.side(not takes_buy)
            need = lots * per_unit
            while need:
                level = side.best()
                assert level is not None
                maker = level.head
                assert maker is not None and maker.account != order.account
                quantity = min(need, maker.remaining)
                need -= quantity
                maker.remaining -= quantity
                level.total -= quantity
                seq = self._seq
                self._seq = seq + 1
                events.append(
                    Trade(
                        seq,
                        leg_book.name,
                        level.price,
                        quantity,
                        BUY if takes_buy else SELL,
                        maker.order_id,
                        maker.account,
                        maker.remaining,
                        order.order_id,
                        order.account,
                        aggressor_left,
                        implied=True,
                    )
                )
                leg_fills.append(
                    LegFill(leg.instrument, BUY if takes_buy else SELL, quantity, level.price)
                )
                if not maker.remaining:
                    level.unlink(maker)
                    del self._orders[maker.order_id]
        order.remaining = aggressor_left
        self._combo_fill(order, lots, net, Liquidity.TAKER, None, tuple(leg_fills), events)


def _cost_of(side: BookSide, account: str, quantity: int) -> int | None:
    """Sum of price * quantity of the next `quantity` lots on `side` in priority order, up to
    the first order of `account`; None when there are not enough."""
    cost = 0
    for level in side.in_priority():
        maker = level.head
        while maker is not None:
            if maker.account == account:
                return None
            take = min(quantity, maker.remaining)
            cost += take * level.price
            quantity -= take
            if not quantity:
                return cost
            maker = maker.next
    return None
