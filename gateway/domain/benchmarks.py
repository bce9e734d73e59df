"""The market a parent order arrived in: the benchmark its execution is measured against."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from gateway.domain.market import OrderBook
from gateway.domain.orders import Side


@dataclass(frozen=True, slots=True)
class ArrivalPrice:
    """Best raw (fee-exclusive) bid and ask across the venues, and their mid, at arrival."""

    instrument: str
    bid: Decimal | None
    ask: Decimal | None
    observed_at: datetime

    @property
    def mid(self) -> Decimal | None:
        if self.bid is None or self.ask is None:
            return self.bid if self.ask is None else self.ask
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class ExecutionBenchmark:
    """What a parent order (`parent_kind`: order, algo, strategy) is measured against. A
    strategy has one arrival per leg (`legs`, in leg order) and `instrument` "strategy"."""

    parent_id: str
    parent_kind: str
    instrument: str
    side: Side
    arrival: ArrivalPrice
    legs: tuple[ArrivalPrice, ...] = ()


def arrival_from_books(
    instrument: str, books: Mapping[str, OrderBook], observed_at: datetime
) -> ArrivalPrice:
    """The touch across venues, from their own books (not the fee-adjusted consolidated one:
    a benchmark is the market's price, the fees are a cost measured separately)."""
    bids = [b.bids[0].price for b in books.values() if b.bids]
    asks = [b.asks[0].price for b in books.values() if b.asks]
    return ArrivalPrice(
        instrument, max(bids) if bids else None, min(asks) if asks else None, observed_at
    )
