"""The client against the real gateway on the devnet: every credential kind, local signing
equal to the node's own `eth_signTypedData_v4`, refusal to sign what a tampering gateway
asks, typed errors, safe retries and the synchronous facade."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from eth_account import Account
from isthmus_client import (
    ApiKey,
    AsyncIsthmus,
    Isthmus,
    NonceStore,
    OperatorToken,
    OrderEvent,
    Signer,
    SigningRefused,
    WalletOps,
    errors,
)
from isthmus_client.contracts import web3_for
from isthmus_client.strategies import iron_condor
from web3 import Web3

from gateway.devnet.faucet import fund
from tests.client.devnet_gateway import DEMO_KEYS, DevnetGateway

pytestmark = pytest.mark.chain

CONDOR = iron_condor("WETH", "20270326", 2500, 2800, 3200, 3500)
FAR_DEADLINE = 2_000_000_000


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def alice(devnet: DevnetGateway) -> Signer:
    return Signer.from_key(DEMO_KEYS["alice"], devnet.demo_wallet("alice"))


def client(devnet: DevnetGateway, credential: Any, **kwargs: Any) -> AsyncIsthmus:
    return AsyncIsthmus(devnet.url, credential, nonces=NonceStore(None), **kwargs)


def node_signature(devnet: DevnetGateway, address: str, typed: dict[str, Any]) -> str:
    """What anvil itself signs for one of its dev accounts."""
    w3 = web3_for(devnet.chain()["rpc_url"])
    answer = w3.provider.make_request("eth_signTypedData_v4", [address, json.dumps(typed)])  # type: ignore[arg-type]
    return str(answer["result"])


def test_local_signatures_equal_the_nodes_byte_for_byte(devnet: DevnetGateway) -> None:
    signer = alice(devnet)

    async def scenario() -> None:
        async with client(devnet, signer) as isthmus:
            for nonce, body in enumerate(
                [
                    await isthmus.sign_order(
                        "WETH/USDC", "buy", "1.5", price="2999.25", nonce=11, deadline=FAR_DEADLINE
                    ),
                    await isthmus.sign_order(
                        "WETH/USDC", "sell", "0.001", price="4000", nonce=12, deadline=FAR_DEADLINE
                    ),
                    await isthmus.sign_strategy(
                        CONDOR, "sell", "2", price="-35.5", nonce=13, deadline=FAR_DEADLINE
                    ),
                ],
                start=11,
            ):
                typed = await isthmus.typed_data(body, nonce, FAR_DEADLINE)
                assert body["signature"]["signature"] == node_signature(
                    devnet, signer.address, typed
                ), body

    run(scenario())


class TamperingProxy(httpx.AsyncBaseTransport):
    """The real gateway behind a man in the middle who changes what it asks to sign."""

    def __init__(self, change: Callable[[dict[str, Any]], None]) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.change = change

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path != "/v1/orders/typed-data":
            return response
        await response.aread()
        typed = json.loads(response.content)
        self.change(typed)
        return httpx.Response(
            response.status_code, json=typed, headers={"content-type": "application/json"}
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("price", lambda t: t["message"].__setitem__("limit_price", "1")),
        ("wallet", lambda t: t["domain"].__setitem__("verifyingContract", "0x" + "11" * 20)),
        ("side", lambda t: t["message"].__setitem__("is_buy", False)),
        ("chain", lambda t: t["domain"].__setitem__("chainId", 1)),
    ],
)
def test_refuses_to_sign_when_the_gateway_tampers(
    devnet: DevnetGateway, what: str, change: Callable[[dict[str, Any]], None]
) -> None:
    signer = alice(devnet)

    async def scenario() -> None:
        async with client(devnet, signer, transport=TamperingProxy(change)) as isthmus:
            for attempt in range(2):  # a shape the gateway disagreed on is asked again
                with pytest.raises(SigningRefused) as refused:
                    await isthmus.place_order(
                        "WETH/USDC", "buy", "1", price="2000", client_order_id=f"tamper-{what}"
                    )
                assert refused.value.differences, attempt
        # nothing reached the book: the order was never sent
        async with client(devnet, OperatorToken(devnet.operator_token)) as operator:
            page, _ = await operator.list_orders(account=signer.wallet)
            assert f"tamper-{what}" not in {o.client_order_id for o in page}

    run(scenario())


class CountingProxy(httpx.AsyncBaseTransport):
    """The real gateway, counting the typed-data requests made through it."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.typed_data = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/orders/typed-data":
            self.typed_data += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_typed_data_is_compared_once_per_shape_of_order(devnet: DevnetGateway) -> None:
    """A market maker's orders after the first of each shape (wallet, instrument, side) cost
    no extra request: the numbers are encoded alike on both sides."""
    signer = alice(devnet)
    first, unchecked, second = CountingProxy(), CountingProxy(), CountingProxy()

    async def scenario() -> None:
        async with client(devnet, signer, transport=first) as isthmus:
            for n in range(3):
                await isthmus.sign_order("WETH/USDC", "buy", "0.1", price=str(1500 + n))
            assert first.typed_data == 1
            await isthmus.sign_order("WETH/USDC", "sell", "0.1", price="9000")
            assert first.typed_data == 2
        async with client(devnet, signer, transport=unchecked, check_typed_data=False) as x:
            await x.sign_order("WETH/USDC", "buy", "0.1", price="1500")
            assert unchecked.typed_data == 0
        async with client(devnet, signer, transport=second) as again:  # a new client asks
            await again.sign_order("WETH/USDC", "buy", "0.1", price="1500")
            assert second.typed_data == 1

    run(scenario())


