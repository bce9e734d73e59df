"""Constant-product math: exact, and consistent in both directions."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain import amm

RESERVES = st.integers(min_value=10**6, max_value=10**30)


@given(
    RESERVES, RESERVES, st.integers(min_value=1, max_value=10**24), st.sampled_from([0, 5, 30, 100])
)
def test_paying_amount_in_buys_at_least_the_amount_out(
    r_in: int, r_out: int, wanted: int, fee: int
) -> None:
    if wanted >= r_out:
        with pytest.raises(amm.InsufficientLiquidity):
            amm.amount_in(wanted, r_in, r_out, fee)
        return
    paid = amm.amount_in(wanted, r_in, r_out, fee)
    assert amm.amount_out(paid, r_in, r_out, fee) >= wanted
    if paid > 2:  # and it is the least such payment, give or take Uniswap's +1 rounding
        assert amm.amount_out(paid - 2, r_in, r_out, fee) < wanted


@given(RESERVES, RESERVES, st.integers(min_value=1, max_value=10**24))
def test_the_product_never_decreases(r_in: int, r_out: int, amount: int) -> None:
    out = amm.amount_out(amount, r_in, r_out)
    assert out < r_out
    assert (r_in + amount) * (r_out - out) >= r_in * r_out


@given(
    RESERVES, RESERVES, st.integers(min_value=1, max_value=10**24), st.sampled_from([0, 30, 100])
)
def test_amount_out_is_the_exact_formula_rounded_down(
    r_in: int, r_out: int, x: int, fee: int
) -> None:
    """Independent reference: x(1-f) R_out / (R_in + x(1-f)) in exact rationals, floored."""
    effective = Fraction(x) * (1 - Fraction(fee, 10_000))
    assert amm.amount_out(x, r_in, r_out, fee) == math.floor(effective * r_out / (r_in + effective))
