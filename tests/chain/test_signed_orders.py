"""Orders signed by the wallet owner (EIP-712) through the API, checked against a deployed
MarginWallet on anvil: the typed data the API gives is what the owner signs; anything else
(another key, another amount, a past deadline, an instrument not on chain) is refused before
it is stored."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from gateway.chain.deploy import settlement_contract, wallet_contract
from gateway.chain.transactions import Sender
from gateway.settlement import eip712
from tests.chain.option_world import USDC, WETH, World, option, signed_gateway, trade


def order_body(wallet: str, n: int, **changes: Any) -> dict[str, Any]:
    body = {
        "account": wallet,
        "client_order_id": f"s{n}",
        "instrument": "WETH/USDC",
        "side": "buy",
        "quantity": "1.5",
        "price": "3000",
    }
    body.update(changes)
    return body


async def signed(
    http: httpx.AsyncClient,
    body: dict[str, Any],
    key: bytes,
    nonce: int,
    deadline: int,
    chain_id: int,
) -> dict[str, Any]:
    typed = (
        await http.post(
            "/v1/orders/typed-data", json={"order": body, "nonce": str(nonce), "deadline": deadline}
        )
    ).json()
    assert typed["domain"]["verifyingContract"].lower() == body["account"].lower()
    order = eip712.order_from_message(typed["message"])
    signature = eip712.sign_order(order, key, chain_id, body["account"])
    return {
        **body,
        "signature": {
            "nonce": str(nonce),
            "deadline": deadline,
            "signature": "0x" + signature.hex(),
        },
    }


def test_signed_orders_are_checked_against_the_wallet_owner(
    world: World,
    tmp_path: Path,
) -> None:
    chain_id = world.w3.eth.chain_id
    deadline = int(world.w3.eth.get_block("latest")["timestamp"]) + 3600

    async def scenario(require: bool) -> None:
        async with signed_gateway(
            world, tmp_path / f"signed-{require}.db", require_signed_orders=require
        ) as http:
            wallet, key = world.buyer_wallet, world.buyer.key
            good = await signed(http, order_body(wallet, 1), key, 1, deadline, chain_id)
            accepted = await http.post("/v1/orders", json=good)
            assert accepted.status_code == 201, accepted.text
            assert accepted.json()["signed"]["nonce"] == "1"
            again = await http.get(f"/v1/orders/{accepted.json()['id']}")
            assert again.json()["signed"] == good["signature"] | {"nonce": "1"}

            # the writer's key for the buyer's wallet
            forged = await signed(
                http, order_body(wallet, 2), world.writer.key, 2, deadline, chain_id
            )
            refused = await http.post("/v1/orders", json=forged)
            assert refused.status_code == 422
            assert refused.json()["error"]["code"] == "invalid_signature"

            # a signature over 1.5 sent with 2
            tampered = await signed(http, order_body(wallet, 3), key, 3, deadline, chain_id)
            tampered["quantity"] = "2"
            refused = await http.post("/v1/orders", json=tampered)
            assert refused.json()["error"]["code"] == "invalid_signature"

            late = await signed(http, order_body(wallet, 4), key, 4, 1, chain_id)
            refused = await http.post("/v1/orders", json=late)
            assert refused.json()["error"]["field"] == "signature.deadline"

            perp = order_body(wallet, 5, instrument="WETH-PERP", price="3000")
            refused = await http.post(
                "/v1/orders/typed-data",
                json={"order": perp, "nonce": "5", "deadline": deadline},
            )
            assert refused.json()["error"]["code"] == "instrument_not_on_chain"

            unsigned = await http.post("/v1/orders", json=order_body(wallet, 6))
            if require:
                assert unsigned.json()["error"]["code"] == "signature_required"
            else:
                assert unsigned.status_code == 201 and unsigned.json()["signed"] is None
            # nothing refused was stored
            page = (await http.get("/v1/orders", params={"account": wallet})).json()
            assert len(page["items"]) == (1 if require else 2)

    asyncio.run(scenario(require=False))
    asyncio.run(scenario(require=True))


def test_a_nonce_the_wallet_would_refuse_is_refused_before_it_is_stored(
    world: World, tmp_path: Path
) -> None:
    """A nonce spent by a complete fill, or below the owner's cancel-below, is refused at
    intake (it would revert at settlement with `wallet: nonce used`), except for the retry of
    the order that spent it, which gets that order back."""
    d, w3 = world.d, world.w3
    chain_id = w3.eth.chain_id
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 3600

    async def scenario() -> None:
        async with signed_gateway(world, tmp_path / "nonces.db") as http:
            wallet, key = world.buyer_wallet, world.buyer.key
            first = await signed(http, order_body(wallet, 1), key, 2, deadline, chain_id)
            accepted = await http.post("/v1/orders", json=first)
            assert accepted.status_code == 201, accepted.text

            # the buyer's nonce 2 is spent on chain by a complete fill (trade() signs the
            # writer's sell with nonce 1 and the buyer's buy with nonce 2)
            call = option(world, 3_000 * USDC, True)
            world.operator.transact(
                settlement_contract(w3, d).functions.settle(
                    trade(world, call, WETH, 50 * USDC, 1)[2]
                )
            )
            assert wallet_contract(w3, wallet).functions.nonce_used(2).call()

            again = await http.post("/v1/orders", json=first)
            assert again.status_code == 200 and again.json()["id"] == accepted.json()["id"]

            reused = await signed(http, order_body(wallet, 2), key, 2, deadline, chain_id)
            refused = await http.post("/v1/orders", json=reused)
            assert refused.status_code == 422, refused.text
            error = refused.json()["error"]
            assert error["code"] == "invalid_signature"
            assert error["field"] == "signature.nonce" and "used" in error["message"]

            owner = Sender(w3, world.buyer)
            owner.transact(wallet_contract(w3, wallet).functions.cancel_below(100))
            below = await signed(http, order_body(wallet, 3), key, 50, deadline, chain_id)
            refused = await http.post("/v1/orders", json=below)
            assert refused.json()["error"]["field"] == "signature.nonce"
            assert "cancelled" in refused.json()["error"]["message"]

            fresh = await signed(http, order_body(wallet, 4), key, 100, deadline, chain_id)
            assert (await http.post("/v1/orders", json=fresh)).status_code == 201

            page = (await http.get("/v1/orders", params={"account": wallet})).json()
            assert [o["client_order_id"] for o in page["items"]] == ["s1", "s4"]

    asyncio.run(scenario())
