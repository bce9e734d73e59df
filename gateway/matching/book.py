"""The data structure of one price-time priority book (a single instrument or a strategy).

Each side keeps a dict of price level by key, and a binary heap of the keys with lazy
deletion: key = price for asks and -price for bids, so the heap's top is the best level.
A level is a doubly linked list of its orders in arrival order, so the head is the next to
fill and a cancel unlinks in O(1). A level that empties stays in the dict (and its key in the
heap) until it reaches the top, where `best` drops it; a key is in the heap exactly when it
is in the dict, so it is never pushed twice.

Matching rules live in `engine`; this module only stores.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from gateway.matching.commands import SelfTradePrevention


class RestingOrder:
    """An open order. `remaining` is open quantity; `quantity` the total (filled included)
    after amends and self-trade decrements; `priority` the sequence of its arrival at its
    current place in the queue."""

    __slots__ = (
        "account",
        "book",
        "combo",
        "is_buy",
        "level",
        "next",
        "order_id",
        "post_only",
        "prev",
        "price",
        "priority",
        "quantity",
        "remaining",
        "stp",
    )

    def __init__(
        self,
        order_id: str,
        account: str,
        is_buy: bool,
        price: int | None,
        quantity: int,
        stp: SelfTradePrevention,
        book: OrderBook,
        priority: int,
        post_only: bool = False,
        combo: object | None = None,
    ) -> None:
        self.order_id = order_id
        self.account = account
        self.is_buy = is_buy
        self.price = price
        self.quantity = quantity
        self.remaining = quantity
        self.stp = stp
        self.book = book
        self.post_only = post_only
        self.combo = combo  # the engine's combo details, None for single-instrument orders
        self.priority = priority
        self.level: PriceLevel | None = None
        self.prev: RestingOrder | None = None
        self.next: RestingOrder | None = None


class PriceLevel:
    """`total`: the remaining lots of the level's orders, kept by every change of a resting
    order's remaining (append, unlink, fills, reductions), so depth reads no order."""

    __slots__ = ("head", "key", "price", "tail", "total")

    def __init__(self, price: int, key: int) -> None:
        self.price = price
        self.key = key
        self.head: RestingOrder | None = None
        self.tail: RestingOrder | None = None
        self.total = 0

    def append(self, order: RestingOrder) -> None:
        order.level = self
        self.total += order.remaining
        order.next = None
        tail = self.tail
        order.prev = tail
        if tail is None:
            self.head = order
        else:
            tail.next = order
        self.tail = order

    def unlink(self, order: RestingOrder) -> None:
        """Remove `order` from the level (its remaining leaves the level's total)."""
        self.total -= order.remaining
        prev, nxt = order.prev, order.next
        if prev is None:
            self.head = nxt
        else:
            prev.next = nxt
        if nxt is None:
            self.tail = prev
        else:
            nxt.prev = prev
        order.level = order.prev = order.next = None

    def orders(self) -> list[RestingOrder]:
        result = []
        order = self.head
        while order is not None:
            result.append(order)
            order = order.next
        return result


# levels up to which `top` sorts the side (measured: 400 levels, 20 against 48 µs)
_SORT_WHOLE_SIDE = 1000


class BookSide:
    __slots__ = ("heap", "levels", "sign")

    def __init__(self, is_buy: bool) -> None:
        self.sign = -1 if is_buy else 1
        self.levels: dict[int, PriceLevel] = {}
        self.heap: list[int] = []

    def best(self) -> PriceLevel | None:
        heap, levels = self.heap, self.levels
        while heap:
            level = levels[heap[0]]
            if level.head is not None:
                return level
            heapq.heappop(heap)
            del levels[level.key]
        return None

    def add(self, order: RestingOrder) -> None:
        price = order.price
        assert price is not None
        key = price * self.sign
        level = self.levels.get(key)
        if level is None:
            level = self.levels[key] = PriceLevel(price, key)
            heapq.heappush(self.heap, key)
        level.append(order)

    def top(self, count: int) -> list[PriceLevel]:
        """The best `count` non-empty levels, best first. Up to about a thousand levels a
        sort in C beats `nsmallest`'s loop in Python (4 against 18 µs for 50 of 100); past
        that, the whole side is not sorted."""
        levels = self.levels
        live = [k for k, level in levels.items() if level.head is not None]
        keys = (
            sorted(live)[:count] if len(live) <= _SORT_WHOLE_SIDE else heapq.nsmallest(count, live)
        )
        return [levels[key] for key in keys]

    def in_priority(self) -> list[PriceLevel]:
        """Non-empty levels, best first (a sort: for the slow paths only)."""
        return [
            self.levels[key] for key in sorted(self.levels) if self.levels[key].head is not None
        ]


@dataclass(frozen=True, slots=True)
class LevelSnapshot:
    price: int
    orders: tuple[tuple[str, int], ...]  # (order id, remaining) in priority order


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    bids: tuple[LevelSnapshot, ...]  # best first
    asks: tuple[LevelSnapshot, ...]


class OrderBook:
    __slots__ = ("asks", "bids", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.bids = BookSide(True)
        self.asks = BookSide(False)

    def side(self, is_buy: bool) -> BookSide:
        return self.bids if is_buy else self.asks

    def snapshot(self) -> BookSnapshot:
        def levels(side: BookSide) -> tuple[LevelSnapshot, ...]:
            return tuple(
                LevelSnapshot(
                    level.price,
                    tuple((order.order_id, order.remaining) for order in level.orders()),
                )
                for level in side.in_priority()
            )

        return BookSnapshot(levels(self.bids), levels(self.asks))
