"""The simulators themselves: seeded determinism, background stepping."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from gateway.devnet.exchange_sim.binance import BinanceSim
from gateway.devnet.exchange_sim.deribit import DeribitSim, option_name
from gateway.devnet.exchange_sim.market_maker import RandomWalk


def _deribit_books(seed: int, steps: int) -> list[object]:
    sim = DeribitSim(seed=seed, clock_ms=lambda: 0)
    sim.step(steps)
    return [sim.exchange.depth(symbol, 100) for symbol in sorted(sim.exchange.markets)]


def test_simulator_books_are_a_function_of_seed_and_step_count() -> None:
    assert _deribit_books(3, 10) == _deribit_books(3, 10)
    assert _deribit_books(3, 10) != _deribit_books(4, 10)
    assert _deribit_books(3, 10) != _deribit_books(3, 11)
    first, second = BinanceSim(seed=8), BinanceSim(seed=8)
    first.step(25)
    second.step(25)
    assert first.exchange.depth("ETHUSDC", 100) == second.exchange.depth("ETHUSDC", 100)
    assert first.market_maker is not None
    walk = RandomWalk(8, Decimal("3000.00"), Decimal("0.01"), max_ticks_per_step=50)
    for _ in range(25):
        walk.step()
    assert first.market_maker.mid == walk.mid


def test_options_are_quoted_around_their_fair_price() -> None:
    sim = DeribitSim(seed=1, clock_ms=lambda: 0)
    itm, otm = option_name(Decimal(2500), True), option_name(Decimal(3500), True)
    assert itm == "ETH-26MAR27-2500-C"
    (itm_bid, _), *_ = sim.exchange.depth(itm, 1)[0]
    (otm_bid, _), *_ = sim.exchange.depth(otm, 1)[0]
    assert itm_bid > otm_bid > 0  # a lower strike call is worth more
    assert itm_bid > Decimal(500) / Decimal(3000)  # at least its intrinsic value in ETH


def test_background_stepping_moves_the_market() -> None:
    async def main() -> tuple[int, Decimal]:
        sim = BinanceSim(seed=21)
        reached = asyncio.Event()
        original = sim.step
        calls = 0

        def counting_step(n: int = 1) -> None:
            nonlocal calls
            original(n)
            calls += 1
            if calls == 3:
                reached.set()

        sim.step = counting_step  # type: ignore[method-assign]
        sim.start_stepping(0.001)
        await asyncio.wait_for(reached.wait(), timeout=10)
        await sim.stop_stepping()
        assert sim.market_maker is not None
        return sim.market_maker.walk.steps, sim.market_maker.mid

    steps, mid = asyncio.run(main())
    assert steps >= 3
    walk = RandomWalk(21, Decimal("3000.00"), Decimal("0.01"), max_ticks_per_step=50)
    for _ in range(steps):
        walk.step()
    assert mid == walk.mid
