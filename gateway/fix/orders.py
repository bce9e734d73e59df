"""Order entry over FIX: NewOrderSingle (D), OrderCancelRequest (F),
OrderCancelReplaceRequest (G), OrderStatusRequest (H), OrderMassCancelRequest (q) and
NewOrderMultileg (AB), through the same access rules and order services as the HTTP API
(`gateway.access.trading`, `gateway.oms.order_entry`).

Reports follow the order service's events, so an order is reported the same way whatever
changed it (a match on the book, a venue's fill, a settlement, the API, the dead man's
switch): accepted -> New, each fill -> Trade (LastQty/LastPx, CumQty, LeavesQty, AvgPx),
amended -> Replaced, cancelled, expired, and settlement -> Restated with the transaction hash
(custom tags 20001, 20002). A refusal is an ExecutionReport Rejected (or an
OrderCancelReject) whose tag 20003 carries the API's stable error code.

A session's orders are the ones it entered: each ClOrdID that names one (the order's own
client_order_id, and a cancel's or replace's new ClOrdID) is kept in the store, so cancels,
replaces and reports find them after a restart. Reports of a session that is logged out are
numbered and kept; it gets them by its resend request when it logs on again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import quickfix as fix
import quickfix44 as fix44

from gateway.access.control import AccessDenied
from gateway.access.policy import Permission, allows
from gateway.access.trading import Caller
from gateway.domain.errors import DomainError, InvalidOrder
from gateway.domain.orders import (
    Leg,
    Order,
    OrderSignature,
    OrderSpec,
    OrderType,
    Side,
    TimeInForce,
)
from gateway.fix import reports
from gateway.oms import order_entry
from gateway.oms.group_commit import CommandResult
from gateway.oms.order_facts import order_facts
from gateway.runtime import Runtime
from gateway.store import fix_sessions

if TYPE_CHECKING:
    from gateway.fix.acceptor import FixSession

log = logging.getLogger(__name__)

SIGNATURE, NONCE, DEADLINE, ROUTE = 20010, 20011, 20012, 20020
EVENTS_BUFFERED = 100_000
REPORT_WAIT = 5.0  # seconds a request waits for its order's report (published on commit)

# the order service's events, as the ExecType of their report (fills: from fill.recorded)
EXEC_TYPE = {
    "order.accepted": reports.NEW,
    "order.cancelled": reports.CANCELLED,
    "order.amended": reports.REPLACED,
    "order.expired": reports.EXPIRED,
    "order.rejected": reports.REJECTED,
    "order.settled": reports.RESTATED,
    "order.settlement_failed": reports.RESTATED,
}


class FixFieldError(InvalidOrder):
    """A field of the request says something the gateway cannot take (the code stays the
    API's `invalid_order`, so clients know it)."""


@dataclass
class Tracked:
    """An order a session entered: the ClOrdID it goes by now, and the one before."""

    session_key: str
    cl_ord_id: str
    previous: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    # the last report queued for the session (done once the store has it), and a signal
    # for whoever waits for the first one
    sent: Future[None] | None = None
    reported: asyncio.Event = field(default_factory=asyncio.Event)


def text(message: fix.FieldMap, tag: int) -> str | None:
    return str(message.getField(tag)) if message.isSetField(tag) else None


def required(message: fix.FieldMap, tag: int, name: str) -> str:
    value = text(message, tag)
    if value is None or value == "":
        raise FixFieldError(f"{name} ({tag}) is required", field=name)
    return value


def decimal(message: fix.FieldMap, tag: int, name: str) -> Decimal | None:
    value = text(message, tag)
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        raise FixFieldError(f"{name} ({tag}) is not a number", field=name) from None


class FixOrderEntry:
    def __init__(
        self, rt: Runtime, send: Callable[[FixSession, fix.Message], Future[None]]
    ) -> None:
        self.rt = rt
        self._send = send
        self.sessions: dict[str, FixSession] = {}  # the acceptor's, by key
        self._orders: dict[str, Tracked] = {}  # by order id
        self._pending: dict[tuple[str, str], Tracked] = {}  # by (account, client_order_id)
        self._names: dict[tuple[str, str], str] = {}  # (session, ClOrdID) -> order id
        self._consumer: asyncio.Task[None] | None = None

    async def start(self, sessions: dict[str, FixSession]) -> None:
        self.sessions = sessions

        def load() -> list[tuple[str, str, list[str]]]:
            with self.rt.read_engine.connect() as connection:
                return fix_sessions.every_order(connection)

        for key, order_id, names in await asyncio.to_thread(load):
            self._orders[order_id] = Tracked(key, names[-1], names[-2] if len(names) > 1 else None)
            self._names.update({(key, name): order_id for name in names})
        subscription = self.rt.events.subscribe(None)
        subscription.queue = asyncio.Queue(EVENTS_BUFFERED)
        self._consumer = asyncio.create_task(self._consume(subscription), name="fix-reports")

    async def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer

    # --- requests -------------------------------------------------------------------------

    async def handle(
        self, session: FixSession, caller: Caller, msg_type: str, message: fix.Message, seq: int
    ) -> None:
        cl_ord_id = text(message, 11) or ""
        try:
            if msg_type == "H":
                await self._status(session, caller, message)
                return
            if not allows(caller.principal, Permission.TRADE):
                raise AccessDenied(
                    f"the {caller.principal.role} role may not trade", code="forbidden"
                )
            if msg_type in ("D", "AB"):
                await self._new(session, caller, message, strategy=msg_type == "AB")
            elif msg_type in ("F", "G"):
                await self._cancel_or_replace(session, caller, message, replace=msg_type == "G")
            elif msg_type == "q":
                await self._mass_cancel(session, caller, message)
        except DomainError as refused:
            if msg_type in ("F", "G"):
                await self._reply(
                    session,
                    reports.cancel_reject(
                        cl_ord_id,
                        text(message, 41) or "",
                        refused.code,
                        refused.message,
                        replace=msg_type == "G",
                        order_id=text(message, 37) or "NONE",
                    ),
                )
            elif msg_type == "q":
                await self._reply(session, _mass_cancel_report(message, None, refused))
            else:
                await self._reply(
                    session,
                    reports.rejection(
                        cl_ord_id,
                        refused.code,
                        refused.message,
                        account=text(message, 1) or "",
                        symbol=text(message, 55) or "",
                        side=text(message, 54) or "",
                        quantity=text(message, 38) or "0",
                    ),
                )

    async def _new(
        self, session: FixSession, caller: Caller, message: fix.Message, *, strategy: bool
    ) -> None:
        spec = strategy_spec(message) if strategy else order_spec(message)
        route = text(message, ROUTE) or "direct"
        if route not in ("direct", "smart") or (strategy and route != "direct"):
            raise FixFieldError(f"IsthmusRoute ({ROUTE}) {route!r} is not served", field="route")
        await caller.ensure_may_trade(spec, self.rt.signatures is not None)
        tracked = Tracked(session.key, spec.client_order_id)
        pending = (spec.account, spec.client_order_id)
        self._pending[pending] = tracked
        try:
            if strategy:
                await self.rt.check_signature(spec)
                submitted = await self.rt.orders.submit(spec)
                order, created = submitted.order, submitted.created
            else:
                order, created = await order_entry.place(self.rt, spec, route)  # type: ignore[arg-type]
        finally:
            self._pending.pop(pending, None)
        known = self._orders.setdefault(order.id, tracked)
        self._bind(session, spec.client_order_id, order.id)
        if not created:  # the same ClOrdID again: where that order stands
            self._report(session, order_facts(order), reports.ORDER_STATUS, known)
        session.after.append(self._recorded(known))

    async def _reply(self, session: FixSession, message: fix.Message) -> None:
        """Send an answer and wait until the store has it (see `_recorded`)."""
        await asyncio.wrap_future(self._send(session, message))

    async def _recorded(self, tracked: Tracked) -> None:
        """Done once the order's report is in the store. The session records the request's
        number as handled only after that (`FixAcceptor._record`), while it goes on with the
        next request: a crash in between makes the counterparty send the request again (a
        resend), which answers with the order's status, so no report is lost."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tracked.reported.wait(), REPORT_WAIT)
        if tracked.sent is not None:
            await asyncio.wrap_future(tracked.sent)

    async def _cancel_or_replace(
        self, session: FixSession, caller: Caller, message: fix.Message, *, replace: bool
    ) -> None:
        cl_ord_id = required(message, 11, "ClOrdID")
        order = await self._find(session, caller, message)
        tracked = self._orders.setdefault(
            order.id, Tracked(session.key, order.spec.client_order_id)
        )
        before = (tracked.cl_ord_id, tracked.previous)
        # the report of this change names the order by the new ClOrdID
        tracked.cl_ord_id, tracked.previous = cl_ord_id, text(message, 41) or before[0]
        tracked.reported.clear()  # the next report is this change's
        try:
            if replace:
                await caller.ensure_not_delegate(order.spec.account, "amend an order")
                price = decimal(message, 44, "Price")
                quantity = decimal(message, 38, "OrderQty")
                if price is not None and price == order.price:
                    price = None
                if quantity is not None and quantity == order.quantity:
                    quantity = None
                if price is None and quantity is None:
                    raise DomainError(
                        "the replace changes neither Price nor OrderQty", code="nothing_to_amend"
                    )
                await self.rt.orders.amend(
                    order.id, price=price, quantity=quantity, expected_version=None
                )
            else:
                await order_entry.cancel(self.rt, order.id)
        except DomainError as refused:
            tracked.cl_ord_id, tracked.previous = before
            await self._reply(
                session,
                reports.cancel_reject(
                    cl_ord_id,
                    text(message, 41) or before[0],
                    refused.code,
                    refused.message,
                    replace=replace,
                    order_id=order.id,
                    status=order.status.value,
                ),
            )
            return
        self._bind(session, cl_ord_id, order.id)
        session.after.append(self._recorded(tracked))

    async def _status(self, session: FixSession, caller: Caller, message: fix.Message) -> None:
        try:
            order = await self._find(session, caller, message, field=11)
        except DomainError as refused:
            await self._reply(
                session,
                reports.rejection(
                    text(message, 11) or "",
                    refused.code,
                    refused.message,
                    symbol=text(message, 55) or "",
                    side=text(message, 54) or "",
                ),
            )
            return
        tracked = self._orders.get(order.id) or Tracked(session.key, order.spec.client_order_id)
        self._report(session, order_facts(order), reports.ORDER_STATUS, tracked)

    async def _mass_cancel(self, session: FixSession, caller: Caller, message: fix.Message) -> None:
        kind = required(message, 530, "MassCancelRequestType")
        account = text(message, 1)
        if account is None:
            visible = caller.principal.accounts
            if visible is None or len(visible) != 1:
                raise FixFieldError("Account (1) is required: whose orders?", field="Account")
            account = next(iter(visible))
        await caller.ensure_account(account)
        if kind == "1":
            symbol = required(message, 55, "Symbol")
        elif kind == "7":
            symbol = None
        else:
            raise FixFieldError(
                "MassCancelRequestType 1 (by security) and 7 (all orders) are served",
                field="MassCancelRequestType",
            )
        side = text(message, 54)
        cancelled = await order_entry.cancel_where(
            self.rt, account, symbol, None if side is None else _side(side)
        )
        await self._reply(session, _mass_cancel_report(message, len(cancelled), None))

    async def _find(
        self, session: FixSession, caller: Caller, message: fix.Message, field: int = 41
    ) -> Order:
        """The order a request names: OrderID (37), else the session's ClOrdID (41, or 11
        for a status request); another account's order is not found."""
        order_id = text(message, 37)
        if order_id is None:
            name = required(message, field, "OrigClOrdID" if field == 41 else "ClOrdID")
            order_id = self._names.get((session.key, name))

            def lookup() -> str | None:
                with self.rt.read_engine.connect() as connection:
                    return fix_sessions.order_of(connection, session.key, name)

            if order_id is None:
                order_id = await asyncio.to_thread(lookup)
            if order_id is None:
                raise DomainError(f"no order named {name} in this session", code="order_not_found")
        order = await self.rt.orders.get(order_id)
        if not await caller.can_see(order.spec.account):
            raise DomainError(f"no order {order_id}", code="order_not_found")
        return order

    def _bind(self, session: FixSession, cl_ord_id: str, order_id: str) -> None:
        """`cl_ord_id` names the order from now on (in memory at once; in the store before
        the request is recorded as handled)."""
        self._names[(session.key, cl_ord_id)] = order_id

        def command(connection: Any, now: datetime) -> CommandResult[None]:
            fix_sessions.bind_order(connection, session.key, cl_ord_id, order_id, now)
            return CommandResult(None)

        session.after.append(self.rt.writer.enqueue(command))

    # --- reports --------------------------------------------------------------------------

    async def _consume(self, subscription: Any) -> None:
        while True:
            event = await subscription.queue.get()
            try:
                self._on_event(event)
            except Exception:
                log.exception("a FIX report of %s failed", event.get("type"))

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type", "")
        if kind.startswith("order."):
            facts = event["order"]
            tracked = self._orders.get(facts["id"])
            if tracked is None:
                tracked = self._pending.get((facts["account"], facts["client_order_id"]))
                if tracked is None:
                    return
                self._orders[facts["id"]] = tracked
            tracked.facts = facts
            exec_type = EXEC_TYPE.get(kind)
            session = self.sessions.get(tracked.session_key)
            if exec_type is not None and session is not None:
                self._report(session, facts, exec_type, tracked)
        elif kind in ("fill.recorded", "fill.settled"):
            fill = event["fill"]
            tracked = self._orders.get(fill["order_id"])
            session = None if tracked is None else self.sessions.get(tracked.session_key)
            if tracked is None or session is None or not tracked.facts:
                return
            if kind == "fill.recorded":
                leg = fill["instrument"] if tracked.facts.get("legs") else None
                self._report(
                    session,
                    tracked.facts,
                    reports.TRADE,
                    tracked,
                    exec_id=fill["id"],
                    last=(fill["quantity"], fill["price"]),
                    leg_symbol=leg,
                )
            else:
                self._report(
                    session,
                    tracked.facts | {"settlement": "settled"},
                    reports.RESTATED,
                    tracked,
                    exec_id=f"{fill['id']}:settled",
                    tx_hash=fill["tx_hash"],
                    text=f"fill {fill['id']} settled in block {fill['block_number']}",
                )

    def _report(
        self,
        session: FixSession,
        facts: dict[str, Any],
        exec_type: str,
        tracked: Tracked,
        *,
        exec_id: str | None = None,
        **extra: Any,
    ) -> None:
        orig = tracked.previous if exec_type in (reports.REPLACED, reports.CANCELLED) else None
        report = reports.execution_report(
            facts,
            exec_type,
            exec_id or f"{facts['id']}:{facts['version']}:{exec_type}",
            cl_ord_id=tracked.cl_ord_id,
            orig_cl_ord_id=orig,
            **extra,
        )
        tracked.sent = self._send(session, report)
        tracked.reported.set()


