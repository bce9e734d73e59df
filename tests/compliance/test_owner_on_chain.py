"""On a real chain the screen reads a MarginWallet's owner(): a listed owner bars its wallet,
though the wallet itself is on no list."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from gateway.api.app import create_app
from gateway.api.runtime import Runtime
from gateway.chain.onchain_orders import OnchainOrders
from gateway.config import Settings
from gateway.devnet.catalogue import devnet_catalogue
from gateway.oms.order_signatures import OrderSignatures
from gateway.oms.service import SystemClock
from tests.chain.option_world import World
from tests.operator_access import OPERATOR_TOKEN, operator_headers

pytestmark = pytest.mark.chain


def test_a_listed_owner_bars_its_wallet_on_chain(world: World, tmp_path: Path) -> None:
    owner, wallet = world.buyer.address, world.buyer_wallet
    sanctions = tmp_path / "sanctions.csv"
    sanctions.write_text(f"{owner.lower()},TEST-LIST,the owner is listed\n")

    async def scenario() -> None:
        clock, catalogue = SystemClock(), devnet_catalogue()
        signatures = OrderSignatures(
            world.w3, OnchainOrders(catalogue, {"WETH": world.d.weth, "USDC": world.d.usdc}), clock
        )
        rt = Runtime.build(
            Settings(
                database_url=f"sqlite:///{tmp_path / 'owner.db'}",
                sanctions_file=sanctions,
                operator_token=OPERATOR_TOKEN,
            ),
            catalogue=catalogue,
            clock=clock,
            signatures=signatures,
        )
        app = create_app(runtime=rt)
        app.state.runtime = rt
        await rt.start(expiry_interval=None, monitor=False, algos=False, reconcile_interval=None)
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://gw",
                headers=operator_headers(),
            ) as http:
                body = {
                    "account": wallet,
                    "client_order_id": "o1",
                    "instrument": "WETH/USDC",
                    "side": "buy",
                    "quantity": "1",
                    "price": "3000",
                }
                refused = await http.post("/v1/orders", json=body)
                assert refused.status_code == 403, refused.text
                assert refused.json()["error"]["code"] == "address_sanctioned"
                status = (await http.get(f"/v1/compliance/accounts/{wallet}")).json()
                assert status["owner"] == owner and status["sanctioned"]
                assert status["sanctions"][0]["address"] == owner.lower()
                # the writer's wallet has an owner nobody listed
                other = await http.post("/v1/orders", json={**body, "account": world.writer_wallet})
                assert other.status_code == 201, other.text
        finally:
            await rt.stop()

    asyncio.run(scenario())