def test_owner_session_places_signed_orders_and_strategies(devnet: DevnetGateway) -> None:
    signer = alice(devnet)

    async def scenario() -> None:
        async with client(devnet, signer) as isthmus:
            order = await isthmus.place_order("WETH/USDC", "buy", "1", price="1500")
            assert order.created and order.signed and order.status == "accepted"
            assert order.account == signer.wallet
            strategy = await isthmus.place_strategy(CONDOR, "buy", "1", price="5")
            assert strategy.signed and len(strategy.legs) == 4
            # typed errors, one class per stable code
            with pytest.raises(errors.InvalidPriceTick) as tick:
                await isthmus.place_order("WETH/USDC", "buy", "1", price="1500.001")
            assert tick.value.status == 422 and tick.value.error_code == "invalid_price_tick"
            with pytest.raises(errors.Forbidden):
                await isthmus.list_orders(account=devnet.demo_wallet("bob"))
            cancelled = await isthmus.cancel_order(order.id)
            assert cancelled.status == "cancelled"
            with pytest.raises(errors.IllegalTransition):
                await isthmus.cancel_order(order.id)

    run(scenario())


def test_a_trading_key_signs_and_trades_for_the_wallet_it_was_given(
    devnet: DevnetGateway,
) -> None:
    chain = devnet.chain()
    owner_account = Account.create()
    fund(chain["rpc_url"], devnet.state / "deployment.json", owner_account.address)
    owner = Signer(owner_account)

    async def scenario() -> None:
        async with client(devnet, owner) as as_owner:
            ops: WalletOps = await as_owner.wallet()
            wallet = await asyncio.to_thread(ops.create)
            await asyncio.to_thread(ops.deposit, "USDC", Decimal(5000))
            key = Account.create()
            await asyncio.to_thread(
                ops.add_key,
                key.address,
                expires_at=datetime.now(UTC) + timedelta(days=1),
            )
        trading_key = Signer(key, wallet)
        async with client(devnet, trading_key) as as_key:
            order = await as_key.place_order("WETH/USDC", "buy", "1", price="1400")
            assert order.signed and order.account == wallet
            # the key signed it: the signature recovers to the key, not the owner
            assert order.raw["signed"] is not None

    run(scenario())


