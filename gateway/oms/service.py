"""The order lifecycle service: every submit, amend, cancel, fill and expiry goes through here.

Writes run as commands on the `GroupCommitter` (durable before acknowledged, one audit record
per state change); reads use their own connections and never wait for the writer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from gateway.domain.clock import Clock
from gateway.domain.errors import DomainError
from gateway.domain.fills import Fill
from gateway.domain.instruments import InstrumentCatalogue
from gateway.domain.lifecycle import OrderStatus
from gateway.domain.orders import Order, OrderSpec, TimeInForce, validate
from gateway.oms.group_commit import CommandResult, GroupCommitter
from gateway.oms.ids import new_id
from gateway.oms.order_facts import order_facts, request_hash
from gateway.store import order_repository as repo
from gateway.store.audit_log import AuditEntry


class OrderNotFound(DomainError):
    code = "order_not_found"


class DuplicateClientOrderId(DomainError):
    code = "duplicate_client_order_id"


class VersionConflict(DomainError):
    code = "version_conflict"


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Submitted:
    order: Order
    created: bool  # False: an identical earlier request already created this order


@dataclass(frozen=True, slots=True)
class OrderPage:
    orders: list[Order]
    next_after: int | None


def _change(order: Order, kind: str) -> tuple[AuditEntry, dict[str, object]]:
    facts = order_facts(order)
    return (
        AuditEntry(kind, order.id, facts),
        {"type": kind, "account": order.spec.account, "order": facts},
    )


class OrderService:
    def __init__(
        self,
        writer: GroupCommitter,
        read_engine: Engine,
        catalogue: InstrumentCatalogue,
        clock: Clock,
    ) -> None:
        self._writer = writer
        self._read_engine = read_engine
        self.catalogue = catalogue
        self._clock = clock

    # -- writes ---------------------------------------------------------------------------

    async def submit(self, spec: OrderSpec) -> Submitted:
        """Create the order once per (account, client_order_id); a retry returns it again."""
        validate(spec, self.catalogue, self._clock.now())
        fingerprint = request_hash(spec)
        try:
            result: Submitted = await self._writer.execute(
                lambda connection, now: self._submit(connection, now, spec, fingerprint)
            )
        except IntegrityError:
            # Another replica inserted the same client_order_id between our read and write.
            result = await self._writer.execute(
                lambda connection, now: self._submit(connection, now, spec, fingerprint)
            )
        return result

    def _submit(
        self, connection: Connection, now: datetime, spec: OrderSpec, fingerprint: str
    ) -> CommandResult[Submitted]:
        existing = repo.get_by_client_order_id(connection, spec.account, spec.client_order_id)
        if existing is not None:
            if existing.request_hash != fingerprint:
                raise DuplicateClientOrderId(
                    f"client_order_id {spec.client_order_id!r} was used for a different order",
                    field="client_order_id",
                )
            return CommandResult(Submitted(existing.order, created=False))
        order = Order.new(new_id("ord"), spec, now).accept(now)
        changes = [_change(order, "order.accepted")]
        if spec.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            # No liquidity source is attached to this service yet: an immediate order
            # finds nothing to trade against, so it ends at once rather than resting.
            order = order.cancel(now, reason="no liquidity to execute against")
            changes.append(_change(order, "order.cancelled"))
        repo.ensure_accounts(connection, [spec.account], now)
        repo.insert_orders(connection, [(order, fingerprint)])
        return CommandResult(
            Submitted(order, created=True),
            audit=[entry for entry, _ in changes],
            events=[event for _, event in changes],
        )

    async def amend(
        self,
        order_id: str,
        *,
        price: Decimal | None,
        quantity: Decimal | None,
        expected_version: int | None,
    ) -> Order:
        def command(connection: Connection, now: datetime) -> CommandResult[Order]:
            current = self._load_for_update(connection, order_id, expected_version)
            amended = current.amend(now, self.catalogue, price=price, quantity=quantity)
            repo.update_order(connection, amended, previous_version=current.version)
            entry, event = _change(amended, "order.amended")
            return CommandResult(amended, [entry], [event])

        order: Order = await self._writer.execute(command)
        return order

    async def cancel(self, order_id: str, *, expected_version: int | None = None) -> Order:
        def command(connection: Connection, now: datetime) -> CommandResult[Order]:
            current = self._load_for_update(connection, order_id, expected_version)
            cancelled = current.cancel(now)
            repo.update_order(connection, cancelled, previous_version=current.version)
            entry, event = _change(cancelled, "order.cancelled")
            return CommandResult(cancelled, [entry], [event])

        order: Order = await self._writer.execute(command)
        return order

    async def record_fill(
        self, order_id: str, *, quantity: Decimal, price: Decimal, fee: Decimal, venue: str
    ) -> tuple[Order, Fill]:
        """Record an execution and queue it for settlement in the same transaction."""

        def command(connection: Connection, now: datetime) -> CommandResult[tuple[Order, Fill]]:
            current = self._load_for_update(connection, order_id, None)
            filled = current.fill(quantity, price, now)
            instrument = current.spec.instrument or "strategy"
            fill = Fill(
                id=new_id("fil"),
                order_id=current.id,
                account=current.spec.account,
                instrument=instrument,
                side=current.spec.side,
                quantity=quantity,
                price=price,
                fee=fee,
                venue=venue,
                executed_at=now,
            )
            repo.update_order(connection, filled, previous_version=current.version)
            repo.insert_fill(connection, fill)
            kind = (
                "order.filled" if filled.status is OrderStatus.FILLED else "order.partially_filled"
            )
            entry, event = _change(filled, kind)
            fill_facts = {
                "id": fill.id,
                "order_id": fill.order_id,
                "account": fill.account,
                "instrument": fill.instrument,
                "side": fill.side.value,
                "quantity": str(fill.quantity),
                "price": str(fill.price),
                "fee": str(fill.fee),
                "venue": fill.venue,
                "executed_at": fill.executed_at.isoformat(),
            }
            return CommandResult(
                (filled, fill),
                [entry, AuditEntry("fill.recorded", fill.id, fill_facts)],
                [event, {"type": "fill.recorded", "account": fill.account, "fill": fill_facts}],
            )

        result: tuple[Order, Fill] = await self._writer.execute(command)
        return result

    async def expire_due(self, limit: int = 500) -> int:
        """Expire open good-till-date orders whose time has passed; returns how many."""

        def command(connection: Connection, now: datetime) -> CommandResult[int]:
            entries, events = [], []
            for stored in repo.open_orders_due(connection, now, limit):
                expired = stored.order.expire(now)
                repo.update_order(connection, expired, previous_version=stored.order.version)
                entry, event = _change(expired, "order.expired")
                entries.append(entry)
                events.append(event)
            return CommandResult(len(entries), entries, events)

        count: int = await self._writer.execute(command)
        return count

    def _load_for_update(
        self, connection: Connection, order_id: str, expected_version: int | None
    ) -> Order:
        stored = repo.get_order(connection, order_id)
        if stored is None:
            raise OrderNotFound(f"no order {order_id!r}", field="order_id")
        if expected_version is not None and stored.order.version != expected_version:
            raise VersionConflict(
                f"order {order_id} is at version {stored.order.version}, not {expected_version}",
                field="expected_version",
            )
        return stored.order

    # -- reads ----------------------------------------------------------------------------

    async def get(self, order_id: str) -> Order:
        def read() -> repo.StoredOrder | None:
            with self._read_engine.connect() as connection:
                return repo.get_order(connection, order_id)

        stored = await asyncio.to_thread(read)
        if stored is None:
            raise OrderNotFound(f"no order {order_id!r}", field="order_id")
        return stored.order

    async def list(self, filters: repo.OrderFilter, *, after: int, limit: int) -> OrderPage:
        def read() -> list[repo.StoredOrder]:
            with self._read_engine.connect() as connection:
                return repo.list_orders(connection, filters, after_seq=after, limit=limit + 1)

        rows = await asyncio.to_thread(read)
        more = len(rows) > limit
        rows = rows[:limit]
        return OrderPage([r.order for r in rows], rows[-1].seq if more and rows else None)
