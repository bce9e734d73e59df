"""Unit tests (no devnet) for correctness fixes found in review: exact token units beyond the
default decimal precision, nonce uniqueness under concurrency, no thread leaked by the sync
facade."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Context, Decimal, localcontext

import pytest
from isthmus_client.nonces import NonceStore
from isthmus_client.signing import NotSignable, token_units
from isthmus_client.sync import Isthmus

WALLET = "0x" + "11" * 20


def test_token_units_exact_beyond_28_digits() -> None:
    # 31 significant digits: the default context (28) would round it silently
    value = Decimal("1000000000000.000000000000000001")
    with localcontext(Context(prec=28)):  # a user's default context, whatever the suite set
        assert token_units(value, 18, "quantity") == 10**30 + 1


def test_token_units_still_refuses_finer_than_decimals() -> None:
    with pytest.raises(NotSignable):
        token_units(Decimal("123456789012345678901234567890.1"), 0, "quantity")
    assert token_units(Decimal("1E+3"), 6, "quantity") == 10**9


def test_memory_nonce_store_never_hands_out_a_nonce_twice() -> None:
    store = NonceStore(directory=None)

    def slow_floor() -> int:
        time.sleep(0.05)  # the RPC call's duration (widens the race; no thread waits on it)
        return 0

    with ThreadPoolExecutor(8) as pool:
        nonces = list(pool.map(lambda _: store.take(1, WALLET, slow_floor), range(8)))
    assert sorted(nonces) == list(range(1, 9))


def test_sync_facade_constructor_failure_leaks_no_thread() -> None:
    before = {t for t in threading.enumerate() if t.name == "isthmus-client"}
    with pytest.raises(TypeError):
        Isthmus("http://127.0.0.1:1", retries="many")
    # no waiting: the constructor joins its thread before it raises
    after = {t for t in threading.enumerate() if t.name == "isthmus-client" and t.is_alive()}
    assert after <= before


def test_stream_reconnect_signs_in_anew() -> None:
    """A Signer's session ends (after an hour, or when the gateway restarts): the stream's
    reconnect must not present the old token, which the gateway refuses for good (401)."""
    import asyncio
    import itertools

    import httpx
    from isthmus_client.client import AsyncIsthmus
    from isthmus_client.credentials import Signer

    sessions = itertools.count(1)

    def gateway(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/chain":
            return httpx.Response(
                200,
                json={
                    "chain_id": 31337,
                    "settlement": WALLET,
                    "wallet_factory": WALLET,
                    "tokens": {},
                },
            )
        if request.url.path == "/v1/auth/siwe/nonce":
            return httpx.Response(200, json={"nonce": "abcdefgh12345678"})
        if request.url.path == "/v1/auth/siwe":
            return httpx.Response(200, json={"token": f"ist_{next(sessions)}"})
        return httpx.Response(404)

    async def main() -> tuple[dict[str, str], dict[str, str]]:
        signer = Signer.from_key("0x" + "42" * 32)
        async with AsyncIsthmus(
            "http://gateway.test", signer, transport=httpx.MockTransport(gateway)
        ) as client:
            stream = client.stream()
            first = await stream._auth("GET", "/v1/stream", b"")
            again = await stream._auth("GET", "/v1/stream", b"")  # the reconnect
            return first, again

    first, again = asyncio.run(main())
    assert first["Authorization"] == "Bearer ist_1"
    assert again["Authorization"] == "Bearer ist_2"


@pytest.mark.parametrize("side", ["BUY", "Buy", "bid", ""])
def test_signing_refuses_an_unknown_side(side: str) -> None:
    """Anything but "buy" used to be signed as a sell (is_buy false)."""
    from isthmus_client.signing import Instrument, Token, order_message

    base, quote = Token("WETH", "0x" + "01" * 20, 18), Token("USDC", "0x" + "02" * 20, 6)
    instrument = Instrument(
        "WETH/USDC", "spot", "WETH", "USDC", 18, 6, Decimal("0.01"), Decimal("0.001"),
        Decimal("0.001"),
    )  # fmt: skip
    with pytest.raises(NotSignable):
        order_message(
            instrument,
            {"WETH": base, "USDC": quote},
            side=side,
            quantity=Decimal(1),
            price=Decimal(3000),
            nonce=1,
            deadline=2**40,
        )


def test_cancel_retried_after_a_lost_answer_returns_the_cancelled_order() -> None:
    """DELETE is retried after a 502/503/504, but a cancel is not idempotent on the gateway:
    the retry of a cancel that went through answers 409 illegal_transition."""
    import asyncio

    import httpx
    from isthmus_client import errors
    from isthmus_client.client import AsyncIsthmus
    from isthmus_client.credentials import OperatorToken

    order = {
        "id": "o-1",
        "client_order_id": "c-1",
        "account": WALLET,
        "instrument": "WETH/USDC",
        "side": "buy",
        "status": "accepted",
        "quantity": "1",
        "price": "1500",
    }
    deletes = 0

    def gateway(request: httpx.Request) -> httpx.Response:
        nonlocal deletes
        if request.method == "DELETE":
            deletes += 1
            order["status"] = "cancelled"  # applied, whatever the answer
            if deletes == 1:
                return httpx.Response(503, text="proxy: upstream timed out")
            return httpx.Response(
                409,
                json={
                    "error": {
                        "code": "illegal_transition",
                        "message": "order cannot go from cancelled to cancelled",
                    }
                },
            )
        return httpx.Response(200, json=order)

    async def main() -> str:
        async with AsyncIsthmus(
            "http://gateway.test",
            OperatorToken("t"),
            nonces=NonceStore(None),
            transport=httpx.MockTransport(gateway),
        ) as client:
            return (await client.cancel_order("o-1")).status

    assert asyncio.run(main()) == "cancelled"
    assert deletes == 2

    # a cancel of an order cancelled earlier (no lost answer) still says so
    async def again() -> None:
        async with AsyncIsthmus(
            "http://gateway.test",
            OperatorToken("t"),
            nonces=NonceStore(None),
            transport=httpx.MockTransport(gateway),
        ) as client:
            await client.cancel_order("o-1")

    with pytest.raises(errors.IllegalTransition):
        asyncio.run(again())
