"""POST /v1/orders/batch: each order gets the outcome it would have had alone (created,
the same request seen before, a conflict, a validation or a risk refusal), the batch counts
towards the limits as a whole, its orders trade on the book in the order given, and its
writes go to the store in one group commit."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway.oms.internal_book import _BookWrite
from tests.api.access_clients import gateway, trader_headers, wallet
from tests.api.order_entry_support import (
    SPOT,
    A,
    B,
    all_orders,
    app_client,
    audit_rows,
    depth,
    get_order,
    order,
    post_order,
    resting,
    runtime,
)
from tests.conftest import ManualClock


def test_a_batch_mixes_new_retried_conflicting_invalid_and_refused_orders(
    tmp_path: Path,
) -> None:
    # worst-case position limit 3 per instrument: each sell of 1 passes alone, not all together
    with app_client(tmp_path, risk_max_position=Decimal(3)) as client:
        earlier = post_order(client, order(A, "r1", "sell", "1", "3010"))
        rt = runtime(client)
        transactions: list[list[Any]] = []
        apply = rt.writer._apply

        def recording(commands: list[Any]) -> Any:
            transactions.append(list(commands))
            return apply(commands)

        rt.writer._apply = recording  # type: ignore[method-assign]
        batches_before = rt.writer.batches
        response = client.post(
            "/v1/orders/batch",
            json={
                "orders": [
                    order(A, "n1", "sell", "1", "3005"),  # new: rests (A short up to 2)
                    order(A, "r1", "sell", "1", "3010"),  # the earlier request again
                    order(A, "r1", "sell", "2", "3010"),  # same id, another order
                    order(A, "t1", "sell", "1", "3000.005"),  # off the tick
                    order(B, "b1", "buy", "0.5", "3006"),  # takes n1, placed just before
                    order(A, "n2", "sell", "1", "3020"),  # A short up to 3: the limit
                    order(A, "n3", "sell", "0.5", "3030"),  # alone fine, 3.5 with the rest
                    order(B, "b2", "buy", "1", "2990"),  # new: rests
                    order(A, "n1", "sell", "1", "3005"),  # n1 again within the batch
                ]
            },
        )
        batches_after = rt.writer.batches
        rt.writer._apply = apply  # type: ignore[method-assign]
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["status"] for r in results] == [201, 200, 409, 422, 201, 201, 422, 201, 200]
        codes = [None if r["error"] is None else r["error"]["code"] for r in results]
        assert codes == [
            None,
            None,
            "duplicate_client_order_id",
            "invalid_price_tick",
            None,
            None,
            "position_limit",
            None,
            None,
        ]
        assert all((r["order"] is None) == (r["error"] is not None) for r in results)
        n1, r1, _, _, b1, n2, _, b2, n1_again = (r["order"] for r in results)
        assert r1["id"] == earlier["id"] and r1["status"] == "accepted"
        assert n1_again["id"] == n1["id"]

        # b1 traded with n1 at n1's price: n1 was on the book before b1 came
        assert b1["status"] == "filled" and b1["average_price"] == "3005"
        assert get_order(client, n1["id"])["status"] == "partially_filled"
        assert get_order(client, n1["id"])["remaining_quantity"] == "0.5"
        assert (n2["status"], b2["status"]) == ("accepted", "accepted")

        # only the accepted orders were stored; the book holds exactly the resting ones
        stored = {(o["account"], o["client_order_id"]): o["status"] for o in all_orders(client)}
        assert stored == {
            (A, "r1"): "accepted",
            (A, "n1"): "partially_filled",
            (B, "b1"): "filled",
            (A, "n2"): "accepted",
            (B, "b2"): "accepted",
        }
        assert depth(client) == (
            [("2990", "1")],
            [("3005", "0.5"), ("3010", "1"), ("3020", "1")],
        )
        assert resting(client) == (
            [("2990", [("b2", "1")])],
            [("3005", [("n1", "0.5")]), ("3010", [("r1", "1")]), ("3020", [("n2", "1")])],
        )

        # one group commit: the four new orders' writes were applied in one transaction
        with_orders = [t for t in transactions if any(isinstance(c, _BookWrite) for c in t)]
        assert len(with_orders) == 1
        assert sorted(c.subject for c in with_orders[0] if isinstance(c, _BookWrite)) == sorted(
            o["id"] for o in (n1, b1, n2, b2)
        )
        assert batches_after - batches_before == len(transactions)  # nothing uncounted
        # ... and so they carry one commit time in the audit log, in one run of records
        batch_ids = {o["id"] for o in (n1, b1, n2, b2)}
        batch_keys = {(o["account"], o["client_order_id"]) for o in (n1, b1, n2, b2)}

        def of_batch(row: dict[str, Any]) -> bool:
            facts = row["payload"]
            if row["kind"] == "compliance.screened":  # written with the order it screened
                return (facts["account"], facts["client_order_id"]) in batch_keys
            return row["entity_id"] in batch_ids or facts.get("order_id") in batch_ids

        records = [(index, row) for index, row in enumerate(audit_rows(client)) if of_batch(row)]
        assert {row["created_at"] for _, row in records} == {records[0][1]["created_at"]}
        positions = [index for index, _ in records]
        assert positions == list(range(positions[0], positions[0] + len(positions)))
        kinds = [row["kind"] for _, row in records]
        assert kinds.count("order.accepted") == 4 and kinds.count("fill.recorded") == 2
        assert kinds.count("compliance.screened") == 4  # the refused n3 left no record


def test_the_limits_count_the_batch_not_each_order_alone(tmp_path: Path) -> None:
    """Five orders of 1 under an open-orders limit of 3 (one already working): the first
    two pass, the last three are refused, whatever each would do alone."""
    with app_client(tmp_path, risk_max_open_orders=3) as client:
        post_order(client, order(A, "w0", "buy", "1", "2900"))
        response = client.post(
            "/v1/orders/batch",
            json={"orders": [order(A, f"w{n}", "buy", "1", str(2900 - n)) for n in range(1, 6)]},
        )
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["status"] for r in results] == [201, 201, 422, 422, 422]
        assert {r["error"]["code"] for r in results[2:]} == {"open_orders_limit"}
        assert depth(client)[0] == [("2900", "1"), ("2899", "1"), ("2898", "1")]
        # a refused order was not reserved: cancelling one working order frees one place
        client.delete(f"/v1/orders/{results[0]['order']['id']}")
        again = client.post(
            "/v1/orders/batch",
            json={"orders": [order(A, f"w{n}", "buy", "1", str(2900 - n)) for n in (3, 4)]},
        )
        assert [r["status"] for r in again.json()["results"]] == [201, 422]


def test_a_batch_refuses_smart_orders_and_bad_bodies_as_a_whole(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        smart = client.post(
            "/v1/orders/batch",
            json={
                "orders": [
                    order(A, "s1", "buy", "1", "2900"),
                    order(A, "s2", "buy", "1", "2900", route="smart", time_in_force="ioc"),
                ]
            },
        )
        assert smart.status_code == 200, smart.text
        first, second = smart.json()["results"]
        assert first["status"] == 201
        assert second["status"] == 422 and second["error"]["code"] == "batch_direct_only"
        assert second["error"]["field"] == "orders.1.route"
        assert client.post("/v1/orders/batch", json={"orders": []}).status_code == 422
        too_many = [order(A, f"m{n}", "buy", "1", "2800") for n in range(101)]
        assert client.post("/v1/orders/batch", json={"orders": too_many}).status_code == 422
        assert [o["client_order_id"] for o in all_orders(client)] == ["s1"]
        assert depth(client, SPOT) == ([("2900", "1")], [])


def test_a_traders_batch_item_for_another_account_is_refused_as_it_would_be_alone(
    tmp_path: Path,
) -> None:
    """Alone, an order for someone else's account is 403 forbidden; in a batch its item
    must say the same (the others go on)."""
    clock = ManualClock()
    alice, bob = wallet(0).address, wallet(1).address
    with gateway(tmp_path, clock) as client:
        headers = trader_headers(client, clock, wallet(0))
        alone = client.post(
            "/v1/orders", json=order(bob, "x0", "buy", "1", "2900"), headers=headers
        )
        assert alone.status_code == 403 and alone.json()["error"]["code"] == "forbidden"
        response = client.post(
            "/v1/orders/batch",
            json={
                "orders": [
                    order(alice, "x1", "buy", "1", "2900"),
                    order(bob, "x2", "buy", "1", "2900"),
                ]
            },
            headers=headers,
        )
        assert response.status_code == 200, response.text
        mine, theirs = response.json()["results"]
        assert mine["status"] == 201 and mine["order"]["account"] == alice
        assert theirs["error"]["code"] == "forbidden"
        assert theirs["status"] == 403, theirs


def test_one_client_order_id_twice_in_a_batch_with_different_bodies_conflicts_alone(
    tmp_path: Path,
) -> None:
    """Sent one by one, the second body under a used client order id is 409 and the others
    stand; in a batch that item alone must be 409, not the whole batch (whose first order
    is placed all the same)."""
    with app_client(tmp_path) as client:
        response = client.post(
            "/v1/orders/batch",
            json={
                "orders": [
                    order(A, "k", "buy", "1", "2990"),
                    order(A, "k", "buy", "2", "2990"),
                    order(B, "z", "buy", "1", "2980"),
                ]
            },
        )
        assert response.status_code == 200, response.text
        first, second, third = response.json()["results"]
        assert first["status"] == 201 and third["status"] == 201
        assert (second["status"], second["error"]["code"]) == (409, "duplicate_client_order_id")
        assert resting(client) == ([("2990", [("k", "1")]), ("2980", [("z", "1")])], [])


def test_an_order_gone_earlier_in_the_batch_does_not_refuse_a_later_one_as_self_trade(
    tmp_path: Path,
) -> None:
    """Sent one by one, A's buy rests: A's earlier sell at that price is no longer working
    by then (an IOC that found nothing; a GTC that B's order filled). In a batch the same
    orders must have the same outcome, not a self_trade refusal against an order that has
    left the book."""
    batches = [
        [
            order(A, "ioc", "sell", "1", "3000", time_in_force="ioc"),
            order(A, "after-ioc", "buy", "1", "3000"),
        ],
        [
            order(A, "gtc", "sell", "1", "3005"),
            order(B, "taker", "buy", "1", "3005"),
            order(A, "after-fill", "buy", "1", "3005"),
        ],
    ]
    with app_client(tmp_path, "one_by_one") as alone:
        singly = [[alone.post("/v1/orders", json=body).status_code for body in b] for b in batches]
        assert singly == [[201, 201], [201, 201, 201]]
        expected_book = depth(alone)
        assert expected_book == ([("3005", "1"), ("3000", "1")], [])
    with app_client(tmp_path, "batched") as client:
        for items, statuses in zip(batches, singly, strict=True):
            response = client.post("/v1/orders/batch", json={"orders": items})
            assert response.status_code == 200, response.text
            results = response.json()["results"]
            assert [r["status"] for r in results] == statuses, [r["error"] for r in results]
        assert depth(client) == expected_book
