"""POST /v1/quotes (mass quote): an account's quotes on a set of instruments become exactly
the levels given, in one step. A level at a resting quote's price keeps it (same quantity),
amends it in place keeping its queue place (smaller) or sends it to the back (larger);
prices no longer given are cancelled first; new prices are placed post-only, so a level
that would take liquidity is refused, and the account's new quotes never meet its old."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.api.order_entry_support import (
    SPOT,
    A,
    B,
    C,
    all_orders,
    app_client,
    depth,
    get_order,
    maker_sequence,
    order,
    post_order,
    resting,
    runtime,
)


def quote(
    client: TestClient, account: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]
) -> dict[str, Any]:
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
    return dict(response.json())


def level(out: dict[str, Any], side: str, price: str) -> dict[str, Any]:
    [found] = [lv for lv in out["levels"] if lv["side"] == side and lv["price"] == price]
    return dict(found)


def test_a_second_mass_quote_keeps_amends_drops_and_adds_levels(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        first = quote(
            client,
            A,
            bids=[("2990", "1")],
            asks=[("3001", "1"), ("3002", "2"), ("3003", "1"), ("3004", "1")],
        )
        assert {lv["action"] for lv in first["levels"]} == {"placed"} and first["cancelled"] == []
        ids = {(lv["side"], lv["price"]): lv["order_id"] for lv in first["levels"]}
        placed = get_order(client, ids[("sell", "3002")])
        assert placed["client_order_id"].startswith("mq-") and placed["post_only"] is True
        # another account joins each ask level behind A's quote, and bids at 2995
        b_asks = {
            p: post_order(client, order(B, f"b{p}", "sell", "1", p))
            for p in ("3001", "3002", "3003")
        }
        b_bid = post_order(client, order(B, "b-bid", "buy", "1", "2995"))

        second = quote(
            client,
            A,
            bids=[("2990", "1")],
            asks=[
                ("3001", "1"),  # the same: kept
                ("3002", "1"),  # smaller: amended in place
                ("3003", "2"),  # larger: amended to the back
                ("3005", "1"),  # new
                ("2995", "1"),  # new, but it would take B's bid: refused
            ],
        )  # 3004 no longer given: cancelled
        kept, reduced, grown = (level(second, "sell", p) for p in ("3001", "3002", "3003"))
        assert (kept["action"], kept["order_id"], kept["order"]) == (
            "kept",
            ids[("sell", "3001")],
            None,
        )
        assert (reduced["action"], reduced["order_id"]) == ("amended", ids[("sell", "3002")])
        assert reduced["order"]["remaining_quantity"] == "1"
        assert (grown["action"], grown["order_id"]) == ("amended", ids[("sell", "3003")])
        assert grown["order"]["remaining_quantity"] == "2"
        assert level(second, "buy", "2990")["action"] == "kept"
        new = level(second, "sell", "3005")
        assert new["action"] == "placed" and new["order"]["status"] == "accepted"
        crossing = level(second, "sell", "2995")
        assert crossing["action"] == "refused"
        assert crossing["order"] is None or crossing["order"]["status"] == "cancelled"
        [dropped] = second["cancelled"]
        assert dropped["id"] == ids[("sell", "3004")] and dropped["status"] == "cancelled"
        assert get_order(client, ids[("sell", "3004")])["status"] == "cancelled"
        # nothing traded: B's bid is whole, every quote untouched
        assert get_order(client, b_bid["id"])["filled_quantity"] == "0"
        assert all(o["filled_quantity"] == "0" for o in all_orders(client))

        bids, asks = resting(client)
        quote_cid = {
            lv["order_id"]: get_order(client, lv["order_id"])["client_order_id"]
            for lv in (kept, reduced, grown, new)
        }
        k, r, g, n = (quote_cid[lv["order_id"]] for lv in (kept, reduced, grown, new))
        assert asks == [
            ("3001", [(k, "1"), ("b3001", "1")]),
            ("3002", [(r, "1"), ("b3002", "1")]),
            ("3003", [("b3003", "1"), (g, "2")]),
            ("3005", [(n, "1")]),
        ]
        assert [price for price, _ in bids] == ["2995", "2990"]

        # a taker from a third account sweeps up to 3003: price, then queue order
        taker = post_order(client, order(C, "sweep", "buy", "6", "3003", time_in_force="ioc"))
        assert taker["status"] == "filled"
        assert maker_sequence(client, taker["id"]) == [
            ids[("sell", "3001")],
            b_asks["3001"]["id"],
            ids[("sell", "3002")],
            b_asks["3002"]["id"],
            b_asks["3003"]["id"],
            ids[("sell", "3003")],
        ]
        assert get_order(client, ids[("sell", "3003")])["remaining_quantity"] == "1"
        assert depth(client)[1] == [("3003", "1"), ("3005", "1")]


def test_a_new_quote_never_meets_the_old_quote_it_replaces(tmp_path: Path) -> None:
    """The account's old ask at 3010 is dropped by the same mass quote that bids 3010: the
    cancel goes first, so the bid rests (no self-trade, no post-only refusal)."""
    with app_client(tmp_path) as client:
        first = quote(client, A, bids=[("3000", "1")], asks=[("3010", "1")])
        old_ask = level(first, "sell", "3010")["order_id"]
        second = quote(client, A, bids=[("3010", "1")], asks=[("3020", "1")])
        bid = level(second, "buy", "3010")
        assert bid["action"] == "placed", bid
        assert bid["order"]["status"] == "accepted" and bid["order"]["filled_quantity"] == "0"
        assert level(second, "sell", "3020")["action"] == "placed"
        assert {o["id"] for o in second["cancelled"]} == {
            old_ask,
            level(first, "buy", "3000")["order_id"],
        }
        cancelled = get_order(client, old_ask)
        assert cancelled["status"] == "cancelled" and cancelled["filled_quantity"] == "0"
        assert "self-trade" not in (cancelled["status_reason"] or "")
        assert depth(client) == ([("3010", "1")], [("3020", "1")])


def test_an_instrument_listed_without_levels_pulls_its_quotes(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        quote(client, A, bids=[("2990", "1"), ("2989", "1")], asks=[("3010", "1")])
        post_order(client, order(A, "plain", "buy", "1", "2980"))  # not a quote: stays
        pulled = quote(client, A, bids=[], asks=[])
        assert pulled["levels"] == [] and len(pulled["cancelled"]) == 3
        assert resting(client) == ([("2980", [("plain", "1")])], [])
        twice = client.post(
            "/v1/quotes",
            json={"account": A, "quotes": [{"instrument": SPOT}, {"instrument": SPOT}]},
        )
        assert twice.status_code == 422 and twice.json()["error"]["field"] == "quotes"
        same_price = client.post(
            "/v1/quotes",
            json={
                "account": A,
                "quotes": [
                    {
                        "instrument": SPOT,
                        "bids": [
                            {"price": "2990", "quantity": "1"},
                            {"price": "2990", "quantity": "2"},
                        ],
                    }
                ],
            },
        )
        assert same_price.status_code == 422
        assert resting(client) == ([("2980", [("plain", "1")])], [])


def test_an_unsigned_quote_where_signatures_are_required_is_refused_whole(
    tmp_path: Path,
) -> None:
    """Refused as a whole, as an unsigned order is: the account's resting quotes stay (a
    level refused alone would have withdrawn the quote at its price)."""
    with app_client(tmp_path) as client:
        quote(client, A, bids=[("2990", "1")], asks=[("3010", "1")])
        runtime(client).settings.require_signed_orders = True
        refused = client.post(
            "/v1/quotes",
            json={
                "account": A,
                "quotes": [{"instrument": SPOT, "bids": [{"price": "2995", "quantity": "1"}]}],
            },
        )
        assert (refused.status_code, refused.json()["error"]["code"]) == (
            422,
            "signature_required",
        )
        bids, asks = resting(client)
        assert [(p, [q for _, q in queue]) for p, queue in bids] == [("2990", ["1"])]
        assert [(p, [q for _, q in queue]) for p, queue in asks] == [("3010", ["1"])]


def test_a_signed_level_let_through_as_kept_is_refused_if_its_quote_left_meanwhile(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A signed level that is its resting quote's own is not claimed (no new order); if that
    quote trades away between that check and the book's lock, the level would rest as a
    second order under a nonce the traded quote holds: the book refuses it. (No chain here:
    signatures are stored as given, and the nonce rule applies all the same.)"""
    signed = {"nonce": "7", "deadline": 2**40, "signature": "0x" + "ab" * 65}
    body = {
        "account": A,
        "quotes": [
            {"instrument": SPOT, "bids": [{"price": "2999", "quantity": "1", "signature": signed}]}
        ],
    }
    with app_client(tmp_path) as client:
        first = client.post("/v1/quotes", json=body)
        assert level(first.json(), "buy", "2999")["action"] == "placed", first.text
        again = client.post("/v1/quotes", json=body)
        assert level(again.json(), "buy", "2999")["action"] == "kept", again.text
        taker = order(B, "t1", "sell", "1", "2999", time_in_force="ioc", post_only=False)
        assert post_order(client, taker)["status"] == "filled"
        # the quote has traded; the order service still saw it resting (the moment between
        # its check and the book's lock)
        monkeypatch.setattr(runtime(client).book, "keeps_quote", lambda account, lv: True)
        late = level(client.post("/v1/quotes", json=body).json(), "buy", "2999")
        assert late["action"] == "refused"
        assert (late["error"]["code"], late["error"]["field"]) == (
            "invalid_signature",
            "signature.nonce",
        )
        monkeypatch.undo()
        # without the race, the nonce rule refuses it the same way
        plain = level(client.post("/v1/quotes", json=body).json(), "buy", "2999")
        assert (plain["action"], plain["error"]["field"]) == ("refused", "signature.nonce")
        assert depth(client) == ([], [])