def test_a_protocol_submits_a_users_signed_order_with_its_api_key(
    devnet: DevnetGateway,
) -> None:
    carol = Signer.from_key(DEMO_KEYS["carol"], devnet.demo_wallet("carol"))

    async def scenario() -> None:
        async with client(devnet, OperatorToken(devnet.operator_token)) as operator:
            key = await operator.create_api_key(
                scopes=["quote", "trade", "read"], accounts=[carol.wallet], label="protocol"
            )
        assert key.secret is not None
        # the user's app signs (it holds the key); the protocol only submits
        async with client(devnet, carol) as users_app:
            body = await users_app.sign_order(
                "WETH/USDC", "sell", "0.5", price="9000", client_order_id="protocol-1"
            )
        async with client(devnet, ApiKey(key.key_id, key.secret)) as protocol:
            quote = await protocol.quote("WETH/USDC", "sell", "0.5")
            assert "legs" in quote or "venues" in quote or quote
            first = await protocol.submit(body)
            again = await protocol.submit(body)  # a retry: the same order, not a second one
            assert first.created and not again.created and first.id == again.id
            assert first.signed
            with pytest.raises(errors.Forbidden):
                await protocol.list_orders(account=devnet.demo_wallet("alice"))
            # the protocol cannot change what the user signed
            changed = {**body, "client_order_id": "protocol-2", "price": "9001"}
            with pytest.raises(errors.InvalidSignature):
                await protocol.submit(changed)
            # nor send it unsigned
            unsigned = {k: v for k, v in body.items() if k != "signature"}
            with pytest.raises(errors.SignatureRequired):
                await protocol.submit({**unsigned, "client_order_id": "protocol-3"})

    run(scenario())


class DropFirstAnswer(httpx.AsyncBaseTransport):
    """The request reaches the gateway, the answer is lost on the way back (once)."""

    def __init__(self, path: str) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.path = path
        self.dropped = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path == self.path and self.dropped == 0:
            await response.aread()
            self.dropped += 1
            raise httpx.ReadError("connection reset while reading the answer", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_a_lost_answer_is_retried_safely_and_places_one_order(devnet: DevnetGateway) -> None:
    signer = alice(devnet)
    transport = DropFirstAnswer("/v1/orders")

    async def scenario() -> None:
        async with client(devnet, signer, transport=transport) as isthmus:
            order = await isthmus.place_order(
                "WETH/USDC", "buy", "1", price="1300", client_order_id="lost-answer"
            )
            assert transport.dropped == 1
            assert not order.created  # the retry found the order the lost answer created
            page, _ = await isthmus.list_orders(account=signer.wallet, limit=500)
            assert [o.id for o in page if o.client_order_id == "lost-answer"] == [order.id]

    run(scenario())


def test_the_sync_facade(devnet: DevnetGateway) -> None:
    account = devnet.demo_wallet("bob")
    with Isthmus(devnet.url, OperatorToken(devnet.operator_token), nonces=NonceStore(None)) as io:
        assert (
            io.chain().chain_id == Web3(Web3.HTTPProvider(devnet.chain()["rpc_url"])).eth.chain_id
        )
        with io.stream(accounts=[account]) as stream:
            placed = io.place_order(
                "WETH/USDC", "buy", "1", price="1200", account=account, sign=False
            )
            assert placed.status == "accepted" and not placed.signed
            while True:
                message = stream.next(timeout=30)
                if isinstance(message, OrderEvent) and message.order["id"] == placed.id:
                    break
        assert placed.id in {o.id for o in io.iter_orders(account=account)}
        assert io.cancel_order(placed.id).status == "cancelled"


def test_nonces_are_single_use_across_processes(tmp_path: Any) -> None:
    """Two processes of the same trader never hand out the same nonce."""
    import subprocess
    import sys

    script = (
        "import sys; from pathlib import Path; from isthmus_client import NonceStore\n"
        "store = NonceStore(Path(sys.argv[1]))\n"
        "print(' '.join(str(store.take(1, '0x' + '22' * 20)) for _ in range(200)))\n"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    taken = [int(n) for process in runs for n in process.communicate()[0].split()]
    assert len(taken) == 600 and len(set(taken)) == 600
    assert sorted(taken) == list(range(1, 601))
