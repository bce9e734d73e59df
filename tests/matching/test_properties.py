"""Properties over random command sequences: never crossed, quantities conserve, fills respect
limits and priority, replay is deterministic and the event log rebuilds the books."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gateway.domain.instruments import TradingRules
from gateway.domain.orders import Leg, OrderType, Side, TimeInForce
from gateway.matching import (
    AmendOrder,
    BookProjection,
    CancelOrder,
    ComboFill,
    Command,
    Event,
    MatchingEngine,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderReduced,
    PlaceCombo,
    PlaceOrder,
    SelfTradePrevention,
    Trade,
)

INSTRUMENTS = ("C-3000", "C-3200")
RULES = TradingRules(Decimal("0.01"), Decimal("0.01"), Decimal("0.01"))
RATIO = (Leg("C-3000", Side.BUY, 1), Leg("C-3200", Side.SELL, 2))
MIRROR = tuple(Leg(leg.instrument, leg.side.opposite, leg.ratio) for leg in RATIO)
ACCOUNTS = ("x", "y", "z")


def new_engine() -> MatchingEngine:
    return MatchingEngine(dict.fromkeys(INSTRUMENTS, RULES))


@dataclass
class Tracked:
    """What the events say about one order."""

    book: str
    is_buy: bool
    price: int | None  # in the book's terms
    opened: int
    filled: int = 0
    cancelled: int = 0  # cancels, self-trade reductions and amended-away quantity
    closed: bool = False
    combo: bool = False

    @property
    def expected_remaining(self) -> int:
        return self.opened - self.filled - self.cancelled


@dataclass
class Checker:
    """Applies a command's events to the tracked orders, checking them on the way."""

    orders: dict[str, Tracked] = field(default_factory=dict)

    def check(
        self, engine: MatchingEngine, events: list[Event], before: dict[str, list[list[str]]]
    ) -> None:
        gone: set[str] = set()
        for event in events:
            if isinstance(event, OrderAccepted):
                self.orders[event.order_id] = Tracked(
                    event.book,
                    event.side is Side.BUY,
                    event.price,
                    event.quantity,
                    combo=bool(event.legs),
                )
            elif isinstance(event, Trade):
                maker = self.orders[event.maker_order_id]
                assert event.price == maker.price  # trades at the maker's price
                assert event.aggressor_side is (Side.SELL if maker.is_buy else Side.BUY)
                # priority: the maker is the first order of its side (before this command)
                # that this command has not already used up or cancelled
                queue = next(q for q in before[event.book] if event.maker_order_id in q)
                assert next(o for o in queue if o not in gone) == event.maker_order_id
                maker.filled += event.quantity
                assert maker.expected_remaining == event.maker_remaining
                if not event.maker_remaining:
                    gone.add(event.maker_order_id)
                if not event.implied:
                    taker = self.orders[event.taker_order_id]
                    if taker.price is not None:
                        assert (
                            (event.price <= taker.price)
                            if taker.is_buy
                            else (event.price >= taker.price)
                        )
                    taker.filled += event.quantity
                    assert taker.expected_remaining == event.taker_remaining
                assert event.maker_account != event.taker_account  # no self-trades
            elif isinstance(event, ComboFill):
                order = self.orders[event.order_id]
                order.filled += event.quantity
                assert order.expected_remaining == event.remaining
                assert order.price is not None
                # the client's side and price, back in the book's terms
                price = event.price if (event.side is Side.BUY) == order.is_buy else -event.price
                assert (price <= order.price) if order.is_buy else (price >= order.price)
                if not event.remaining:
                    gone.add(event.order_id)
            elif isinstance(event, OrderAmended):
                order = self.orders[event.order_id]
                assert event.quantity - event.remaining == order.filled
                delta = event.remaining - order.expected_remaining
                if delta > 0:
                    order.opened += delta
                else:
                    order.cancelled -= delta
                if event.price is not None:
                    order.price = event.price
            elif isinstance(event, OrderReduced):
                order = self.orders[event.order_id]
                order.cancelled += event.quantity
                assert order.expected_remaining == event.remaining > 0
            elif isinstance(event, OrderCancelled):
                order = self.orders[event.order_id]
                assert event.quantity == order.expected_remaining
                order.cancelled += event.quantity
                order.closed = True
                gone.add(event.order_id)
        for event in events:
            if isinstance(event, OrderAccepted) and event.time_in_force is TimeInForce.FOK:
                filled = self.orders[event.order_id].filled
                assert filled in (0, event.quantity), "fill or kill filled in part"
        for order_id, order in self.orders.items():
            view = engine.order(order_id)
            remaining = 0 if view is None else view.remaining
            assert order.expected_remaining == remaining, order_id  # quantities conserve
            assert order.opened == remaining + order.filled + order.cancelled


