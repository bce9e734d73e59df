"""A trading key's revocation or expiry on chain cancels the orders it signed that still rest
on the gateway's book (`gateway.oms.key_revocations`), on a real anvil: the owner's orders and
other keys' stay, every cancel is audited with its reason, a second cycle changes nothing, and
the counterparty that comes next trades with an order that settles."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from web3 import Web3

from gateway.chain import signatures
from gateway.chain.anvil import Anvil
from gateway.chain.artifacts import compile_contract
from gateway.chain.deploy import wallet_contract
from gateway.chain.onchain_orders import OnchainOrders
from gateway.chain.transactions import Sender
from gateway.config import Settings
from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.trading_keys import TradingKey
from gateway.oms.key_revocations import (
    KeyRevocationFollower,
    KeySweep,
    expired_reason,
    refusal,
    revoked_reason,
)
from gateway.oms.order_signatures import OrderSignatures
from gateway.oms.service import SystemClock
from gateway.runtime import Runtime
from gateway.store import audit_log
from gateway.store.audit_log import AUDIT_LOG
from tests.chain.settlement_desk import Desk, serve
from tests.chain.test_access_on_chain import sign_in
from tests.chain.test_trading_keys_api import NO_LIMIT, Orders, created, ecdsa, settle_and_audit

DAY = 86_400


def test_a_key_is_refused_once_revoked_or_past_its_expiry() -> None:
    """The wallet's rule: an erased record is a revocation, an expiry before the block's
    timestamp an expiry (a key is still active in the block of its expiry)."""
    key = "0x" + "11" * 20
    assert refusal(key, TradingKey(0, False, 0, False), 1_000) == revoked_reason(key)
    assert refusal(key, TradingKey(999, True, NO_LIMIT, False), 1_000) == expired_reason(key)
    assert refusal(key, TradingKey(1_000, True, NO_LIMIT, True), 1_000) is None


@pytest.mark.chain
def test_the_key_logs_followed_are_the_wallets_events() -> None:
    wallet = compile_contract("MarginWallet")
    for name, topic in (
        ("KeyAuthorised", signatures.KEY_AUTHORISED_TOPIC),
        ("KeyRevoked", signatures.KEY_REVOKED_TOPIC),
    ):
        inputs = wallet.abi_entry(name, "event")["inputs"]
        assert Web3.keccak(text=f"{name}({','.join(i['type'] for i in inputs)})") == topic
        assert (inputs[0]["name"], inputs[0]["indexed"]) == ("key", True)


def follower(rt: Runtime) -> KeyRevocationFollower:
    assert rt.key_revocations is not None  # a chain is configured
    return rt.key_revocations


def cancel_records(rt: Runtime) -> dict[str, str]:
    """order id -> status reason of every audited cancel (and the log is intact)."""
    with rt.read_engine.connect() as connection:
        assert audit_log.verify(connection).ok
        rows = connection.execute(
            select(AUDIT_LOG).where(AUDIT_LOG.c.kind == "order.cancelled")
        ).all()
    return {row.entity_id: json.loads(row.payload)["status_reason"] for row in rows}


async def order_state(http: httpx.AsyncClient, order_id: str) -> tuple[str, str | None]:
    body = (await http.get(f"/v1/orders/{order_id}")).json()
    return body["status"], body["status_reason"]


def nothing_done(sweep: KeySweep) -> bool:
    return sweep == KeySweep((), (), ())


@pytest.mark.chain
def test_revoking_a_key_cancels_its_resting_orders_and_nothing_else(
    w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3, tmp_path: Path
) -> None:
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'revoke.db'}")
    key, other = anvil_node.dev_accounts()[7], anvil_node.dev_accounts()[8]
    owner = Sender(w3, desk.buyer)
    wallet = wallet_contract(w3, desk.buyer_wallet)
    expiry = int(w3.eth.get_block("latest")["timestamp"]) + DAY
    for address in (key.address, other.address):
        owner.transact(wallet.functions.authorise_key(address, expiry, True, NO_LIMIT, []))
    chain_id = w3.eth.chain_id

    async def scenario() -> None:
        rt = desk.runtime(require_signed=False)
        http = await serve(rt, as_operator=False)
        orders = Orders(desk, http)
        try:
            # the key signs in as itself and rests two bids for the wallet
            http.headers.update(await sign_in(http, key, chain_id))
            first = created(await orders.order(ecdsa(key), desk.buyer_wallet, "buy", "1", "2900"))
            second = created(await orders.order(ecdsa(key), desk.buyer_wallet, "buy", "1", "2800"))
            http.headers.update(await sign_in(http, other, chain_id))
            others = created(
                await orders.order(ecdsa(other), desk.buyer_wallet, "buy", "0.5", "2600")
            )
            http.headers.update(await sign_in(http, desk.buyer, chain_id))
            owners = created(
                await orders.order(ecdsa(desk.buyer), desk.buyer_wallet, "buy", "1", "2700")
            )
            resting = [first["id"], second["id"], others["id"], owners["id"]]
            assert all(rt.book.holds(order_id) for order_id in resting)
            # every key active: a cycle reads their records and leaves everything alone
            assert nothing_done(await follower(rt).run_once())

            # the owner revokes the key; the other key is revoked and authorised again (its
            # orders would settle again, so they stay): only the logs say what changed
            owner.transact(wallet.functions.revoke_key(key.address))
            owner.transact(wallet.functions.revoke_key(other.address))
            owner.transact(
                wallet.functions.authorise_key(other.address, expiry, True, NO_LIMIT, [])
            )
            reason = revoked_reason(key.address)
            sweep = await follower(rt).run_once()
            assert sweep.refused == ((desk.buyer_wallet, key.address, reason),)
            assert sorted(o.id for o in sweep.cancelled) == sorted([first["id"], second["id"]])
            assert sweep.stopped == ()
            for order_id in (first["id"], second["id"]):
                assert await order_state(http, order_id) == ("cancelled", reason)
                assert not rt.book.holds(order_id)
            for order_id in (others["id"], owners["id"]):
                assert await order_state(http, order_id) == ("accepted", None)
                assert rt.book.holds(order_id)
            audited = cancel_records(rt)
            assert audited == {first["id"]: reason, second["id"]: reason}

            # idempotent: the key has no open order left, nothing is cancelled or audited again
            assert nothing_done(await follower(rt).run_once())
            assert cancel_records(rt) == audited

            # the next seller meets the owner's bid, not the key's dead ones, and it settles
            http.headers.update(await sign_in(http, desk.seller, chain_id))
            sold = created(
                await orders.order(
                    ecdsa(desk.seller),
                    desk.seller_wallet,
                    "sell",
                    "1",
                    "2600",
                    time_in_force="ioc",
                )
            )
            assert (sold["status"], sold["average_price"]) == ("filled", "2700")
            await settle_and_audit(rt, desk, 2)
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())


@pytest.mark.chain
def test_a_key_past_its_expiry_loses_its_resting_orders(
    w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3, tmp_path: Path
) -> None:
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'expiry.db'}")
    key = anvil_node.dev_accounts()[7]
    owner = Sender(w3, desk.buyer)
    wallet = wallet_contract(w3, desk.buyer_wallet)
    now = int(w3.eth.get_block("latest")["timestamp"])
    owner.transact(wallet.functions.authorise_key(key.address, now + 30, True, NO_LIMIT, []))

    def mine_at(timestamp: int) -> None:
        provider: Any = w3.provider
        provider.make_request("evm_setNextBlockTimestamp", [timestamp])
        provider.make_request("evm_mine", [])

    async def scenario() -> None:
        rt = desk.runtime()
        http = await serve(rt)  # the operator brings the key's orders
        orders = Orders(desk, http)
        try:
            bid = created(await orders.order(ecdsa(key), desk.buyer_wallet, "buy", "1", "2900"))
            owners = created(
                await orders.order(ecdsa(desk.buyer), desk.buyer_wallet, "buy", "1", "2700")
            )
            assert nothing_done(await follower(rt).run_once())
            mine_at(now + 30)  # still active in the block of its expiry
            assert nothing_done(await follower(rt).run_once())

            mine_at(now + 31)  # no log: the kept record's expiry has passed
            reason = expired_reason(key.address)
            sweep = await follower(rt).run_once()
            assert sweep.refused == ((desk.buyer_wallet, key.address, reason),)
            assert [o.id for o in sweep.cancelled] == [bid["id"]]
            assert await order_state(http, bid["id"]) == ("cancelled", reason)
            assert await order_state(http, owners["id"]) == ("accepted", None)
            assert cancel_records(rt) == {bid["id"]: reason}
            assert nothing_done(await follower(rt).run_once())
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())


@pytest.mark.chain
def test_the_follower_runs_in_the_background_only_with_a_chain(w3: Web3, tmp_path: Path) -> None:
    clock = SystemClock()
    catalogue = devnet_catalogue()
    checks = OrderSignatures(w3, OnchainOrders(catalogue, {}), clock)

    async def loops(**chain: Any) -> set[str]:
        rt = Runtime.build(
            Settings(database_url=f"sqlite:///{tmp_path / f'loops{len(chain)}.db'}"),
            catalogue=catalogue,
            clock=clock,
            **chain,
        )
        await rt.start(expiry_interval=None, monitor=False, algos=False, settle_interval=None)
        try:
            return {task.get_name() for task in rt.background}
        finally:
            await rt.stop()

    assert "key-revocations" in asyncio.run(loops(signatures=checks))
    assert "key-revocations" not in asyncio.run(loops())
