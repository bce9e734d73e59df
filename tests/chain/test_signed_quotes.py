"""A market maker's mass quotes signed by its wallet's trading key, on a real chain: a key may
mass-quote only signed levels; a level sent with the resting quote's own signature keeps that
order and its place in the queue, partly filled or not; any other signature (a changed level,
or the same level signed afresh) is a new order (a signature covers its price and quantity,
so a signed order is never amended); a level signed by a stranger is refused alone; and the
quote that trades settles on chain with the key's signature and passes the audit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from isthmus_client import AsyncIsthmus, NonceStore, Signer
from web3 import Web3

from gateway.chain.anvil import Anvil
from gateway.chain.deploy import wallet_contract
from gateway.chain.transactions import Sender
from tests.chain.settlement_desk import Desk, serve_transport, wallet_app_signature
from tests.chain.test_access_on_chain import sign_in
from tests.chain.test_trading_keys_api import settle_and_audit
from tests.operator_access import operator_headers

pytestmark = pytest.mark.chain


def test_signed_mass_quotes_keep_their_place_and_settle_on_chain(
    w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3, tmp_path: Path
) -> None:
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'quotes.db'}")
    key, stranger = anvil_node.dev_accounts()[7:9]
    now = int(w3.eth.get_block("latest")["timestamp"])
    Sender(w3, desk.buyer).transact(
        wallet_contract(w3, desk.buyer_wallet).functions.authorise_key(
            key.address, now + 86_400, True, 2**128 - 1, []
        )
    )
    chain_id, deadline = w3.eth.chain_id, now + 3600
    wallet = desk.buyer_wallet
    nonces = iter(range(100, 200))

    async def level(
        http: httpx.AsyncClient, signer: LocalAccount | None, price: str, quantity: str
    ) -> dict[str, Any]:
        """A bid level, signed as a wallet app signs it: the typed data the gateway gives."""
        entry: dict[str, Any] = {"price": price, "quantity": quantity}
        if signer is None:
            return entry
        nonce = next(nonces)
        order = {
            "account": wallet,
            "client_order_id": "level",
            "instrument": "WETH/USDC",
            "side": "buy",
            "quantity": quantity,
            "price": price,
            "post_only": True,
        }
        entry["signature"] = await wallet_app_signature(
            http, order, signer, wallet, chain_id, nonce, deadline
        )
        return entry

    def quote(bids: list[dict[str, Any]]) -> dict[str, Any]:
        return {"account": wallet, "quotes": [{"instrument": "WETH/USDC", "bids": bids}]}

    def by_price(answer: httpx.Response) -> dict[str, dict[str, Any]]:
        assert answer.status_code == 200, answer.text
        return {entry["price"]: entry for entry in answer.json()["levels"]}

    async def scenario() -> None:
        rt = desk.runtime(require_signed=False)  # the operator's unsigned bid below
        transport = await serve_transport(rt)
        operator = httpx.AsyncClient(
            transport=transport, base_url="http://gw", headers=operator_headers()
        )
        maker = httpx.AsyncClient(transport=transport, base_url="http://gw")
        try:
            maker.headers.update(await sign_in(maker, key, chain_id))
            # a trading key never quotes unsigned: its scope is on the signature
            unsigned = await maker.post(
                "/v1/quotes", json=quote([await level(maker, None, "1990", "1")])
            )
            assert (unsigned.status_code, unsigned.json()["error"]["code"]) == (
                403,
                "signature_required",
            )

            sent = {
                "1990": await level(maker, key, "1990", "1"),
                "1980": await level(maker, key, "1980", "0.5"),
                "1970": await level(maker, key, "1970", "0.4"),
            }
            first = by_price(await maker.post("/v1/quotes", json=quote(list(sent.values()))))
            assert {p: e["action"] for p, e in first.items()} == {
                "1990": "placed",
                "1980": "placed",
                "1970": "placed",
            }
            assert all(e["order"]["signed"] is not None for e in first.values())
            # someone else bids at 1990 after the maker
            other = await operator.post(
                "/v1/orders",
                json={
                    "account": desk.third_wallet,
                    "client_order_id": "third-1990",
                    "instrument": "WETH/USDC",
                    "side": "buy",
                    "quantity": "1",
                    "price": "1990",
                },
            )
            assert other.status_code == 201, other.text

            resent = {
                "1990": sent["1990"],  # the same order: its own signature
                "1980": await level(maker, key, "1980", "0.3"),  # changed: a new order
                "1970": await level(maker, key, "1970", "0.4"),  # the same, signed afresh
                "1960": await level(maker, stranger, "1960", "0.5"),  # not the wallet's
            }
            second = await maker.post("/v1/quotes", json=quote(list(resent.values())))
            levels = by_price(second)
            assert [e["price"] for e in second.json()["levels"]] == ["1990", "1980", "1970", "1960"]
            assert {p: e["action"] for p, e in levels.items()} == {
                "1990": "kept",
                "1980": "placed",
                "1970": "placed",
                "1960": "refused",
            }
            assert levels["1960"]["error"]["code"] == "invalid_signature"
            assert levels["1990"]["order_id"] == first["1990"]["order_id"]
            for price in ("1980", "1970"):  # a new signature is a new order on the book
                assert levels[price]["order_id"] != first[price]["order_id"]
                assert levels[price]["order"]["signed"] == resent[price]["signature"]
            cancelled = sorted(o["id"] for o in second.json()["cancelled"])
            assert cancelled == sorted([first["1980"]["order_id"], first["1970"]["order_id"]])
            # a signed quote is never amended: its signature covers its price and quantity
            kept = levels["1990"]["order_id"]
            amend = await maker.patch(f"/v1/orders/{kept}", json={"quantity": "0.5"})
            assert (amend.status_code, amend.json()["error"]["code"]) == (
                403,
                "signature_required",
            )
            amend = await operator.patch(f"/v1/orders/{kept}", json={"quantity": "0.5"})
            assert (amend.status_code, amend.json()["error"]["code"]) == (
                422,
                "signed_order_not_amendable",
            )

            # a seller takes 0.6 at 1990: the maker's kept quote is first in the queue
            await desk.order(operator, desk.seller, desk.seller_wallet, "sell", "0.6", "1990")
            quoted = (await operator.get(f"/v1/orders/{kept}")).json()
            assert (quoted["status"], quoted["filled_quantity"]) == ("partially_filled", "0.6")
            third = (await operator.get(f"/v1/orders/{other.json()['id']}")).json()
            assert third["filled_quantity"] == "0"
            # the same signature again after the partial fill: still the same order, its rest
            # resting (a second order under one signature could not settle past what is left)
            again = by_price(
                await maker.post("/v1/quotes", json=quote([sent["1990"], resent["1980"]]))
            )
            assert again["1990"]["action"] == "kept" and again["1990"]["order_id"] == kept
            assert again["1980"]["action"] == "kept"
            resting = (await operator.get(f"/v1/orders/{kept}")).json()
            assert (resting["status"], resting["remaining_quantity"]) == ("partially_filled", "0.4")
            # a seller takes the rest of 1990 and all of 1980; the 1980 quote is gone, and its
            # signature, sent again before the trade settles, may not rest a second time
            pulled = await operator.delete(f"/v1/orders/{other.json()['id']}")
            assert pulled.status_code == 200, pulled.text
            await desk.order(operator, desk.seller, desk.seller_wallet, "sell", "0.7", "1980")
            spent = by_price(
                await maker.post("/v1/quotes", json=quote([sent["1990"], resent["1980"]]))
            )
            assert spent["1980"]["action"] == "refused"
            assert (spent["1980"]["error"]["code"], spent["1980"]["error"]["field"]) == (
                "invalid_signature",
                "signature.nonce",
            )
            # the fills settle with the key's signatures (1 WETH signed, 1 filled; 0.3 of 0.3)
            await settle_and_audit(rt, desk, 6)
        finally:
            await maker.aclose()
            await operator.aclose()
            await rt.stop()

    asyncio.run(scenario())


def test_the_client_requotes_with_kept_signatures_and_signs_a_traded_level_afresh(
    w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3, tmp_path: Path
) -> None:
    """isthmus_client's mass_quote(sign=True): an unchanged level is resent with the
    signature it rests with (kept, in its place); a level whose quote traded meanwhile is
    refused by the gateway under that signature, so the client signs it afresh and sends the
    quote once more, in the same call; the trade settles on chain."""
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'client-quotes.db'}")
    key = anvil_node.dev_accounts()[7]
    now = int(w3.eth.get_block("latest")["timestamp"])
    Sender(w3, desk.buyer).transact(
        wallet_contract(w3, desk.buyer_wallet).functions.authorise_key(
            key.address, now + 86_400, True, 2**128 - 1, []
        )
    )
    bids = {"WETH/USDC": ([("1990", "0.2"), ("1980", "0.2")], [])}

    def actions(answer: dict[str, Any]) -> list[tuple[str, str]]:
        return [(level["price"], level["action"]) for level in answer["levels"]]

    async def scenario() -> None:
        rt = desk.runtime()
        transport = await serve_transport(rt)
        operator = httpx.AsyncClient(
            transport=transport, base_url="http://gw", headers=operator_headers()
        )
        try:
            async with AsyncIsthmus(
                "http://gw",
                Signer(key, desk.buyer_wallet),
                transport=transport,
                nonces=NonceStore(None),
                rpc_url=desk.rpc_url,
            ) as maker:
                first = await maker.mass_quote(None, bids, sign=True)
                assert actions(first) == [("1990", "placed"), ("1980", "placed")]
                again = await maker.mass_quote(None, bids, sign=True)
                assert actions(again) == [("1990", "kept"), ("1980", "kept")]
                ids = [level["order_id"] for level in again["levels"]]
                assert ids == [level["order_id"] for level in first["levels"]]

                await desk.order(operator, desk.seller, desk.seller_wallet, "sell", "0.2", "1990")
                after = await maker.mass_quote(None, bids, sign=True)
                assert actions(after) == [("1990", "placed"), ("1980", "kept")]
                assert after["levels"][0]["order_id"] != ids[0]
                assert (
                    after["levels"][0]["order"]["signed"]["nonce"]
                    != (first["levels"][0]["order"]["signed"]["nonce"])
                )
            await settle_and_audit(rt, desk, 2)
        finally:
            await operator.aclose()
            await rt.stop()

    asyncio.run(scenario())
