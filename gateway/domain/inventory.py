"""The operator's inventory: the wallet that takes the other side of a signed order's
exchange leg on chain, and the exchange execution that hedges it.

A signed order filled on a centralized exchange is executed on the operator's exchange
account, not the trader's wallet. So that the trader's wallet still pays and receives on chain,
the operator's inventory MarginWallet trades the fill with the trader in the settlement batch,
at the exchange's average price moved by the exchange fee and the operator's spread (never
beyond the trader's signed limit); the exchange execution is the inventory's hedge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from gateway.domain.orders import Side

BPS = Decimal(10_000)
_ZERO = Decimal(0)


def inventory_price(
    trader_side: Side,
    *,
    average: Decimal,
    fee_per_unit: Decimal,
    spread_bps: Decimal,
    limit: Decimal | None,
    tick: Decimal,
) -> Decimal:
    """The price the inventory trades a fill with the trader at: what the hedge cost per unit
    (average price and fee) plus the spread, rounded to the tick against the trader, and never
    beyond the trader's signed `limit` (the inventory bears the difference)."""
    spread = average * spread_bps / BPS
    if trader_side is Side.BUY:  # the inventory sells what its hedge bought
        price = ((average + fee_per_unit + spread) / tick).to_integral_value(ROUND_CEILING) * tick
        return price if limit is None else min(price, limit)
    price = ((average - fee_per_unit - spread) / tick).to_integral_value(ROUND_FLOOR) * tick
    return price if limit is None else max(price, limit)


@dataclass(frozen=True, slots=True)
class InventoryTrade:
    """One on-chain trade of the inventory wallet (its own side)."""

    instrument: str
    side: Side
    quantity: Decimal
    price: Decimal
    settled: bool


@dataclass(frozen=True, slots=True)
class HedgeExecution:
    """What the operator's exchange account executed to hedge inventory trades."""

    instrument: str
    venue: str
    side: Side
    quantity: Decimal
    average_price: Decimal
    fee: Decimal  # in quote


@dataclass(frozen=True, slots=True)
class InventoryLine:
    """One instrument of the inventory book: the wallet's position, the hedges', what is
    left open between them, and the P&L of the pair marked at `mark`."""

    instrument: str
    wallet_position: Decimal
    pending_position: Decimal  # of `wallet_position`, what settlement has not confirmed yet
    hedge_position: Decimal
    net_position: Decimal
    wallet_cash: Decimal  # quote received (+) or paid (-) by the wallet's trades
    hedge_cash: Decimal  # quote received (+) or paid (-) on the exchanges, fees included
    fees: Decimal
    mark: Decimal | None
    pnl: Decimal | None  # cash of both plus the net position at the mark


def _signed(side: Side, quantity: Decimal) -> Decimal:
    return quantity if side is Side.BUY else -quantity


def inventory_book(
    trades: Iterable[InventoryTrade],
    hedges: Iterable[HedgeExecution],
    marks: Mapping[str, Decimal | None],
) -> list[InventoryLine]:
    """Per instrument: the inventory wallet's trades against their exchange hedges."""
    wallet: dict[str, list[Decimal]] = {}  # position, pending, cash
    hedge: dict[str, list[Decimal]] = {}  # position, cash, fees
    for trade in trades:
        line = wallet.setdefault(trade.instrument, [_ZERO, _ZERO, _ZERO])
        signed = _signed(trade.side, trade.quantity)
        line[0] += signed
        if not trade.settled:
            line[1] += signed
        line[2] -= signed * trade.price
    for execution in hedges:
        line = hedge.setdefault(execution.instrument, [_ZERO, _ZERO, _ZERO])
        signed = _signed(execution.side, execution.quantity)
        line[0] += signed
        line[1] -= signed * execution.average_price + execution.fee
        line[2] += execution.fee
    lines = []
    for instrument in sorted(set(wallet) | set(hedge)):
        position, pending, cash = wallet.get(instrument, [_ZERO, _ZERO, _ZERO])
        hedged, hedge_cash, fees = hedge.get(instrument, [_ZERO, _ZERO, _ZERO])
        net = position + hedged
        mark = marks.get(instrument)
        pnl = None if mark is None and net != 0 else cash + hedge_cash + net * (mark or _ZERO)
        lines.append(
            InventoryLine(
                instrument, position, pending, hedged, net, cash, hedge_cash, fees, mark, pnl
            )
        )
    return lines


@dataclass(frozen=True, slots=True)
class LegExecution:
    """What the hedges of one strategy leg cost per unit, from the trader's side of it."""

    side: Side  # the trader's side of the leg (a sell strategy's legs flipped)
    ratio: int
    average: Decimal
    fee_per_unit: Decimal
    tick: Decimal


def strategy_leg_prices(
    legs: tuple[LegExecution, ...], *, spread_bps: Decimal, bound: Decimal
) -> tuple[Decimal, ...] | None:
    """Each leg's price for a strategy's completed units traded with the inventory: the
    hedge's average, fee and spread against the trader, rounded to the tick against the
    trader; then, if the net the trader pays per unit (buy legs pay, sell legs receive)
    would exceed `bound` (the signed limit, in what the trader pays), one leg gives back
    the excess so that it does not. None when no leg can (the units cannot trade)."""
    prices = [
        inventory_price(
            leg.side,
            average=leg.average,
            fee_per_unit=leg.fee_per_unit,
            spread_bps=spread_bps,
            limit=None,  # the limit is on the net (below)
            tick=leg.tick,
        )
        for leg in legs
    ]

    def net(values: list[Decimal]) -> Decimal:
        return sum(
            (_signed(leg.side, leg.ratio * value) for leg, value in zip(legs, values, strict=True)),
            _ZERO,
        )

    excess = net(prices) - bound
    if excess <= 0:
        return tuple(prices)
    # the leg of the largest value absorbs the excess (the smallest relative move)
    for index in sorted(range(len(legs)), key=lambda i: -prices[i] * legs[i].ratio):
        leg = legs[index]
        move = excess / leg.ratio
        if leg.side is Side.BUY:
            moved = ((prices[index] - move) / leg.tick).to_integral_value(ROUND_FLOOR) * leg.tick
        else:
            moved = ((prices[index] + move) / leg.tick).to_integral_value(ROUND_CEILING) * leg.tick
        if moved <= 0:
            continue
        candidate = [*prices[:index], moved, *prices[index + 1 :]]
        if net(candidate) <= bound:
            return tuple(candidate)
    return None
