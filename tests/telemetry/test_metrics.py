"""GET /metrics against real traffic: each test scrapes, makes the gateway do something (orders
that rest and match, a margin alert, a venue that fails and reconnects, leases taken over, a
batch settled on anvil), scrapes again and checks the counters moved by exactly that. The
Grafana dashboard and the Prometheus configuration in deploy/ name only what is exported."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert
from web3 import Web3

from gateway.api.app import create_app
from gateway.chain.anvil import Anvil
from gateway.chain.transactions import Sender
from gateway.config import Settings
from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.market import FeeSchedule
from gateway.oms.service import SystemClock
from gateway.runtime import Runtime
from gateway.store.tables import LeaseRow, ReplicaRow
from gateway.venues.internal import InternalVenue
from gateway.venues.market_data import FeedStatus
from tests.api.test_venues_api import SilentExchange
from tests.api.test_venues_api import gateway as exchange_gateway  # noqa: F401 (a fixture)
from tests.chain.conftest import anvil_node, deployer, fresh_chain, w3  # noqa: F401
from tests.chain.settlement_desk import Desk, serve
from tests.conftest import ManualClock
from tests.market_making import make_market, sold_and_filled
from tests.operator_access import OPERATOR_TOKEN, operator_headers

ROOT = Path(__file__).resolve().parents[2]
A = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
B = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
CALL = "WETH-20270326-3000-C"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples_of(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")  # no credentials: Prometheus sends none
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples_of(response.text)


async def scrape_async(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    return samples_of(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def order(n: int, account: str, side: str, price: str, **extra: Any) -> dict[str, Any]:
    return {
        "account": account,
        "client_order_id": f"m{n}",
        "instrument": "WETH/USDC",
        "side": side,
        "quantity": "1",
        "price": price,
        **extra,
    }


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'metrics.db'}", operator_token=OPERATOR_TOKEN
    )
    rt = Runtime.build(settings, clock=ManualClock())
    with TestClient(create_app(settings, runtime=rt), headers=operator_headers()) as test_client:
        yield test_client


def test_requests_acknowledgements_matching_and_resting_orders_move_with_orders(
    client: TestClient,
) -> None:
    before = scrape(client)
    ask = client.post("/v1/orders", json=order(1, A, "sell", "3000"))
    assert ask.status_code == 201, ask.text
    bid = client.post("/v1/orders", json=order(2, B, "buy", "3000", time_in_force="ioc"))
    assert bid.status_code == 201 and bid.json()["status"] == "filled", bid.text
    batch = client.post(
        "/v1/orders/batch",
        json={"orders": [order(3, A, "sell", "3100"), order(4, B, "buy", "2900")]},
    )
    assert batch.status_code == 200, batch.text
    assert [r["status"] for r in batch.json()["results"]] == [201, 201]
    assert client.get(f"/v1/orders/{ask.json()['id']}").status_code == 200
    assert client.get("/v1/orders/ord_nope").status_code == 404
    # refused by the access guard before any routing: still counted under its template
    anonymous = client.get(f"/v1/orders/{bid.json()['id']}", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    response = client.get("/metrics")
    after = samples_of(response.text)

    requests = "isthmus_http_requests_total"
    # POST /v1/orders is answered by the fast path, outside FastAPI's routing
    assert moved(before, after, requests, route="/v1/orders", method="POST", status="2xx") == 2
    assert (
        moved(before, after, requests, route="/v1/orders/batch", method="POST", status="2xx") == 1
    )
    by_id = {"route": "/v1/orders/{order_id}", "method": "GET"}
    assert moved(before, after, requests, **by_id, status="2xx") == 1
    assert moved(before, after, requests, **by_id, status="4xx") == 2  # the 404 and the 401
    durations = "isthmus_http_request_duration_seconds_count"
    assert moved(before, after, durations, route="/v1/orders", method="POST") == 2
    assert moved(before, after, durations, **by_id) == 3
    acks = "isthmus_order_ack_seconds_count"
    assert moved(before, after, acks, route="/v1/orders") == 2
    assert moved(before, after, acks, route="/v1/orders/batch") == 1
    assert value(after, "isthmus_order_ack_seconds_sum", route="/v1/orders") > 0
    # every order went through the matching engine once: two single, two in the batch
    assert moved(before, after, "isthmus_matching_seconds_count") == 4
    assert value(after, "isthmus_matching_seconds_bucket", le="+Inf") == value(
        after, "isthmus_matching_seconds_count"
    )
    # the first two traded; the batch's two rest
    assert value(before, "isthmus_orders_resting", instrument="WETH/USDC") == 0
    assert value(after, "isthmus_orders_resting", instrument="WETH/USDC") == 2

    # labels are templates and classes: no order id, account or raw path
    text = response.text
    for secret in (ask.json()["id"], bid.json()["id"], A, A.lower(), B, "ord_nope"):
        assert secret not in text
    routes = {dict(labels).get("route") for name, labels in after if name == requests}
    assert routes <= {"/v1/orders", "/v1/orders/batch", "/v1/orders/{order_id}", "/metrics"}


def test_a_request_for_no_route_is_counted_as_unmatched(client: TestClient) -> None:
    before = scrape(client)
    assert client.get("/v1/nothing/here/0xabc").status_code == 404
    after = scrape(client)
    unmatched = {"route": "unmatched", "method": "GET", "status": "4xx"}
    assert moved(before, after, "isthmus_http_requests_total", **unmatched) == 1
    assert not any("/v1/nothing" in str(labels) for _, labels in after)


def test_margin_alerts_are_counted_by_level_never_by_account(tmp_path: Path) -> None:
    """A short call with no collateral: one tick of the risk monitor raises a liquidation
    alert; the app (its runtime started without a lifespan) counts it once."""

    async def scenario() -> None:
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'alerts.db'}", operator_token=OPERATOR_TOKEN
        )
        clock = SystemClock()
        catalogue = devnet_catalogue()
        rt = Runtime.build(
            settings,
            catalogue=catalogue,
            clock=clock,
            venues=[InternalVenue(catalogue, clock, FeeSchedule(Decimal(0), Decimal(0)))],
        )
        await rt.start(expiry_interval=None, monitor=False, algos=False, reconcile_interval=None)
        app = create_app(settings, runtime=rt)
        app.state.runtime = rt
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw", headers=operator_headers()
        )
        try:
            before = await scrape_async(http)
            await make_market(rt, "WETH/USDC", "2990", "3010")
            await make_market(rt, CALL, "300", "310", "10")
            await sold_and_filled(rt, A, CALL, "2", "305", "short-calls")
            [alert] = await rt.monitor.tick()
            assert alert.level.name == "LIQUIDATION"
            assert await rt.monitor.tick() == []  # the same level: no new alert
            after = await scrape_async(http)
        finally:
            await http.aclose()
            await rt.stop()
        assert moved(before, after, "isthmus_margin_alerts_total", level="liquidation") == 1
        assert value(after, "isthmus_margin_accounts", level="liquidation") == 1
        assert value(after, "isthmus_margin_accounts", level="warning") == 0
        assert not any(A.lower() in str(labels).lower() for _, labels in after)

    asyncio.run(scenario())


def test_venue_staleness_age_and_reconnects_follow_the_feed(
    exchange_gateway: tuple[TestClient, ManualClock, SilentExchange],  # noqa: F811
) -> None:
    client, clock, exchange = exchange_gateway
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    clock.advance(seconds=3)
    live = scrape(client)
    assert value(live, "isthmus_venue_stale", venue="exchange") == 0
    assert value(live, "isthmus_venue_last_update_age_seconds", venue="exchange") == 3
    assert value(live, "isthmus_venue_reconnects_total", venue="exchange") == 0

    failed, back = threading.Event(), threading.Event()
    rt.market_data.on_status_change(
        lambda name, status: (
            failed.set() if (name, status) == ("exchange", FeedStatus.STALE) else None
        )
    )
    exchange.break_stream()
    assert failed.wait(10)
    broken = scrape(client)
    assert value(broken, "isthmus_venue_stale", venue="exchange") == 1
    assert value(broken, "isthmus_venue_feed_failures", venue="exchange") == 1
    assert value(broken, "isthmus_venue_stale", venue="internal") == 0

    rt.market_data.on_status_change(
        lambda name, status: back.set() if (name, status) == ("exchange", FeedStatus.LIVE) else None
    )
    exchange.let_it_reconnect()
    assert back.wait(10)
    again = scrape(client)
    assert value(again, "isthmus_venue_stale", venue="exchange") == 0
    assert moved(broken, again, "isthmus_venue_reconnects_total", venue="exchange") == 1
    assert value(again, "isthmus_venue_feed_failures", venue="exchange") == 0


def put_leases(rt: Runtime, now: datetime) -> None:
    """Two replicas' heartbeats and two roles: `primary` held by replica-b after three
    failovers, `old-role` lapsed a minute ago."""
    leases = LeaseRow.__table__  # type: ignore[attr-defined]
    replicas = ReplicaRow.__table__  # type: ignore[attr-defined]
    with rt.write_engine.begin() as connection:
        connection.execute(
            insert(leases),
            [
                {
                    "role": "primary",
                    "holder": "replica-b",
                    "address": "http://gateway-2:8000",
                    "token": 4,
                    "takeovers": 3,
                    "acquired_at": now - timedelta(seconds=30),
                    "renewed_at": now,
                    "expires_at": now + timedelta(minutes=10),
                },
                {
                    "role": "old-role",
                    "holder": "replica-a",
                    "address": "http://gateway-1:8000",
                    "token": 1,
                    "takeovers": 0,
                    "acquired_at": now - timedelta(hours=1),
                    "renewed_at": now - timedelta(minutes=2),
                    "expires_at": now - timedelta(minutes=1),
                },
            ],
        )
        connection.execute(
            insert(replicas),
            [
                {
                    "replica_id": "replica-a",
                    "address": "http://gateway-1:8000",
                    "pid": 11,
                    "started_at": now - timedelta(hours=1),
                    "seen_at": now - timedelta(minutes=5),
                },
                {
                    "replica_id": "replica-b",
                    "address": "http://gateway-2:8000",
                    "pid": 22,
                    "started_at": now - timedelta(minutes=30),
                    "seen_at": now,
                },
            ],
        )


def test_lease_holders_failovers_and_heartbeats_are_read_from_the_store(
    database_url: str,
) -> None:
    settings = Settings(database_url=database_url, operator_token=OPERATOR_TOKEN)
    rt = Runtime.build(settings, clock=ManualClock())
    with TestClient(create_app(settings, runtime=rt)) as client:
        before = scrape(client)
        assert not any(name.startswith("isthmus_lease_held") for name, _ in before)
        put_leases(rt, datetime.now(UTC))
        after = scrape(client)
    assert value(after, "isthmus_lease_held", role="primary", holder="replica-b") == 1
    assert not any(
        name == "isthmus_lease_held" and dict(labels)["role"] == "old-role"
        for name, labels in after
    )  # lapsed: nobody holds it
    assert moved(before, after, "isthmus_lease_failovers_total", role="primary") == 3
    assert value(after, "isthmus_lease_failovers_total", role="old-role") == 0
    assert value(after, "isthmus_lease_expires_in_seconds", role="primary") > 0
    assert value(after, "isthmus_lease_expires_in_seconds", role="old-role") < 0
    assert value(after, "isthmus_replica_last_seen_seconds", replica="replica-a") >= 300
    assert value(after, "isthmus_replica_last_seen_seconds", replica="replica-b") < 300


@pytest.mark.chain
def test_settlement_lag_gas_and_batches_move_when_a_batch_confirms(
    w3: Web3,  # noqa: F811
    deployer: Sender,  # noqa: F811
    anvil_node: Anvil,  # noqa: F811
    fresh_chain: Web3,  # noqa: F811
    tmp_path: Path,
) -> None:
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'settle.db'}")

    async def scenario() -> None:
        rt = desk.runtime()
        http = await serve(rt)
        try:
            before = await scrape_async(http)
            assert value(before, "isthmus_settlement_unsettled_fills") == 0
            await desk.order(http, desk.seller, desk.seller_wallet, "sell", "1", "3000")
            bid = await desk.order(
                http, desk.buyer, desk.buyer_wallet, "buy", "1", "3000", time_in_force="ioc"
            )
            assert bid["status"] == "filled"
            waiting = await scrape_async(http)
            assert value(waiting, "isthmus_settlement_unsettled_fills") == 2
            assert value(waiting, "isthmus_settlement_oldest_unsettled_seconds") >= 0
            assert rt.settlement is not None
            outcome = await rt.settlement.run_once()
            assert (outcome.batches, outcome.settled) == (1, 2)
            after = await scrape_async(http)
            [fill] = (await http.get(f"/v1/orders/{bid['id']}/fills")).json()
            batch = (await http.get(f"/v1/settlements/{fill['batch_id']}")).json()
        finally:
            await http.aclose()
            await rt.stop()
        assert batch["status"] == "confirmed" and int(batch["gas_used"]) > 0
        batches = "isthmus_settlement_batches_total"
        assert moved(before, after, batches, outcome="opened") == 1
        assert moved(before, after, batches, outcome="confirmed") == 1
        assert moved(before, after, batches, outcome="reverted") == 0
        assert moved(before, after, "isthmus_settlement_lag_seconds_count") == 2  # both fills
        assert value(after, "isthmus_settlement_lag_seconds_sum") >= 0
        assert moved(before, after, "isthmus_settlement_batch_gas_used_count") == 1
        assert value(after, "isthmus_settlement_batch_gas_used_sum") == int(batch["gas_used"])
        assert value(after, "isthmus_settlement_batches_pending") == 0
        assert value(after, "isthmus_settlement_unsettled_fills") == 0
        assert value(after, "isthmus_settlement_oldest_unsettled_seconds") == 0

    asyncio.run(scenario())


# -- the dashboard and the scrape configuration -------------------------------------------

METRIC_NAME = re.compile(r"\b(?:isthmus|process|python)_[a-z0-9_]+\b")


def exported_names(text: str) -> set[str]:
    """Every name a PromQL expression may use for what this text exports."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
    return names


