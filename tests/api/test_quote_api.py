"""`POST /v1/quote` over HTTP: the router's split on the venues' current books."""

from __future__ import annotations

from fastapi.testclient import TestClient

from gateway.runtime import Runtime
from tests.api.test_orders_api import assert_error
from tests.market_making import make_market


def test_a_quote_walks_the_internal_book_and_reports_the_rest(client: TestClient) -> None:
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    client.portal.call(  # type: ignore[union-attr]
        make_market, rt, "WETH/USDC", "2999", "3001", "1", "mm", (("3003", "2"),)
    )
    answer = client.post(
        "/v1/quote", json={"instrument": "WETH/USDC", "side": "buy", "quantity": "4"}
    )
    assert answer.status_code == 200, answer.text
    route = answer.json()["route"]
    assert (route["filled"], route["unfilled"]) == ("3", "1")
    # 1 at 3001 and 2 at 3003, no fee on the internal book: 9007 for 3 (12 places shown)
    assert route["quote_amount"] == "9007" and route["fees"] == "0"
    assert route["average_price"] == "3002.333333333333"
    assert route["reference_price"] == "3000"
    assert [leg["venue"] for leg in route["legs"]] == ["internal"]
    assert answer.json()["best_single_venue"]["venue"] == "internal"


def test_quote_errors(client: TestClient) -> None:
    assert_error(
        client.post("/v1/quote", json={"instrument": "NOPE", "side": "buy", "quantity": "1"}),
        422,
        "unknown_instrument",
    )
    assert_error(
        client.post(
            "/v1/quote", json={"instrument": "WETH/USDC", "side": "buy", "quantity": "0.00001"}
        ),
        422,
        "quantity_below_minimum",
    )
    assert_error(
        client.post("/v1/quote", json={"instrument": "WETH/USDC", "side": "buy", "quantity": 1}),
        422,
        "validation_error",
    )
