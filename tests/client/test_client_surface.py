"""The rest of the API through the client, against the devnet gateway: a signed trade that
settles on chain (fills, settlement batch, the gateway's audit and the client's own chain-only
auditor), batches, mass quotes, amend and cancel, the dead man's switch, quotes, what-if and
risk, algos and TCA."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from eth_account import Account
from isthmus_client import AsyncIsthmus, NonceStore, OperatorToken, Signer, audit, errors

from tests.client.devnet_gateway import DEMO_KEYS, DevnetGateway

pytestmark = pytest.mark.chain


def test_a_signed_trade_settles_and_the_client_verifies_it_on_chain(
    devnet: DevnetGateway,
) -> None:
    alice = Signer.from_key(DEMO_KEYS["alice"], devnet.demo_wallet("alice"))
    bob = Signer.from_key(DEMO_KEYS["bob"], devnet.demo_wallet("bob"))

    async def scenario() -> None:
        async with (
            AsyncIsthmus(devnet.url, alice, nonces=NonceStore(None)) as a,
            AsyncIsthmus(devnet.url, bob, nonces=NonceStore(None)) as b,
        ):
            bid = await a.place_order("WETH/USDC", "buy", "0.25", price="3050")
            ask = await b.place_order("WETH/USDC", "sell", "0.25", price="3050")
            assert ask.status == "filled"
            fills = await b.wait_settled(ask.id, timeout=120)
            assert [f.quantity for f in fills] == [Decimal("0.25")]
            assert fills[0].price == Decimal("3050") and fills[0].tx_hash
            assert (await a.get_order(bid.id)).status == "filled"
            batch = await a.settlement(fills[0].batch_id or "")
            assert batch.status == "confirmed" and batch.tx_hash == fills[0].tx_hash
            # a batch carries many accounts' fills: alice's session sees her own only
            assert {f.order_id for f in batch.fills} == {bid.id}
            chain = await a.chain()
        report = await asyncio.to_thread(audit.verify, chain.rpc_url or "", chain.settlement)
        assert report.ok, report.problems
        on_chain = [f for f in report.fills if f.tx_hash == fills[0].tx_hash]
        assert {f.wallet for f in on_chain} >= {alice.wallet, bob.wallet}

    asyncio.run(scenario())


def test_a_wallet_mass_quotes_signed_levels(devnet: DevnetGateway) -> None:
    """The client signs each level for the wallet (EIP-712); the gateway checks every level's
    signature on chain and places them; the same quote again keeps them."""
    carol = Signer.from_key(DEMO_KEYS["carol"], devnet.demo_wallet("carol"))
    # bids far below any ask, on a strike nobody else quotes: nothing trades
    quotes = {"WETH/USDC": ([("1234", "0.1"), ("1233", "0.2")], [])}

    async def scenario() -> None:
        async with AsyncIsthmus(devnet.url, carol, nonces=NonceStore(None)) as c:
            quoted = await c.mass_quote(None, quotes, sign=True)
            levels = quoted["levels"]
            assert [level["action"] for level in levels] == ["placed", "placed"], levels
            signed = [level["order"]["signed"] for level in levels]
            assert all(s is not None for s in signed)
            assert len({s["nonce"] for s in signed}) == 2  # each level its own nonce
            again = await c.mass_quote(None, quotes, sign=True)
            assert [level["action"] for level in again["levels"]] == ["kept", "kept"]
            assert [level["order_id"] for level in again["levels"]] == [
                level["order_id"] for level in levels
            ]
            pulled = await c.mass_quote(None, {"WETH/USDC": ([], [])}, sign=True)
            assert sorted(o["id"] for o in pulled["cancelled"]) == sorted(
                level["order_id"] for level in levels
            )

    asyncio.run(scenario())


def test_batches_quotes_amends_cancels_and_the_dead_mans_switch(devnet: DevnetGateway) -> None:
    account = Account.create().address  # an account of its own: other tests rest orders too

    async def scenario() -> None:
        async with AsyncIsthmus(devnet.url, OperatorToken(devnet.operator_token)) as op:
            items = await op.place_batch(
                [
                    {
                        "account": account,
                        "client_order_id": f"surface-b{i}",
                        "instrument": "WETH/USDC",
                        "side": "buy",
                        "quantity": "1",
                        "price": str(1000 + i),
                    }
                    for i in range(3)
                ]
                + [
                    {
                        "account": account,
                        "client_order_id": "surface-bad",
                        "instrument": "WETH/USDC",
                        "side": "buy",
                        "quantity": "1",
                        "price": "1000.001",
                    }
                ]
            )
            assert [i.status for i in items] == [201, 201, 201, 422]
            assert isinstance(items[3].error, errors.InvalidPriceTick)
            first = items[0].order
            assert first is not None
            amended = await op.amend_order(first.id, price="999", expected_version=first.version)
            assert amended.price == Decimal("999")
            with pytest.raises(errors.VersionConflict):
                await op.amend_order(first.id, price="998", expected_version=first.version)

            quoted = await op.mass_quote(
                account,
                {"WETH/USDC": ([("900", "2"), ("899", "2")], [("5000", "1")])},
            )
            assert [level["action"] for level in quoted["levels"]] == ["placed"] * 3
            again = await op.mass_quote(
                account, {"WETH/USDC": ([("900", "2"), ("899", "2")], [("5000", "1")])}
            )
            assert [level["action"] for level in again["levels"]] == ["kept"] * 3

            armed = await op.cancel_all_after(60, accounts=[account])
            assert armed["timeout_seconds"] == 60
            assert armed["armed"] and armed["accounts"] == [account]
            disarmed = await op.cancel_all_after(0, accounts=[account])
            assert not disarmed["armed"] and disarmed["timeout_seconds"] is None

            cancelled = await op.cancel_orders(account=account, instrument="WETH/USDC")
            assert len(cancelled) == 6 and {c.status for c in cancelled} == {200}
            assert all(c.order is not None and c.order.status == "cancelled" for c in cancelled)
            open_orders, _ = await op.list_orders(account=account, status="accepted")
            assert open_orders == []

    asyncio.run(scenario())


def test_quotes_risk_what_if_algos_and_tca(devnet: DevnetGateway) -> None:
    account = devnet.demo_wallet("alice")

    async def scenario() -> None:
        async with AsyncIsthmus(devnet.url, OperatorToken(devnet.operator_token)) as op:
            route = await op.quote("WETH/USDC", "buy", "2")
            assert Decimal(route["route"]["requested"]) == 2
            assert {leg["venue"] for leg in route["route"]["legs"]}
            risk = await op.account_risk(account)
            assert risk["account"] == account
            proposed = {
                "account": account,
                "client_order_id": "what-if",
                "instrument": "WETH/USDC",
                "side": "buy",
                "quantity": "1",
                "price": "3000",
            }
            what_if = await op.what_if(order=proposed)
            assert what_if
            now = datetime.now(UTC)
            algo = await op.start_algo(
                kind="twap",
                account=account,
                instrument="WETH/USDC",
                side="buy",
                quantity="1",
                start=now.isoformat(),
                end=(now + timedelta(hours=1)).isoformat(),
                limit_price="1000",
                min_child="0.1",
                max_child="0.2",
                interval="60",
            )
            paused = await op.pause_algo(algo["id"])
            assert paused["status"] == "paused"
            assert (await op.cancel_algo(algo["id"]))["status"] in ("cancelled", "canceled")
            with pytest.raises(errors.NotFound):
                await op.algo("algo_does_not_exist")
            smart = await op.place_order(
                "WETH/USDC",
                "buy",
                "0.5",
                price="3200",
                account=account,
                route="smart",
                time_in_force="ioc",
                sign=False,
            )
            tca = await op.tca(smart.id)
            assert tca
            # an order done without a fill: nothing to wait for
            missed = await op.place_order(
                "WETH/USDC",
                "buy",
                "1",
                price="2800",
                account=Account.create().address,
                time_in_force="ioc",
                sign=False,
            )
            assert missed.status == "cancelled"
            assert await op.wait_settled(missed.id, timeout=5) == []

    asyncio.run(scenario())


def test_clients_that_share_a_wallet_never_sign_one_nonce_twice(devnet: DevnetGateway) -> None:
    """A signature's nonce is used once: the gateway refuses an order whose nonce another
    order of the wallet holds. A client with a fresh nonce store starts from the gateway's
    next free nonce; one whose store fell behind (another machine signed meanwhile) is
    refused once, takes the gateway's next free nonce and signs again."""
    carol = Signer.from_key(DEMO_KEYS["carol"], devnet.demo_wallet("carol"))
    far = {"WETH/USDC": ([("1111", "0.1")], [])}

    def nonce_of(order: Any) -> int:
        return int(order.raw["signed"]["nonce"])

    async def scenario() -> None:
        async with (
            AsyncIsthmus(devnet.url, carol, nonces=NonceStore(None)) as first,
            AsyncIsthmus(devnet.url, carol, nonces=NonceStore(None)) as second,
        ):
            one = await first.place_order("WETH/USDC", "buy", "0.1", price="1001")
            # a fresh store starts from the gateway's next free nonce: signed bodies sent in
            # a batch (nothing signs them again) are all taken
            bodies = [
                await second.sign_order("WETH/USDC", "buy", "0.1", price=f"100{i}")
                for i in (2, 3, 4)
            ]
            batch = await second.place_batch(bodies)
            assert [item.status for item in batch] == [201, 201, 201], batch
            taken = [nonce_of(one)] + [nonce_of(item.order) for item in batch]
            # the first client's store is three behind: refused once, signed again above
            three = await first.place_order("WETH/USDC", "buy", "0.1", price="1005")
            assert three.created and nonce_of(three) > max(taken), (taken, nonce_of(three))
            # the same for a mass quote's fresh level (the second store is behind by one now)
            quoted = await second.mass_quote(None, far, sign=True)
            assert [level["action"] for level in quoted["levels"]] == ["placed"], quoted
            quote_nonce = int(quoted["levels"][0]["order"]["signed"]["nonce"])
            assert quote_nonce > nonce_of(three)
            next_free = await first.request("GET", f"/v1/accounts/{carol.wallet}/next-nonce")
            assert int(next_free.json()["next_nonce"]) == quote_nonce + 1
            for order in (one, three, *(item.order for item in batch)):
                assert order is not None
                await first.cancel_order(order.id)
            await second.mass_quote(None, {"WETH/USDC": ([], [])}, sign=True)

    asyncio.run(scenario())
