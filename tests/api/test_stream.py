"""/v1/stream pushes committed order changes; slow subscribers are dropped, not buffered."""

from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient

from gateway.oms.events import OrderEvents

A = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
B = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def body(account: str, n: int) -> dict[str, str]:
    return {
        "account": account,
        "client_order_id": f"s{n}",
        "instrument": "WETH/USDC",
        "side": "sell",
        "quantity": "1",
        "price": "3100",
    }


def test_stream_pushes_state_changes_for_chosen_accounts(client: TestClient) -> None:
    with client.websocket_connect("/v1/stream") as socket:
        assert socket.receive_json()["type"] == "subscribed"
        socket.send_json({"op": "subscribe", "accounts": [A.lower()]})
        assert socket.receive_json() == {"type": "subscribed", "accounts": [A.lower()], "books": []}
        client.post("/v1/orders", json=body(B, 1))  # not subscribed: not delivered
        created = client.post("/v1/orders", json=body(A, 2)).json()
        client.delete(f"/v1/orders/{created['id']}")
        first, second = socket.receive_json(), socket.receive_json()
        assert first["type"] == "order.accepted" and first["order"]["id"] == created["id"]
        assert second["type"] == "order.cancelled" and second["order"]["status"] == "cancelled"
        socket.send_json({"op": "dance"})
        assert socket.receive_json() == {"type": "error", "code": "unknown_op"}


def test_slow_subscriber_is_dropped_and_others_keep_receiving() -> None:
    async def scenario() -> None:
        events = OrderEvents(queue_size=3)
        slow = events.subscribe(None)
        fast = events.subscribe(frozenset({A}))
        for n in range(10):
            events.publish({"type": "order.accepted", "account": A, "n": n})
            if not fast.queue.empty():
                assert fast.queue.get_nowait()["n"] == n
        assert slow.overflowed.is_set()
        assert slow.queue.qsize() == 3  # bounded: never more than its queue
        assert not fast.overflowed.is_set()
        assert events.subscriber_count == 1

    asyncio.run(scenario())


def test_stream_pushes_consolidated_books(client: TestClient) -> None:
    with client.websocket_connect("/v1/stream") as socket:
        socket.receive_json()
        socket.send_json({"op": "subscribe", "books": ["NOPE/USDC"]})
        assert socket.receive_json() == {"type": "error", "code": "unknown_instrument"}
        socket.send_json({"op": "subscribe", "accounts": [], "books": ["WETH/USDC"]})
        assert socket.receive_json()["type"] == "subscribed"
        first = socket.receive_json()
        assert first["type"] == "book" and first["book"]["instrument"] == "WETH/USDC"


def test_rest_book(client: TestClient) -> None:
    response = client.get("/v1/book/WETH/USDC", params={"depth": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["instrument"] == "WETH/USDC"
    assert set(body) >= {"bids", "asks", "live_venues", "stale_venues", "mid"}
    with client.websocket_connect("/v1/stream") as socket:  # wait for the feed, not a timer
        socket.receive_json()
        socket.send_json({"op": "subscribe", "accounts": [], "books": ["WETH/USDC"]})
        socket.receive_json()
        while "internal" not in socket.receive_json()["book"]["live_venues"]:
            pass
    assert client.get("/v1/book/WETH/USDC").json()["live_venues"] == ["internal"]
    missing = client.get("/v1/book/NOPE/USDC")
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "unknown_instrument"
