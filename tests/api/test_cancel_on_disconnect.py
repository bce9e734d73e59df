"""Cancel-on-disconnect over the stream: a connection that opted in has its accounts'
resting orders cancelled when it drops; one that opted out, or never opted in, does not."""

from __future__ import annotations

from pathlib import Path

from tests.api.test_internal_book import A, B, app_client, place


def test_a_dropped_connection_that_opted_in_pulls_its_accounts_orders(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        quote = place(client, A, "q1", "sell", "1", "3000")
        other = place(client, B, "q2", "sell", "1", "3001")
        with client.websocket_connect("/v1/stream") as watcher:
            assert watcher.receive_json()["type"] == "subscribed"
            with client.websocket_connect("/v1/stream") as ws:
                assert ws.receive_json()["type"] == "subscribed"
                ws.send_json(
                    {"op": "cancel_on_disconnect", "id": "c1", "enabled": True, "accounts": [A]}
                )
                assert ws.receive_json() == {
                    "type": "response",
                    "id": "c1",
                    "status": 200,
                    "cancel_on_disconnect": True,
                    "accounts": [A],
                }
                assert client.get(f"/v1/orders/{quote['id']}").json()["status"] == "accepted"
            # the maker's connection dropped: the watcher hears its order cancelled
            while True:
                event = watcher.receive_json()
                if event.get("type") == "order.cancelled":
                    break
            assert event["order"]["id"] == quote["id"]
        gone = client.get(f"/v1/orders/{quote['id']}").json()
        assert gone["status"] == "cancelled"
        assert "cancel on disconnect" in gone["status_reason"]
        assert client.get(f"/v1/orders/{other['id']}").json()["status"] == "accepted"


def test_a_connection_that_opted_out_or_never_in_cancels_nothing(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        quote = place(client, A, "q1", "sell", "1", "3000")
        with client.websocket_connect("/v1/stream") as ws:
            assert ws.receive_json()["type"] == "subscribed"
            ws.send_json({"op": "cancel_on_disconnect", "id": 1, "enabled": True, "accounts": [A]})
            assert ws.receive_json()["status"] == 200
            ws.send_json({"op": "cancel_on_disconnect", "id": 2, "enabled": False})
            assert ws.receive_json()["cancel_on_disconnect"] is False
            ws.send_json({"op": "cancel_on_disconnect", "id": 3, "enabled": "yes"})
            refused = ws.receive_json()
            assert (refused["status"], refused["error"]["field"]) == (422, "enabled")
        with client.websocket_connect("/v1/stream") as ws:
            assert ws.receive_json()["type"] == "subscribed"
        assert client.get(f"/v1/orders/{quote['id']}").json()["status"] == "accepted"
