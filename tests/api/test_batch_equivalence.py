"""A batch is its orders sent one by one, in order: any sequence of batches, single orders
and mass quotes over a few accounts and prices, applied to one gateway through
POST /v1/orders/batch and to another (its own database) with each batch's orders sent as
single POST /v1/orders, ends with the same outcome per order, the same book (depth and
every resting order in queue order) and the same audit trail, ids and times aside.

Mass quotes have no one-by-one equivalent: both gateways get the same ones."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.api.order_entry_support import (
    SPOT,
    A,
    B,
    C,
    app_client,
    audit_head,
    audit_rows,
    depth,
    order,
    resting,
)

PRICES = ["2998", "2999", "3000", "3001", "3002"]  # well inside any price band
QUANTITIES = ["0.5", "1", "2"]
VOLATILE = {"id", "order_id", "trade_id", "created_at", "updated_at", "executed_at"}

orders = st.fixed_dictionaries(
    {
        "account": st.sampled_from([A, B, C]),
        "client_order_id": st.sampled_from(["k0", "k1", "k2"]),
        "instrument": st.just(SPOT),
        "side": st.sampled_from(["buy", "sell"]),
        "quantity": st.sampled_from(QUANTITIES),
        "price": st.sampled_from(PRICES),
        "time_in_force": st.sampled_from(["gtc", "gtc", "ioc"]),
        "post_only": st.booleans(),
        # signed with one of two nonces, or not: a nonce signs one order, so an order under a
        # nonce another order holds is refused, one by one as in a batch (no chain here: the
        # signature itself is not checked)
        "signature": st.sampled_from([None, 1, 2]),
    }
)
SIGNATURE = "0x" + "ab" * 65
levels = st.lists(
    st.tuples(st.sampled_from(PRICES), st.sampled_from(QUANTITIES)),
    max_size=3,
    unique_by=lambda level: level[0],
)
quotes = st.tuples(st.just("quote"), st.sampled_from([A, B, C]), levels, levels)


@st.composite
def scenarios(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Commands over a small pool of order bodies, so retries (the same body again) and
    conflicts (another body under a used client order id) are common."""
    pool = draw(st.lists(orders, min_size=2, max_size=7))
    index = st.integers(0, len(pool) - 1)
    command = st.one_of(
        st.tuples(st.just("single"), index.map(lambda i: pool[i])),
        st.tuples(
            st.just("batch"),
            st.lists(index, min_size=1, max_size=6).map(lambda ix: [pool[i] for i in ix]),
        ),
        quotes,
    )
    return draw(st.lists(command, min_size=1, max_size=8))


@pytest.fixture(scope="module")
def gateways() -> Iterator[tuple[TestClient, TestClient]]:
    """Two gateways for every example (a start each would make the test slow): each
    example starts on empty books with client order ids of its own."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        with app_client(path, "batched") as batched, app_client(path, "single") as single:
            yield batched, single


def clear(client: TestClient) -> int:
    """Cancel every resting order; the number of audit records after."""
    for account in (A, B, C):
        response = client.post("/v1/orders/cancel", json={"account": account})
        assert response.status_code == 200, response.text
    assert depth(client) == ([], [])
    return audit_head(client)


def outcome(status: int, body: dict[str, Any]) -> tuple[Any, ...]:
    """What a batch item or a single response says, ids aside: the status, and the order's
    client order id or the error's code and field."""
    if body.get("error") is not None:
        return (status, body["error"]["code"], body["error"]["field"])
    return (status, body["order"]["account"], body["order"]["client_order_id"])


