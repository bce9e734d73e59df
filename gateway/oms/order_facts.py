"""One JSON-ready description of an order, shared by the audit log, events and the API."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

from gateway.domain.amounts import canonical
from gateway.domain.fills import Fill
from gateway.domain.json_text import canonical_json
from gateway.domain.orders import Order, OrderSpec
from gateway.domain.venue_child import VenueChild
from gateway.store.audit_log import AuditEntry


def _text(value: Decimal | None) -> str | None:
    return None if value is None else canonical(value)


def spec_facts(spec: OrderSpec) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "account": spec.account,
        "client_order_id": spec.client_order_id,
        "instrument": spec.instrument,
        "legs": [
            {"instrument": leg.instrument, "side": leg.side.value, "ratio": leg.ratio}
            for leg in spec.legs
        ],
        "side": spec.side.value,
        "type": spec.order_type.value,
        "time_in_force": spec.time_in_force.value,
        "post_only": spec.post_only,
        "quantity": _text(spec.quantity),
        "price": _text(spec.price),
        "stop_price": _text(spec.stop_price),
        "expires_at": None if spec.expires_at is None else spec.expires_at.isoformat(),
    }
    if spec.signed is not None:  # only then: unsigned orders keep their earlier fingerprint
        facts["signed"] = {
            "nonce": str(spec.signed.nonce),
            "deadline": spec.signed.deadline,
            "signature": "0x" + spec.signed.signature.hex(),
        }
    return facts


def request_hash(spec: OrderSpec) -> str:
    """Fingerprint of what was asked: a retried request matches, a different one does not."""
    text = canonical_json(spec_facts(spec), ascii_only=True)
    return hashlib.sha256(text.encode()).hexdigest()


def order_facts(order: Order) -> dict[str, Any]:
    facts = spec_facts(order.spec)
    average = order.average_price
    facts.update(
        id=order.id,
        quantity=_text(order.quantity),
        price=_text(order.price),
        status=order.status.value,
        status_reason=order.status_reason,
        settlement=order.settlement.value,
        filled_quantity=_text(order.filled_quantity),
        remaining_quantity=_text(order.remaining),
        average_price=None if average is None else _text(average.quantize(Decimal(1).scaleb(-18))),
        version=order.version,
        created_at=order.created_at.isoformat(),
        updated_at=order.updated_at.isoformat(),
    )
    return facts


def child_facts(child: VenueChild) -> dict[str, Any]:
    """The audit view of a venue child (decimals as strings)."""
    return {
        "client_order_id": child.client_order_id,
        "order_id": child.order_id,
        "venue": child.venue,
        "instrument": child.instrument,
        "side": child.side.value,
        "type": child.order_type.value,
        "time_in_force": child.time_in_force.value,
        "quantity": _text(child.quantity),
        "price": _text(child.price),
        "status": child.status.value,
        "venue_order_id": child.venue_order_id,
        "filled": _text(child.filled),
        "filled_notional": _text(child.filled_notional),
        "fee": _text(child.fee),
        "reason": child.reason,
    }


def fill_facts(fill: Fill) -> dict[str, Any]:
    """The audit and stream view of a fill (decimals as strings)."""
    return {
        "id": fill.id,
        "order_id": fill.order_id,
        "account": fill.account,
        "instrument": fill.instrument,
        "side": fill.side.value,
        "quantity": str(fill.quantity),
        "price": str(fill.price),
        "fee": str(fill.fee),
        "gas": str(fill.gas),
        "venue": fill.venue,
        "trade_id": fill.trade_id,
        "executed_at": fill.executed_at.isoformat(),
    }


def order_change(order: Order, kind: str) -> tuple[AuditEntry, dict[str, Any]]:
    """The audit record and the stream event of an order's state change."""
    facts = order_facts(order)
    return (
        AuditEntry(kind, order.id, facts),
        {"type": kind, "account": order.spec.account, "order": facts},
    )
