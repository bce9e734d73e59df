"""The off-chain matching engine: price-time priority books for single instruments and
multi-leg strategies (combos), with implied matching of combos against the legs' books.

Pure and deterministic: commands in (`commands`), events out (`events`), integer ticks and
lots inside (`units` converts from and to `Decimal`). No I/O, no clock, no randomness; the
gateway persists the events and publishes them. The rules are in `engine`; strategy
normalisation in `strategy`; the data structure in `book`; rebuilding books from the event
log in `projection`.
"""

from gateway.matching.book import BookSnapshot, LevelSnapshot
from gateway.matching.commands import (
    DEFAULT_STP,
    AmendOrder,
    CancelOrder,
    CancelReason,
    Command,
    PlaceCombo,
    PlaceOrder,
    SelfTradePrevention,
)
from gateway.matching.engine import MatchingEngine, OpenOrder
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
from gateway.matching.projection import BookProjection
from gateway.matching.strategy import Strategy, normalise
from gateway.matching.units import InstrumentUnits, StrategyUnits

__all__ = [
    "DEFAULT_STP",
    "AmendOrder",
    "BookProjection",
    "BookSnapshot",
    "CancelOrder",
    "CancelReason",
    "ComboFill",
    "Command",
    "Event",
    "InstrumentUnits",
    "LegFill",
    "LevelSnapshot",
    "Liquidity",
    "MatchingEngine",
    "OpenOrder",
    "OrderAccepted",
    "OrderAmended",
    "OrderCancelled",
    "OrderReduced",
    "OrderRejected",
    "PlaceCombo",
    "PlaceOrder",
    "RejectReason",
    "SelfTradePrevention",
    "Strategy",
    "StrategyUnits",
    "Trade",
    "normalise",
]
