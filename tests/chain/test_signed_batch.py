"""Signed orders in a batch, on a real chain: each item gets exactly the answer it gets on its
own through `POST /v1/orders` (owner, trading key in and out of scope, stranger, spent and
cancelled nonces, a passed deadline, unreadable bytes), and the whole batch asks the chain
its questions in one JSON-RPC round trip."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from gateway.chain.anvil import Anvil
from gateway.chain.deploy import wallet_contract
from gateway.chain.rpc_calls import EthCalls, RpcUnavailable
from gateway.chain.signatures import min_nonce_call, nonce_used_call, trading_key_call
from gateway.chain.transactions import Sender
from tests.chain.settlement_desk import USDC, Desk, serve, wallet_app_signature

pytestmark = pytest.mark.chain
CALL = "WETH-20270326-2500-C"  # registered on chain by the desk's deployment


def test_a_batch_of_signed_orders_answers_each_as_alone_in_one_chain_read(
    w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3, tmp_path: Path
) -> None:
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'batch.db'}")
    key, narrow, stranger = anvil_node.dev_accounts()[7:10]
    owner = Sender(w3, desk.buyer)
    wallet = wallet_contract(w3, desk.buyer_wallet)
    now = int(w3.eth.get_block("latest")["timestamp"])
    owner.transact(wallet.functions.authorise_key(key.address, now + 86_400, True, 2**128 - 1, []))
    # spot only, at most 1,000 USDC an order
    owner.transact(
        wallet.functions.authorise_key(
            narrow.address, now + 86_400, False, 1_000 * USDC, [desk.d.spot_weth_usdc]
        )
    )
    owner.transact(wallet.functions.cancel_below(10))  # nonces below 10 are cancelled
    chain_id, deadline = w3.eth.chain_id, now + 3600

    async def body(
        http: httpx.AsyncClient, tag: str, signer: LocalAccount | None, nonce: int, **change: Any
    ) -> dict[str, Any]:
        """The order as a wallet app signs it: the typed data the gateway gives, signed."""
        order = {
            "account": desk.buyer_wallet,
            "client_order_id": tag,
            "instrument": "WETH/USDC",
            "side": "buy",
            "quantity": "0.2",
            "price": "2000",
        }
        deadline_of = change.pop("deadline", deadline)
        raw = change.pop("raw", None)  # bytes sent instead of the signature
        order.update(change)
        if signer is None:
            return order
        order["signature"] = await wallet_app_signature(
            http, order, signer, desk.buyer_wallet, chain_id, nonce, deadline_of
        )
        if raw is not None:
            order["signature"]["signature"] = raw
        return order

    cases: list[tuple[str, LocalAccount | None, int, dict[str, Any], tuple[int, str | None]]] = [
        ("owner", desk.buyer, 11, {}, (201, None)),
        ("key", key, 12, {}, (201, None)),
        ("narrow", narrow, 13, {}, (201, None)),
        ("narrow-notional", narrow, 14, {"quantity": "0.6"}, (403, "key_max_notional")),
        ("narrow-option", narrow, 18, {"instrument": CALL, "price": "100"}, (403, "key_scope")),
        ("stranger", stranger, 15, {}, (422, "invalid_signature")),
        ("cancelled", desk.buyer, 5, {}, (422, "invalid_signature")),
        ("key-cancelled", key, 6, {}, (422, "invalid_signature")),
        ("late", desk.buyer, 16, {"deadline": now - 1}, (422, "invalid_signature")),
        ("unsigned", None, 0, {}, (422, "signature_required")),
        ("unreadable", desk.buyer, 19, {"raw": "0x" + "00" * 65}, (422, "invalid_signature")),
        # unreadable bytes, but the nonce is refused first (the wallet's order of checks)
        (
            "unreadable-cancelled",
            desk.buyer,
            7,
            {"raw": "0x" + "00" * 65},
            (422, "invalid_signature"),
        ),
        ("owner-again", desk.buyer, 17, {"price": "1990"}, (201, None)),
    ]

    def outcome(status: int, answer: dict[str, Any]) -> tuple[int, str | None]:
        return status, (answer.get("error") or {}).get("code")

    async def scenario() -> None:
        rt = desk.runtime()
        http = await serve(rt)
        try:
            assert rt.signatures is not None
            reads = rt.signatures.chain_calls
            assert reads is not None, "anvil is spoken to over HTTP"
            bodies = [
                await body(http, f"b-{tag}", signer, n, **dict(change))
                for tag, signer, n, change, _ in cases
            ]
            asked = reads.round_trips
            answer = await http.post("/v1/orders/batch", json={"orders": bodies})
            assert answer.status_code == 200, answer.text
            assert reads.round_trips == asked + 1  # every order's questions in one batch
            results = answer.json()["results"]
            assert [outcome(r["status"], r) for r in results] == [c[4] for c in cases]
            fields = {
                c[0]: (r["error"] or {}).get("field") for c, r in zip(cases, results, strict=True)
            }
            assert fields["unreadable"] == "signature"
            assert fields["unreadable-cancelled"] == "signature.nonce"
            # the same orders one by one (new ids and, where the wallet would take them, new
            # nonces: the batch's orders hold theirs): the same answers, the same fields
            for (tag, signer, n, change, expected), batched in zip(cases, results, strict=True):
                fresh = n + 100 if n >= 10 else n
                single = await http.post(
                    "/v1/orders", json=await body(http, f"s-{tag}", signer, fresh, **dict(change))
                )
                assert outcome(single.status_code, single.json()) == expected, (tag, single.text)
                error = single.json().get("error") or {}
                assert error.get("field") == (batched["error"] or {}).get("field"), tag
            stored = (await http.get("/v1/orders", params={"account": desk.buyer_wallet})).json()
            accepted = sorted(o["client_order_id"] for o in stored["items"])
            names = [c[0] for c in cases if c[4][0] == 201]
            assert accepted == sorted([f"b-{t}" for t in names] + [f"s-{t}" for t in names])
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())


def test_eth_calls_answer_each_call_and_refuse_to_guess_when_the_node_is_gone(
    w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3, tmp_path: Path
) -> None:
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'calls.db'}")
    wallet = desk.buyer_wallet.lower()
    Sender(w3, desk.buyer).transact(
        wallet_contract(w3, desk.buyer_wallet).functions.cancel_below(7)
    )

    async def scenario() -> None:
        calls = EthCalls.for_web3(w3)
        assert calls is not None
        answers = await calls.call(
            [
                min_nonce_call(wallet),
                nonce_used_call(wallet, 3),
                trading_key_call(wallet, desk.third.address),
                # a contract without the function reverts: that call alone answers None
                min_nonce_call(desk.d.usdc.lower()),
            ]
        )
        assert answers[0] == (7).to_bytes(32, "big")
        assert answers[1] == bytes(32)
        assert answers[2] == bytes(128)  # no such key: an empty record
        assert answers[3] is None
        assert calls.round_trips == 1
        # past a node's batch limit: in chunks, answered in order
        many = [min_nonce_call(wallet)] + [nonce_used_call(wallet, n) for n in range(1_199)]
        answered = await calls.call(many)
        assert answered[0] == (7).to_bytes(32, "big") and answered[1:] == [bytes(32)] * 1_199
        assert calls.round_trips == 1 + 3
        await calls.aclose()

        gone = EthCalls("http://127.0.0.1:9", timeout=2)  # nothing listens on the discard port
        with pytest.raises(RpcUnavailable):
            await gone.call([min_nonce_call(wallet)])
        assert gone.round_trips == 0  # counts the batches answered
        await gone.aclose()

    asyncio.run(scenario())
