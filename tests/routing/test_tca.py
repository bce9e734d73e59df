"""The cost arithmetic of TCA: hand-computed cases and invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.orders import Side
from gateway.routing.tca import ExecutedFill, MarketInterval, analyse_execution

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def fill(
    venue: str, quantity: str, price: str, fee: str = "0", gas: str = "0", at: int = 0
) -> ExecutedFill:
    return ExecutedFill(
        venue,
        Decimal(quantity),
        Decimal(price),
        Decimal(fee),
        Decimal(gas),
        T0 + timedelta(seconds=at),
    )


def test_a_buy_against_its_arrival_price_by_hand() -> None:
    fills = [
        fill("binance", "1", "2001", fee="2.001", at=1),
        fill("uniswap", "0.5", "2004", gas="1.5", at=2),
    ]
    report = analyse_execution(
        Side.BUY,
        Decimal(2),
        fills,
        arrival_mid=Decimal(2000),
        mark=Decimal(2010),
        market=MarketInterval(Decimal(2002), Decimal(30)),
    )
    # notional 2001 + 1002 = 3003 for 1.5: average 2002
    assert report.average_price == Decimal(2002)
    assert report.filled == Decimal("1.5") and report.unfilled == Decimal("0.5")
    s = report.shortfall
    assert s is not None
    assert s.execution == Decimal(3)  # 3003 - 2000 * 1.5
    assert s.fees == Decimal("2.001") and s.gas == Decimal("1.5")
    assert s.opportunity == Decimal(5)  # (2010 - 2000) * 0.5
    assert s.total == Decimal("11.501")
    assert s.paper_notional == Decimal(4000)
    assert s.total_bps == Decimal("28.75")  # 11.501 / 4000 * 1e4 = 28.7525
    assert report.all_in_average_price == (Decimal(3003) + Decimal("3.501")) / Decimal("1.5")
    assert report.vs_vwap_bps == Decimal(0)
    assert report.participation == Decimal("0.05")
    assert [(v.venue, v.quantity, v.average_price) for v in report.venues] == [
        ("binance", Decimal(1), Decimal(2001)),
        ("uniswap", Decimal("0.5"), Decimal(2004)),
    ]
    assert report.first_fill_at == T0 + timedelta(seconds=1)


def test_a_sell_below_arrival_is_a_cost_and_above_is_a_gain() -> None:
    worse = analyse_execution(
        Side.SELL, Decimal(1), [fill("b", "1", "1990")], arrival_mid=Decimal(2000)
    )
    better = analyse_execution(
        Side.SELL, Decimal(1), [fill("b", "1", "2010")], arrival_mid=Decimal(2000)
    )
    assert worse.shortfall is not None and worse.shortfall.execution == Decimal(10)
    assert better.shortfall is not None and better.shortfall.execution == Decimal(-10)
    assert worse.shortfall.opportunity is None  # no mark given


def test_no_arrival_price_means_no_shortfall_and_no_fills_no_average() -> None:
    report = analyse_execution(Side.BUY, Decimal(1), [], arrival_mid=None)
    assert report.shortfall is None and report.average_price is None and report.venues == ()


prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100_000), places=2)
quantities = st.decimals(min_value=Decimal("0.001"), max_value=Decimal(100), places=3)


@given(
    side=st.sampled_from(list(Side)),
    arrival=prices,
    mark=prices,
    rows=st.lists(st.tuples(quantities, prices, st.sampled_from(["a", "b", "c"])), max_size=8),
    extra=quantities,
)
def test_the_parts_add_up_and_the_venues_partition_the_fill(
    side: Side,
    arrival: Decimal,
    mark: Decimal,
    rows: list[tuple[Decimal, Decimal, str]],
    extra: Decimal,
) -> None:
    fills = [ExecutedFill(v, q, p, q * p / 1000, Decimal(0), T0) for q, p, v in rows]
    quantity = sum((q for q, _, _ in rows), Decimal(0)) + extra
    report = analyse_execution(side, quantity, fills, arrival_mid=arrival, mark=mark)
    s = report.shortfall
    assert s is not None and s.opportunity is not None
    assert s.total == s.execution + s.fees + s.gas + s.opportunity
    assert report.unfilled == extra
    assert sum((v.quantity for v in report.venues), Decimal(0)) == report.filled
    if report.filled:
        assert sum((v.share for v in report.venues), Decimal(0)) == 1 or abs(
            sum((v.share for v in report.venues), Decimal(0)) - 1
        ) < Decimal("1e-20")
        # every fill at the arrival mid: no execution cost
        at_mid = [ExecutedFill(f.venue, f.quantity, arrival, f.fee, f.gas, T0) for f in fills]
        flat = analyse_execution(side, quantity, at_mid, arrival_mid=arrival)
        assert flat.shortfall is not None and flat.shortfall.execution == 0