# --- parsing ------------------------------------------------------------------------------


def _side(value: str) -> Side:
    if value not in reports.SIDE_OF:
        raise FixFieldError("Side (54) is 1 (buy) or 2 (sell)", field="Side")
    return Side(reports.SIDE_OF[value])


def _time_in_force(message: fix.FieldMap) -> tuple[TimeInForce, datetime | None]:
    value = text(message, 59) or "1"
    if value not in reports.TIME_IN_FORCE_OF:
        raise FixFieldError(
            "TimeInForce (59) is 1 (GTC), 3 (IOC), 4 (FOK) or 6 (GTD)", field="TimeInForce"
        )
    expires = None
    raw = text(message, 126)
    if raw is not None:
        try:
            expires = datetime.strptime(raw[:17], "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            raise FixFieldError("ExpireTime (126) is a UTC timestamp", field="ExpireTime") from None
    return TimeInForce(reports.TIME_IN_FORCE_OF[value]), expires


def _signature(message: fix.FieldMap) -> OrderSignature | None:
    given = [text(message, tag) for tag in (SIGNATURE, NONCE, DEADLINE)]
    if all(v is None for v in given):
        return None
    signature, nonce, deadline = given
    if signature is None or nonce is None or deadline is None:
        raise FixFieldError(
            "a signed order carries IsthmusSignature (20010), IsthmusNonce (20011) and "
            "IsthmusDeadline (20012)",
            field="signature",
        )
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
        value = int(nonce)
        until = int(deadline)
    except ValueError:
        raise FixFieldError(
            "IsthmusSignature is hex, IsthmusNonce and IsthmusDeadline are integers",
            field="signature",
        ) from None
    if not raw or not 0 <= value < 1 << 256 or not 0 <= until < 1 << 64:
        raise FixFieldError("the signature, nonce or deadline is out of range", field="signature")
    return OrderSignature(value, until, raw)


def _quantity(message: fix.FieldMap) -> Decimal:
    quantity = decimal(message, 38, "OrderQty")
    if quantity is None:
        raise FixFieldError("OrderQty (38) is required", field="OrderQty")
    return quantity


def order_spec(message: fix.Message) -> OrderSpec:
    """A NewOrderSingle as the order service's spec."""
    order_type = reports.ORD_TYPE_OF.get(text(message, 40) or "")
    if order_type is None:
        raise FixFieldError(
            "OrdType (40) is 1 (market), 2 (limit), 3 (stop) or 4 (stop limit)", field="OrdType"
        )
    time_in_force, expires = _time_in_force(message)
    return OrderSpec(
        account=required(message, 1, "Account"),
        client_order_id=required(message, 11, "ClOrdID"),
        side=_side(required(message, 54, "Side")),
        order_type=OrderType(order_type),
        quantity=_quantity(message),
        time_in_force=time_in_force,
        instrument=required(message, 55, "Symbol"),
        price=decimal(message, 44, "Price"),
        stop_price=decimal(message, 99, "StopPx"),
        post_only="6" in (text(message, 18) or "").split(),  # ExecInst: participate don't initiate
        expires_at=expires,
        signed=_signature(message),
    )


def strategy_spec(message: fix.Message) -> OrderSpec:
    """A NewOrderMultileg: its legs (LegSymbol 600, LegSide 624, LegRatioQty 623) and its net
    Price (44) per unit, positive a debit, negative a credit."""
    count = int(text(message, 555) or "0")
    if not 2 <= count <= 8:
        raise FixFieldError("NoLegs (555) is 2 to 8", field="NoLegs")
    legs = []
    group = fix44.NewOrderMultileg.NoLegs()
    for index in range(1, count + 1):
        message.getGroup(index, group)
        ratio = decimal(group, 623, "LegRatioQty") or Decimal(1)
        if ratio != ratio.to_integral_value() or not 1 <= ratio <= 1000:
            raise FixFieldError("LegRatioQty (623) is a whole number 1 to 1000", field="legs")
        legs.append(
            Leg(
                required(group, 600, "LegSymbol"),
                _side(required(group, 624, "LegSide")),
                int(ratio),
            )
        )
    price = decimal(message, 44, "Price")
    if price is None:
        raise FixFieldError("Price (44) is required: the strategy's net price", field="Price")
    time_in_force, expires = _time_in_force(message)
    return OrderSpec(
        account=required(message, 1, "Account"),
        client_order_id=required(message, 11, "ClOrdID"),
        side=_side(text(message, 54) or "1"),
        order_type=OrderType.LIMIT,
        quantity=_quantity(message),
        time_in_force=time_in_force,
        legs=tuple(legs),
        price=price,
        expires_at=expires,
        signed=_signature(message),
    )


def _mass_cancel_report(
    request: fix.Message, affected: int | None, refused: DomainError | None
) -> fix.Message:
    """OrderMassCancelReport (r): MassCancelResponse echoes the request type, 0 if refused."""
    report = fix44.OrderMassCancelReport()
    cl_ord_id = text(request, 11) or ""
    report.setField(fix.StringField(11, cl_ord_id))
    report.setField(fix.StringField(37, f"mass-{cl_ord_id}"))
    kind = text(request, 530) or "7"
    report.setField(fix.StringField(530, kind))
    report.setField(fix.StringField(531, "0" if refused is not None else kind))
    if refused is not None:
        report.setField(fix.StringField(532, "99"))
        report.setField(fix.StringField(58, f"{refused.code}: {refused.message}"[:400]))
    else:
        report.setField(fix.StringField(533, str(affected or 0)))
    for tag in (1, 55, 54):
        value = text(request, tag)
        if value is not None:
            report.setField(fix.StringField(tag, value))
    return report
