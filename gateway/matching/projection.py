"""Rebuild books from the engine's event log (recovery, replicas, market data).

Applying every event of an engine in order gives the same open orders, prices, remaining
quantities and queue order as the engine's own `snapshot`. The rules it relies on:
an accepted order with a price is in its book (takers are removed again by their trades or
cancellation); a `Trade` reduces the orders of its own book (an implied trade's taker is a
combo, reduced by its `ComboFill`); an amend that loses priority moves the order to the back
at its new price; a cancellation closes the order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from gateway.domain.orders import Side
from gateway.matching.book import BookSnapshot, LevelSnapshot
from gateway.matching.events import (
    ComboFill,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderReduced,
    Trade,
)


class _Open:
    __slots__ = ("book", "price", "priority", "remaining", "side")

    def __init__(self, book: str, side: Side, price: int, remaining: int, priority: int):
        self.book = book
        self.side = side
        self.price = price
        self.remaining = remaining
        self.priority = priority


class BookProjection:
    """The open orders of every book, as the events say."""

    def __init__(self, events: Iterable[Event] = ()) -> None:
        self._open: dict[str, _Open] = {}
        self.last_seq = 0
        for event in events:
            self.apply(event)

    def apply(self, event: Event) -> None:
        if event.seq <= self.last_seq:
            raise ValueError(f"event {event.seq} is not after {self.last_seq}")
        self.last_seq = event.seq
        if isinstance(event, OrderAccepted):
            if event.price is not None:
                self._open[event.order_id] = _Open(
                    event.book, event.side, event.price, event.quantity, event.seq
                )
        elif isinstance(event, Trade):
            self._set(event.maker_order_id, event.maker_remaining, event.book)
            if not event.implied:
                self._set(event.taker_order_id, event.taker_remaining, event.book)
        elif isinstance(event, ComboFill | OrderReduced):
            self._set(event.order_id, event.remaining, None)
        elif isinstance(event, OrderAmended):
            order = self._open.get(event.order_id)
            if order is not None:
                if event.price is not None:
                    order.price = event.price
                if not event.priority_kept:
                    order.priority = event.seq
                self._set(event.order_id, event.remaining, None)
        elif isinstance(event, OrderCancelled):
            self._open.pop(event.order_id, None)

    def _set(self, order_id: str, remaining: int, book: str | None) -> None:
        order = self._open.get(order_id)
        if order is None or (book is not None and order.book != book):
            return
        if remaining:
            order.remaining = remaining
        else:
            del self._open[order_id]

    def books(self) -> set[str]:
        return {order.book for order in self._open.values()}

    def snapshot(self, book: str) -> BookSnapshot:
        levels: dict[tuple[Side, int], list[tuple[int, str, int]]] = defaultdict(list)
        for order_id, order in self._open.items():
            if order.book == book:
                levels[order.side, order.price].append((order.priority, order_id, order.remaining))

        def side(which: Side) -> tuple[LevelSnapshot, ...]:
            prices = sorted((price for s, price in levels if s is which), reverse=which is Side.BUY)
            return tuple(
                LevelSnapshot(
                    price,
                    tuple((order_id, left) for _, order_id, left in sorted(levels[which, price])),
                )
                for price in prices
            )

        return BookSnapshot(side(Side.BUY), side(Side.SELL))