def queues(engine: MatchingEngine) -> dict[str, list[list[str]]]:
    result = {}
    for book in engine.books():
        snapshot = engine.snapshot(book)
        result[book] = [
            [order_id for level in side for order_id, _ in level.orders]
            for side in (snapshot.bids, snapshot.asks)
        ]
    return result


class MatchingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = new_engine()
        self.commands: list[Command] = []
        self.events: list[Event] = []
        self.checker = Checker()
        self.next_id = 0

    def run(self, command: Command) -> None:
        before = queues(self.engine)
        events = self.engine.execute(command)
        assert [e.seq for e in events] == list(
            range(len(self.events) + 1, len(self.events) + 1 + len(events))
        )
        self.checker.check(self.engine, events, before)
        self.commands.append(command)
        self.events.extend(events)

    def fresh_id(self) -> str:
        self.next_id += 1
        return f"o{self.next_id}"

    @rule(
        instrument=st.sampled_from(INSTRUMENTS),
        side=st.sampled_from(Side),
        price=st.integers(95, 105),
        quantity=st.integers(1, 10),
        account=st.sampled_from(ACCOUNTS),
        tif=st.sampled_from([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK]),
        post_only=st.booleans(),
        stp=st.sampled_from(SelfTradePrevention),
    )
    def place_limit(
        self,
        instrument: str,
        side: Side,
        price: int,
        quantity: int,
        account: str,
        tif: TimeInForce,
        post_only: bool,
        stp: SelfTradePrevention,
    ) -> None:
        post_only = post_only and tif is TimeInForce.GTC
        self.run(
            PlaceOrder(
                self.fresh_id(),
                account,
                instrument,
                side,
                quantity,
                price,
                OrderType.LIMIT,
                tif,
                post_only,
                stp,
            )
        )

    @rule(
        instrument=st.sampled_from(INSTRUMENTS),
        side=st.sampled_from(Side),
        quantity=st.integers(1, 15),
        account=st.sampled_from(ACCOUNTS),
        tif=st.sampled_from([TimeInForce.IOC, TimeInForce.FOK]),
        stp=st.sampled_from(SelfTradePrevention),
    )
    def place_market(
        self,
        instrument: str,
        side: Side,
        quantity: int,
        account: str,
        tif: TimeInForce,
        stp: SelfTradePrevention,
    ) -> None:
        self.run(
            PlaceOrder(
                self.fresh_id(),
                account,
                instrument,
                side,
                quantity,
                None,
                OrderType.MARKET,
                tif,
                False,
                stp,
            )
        )

    @rule(
        mirror=st.booleans(),
        side=st.sampled_from(Side),
        price=st.integers(-112, -88),
        quantity=st.integers(1, 5),
        account=st.sampled_from(ACCOUNTS),
        tif=st.sampled_from([TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK]),
        stp=st.sampled_from(SelfTradePrevention),
    )
    def place_combo(
        self,
        mirror: bool,
        side: Side,
        price: int,
        quantity: int,
        account: str,
        tif: TimeInForce,
        stp: SelfTradePrevention,
    ) -> None:
        legs, side, price = (MIRROR, side.opposite, -price) if mirror else (RATIO, side, price)
        self.run(PlaceCombo(self.fresh_id(), account, legs, side, quantity, price, tif, stp))

    @precondition(lambda self: self.next_id > 0)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        order_id = f"o{data.draw(st.integers(1, self.next_id))}"
        self.run(CancelOrder(order_id))

    @precondition(lambda self: self.next_id > 0)
    @rule(
        data=st.data(),
        price=st.none() | st.integers(95, 105),
        quantity=st.none() | st.integers(1, 12),
    )
    def amend(self, data: st.DataObject, price: int | None, quantity: int | None) -> None:
        order_id = f"o{data.draw(st.integers(1, self.next_id))}"
        view = self.engine.order(order_id)
        if view is not None and view.price is not None and view.price < 0 and price is not None:
            price = -price  # combos: keep the net price in a sensible range
        self.run(AmendOrder(order_id, price, quantity))

    @invariant()
    def never_crossed(self) -> None:
        for book in self.engine.books():
            bid, ask = self.engine.best_bid(book), self.engine.best_ask(book)
            assert bid is None or ask is None or bid < ask, book

    @invariant()
    def events_rebuild_the_books(self) -> None:
        projection = BookProjection(self.events)
        for book in self.engine.books():
            assert projection.snapshot(book) == self.engine.snapshot(book)

    @invariant()
    def depth_is_the_sum_of_the_orders(self) -> None:
        # the levels' running totals against the orders themselves, at every depth cut
        for book in self.engine.books():
            snapshot = self.engine.snapshot(book)
            full = [
                [(level.price, sum(left for _, left in level.orders)) for level in side]
                for side in (snapshot.bids, snapshot.asks)
            ]
            for count in (1, 3, 50):
                bids, asks = self.engine.depth(book, count)
                assert (bids, asks) == (full[0][:count], full[1][:count]), book

    def teardown(self) -> None:
        replay = new_engine()
        events = [event for command in self.commands for event in replay.execute(command)]
        assert events == self.events  # deterministic


