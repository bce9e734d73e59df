"""The order state machine, checked exhaustively against a table written out by hand."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.errors import DomainError, IllegalTransition
from gateway.domain.lifecycle import (
    FILL_SETTLEMENT_TRANSITIONS,
    OrderStatus,
    SettlementStatus,
    check_fill_settlement_transition,
)
from gateway.domain.orders import Order, OrderSpec, OrderType, Side

S = OrderStatus
# Written independently of the implementation's table: every legal move, nothing else.
LEGAL = {
    (S.NEW, S.ACCEPTED),
    (S.NEW, S.REJECTED),
    (S.ACCEPTED, S.PARTIALLY_FILLED),
    (S.ACCEPTED, S.FILLED),
    (S.ACCEPTED, S.CANCELLED),
    (S.ACCEPTED, S.EXPIRED),
    (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, S.FILLED),
    (S.PARTIALLY_FILLED, S.CANCELLED),
    (S.PARTIALLY_FILLED, S.EXPIRED),
}
TERMINAL = {S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED}
NOW = datetime(2026, 11, 25, tzinfo=UTC)
CATALOGUE = devnet_catalogue()


@pytest.mark.parametrize(("source", "target"), list(itertools.product(S, S)))
def test_every_pair_of_states(source: OrderStatus, target: OrderStatus) -> None:
    if (source, target) in LEGAL:
        source.check_transition(target)
    else:
        with pytest.raises(IllegalTransition):
            source.check_transition(target)


@pytest.mark.parametrize("status", list(S))
def test_terminal_states_are_exactly_the_final_ones(status: OrderStatus) -> None:
    assert status.is_terminal == (status in TERMINAL)
    assert status.is_open == (status in {S.ACCEPTED, S.PARTIALLY_FILLED})


SETTLEMENT_LEGAL = {
    (SettlementStatus.NONE, SettlementStatus.PENDING),
    (SettlementStatus.PENDING, SettlementStatus.SETTLED),
    (SettlementStatus.PENDING, SettlementStatus.FAILED),
    (SettlementStatus.SETTLED, SettlementStatus.PENDING),
    (SettlementStatus.FAILED, SettlementStatus.PENDING),
}


@pytest.mark.parametrize(
    ("source", "target"), list(itertools.product(SettlementStatus, SettlementStatus))
)
def test_every_pair_of_settlement_states(
    source: SettlementStatus, target: SettlementStatus
) -> None:
    if (source, target) in SETTLEMENT_LEGAL:
        source.check_transition(target)
    else:
        with pytest.raises(IllegalTransition):
            source.check_transition(target)
    fill_legal = (source, target) in {
        (SettlementStatus.PENDING, SettlementStatus.SETTLED),
        (SettlementStatus.PENDING, SettlementStatus.FAILED),
    }
    assert (target in FILL_SETTLEMENT_TRANSITIONS[source]) == fill_legal
    if not fill_legal:
        with pytest.raises(IllegalTransition):
            check_fill_settlement_transition(source, target)


def limit_order(quantity: str = "1", price: str = "3000") -> Order:
    spec = OrderSpec(
        account="0x" + "11" * 20,
        client_order_id="c1",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal(quantity),
        instrument="WETH/USDC",
        price=Decimal(price),
    )
    return Order.new("ord_1", spec, NOW)


def order_in(status: OrderStatus) -> Order:
    """Reach each status through the public methods only."""
    order = limit_order("2")
    if status is S.NEW:
        return order
    if status is S.REJECTED:
        return order.reject("no", NOW)
    order = order.accept(NOW)
    return {
        S.ACCEPTED: lambda: order,
        S.PARTIALLY_FILLED: lambda: order.fill(Decimal(1), Decimal(3000), NOW),
        S.FILLED: lambda: order.fill(Decimal(2), Decimal(3000), NOW),
        S.CANCELLED: lambda: order.cancel(NOW),
        S.EXPIRED: lambda: order.expire(NOW),
    }[status]()


OPERATIONS = {
    "accept": (lambda o: o.accept(NOW), S.ACCEPTED),
    "reject": (lambda o: o.reject("risk", NOW), S.REJECTED),
    "cancel": (lambda o: o.cancel(NOW), S.CANCELLED),
    "expire": (lambda o: o.expire(NOW), S.EXPIRED),
    "fill_part": (lambda o: o.fill(Decimal("0.5"), Decimal(3000), NOW), S.PARTIALLY_FILLED),
    "fill_rest": (lambda o: o.fill(o.remaining, Decimal(3000), NOW), S.FILLED),
}


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_every_operation_in_every_state(status: OrderStatus, operation: str) -> None:
    order = order_in(status)
    assert order.status is status
    apply, target = OPERATIONS[operation]
    if (status, target) in LEGAL:
        after = apply(order)
        assert after.status is target
        assert after.version == order.version + 1
    else:
        with pytest.raises(IllegalTransition):
            apply(order)


@pytest.mark.parametrize("status", list(S))
def test_amend_only_open_orders(status: OrderStatus) -> None:
    order = order_in(status)
    if status.is_open:
        amended = order.amend(NOW, CATALOGUE, price=Decimal("2999.5"))
        assert amended.price == Decimal("2999.5")
        assert amended.status is status
    else:
        with pytest.raises(IllegalTransition):
            order.amend(NOW, CATALOGUE, price=Decimal("2999.5"))


def test_fill_beyond_remaining_raises() -> None:
    order = limit_order("1").accept(NOW).fill(Decimal("0.6"), Decimal(3000), NOW)
    with pytest.raises(IllegalTransition):
        order.fill(Decimal("0.5"), Decimal(3000), NOW)


def test_amend_quantity_cannot_go_below_filled() -> None:
    order = limit_order("1").accept(NOW).fill(Decimal("0.6"), Decimal(3000), NOW)
    with pytest.raises(DomainError):
        order.amend(NOW, CATALOGUE, quantity=Decimal("0.6"))
    assert order.amend(NOW, CATALOGUE, quantity=Decimal("0.7")).remaining == Decimal("0.1")


def test_first_fill_makes_settlement_pending_and_settling_completes() -> None:
    order = limit_order("1").accept(NOW)
    assert order.settlement is SettlementStatus.NONE
    filled = order.fill(Decimal("0.25"), Decimal(3000), NOW)
    assert filled.settlement is SettlementStatus.PENDING
    settled = filled.mark_settled(NOW)
    assert settled.settlement is SettlementStatus.SETTLED
    # a later fill reopens settlement
    assert settled.fill(Decimal("0.25"), Decimal(3000), NOW).settlement is SettlementStatus.PENDING


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["fill", "cancel", "expire", "amend_qty", "amend_price"]),
        st.integers(min_value=1, max_value=30_000),
    ),
    max_size=25,
)


@given(ACTIONS)
def test_random_histories_keep_the_invariants(actions: list[tuple[str, int]]) -> None:
    """Whatever happens: never over-filled, FILLED iff nothing remains, terminal is final."""
    order = limit_order("1").accept(NOW)
    moment = NOW
    for action, n in actions:
        moment += timedelta(seconds=1)
        before = order
        try:
            if action == "fill":
                order = order.fill(Decimal(n) / 10_000, Decimal(3000), moment)
            elif action == "cancel":
                order = order.cancel(moment)
            elif action == "expire":
                order = order.expire(moment)
            elif action == "amend_qty":
                order = order.amend(moment, CATALOGUE, quantity=Decimal(n) / 10_000)
            else:
                order = order.amend(moment, CATALOGUE, price=Decimal(n) / 2)
        except DomainError:
            assert order is before
            continue
        assert not before.status.is_terminal, "a terminal order changed"
        assert order.version == before.version + 1
        assert 0 <= order.filled_quantity <= order.quantity
        assert (order.status is S.FILLED) == (order.remaining == 0)
        if order.filled_quantity:
            assert order.average_price == Decimal(3000)
