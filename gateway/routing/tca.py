"""Transaction cost analysis of one parent order: what its execution cost against benchmarks.

Pure: the fills, the arrival benchmark, the market's traded volume over the interval and a
current mark are passed in. Conventions (every cost in the quote asset; positive = a cost,
negative = a gain):

- *Implementation shortfall* (Perold) against the arrival mid, on the paper portfolio
  `quantity × arrival mid`:
  - execution cost: `sign × (average price − arrival mid) × filled` (sign +1 buy, −1 sell),
    the price moved through while executing (spread, impact, drift);
  - fees (venue taker fees) and gas (network fees of AMM swaps) as recorded per fill;
  - opportunity cost: `sign × (mark − arrival mid) × unfilled`, what the part left undone
    would now cost more (the mark is the mid when the analysis runs, or at the parent's end);
  - total, and each part in basis points of the paper portfolio.
- *Versus VWAP*: `sign × (average price − market VWAP) / market VWAP` in bp over the parent's
  interval, with the market volume and our participation in it. The market tape includes our
  own trades where a venue publishes them, as the market's VWAP does.
- Per venue: quantity, average price, fees, gas and share of the fill.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from gateway.domain.orders import Side

BPS = Decimal(10_000)
_ZERO = Decimal(0)
_CENT_BP = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class ExecutedFill:
    venue: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    gas: Decimal
    executed_at: datetime


@dataclass(frozen=True, slots=True)
class MarketInterval:
    """The market's trades over the parent's interval (all venues with a public tape)."""

    vwap: Decimal | None
    volume: Decimal


@dataclass(frozen=True, slots=True)
class VenueExecution:
    venue: str
    quantity: Decimal
    average_price: Decimal
    fees: Decimal
    gas: Decimal
    share: Decimal  # of the filled quantity


@dataclass(frozen=True, slots=True)
class Shortfall:
    execution: Decimal
    fees: Decimal
    gas: Decimal
    opportunity: Decimal | None  # None without a mark
    total: Decimal
    paper_notional: Decimal
    execution_bps: Decimal
    fees_bps: Decimal
    gas_bps: Decimal
    opportunity_bps: Decimal | None
    total_bps: Decimal


@dataclass(frozen=True, slots=True)
class CostAnalysis:
    side: Side
    quantity: Decimal
    filled: Decimal
    unfilled: Decimal
    average_price: Decimal | None
    all_in_average_price: Decimal | None  # fees and gas included
    fees: Decimal
    gas: Decimal
    first_fill_at: datetime | None
    last_fill_at: datetime | None
    arrival_mid: Decimal | None
    mark: Decimal | None
    shortfall: Shortfall | None  # None without an arrival mid
    market_vwap: Decimal | None
    market_volume: Decimal | None
    participation: Decimal | None  # filled / market volume
    vs_vwap_bps: Decimal | None
    venues: tuple[VenueExecution, ...]


def _bps(amount: Decimal, base: Decimal) -> Decimal:
    return (amount / base * BPS).quantize(_CENT_BP)


def analyse_execution(
    side: Side,
    quantity: Decimal,
    fills: Sequence[ExecutedFill],
    *,
    arrival_mid: Decimal | None,
    mark: Decimal | None = None,
    market: MarketInterval | None = None,
) -> CostAnalysis:
    """The costs of executing `quantity` on `side` as `fills` did (see the module doc)."""
    sign = side.sign
    filled = sum((f.quantity for f in fills), _ZERO)
    notional = sum((f.quantity * f.price for f in fills), _ZERO)
    fees = sum((f.fee for f in fills), _ZERO)
    gas = sum((f.gas for f in fills), _ZERO)
    unfilled = max(quantity - filled, _ZERO)
    average = notional / filled if filled else None
    all_in = (notional + sign * (fees + gas)) / filled if filled else None

    shortfall = None
    if arrival_mid is not None and arrival_mid > 0 and quantity > 0:
        paper = arrival_mid * quantity
        execution = sign * (notional - arrival_mid * filled)
        opportunity = None if mark is None else sign * (mark - arrival_mid) * unfilled
        total = execution + fees + gas + (opportunity or _ZERO)
        shortfall = Shortfall(
            execution,
            fees,
            gas,
            opportunity,
            total,
            paper,
            _bps(execution, paper),
            _bps(fees, paper),
            _bps(gas, paper),
            None if opportunity is None else _bps(opportunity, paper),
            _bps(total, paper),
        )

    vwap = market.vwap if market is not None else None
    volume = market.volume if market is not None else None
    vs_vwap = None
    if vwap is not None and vwap > 0 and average is not None:
        vs_vwap = _bps(sign * (average - vwap), vwap)
    participation = filled / volume if volume else None

    by_venue: dict[str, list[ExecutedFill]] = {}
    for fill in fills:
        by_venue.setdefault(fill.venue, []).append(fill)
    venues = tuple(
        VenueExecution(
            venue,
            q := sum((f.quantity for f in group), _ZERO),
            sum((f.quantity * f.price for f in group), _ZERO) / q,
            sum((f.fee for f in group), _ZERO),
            sum((f.gas for f in group), _ZERO),
            q / filled,
        )
        for venue, group in sorted(by_venue.items())
        if sum((f.quantity for f in group), _ZERO) > 0
    )
    times = [f.executed_at for f in fills]
    return CostAnalysis(
        side,
        quantity,
        filled,
        unfilled,
        average,
        all_in,
        fees,
        gas,
        min(times) if times else None,
        max(times) if times else None,
        arrival_mid,
        mark,
        shortfall,
        vwap,
        volume,
        participation,
        vs_vwap,
        venues,
    )
