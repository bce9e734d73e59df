"""Order entry over /v1/stream: requests sent back to back are answered in the order sent,
each with its id and the status REST would give, between the subscription's events; and
the WebSocket grants no more than the REST routes do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

from gateway.access.request_signing import sign_request
from tests.api.access_clients import ApiKey, api_key, gateway, now_ms, operator, order_body, wallet
from tests.api.order_entry_support import (
    SPOT,
    A,
    B,
    C,
    app_client,
    get_order,
    order,
    post_order,
)
from tests.conftest import ManualClock
from tests.operator_access import operator_headers


def read_until(
    socket: WebSocketTestSession, responses: int, done: Any = lambda events: True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Messages until `responses` responses came and `done(events)` holds."""
    answers: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    while len(answers) < responses or not done(events):
        message = socket.receive_json()
        (answers if message["type"] == "response" else events).append(message)
    return answers, events


def test_requests_are_answered_in_order_with_rest_statuses_next_to_their_events(
    tmp_path: Path,
) -> None:
    with app_client(tmp_path) as client:
        cancel_me = post_order(client, order(A, "pre", "buy", "1", "2950"))
        amend_me = post_order(client, order(B, "pre2", "buy", "1", "2940"))
        with client.websocket_connect("/v1/stream", headers=operator_headers()) as socket:
            assert socket.receive_json()["type"] == "subscribed"
            requests: list[dict[str, Any]] = [
                {"op": "place", "id": "r1", "order": order(A, "w1", "sell", "1", "3010")},
                {"op": "place", "id": "r2", "order": order(A, "w1", "sell", "1", "3010")},
                {"op": "place", "id": "r3", "order": order(A, "w2", "sell", "1", "3010.001")},
                {"op": "cancel", "id": "r4", "order_id": cancel_me["id"]},
                {
                    "op": "batch",
                    "id": 5,
                    "orders": [
                        order(B, "w3", "buy", "0.4", "3010"),
                        order(B, "w4", "buy", "1", "2990"),
                    ],
                },
                {
                    "op": "mass_quote",
                    "id": "r6",
                    "account": C,
                    "quotes": [
                        {
                            "instrument": SPOT,
                            "bids": [{"price": "2980", "quantity": "1"}],
                            "asks": [{"price": "3050", "quantity": "1"}],
                        }
                    ],
                },
                {"op": "amend", "id": "r7", "order_id": amend_me["id"], "quantity": "0.5"},
                {"op": "cancel", "id": "r8", "order_id": "ord_unknown"},
                {"op": "place", "order": order(A, "w5", "sell", "1", "3030")},  # no id
                {"op": "cancel_orders", "id": "r10", "account": B, "side": "sell"},
            ]
            for request in requests:
                socket.send_json(request)

            def every_event_arrived(events: list[dict[str, Any]]) -> bool:
                seen = {(e["type"], e["order"]["client_order_id"]) for e in events if "order" in e}
                quotes = [e for e in events if e["type"] == "order.accepted" and e["account"] == C]
                fills = [e for e in events if e["type"] == "fill.recorded"]
                return seen >= EXPECTED_EVENTS and len(quotes) == 2 and len(fills) == 2

            answers, events = read_until(socket, len(requests), every_event_arrived)

        assert [a["id"] for a in answers] == [
            "r1",
            "r2",
            "r3",
            "r4",
            5,
            "r6",
            "r7",
            "r8",
            None,
            "r10",
        ]
        statuses = [a["status"] for a in answers]
        assert statuses == [201, 200, 422, 200, 200, 200, 200, 404, 422, 200]
        r1, r2, r3, r4, r5, r6, r7, r8, r9, r10 = answers
        placed = r1["order"]
        assert placed["client_order_id"] == "w1" and placed["status"] == "accepted"
        assert r2["order"]["id"] == placed["id"]  # the retry: the same order
        assert r3["error"]["code"] == "invalid_price_tick" and "order" not in r3
        assert r4["order"]["id"] == cancel_me["id"] and r4["order"]["status"] == "cancelled"
        taker, rests = r5["results"]
        assert (taker["status"], taker["order"]["status"]) == (201, "filled")
        assert taker["order"]["average_price"] == "3010"
        assert (rests["status"], rests["order"]["status"]) == (201, "accepted")
        assert sorted(lv["action"] for lv in r6["levels"]) == ["placed", "placed"]
        assert r7["order"]["quantity"] == "0.5" and r7["order"]["version"] > amend_me["version"]
        assert r8["error"]["code"] == "order_not_found"
        assert r9["error"]["field"] == "id"
        assert r10["results"] == []  # B has no resting sell
        # what the socket answered is what REST reads back
        assert get_order(client, placed["id"])["filled_quantity"] == "0.4"
        assert (
            client.get("/v1/orders", params={"account": A}).json()["items"][-1]["client_order_id"]
            == "w1"
        )

        # the placed orders' events came on the socket, each order's in order
        def kinds_of(cid: str) -> list[str]:
            return [
                e["type"] for e in events if "order" in e and e["order"]["client_order_id"] == cid
            ]

        assert kinds_of("w1") == ["order.accepted", "order.partially_filled"]
        assert kinds_of("w3") == ["order.accepted", "order.filled"]
        assert kinds_of("w4") == ["order.accepted"]
        assert kinds_of("pre") == ["order.cancelled"]
        assert kinds_of("w2") == [] and kinds_of("w5") == []  # refused: nothing happened
        fill_orders = {e["fill"]["order_id"] for e in events if e["type"] == "fill.recorded"}
        assert fill_orders == {placed["id"], taker["order"]["id"]}