MatchingMachine.TestCase.settings = settings(
    max_examples=120,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMatching = MatchingMachine.TestCase


def random_commands(seed: int, count: int) -> list[Command]:
    rng = random.Random(seed)
    commands: list[Command] = []
    for n in range(1, count + 1):
        roll = rng.random()
        side = rng.choice(list(Side))
        account = rng.choice(ACCOUNTS)
        if roll < 0.5:
            commands.append(
                PlaceOrder(
                    f"o{n}",
                    account,
                    rng.choice(INSTRUMENTS),
                    side,
                    rng.randint(1, 10),
                    rng.randint(95, 105),
                    stp=rng.choice(list(SelfTradePrevention)),
                )
            )
        elif roll < 0.6:
            commands.append(
                PlaceOrder(
                    f"o{n}",
                    account,
                    rng.choice(INSTRUMENTS),
                    side,
                    rng.randint(1, 10),
                    None,
                    OrderType.MARKET,
                    TimeInForce.IOC,
                )
            )
        elif roll < 0.7:
            commands.append(
                PlaceCombo(f"o{n}", account, RATIO, side, rng.randint(1, 5), rng.randint(-110, -90))
            )
        elif roll < 0.9:
            commands.append(CancelOrder(f"o{rng.randint(1, n)}"))
        else:
            commands.append(AmendOrder(f"o{rng.randint(1, n)}", rng.randint(95, 105), None))
    return commands


def test_replay_gives_the_same_events_and_the_log_rebuilds_the_books() -> None:
    commands = random_commands(seed=11, count=3000)
    first, second = new_engine(), new_engine()
    first_events = [e for c in commands for e in first.execute(c)]
    second_events = [e for c in commands for e in second.execute(c)]
    assert first_events == second_events
    assert sum(isinstance(e, Trade) for e in first_events) > 100
    assert any(isinstance(e, ComboFill) for e in first_events)
    projection = BookProjection(first_events)
    for book in first.books():
        assert projection.snapshot(book) == first.snapshot(book)
    assert projection.last_seq == first.next_seq - 1
