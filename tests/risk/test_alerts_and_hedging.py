"""Margin alert levels with hysteresis, and delta hedge sizing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.orders import Side
from gateway.risk.alerts import MarginAlerts, MarginLevel, MarginThresholds, usage_of
from gateway.risk.hedging import DeltaHedgePolicy, hedge_order

NOW = datetime(2026, 11, 25, tzinfo=UTC)
D = Decimal


def levels_for(usages: list[str]) -> list[str | None]:
    alerts = MarginAlerts()
    out: list[str | None] = []
    for usage in usages:
        alert = alerts.update("acct", D(usage) * 100, D(100), NOW)
        out.append(None if alert is None else alert.level.name)
    return out


def test_levels_rise_at_once_and_fall_with_hysteresis() -> None:
    assert levels_for(["0.1", "0.5", "0.52", "0.47", "0.44", "0.85", "1.2", "0.97", "0.94"]) == [
        None,
        "WARNING",
        None,
        None,  # within the 0.05 hysteresis of 0.5: still a warning
        "OK",
        "MARGIN_CALL",  # straight past the warning
        "LIQUIDATION",
        None,
        "MARGIN_CALL",
    ]


def test_usage_edges() -> None:
    assert usage_of(D(0), D(0)) == 0
    assert usage_of(D(5), D(0)) == 999
    assert usage_of(D(1), D(3)) == D("0.333333")


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValueError):
        MarginThresholds(warning=D("0.9"), margin_call=D("0.8"))
    with pytest.raises(ValueError):
        MarginThresholds(hysteresis=D("0.6"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.decimals(min_value=D(0), max_value=D(2), places=3), min_size=1, max_size=50))
def test_an_alert_fires_exactly_when_the_level_changes(usages: list[Decimal]) -> None:
    alerts = MarginAlerts()
    thresholds = alerts.thresholds
    level = MarginLevel.OK
    for usage in usages:
        alert = alerts.update("a", usage, D(1), NOW)
        expected = thresholds.level(usage, level)
        assert (alert is not None) == (expected is not level)
        # the level never claims more than usage shows, nor less than it shows
        for candidate, threshold in thresholds.bounds():
            if usage >= threshold:
                assert expected >= candidate
            if usage < threshold - thresholds.hysteresis:
                assert expected < candidate
        level = expected


def test_hedge_order_sizes() -> None:
    perp = devnet_catalogue().get("WETH-PERP")
    policy = DeltaHedgePolicy("WETH-PERP", band=D("0.5"))
    assert hedge_order(D("0.5"), policy, perp) is None
    order = hedge_order(D("1.23456"), policy, perp)
    assert order is not None
    assert (order.side, order.quantity) == (Side.SELL, D("1.234"))  # lot 0.001, down
    order = hedge_order(D("-3"), DeltaHedgePolicy("WETH-PERP", D("0.5"), max_order=D(2)), perp)
    assert order is not None and (order.side, order.quantity) == (Side.BUY, D(2))
    targeted = hedge_order(D(3), DeltaHedgePolicy("WETH-PERP", D("0.5"), target=D(1)), perp)
    assert targeted is not None and targeted.quantity == 2


@settings(max_examples=300, deadline=None)
@given(
    delta=st.decimals(min_value=D(-100), max_value=D(100), places=6),
    band=st.decimals(min_value=D("0.001"), max_value=D(5), places=3),
)
def test_a_hedge_lands_inside_the_band(delta: Decimal, band: Decimal) -> None:
    perp = devnet_catalogue().get("WETH-PERP")
    order = hedge_order(delta, DeltaHedgePolicy("WETH-PERP", band), perp)
    if order is None:
        assert abs(delta) <= band or abs(delta) < perp.rules.min_quantity + band
        return
    after = delta + order.side.sign * order.quantity
    assert abs(after) < perp.rules.lot_size or abs(after) <= band