EXPECTED_EVENTS = {
    ("order.accepted", "w1"),
    ("order.partially_filled", "w1"),
    ("order.cancelled", "pre"),
    ("order.accepted", "w3"),
    ("order.filled", "w3"),
    ("order.accepted", "w4"),
    ("order.amended", "pre2"),
}


def _socket_headers(key: ApiKey, clock: ManualClock) -> dict[str, str]:
    clock.advance(milliseconds=1)
    return sign_request(key.key_id, key.secret, "GET", "/v1/stream", now_ms=now_ms(clock))


def _entry_over_stream(
    client: TestClient, headers: dict[str, str], requests: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    with client.websocket_connect("/v1/stream", headers=headers) as socket:
        assert socket.receive_json()["type"] == "subscribed"
        for request in requests:
            socket.send_json(request)
        answers, _ = read_until(socket, len(requests))
    return answers


def test_a_caller_that_may_only_read_cannot_trade_over_the_stream(tmp_path: Path) -> None:
    """REST refuses an auditor's and a read-only key's orders and cancels (403 forbidden:
    they lack the `trade` permission); the WebSocket, which they may open to read, must
    refuse the same requests."""
    clock = ManualClock()
    alice = wallet(0).address
    with gateway(tmp_path, clock) as client:
        resting = operator(client, "POST", "/v1/orders", json=order_body(alice, 1)).json()
        auditor = api_key(client, clock, role="auditor")
        reader = api_key(client, clock, scopes=("read",), accounts=(alice,))
        # REST: both are refused
        assert auditor.request("POST", "/v1/orders", order_body(alice, 2)).status_code == 403
        assert reader.request("DELETE", f"/v1/orders/{resting['id']}").status_code == 403

        by_auditor = _entry_over_stream(
            client,
            _socket_headers(auditor, clock),
            [
                {"op": "place", "id": "p", "order": order_body(alice, 3)},
                {"op": "cancel", "id": "c", "order_id": resting["id"]},
            ],
        )
        by_reader = _entry_over_stream(
            client,
            _socket_headers(reader, clock),
            [{"op": "cancel_orders", "id": "f", "account": alice}],
        )
        listed = operator(client, "GET", "/v1/orders").json()["items"]
        assert [o["client_order_id"] for o in listed] == ["acc-1"], listed
        assert listed[0]["status"] == "accepted"
        assert [(a["id"], a["status"]) for a in by_auditor + by_reader] == [
            ("p", 403),
            ("c", 403),
            ("f", 403),
        ]