def send_batch(client: TestClient, items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    response = client.post("/v1/orders/batch", json={"orders": items})
    assert response.status_code == 200, response.text
    return [
        outcome(r["status"], {"order": r["order"], "error": r["error"]})
        for r in response.json()["results"]
    ]


def send_singly(client: TestClient, items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    results = []
    for item in items:
        response = client.post("/v1/orders", json=item)
        body = response.json()
        results.append(outcome(response.status_code, body if "error" in body else {"order": body}))
    return results


def send_quote(client: TestClient, command: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    _, account, bids, asks = command
    response = client.post(
        "/v1/quotes",
        json={
            "account": account,
            "quotes": [
                {
                    "instrument": SPOT,
                    "bids": [{"price": p, "quantity": q} for p, q in bids],
                    "asks": [{"price": p, "quantity": q} for p, q in asks],
                }
            ],
        },
    )
    assert response.status_code == 200, response.text
    out = response.json()
    return [
        (lv["side"], lv["price"], lv["action"], (lv["error"] or {}).get("code"))
        for lv in out["levels"]
    ] + [("cancelled", o["side"], o["price"]) for o in out["cancelled"]]


def normal(value: Any) -> Any:
    """Ids, times and mass quotes' generated client order ids taken out."""
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, (list, tuple)):
        return [normal(v) for v in value]
    if isinstance(value, str) and value.startswith("mq-"):
        return "mq-*"
    return value


def trail(client: TestClient, start: int) -> list[tuple[str, Any]]:
    return [(row["kind"], normal(row["payload"])) for row in audit_rows(client, after=start)]


def book(client: TestClient) -> Any:
    return depth(client), normal(resting(client))


EXAMPLES = itertools.count()
# two cases that once diverged, always run: an order gone from the book earlier in the batch
# (an IOC that found nothing) is no self-trade for a later one of the same account; a client
# order id sent twice with two bodies is a conflict for the second alone
IOC_THEN_CROSS = [
    (
        "batch",
        [
            order(A, "k0", "sell", "1", "3000", time_in_force="ioc", post_only=False),
            order(A, "k1", "buy", "1", "3000", time_in_force="gtc", post_only=False),
        ],
    )
]
TWO_BODIES = [
    (
        "batch",
        [
            order(A, "k0", "buy", "1", "2999", time_in_force="gtc", post_only=False),
            order(A, "k0", "buy", "2", "2999", time_in_force="gtc", post_only=False),
        ],
    )
]

# a key refused first (self-trade with its own quote) and sent again with another body: one by
# one the second is new; a batch once gave it the first's refusal (found by this test)
REFUSED_THEN_SAME_KEY = [
    ("quote", A, [("2998", "0.5")], []),
    (
        "batch",
        [
            order(A, "k0", "sell", "0.5", "2998", time_in_force="gtc", post_only=False),
            order(A, "k0", "buy", "0.5", "2998", time_in_force="gtc", post_only=False),
        ],
    ),
]

# a nonce held by a stored order, and by an earlier order of the same batch
ONE_NONCE_TWICE = [
    ("single", order(A, "k0", "buy", "1", "2999", signature=1)),
    (
        "batch",
        [
            order(A, "k1", "buy", "1", "2998", signature=1),
            order(A, "k2", "buy", "1", "2998", signature=2),
            order(A, "k0", "buy", "1", "2999", signature=1),
            order(A, "k1", "sell", "1", "3002", signature=2),
            order(B, "k1", "buy", "1", "2998", signature=2),
        ],
    ),
]


@example(commands=ONE_NONCE_TWICE)
@example(commands=IOC_THEN_CROSS)
@example(commands=TWO_BODIES)
@example(commands=REFUSED_THEN_SAME_KEY)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(commands=scenarios())
def test_a_batch_leaves_what_its_orders_sent_one_by_one_leave(
    gateways: tuple[TestClient, TestClient], commands: list[tuple[Any, ...]]
) -> None:
    batched, single = gateways
    starts = clear(batched), clear(single)
    tag = f"x{next(EXAMPLES)}-"  # a retry is one within this example

    base = 10 * int(tag[1:-1])  # the example's own nonces

    def own(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        mine = []
        for item in items:
            item = item | {"client_order_id": tag + item["client_order_id"]}
            if item.get("signature") is None:
                item.pop("signature", None)
            else:
                signed = {"nonce": str(base + item["signature"]), "deadline": 2**40}
                item["signature"] = signed | {"signature": SIGNATURE}
            mine.append(item)
        return mine

    for command in commands:
        if command[0] == "quote":
            assert send_quote(batched, command) == send_quote(single, command), command
            continue
        items = own(command[1] if command[0] == "batch" else [command[1]])
        if command[0] == "batch":
            assert send_batch(batched, items) == send_singly(single, items), items
        else:
            assert send_singly(batched, items) == send_singly(single, items), items
        assert book(batched) == book(single), command
    assert book(batched) == book(single)
    assert trail(batched, starts[0]) == trail(single, starts[1])
    for client in gateways:  # each nonce signs at most one stored order of its account
        for account in (A, B, C):
            stored = client.get("/v1/orders", params={"account": account, "limit": 500})
            nonces = [o["signed"]["nonce"] for o in stored.json()["items"] if o["signed"]]
            assert len(nonces) == len(set(nonces)), (account, nonces)
