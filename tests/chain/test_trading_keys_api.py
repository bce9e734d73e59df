"""Who else may sign for a MarginWallet, through the HTTP API on a real chain: a trading key
the owner authorised (within its instruments and maximum notional, until revoked), and the
owners of a 2-of-3 Safe that owns a wallet (EIP-1271). Each signs in with Ethereum, sees the
wallet, and its accepted orders settle and pass `isthmus audit verify`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner
from web3 import Web3

from gateway.chain import signatures, tokens
from gateway.chain.anvil import Anvil
from gateway.chain.artifacts import compile_contract, safe_artifact
from gateway.chain.deploy import create_wallet, wallet_contract
from gateway.chain.onchain_orders import OnchainOrders
from gateway.chain.safe import (
    create_safe,
    exec_safe_transaction,
    safe_message_hash,
    sign_safe_message,
)
from gateway.chain.transactions import Sender
from gateway.cli import app
from gateway.devnet.catalogue import devnet_catalogue
from gateway.oms.settlement_service import SettlementService
from gateway.settlement import eip712
from tests.chain.settlement_desk import USDC, WETH, Desk, serve
from tests.chain.test_access_on_chain import Hmac, sign_in
from tests.operator_access import operator_headers

pytestmark = pytest.mark.chain

NO_LIMIT = 2**128 - 1
CALL, PUT, OTHER_CALL = "WETH-20270326-2500-C", "WETH-20270326-2500-P", "WETH-20270326-2800-C"
Signer = Callable[[bytes], bytes]  # EIP-712 digest -> signature bytes


def ecdsa(account: LocalAccount) -> Signer:
    return lambda digest: eip712.sign_digest(digest, account.key)


def safe_owners(chain_id: int, safe: str, *owners: LocalAccount) -> Signer:
    """The Safe's owners sign the Safe message of the digest (what isValidSignature takes)."""
    keys = [owner.key for owner in owners]
    return lambda digest: sign_safe_message(keys, safe_message_hash(chain_id, safe, digest))


class Orders:
    """Builds, signs and submits orders and strategies as a wallet app would, with any
    signer; returns the raw response so refusals can be looked at."""

    def __init__(self, desk: Desk, http: httpx.AsyncClient) -> None:
        self.desk, self.http = desk, http
        self.chain_id = desk.w3.eth.chain_id

    def _next(self) -> tuple[int, int]:
        self.desk.nonce += 1
        deadline = int(self.desk.w3.eth.get_block("latest")["timestamp"]) + 3600
        return self.desk.nonce, deadline

    async def _typed(self, kind: str, body: dict[str, Any], nonce: int, deadline: int) -> Any:
        typed = await self.http.post(
            "/v1/orders/typed-data", json={kind: body, "nonce": str(nonce), "deadline": deadline}
        )
        assert typed.status_code == 200, typed.text
        return typed.json()["message"]

    async def order(
        self,
        sign: Signer | None,
        wallet: str,
        side: str,
        quantity: str,
        price: str,
        instrument: str = "WETH/USDC",
        **extra: Any,
    ) -> httpx.Response:
        nonce, deadline = self._next()
        body: dict[str, Any] = {
            "account": wallet,
            "client_order_id": f"k{nonce}",
            "instrument": instrument,
            "side": side,
            "quantity": quantity,
            "price": price,
            **extra,
        }
        if sign is not None:
            message = await self._typed("order", body, nonce, deadline)
            digest = eip712.order_digest(eip712.order_from_message(message), self.chain_id, wallet)
            body["signature"] = _signature(nonce, deadline, sign(digest))
        return await self.http.post("/v1/orders", json=body)

    async def strategy(
        self, sign: Signer, wallet: str, price: str, legs: list[tuple[str, str]]
    ) -> httpx.Response:
        nonce, deadline = self._next()
        body: dict[str, Any] = {
            "account": wallet,
            "client_order_id": f"s{nonce}",
            "side": "buy",
            "quantity": "1",
            "price": price,
            "legs": [{"instrument": i, "side": side, "ratio": 1} for i, side in legs],
        }
        message = await self._typed("strategy", body, nonce, deadline)
        strategy = eip712.strategy_from_message(message)
        digest = eip712.strategy_digest(strategy, self.chain_id, wallet)
        body["signature"] = _signature(nonce, deadline, sign(digest))
        return await self.http.post("/v1/strategies", json=body)


def _signature(nonce: int, deadline: int, signature: bytes) -> dict[str, Any]:
    return {"nonce": str(nonce), "deadline": deadline, "signature": "0x" + signature.hex()}


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


