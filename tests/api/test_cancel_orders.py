"""POST /v1/orders/cancel: an account's resting orders by instrument and side, or orders by
ids, each with its own outcome; a caller bound to accounts finds another account's order
"not found", over REST as over the WebSocket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.api.access_clients import gateway, operator, order_body, trader_headers, wallet
from tests.api.order_entry_support import (
    PERP,
    SPOT,
    A,
    B,
    C,
    all_orders,
    app_client,
    get_order,
    order,
    post_order,
    resting,
)
from tests.conftest import ManualClock

ALICE, BOB = wallet(0), wallet(1)


def open_ids(client: TestClient) -> set[str]:
    return {o["client_order_id"] for o in all_orders(client) if o["status"] == "accepted"}


def test_cancel_by_filter_takes_exactly_the_accounts_orders_on_that_instrument_and_side(
    tmp_path: Path,
) -> None:
    with app_client(tmp_path) as client:
        # a filled order of A on that side is not resting: nothing to cancel
        post_order(client, order(C, "c-sell", "sell", "1", "3000"))
        filled = post_order(client, order(A, "a-buy-filled", "buy", "1", "3000"))
        assert filled["status"] == "filled"
        for account, cid, side, price, instrument in [
            (A, "a-buy-1", "buy", "2990", SPOT),
            (A, "a-buy-2", "buy", "2980", SPOT),
            (A, "a-sell", "sell", "3010", SPOT),
            (A, "a-perp-buy", "buy", "2990", PERP),
            (B, "b-buy", "buy", "2990", SPOT),
            (B, "b-sell", "sell", "3020", SPOT),
        ]:
            post_order(client, order(account, cid, side, "1", price, instrument))

        response = client.post(
            "/v1/orders/cancel", json={"account": A, "instrument": SPOT, "side": "buy"}
        )
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert {r["order"]["client_order_id"] for r in results} == {"a-buy-1", "a-buy-2"}
        assert all(r["status"] == 200 and r["order"]["status"] == "cancelled" for r in results)
        assert open_ids(client) == {"a-sell", "a-perp-buy", "b-buy", "b-sell"}
        assert resting(client) == (
            [("2990", [("b-buy", "1")])],
            [("3010", [("a-sell", "1")]), ("3020", [("b-sell", "1")])],
        )

        # the account alone: every instrument and side; B's orders stay
        everything = client.post("/v1/orders/cancel", json={"account": A}).json()["results"]
        assert {r["order"]["client_order_id"] for r in everything} == {"a-sell", "a-perp-buy"}
        assert open_ids(client) == {"b-buy", "b-sell"}
        # nothing left to match: an empty result, not an error
        again = client.post("/v1/orders/cancel", json={"account": A, "side": "sell"})
        assert again.status_code == 200 and again.json() == {"results": []}


def test_cancel_by_ids_gives_each_id_its_own_outcome(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        mine = post_order(client, order(A, "one", "buy", "1", "2990"))
        other = post_order(client, order(B, "two", "sell", "1", "3010"))
        done = post_order(client, order(A, "three", "buy", "1", "2980"))
        client.delete(f"/v1/orders/{done['id']}")
        response = client.post(
            "/v1/orders/cancel", json={"order_ids": [mine["id"], "ord_unknown", done["id"]]}
        )
        assert response.status_code == 200, response.text
        first, unknown, closed = response.json()["results"]
        assert first["status"] == 200 and first["order"]["status"] == "cancelled"
        assert first["order"]["id"] == mine["id"]
        assert unknown["status"] == 404 and unknown["error"]["code"] == "order_not_found"
        assert closed["status"] == 409 and closed["order"] is None  # already cancelled
        assert get_order(client, other["id"])["status"] == "accepted"
        # ids and a filter together, or neither, are refused
        assert client.post("/v1/orders/cancel", json={}).status_code == 422
        both = {"order_ids": [mine["id"]], "account": A}
        assert client.post("/v1/orders/cancel", json=both).status_code == 422
        filtered_ids = {"order_ids": [mine["id"]], "side": "buy"}
        assert client.post("/v1/orders/cancel", json=filtered_ids).status_code == 422


def _alice_and_bob_orders(client: TestClient) -> tuple[dict[str, Any], dict[str, Any]]:
    alice = operator(client, "POST", "/v1/orders", json=order_body(ALICE.address, 1))
    bob = operator(
        client, "POST", "/v1/orders", json=order_body(BOB.address, 2, side="sell", price="3100")
    )
    assert alice.status_code == bob.status_code == 201
    return alice.json(), bob.json()


def test_a_trader_cancels_by_ids_over_rest_and_anothers_order_is_not_found(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    with gateway(tmp_path, clock) as client:
        mine, theirs = _alice_and_bob_orders(client)
        headers = trader_headers(client, clock, ALICE)
        response = client.post(
            "/v1/orders/cancel",
            json={"order_ids": [mine["id"], "ord_unknown", theirs["id"]]},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        statuses = [r["status"] for r in response.json()["results"]]
        assert statuses == [200, 404, 404]
        assert response.json()["results"][2]["error"]["code"] == "order_not_found"
        assert operator(client, "GET", f"/v1/orders/{theirs['id']}").json()["status"] == "accepted"
        # by filter, only its own account
        refused = client.post("/v1/orders/cancel", json={"account": BOB.address}, headers=headers)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"


def test_a_trader_cancels_by_ids_over_the_stream_and_anothers_order_is_not_found(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    with gateway(tmp_path, clock) as client:
        mine, theirs = _alice_and_bob_orders(client)
        headers = trader_headers(client, clock, ALICE)
        with client.websocket_connect("/v1/stream", headers=headers) as socket:
            assert socket.receive_json()["type"] == "subscribed"
            socket.send_json(
                {
                    "op": "cancel_orders",
                    "id": 1,
                    "order_ids": [mine["id"], "ord_unknown", theirs["id"]],
                }
            )
            socket.send_json({"op": "cancel_orders", "id": 2, "account": BOB.address})
            answers: list[dict[str, Any]] = []
            while len(answers) < 2:
                message = socket.receive_json()
                if message["type"] == "response":
                    answers.append(message)
        first, second = answers
        assert (first["id"], first["status"]) == (1, 200)
        assert [r["status"] for r in first["results"]] == [200, 404, 404]
        assert first["results"][2]["error"]["code"] == "order_not_found"
        assert (second["id"], second["status"], second["error"]["code"]) == (2, 403, "forbidden")
        assert operator(client, "GET", f"/v1/orders/{mine['id']}").json()["status"] == "cancelled"
        assert operator(client, "GET", f"/v1/orders/{theirs['id']}").json()["status"] == "accepted"
