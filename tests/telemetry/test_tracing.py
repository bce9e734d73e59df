"""OpenTelemetry traces: one signed order's trace runs from its API request through risk and
the book to the settlement transaction; the server span names the route, carries the
request id (the caller's, when sane) and continues a caller's W3C trace. Spans are read
from the in-memory exporter."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from web3 import Web3

from gateway.chain.anvil import Anvil
from gateway.chain.transactions import Sender
from gateway.config import Settings
from gateway.oms.settlement_service import SettlementService
from gateway.telemetry import tracing
from tests.api.access_clients import gateway, operator, order_body, wallet
from tests.chain.conftest import anvil_node, deployer, fresh_chain, w3  # noqa: F401
from tests.chain.settlement_desk import Desk, serve
from tests.conftest import ManualClock
from tests.operator_access import operator_headers


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = tracing.install_in_memory_exporter()
    try:
        yield exporter
    finally:
        tracing.disable_tracing()


def one(spans: list[ReadableSpan], name: str, **attributes: object) -> ReadableSpan:
    found = [
        s
        for s in spans
        if s.name == name and all((s.attributes or {}).get(k) == v for k, v in attributes.items())
    ]
    assert len(found) == 1, (name, attributes, [(s.name, s.attributes) for s in spans])
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> set[str]:
    return {s.name for s in spans if parent_of(s) == parent.context.span_id}


@pytest.mark.chain
def test_a_signed_order_is_one_trace_from_the_api_request_to_its_settlement(
    w3: Web3,  # noqa: F811
    deployer: Sender,  # noqa: F811
    anvil_node: Anvil,  # noqa: F811
    fresh_chain: Web3,  # noqa: F811
    tmp_path: Path,
    spans: InMemorySpanExporter,
) -> None:
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'traced.db'}")

    async def scenario() -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
        rt = desk.runtime()
        http = await serve(rt)
        try:
            ask = await desk.order(http, desk.seller, desk.seller_wallet, "sell", "1", "3000")
            bid = await desk.order(
                http, desk.buyer, desk.buyer_wallet, "buy", "1", "3000", time_in_force="ioc"
            )
            assert isinstance(rt.settlement, SettlementService)
            outcome = await rt.settlement.run_once()  # as the settlement loop does, later
            assert (outcome.batches, outcome.settled) == (1, 2)
            [fill] = (await http.get(f"/v1/orders/{bid['id']}/fills")).json()
            assert fill["settlement"] == "settled"
            return ask, bid, fill
        finally:
            await http.aclose()
            await rt.stop()

    ask, bid, fill = asyncio.run(scenario())
    finished = list(spans.get_finished_spans())

    # the bid's request: server span -> order.submit -> compliance, risk, book
    submit = one(finished, "order.submit", **{"order.id": bid["id"]})
    server = next(s for s in finished if s.context.span_id == parent_of(submit))
    assert server.name == "POST /v1/orders" and server.kind is SpanKind.SERVER
    assert server.parent is None  # the request is the root of the order's trace
    assert server.attributes is not None
    assert server.attributes["http.method"] == "POST"
    assert server.attributes["http.route"] == "/v1/orders"
    assert server.attributes["http.status_code"] == 201
    assert submit.attributes is not None
    assert submit.attributes["order.account"] == desk.buyer_wallet
    assert submit.attributes["order.client_order_id"] == bid["client_order_id"]
    assert children(finished, submit) == {
        "compliance.screen",
        "risk.pre_trade",
        "book.place",
        "settlement.batch",  # below: the settlement of what it traded
    }
    book = one(finished, "book.place", **{"order.id": bid["id"]})
    risk = next(
        s for s in finished if s.name == "risk.pre_trade" and parent_of(s) == submit.context.span_id
    )
    for child in (book, risk):
        assert child.context.trace_id == server.context.trace_id
    assert risk.end_time is not None and book.start_time is not None
    assert risk.end_time <= book.start_time  # risk is checked before the book sees it

    # the maker's order came in on a request of its own: a trace of its own
    ask_submit = one(finished, "order.submit", **{"order.id": ask["id"]})
    assert ask_submit.context.trace_id != submit.context.trace_id

    # settlement, later and outside any request: a child of the order that traded (the
    # newest), linked to both orders' submissions
    batch = one(finished, "settlement.batch", **{"batch.id": fill["batch_id"]})
    assert batch.context.trace_id == server.context.trace_id
    assert parent_of(batch) == submit.context.span_id
    assert batch.attributes is not None
    assert batch.attributes["tx.hash"] == fill["tx_hash"]
    assert batch.attributes["batch.fills"] == 2
    assert batch.attributes["batch.status"] == "confirmed"
    assert set(batch.attributes["batch.order_ids"]) == {ask["id"], bid["id"]}  # type: ignore[arg-type]
    links = {(link.attributes or {}).get("order.id"): link.context.span_id for link in batch.links}
    assert links == {ask["id"]: ask_submit.context.span_id, bid["id"]: submit.context.span_id}
    assert children(finished, batch) == {"settlement.simulate", "settlement.transaction"}
    transaction = one(finished, "settlement.transaction")
    assert parent_of(transaction) == batch.context.span_id
    assert transaction.attributes is not None
    assert transaction.attributes["tx.hash"] == fill["tx_hash"]
    assert transaction.attributes["tx.gas_used"] == batch.attributes["tx.gas_used"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def test_the_server_span_names_the_route_and_carries_the_request_id(
    tmp_path: Path, clock: ManualClock, spans: InMemorySpanExporter
) -> None:
    trace_id, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with gateway(tmp_path, clock) as client:
        body = order_body(wallet(0).address, 1)
        placed = client.post(
            "/v1/orders", json=body, headers={**operator_headers(), "X-Request-Id": "client-42"}
        )
        assert placed.status_code == 201, placed.text
        assert placed.headers["X-Request-Id"] == "client-42"
        order_id = placed.json()["id"]
        insane = "x" * 129
        read = client.get(
            f"/v1/orders/{order_id}",
            headers={
                **operator_headers(),
                "X-Request-Id": insane,
                "traceparent": f"00-{trace_id}-{caller_span}-01",
            },
        )
        assert read.status_code == 200
        generated = read.headers["X-Request-Id"]
        assert generated != insane and len(generated) == 32
        missing = operator(client, "GET", "/v1/nothing-here")
        assert missing.status_code == 404

    finished = list(spans.get_finished_spans())
    post = one(finished, "POST /v1/orders")  # answered by the order fast path
    assert post.attributes is not None
    assert post.attributes["request.id"] == "client-42"
    assert post.attributes["http.status_code"] == 201
    submit = one(finished, "order.submit", **{"order.id": order_id})
    assert parent_of(submit) == post.context.span_id
    get = one(finished, "GET /v1/orders/{order_id}")
    assert get.attributes is not None
    assert get.attributes["http.route"] == "/v1/orders/{order_id}"
    assert get.attributes["request.id"] == generated
    # the caller's trace continues: same trace id, the caller's span as parent
    assert format(get.context.trace_id, "032x") == trace_id
    assert get.parent is not None and format(get.parent.span_id, "016x") == caller_span
    unknown = one(finished, "GET", **{"http.status_code": 404})
    assert unknown.attributes is not None and "http.route" not in unknown.attributes


def test_with_tracing_off_nothing_is_traced_and_the_request_id_is_still_returned(
    tmp_path: Path, clock: ManualClock
) -> None:
    exporter = tracing.install_in_memory_exporter()
    tracing.disable_tracing()  # as `ISTHMUS_TRACING=off` leaves it: no provider at all
    tracing.configure_tracing(Settings(tracing="off"))
    assert not tracing.enabled()
    with gateway(tmp_path, clock) as client:
        placed = operator(client, "POST", "/v1/orders", json=order_body(wallet(0).address, 1))
        assert placed.status_code == 201
        assert len(placed.headers["X-Request-Id"]) == 32
    assert exporter.get_finished_spans() == ()
    with tracing.start_span("anything") as span:
        assert not span.is_recording()


def test_otlp_export_goes_where_the_standard_variables_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        tracing.configure_tracing(Settings(tracing="otlp"))
        try:
            assert tracing.enabled()
            with tracing.start_span("order.submit") as span:
                span.set_attribute("order.id", "ord_exported")
            assert tracing.flush()  # the batch processor exports now, and waits for it
        finally:
            tracing.disable_tracing()
    finally:
        server.shutdown()
        thread.join()
    [(path, body)] = received
    assert path == "/v1/traces"
    assert b"order.submit" in body and b"ord_exported" in body and b"isthmus" in body
