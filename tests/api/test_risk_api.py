"""Risk over HTTP: an account's Greeks, VaR, margin and liquidation prices; what-if."""

from __future__ import annotations

import math
from decimal import Decimal
from statistics import NormalDist
from typing import Any

from fastapi.testclient import TestClient

from gateway.api.schemas import OrderIn
from gateway.runtime import Runtime
from tests.api.test_orders_api import A, B, assert_error, order
from tests.market_making import make_market, venue_fill

CALL = "WETH-20270326-3000-C"
PUT = "WETH-20270326-2800-P"


def runtime(client: TestClient) -> Runtime:
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def quote(client: TestClient, instrument: str, bid: str, ask: str) -> None:
    client.portal.call(make_market, runtime(client), instrument, bid, ask)  # type: ignore[union-attr]


def fill(client: TestClient, body: dict[str, Any], price: str) -> None:
    """An order executed in full on a venue (recorded as the router records executions)."""
    spec = OrderIn.model_validate(body).to_spec()
    client.portal.call(venue_fill, runtime(client), spec, Decimal(price))  # type: ignore[union-attr]


def market(client: TestClient) -> None:
    quote(client, "WETH/USDC", "2999", "3001")
    quote(client, CALL, "300", "310")


def test_an_empty_account_has_no_risk(client: TestClient) -> None:
    market(client)
    body = client.get(f"/v1/accounts/{A}/risk").json()
    assert body["positions"] == [] and body["greeks"] == {} and body["var"] == []
    assert body["market"]["spots"] == {"WETH": "3000"}


def test_account_risk_of_a_short_call_hedged_with_spot(client: TestClient) -> None:
    market(client)
    fill(client, order(1, instrument=CALL, side="sell", quantity="2", price="305"), "305")
    fill(client, order(2, side="buy", quantity="1", price="3000"), "3000")
    body = client.get(f"/v1/accounts/{A}/risk").json()
    positions = {p["instrument"]: p for p in body["positions"]}
    assert positions[CALL]["quantity"] == "-2" and positions["WETH/USDC"]["quantity"] == "1"
    # the call's vol is implied from its own mid: 305 back out of Black-Scholes
    vol = float(body["market"]["option_vols"][CALL])
    assert 0.05 < vol < 5
    assert math.isclose(float(positions[CALL]["value"]), -2 * 305, rel_tol=1e-6)
    call_delta = float(positions[CALL]["delta"])
    assert -2 < call_delta < 0
    greeks = body["greeks"]["WETH"]
    assert math.isclose(float(greeks["delta"]), 1 + call_delta, rel_tol=1e-9)
    assert float(greeks["gamma"]) < 0 and float(greeks["vega"]) < 0  # short options
    methods = {m["method"]: m for m in body["var"]}
    assert methods["historical"]["available"] is False  # no price history yet
    for name in ("delta_gamma", "monte_carlo"):
        measure = methods[name]
        assert measure["available"] and measure["confidence"] == "0.99"
        assert 0 < float(measure["var"]) <= float(measure["expected_shortfall"])
    # cash: received 610 for the calls, paid 3000 for the WETH
    margin = body["margin"]
    assert margin["onchain"] is None and margin["liquidatable"] is True  # net cash negative
    assert body["liquidation"][0]["underlying"] == "WETH"


def test_var_follows_the_confidence_asked_for(client: TestClient) -> None:
    market(client)
    fill(client, order(1, quantity="3", price="3000"), "3000")
    loose = client.get(f"/v1/accounts/{A}/risk", params={"confidence": 0.9}).json()
    tight = client.get(f"/v1/accounts/{A}/risk", params={"confidence": 0.999}).json()

    def var(body: dict[str, Any], method: str = "delta_gamma") -> float:
        return float(next(m for m in body["var"] if m["method"] == method)["var"])

    assert 0 < var(loose) < var(tight)
    one_day = client.get(f"/v1/accounts/{A}/risk").json()
    ten_day = client.get(f"/v1/accounts/{A}/risk", params={"horizon_days": 10}).json()
    # parametric, linear book: VaR scales with the square root of the horizon
    assert math.isclose(var(ten_day) / var(one_day), math.sqrt(10), rel_tol=1e-4)
    # Monte Carlo revalues lognormal spots: 3 WETH lose 9000 (1 - exp(-z sigma sqrt(h)))
    z, sigma = NormalDist().inv_cdf(0.99), 0.6 / math.sqrt(365)
    for days, body in ((1, one_day), (10, ten_day)):
        exact = 9000 * (1 - math.exp(-z * sigma * math.sqrt(days)))
        assert math.isclose(var(body, "monte_carlo"), exact, rel_tol=0.03)
    assert_error(
        client.get(f"/v1/accounts/{A}/risk", params={"confidence": 1.5}), 422, "validation_error"
    )


