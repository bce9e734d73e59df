"""The HTTP API: behaviour, idempotency and the error contract."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.runtime import Runtime
from tests.store.test_order_service import audit_trail

A = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
B = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def order(n: int = 1, **changes: Any) -> dict[str, Any]:
    body = {
        "account": A,
        "client_order_id": f"c{n}",
        "instrument": "WETH/USDC",
        "side": "buy",
        "quantity": "1.5",
        "price": "3000.25",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def runtime(client: TestClient) -> Runtime:
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def state(client: TestClient) -> tuple[int, int, list[tuple[str, str, bool]]]:
    """(orders, order-lifecycle records, compliance screenings as (account, client_order_id,
    allowed) oldest first); the audit chain must be intact."""
    total = 0
    cursor = None
    while True:
        page = client.get(
            "/v1/orders", params={"limit": 500, **({"cursor": cursor} if cursor else {})}
        ).json()
        total += len(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    trail = audit_trail(runtime(client).read_engine)
    return total, len(trail.order_records), trail.screenings


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    if field is not None:
        assert body["error"]["field"] == field


def test_submit_get_and_idempotent_retry(client: TestClient) -> None:
    created = client.post("/v1/orders", json=order())
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "accepted"
    assert body["quantity"] == "1.5" and body["price"] == "3000.25"
    assert body["remaining_quantity"] == "1.5" and body["filled_quantity"] == "0"
    retry = client.post("/v1/orders", json=order(account=A.lower()))
    assert retry.status_code == 200
    assert retry.json() == body
    assert client.get(f"/v1/orders/{body['id']}").json() == body
    assert state(client) == (1, 1, [(A, "c1", True)])  # the retry is not screened again


def test_same_client_order_id_for_a_different_order_conflicts(client: TestClient) -> None:
    client.post("/v1/orders", json=order())
    assert_error(
        client.post("/v1/orders", json=order(price="2999")),
        409,
        "duplicate_client_order_id",
        "client_order_id",
    )
    assert client.post("/v1/orders", json=order(account=B)).status_code == 201  # per account
    assert state(client) == (2, 2, [(A, "c1", True), (B, "c1", True)])


def test_strategy_submission(client: TestClient) -> None:
    condor: dict[str, Any] = {
        "account": A,
        "client_order_id": "condor-1",
        "legs": [
            {"instrument": "WETH-20270326-2800-P", "side": "buy"},
            {"instrument": "WETH-20270326-3000-P", "side": "sell"},
            {"instrument": "WETH-20270326-3200-C", "side": "sell"},
            {"instrument": "WETH-20270326-3500-C", "side": "buy"},
        ],
        "quantity": "2",
        "price": "-45.5",
    }
    response = client.post("/v1/strategies", json=condor)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["instrument"] is None
    assert [leg["instrument"] for leg in body["legs"]] == [
        leg["instrument"] for leg in condor["legs"]
    ]
    assert all(leg["ratio"] == 1 for leg in body["legs"])
    assert body["price"] == "-45.5"
    assert client.post("/v1/strategies", json=condor).status_code == 200
    one_leg = {**condor, "client_order_id": "x", "legs": condor["legs"][:1]}
    assert_error(client.post("/v1/strategies", json=one_leg), 422, "validation_error", "body.legs")


def test_list_filters_and_pages(client: TestClient) -> None:
    for n in range(7):
        client.post("/v1/orders", json=order(n, account=A if n % 2 else B))
    client.post("/v1/orders", json=order(99, instrument="WETH-PERP"))
    cancelled = client.post("/v1/orders", json=order(100)).json()
    client.delete(f"/v1/orders/{cancelled['id']}")
    ids = []
    cursor = None
    while True:
        params: dict[str, Any] = {"account": A, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/orders", params=params).json()
        ids += [o["id"] for o in page["items"]]
        assert all(o["account"] == A for o in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(ids) == len(set(ids)) == 5
    perp = client.get("/v1/orders", params={"instrument": "WETH-PERP"}).json()["items"]
    assert [o["client_order_id"] for o in perp] == ["c99"]
    gone = client.get("/v1/orders", params={"status": "cancelled"}).json()["items"]
    assert [o["id"] for o in gone] == [cancelled["id"]]
    assert_error(
        client.get("/v1/orders", params={"cursor": "bogus!"}), 422, "invalid_cursor", "cursor"
    )
    assert_error(
        client.get("/v1/orders", params={"status": "nope"}), 422, "validation_error", "query.status"
    )
    assert_error(
        client.get("/v1/orders", params={"limit": 0}), 422, "validation_error", "query.limit"
    )
    assert_error(
        client.get("/v1/orders", params={"account": "0x12"}),
        422,
        "validation_error",
        "query.account",
    )


def test_amend_and_cancel(client: TestClient) -> None:
    created = client.post("/v1/orders", json=order()).json()
    url = f"/v1/orders/{created['id']}"
    amended = client.patch(
        url, json={"price": "2990", "quantity": "2", "expected_version": created["version"]}
    )
    assert amended.status_code == 200, amended.text
    assert amended.json()["price"] == "2990" and amended.json()["quantity"] == "2"
    assert amended.json()["version"] == created["version"] + 1
    assert_error(
        client.patch(url, json={"price": "2980", "expected_version": created["version"]}),
        409,
        "version_conflict",
    )
    assert_error(client.patch(url, json={"price": "2990.001"}), 422, "invalid_price_tick", "price")
    assert_error(client.patch(url, json={}), 422, "nothing_to_amend")
    assert_error(client.patch(url, json={"price": "2990", "quantity": "2"}), 422, "invalid_order")
    cancelled = client.delete(url)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert_error(client.delete(url), 409, "illegal_transition")
    assert_error(client.patch(url, json={"price": "2900"}), 409, "illegal_transition")
    assert_error(client.get("/v1/orders/ord_nope"), 404, "order_not_found")
    assert_error(client.delete("/v1/orders/ord_nope"), 404, "order_not_found")
    assert state(client) == (1, 3, [(A, "c1", True)])


BAD_BODIES = [
    (order(quantity=1.5), "validation_error", "body.quantity"),
    (order(quantity="1e5"), "validation_error", "body.quantity"),
    (order(quantity="-1"), "validation_error", "body.quantity"),
    (order(quantity="0"), "invalid_quantity", "quantity"),
    (order(price="3000.001"), "invalid_price_tick", "price"),
    (order(instrument="DOGE/USDC"), "unknown_instrument", "instrument"),
    (order(side="hold"), "validation_error", "body.side"),
    (order(account="0xZZ"), "validation_error", "body.account"),
    (order(client_order_id=""), "validation_error", "body.client_order_id"),
    (order(client_order_id="x" * 65), "validation_error", "body.client_order_id"),
    (order(client_order_id="has space"), "validation_error", "body.client_order_id"),
    (order(type="market"), "invalid_order", "price"),
    (order(expires_at="2030-01-01T00:00:00"), "validation_error", "body.expires_at"),
    ({**order(), "surprise": 1}, "validation_error", "body.surprise"),
    ({k: v for k, v in order().items() if k != "quantity"}, "validation_error", "body.quantity"),
    (order(quantity="1" * 40), "validation_error", "body.quantity"),
    ([order()], "validation_error", "body"),
]


@pytest.mark.parametrize(("body", "code", "field"), BAD_BODIES)
def test_bad_input_is_refused_and_writes_nothing(
    client: TestClient, body: Any, code: str, field: str
) -> None:
    assert_error(client.post("/v1/orders", json=body), 422, code, field)
    assert state(client) == (0, 0, [])


def test_malformed_oversized_and_wrong_media(client: TestClient) -> None:
    assert_error(
        client.post(
            "/v1/orders", content=b"{not json", headers={"content-type": "application/json"}
        ),
        400,
        "malformed_json",
    )
    huge = json.dumps({**order(), "price": "1" * 100_000})
    assert_error(
        client.post("/v1/orders", content=huge, headers={"content-type": "application/json"}),
        413,
        "payload_too_large",
    )
    response = client.post(
        "/v1/orders", content=b"quantity=1", headers={"content-type": "text/plain"}
    )
    assert 400 <= response.status_code < 500
    assert "error" in response.json()
    assert_error(client.put("/v1/orders/ord_1", json={}), 405, "method_not_allowed")
    assert_error(client.get("/v1/nothing-here"), 404, "not_found")
    assert state(client) == (0, 0, [])


def test_instruments_health_and_docs(client: TestClient) -> None:
    instruments = client.get("/v1/instruments").json()
    symbols = {i["symbol"]: i for i in instruments}
    assert symbols["WETH/USDC"]["kind"] == "spot"
    assert symbols["WETH/USDC"]["quote_decimals"] == 6
    call = symbols["WETH-20270326-3000-C"]
    assert call["kind"] == "option" and call["strike"] == "3000" and call["right"] == "call"
    assert client.get("/v1/health").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    assert {
        "/v1/orders",
        "/v1/orders/{order_id}",
        "/v1/strategies",
        "/v1/instruments",
        "/v1/health",
    } <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "account": st.sampled_from([A, "0x1", 5, None]),
        "client_order_id": st.text(max_size=70) | st.integers(),
        "instrument": st.sampled_from(["WETH/USDC", "WETH-PERP", "nope", ""]) | JSON_VALUES,
        "side": st.sampled_from(["buy", "sell", "BUY"]) | JSON_VALUES,
        "type": st.sampled_from(["limit", "market", "stop", "stop_limit", "x"]),
        "time_in_force": st.sampled_from(["gtc", "ioc", "fok", "gtd", "day"]),
        "quantity": st.sampled_from(["1", "0.0001", "0", "1.00001", "-2"]) | JSON_VALUES,
        "price": st.sampled_from(["3000", "0.01", "3000.001", None]) | JSON_VALUES,
        "stop_price": st.sampled_from(["2900", None]) | JSON_VALUES,
        "post_only": JSON_VALUES,
        "expires_at": st.sampled_from(
            ["2030-01-01T00:00:00Z", "2000-01-01T00:00:00Z", "yesterday"]
        ),
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=FIELDS | JSON_VALUES)
def test_random_input_never_breaks_the_contract(client: TestClient, body: Any) -> None:
    before = state(client)
    response = client.post("/v1/orders", json=body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message", "field"}
        assert state(client) == before
    else:
        assert response.json()["status"] in ("accepted", "cancelled")