def refused(response: httpx.Response, status: int, code: str) -> None:
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text


def instrument_id(desk: Desk, symbol: str) -> bytes:
    onchain = OnchainOrders(devnet_catalogue(), {"WETH": desk.d.weth, "USDC": desk.d.usdc})
    return onchain.preimage(symbol).id


async def settle_and_audit(rt: Any, desk: Desk, expected_fills: int) -> None:
    """Settle what matched in one batch, then prove it from the chain and the store."""
    service = rt.settlement
    assert isinstance(service, SettlementService)
    outcome = await service.run_once()
    assert (outcome.batches, outcome.settled) == (1, expected_fills), outcome
    result = CliRunner().invoke(
        app,
        [
            "audit",
            "verify",
            "--rpc",
            desk.rpc_url,
            "--settlement",
            desk.d.settlement,
            "--db",
            desk.database,
            "--json",
        ],
    )
    report = json.loads(result.stdout)
    problems = [p for f in report["fills"] for p in f["problems"]] + report["problems"]
    assert result.exit_code == 0 and report["ok"], problems
    assert report["counts"]["fills"] == expected_fills
    assert report["store"]["matched"] == expected_fills


def _types(params: list[dict[str, Any]]) -> list[str]:
    return [p["type"] for p in params]


def test_the_gateway_reads_the_functions_the_contracts_have() -> None:
    """The ABI fragments the gateway calls are the compiled wallet's and the Safe's."""
    wallet = compile_contract("MarginWallet")
    for entry in signatures.WALLET_SIGNER_ABI:
        compiled = wallet.abi_entry(entry["name"])
        assert _types(compiled["inputs"]) == _types(entry["inputs"])
        assert _types(compiled["outputs"]) == _types(entry["outputs"])
    revoked = wallet.abi_entry("KeyRevoked", "event")
    signature = f"KeyRevoked({','.join(_types(revoked['inputs']))})"
    assert Web3.keccak(text=signature) == signatures.KEY_REVOKED_TOPIC
    assert [i["indexed"] for i in revoked["inputs"]] == [True]
    for artifact, fragments in (
        (safe_artifact("Safe"), signatures.SAFE_OWNERS_ABI),
        (safe_artifact("CompatibilityFallbackHandler"), signatures.EIP1271_ABI),
    ):
        for entry in fragments:
            [compiled] = [
                item
                for item in artifact.abi
                if item.get("name") == entry["name"]
                and _types(item["inputs"]) == _types(entry["inputs"])
            ]
            assert _types(compiled["outputs"]) == _types(entry["outputs"])