def dashboard_expressions() -> list[tuple[str, str]]:
    dashboard = json.loads((ROOT / "deploy/grafana/isthmus-dashboard.json").read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", ())
    ]


def test_every_dashboard_expression_names_metrics_the_gateway_exports(
    client: TestClient,
) -> None:
    client.post("/v1/orders", json=order(1, A, "sell", "3000"))
    exported = exported_names(client.get("/metrics").text)
    expressions = dashboard_expressions()
    assert len(expressions) >= 20
    unknown = []
    for title, expr in expressions:
        names = METRIC_NAME.findall(expr)
        assert names, f"{title}: {expr} names no metric"
        unknown += [f"{title}: {name}" for name in names if name not in exported]
    assert not unknown, unknown
    used = {name for _, expr in expressions for name in METRIC_NAME.findall(expr)}
    # a panel for each of the gateway's own families
    families = {f.name for f in text_string_to_metric_families(client.get("/metrics").text)}
    own = {f for f in families if f.startswith("isthmus_")}
    shown = {f for f in own if any(name.startswith(f) for name in used)}
    assert shown == own, own - shown


def test_prometheus_scrapes_both_replicas_metrics_as_the_dashboard_expects() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["job_name"] == "isthmus" and job["metrics_path"] == "/metrics"
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert targets == ["gateway-1:8000", "gateway-2:8000"]
    jobs = {m for _, expr in dashboard_expressions() for m in re.findall(r'job="(\w+)"', expr)}
    assert jobs <= {job["job_name"]}
