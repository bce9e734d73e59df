"""The order pipeline: its matching stage (engine operations per second against a
straightforward baseline book in the same run, on the same operations) and, end to end on
devnet, the latency from order submit to confirmed settlement (`bench/settlement_latency.py`).

The mix is exchange-core-like: ~45% resting limit orders, 35% cancels, 10% amends (mostly
quantity reductions that keep priority, some re-pricings), 10% takers (IOC limit and market),
prices clustered near the touch, 50 accounts (so self-trade prevention, cancel-newest, fires
now and then). The sequence is generated once (a pre-pass on the engine tells which orders
are still open, so cancels and amends mostly hit live orders) and then replayed.

Baseline: `sortedcontainers.SortedDict` of price -> `collections.deque` of orders, an order
dict by id, the same rules, the same commands in and the same events out (asserted, sequence
numbers included), so the two differ only in their data structures and code; then each is timed
over the whole sequence, rounds interleaved, best round kept. One run per starting depth of
the book (the generator keeps the depth about constant): the baseline's cancel is a linear
`deque.remove` in the level, so its cost grows with depth while the engine's stays flat.
Prints JSON; the goal is ratio_vs_baseline >= 1.5.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from collections import deque
from decimal import Decimal
from pathlib import Path
from typing import Any

from sortedcontainers import SortedDict  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.domain.instruments import TradingRules
from gateway.domain.orders import OrderType, Side, TimeInForce
from gateway.matching import (
    AmendOrder,
    CancelOrder,
    CancelReason,
    Command,
    Event,
    MatchingEngine,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderRejected,
    PlaceOrder,
    RejectReason,
    SelfTradePrevention,
    Trade,
)

SYMBOL = "WETH/USDC"
RULES = TradingRules(Decimal("0.01"), Decimal("0.001"), Decimal("0.001"))
ACCOUNTS = [f"acct-{n}" for n in range(50)]

# An operation, as both books take it:
# ("place", id, account, is_buy, price, qty) | ("take", id, account, is_buy, price|None, qty)
# | ("cancel", id) | ("amend", id, price|None, qty|None)
Operation = tuple[Any, ...]


def generate(depth: int, count: int, seed: int) -> tuple[list[Operation], list[Operation]]:
    """`depth` resting orders to start from (not timed), then `count` operations."""
    rng = random.Random(seed)
    engine = MatchingEngine({SYMBOL: RULES})
    live: list[str] = []
    mid = 100_000
    operations: list[Operation] = []
    next_id = 0
    operation: Operation
    taker_price: int | None
    for _ in range(depth):
        next_id += 1
        is_buy = rng.random() < 0.5
        offset = min(int(rng.expovariate(0.15)), 60)
        price = mid - 1 - offset if is_buy else mid + 1 + offset
        operation = (
            "place",
            f"o{next_id}",
            rng.choice(ACCOUNTS),
            is_buy,
            price,
            rng.randint(1, 20),
        )
        engine.execute(to_command(operation))
        live.append(operation[1])
        operations.append(operation)
    setup, operations = operations, []

    def pick_live() -> str | None:
        while live:
            index = rng.randrange(len(live))
            live[index], live[-1] = live[-1], live[index]
            order_id = live[-1]
            if engine.order(order_id) is not None:
                return order_id
            live.pop()
        return None

    while len(operations) < count:
        roll = rng.random()
        bid, ask = engine.best_bid(SYMBOL), engine.best_ask(SYMBOL)
        if bid is not None and ask is not None:
            mid = (bid + ask) // 2  # prices cluster around the book's own touch
        if roll < 0.45:
            next_id += 1
            is_buy = rng.random() < 0.5
            offset = min(int(rng.expovariate(0.15)), 60)
            price = mid - 1 - offset if is_buy else mid + 1 + offset
            operation = (
                "place",
                f"o{next_id}",
                rng.choice(ACCOUNTS),
                is_buy,
                price,
                rng.randint(1, 20),
            )
        elif roll < 0.80:
            order_id = pick_live()
            if order_id is None:
                continue
            operation = ("cancel", order_id)
            live.pop()
        elif roll < 0.90:
            order_id = pick_live()
            if order_id is None:
                continue
            view = engine.order(order_id)
            assert view is not None and view.price is not None
            filled = view.quantity - view.remaining
            kind = rng.random()
            if kind < 0.7 and view.remaining > 1:
                operation = ("amend", order_id, None, rng.randint(filled + 1, view.quantity - 1))
            elif kind < 0.9:
                step = rng.randint(1, 3)
                price = view.price + (step if view.side is Side.SELL else -step)
                if rng.random() < 0.3:
                    price = view.price - step if view.side is Side.SELL else view.price + step
                operation = ("amend", order_id, max(price, 1), None)
            else:
                operation = ("amend", order_id, None, view.quantity + rng.randint(1, 5))
        else:
            next_id += 1
            is_buy = rng.random() < 0.5
            taker_price = None if rng.random() < 0.3 else (mid + 3 if is_buy else mid - 3)
            # takers a little larger when the book is deeper than at the start, smaller when
            # shallower: the depth stays about where it started (as in exchange-core's runs)
            largest = 30 if engine.open_order_count > depth else 8
            operation = (
                "take",
                f"o{next_id}",
                rng.choice(ACCOUNTS),
                is_buy,
                taker_price,
                rng.randint(1, largest),
            )
        for event in engine.execute(to_command(operation)):
            if isinstance(event, OrderAccepted) and operation[0] == "place":
                live.append(operation[1])
        operations.append(operation)
    return setup, operations


def to_command(operation: Operation) -> Command:
    kind = operation[0]
    if kind == "place":
        _, order_id, account, is_buy, price, quantity = operation
        return PlaceOrder(
            order_id, account, SYMBOL, Side.BUY if is_buy else Side.SELL, quantity, price
        )
    if kind == "take":
        _, order_id, account, is_buy, price, quantity = operation
        return PlaceOrder(
            order_id,
            account,
            SYMBOL,
            Side.BUY if is_buy else Side.SELL,
            quantity,
            price,
            OrderType.LIMIT if price is not None else OrderType.MARKET,
            TimeInForce.IOC,
        )
    if kind == "cancel":
        return CancelOrder(operation[1])
    return AmendOrder(operation[1], operation[2], operation[3])


class BaselineBook:
    """SortedDict of price -> deque of orders, an order dict by id; an order is the list
    [id, account, is_buy, price, remaining, quantity, side]. It takes the same commands and
    emits the same events as the engine, for what this mix uses (GTC and IOC limit orders,
    IOC market orders, cancels, amends; self-trade prevention cancel-newest)."""

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()  # key: -price
        self.asks: SortedDict = SortedDict()  # key: price
        self.orders: dict[str, list[Any]] = {}
        self.events: list[Event] = []
        self.seq = 1

    def next_seq(self) -> int:
        seq = self.seq
        self.seq = seq + 1
        return seq

    def run(self, commands: list[Command]) -> None:
        for command in commands:
            if type(command) is PlaceOrder:
                self.place(command)
            elif type(command) is CancelOrder:
                self.cancel(command)
            elif type(command) is AmendOrder:
                self.amend(command)
            else:
                raise AssertionError(f"not in the mix: {command}")

    def place(self, command: PlaceOrder) -> None:
        order_id, price = command.order_id, command.price
        assert command.stp is SelfTradePrevention.CANCEL_NEWEST and not command.post_only
        if order_id in self.orders:
            self.events.append(
                OrderRejected(self.next_seq(), order_id, RejectReason.DUPLICATE_ORDER_ID)
            )
            return
        self.events.append(
            OrderAccepted(
                self.next_seq(),
                order_id,
                command.account,
                SYMBOL,
                command.side,
                price,
                command.quantity,
                command.order_type,
                command.time_in_force,
                False,
                command.stp,
            )
        )
        is_buy = command.side is Side.BUY
        order: list[Any] = [
            order_id,
            command.account,
            is_buy,
            price,
            command.quantity,
            command.quantity,
            command.side,
        ]
        self.match(order)
        if order[4]:
            if command.time_in_force is TimeInForce.GTC and price is not None:
                self.rest(order)
            else:
                self.events.append(
                    OrderCancelled(self.next_seq(), order_id, order[4], CancelReason.IOC_REMAINDER)
                )

    def rest(self, order: list[Any]) -> None:
        side = self.bids if order[2] else self.asks
        key = -order[3] if order[2] else order[3]
        level = side.get(key)
        if level is None:
            level = side[key] = deque()
        level.append(order)
        self.orders[order[0]] = order

    def match(self, taker: list[Any]) -> None:
        is_buy, limit = taker[2], taker[3]
        opposite = self.asks if is_buy else self.bids
        while taker[4] and opposite:
            key, level = opposite.peekitem(0)
            price = key if is_buy else -key
            if limit is not None and (price > limit if is_buy else price < limit):
                return
            while level and taker[4]:
                maker = level[0]
                if maker[1] == taker[1]:
                    self.events.append(
                        OrderCancelled(self.next_seq(), taker[0], taker[4], CancelReason.SELF_TRADE)
                    )
                    taker[4] = 0
                    return
                quantity = min(taker[4], maker[4])
                maker[4] -= quantity
                taker[4] -= quantity
                self.events.append(
                    Trade(
                        self.next_seq(),
                        SYMBOL,
                        price,
                        quantity,
                        taker[6],
                        maker[0],
                        maker[1],
                        maker[4],
                        taker[0],
                        taker[1],
                        taker[4],
                    )
                )
                if not maker[4]:
                    level.popleft()
                    del self.orders[maker[0]]
            if not level:
                del opposite[key]

    def unrest(self, order: list[Any]) -> None:
        side = self.bids if order[2] else self.asks
        key = -order[3] if order[2] else order[3]
        level = side[key]
        level.remove(order)
        if not level:
            del side[key]
        del self.orders[order[0]]

    def cancel(self, command: CancelOrder) -> None:
        order = self.orders.get(command.order_id)
        if order is None:
            self.events.append(
                OrderRejected(self.next_seq(), command.order_id, RejectReason.UNKNOWN_ORDER)
            )
            return
        self.unrest(order)
        self.events.append(OrderCancelled(self.next_seq(), order[0], order[4], command.reason))

    def amend(self, command: AmendOrder) -> None:
        order_id, price, quantity = command.order_id, command.price, command.quantity
        order = self.orders.get(order_id)
        reject = None
        if order is None:
            reject = RejectReason.UNKNOWN_ORDER
        else:
            new_price = order[3] if price is None else price
            new_quantity = order[5] if quantity is None else quantity
            filled = order[5] - order[4]
            if new_price == order[3] and new_quantity == order[5]:
                reject = RejectReason.NOTHING_TO_AMEND
            elif new_quantity <= filled:
                reject = RejectReason.AMEND_BELOW_FILLED
        if reject is not None:
            self.events.append(OrderRejected(self.next_seq(), order_id, reject))
            return
        assert order is not None
        remaining = new_quantity - filled
        if new_price == order[3] and new_quantity < order[5]:
            order[4], order[5] = remaining, new_quantity
            self.events.append(
                OrderAmended(self.next_seq(), order_id, new_price, new_quantity, remaining, True)
            )
            return
        self.unrest(order)
        order[3], order[4], order[5] = new_price, remaining, new_quantity
        self.events.append(
            OrderAmended(self.next_seq(), order_id, new_price, new_quantity, remaining, False)
        )
        self.match(order)
        if order[4]:
            self.rest(order)


def run_engine(setup: list[Command], commands: list[Command]) -> tuple[float, list[Event]]:
    engine = MatchingEngine({SYMBOL: RULES})
    execute = engine.execute
    events: list[Event] = []
    extend = events.extend
    for command in setup:
        extend(execute(command))
    gc.collect()
    gc.disable()
    started = time.perf_counter()
    for command in commands:
        extend(execute(command))
    elapsed = time.perf_counter() - started
    gc.enable()
    return elapsed, events


def run_baseline(setup: list[Command], commands: list[Command]) -> tuple[float, list[Event]]:
    book = BaselineBook()
    book.run(setup)
    gc.collect()
    gc.disable()
    started = time.perf_counter()
    book.run(commands)
    elapsed = time.perf_counter() - started
    gc.enable()
    return elapsed, book.events


def measure(depth: int, count: int, rounds: int, seed: int) -> dict[str, Any]:
    setup, operations = generate(depth, count, seed)
    setup_commands = [to_command(operation) for operation in setup]
    commands = [to_command(operation) for operation in operations]

    # Same answer first: the benchmark compares equal work.
    _, engine_events = run_engine(setup_commands, commands)
    _, baseline_events = run_baseline(setup_commands, commands)
    assert engine_events == baseline_events  # the same events, seq numbers included
    timed_events = engine_events[len(setup) :]  # the setup never crosses: one event each
    kinds = {
        kind: sum(op[0] == kind for op in operations)
        for kind in ("place", "cancel", "amend", "take")
    }

    engine_times, baseline_times = [], []
    for _ in range(rounds):  # interleaved
        engine_times.append(run_engine(setup_commands, commands)[0])
        baseline_times.append(run_baseline(setup_commands, commands)[0])
    best_engine, best_baseline = min(engine_times), min(baseline_times)
    return {
        "resting_orders_at_start": len(setup),
        "operations": len(operations),
        "mix": {kind: round(n / len(operations), 3) for kind, n in kinds.items()},
        "events": len(timed_events),
        "trades": sum(isinstance(event, Trade) for event in timed_events),
        "self_trade_cancels": sum(
            isinstance(event, OrderCancelled) and event.reason is CancelReason.SELF_TRADE
            for event in timed_events
        ),
        "same_events_as_baseline": True,
        "engine_ops_per_second": round(len(operations) / best_engine),
        "baseline_ops_per_second": round(len(operations) / best_baseline),
        "ratio_vs_baseline": round(best_baseline / best_engine, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--operations", type=int, default=300_000)
    parser.add_argument(
        "--depths",
        default="1000,5000,20000",
        help="resting orders at the start of each run, comma-separated",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--e2e-trades",
        type=int,
        default=100,
        help="trades for the end-to-end settlement latency on devnet (0: skip)",
    )
    args = parser.parse_args()
    runs = [
        measure(int(depth), args.operations, args.rounds, args.seed)
        for depth in args.depths.split(",")
    ]
    report: dict[str, Any] = {
        "benchmark": "pipeline",
        "matching": {
            "benchmark": "pipeline_matching",
            "goal_ratio_vs_baseline": 1.5,
            "runs": runs,
        },
    }
    if args.e2e_trades > 0:
        from bench.settlement_latency import measure as measure_latency

        report["end_to_end"] = measure_latency(args.e2e_trades)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