def test_a_trading_key_trades_within_its_scope_until_it_is_revoked(
    w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3, tmp_path: Path
) -> None:
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'keys.db'}")
    key, stranger = anvil_node.dev_accounts()[7], anvil_node.dev_accounts()[8]
    owner = Sender(w3, desk.buyer)
    wallet = wallet_contract(w3, desk.buyer_wallet)
    now = int(w3.eth.get_block("latest")["timestamp"])
    # spot only, at most 3,000 USDC per order
    owner.transact(
        wallet.functions.authorise_key(
            key.address, now + 86_400, False, 3_000 * USDC, [desk.d.spot_weth_usdc]
        )
    )
    record = tuple(wallet.functions.trading_key(key.address).call())
    assert record == (now + 86_400, False, 3_000 * USDC, True)

    async def scenario() -> None:
        rt = desk.runtime(require_signed=False)  # the gateway takes unsigned orders, a key not
        http = await serve(rt, as_operator=False)
        orders = Orders(desk, http)
        try:
            # the key signs in with its own address and acts for the wallet it is a key of
            http.headers.update(await sign_in(http, key, w3.eth.chain_id))
            seen = await http.get("/v1/orders", params={"account": desk.buyer_wallet})
            assert seen.status_code == 200 and seen.json()["items"] == []
            other = await http.get("/v1/orders", params={"account": desk.seller_wallet})
            refused(other, 403, "forbidden")

            # in scope, up to exactly its maximum notional: 1 WETH at 3,000 USDC
            bid = created(await orders.order(ecdsa(key), desk.buyer_wallet, "buy", "1", "3000"))
            assert bid["account"] == desk.buyer_wallet and bid["status"] == "accepted"
            listed = (await http.get("/v1/orders")).json()["items"]
            assert [o["id"] for o in listed] == [bid["id"]]  # the wallet is listed as the key's

            # out of scope: another instrument, a notional a hair over the maximum
            refused(
                await orders.order(ecdsa(key), desk.buyer_wallet, "buy", "1", "100", CALL),
                403,
                "key_scope",
            )
            refused(
                await orders.order(ecdsa(key), desk.buyer_wallet, "buy", "1.0001", "3000"),
                403,
                "key_max_notional",
            )
            # the owner widens the allow-list on chain: it counts for the very next order
            for symbol in (CALL, PUT):
                owner.transact(
                    wallet.functions.set_key_instrument(
                        key.address, instrument_id(desk, symbol), True
                    )
                )
            straddle = [(CALL, "buy"), (PUT, "buy")]
            created(await orders.strategy(ecdsa(key), desk.buyer_wallet, "150", straddle))
            refused(
                await orders.strategy(
                    ecdsa(key), desk.buyer_wallet, "150", [(CALL, "buy"), (OTHER_CALL, "sell")]
                ),
                403,
                "key_scope",
            )
            refused(
                await orders.strategy(ecdsa(key), desk.buyer_wallet, "3000.5", straddle),
                403,
                "key_max_notional",
            )
            # a key never trades unsigned (its scope is on the signature), nor amends
            refused(
                await orders.order(None, desk.buyer_wallet, "buy", "1", "2000"),
                403,
                ("signature_required"),
            )
            amend = await http.patch(f"/v1/orders/{bid['id']}", json={"price": "2999"})
            refused(amend, 403, "signature_required")
            # a stranger's signature, a contract signature for an EOA-owned wallet
            refused(
                await orders.order(ecdsa(stranger), desk.buyer_wallet, "buy", "1", "2900"),
                422,
                "invalid_signature",
            )
            refused(
                await orders.order(
                    lambda d: eip712.sign_digest(d, key.key) * 2,
                    desk.buyer_wallet,
                    "buy",
                    "1",
                    "2900",
                ),
                422,
                "invalid_signature",
            )

            # the seller (an owner) takes the key's bid; the fill settles and is proven
            http.headers.update(await sign_in(http, desk.seller, w3.eth.chain_id))
            weth0, usdc0 = desk.balances(desk.buyer_wallet)
            sold = created(
                await orders.order(
                    ecdsa(desk.seller),
                    desk.seller_wallet,
                    "sell",
                    "1",
                    "3000",
                    time_in_force="ioc",
                )
            )
            assert sold["status"] == "filled"
            await settle_and_audit(rt, desk, 2)
            assert desk.balances(desk.buyer_wallet) == (weth0 + WETH, usdc0 - 3_000 * USDC)

            # the key signs one more order, then the owner revokes it
            http.headers.update(await sign_in(http, key, w3.eth.chain_id))
            nonce, deadline = orders._next()
            late = eip712.Order(desk.d.spot_weth_usdc, True, WETH, 2_500 * USDC, nonce, deadline)
            late_signature = eip712.sign_order(late, key.key, w3.eth.chain_id, desk.buyer_wallet)
            late_body = {
                "account": desk.buyer_wallet,
                "client_order_id": "after-revoke",
                "instrument": "WETH/USDC",
                "side": "buy",
                "quantity": "1",
                "price": "2500",
                "signature": _signature(nonce, deadline, late_signature),
            }
            owner.transact(wallet.functions.revoke_key(key.address))
            assert not wallet.functions.trading_key(key.address).call()[3]
            # its session loses the wallet at once: no order, no read, no listing
            refused(await http.post("/v1/orders", json=late_body), 403, "forbidden")
            gone = await http.get("/v1/orders", params={"account": desk.buyer_wallet})
            refused(gone, 403, "forbidden")
            assert (await http.get("/v1/orders")).json()["items"] == []
            # and its signature is refused whoever brings it (an API key for the wallet)
            key_for_wallet = (
                await http.post(
                    "/v1/api-keys",
                    json={"scopes": ["trade", "read"], "accounts": [desk.buyer_wallet]},
                    headers=operator_headers(),
                )
            ).json()
            http.headers.pop("Authorization")
            http.auth = Hmac(key_for_wallet["key_id"], key_for_wallet["secret"])
            refused(await http.post("/v1/orders", json=late_body), 403, "key_revoked")
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())


