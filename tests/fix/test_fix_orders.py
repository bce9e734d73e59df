"""Order entry over FIX against the gateway in this process: every ExecutionReport field of
new, partial fill, fill, cancel, replace and reject, status requests, mass cancel and a
strategy, with QuickFIX's own initiator as the desk."""

from __future__ import annotations

from decimal import Decimal

import quickfix as fix
import quickfix44 as fix44

from tests.fix.conftest import ACCOUNT, FixGateway
from tests.fix.initiator import field, limit_order
from tests.operator_access import operator_headers


def new_order(cl_ord_id: str, side: str, quantity: str, price: str, **extra: str) -> fix.Message:
    """The account's limit order; `extra` as t<tag>=value (e.g. t59="0")."""
    tags = [(int(tag.removeprefix("t")), value) for tag, value in extra.items()]
    return limit_order(cl_ord_id, ACCOUNT, quantity, price, side=side, extra=tags)


def test_an_order_is_new_then_partly_filled_then_filled(fix_gateway: FixGateway) -> None:
    fix_gateway.quote("2990", "3010", size="1", tag="mm")
    with fix_gateway.desk() as desk:
        desk.wait_logon()
        desk.send(new_order("buy-1", "1", "1.5", "3010"))
        new = desk.next_app("8")
        assert (field(new, 150), field(new, 39)) == ("0", "0")
        assert field(new, 11) == "buy-1" and field(new, 1) == ACCOUNT
        partial = desk.next_app("8")
        assert (field(partial, 150), field(partial, 39)) == ("F", "1"), partial.toString()
        assert Decimal(field(partial, 32)) == 1 and Decimal(field(partial, 31)) == 3010
        assert Decimal(field(partial, 14)) == 1 and Decimal(field(partial, 151)) == Decimal("0.5")
        assert Decimal(field(partial, 6)) == 3010
        assert field(partial, 37) == field(new, 37)
        fix_gateway.quote("2990", "3010", size="1", tag="mm2")
        filled = desk.next_app("8")
        assert (field(filled, 150), field(filled, 39)) == ("F", "2"), filled.toString()
        assert Decimal(field(filled, 32)) == Decimal("0.5")
        assert Decimal(field(filled, 14)) == Decimal("1.5") and Decimal(field(filled, 151)) == 0


def order_request(kind: type, cl_ord_id: str, orig: str, **extra: str) -> fix.Message:
    message = kind()
    for tag, value in (
        (11, cl_ord_id),
        (41, orig),
        (1, ACCOUNT),
        (55, "WETH/USDC"),
        (54, "1"),
        (60, "20261206-12:00:00.000"),
    ):
        message.setField(fix.StringField(tag, value))
    for tag, value in extra.items():
        message.setField(fix.StringField(int(tag.removeprefix("t")), value))
    return message


def test_replace_status_and_cancel_follow_the_clordid_chain(fix_gateway: FixGateway) -> None:
    with fix_gateway.desk() as desk:
        desk.wait_logon()
        desk.send(new_order("rest-1", "1", "2", "2900"))
        new = desk.next_app("8")
        order_id = field(new, 37)
        desk.send(
            order_request(
                fix44.OrderCancelReplaceRequest, "rest-2", "rest-1", t38="3", t40="2", t44="2950"
            )
        )
        replaced = desk.next_app("8")
        assert (field(replaced, 150), field(replaced, 39)) == ("5", "0"), replaced.toString()
        assert (field(replaced, 11), field(replaced, 41)) == ("rest-2", "rest-1")
        assert field(replaced, 37) == order_id
        assert Decimal(field(replaced, 38)) == 3 and Decimal(field(replaced, 44)) == 2950
        assert Decimal(field(replaced, 151)) == 3
        # the replaced order answers to its new ClOrdID
        status = fix44.OrderStatusRequest()
        for tag, value in ((11, "rest-2"), (1, ACCOUNT), (55, "WETH/USDC"), (54, "1")):
            status.setField(fix.StringField(tag, value))
        desk.send(status)
        seen = desk.next_app("8")
        assert (field(seen, 150), field(seen, 39)) == ("I", "0") and field(seen, 37) == order_id
        assert Decimal(field(seen, 44)) == 2950
        desk.send(order_request(fix44.OrderCancelRequest, "rest-3", "rest-2"))
        cancelled = desk.next_app("8")
        assert (field(cancelled, 150), field(cancelled, 39)) == ("4", "4")
        assert (field(cancelled, 11), field(cancelled, 41)) == ("rest-3", "rest-2")
        assert Decimal(field(cancelled, 151)) == 0 and Decimal(field(cancelled, 14)) == 0
        # too late: the order is done
        desk.send(order_request(fix44.OrderCancelRequest, "rest-4", "rest-3"))
        late = desk.next_app("9")
        assert field(late, 434) == "1" and field(late, 39) == "4" and field(late, 102) == "0"
        assert field(late, 37) == order_id and field(late, 20003) == "illegal_transition"
        # an order nobody entered
        desk.send(order_request(fix44.OrderCancelRequest, "x-1", "never-sent"))
        unknown = desk.next_app("9")
        assert field(unknown, 102) == "1" and field(unknown, 20003) == "order_not_found"


