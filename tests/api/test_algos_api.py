"""The algo API: create, inspect, pause/resume/cancel, and structured errors for bad specs.

The algos start in 2030, so the gateway's background runner (on the real clock) leaves them
scheduled and nothing is sent; execution is tested against the exchange simulator in
tests/venues/test_algo_runner.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def twap(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "twap",
        "account": ALICE,
        "instrument": "WETH/USDC",
        "side": "buy",
        "quantity": "1.2",
        "start": "2030-01-01T00:00:00Z",
        "end": "2030-01-01T00:10:00Z",
        "limit_price": "3100.00",
        "min_child": "0.01",
        "max_child": "0.5",
        "interval": "60",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_create_get_pause_resume_cancel(client: TestClient) -> None:
    created = client.post("/v1/algos", json=twap())
    assert created.status_code == 201, created.text
    algo = created.json()
    assert algo["id"].startswith("algo_")
    assert algo["status"] == "scheduled"
    assert algo["quantity"] == "1.2" and algo["filled"] == "0" and algo["in_flight"] == "0"
    assert algo["children_sent"] == 0 and algo["open_children"] == []
    assert algo["next_wake_at"].startswith("2030-01-01T00:00:00")
    assert algo["spec"]["lot_size"] == "0.0001"  # from the instrument's trading rules
    assert algo["spec"]["interval_us"] == 60_000_000

    got = client.get(f"/v1/algos/{algo['id']}")
    assert got.status_code == 200 and got.json()["spec"] == algo["spec"]

    paused = client.post(f"/v1/algos/{algo['id']}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert client.get(f"/v1/algos/{algo['id']}").json()["status"] == "paused"
    again = client.post(f"/v1/algos/{algo['id']}/pause")
    assert again.status_code == 409 and again.json()["error"]["code"] == "illegal_transition"

    resumed = client.post(f"/v1/algos/{algo['id']}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "scheduled"

    cancelled = client.post(f"/v1/algos/{algo['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["next_wake_at"] is None
    twice = client.post(f"/v1/algos/{algo['id']}/cancel")
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "illegal_transition"
    resume = client.post(f"/v1/algos/{algo['id']}/resume")
    assert resume.status_code == 409


def test_unknown_algo_is_404(client: TestClient) -> None:
    for response in (
        client.get("/v1/algos/algo_NOPE"),
        client.post("/v1/algos/algo_NOPE/pause"),
        client.post("/v1/algos/algo_NOPE/cancel"),
    ):
        assert response.status_code == 404
        assert response.json()["error"] == {
            "code": "algo_not_found",
            "message": "no algo 'algo_NOPE'",
            "field": "algo_id",
        }


def test_sniper_and_vwap_are_accepted(client: TestClient) -> None:
    sniper = client.post(
        "/v1/algos",
        json=twap(kind="sniper", trigger_price="2900.00", limit_price="2905.00", interval=None),
    )
    assert sniper.status_code == 201, sniper.text
    assert sniper.json()["spec"]["trigger_price"] == "2900.00"
    vwap = client.post("/v1/algos", json=twap(kind="vwap", volume_profile=["1", "3", "2"]))
    assert vwap.status_code == 201, vwap.text
    assert vwap.json()["spec"]["volume_profile"] == ["1", "3", "2"]


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"end": "2029-12-31T00:00:00Z"}, "invalid_algo_spec", "end"),
        ({"quantity": "1.00001"}, "invalid_algo_spec", "quantity"),
        ({"min_child": "0.6"}, "invalid_algo_spec", "min_child"),
        ({"limit_price": "3100.005"}, "invalid_algo_spec", "limit_price"),
        ({"max_child": "0.1"}, "invalid_algo_spec", "max_child"),  # 10 slices x 0.1 < 1.2
        ({"interval": "0"}, "invalid_algo_spec", "interval"),
        ({"interval": "3600"}, "invalid_algo_spec", "interval"),  # longer than the window
        ({"kind": "sniper"}, "invalid_algo_spec", "trigger_price"),
        ({"trigger_price": "3000.00"}, "invalid_algo_spec", "trigger_price"),  # not for twap
        ({"kind": "vwap"}, "invalid_algo_spec", "volume_profile"),
        ({"kind": "iceberg"}, "invalid_algo_spec", "display_quantity"),
        ({"kind": "pov"}, "invalid_algo_spec", "participation_rate"),
        ({"instrument": "DOGE/USDC"}, "unknown_instrument", "instrument"),
        ({"quantity": 1.2}, "validation_error", "body.quantity"),  # a JSON number: refused
        ({"kind": "martingale"}, "validation_error", "body.kind"),
        ({"start": "2030-01-01T00:00:00"}, "validation_error", "body.start"),  # naive time
        ({"colour": "blue"}, "validation_error", "body.colour"),
    ],
)
def test_bad_specs_are_structured_422(
    client: TestClient, changes: dict[str, Any], code: str, field: str
) -> None:
    response = client.post("/v1/algos", json=twap(**changes))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field), error
    assert error["message"]


def test_the_background_runner_steps_a_started_algo(client: TestClient) -> None:
    """Wiring: the runtime's loop (real clock) steps an algo whose start has passed. The
    test gateway has only the internal venue, which the smart router does not route to, so
    the child finds no liquidity: it is sent, ends unfilled, and the algo carries on."""
    now = datetime.now(UTC)
    body = twap(
        start=now.isoformat(), end=(now + timedelta(minutes=10)).isoformat(), max_child="0.2"
    )
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    portal = client.portal  # type: ignore[attr-defined]
    events = portal.call(lambda: rt.events.subscribe(frozenset({body["account"]})))

    async def child_done() -> None:
        # the child is persisted as open before it is sent, and closed after: wait for that
        while (await asyncio.wait_for(events.queue.get(), 10))["type"] != "algo.child_done":
            pass

    algo = client.post("/v1/algos", json=body).json()
    portal.call(child_done)
    state = client.get(f"/v1/algos/{algo['id']}").json()
    assert state["children_sent"] == 1 and state["status"] == "running"
    assert state["filled"] == "0" and state["open_children"] == []
    assert state["next_wake_at"] > algo["next_wake_at"]  # waits for the next slice
