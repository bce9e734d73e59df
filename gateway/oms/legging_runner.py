"""Executing a strategy leg by leg on the exchanges, with legging control, for real.

`gateway.routing.legging` decides; this module drives it, the way `algo_runner` drives the
execution algorithms. A strategy submitted with `"route": "legged"` is stored (and
risk-checked) as the strategy order it is; then:

1. the run is created from the order (legs, side, quantity, net limit, each leg's lot and
   tick, the arrival mid of each leg) and committed with its first decision;
2. every child the machine asks for goes out as a smart-routed IOC gateway order of the same
   account on the leg's instrument, client order id `<strategy order id>-L<n>`: those orders'
   fills are the executions (positions, cash, settlement); the child's outcome (filled
   quantity, average price) is fed back with `on_child_done` and committed;
3. whenever the completed units grow, the strategy order advances by them at their net price
   (no fill of its own: that would count the legs twice); when the run ends, the strategy
   order's unfilled rest is cancelled with the run's reason.

Every state is committed before the children it lists are sent, so after a restart a child in
flight is settled from the gateway order with its client order id (none: it never went out;
one: its fills count, an open rest is cancelled) and never sent again. Markets are the
consolidated top of book (all-in prices, the ones the smart router's limits apply to).
Single runner per database, as for algos.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Connection, Engine

from gateway.domain.clock import Clock
from gateway.domain.errors import DomainError
from gateway.domain.instruments import InstrumentCatalogue
from gateway.domain.inventory import LegExecution, strategy_leg_prices
from gateway.domain.market import VenueKind
from gateway.domain.orders import Order, OrderSpec, OrderType, Side, TimeInForce
from gateway.oms.group_commit import CommandResult, GroupCommitter
from gateway.oms.inventory import InventoryRefused
from gateway.oms.service import OrderService
from gateway.oms.smart_execution import SmartExecutor
from gateway.routing import legging
from gateway.routing.legging import (
    ChildPurpose,
    FailurePolicy,
    LeggingChild,
    LeggingReport,
    LeggingSpec,
    LeggingState,
    LegMarket,
)
from gateway.store import inventory_repository as inventory_store
from gateway.store import legging_repository as store
from gateway.store import order_repository as order_repo
from gateway.store.audit_log import AuditEntry
from gateway.venues.market_data import MarketDataHub

log = logging.getLogger("gateway.legging")
_ZERO = Decimal(0)


class LeggingNotFound(DomainError):
    code = "legging_not_found"


@dataclass(frozen=True, slots=True)
class LeggingParams:
    """The client's bounds on legging (see `LeggingSpec`)."""

    max_unhedged_notional: Decimal
    max_legging_time: timedelta = timedelta(seconds=5)
    on_failure: FailurePolicy = FailurePolicy.UNWIND
    max_slippage_bps: Decimal = Decimal(50)
    deadline: datetime | None = None
    retry_interval: timedelta = timedelta(seconds=1)
    max_attempts: int = 3


def _facts(state: LeggingState) -> dict[str, object]:
    return {
        "order_id": state.spec.parent_id,
        "status": state.status.value,
        "reason": state.reason,
        "completed_units": str(state.completed_units),
        "children_sent": state.child_seq,
        "in_flight": [c.child_id for c in state.in_flight],
    }


