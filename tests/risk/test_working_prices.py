"""The account's best working prices per instrument and side, kept as orders come and go,
equal a scan of its working orders (the self-trade check reads them instead of the scan)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.orders import OrderType, Side
from gateway.risk.exposure import AccountExposure, WorkingOrder

INSTRUMENTS = ("WETH/USDC", "WBTC/USDC")

orders = st.builds(
    lambda n, instrument, side, price: WorkingOrder(
        None, f"c{n}", instrument, (), side, OrderType.LIMIT, Decimal(1), price
    ),
    st.integers(0, 12),
    st.sampled_from(INSTRUMENTS),
    st.sampled_from(Side),
    st.one_of(st.none(), st.integers(1, 6).map(Decimal)),
)


@given(st.lists(st.tuples(st.booleans(), orders), max_size=60))
def test_best_prices_follow_puts_and_drops(steps: list[tuple[bool, WorkingOrder]]) -> None:
    exposure = AccountExposure()
    for put, order in steps:
        if put:
            exposure.put(order.client_order_id, order, Decimal(0))
        else:
            exposure.drop(order.client_order_id)
        for instrument in INSTRUMENTS:
            for side in Side:
                prices = [
                    w.price
                    for w in exposure.working.values()
                    if w.instrument == instrument and w.side is side and w.price is not None
                ]
                expected = None
                if prices:
                    expected = max(prices) if side is Side.BUY else min(prices)
                assert exposure.best_price(instrument, side) == expected