def test_what_if_shows_the_order_filled_and_the_pre_trade_verdict(client: TestClient) -> None:
    market(client)
    proposal = order(1, instrument=CALL, side="sell", quantity="1", price="305")
    answer = client.post("/v1/risk/what-if", json={"order": proposal})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["pre_trade"] == {"accepted": True}
    assert body["assumed_fill_prices"] == {CALL: "305"}
    assert body["before"]["positions"] == []
    after = body["after"]
    assert [p["quantity"] for p in after["positions"]] == ["-1"]
    assert float(after["greeks"]["WETH"]["delta"]) < 0
    # nothing was submitted
    assert client.get("/v1/orders", params={"account": A}).json()["items"] == []

    client.put(f"/v1/risk/limits/{A}", json={"max_position": "0.5"})
    refused = client.post("/v1/risk/what-if", json={"order": proposal}).json()
    assert refused["pre_trade"]["accepted"] is False
    assert refused["pre_trade"]["code"] == "position_limit"


def test_what_if_errors(client: TestClient) -> None:
    market(client)
    assert_error(client.post("/v1/risk/what-if", json={}), 422, "domain_error", "order")
    no_mid = order(
        1, instrument=PUT, side="buy", quantity="1", type="market", price=None, time_in_force="ioc"
    )
    assert_error(client.post("/v1/risk/what-if", json={"order": no_mid}), 422, "no_reference_price")
    bad_tick = order(2, instrument=CALL, quantity="1", price="305.3")
    assert_error(
        client.post("/v1/risk/what-if", json={"order": bad_tick}), 422, "invalid_price_tick"
    )


def test_operator_book_sums_every_account(client: TestClient) -> None:
    market(client)
    fill(client, order(1, quantity="2", price="3000"), "3000")
    fill(client, order(2, account=B, side="sell", quantity="0.5", price="3001"), "3001")
    book = client.get("/v1/risk/book").json()
    assert math.isclose(float(book["greeks"]["WETH"]["delta"]), 1.5, rel_tol=1e-12)
    assert {p["quantity"] for p in book["positions"]} == {"2", "-0.5"}


def test_hedging_policy_round_trip(client: TestClient) -> None:
    assert client.get(f"/v1/risk/hedging/{A}").json()["enabled"] is False
    put = client.put(f"/v1/risk/hedging/{A}", json={"instrument": "WETH-PERP", "band": "0.5"})
    assert put.status_code == 200 and put.json()["policy"]["band"] == "0.5"
    assert client.get(f"/v1/risk/hedging/{A}").json()["enabled"] is True
    assert_error(
        client.put(f"/v1/risk/hedging/{A}", json={"instrument": CALL, "band": "0.5"}),
        422,
        "domain_error",
        "instrument",
    )
    assert_error(
        client.put(f"/v1/risk/hedging/{A}", json={"instrument": "WETH-PERP", "band": "0"}),
        422,
        "domain_error",
        "band",
    )
    assert client.delete(f"/v1/risk/hedging/{A}").json()["enabled"] is False


def test_what_if_a_strategy_fills_every_leg_at_its_mid(client: TestClient) -> None:
    market(client)
    quote(client, "WETH-20270326-3200-C", "200", "210")
    spread = {
        "account": A,
        "client_order_id": "spread-1",
        "quantity": "2",
        "price": "100",
        "legs": [
            {"instrument": CALL, "side": "buy"},
            {"instrument": "WETH-20270326-3200-C", "side": "sell"},
        ],
    }
    body = client.post("/v1/risk/what-if", json={"strategy": spread}).json()
    assert body["pre_trade"] == {"accepted": True}
    assert body["assumed_fill_prices"] == {CALL: "305", "WETH-20270326-3200-C": "205"}
    held = {p["instrument"]: p["quantity"] for p in body["after"]["positions"]}
    assert held == {CALL: "2", "WETH-20270326-3200-C": "-2"}
    # a call spread: long delta, bounded; its vega is small next to a naked call's
    greeks = body["after"]["greeks"]["WETH"]
    assert 0 < float(greeks["delta"]) < 2