def test_refusals_are_rejected_reports_with_the_stable_code(fix_gateway: FixGateway) -> None:
    fix_gateway.quote("2990", "3010")
    with fix_gateway.desk() as desk:
        desk.wait_logon()
        desk.send(new_order("far-1", "1", "1", "9000"))  # far outside the price band
        band = desk.next_app("8")
        assert (field(band, 150), field(band, 39)) == ("8", "8")
        assert field(band, 11) == "far-1" and field(band, 20003) == "price_outside_band"
        assert field(band, 103) == "99" and field(band, 58)
        other = new_order("other-1", "1", "1", "2950")
        other.setField(fix.StringField(1, "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"))
        desk.send(other)
        forbidden = desk.next_app("8")
        assert field(forbidden, 39) == "8" and field(forbidden, 20003) == "forbidden"
        desk.send(new_order("tif-1", "1", "1", "2950", t59="0"))  # DAY: not served
        tif = desk.next_app("8")
        assert field(tif, 39) == "8" and field(tif, 20003) == "invalid_order"


def test_the_same_clordid_again_is_the_same_order(fix_gateway: FixGateway) -> None:
    with fix_gateway.desk() as desk:
        desk.wait_logon()
        desk.send(new_order("dup-1", "1", "1", "2900"))
        first = desk.next_app("8")
        desk.send(new_order("dup-1", "1", "1", "2900"))
        again = desk.next_app("8")
        assert field(again, 150) == "I" and field(again, 37) == field(first, 37)
        orders = fix_gateway.client.get(
            "/v1/orders",
            params={"account": ACCOUNT},
            headers=operator_headers(),
        ).json()["items"]
        assert [o["client_order_id"] for o in orders] == ["dup-1"]


def test_mass_cancel_by_symbol_reports_each_order(fix_gateway: FixGateway) -> None:
    with fix_gateway.desk() as desk:
        desk.wait_logon()
        ids = set()
        for n, price in enumerate(("2900", "2890", "2880")):
            desk.send(new_order(f"m-{n}", "1", "1", price))
            ids.add(field(desk.next_app("8"), 37))
        mass = fix44.OrderMassCancelRequest()
        for tag, value in (
            (11, "mass-1"),
            (530, "1"),
            (55, "WETH/USDC"),
            (1, ACCOUNT),
            (60, "20261206-12:00:00.000"),
        ):
            mass.setField(fix.StringField(tag, value))
        desk.send(mass)
        report = desk.next_app("r")
        assert field(report, 531) == "1" and field(report, 533) == "3"
        cancelled = {field(desk.next_app("8"), 37) for _ in range(3)}
        assert cancelled == ids


def test_a_strategy_is_reported_as_a_whole(fix_gateway: FixGateway) -> None:
    fix_gateway.quote("2990", "3010")
    fix_gateway.quote("2990", "3010", tag="perp", instrument="WETH-PERP")
    with fix_gateway.desk() as desk:
        desk.wait_logon()
        message = fix44.NewOrderMultileg()
        for tag, value in (
            (11, "strat-1"),
            (1, ACCOUNT),
            (54, "1"),
            (38, "1"),
            (40, "2"),
            (44, "25"),  # pays up to 25 for buying the spot and selling the perpetual
            (59, "1"),
            (60, "20261206-12:00:00.000"),
        ):
            message.setField(fix.StringField(tag, value))
        for symbol, side in (("WETH/USDC", "1"), ("WETH-PERP", "2")):
            leg = fix44.NewOrderMultileg.NoLegs()
            leg.setField(fix.StringField(600, symbol))
            leg.setField(fix.StringField(624, side))
            leg.setField(fix.StringField(623, "1"))
            message.addGroup(leg)
        desk.send(message)
        new = desk.next_app("8")
        assert (field(new, 150), field(new, 39)) == ("0", "0"), new.toString()
        assert field(new, 442) == "3" and field(new, 11) == "strat-1"
        assert "WETH/USDC" in field(new, 55) and "WETH-PERP" in field(new, 55)
        # against the legs' books: 3010 for the spot, 2990 for the perpetual, 20 net
        legs = {}
        for _ in range(2):
            fill = desk.next_app("8")
            assert field(fill, 150) == "F" and field(fill, 442) == "2", fill.toString()
            legs[field(fill, 55)] = (Decimal(field(fill, 32)), Decimal(field(fill, 31)))
        assert legs == {"WETH/USDC": (1, 3010), "WETH-PERP": (1, 2990)}
        assert field(fill, 39) == "2" and Decimal(field(fill, 151)) == 0
