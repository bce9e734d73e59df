"""`isthmus_client.stream.OrderStream` against the real gateway process (`isthmus up`, the
internal venue only, SQLite): events, order entry on the socket, HMAC handshakes, and a
stream that lives through a gateway restart on the same port and database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import isthmus_client.stream as stream_module
import pytest
from isthmus_client.credentials import ApiKey, OperatorToken
from isthmus_client.errors import (
    BadSignature,
    Forbidden,
    InvalidPriceTick,
    TransportError,
    Unauthenticated,
)
from isthmus_client.stream import (
    AuthHeaders,
    OrderEvent,
    OrderStream,
    StreamGap,
    StreamItem,
)

from tests.integration.gateway_process import GatewayProcess
from tests.operator_access import OPERATOR_TOKEN
from tests.postgres_cluster import free_port

ACCOUNT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
OTHER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
WAIT = 30.0  # seconds: an upper bound on a wait, never a pause


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(f"sqlite:///{tmp_path_factory.mktemp('stream') / 'stream.db'}")
    process.start()
    yield process
    process.stop()


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(body())


async def operator_auth(method: str, path: str, body: bytes) -> dict[str, str]:
    return OperatorToken(OPERATOR_TOKEN).headers(method, path, body)


def key_auth(key: ApiKey) -> AuthHeaders:
    async def headers(method: str, path: str, body: bytes) -> dict[str, str]:
        return key.headers(method, path, body)

    return headers


def order_body(account: str = ACCOUNT, price: str = "3000", **extra: str) -> dict[str, str]:
    return {
        "account": account,
        "instrument": "WETH/USDC",
        "side": "buy",
        "quantity": "1.5",
        "price": price,
        "client_order_id": f"stream-{uuid.uuid4().hex[:12]}",
        **extra,
    }


def operator_http(gateway: GatewayProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=gateway.url,
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
        timeout=WAIT,
    )


async def place_over_rest(gateway: GatewayProcess, order: dict[str, str]) -> dict[str, Any]:
    async with operator_http(gateway) as http:
        response = await http.post("/v1/orders", json=order)
    assert response.status_code == 201, response.text
    placed: dict[str, Any] = response.json()
    return placed


async def next_matching(
    stream: OrderStream, wanted: Callable[[StreamItem], bool], seen: list[StreamItem] | None = None
) -> StreamItem:
    """The next message `wanted` accepts; the ones before it go to `seen`."""
    async with asyncio.timeout(WAIT):
        async for message in stream:
            if wanted(message):
                return message
            if seen is not None:
                seen.append(message)
    raise AssertionError("the stream ended")


def event_of(client_order_id: str) -> Callable[[StreamItem], bool]:
    return lambda m: isinstance(m, OrderEvent) and m.order["client_order_id"] == client_order_id


# --- (a) events --------------------------------------------------------------------------


def test_an_order_placed_over_rest_arrives_as_an_event(gateway: GatewayProcess) -> None:
    async def body() -> None:
        async with OrderStream(gateway.url, operator_auth, accounts=[ACCOUNT]) as stream:
            assert stream.url == f"ws://127.0.0.1:{gateway.port}/v1/stream"
            assert stream.connected
            order = order_body()
            placed = await place_over_rest(gateway, order)
            event = await next_matching(stream, event_of(order["client_order_id"]))
            assert isinstance(event, OrderEvent)
            assert event.type == "order.accepted"
            assert event.account == ACCOUNT
            assert event.order["id"] == placed["id"]
            assert event.order["price"] == "3000"
            assert event.raw["order"] == event.order

    run(body)


def test_events_of_other_accounts_are_not_delivered(gateway: GatewayProcess) -> None:
    async def body() -> None:
        async with OrderStream(gateway.url, operator_auth, accounts=[ACCOUNT]) as stream:
            other, mine = order_body(OTHER), order_body(ACCOUNT)
            await place_over_rest(gateway, other)
            await place_over_rest(gateway, mine)
            seen: list[StreamItem] = []
            await next_matching(stream, event_of(mine["client_order_id"]), seen)
            assert all(isinstance(m, OrderEvent) and m.account == ACCOUNT for m in seen)

    run(body)


def test_close_ends_the_iteration_cleanly(gateway: GatewayProcess) -> None:
    async def body() -> None:
        stream = OrderStream(gateway.url, operator_auth, accounts=[ACCOUNT])
        await stream.connect()
        received: list[StreamItem] = []

        async def consume() -> None:
            async for message in stream:
                received.append(message)

        consumer = asyncio.create_task(consume())
        await stream.close()
        async with asyncio.timeout(WAIT):
            await consumer  # ends without an exception
        assert not stream.connected
        with pytest.raises(TransportError):
            await stream.request("place", order=order_body())

    run(body)


# --- (b) a gateway restart ----------------------------------------------------------------


@pytest.mark.parametrize("stop", ["terminate", "kill -9"])
def test_the_stream_survives_a_gateway_restart(tmp_path: Path, stop: str) -> None:
    process = GatewayProcess(f"sqlite:///{tmp_path / 'restart.db'}", port=free_port())
    process.start()
    try:
        run(lambda: _survive_restart(process, stop))
    finally:
        process.stop()


async def _survive_restart(process: GatewayProcess, stop: str) -> None:
    async with (
        OrderStream(process.url, operator_auth, accounts=[ACCOUNT], max_backoff=0.5) as stream,
        OrderStream(process.url, operator_auth, accounts=[ACCOUNT], reconnect=False) as fragile,
    ):
        before = order_body()
        await place_over_rest(process, before)
        await next_matching(stream, event_of(before["client_order_id"]))
        await next_matching(fragile, event_of(before["client_order_id"]))

        await asyncio.to_thread(process.stop if stop == "terminate" else process.kill)
        # without reconnect, the drop ends the iteration
        with pytest.raises(TransportError):
            await next_matching(fragile, lambda m: False)
        await asyncio.to_thread(process.start)  # the same port, the same database

        gap = await next_matching(stream, lambda m: isinstance(m, StreamGap))
        assert isinstance(gap, StreamGap)
        assert gap.disconnected_at < gap.reconnected_at
        assert 1 <= gap.attempts < 200, gap.attempts  # backed off: no busy loop
        assert gap.reason
        assert stream.connected

        # subscribed again, to the same account only
        other, after = order_body(OTHER), order_body()
        await place_over_rest(process, other)
        placed = await place_over_rest(process, after)
        seen: list[StreamItem] = []
        event = await next_matching(stream, event_of(after["client_order_id"]), seen)
        assert isinstance(event, OrderEvent) and event.order["id"] == placed["id"]
        assert not any(isinstance(m, OrderEvent) and m.account == OTHER for m in seen)

        # and order entry works on the new connection
        answer = await stream.request("place", order=order_body())
        assert answer["status"] == 201


def test_a_subscriber_dropped_as_slow_reconnects_with_a_gap(tmp_path: Path) -> None:
    """The gateway keeps one event per subscriber here: a batch of orders overflows it, the
    gateway closes the stream as `slow_consumer` (1008), and the stream comes back."""
    process = GatewayProcess(
        f"sqlite:///{tmp_path / 'slow.db'}", env={"ISTHMUS_STREAM_QUEUE_SIZE": "1"}
    )
    process.start()

    async def body() -> None:
        async with OrderStream(
            process.url, operator_auth, accounts=[ACCOUNT], max_backoff=0.5
        ) as stream:
            async with operator_http(process) as http:
                batch = await http.post(
                    "/v1/orders/batch", json={"orders": [order_body() for _ in range(5)]}
                )
            assert batch.status_code == 200, batch.text
            gap = await next_matching(stream, lambda m: isinstance(m, StreamGap))
            assert isinstance(gap, StreamGap) and gap.reason == "slow_consumer"
            order = order_body()
            await place_over_rest(process, order)
            await next_matching(stream, event_of(order["client_order_id"]))

    try:
        run(body)
    finally:
        process.stop()


def test_a_caller_that_does_not_iterate_gets_a_gap_not_unbounded_memory(
    gateway: GatewayProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "BUFFER_LIMIT", 2)

    async def body() -> None:
        async with OrderStream(
            gateway.url, operator_auth, accounts=[ACCOUNT], max_backoff=0.5, open_timeout=3
        ) as stream:
            # every message is read as it comes, none iterated: the third overflows
            placed: list[dict[str, str]] = []
            unanswered: dict[str, str] | None = None
            for _ in range(10):
                order = order_body()
                try:
                    answer = await stream.request("place", order=order)
                except TransportError:  # dropped before its answer (or while reconnecting)
                    unanswered = order
                    break
                assert answer["status"] == 201
                placed.append(order)
            assert unanswered is not None
            assert not stream.connected  # and it stays away until the caller catches up

            received = [await anext(stream) for _ in range(3)]
            assert [m.order["client_order_id"] for m in received if isinstance(m, OrderEvent)] == [
                o["client_order_id"] for o in [*placed, unanswered][:3]
            ]
            gap = await anext(stream)
            assert isinstance(gap, StreamGap) and gap.reason.startswith("slow_consumer")
            assert stream.connected
            # the caller retries the request it did not see answered: placed once at most
            again = await stream.request("place", order=unanswered)
            assert again["status"] in (200, 201)
            assert again["order"]["client_order_id"] == unanswered["client_order_id"]

    run(body)


# --- (c) order entry on the socket --------------------------------------------------------


def test_place_over_the_stream_is_idempotent_and_errors_are_typed(
    gateway: GatewayProcess,
) -> None:
    async def body() -> None:
        async with OrderStream(gateway.url, operator_auth, accounts=[ACCOUNT]) as stream:
            order = order_body()
            first = await stream.request("place", order=order)
            assert first["type"] == "response" and first["status"] == 201
            assert first["order"]["client_order_id"] == order["client_order_id"]
            again = await stream.request("place", order=order)
            assert again["status"] == 200
            assert again["order"]["id"] == first["order"]["id"]
            assert again["id"] != first["id"]

            with pytest.raises(InvalidPriceTick) as refused:
                await stream.request("place", order=order_body(price="3000.001"))
            assert refused.value.status == 422
            assert refused.value.error_code == "invalid_price_tick"
            assert refused.value.field is not None and "price" in refused.value.field

            # the events kept flowing meanwhile
            event = await next_matching(stream, event_of(order["client_order_id"]))
            assert isinstance(event, OrderEvent) and event.type == "order.accepted"

            cancelled = await stream.request("cancel", order_id=first["order"]["id"])
            assert cancelled["status"] == 200 and cancelled["order"]["status"] == "cancelled"

    run(body)


def test_concurrent_requests_get_their_own_answers(gateway: GatewayProcess) -> None:
    async def body() -> None:
        async with OrderStream(gateway.url, operator_auth, accounts=[ACCOUNT]) as stream:
            orders = [order_body(price=str(2900 + i)) for i in range(8)]
            answers = await asyncio.gather(
                *(stream.request("place", order=order) for order in orders)
            )
            for order, answer in zip(orders, answers, strict=True):
                assert answer["status"] == 201
                assert answer["order"]["client_order_id"] == order["client_order_id"]
                assert answer["order"]["price"] == order["price"]

    run(body)


# --- (d) an API key's HMAC handshake ------------------------------------------------------


def test_an_api_key_streams_and_trades(gateway: GatewayProcess) -> None:
    async def body() -> None:
        async with operator_http(gateway) as http:
            created = await http.post(
                "/v1/api-keys",
                json={"role": "protocol", "scopes": ["read", "trade"], "accounts": [ACCOUNT]},
            )
        assert created.status_code == 201, created.text
        key = ApiKey(created.json()["key_id"], created.json()["secret"])

        async with OrderStream(gateway.url, key_auth(key), accounts=[ACCOUNT]) as stream:
            placed = await place_over_rest(gateway, order := order_body())
            event = await next_matching(stream, event_of(order["client_order_id"]))
            assert isinstance(event, OrderEvent) and event.order["id"] == placed["id"]

        # the key's own accounts by default
        async with OrderStream(gateway.url, key_auth(key)) as stream:
            order = order_body()
            await place_over_rest(gateway, order)
            await next_matching(stream, event_of(order["client_order_id"]))

        # refusals are typed, and not retried
        with pytest.raises(Forbidden):
            async with OrderStream(gateway.url, key_auth(key), accounts=[OTHER]):
                pass
        with pytest.raises(BadSignature):
            async with OrderStream(gateway.url, key_auth(ApiKey(key.key_id, "wrong"))):
                pass
        with pytest.raises(Unauthenticated):
            async with OrderStream(gateway.url, _no_credentials):
                pass

    run(body)


async def _no_credentials(method: str, path: str, body: bytes) -> dict[str, str]:
    return {}
