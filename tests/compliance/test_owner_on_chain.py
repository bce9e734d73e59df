"""On a real chain the screen reads a MarginWallet's owner(): a listed owner bars its wallet,
though the wallet itself is on no list."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.chain.option_world import World, signed_gateway

pytestmark = pytest.mark.chain


def test_a_listed_owner_bars_its_wallet_on_chain(world: World, tmp_path: Path) -> None:
    owner, wallet = world.buyer.address, world.buyer_wallet
    sanctions = tmp_path / "sanctions.csv"
    sanctions.write_text(f"{owner.lower()},TEST-LIST,the owner is listed\n")

    async def scenario() -> None:
        async with signed_gateway(world, tmp_path / "owner.db", sanctions_file=sanctions) as http:
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

    asyncio.run(scenario())