def test_an_expired_key_is_refused(
    w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3, tmp_path: Path
) -> None:
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'expired.db'}")
    key = anvil_node.dev_accounts()[7]
    owner = Sender(w3, desk.buyer)
    wallet = wallet_contract(w3, desk.buyer_wallet)
    now = int(w3.eth.get_block("latest")["timestamp"])
    owner.transact(wallet.functions.authorise_key(key.address, now + 5, True, NO_LIMIT, []))

    async def scenario() -> None:
        rt = desk.runtime()
        http = await serve(rt)  # the operator brings the key's orders
        orders = Orders(desk, http)
        try:
            # no instrument list and no limit: any instrument, any notional
            created(await orders.order(ecdsa(key), desk.buyer_wallet, "buy", "3", "3000", CALL))
            w3.provider.make_request("evm_setNextBlockTimestamp", [now + 10])  # type: ignore[arg-type]
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            refused(
                await orders.order(ecdsa(key), desk.buyer_wallet, "buy", "1", "3000"),
                403,
                "key_expired",
            )
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())


def test_a_two_of_three_safe_signs_with_two_owners_and_its_owners_see_its_wallet(
    w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3, tmp_path: Path
) -> None:
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'safe.db'}")
    accounts = anvil_node.dev_accounts()
    first, second, third, key = accounts[7], accounts[8], accounts[9], accounts[1]
    infra = desk.d.safe
    assert infra is not None
    safe = create_safe(deployer, infra, [first.address, second.address, third.address], 2)
    safe_wallet = create_wallet(deployer, desk.d, safe)  # the factory's create_wallet_for
    assert wallet_contract(w3, safe_wallet).functions.owner().call() == safe
    tokens.mint(deployer, desk.d.usdc, safe_wallet, 20_000 * USDC)
    chain_id = w3.eth.chain_id

    async def scenario() -> None:
        rt = desk.runtime(require_signed=False)
        http = await serve(rt, as_operator=False)
        orders = Orders(desk, http)
        try:
            # an owner of the Safe signs in with its own key and acts for the Safe's wallet
            http.headers.update(await sign_in(http, first, chain_id))
            seen = await http.get("/v1/orders", params={"account": safe_wallet})
            assert seen.status_code == 200
            # two owners' signatures (130 bytes) over the Safe message of the order's digest
            two = safe_owners(chain_id, safe, first, third)
            bid = created(await orders.order(two, safe_wallet, "buy", "1", "3000"))
            assert len(bytes.fromhex(bid["signed"]["signature"][2:])) == 130
            # one owner is below the threshold: alone (65 bytes, taken as ECDSA: not a key),
            # or padded to look like a contract signature (the Safe refuses it)
            one = safe_owners(chain_id, safe, first)
            refused(
                await orders.order(one, safe_wallet, "buy", "1", "3000"), 422, ("invalid_signature")
            )
            padded = await orders.order(
                lambda d: one(d) + bytes(65), safe_wallet, "buy", "1", "3000"
            )
            refused(padded, 422, "invalid_signature")
            # an owner alone never trades unsigned for the Safe
            refused(
                await orders.order(None, safe_wallet, "buy", "1", "3000"),
                403,
                ("signature_required"),
            )

            # a trading key the Safe authorised (with two owners) signs 65-byte ECDSA
            exec_safe_transaction(
                deployer,
                safe,
                safe_wallet,
                bytes.fromhex(
                    wallet_contract(w3, safe_wallet)
                    .encode_abi("authorise_key", args=[key.address, 2**40, True, NO_LIMIT, []])
                    .removeprefix("0x")
                ),
                [first.key, second.key],
            )
            created(await orders.order(ecdsa(key), safe_wallet, "buy", "0.5", "2000"))

            # someone who is no owner of the Safe does not see its wallet
            http.headers.update(await sign_in(http, desk.third, chain_id))
            refused(
                await http.get("/v1/orders", params={"account": safe_wallet}), 403, ("forbidden")
            )

            # the seller takes both bids: the Safe's settles through EIP-1271, the key's as
            # ECDSA, in one batch, and both are proven from the chain
            http.headers.update(await sign_in(http, desk.seller, chain_id))
            sold = created(
                await orders.order(
                    ecdsa(desk.seller),
                    desk.seller_wallet,
                    "sell",
                    "1.5",
                    "2000",
                    time_in_force="ioc",
                )
            )
            assert sold["status"] == "filled"
            weth0, usdc0 = desk.balances(safe_wallet)
            await settle_and_audit(rt, desk, 4)
            assert desk.balances(safe_wallet) == (
                weth0 + 3 * WETH // 2,
                usdc0 - 3_000 * USDC - 1_000 * USDC,
            )
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())
