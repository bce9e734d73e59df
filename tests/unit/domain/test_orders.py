"""Order validation rules and exact amounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.amounts import canonical, from_units, parse_decimal, to_units
from gateway.domain.errors import DomainError, InvalidOrder, UnknownInstrument
from gateway.domain.orders import Leg, OrderSpec, OrderType, Side, TimeInForce, validate

NOW = datetime(2026, 11, 25, tzinfo=UTC)
CATALOGUE = devnet_catalogue()
CALL = "WETH-20270326-3000-C"


def spec(**changes: object) -> OrderSpec:
    values: dict[str, object] = {
        "account": "0x" + "11" * 20,
        "client_order_id": "c1",
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "quantity": Decimal("1"),
        "instrument": "WETH/USDC",
        "price": Decimal("3000"),
    }
    values.update(changes)
    return OrderSpec(**values)  # type: ignore[arg-type]


VALID = [
    spec(),
    spec(order_type=OrderType.MARKET, price=None, time_in_force=TimeInForce.IOC),
    spec(order_type=OrderType.MARKET, price=None, time_in_force=TimeInForce.FOK),
    spec(
        order_type=OrderType.STOP,
        price=None,
        stop_price=Decimal("2900"),
        time_in_force=TimeInForce.IOC,
    ),
    spec(order_type=OrderType.STOP_LIMIT, stop_price=Decimal("2900")),
    spec(post_only=True),
    spec(time_in_force=TimeInForce.GTD, expires_at=NOW + timedelta(hours=1)),
    spec(instrument=CALL, quantity=Decimal("0.5"), price=Decimal("120.5")),
    spec(
        instrument=None,
        price=Decimal("-12.5"),
        legs=(Leg(CALL, Side.BUY, 1), Leg("WETH-20270326-3200-C", Side.SELL, 1)),
    ),
]


@pytest.mark.parametrize("order", VALID)
def test_valid_orders_pass(order: OrderSpec) -> None:
    validate(order, CATALOGUE, NOW)


INVALID = [
    (spec(quantity=Decimal("0")), "invalid_quantity", "quantity"),
    (spec(quantity=Decimal("-1")), "invalid_quantity", "quantity"),
    (spec(quantity=Decimal("0.00001")), "quantity_below_minimum", "quantity"),
    (spec(quantity=Decimal("1.00005")), "invalid_quantity_lot", "quantity"),
    (spec(price=Decimal("3000.001")), "invalid_price_tick", "price"),
    (spec(price=Decimal("0")), "invalid_price", "price"),
    (spec(price=None), "invalid_order", "price"),
    (spec(order_type=OrderType.MARKET, time_in_force=TimeInForce.IOC), "invalid_order", "price"),
    (spec(order_type=OrderType.MARKET, price=None), "invalid_order", "time_in_force"),
    (spec(order_type=OrderType.STOP_LIMIT), "invalid_order", "stop_price"),
    (spec(stop_price=Decimal("1")), "invalid_order", "stop_price"),
    (spec(post_only=True, time_in_force=TimeInForce.IOC), "invalid_order", "post_only"),
    (spec(time_in_force=TimeInForce.GTD), "invalid_order", "expires_at"),
    (spec(time_in_force=TimeInForce.GTD, expires_at=NOW), "invalid_order", "expires_at"),
    (spec(expires_at=NOW + timedelta(hours=1)), "invalid_order", "expires_at"),
    (spec(instrument="DOGE/USDC"), "unknown_instrument", "instrument"),
    (spec(instrument=None), "invalid_order", "instrument"),
    (spec(legs=(Leg(CALL, Side.BUY, 1), Leg(CALL, Side.SELL, 1))), "invalid_order", "instrument"),
    (spec(instrument=None, legs=(Leg(CALL, Side.BUY, 1),)), "invalid_order", "legs"),
    (
        spec(instrument=None, legs=(Leg(CALL, Side.BUY, 1), Leg(CALL, Side.BUY, 2))),
        "invalid_order",
        "legs.1",
    ),
    (
        spec(instrument=None, legs=(Leg(CALL, Side.BUY, 1), Leg("NOPE", Side.BUY, 1))),
        "unknown_instrument",
        "legs.1.instrument",
    ),
    (
        spec(instrument=None, legs=(Leg(CALL, Side.BUY, 0), Leg("WETH/USDC", Side.BUY, 1))),
        "invalid_order",
        "legs.0.ratio",
    ),
]


@pytest.mark.parametrize(("order", "code", "field"), INVALID)
def test_invalid_orders_say_what_and_where(order: OrderSpec, code: str, field: str) -> None:
    with pytest.raises((InvalidOrder, UnknownInstrument)) as raised:
        validate(order, CATALOGUE, NOW)
    assert raised.value.code == code
    assert raised.value.field == field


@given(st.integers(min_value=0, max_value=2**256 - 1), st.sampled_from([0, 6, 8, 18]))
def test_token_units_round_trip_exactly(units: int, decimals: int) -> None:
    amount = from_units(units, decimals)
    assert to_units(amount, decimals) == units
    assert Decimal(canonical(amount)) == amount


def test_to_units_refuses_to_lose_precision() -> None:
    with pytest.raises(DomainError):
        to_units(Decimal("0.0000001"), 6)


@pytest.mark.parametrize("bad", [1.5, True, "abc", "NaN", "Infinity", "1e999"])
def test_parse_decimal_refuses_inexact_or_absurd_input(bad: object) -> None:
    with pytest.raises(DomainError):
        parse_decimal(bad, field="quantity")  # type: ignore[arg-type]
