"""A signed order may not take a nonce another order of its wallet holds, on a real chain.

The wallet learns a nonce is spent only when a fill settles, and a second order under the
same signature fills the same digest: two orders under one nonce would both trade on the book
and one of their fills could never settle. The gateway refuses the second one at intake,
however it comes (single, batch, mass quote, at the same moment, after a restart), while a
retry of the first (same `client_order_id`) still gets that order back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from web3 import Web3

from gateway.chain.anvil import Anvil
from gateway.chain.transactions import Sender
from tests.chain.settlement_desk import Desk, serve, wallet_app_signature

pytestmark = pytest.mark.chain


def test_a_nonce_is_taken_by_one_order_only(
    w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3, tmp_path: Path
) -> None:
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'nonces.db'}")
    wallet, owner = desk.buyer_wallet, desk.buyer
    chain_id = w3.eth.chain_id
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 3600

    async def signed(
        http: httpx.AsyncClient, client_id: str, nonce: int, price: str = "2000", **extra: Any
    ) -> dict[str, Any]:
        order: dict[str, Any] = {
            "account": wallet,
            "client_order_id": client_id,
            "instrument": "WETH/USDC",
            "side": "buy",
            "quantity": "0.1",
            "price": price,
            **extra,
        }
        order["signature"] = await wallet_app_signature(
            http, order, owner, wallet, chain_id, nonce, deadline
        )
        return order

    def refused_on_nonce(answer: httpx.Response | dict[str, Any], status: int = 422) -> bool:
        if isinstance(answer, httpx.Response):
            body, got = answer.json(), answer.status_code
        else:
            body, got = answer, answer["status"]
        error = body.get("error") or {}
        return (got, error.get("code"), error.get("field")) == (
            status,
            "invalid_signature",
            "signature.nonce",
        )

    async def first_life() -> None:
        rt = desk.runtime()
        http = await serve(rt)
        try:
            first = await signed(http, "a", 1)
            placed = await http.post("/v1/orders", json=first)
            assert placed.status_code == 201, placed.text
            # the same signed order again under a new client id: a second order, refused
            again = await http.post("/v1/orders", json={**first, "client_order_id": "a2"})
            assert refused_on_nonce(again), again.text
            # another order signed with the same nonce: refused too
            other = await http.post("/v1/orders", json=await signed(http, "b", 1, "1990"))
            assert refused_on_nonce(other), other.text
            # the retry of the first (same client id) is that order, not a refusal
            retry = await http.post("/v1/orders", json=first)
            assert retry.status_code == 200 and retry.json()["id"] == placed.json()["id"]

            # a batch: the first of two orders under one nonce goes in, the second is
            # refused, and a nonce an earlier order holds is refused in its place
            batch = await http.post(
                "/v1/orders/batch",
                json={
                    "orders": [
                        await signed(http, "c", 2, "1980"),
                        await signed(http, "d", 2, "1970"),
                        await signed(http, "e", 1, "1960"),
                        await signed(http, "f", 3, "1950"),
                    ]
                },
            )
            results = batch.json()["results"]
            assert [r["status"] for r in results] == [201, 422, 422, 201], batch.text
            assert refused_on_nonce(results[1]) and refused_on_nonce(results[2])

            # two orders under one nonce at the same moment: exactly one is stored
            racing = await asyncio.gather(
                *[
                    http.post("/v1/orders", json=await signed(http, f"r{i}", 4, f"19{i}0"))
                    for i in range(4)
                ]
            )
            assert sorted(r.status_code for r in racing) == [201, 422, 422, 422]
            assert all(refused_on_nonce(r) for r in racing if r.status_code != 201)

            # a cancelled order keeps its nonce (it may have filled in part: its digest is
            # partly spent on chain, and another order's fill could spend the nonce)
            cancelled = await http.delete(f"/v1/orders/{placed.json()['id']}")
            assert cancelled.status_code == 200, cancelled.text
            after = await http.post("/v1/orders", json=await signed(http, "g", 1, "1940"))
            assert refused_on_nonce(after), after.text

            # a mass quote's new level under a held nonce is refused alone
            quoted = await http.post(
                "/v1/quotes",
                json={
                    "account": wallet,
                    "quotes": [
                        {
                            "instrument": "WETH/USDC",
                            "bids": [
                                _level(await signed(http, "q", 3, "1930", post_only=True)),
                                _level(await signed(http, "q", 5, "1920", post_only=True)),
                            ],
                        }
                    ],
                },
            )
            levels = {level["price"]: level for level in quoted.json()["levels"]}
            assert levels["1930"]["action"] == "refused", quoted.text
            assert levels["1930"]["error"]["field"] == "signature.nonce"
            assert levels["1920"]["action"] == "placed", quoted.text
        finally:
            await http.aclose()
            await rt.stop()

    async def second_life() -> None:
        """A restarted gateway knows the stored nonces before it takes an order."""
        rt = desk.runtime()
        http = await serve(rt)
        try:
            for nonce in (1, 2, 3, 4, 5):
                late = await http.post(
                    "/v1/orders", json=await signed(http, f"late{nonce}", nonce, "1900")
                )
                assert refused_on_nonce(late), (nonce, late.text)
            fresh = await http.post("/v1/orders", json=await signed(http, "new", 6, "1900"))
            assert fresh.status_code == 201, fresh.text
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(first_life())
    asyncio.run(second_life())


def _level(order: dict[str, Any]) -> dict[str, Any]:
    return {"price": order["price"], "quantity": order["quantity"], "signature": order["signature"]}