class LeggingRunner:
    def __init__(
        self,
        writer: GroupCommitter,
        read_engine: Engine,
        orders: OrderService,
        smart: SmartExecutor,
        market_data: MarketDataHub,
        catalogue: InstrumentCatalogue,
        clock: Clock,
        *,
        poll_interval: float = 0.25,
    ) -> None:
        self._writer = writer
        self._read_engine = read_engine
        self._orders = orders
        self._smart = smart
        self._market = market_data
        self._catalogue = catalogue
        self._clock = clock
        self._poll = poll_interval
        self._active: dict[str, LeggingState] = {}
        self._lock = asyncio.Lock()
        self._inventory_backed: dict[str, bool] = {}

    # -- lifecycle --------------------------------------------------------------------------

    async def recover(self, now: datetime | None = None) -> int:
        def read() -> list[LeggingState]:
            with self._read_engine.connect() as connection:
                return store.active_runs(connection)

        runs = await asyncio.to_thread(read)
        now = now or self._clock.now()
        async with self._lock:
            self._active = {r.spec.parent_id: r for r in runs}
            for state in runs:
                with contextlib.suppress(Exception):
                    await self._settle_in_flight(state, now)
        return len(runs)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._poll)
            try:
                await self.run_due(self._clock.now())
            except Exception:
                log.exception("running due legging runs failed")

    def is_running(self, order_id: str) -> bool:
        return order_id in self._active

    # -- commands ---------------------------------------------------------------------------

    def _spec(
        self, order_id: str, spec: OrderSpec, params: LeggingParams, now: datetime
    ) -> LeggingSpec:
        rules = [self._catalogue.get(leg.instrument).rules for leg in spec.legs]
        arrival = [
            self._smart.routes.arrival(leg.instrument, now).mid or _ZERO for leg in spec.legs
        ]
        assert spec.price is not None
        return LeggingSpec(
            parent_id=order_id,
            account=spec.account,
            legs=spec.legs,
            side=spec.side,
            quantity=spec.quantity,
            limit_price=spec.price,
            lot_sizes=tuple(r.lot_size for r in rules),
            tick_sizes=tuple(r.tick_size for r in rules),
            max_unhedged_notional=params.max_unhedged_notional,
            max_legging_time=params.max_legging_time,
            on_failure=params.on_failure,
            max_slippage_bps=params.max_slippage_bps,
            arrival_mids=tuple(arrival),
            deadline=params.deadline,
            retry_interval=params.retry_interval,
            max_attempts=params.max_attempts,
        )

    def check(self, spec: OrderSpec, params: LeggingParams) -> None:
        """Raise `InvalidLeggingSpec` now if the run could not start (nothing is written)."""
        now = self._clock.now()
        legging_spec = self._spec("check", spec, params, now)
        legging.start(legging_spec, now, self._markets(legging_spec))

    async def start(
        self, order: Order, params: LeggingParams, now: datetime | None = None
    ) -> LeggingState:
        """Create the run of a just-submitted strategy order and send its first children."""
        spec = order.spec
        now = now or self._clock.now()
        legging_spec = self._spec(order.id, spec, params, now)
        decision = legging.start(legging_spec, now, self._markets(legging_spec))

        def command(connection: Connection, at: datetime) -> CommandResult[LeggingState]:
            store.insert_run(connection, decision.state, at)
            facts = _facts(decision.state)
            event = {"type": "legging.started", "account": spec.account, "legging": facts}
            return CommandResult(
                decision.state, [AuditEntry("legging.started", order.id, facts)], [event]
            )

        state: LeggingState = await self._writer.execute(command)
        async with self._lock:
            self._active[order.id] = state
            state = await self._act(state, decision.children, now)
        return state

    async def cancel(self, order_id: str, now: datetime | None = None) -> LeggingState:
        now = now or self._clock.now()
        async with self._lock:
            state = self._active.get(order_id) or await self.get(order_id)
            decision = legging.cancel(state, now, self._markets(state.spec))
            state = await self._persist(decision.state, "legging.cancelled")
            return await self._act(state, decision.children, now)

    async def get(self, order_id: str) -> LeggingState:
        def read() -> LeggingState | None:
            with self._read_engine.connect() as connection:
                return store.get_run(connection, order_id)

        state = await asyncio.to_thread(read)
        if state is None:
            raise LeggingNotFound(f"{order_id} is not a legged strategy", field="order_id")
        return state

    async def report(self, order_id: str) -> LeggingReport:
        return legging.report(await self.get(order_id))

    async def run_due(self, now: datetime) -> int:
        stepped = 0
        async with self._lock:
            for order_id, state in list(self._active.items()):
                if state.next_wake_at is None or state.next_wake_at > now:
                    continue
                try:
                    decision = legging.step(state, now, self._markets(state.spec))
                    if decision.state != state or decision.children:
                        state = await self._persist(decision.state, "legging.stepped")
                    await self._act(state, decision.children, now)
                    stepped += 1
                except Exception:
                    log.exception(
                        "legging run %s failed; continuing from its stored state", order_id
                    )
                    with contextlib.suppress(Exception):
                        self._active[order_id] = await self.get(order_id)
        return stepped

    # -- processing (under the lock) --------------------------------------------------------

    def _markets(self, spec: LeggingSpec) -> Mapping[str, LegMarket]:
        markets: dict[str, LegMarket] = {}
        for leg in spec.legs:
            book = self._market.book(leg.instrument, depth=1)
            bid = book.bids[0] if book.bids else None
            ask = book.asks[0] if book.asks else None
            if bid is None and ask is None:
                continue
            markets[leg.instrument] = LegMarket(
                bid.price if bid else None,
                ask.price if ask else None,
                bid.quantity if bid else _ZERO,
                ask.quantity if ask else _ZERO,
            )
        return markets

    async def _persist(self, state: LeggingState, kind: str) -> LeggingState:
        def command(connection: Connection, now: datetime) -> CommandResult[LeggingState]:
            store.update_run(connection, state, now)
            facts = _facts(state)
            event = {"type": kind, "account": state.spec.account, "legging": facts}
            return CommandResult(state, [AuditEntry(kind, state.spec.parent_id, facts)], [event])

        persisted: LeggingState = await self._writer.execute(command)
        return persisted

    async def _act(
        self, state: LeggingState, children: tuple[LeggingChild, ...], now: datetime
    ) -> LeggingState:
        """Send the children (already committed as in flight), feed each outcome back and
        send what that decides, until the machine waits; then bring the strategy order up to
        date."""
        queue = list(children)
        while queue:
            child = queue.pop(0)
            filled, average = await self._execute(child, await self._backed(state))
            decision = legging.on_child_done(
                state, now, child.child_id, filled, average, self._markets(state.spec)
            )
            state = await self._persist(decision.state, "legging.child_done")
            queue.extend(decision.children)
        await self._sync_parent(state)
        if state.is_terminal and not state.in_flight:
            self._active.pop(state.spec.parent_id, None)
        else:
            self._active[state.spec.parent_id] = state
        return state

    async def _backed(self, state: LeggingState) -> bool:
        """Whether the operator's inventory trades this strategy's completed units on chain
        (a signed strategy, an inventory configured): its children are then the inventory's
        hedge orders on the exchanges, not orders of the trader's account."""
        parent_id = state.spec.parent_id
        if parent_id not in self._inventory_backed:
            parent = await self._orders.get(parent_id)
            self._inventory_backed[parent_id] = (
                self._orders.inventory is not None and parent.spec.signed is not None
            )
        return self._inventory_backed[parent_id]

    def _child_account(self, state: LeggingState, backed: bool) -> str:
        inventory = self._orders.inventory
        return inventory.wallet if backed and inventory is not None else state.spec.account

    async def _execute(
        self, child: LeggingChild, backed: bool = False
    ) -> tuple[Decimal, Decimal | None]:
        inventory = self._orders.inventory
        account = child.account
        exclude: frozenset[VenueKind] = frozenset()
        if backed and inventory is not None:
            account = inventory.wallet
            # hedges trade on the exchanges only: the book and the pools settle on chain
            # between wallets, and an unsigned hedge order cannot
            exclude = frozenset({VenueKind.INTERNAL, VenueKind.AMM})
            price = child.limit_price or self._market.book(child.instrument, depth=1).mid
            # the inventory takes an opening leg from the hedge on chain: can it carry it?
            if child.purpose is not ChildPurpose.UNWIND and price is not None:
                try:
                    await inventory.check_capacity(
                        child.instrument, child.side, child.quantity, price
                    )
                except InventoryRefused as error:
                    log.warning("legging child %s refused: %s", child.child_id, error)
                    return _ZERO, None
        spec = OrderSpec(
            account,
            child.child_id,
            child.side,
            OrderType.MARKET if child.limit_price is None else OrderType.LIMIT,
            child.quantity,
            TimeInForce.IOC,
            instrument=child.instrument,
            price=child.limit_price,
        )
        arrival = self._smart.routes.arrival(child.instrument, self._clock.now())
        try:
            submitted = await self._orders.submit(spec, routed=True, arrival=arrival)
        except DomainError as error:  # refused (risk, rules): nothing reached a venue
            log.warning("legging child %s refused: %s", child.child_id, error.message)
            return _ZERO, None
        order = submitted.order
        if submitted.created:
            order = (await self._smart.execute(order, exclude_kinds=exclude)).order
        return _outcome(order)

    async def _settle_in_flight(self, state: LeggingState, now: datetime) -> None:
        """After a restart: children listed in flight are closed from their gateway orders."""
        account = self._child_account(state, await self._backed(state))
        for flight in state.in_flight:

            def read(child_id: str = flight.child_id) -> order_repo.StoredOrder | None:
                with self._read_engine.connect() as connection:
                    return order_repo.get_by_client_order_id(connection, account, child_id)

            stored = await asyncio.to_thread(read)
            filled: Decimal = _ZERO
            average: Decimal | None = None
            if stored is not None:
                order = stored.order
                if order.status.is_open:
                    with contextlib.suppress(DomainError):
                        order = await self._orders.cancel(order.id, reason="stopped mid-legging")
                filled, average = _outcome(order)
            decision = legging.on_child_done(
                state, now, flight.child_id, filled, average, self._markets(state.spec)
            )
            state = await self._persist(decision.state, "legging.child_done")
        self._active[state.spec.parent_id] = state
        await self._sync_parent(state)

    async def _sync_parent(self, state: LeggingState) -> None:
        """The strategy order follows the completed units; once the run ends, its rest is
        cancelled with the run's reason."""
        order = await self._orders.get(state.spec.parent_id)
        done = state.completed_units
        if done > order.filled_quantity and order.status.is_open and await self._backed(state):
            order = await self._trade_with_inventory(state, order, done - order.filled_quantity)
        elif done > order.filled_quantity and order.status.is_open:
            summary = legging.report(state)
            net = summary.net_average_price
            assert net is not None
            delta = done - order.filled_quantity
            price = (net * done - order.filled_notional) / delta
            order = await self._orders.record_strategy_progress(
                order.id, quantity=delta, net_price=price
            )
        if state.is_terminal and not state.in_flight and order.status.is_open:
            with contextlib.suppress(DomainError):
                await self._orders.cancel(
                    order.id, reason=f"legging ended: {state.reason or state.status.value}"
                )

    async def _trade_with_inventory(
        self, state: LeggingState, order: Order, units: Decimal
    ) -> Order:
        """Newly completed units become one trade with the inventory, every leg at its
        hedges' average price moved by their fees and the spread (within the signed net
        limit). An unwound clip is not among them: it was never the trader's."""
        inventory = self._orders.inventory
        assert inventory is not None
        summary = legging.report(state)
        prefix = f"{state.spec.parent_id}-L"

        def read() -> dict[str, Decimal]:
            with self._read_engine.connect() as connection:
                return inventory_store.hedge_fees(connection, inventory.wallet, prefix)

        fees = await asyncio.to_thread(read)
        legs = []
        for leg, rules_tick in zip(summary.legs, state.spec.tick_sizes, strict=True):
            assert leg.opened_average_price is not None
            legs.append(
                LegExecution(
                    leg.side,
                    leg.ratio,
                    leg.opened_average_price,
                    fees.get(leg.instrument, _ZERO),
                    rules_tick,
                )
            )
        spec = order.spec
        assert spec.price is not None
        prices = strategy_leg_prices(
            tuple(legs),
            spread_bps=inventory.spread_bps,
            bound=spec.price if spec.side is Side.BUY else -spec.price,
        )
        if prices is None:
            log.error(
                "strategy %s: %s completed units cannot be priced within its limit; left unsettled",
                order.id,
                units,
            )
            return order
        return await self._orders.record_strategy_trade(order.id, units, prices, venue="inventory")


def _outcome(order: Order) -> tuple[Decimal, Decimal | None]:
    return order.filled_quantity, order.average_price
