"""Liquidity that is there is used (issue 14): after a quiet minute on the devnet chain (no
trade, no block, nothing resting or leaving the internal book), neither the Uniswap pool nor
the internal book is stale, and a signed smart sell routes across both of them: the resting
signed bid on the internal book first, the pool for the rest, and both parts settle on chain
in one transaction.

The minute passes on the gateway's clock (every part of the runtime reads it), one second at
a time, without sleeping through it: at each second the pool's reserves are read at the head
again (its heartbeat), while the internal book says nothing at all."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from web3 import Web3

from gateway.chain import tokens
from gateway.chain.anvil import Anvil
from gateway.chain.transactions import Sender
from gateway.chain.uniswap import get_reserves
from gateway.oms.settlement_service import SettlementService
from gateway.venues.market_data import FeedStatus
from tests.chain import settlement_desk
from tests.chain.settlement_desk import WETH, Desk, serve

pytestmark = pytest.mark.chain

SYMBOL = "WETH/USDC"
QUIET_SECONDS = 61


class QuietClock:
    """The wall clock, plus the quiet time the test lets pass."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += timedelta(seconds=seconds)


def test_after_a_quiet_minute_a_signed_smart_order_uses_the_pool_and_the_internal_book(
    w3: Web3,
    deployer: Sender,
    anvil_node: Anvil,
    fresh_chain: Web3,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'quiet.db'}")
    tokens.mint(deployer, desk.d.weth, desk.third_wallet, 5 * WETH)
    clock = QuietClock()
    # the desk's runtime, its venues and its signature checks all on the quiet clock
    monkeypatch.setattr(settlement_desk, "SystemClock", lambda: clock)

    def pool_reserves() -> tuple[int, int]:
        reserves = get_reserves(w3, desk.d.weth_usdc_pair)
        return reserves.of(desk.d.weth), reserves.of(desk.d.usdc)

    async def scenario() -> None:
        rt = desk.runtime(pool=True)
        http = await serve(rt)
        hub = rt.market_data
        try:
            book_feed = hub.subscribe(frozenset({SYMBOL}))
            while "uniswap" not in hub.book(SYMBOL).live_venues:
                await asyncio.wait_for(book_feed.next(), 30)
            # the buyer's signed bid rests on the internal book, above the pool's price
            bid = await desk.order(http, desk.buyer, desk.buyer_wallet, "buy", "1", "3010")
            assert bid["status"] == "accepted", bid  # resting, unfilled
            while not any(
                share.venue == "internal"
                for level in hub.book(SYMBOL).bids
                for share in level.shares
            ):
                await asyncio.wait_for(book_feed.next(), 10)
            hub.unsubscribe(book_feed)
            changes: list[tuple[str, FeedStatus]] = []
            hub.on_status_change(lambda venue, status: changes.append((venue, status)))
            block = w3.eth.block_number
            reserves = pool_reserves()

            # a quiet minute: each second, the pool is read at the head again; nothing else
            for _ in range(QUIET_SECONDS):
                clock.advance(1)
                await asyncio.wait_for(hub.heard_from("uniswap", clock.now()), 10)
                assert hub.stale_venues() & {"internal", "uniswap"} == frozenset()
            assert (w3.eth.block_number, pool_reserves()) == (block, reserves)  # quiet chain
            internal_feed = hub.feeds["internal"]
            assert internal_feed.last_update is not None
            assert clock.now() - internal_feed.last_update > timedelta(seconds=60)  # silent
            assert changes == []  # neither venue went stale at any moment of the minute

            assert hub.stale_venues() & {"internal", "uniswap"} == frozenset()
            hub.check_staleness()  # the watchdog's judgement now, too
            assert changes == []
            consolidated = (await http.get(f"/v1/book/{SYMBOL}")).json()
            assert consolidated["stale_venues"] == []
            assert {"internal", "uniswap"} <= set(consolidated["live_venues"])

            # the third trader's signed smart sell: the bid on the internal book, the pool for
            # the rest
            sell = await desk.order(
                http,
                desk.third,
                desk.third_wallet,
                "sell",
                "3",
                "2900",
                route="smart",
                time_in_force="ioc",
            )
            assert sell["status"] == "filled", sell
            fills = (await http.get(f"/v1/orders/{sell['id']}/fills")).json()
            by_venue = {f["venue"]: f["quantity"] for f in fills}
            assert by_venue == {"internal": "1", "uniswap": "2"}

            service = rt.settlement
            assert isinstance(service, SettlementService)
            outcome = await service.run_once()
            assert outcome.refused == 0, outcome
            settled = [
                *(await http.get(f"/v1/orders/{sell['id']}/fills")).json(),
                *(await http.get(f"/v1/orders/{bid['id']}/fills")).json(),
            ]
            assert {f["settlement"] for f in settled} == {"settled"}
            [tx_hash] = {f["tx_hash"] for f in settled}  # both parts, one transaction
            assert w3.eth.get_transaction_receipt(tx_hash)["status"] == 1
            assert pool_reserves()[0] == reserves[0] + 2 * WETH  # the pool took its 2 WETH
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())
