"""The Python margin rule gives the same integers as the compiled contract math."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.risk.margin import OptionPosition, payoff_at, series_requirement

ROOT = Path(__file__).resolve().parents[2]
WETH = 10**18
USDC = 10**6

POSITIONS = st.lists(
    st.builds(
        OptionPosition,
        strike=st.integers(1, 10_000).map(lambda k: k * USDC // 2),
        is_call=st.booleans(),
        size=st.integers(-50 * WETH, 50 * WETH),
    ),
    max_size=16,
)


@pytest.fixture(scope="module")
def contract_math() -> Any:
    return boa.load(str(ROOT / "contracts/test/TestMarginMath.vy"))


def as_tuples(positions: list[OptionPosition]) -> list[tuple[int, bool, int]]:
    return [(p.strike, p.is_call, p.size) for p in positions]


@settings(
    max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(positions=POSITIONS, unit=st.sampled_from([WETH, 10**8, 10**6]))
def test_same_integer_as_the_contract(
    contract_math: Any, positions: list[OptionPosition], unit: int
) -> None:
    ours = series_requirement(positions, unit)
    theirs = contract_math.series_requirement(as_tuples(positions), unit)
    assert (ours.quote_required, ours.underlying_cover) == tuple(theirs)
    for price in {0, *(p.strike for p in positions)}:
        assert payoff_at(positions, ours.underlying_cover, price) == contract_math.payoff_at(
            as_tuples(positions), ours.underlying_cover, price
        )


def test_reference_portfolios() -> None:
    k = USDC  # strikes in whole USDC
    short_straddle = [OptionPosition(3000 * k, True, -WETH), OptionPosition(3000 * k, False, -WETH)]
    req = series_requirement(short_straddle, WETH)
    assert req.underlying_cover == WETH  # the short call is covered by 1 WETH
    assert req.quote_required == 3000 * k  # the put's worst case at price 0
    condor = [
        OptionPosition(2800 * k, False, WETH),
        OptionPosition(3000 * k, False, -WETH),
        OptionPosition(3200 * k, True, -WETH),
        OptionPosition(3500 * k, True, WETH),
    ]
    req = series_requirement(condor, WETH)
    assert req.underlying_cover == 0
    assert req.quote_required == 300 * k  # the wider wing; the credit is already in the wallet
