"""`PATCH /v1/orders/{id}` on a strategy resting on its combo book: the net price and the
quantity change as for single orders (a lower quantity keeps its place, a new net price goes
to the back and may trade at once), in the strategy's own terms, as placed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.api.test_internal_book import C3000, C3200, A, B, C, app_client, spread
from tests.api.test_orders_api import runtime
from tests.market_making import make_market

# the same call spread written with its legs flipped: buying it at -p sells the spread at p
FLIPPED = [
    {"instrument": C3200, "side": "buy", "ratio": 1},
    {"instrument": C3000, "side": "sell", "ratio": 1},
]


def strategy(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/strategies", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "accepted"  # resting: nothing crossed
    return dict(response.json())


def amend(client: TestClient, order_id: str, **body: str) -> dict[str, Any]:
    response = client.patch(f"/v1/orders/{order_id}", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def order(client: TestClient, order_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/orders/{order_id}").json())


def test_a_resting_strategy_is_amended_on_its_combo_book(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        rt = runtime(client)
        # the legs imply the spread at 300 - 210 = 90 bid, 310 - 200 = 110 offered
        for instrument, bid, ask in ((C3000, "300", "310"), (C3200, "200", "210")):
            client.portal.call(make_market, rt, instrument, bid, ask, "5")  # type: ignore[union-attr]
        first = strategy(client, spread(A, "a1", "buy", "95"))
        second = strategy(client, spread(C, "c1", "buy", "95"))

        # a lower quantity keeps the first in front
        reduced = amend(client, first["id"], quantity="0.5")
        assert (reduced["quantity"], reduced["price"], reduced["status"]) == (
            "0.5",
            "95",
            "accepted",
        )
        taker = client.post("/v1/strategies", json=spread(B, "b1", "sell", "95", quantity="0.5"))
        assert taker.json()["status"] == "filled", taker.text
        assert order(client, first["id"])["status"] == "filled"
        assert order(client, second["id"])["filled_quantity"] == "0"

        # a new net price sends a strategy to the back: the third, moved away and back, now
        # waits behind the second
        third = strategy(client, spread(A, "a2", "buy", "94"))
        moved = amend(client, third["id"], price="95")
        assert moved["price"] == "95" and moved["version"] > third["version"]
        taker = client.post("/v1/strategies", json=spread(B, "b2", "sell", "95"))
        assert taker.json()["status"] == "filled", taker.text
        assert order(client, second["id"])["status"] == "filled"
        assert order(client, third["id"])["filled_quantity"] == "0"

        # a strategy written with its legs flipped is amended in its own terms (a credit of
        # -p sells the spread at p): moved to cross the third, it trades at once, both in full
        offer = strategy(client, {**spread(B, "b3", "buy", "-105"), "legs": FLIPPED})
        assert amend(client, offer["id"], price="-104")["price"] == "-104"
        crossed = amend(client, offer["id"], price="-95")
        assert (crossed["status"], crossed["price"], crossed["average_price"]) == (
            "filled",
            "-95",
            "-95",
        )
        assert order(client, third["id"])["status"] == "filled"
        assert order(client, third["id"])["average_price"] == "95"

        # a larger quantity is allowed; a quantity at or below what filled is refused cleanly
        fourth = strategy(client, spread(A, "a3", "buy", "93"))
        assert amend(client, fourth["id"], quantity="2")["quantity"] == "2"
        refused = client.patch(f"/v1/orders/{third['id']}", json={"price": "96"})
        assert refused.status_code == 409, refused.text  # filled: no longer open
