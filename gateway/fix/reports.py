"""ExecutionReports (8), OrderCancelRejects (9) and BusinessMessageRejects (j), built from
the order and fill facts the order service publishes (`gateway.oms.order_facts`).

Custom tags (isthmus_fields.xml): 20001 settlement status, 20002 transaction hash,
20003 the stable error code of a refusal (the same codes as the HTTP API's error bodies)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import quickfix as fix
import quickfix44 as fix44

SETTLEMENT = 20001
TX_HASH = 20002
ERROR_CODE = 20003

# ExecType (150) and OrdStatus (39)
NEW, PARTIAL, FILLED, CANCELLED, REPLACED, REJECTED, EXPIRED = "0", "1", "2", "4", "5", "8", "C"
TRADE, RESTATED, ORDER_STATUS = "F", "D", "I"

ORD_STATUS = {
    "new": NEW,
    "accepted": NEW,
    "partially_filled": PARTIAL,
    "filled": FILLED,
    "cancelled": CANCELLED,
    "rejected": REJECTED,
    "expired": EXPIRED,
}
SIDE = {"buy": "1", "sell": "2"}
SIDE_OF = {v: k for k, v in SIDE.items()}
ORD_TYPE = {"market": "1", "limit": "2", "stop": "3", "stop_limit": "4"}
ORD_TYPE_OF = {v: k for k, v in ORD_TYPE.items()}
TIME_IN_FORCE = {"gtc": "1", "ioc": "3", "fok": "4", "gtd": "6"}
TIME_IN_FORCE_OF = {v: k for k, v in TIME_IN_FORCE.items()}
# MultilegReportingType (442): the strategy as a whole, or one of its legs' fills
MULTILEG_WHOLE, MULTILEG_LEG = "3", "2"


def _s(message: fix.FieldMap, tag: int, value: object) -> None:
    # decimals as their text, never through a double
    message.setField(fix.StringField(tag, str(value)))


def _timestamp(text: str | None) -> str:
    when = datetime.fromisoformat(text) if text else datetime.now().astimezone()
    return when.strftime("%Y%m%d-%H:%M:%S.") + f"{when.microsecond // 1000:03d}"


def symbol_of(facts: dict[str, Any]) -> str:
    """A strategy has no instrument: it is named by its legs, as its ratios and sides."""
    if facts.get("instrument"):
        return str(facts["instrument"])
    return "+".join(
        f"{leg['ratio']}x{leg['instrument']}:{leg['side']}" for leg in facts.get("legs", [])
    )


def execution_report(
    facts: dict[str, Any],
    exec_type: str,
    exec_id: str,
    *,
    cl_ord_id: str,
    orig_cl_ord_id: str | None = None,
    text: str | None = None,
    last: tuple[Decimal | str, Decimal | str] | None = None,
    leg_symbol: str | None = None,
    tx_hash: str | None = None,
) -> fix.Message:
    """An ExecutionReport of the order whose facts are given: `last` is the (quantity, price)
    of the fill it reports; `leg_symbol` the leg of a strategy that fill is on."""
    report = fix44.ExecutionReport()
    _s(report, 37, facts["id"])
    _s(report, 11, cl_ord_id)
    if orig_cl_ord_id is not None:
        _s(report, 41, orig_cl_ord_id)
    _s(report, 17, exec_id)
    _s(report, 150, exec_type)
    _s(report, 39, ORD_STATUS[facts["status"]])
    _s(report, 1, facts["account"])
    _s(report, 55, leg_symbol or symbol_of(facts))
    _s(report, 54, SIDE[facts["side"]])
    _s(report, 40, ORD_TYPE[facts["type"]])
    _s(report, 59, TIME_IN_FORCE[facts["time_in_force"]])
    _s(report, 38, facts["quantity"])
    if facts.get("price") is not None:
        _s(report, 44, facts["price"])
    if facts.get("stop_price") is not None:
        _s(report, 99, facts["stop_price"])
    _s(report, 14, facts["filled_quantity"])
    _s(report, 151, "0" if facts["status"] in _DONE else facts["remaining_quantity"])
    _s(report, 6, _average(facts.get("average_price")))
    if last is not None:
        _s(report, 32, last[0])
        _s(report, 31, last[1])
    if facts.get("legs"):
        _s(report, 442, MULTILEG_LEG if leg_symbol else MULTILEG_WHOLE)
    _s(report, 60, _timestamp(facts.get("updated_at")))
    _s(report, SETTLEMENT, facts.get("settlement", "none"))
    if tx_hash is not None:
        _s(report, TX_HASH, tx_hash)
    reason = text or facts.get("status_reason")
    if reason:
        _s(report, 58, reason[:400])
    return report


_DONE = {"filled", "cancelled", "rejected", "expired"}


def _average(text: str | None) -> str:
    return "0" if text is None else format(Decimal(text).normalize(), "f")


def rejection(
    cl_ord_id: str,
    code: str,
    message: str,
    *,
    account: str = "",
    symbol: str = "",
    side: str = "",
    quantity: str = "0",
    order_id: str = "NONE",
) -> fix.Message:
    """An ExecutionReport refusing a new order: OrdRejReason 99 (other) and the stable code."""
    report = fix44.ExecutionReport()
    _s(report, 37, order_id)
    _s(report, 11, cl_ord_id)
    _s(report, 17, f"rej-{cl_ord_id}")
    _s(report, 150, REJECTED)
    _s(report, 39, REJECTED)
    if account:
        _s(report, 1, account)
    _s(report, 55, symbol or "NONE")
    _s(report, 54, side or "1")
    _s(report, 38, quantity or "0")
    _s(report, 14, "0")
    _s(report, 151, "0")
    _s(report, 6, "0")
    _s(report, 103, "99" if code != "unknown_instrument" else "1")
    _s(report, ERROR_CODE, code)
    _s(report, 58, message[:400])
    return report


def cancel_reject(
    cl_ord_id: str,
    orig_cl_ord_id: str,
    code: str,
    message: str,
    *,
    replace: bool,
    order_id: str = "NONE",
    status: str = "rejected",
) -> fix.Message:
    """OrderCancelReject (9): CxlRejResponseTo 1 (cancel) or 2 (replace); reason 1 unknown
    order, 0 too late to cancel (the order is done), 99 other; OrdStatus the order's own."""
    reject = fix44.OrderCancelReject()
    _s(reject, 37, order_id)
    _s(reject, 11, cl_ord_id)
    _s(reject, 41, orig_cl_ord_id)
    _s(reject, 39, ORD_STATUS.get(status, REJECTED))
    _s(reject, 434, "2" if replace else "1")
    reason = {"order_not_found": "1", "illegal_transition": "0"}.get(code, "99")
    _s(reject, 102, reason)
    _s(reject, ERROR_CODE, code)
    _s(reject, 58, message[:400])
    return reject


def business_reject(
    ref_msg_type: str, ref_seq: int, reason: str, code: str, text: str
) -> fix.Message:
    """BusinessMessageReject (j): 3 unsupported message type, 0 other, 5 conditionally
    required field missing, 2 unknown security."""
    reject = fix44.BusinessMessageReject()
    _s(reject, 372, ref_msg_type)
    _s(reject, 45, ref_seq)
    _s(reject, 380, reason)
    _s(reject, ERROR_CODE, code)
    _s(reject, 58, text[:400])
    return reject
