"""No execution is lost or doubled when a venue's answer never arrives.

The Binance simulator (ccxt over HTTP) really executes each child; the venue wrapper below
then drops the answer, as a timeout or a stop right after sending would. The child was
recorded before it was sent, so the reconciler (periodic, and at every start) finds it on
the exchange by its client order id and records its fill once.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway.config import Settings
from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.market import FeeSchedule, VenueOrder, VenueOrderRequest
from gateway.domain.orders import OrderSpec, OrderType, Side, TimeInForce
from gateway.domain.venue_child import VenueChild, VenueChildStatus
from gateway.oms.service import SystemClock
from gateway.runtime import Runtime
from gateway.store import order_repository as order_repo
from gateway.venues.internal import InternalVenue
from gateway.venues.market_data import FeedStatus
from gateway.venues.protocol import Venue, VenueUnavailable
from tests.market_data.test_hub import status_change
from tests.venues.conftest import Account
from tests.venues.test_algo_runner import ALICE, CENT, exchange_fills

Q = Decimal("0.3")


class AnswerLost:
    """The real venue, except that every order's answer is lost after the venue took it."""

    def __init__(self, venue: Venue) -> None:
        self._venue = venue

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)

    async def place_order(self, request: VenueOrderRequest) -> VenueOrder:
        await self._venue.place_order(request)
        raise VenueUnavailable("read timed out", venue=self._venue.name)


def build(account: Account, database: str, *, lose_answers: bool) -> Runtime:
    catalogue, clock = devnet_catalogue(), SystemClock()
    venue: Any = account.venue()
    return Runtime.build(
        Settings(database_url=database),
        catalogue=catalogue,
        clock=clock,
        venues=[
            InternalVenue(catalogue, clock, FeeSchedule(Decimal(0), Decimal(0))),
            AnswerLost(venue) if lose_answers else venue,
        ],
    )


async def started(rt: Runtime) -> Runtime:
    await rt.start(expiry_interval=None, monitor=False, algos=False, reconcile_interval=None)
    await status_change(rt.market_data, "binance", FeedStatus.LIVE, timeout=20)
    return rt


def smart_buy(n: int, limit: Decimal) -> OrderSpec:
    return OrderSpec(
        ALICE,
        f"lost-{n}",
        Side.BUY,
        OrderType.LIMIT,
        Q,
        TimeInForce.IOC,
        instrument="WETH/USDC",
        price=limit,
    )


def test_a_lost_answer_is_recovered_by_the_reconciler_and_after_a_restart(
    private_binance_account: Account, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'lost.db'}"

    async def scenario() -> None:
        rt = await started(build(private_binance_account, database, lose_answers=True))
        try:
            ask = rt.market_data.venue_books("WETH/USDC")["binance"].asks[0].price
            limit = (ask * Decimal("1.02")).quantize(CENT)

            # 1. answer lost while running: the order waits (not cancelled), no fill yet
            first = await rt.orders.submit(smart_buy(1, limit), routed=True)
            done = await rt.smart.execute(first.order)
            assert done.order.status.is_open and done.order.filled_quantity == 0
            [child] = await rt.venue_children.children_of(first.order.id)
            assert child.status is VenueChildStatus.PENDING and child.venue_order_id is None
            assert exchange_fills(private_binance_account)[child.client_order_id] == Q

            assert await rt.venue_children.reconcile() == 1
            order = await rt.orders.get(first.order.id)
            assert order.status.value == "filled" and order.filled_quantity == Q
            [child] = await rt.venue_children.children_of(first.order.id)
            assert child.status is VenueChildStatus.DONE and child.venue_order_id is not None
            assert child.filled == Q
            assert await rt.venue_children.reconcile() == 0  # nothing left: no second fill
            assert (await rt.orders.get(first.order.id)).filled_quantity == Q

            # 2. answer lost, then the gateway stops before anything else happens
            second = await rt.orders.submit(smart_buy(2, limit), routed=True)
            await rt.smart.execute(second.order)
        finally:
            await rt.stop()

        rt = await started(build(private_binance_account, database, lose_answers=False))
        try:
            order = await rt.orders.get(second.order.id)  # reconciled by start()
            assert order.status.value == "filled" and order.filled_quantity == Q
            with rt.read_engine.connect() as connection:
                fills = order_repo.fills_for_order(connection, second.order.id)
            assert [f.quantity for f in fills] == [Q]  # recorded once
            on_exchange = exchange_fills(private_binance_account)
            assert sum(on_exchange.values()) == 2 * Q
            ledger = rt.pre_trade.ledger.account(ALICE).positions["WETH/USDC"]
            assert ledger.quantity == 2 * Q

            # 3. recorded, but the stop came before it was sent: closed as never sent, and
            #    the immediate order it belonged to ends cancelled
            third = await rt.orders.submit(smart_buy(3, limit), routed=True)
            never = VenueChild(
                f"{third.order.id}-0",
                third.order.id,
                "binance",
                "WETH/USDC",
                Side.BUY,
                OrderType.LIMIT,
                TimeInForce.IOC,
                Q,
                limit,
            )
            await rt.orders.create_venue_child(never)
            assert await rt.venue_children.reconcile() == 1
            [child] = await rt.venue_children.children_of(third.order.id)
            assert child.status is VenueChildStatus.DONE
            assert child.reason == "never reached the venue"
            order = await rt.orders.get(third.order.id)
            assert order.status.value == "cancelled" and order.filled_quantity == 0
        finally:
            await rt.stop()

    asyncio.run(scenario())


def test_a_child_found_after_its_parent_was_cancelled_fills_it_once(
    private_binance_account: Account, tmp_path: Path
) -> None:
    """The interleaving that raised `IllegalTransition: a cancelled order cannot be filled`:
    the answer is lost, the parent is cancelled meanwhile (by its client, or as stranded),
    then the reconciler finds the child executed on the exchange."""
    database = f"sqlite:///{tmp_path / 'cancelled.db'}"

    async def scenario() -> None:
        rt = await started(build(private_binance_account, database, lose_answers=True))
        try:
            ask = rt.market_data.venue_books("WETH/USDC")["binance"].asks[0].price
            limit = (ask * Decimal("1.02")).quantize(CENT)
            submitted = await rt.orders.submit(smart_buy(4, limit), routed=True)
            await rt.smart.execute(submitted.order)
            cancelled = await rt.orders.cancel(submitted.order.id, reason="client cancelled")
            assert cancelled.status.value == "cancelled" and cancelled.filled_quantity == 0
            [child] = await rt.venue_children.children_of(submitted.order.id)
            assert child.status is VenueChildStatus.PENDING

            assert await rt.venue_children.reconcile() == 1
            order = await rt.orders.get(submitted.order.id)
            # the venue executed it: the fill counts, the order stays cancelled
            assert order.status.value == "cancelled" and order.filled_quantity == Q
            assert await rt.venue_children.reconcile() == 0
            # the sender's late answer, folded in from its own (stale, pending) copy of the
            # child after the reconciler recorded the execution: nothing more
            answer = await rt.venue_children.venues["binance"].find_order(
                child.client_order_id, "WETH/USDC"
            )
            assert answer is not None and answer.filled == Q
            await rt.venue_children.apply(child, answer)
            with rt.read_engine.connect() as connection:
                fills = order_repo.fills_for_order(connection, submitted.order.id)
            assert [f.quantity for f in fills] == [Q]  # once
            assert rt.pre_trade.ledger.account(ALICE).positions["WETH/USDC"].quantity == Q
        finally:
            await rt.stop()

    asyncio.run(scenario())
