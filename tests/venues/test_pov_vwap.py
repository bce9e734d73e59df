"""POV follows the market's public volume and VWAP takes its profile from venue history,
both read from the Binance simulator's public trade tape through ccxt over HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.domain.market import VenueOrderRequest
from gateway.domain.orders import OrderType, Side, TimeInForce
from gateway.domain.sim_clock import SimClock
from gateway.routing.algos import AlgoKind, InvalidAlgoSpec
from gateway.venues.trade_tape import TradeTape
from tests.venues.conftest import Account, open_account
from tests.venues.test_algo_runner import MINUTE, T0, best_ask, gateway, request, state_of


def test_pov_participates_in_the_volume_the_tape_shows(
    private_binance_account: Account, tmp_path: Path
) -> None:
    other = open_account(private_binance_account.running, {"ETH": Decimal(10)})

    async def scenario() -> None:
        clock = SimClock(T0)
        other_venue = other.venue()
        try:
            async with gateway(private_binance_account, f"sqlite:///{tmp_path / 'p.db'}") as rt:
                limit = (best_ask(rt) * Decimal("1.02")).quantize(Decimal("0.01"))
                algo = await rt.algos.create(
                    request(
                        AlgoKind.POV,
                        "1",
                        "1",
                        limit_price=limit,
                        participation_rate=Decimal("0.5"),
                    )
                )
                algo_id = algo.spec.algo_id
                await rt.algos.run_due(clock.now())  # the tape's cursor starts here
                assert (await state_of(rt, algo_id)).filled == 0

                # someone else sells 0.2: we may take half of it
                await other_venue.place_order(
                    VenueOrderRequest(
                        "WETH/USDC",
                        Side.SELL,
                        OrderType.MARKET,
                        Decimal("0.2"),
                        time_in_force=TimeInForce.IOC,
                        client_order_id="other-1",
                    )
                )
                clock.advance(MINUTE)
                await rt.algos.run_due(clock.now())
                state = await state_of(rt, algo_id)
                assert state.observed_volume == Decimal("0.2")
                assert state.filled == Decimal("0.1")

                # our own 0.1 printed on the tape too: 0.3 seen, 0.15 is our share
                clock.advance(MINUTE)
                await rt.algos.run_due(clock.now())
                state = await state_of(rt, algo_id)
                assert state.observed_volume == Decimal("0.3")
                assert state.filled == Decimal("0.15")

                # only our own 0.05 since: half of it, and so on (the share of the market
                # including us stays at the rate)
                clock.advance(MINUTE)
                await rt.algos.run_due(clock.now())
                state = await state_of(rt, algo_id)
                assert state.observed_volume == Decimal("0.35")
                assert state.filled == Decimal("0.175")
                assert state.filled / state.observed_volume == Decimal("0.5")
        finally:
            await other_venue.close()

    asyncio.run(scenario())


def test_vwap_without_a_profile_follows_the_venue_history(
    private_binance_account: Account, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with gateway(private_binance_account, f"sqlite:///{tmp_path / 'v.db'}") as rt:
            start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=1)
            vwap = request(AlgoKind.VWAP, "1", "1")
            vwap = vwap.__class__(
                **{
                    **{f: getattr(vwap, f) for f in vwap.__dataclass_fields__},
                    "start": start,
                    "end": start + 10 * MINUTE,
                }
            )
            algo = await rt.algos.create(vwap)
            profile = algo.spec.volume_profile
            assert len(profile) == 10 and abs(sum(profile) - 1) < Decimal("1e-20")
            direct = await TradeTape(rt.venues).volume_profile(
                "WETH/USDC", start, start + 10 * MINUTE, 10, 2
            )
            assert profile == direct
            assert len(set(profile)) > 1  # learnt, not a flat schedule

            # no history so far in the future... of the same time of day: there is; but a
            # window over a day long cannot be profiled from one day's windows
            too_long = vwap.__class__(
                **{
                    **{f: getattr(vwap, f) for f in vwap.__dataclass_fields__},
                    "start": start,
                    "end": start + timedelta(days=2),
                    "interval": timedelta(hours=1),
                }
            )
            with pytest.raises(InvalidAlgoSpec) as refused:
                await rt.algos.create(too_long)
            assert refused.value.field == "volume_profile"

    asyncio.run(scenario())
