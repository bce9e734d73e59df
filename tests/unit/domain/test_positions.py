"""Positions folded from fills: P&L is conserved."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.fills import Fill
from gateway.domain.orders import Side
from gateway.domain.positions import Position

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def fill(side: Side, quantity: int, price: int, fee: int = 0) -> Fill:
    return Fill(
        "f",
        "o",
        "a",
        "WETH/USDC",
        side,
        Decimal(quantity),
        Decimal(price),
        Decimal(fee),
        "internal",
        NOW,
    )


def test_round_trip_realizes_the_difference() -> None:
    position = (
        Position("a", "WETH/USDC").apply(fill(Side.BUY, 2, 3000)).apply(fill(Side.SELL, 2, 3100))
    )
    assert position.quantity == 0
    assert position.realized_pnl == Decimal(200)


def test_flip_opens_the_rest_at_the_fill_price() -> None:
    position = (
        Position("a", "WETH/USDC").apply(fill(Side.BUY, 1, 3000)).apply(fill(Side.SELL, 3, 3100))
    )
    assert position.quantity == -2
    assert position.average_price == Decimal(3100)
    assert position.realized_pnl == Decimal(100)


FILLS = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(1, 50),
        st.integers(1, 10_000),
        st.integers(0, 5),
    ),
    min_size=1,
    max_size=30,
)


@given(FILLS)
def test_realized_plus_unrealized_equals_cash_flow(fills: list[tuple[Side, int, int, int]]) -> None:
    """Exactly, at any mark: realized + unrealized P&L = net cash flow + value of what is held."""
    position = Position("a", "WETH/USDC")
    cash = Decimal(0)
    for side, quantity, price, fee in fills:
        position = position.apply(fill(side, quantity, price, fee))
        cash += -side.sign * quantity * price - fee
    mark = Decimal(2500)
    assert position.realized_pnl + position.unrealized_pnl(mark) == cash + position.quantity * mark
