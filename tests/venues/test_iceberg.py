"""An iceberg rests one displayed child at a time on the exchange (Binance simulator, ccxt
over HTTP); another account's sells fill it, and the next child is shown at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from gateway.domain.market import VenueOrderRequest
from gateway.domain.orders import OrderType, Side, TimeInForce
from gateway.domain.sim_clock import SimClock
from gateway.routing.algos import AlgoKind, AlgoStatus
from tests.venues.conftest import Account, open_account
from tests.venues.test_algo_runner import T0, gateway, request, state_of

TICK = Decimal("0.01")


def resting(account: Account) -> list[tuple[Decimal, Decimal]]:
    """The account's open orders on the exchange: (price, remaining)."""
    return [(o.price, o.remaining) for o in account.running.sim.exchange.open_orders(account.name)]


def test_iceberg_shows_one_child_at_a_time_and_refreshes_when_it_fills(
    private_binance_account: Account, tmp_path: Path
) -> None:
    seller = open_account(
        private_binance_account.running, {"ETH": Decimal(10), "USDC": Decimal(1_000)}
    )

    async def sell(venue: object, quantity: str, n: int) -> None:
        await venue.place_order(  # type: ignore[attr-defined]
            VenueOrderRequest(
                "WETH/USDC",
                Side.SELL,
                OrderType.MARKET,
                Decimal(quantity),
                time_in_force=TimeInForce.IOC,
                client_order_id=f"seller-{n}",
            )
        )

    async def scenario() -> None:
        clock = SimClock(T0)
        seller_venue = seller.venue()
        database = f"sqlite:///{tmp_path / 'iceberg.db'}"
        try:
            async with gateway(private_binance_account, database) as rt:
                book = rt.market_data.venue_books("WETH/USDC")["binance"]
                limit = book.bids[0].price + TICK  # the best bid, alone at the top
                assert limit < book.asks[0].price
                algo = await rt.algos.create(
                    request(
                        AlgoKind.ICEBERG,
                        "0.3",
                        "0.2",
                        limit_price=limit,
                        display_quantity=Decimal("0.1"),
                    )
                )
                algo_id = algo.spec.algo_id
                await rt.algos.run_due(clock.now())
                state = await state_of(rt, algo_id)
                assert state.child_seq == 1 and state.filled == 0
                assert resting(private_binance_account) == [(limit, Decimal("0.1"))]

                await sell(seller_venue, "0.1", 1)  # hits our bid first: it is the best
                clock.advance_to(T0 + timedelta(seconds=1))
                await rt.algos.run_due(clock.now())
                state = await state_of(rt, algo_id)
                assert state.filled == Decimal("0.1") and state.child_seq == 2
                assert resting(private_binance_account) == [(limit, Decimal("0.1"))]

                # partly filled, then paused: the child comes off the exchange, its fill stays
                await sell(seller_venue, "0.04", 2)
                paused = await rt.algos.pause(algo_id, clock.now())
                assert paused.status is AlgoStatus.PAUSED
                assert resting(private_binance_account) == []
                state = await state_of(rt, algo_id)
                assert state.filled == Decimal("0.14") and state.open_children == ()

                await rt.algos.resume(algo_id, clock.now())
                clock.advance_to(T0 + timedelta(seconds=2))
                await rt.algos.run_due(clock.now())
                state = await state_of(rt, algo_id)
                assert state.child_seq == 3
                assert resting(private_binance_account) == [(limit, Decimal("0.1"))]

            # a restart: the resting child stays on the exchange and keeps being followed
            async with gateway(private_binance_account, database) as rt:
                clock.advance_to(T0 + timedelta(seconds=3))
                await rt.algos.run_due(clock.now())
                assert (await state_of(rt, algo_id)).child_seq == 3
                assert resting(private_binance_account) == [(limit, Decimal("0.1"))]
                await sell(seller_venue, "0.1", 3)
                clock.advance_to(T0 + timedelta(seconds=4))
                await rt.algos.run_due(clock.now())
                state = await state_of(rt, algo_id)
                assert state.filled == Decimal("0.24") and state.child_seq == 4
                assert resting(private_binance_account) == [(limit, Decimal("0.06"))]
                cancelled = await rt.algos.cancel(algo_id, clock.now())
                assert cancelled.status is AlgoStatus.CANCELLED
                assert resting(private_binance_account) == []
                state = await state_of(rt, algo_id)
                assert state.filled == Decimal("0.24") and state.open_children == ()
                tca = await rt.tca.analyse(algo_id)
                assert tca.analysis.filled == Decimal("0.24")
                assert tca.analysis.average_price == limit  # every fill at our resting price
        finally:
            await seller_venue.close()

    asyncio.run(scenario())
