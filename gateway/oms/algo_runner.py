"""Running the execution algorithms for real: persisted parent orders that survive a restart.

`gateway.routing.algos` holds the pure state machines; this module drives them. An algo is
created (spec checked against the instrument's `TradingRules`, row and `algo.created` audit
record committed through the single writer), then on every wake-up:

1. any child still open from before (a crash, an error) is settled first (see below);
2. the market is observed on the consolidated book (best bid/ask, last price = mid);
3. `step` decides; the new state, which already lists the children about to be sent, is
   committed (`algo.stepped`) *before* anything is sent;
4. each child goes out as a smart-routed gateway order: an IOC limit at the algo's limit (a
   market order when it has none) whose `client_order_id` is the child id (`<algo id>-<seq>`),
   executed by the `SmartExecutor` only when `OrderService.submit` reports it `created`;
5. the child's outcome (its fills, then done with the rest cancelled) is fed back through
   `on_fill`/`on_child_done` and committed (`algo.child_done`).

Why a restart never sends a child twice. A child id is allocated by the state machine
(`child_seq`) and written to the database, as an open child, before the child is submitted.
After a restart the runner loads every active algo and first settles its open children by
looking up the gateway order with that client order id:

- no order: the crash came before the submit committed, so nothing reached a venue (the
  gateway order is committed before the executor sends anything). The child is closed as
  unfilled; the schedule makes up the shortfall with a *new* child id later.
- an order: it was sent (or at least created). It is never submitted again: a routed order
  left open by the crash was already cancelled by `Runtime.start`
  (`cancel_stranded_immediate`), and an order still open is cancelled here; its recorded
  fills are fed to the algo and the rest closed. `OrderService.submit` is idempotent per
  (account, client_order_id) as a second guard: a resubmission returns the same order with
  `created=False` and is not executed again.

A client order id of the form `<algo id>-<n>` is the algo's: a client that submits one
itself (same account) takes that child's place (a different request makes the child refused
as a duplicate, an identical one is adopted as the child without being executed again).

Only one runner may drive a given algo (one gateway per database, as today): two replicas
would both step it. Every runner operation holds one lock, so the API's pause/resume/cancel
never interleave with a step in flight.

Supported kinds: TWAP, VWAP and sniper, whose children are immediate (IOC) and so fit the
smart executor, which never leaves an order resting. An iceberg needs a resting GTC child
and POV needs the market's traded volume; the venue protocol has neither a resting smart
route nor a trade feed, so both are refused at creation (`algo_kind_unsupported`) rather
than accepted and left idle. `MarketObservation.traded_volume` is therefore always 0.
Consolidated prices are all-in (taker fees included), so a sniper's trigger and the
limit-price check compare against what a taker would actually pay or receive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine

from gateway.domain.benchmarks import ExecutionBenchmark
from gateway.domain.clock import Clock
from gateway.domain.errors import DomainError
from gateway.domain.instruments import InstrumentCatalogue
from gateway.domain.market import VenueOrderRequest
from gateway.domain.orders import Order, OrderSpec, OrderType, Side, TimeInForce
from gateway.oms.group_commit import CommandResult, GroupCommitter
from gateway.oms.ids import new_id
from gateway.oms.service import OrderNotFound, OrderService
from gateway.oms.smart_execution import SmartExecutor
from gateway.routing import algos
from gateway.routing.algos import (
    AlgoKind,
    AlgoSpec,
    AlgoState,
    AlgoStatus,
    ChildOrder,
    Decision,
    InvalidAlgoSpec,
    MarketObservation,
)
from gateway.store import algo_repository as store
from gateway.store import execution_benchmarks as benchmarks
from gateway.store import order_repository as order_repo
from gateway.store.audit_log import AuditEntry
from gateway.venues.market_data import MarketDataHub
from gateway.venues.protocol import VenueError
from gateway.venues.trade_tape import TradeTape

log = logging.getLogger("gateway.algos")
_ZERO = Decimal(0)


class AlgoNotFound(OrderNotFound):
    """No algo (parent order) with this id."""

    code = "algo_not_found"


class AlgoKindUnsupported(InvalidAlgoSpec):
    """The kind cannot run on this gateway (see the module docstring)."""

    code = "algo_kind_unsupported"


@dataclass(frozen=True, slots=True)
class AlgoRequest:
    """A client's parent order; the runner adds the id and the instrument's lot size."""

    kind: AlgoKind
    account: str
    instrument: str
    side: Side
    quantity: Decimal
    start: datetime
    end: datetime
    min_child: Decimal
    max_child: Decimal
    limit_price: Decimal | None = None
    interval: timedelta = timedelta(minutes=1)
    volume_profile: tuple[Decimal, ...] = ()
    participation_rate: Decimal | None = None
    display_quantity: Decimal | None = None
    display_variance: Decimal = _ZERO
    seed: int = 0
    trigger_price: Decimal | None = None

    def to_spec(self, algo_id: str, lot_size: Decimal) -> AlgoSpec:
        """The spec: these fields as they are, plus the id and the instrument's lot size."""
        given = {f.name: getattr(self, f.name) for f in fields(self)}
        return AlgoSpec(algo_id=algo_id, lot_size=lot_size, **given)


def state_facts(state: AlgoState) -> dict[str, Any]:
    """The audit/event view of an algo's state (decimals as strings)."""
    return {
        "algo_id": state.spec.algo_id,
        "kind": state.spec.kind.value,
        "account": state.spec.account,
        "instrument": state.spec.instrument,
        "status": state.status.value,
        "filled": str(state.filled),
        "in_flight": str(state.in_flight),
        "children_sent": state.child_seq,
        "open_children": [c.child_id for c in state.open_children],
        "next_wake_at": None if state.next_wake_at is None else state.next_wake_at.isoformat(),
    }


class AlgoRunner:
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
        tape: TradeTape | None = None,
        history_days: int = 2,
        poll_interval: float = 0.5,
    ) -> None:
        self._writer = writer
        self._read_engine = read_engine
        self._orders = orders
        self._smart = smart
        self._market = market_data
        self._catalogue = catalogue
        self._clock = clock
        self._poll = poll_interval
        self._active: dict[str, AlgoState] = {}
        self._lock = asyncio.Lock()
        self._tape = tape
        self._history_days = history_days
        self._volume_seen: dict[str, Decimal] = {}  # POV: market volume since its last step

    # -- lifecycle --------------------------------------------------------------------------

    async def recover(self, now: datetime | None = None) -> int:
        """Load every active algo from the store and settle the children it had open when
        the previous process stopped. Returns how many algos were loaded."""

        def read() -> list[store.StoredAlgo]:
            with self._read_engine.connect() as connection:
                return store.load_active(connection)

        stored = await asyncio.to_thread(read)
        now = now or self._clock.now()
        async with self._lock:
            self._active = {s.algo_id: s.state for s in stored}
            for algo_id in list(self._active):
                await self._guarded(algo_id, now, due=False)
        return len(stored)

    async def run(self) -> None:
        """Background task: wake at the earliest `next_wake_at` on the runtime clock (at
        least every `poll_interval`, so snipers see the market and new algos are picked up)."""
        while True:
            delay = self._poll
            wake = self.next_wake()
            if wake is not None:
                until = (wake - self._clock.now()).total_seconds()
                # a floor, so an algo that keeps failing cannot spin the loop
                delay = min(delay, max(until, 0.05))
            await asyncio.sleep(delay)
            try:
                await self.run_due(self._clock.now())
            except Exception:
                log.exception("running due algos failed")

    def next_wake(self) -> datetime | None:
        wakes = [s.next_wake_at for s in self._active.values() if s.next_wake_at is not None]
        return min(wakes) if wakes else None

    def active_ids(self) -> list[str]:
        return list(self._active)

    # -- commands ---------------------------------------------------------------------------

    async def create(self, request: AlgoRequest) -> AlgoState:
        """Validate (spec rules and the instrument's trading rules), persist, schedule."""
        if request.kind is AlgoKind.POV and self._tape is None:
            raise AlgoKindUnsupported(
                "pov cannot run here: it needs the market's traded volume and no trade tape "
                "is configured",
                field="kind",
            )
        if request.kind is AlgoKind.VWAP and not request.volume_profile:
            request = await self._with_history_profile(request)
        instrument = self._catalogue.get(request.instrument, field="instrument")
        spec = request.to_spec(new_id("algo"), instrument.rules.lot_size)
        spec.check_rules(instrument.rules)
        state = algos.start(spec)
        arrival = self._smart.routes.arrival(spec.instrument, self._clock.now())
        benchmark = ExecutionBenchmark(spec.algo_id, "algo", spec.instrument, spec.side, arrival)

        def command(connection: Connection, now: datetime) -> CommandResult[AlgoState]:
            store.insert(connection, state, now)
            benchmarks.insert_benchmark(connection, benchmark)
            facts = {"spec": spec.to_json(), **state_facts(state)}
            event = {"type": "algo.created", "account": spec.account, "algo": facts}
            return CommandResult(state, [AuditEntry("algo.created", spec.algo_id, facts)], [event])

        created: AlgoState = await self._writer.execute(command)
        async with self._lock:
            self._active[spec.algo_id] = created
        return created

    async def _with_history_profile(self, request: AlgoRequest) -> AlgoRequest:
        """A VWAP without a given profile follows the venues' volume over the same time of
        day on the previous days."""
        if request.end <= request.start or request.interval <= timedelta(0):
            return request  # the spec's own checks say what is wrong
        buckets = -(-(request.end - request.start) // request.interval)
        profile = None
        if self._tape is not None and request.end - request.start <= timedelta(days=1):
            profile = await self._tape.volume_profile(
                request.instrument, request.start, request.end, buckets, self._history_days
            )
        if profile is None:
            raise InvalidAlgoSpec(
                f"no venue history of {request.instrument} over that time of day to build a "
                "volume profile from: give volume_profile",
                field="volume_profile",
            )
        return replace(request, volume_profile=profile)

    async def get(self, algo_id: str) -> store.StoredAlgo:
        def read() -> store.StoredAlgo | None:
            with self._read_engine.connect() as connection:
                return store.get(connection, algo_id)

        stored = await asyncio.to_thread(read)
        if stored is None:
            raise AlgoNotFound(f"no algo {algo_id!r}", field="algo_id")
        return stored

    async def pause(self, algo_id: str, now: datetime | None = None) -> AlgoState:
        return await self._control(algo_id, now, algos.pause, "algo.paused")

    async def resume(self, algo_id: str, now: datetime | None = None) -> AlgoState:
        return await self._control(algo_id, now, algos.resume, "algo.resumed")

    async def cancel(self, algo_id: str, now: datetime | None = None) -> AlgoState:
        return await self._control(algo_id, now, algos.cancel, "algo.cancelled")

    async def _control(
        self,
        algo_id: str,
        now: datetime | None,
        change: Callable[[AlgoState, datetime], Decision],
        kind: str,
    ) -> AlgoState:
        now = now or self._clock.now()
        async with self._lock:
            state = self._active.get(algo_id)
            if state is None:  # finished (or unknown): the transition is refused below
                state = (await self.get(algo_id)).state
            decision = change(state, now)  # IllegalTransition when it does not apply
            return await self._apply(state, decision, now, kind)

    async def run_due(self, now: datetime) -> int:
        """Process every algo due at `now` (its `next_wake_at` has come, or it is a running
        sniper watching the market). Returns how many were stepped. Tests call this with a
        simulated clock's time; the background task with the runtime clock's."""
        stepped = 0
        async with self._lock:
            await self._observe_volume()
            for algo_id, state in list(self._active.items()):
                due = state.next_wake_at is not None and state.next_wake_at <= now
                watching = state.spec.kind is AlgoKind.SNIPER and state.status is AlgoStatus.RUNNING
                if not (due or watching or state.open_children):
                    continue
                if await self._guarded(algo_id, now, due=due or watching):
                    stepped += 1
        return stepped

    # -- processing (under the lock) --------------------------------------------------------

    async def _guarded(self, algo_id: str, now: datetime, *, due: bool) -> bool:
        """Process one algo; on an error, log it and reload the algo's persisted state (the
        next run settles whatever child it had open)."""
        try:
            await self._process(algo_id, now, due=due)
            return due
        except Exception:
            log.exception("algo %s failed; continuing from its persisted state", algo_id)
            with contextlib.suppress(Exception):
                stored = await self.get(algo_id)
                self._keep(stored.state)
            return False

    async def _process(self, algo_id: str, now: datetime, *, due: bool) -> None:
        state = self._active[algo_id]
        for child in state.open_children:
            if state.spec.kind is AlgoKind.ICEBERG:  # resting: read its venue, keep it
                state = await self._refresh(state, now, child.child_id)
            else:
                state = await self._settle(state, now, child.child_id)
        if due and not state.is_terminal:
            decision = algos.step(state, now, self._observe(state))
            state = await self._apply(state, decision, now, "algo.stepped")
        self._keep(state)

    def _keep(self, state: AlgoState) -> None:
        if state.is_done:
            self._active.pop(state.spec.algo_id, None)
        else:
            self._active[state.spec.algo_id] = state

    def _observe(self, state: AlgoState) -> MarketObservation:
        book = self._market.book(state.spec.instrument, depth=1)
        return MarketObservation(
            best_bid=book.bids[0].price if book.bids else None,
            best_ask=book.asks[0].price if book.asks else None,
            last_price=book.mid,
            traded_volume=self._volume_seen.pop(state.spec.algo_id, _ZERO),
        )

    async def _observe_volume(self) -> None:
        """Read the tape once per instrument that a running POV follows; every such algo
        accumulates the volume until its next step."""
        if self._tape is None:
            return
        following: dict[str, list[str]] = {}
        for algo_id, state in self._active.items():
            # from creation on (the first read only places the cursor), paused included:
            # the schedule catches up on resume
            if state.spec.kind is AlgoKind.POV and not state.is_terminal:
                following.setdefault(state.spec.instrument, []).append(algo_id)
        for instrument, algo_ids in following.items():
            volume = await self._tape.poll(instrument)
            for algo_id in algo_ids:
                self._volume_seen[algo_id] = self._volume_seen.get(algo_id, _ZERO) + volume

    async def _apply(
        self, before: AlgoState, decision: Decision, now: datetime, kind: str
    ) -> AlgoState:
        """Persist the decision's state (children listed as open) before acting on it, then
        cancel and send what it says, feeding each outcome back."""
        state = decision.state
        if state != before or decision.children or decision.cancels:
            facts = state_facts(state)
            facts["sent"] = [_child_facts(c) for c in decision.children]
            state = await self._persist(state, kind, facts)
        self._keep(state)
        for child_id in decision.cancels:
            state = await self._settle(state, now, child_id)
        for child in decision.children:
            state = await self._send(state, now, child)
        self._keep(state)
        return state

    async def _persist(self, state: AlgoState, kind: str, facts: dict[str, Any]) -> AlgoState:
        def command(connection: Connection, now: datetime) -> CommandResult[AlgoState]:
            store.update(connection, state, now)
            event = {"type": kind, "account": state.spec.account, "algo": facts}
            return CommandResult(state, [AuditEntry(kind, state.spec.algo_id, facts)], [event])

        persisted: AlgoState = await self._writer.execute(command)
        return persisted

    async def _send(self, state: AlgoState, now: datetime, child: ChildOrder) -> AlgoState:
        spec = OrderSpec(
            child.account,
            child.child_id,
            child.side,
            OrderType.MARKET if child.limit_price is None else OrderType.LIMIT,
            child.quantity,
            TimeInForce.IOC,
            instrument=child.instrument,
            price=child.limit_price,
        )
        resting = child.time_in_force is TimeInForce.GTC
        if resting:
            spec = replace(spec, time_in_force=TimeInForce.GTC)
        try:
            submitted = await self._orders.submit(spec, routed=not resting)
        except DomainError as error:  # refused (risk, rules): nothing reached a venue
            log.warning("algo child %s refused: %s", child.child_id, error.message)
            decision = algos.on_child_done(state, now, child.child_id, _ZERO, child.quantity)
            facts = state_facts(decision.state)
            facts.update(child_id=child.child_id, refused=error.code, reason=error.message)
            return await self._persist(decision.state, "algo.child_refused", facts)
        order = submitted.order
        if resting:
            if submitted.created:
                order = await self._rest(order)
            return await self._child_progress(state, now, child.child_id, order)
        if submitted.created:
            order = (await self._smart.execute(order)).order
        return await self._child_finished(state, now, child.child_id, order)

    async def _rest(self, order: Order) -> Order:
        """Show a resting child on the venue where passive liquidity of its side is."""
        spec = order.spec
        assert spec.instrument is not None
        venue = self._smart.routes.resting_venue(spec.instrument, spec.side)
        if venue is None:
            return await self._orders.cancel(order.id, reason="no exchange to rest the order on")
        request = VenueOrderRequest(
            spec.instrument,
            spec.side,
            OrderType.LIMIT,
            order.remaining,
            spec.price,
            TimeInForce.GTC,
            client_order_id=f"{order.id}-0",
        )
        try:
            _, order = await self._smart.children.send(order, venue, request)
        except VenueError as error:
            log.warning("resting child of %s refused by %s: %s", order.id, venue.name, error)
            return await self._orders.cancel(order.id, reason=f"refused by {venue.name}")
        return order

    async def _refresh(self, state: AlgoState, now: datetime, child_id: str) -> AlgoState:
        """Read a resting child's venue order; record new fills; close the child once done."""
        stored = await self._child_order(state.spec.account, child_id)
        if stored is None:  # never submitted (a stop came first)
            return await self._settle(state, now, child_id)
        order = stored.order
        for venue_child in await self._smart.children.children_of(order.id):
            if not venue_child.status.is_final:
                try:
                    _, order = await self._smart.children.sync(venue_child)
                except VenueError as error:
                    log.warning("cannot read %s: %s", venue_child.client_order_id, error)
        if order.status.is_open and all(
            c.status.is_final for c in await self._smart.children.children_of(order.id)
        ):  # the venue ended it (cancelled there): end ours too
            with contextlib.suppress(DomainError):
                order = await self._orders.cancel(order.id, reason="ended on its venue")
        return await self._child_progress(state, now, child_id, order)

    async def _child_order(self, account: str, child_id: str) -> order_repo.StoredOrder | None:
        def read() -> order_repo.StoredOrder | None:
            with self._read_engine.connect() as connection:
                return order_repo.get_by_client_order_id(connection, account, child_id)

        return await asyncio.to_thread(read)

    async def _child_progress(
        self, state: AlgoState, now: datetime, child_id: str, order: Order
    ) -> AlgoState:
        """Feed a resting child's new fills to the algo; finish the child once its order is."""
        if not order.status.is_open:
            return await self._child_finished(state, now, child_id, order)
        child = next(c for c in state.open_children if c.child_id == child_id)
        new_fill = order.filled_quantity - child.filled
        if new_fill <= 0:
            return state
        price = order.average_price
        assert price is not None
        decision = algos.on_fill(state, child_id, new_fill, price)
        facts = state_facts(decision.state)
        facts.update(child_id=child_id, order_id=order.id, child_filled=str(order.filled_quantity))
        return await self._persist(decision.state, "algo.child_filled", facts)

    async def _settle(self, state: AlgoState, now: datetime, child_id: str) -> AlgoState:
        """Close an open child from what the gateway recorded for it (never resend it)."""
        account = state.spec.account

        def read() -> order_repo.StoredOrder | None:
            with self._read_engine.connect() as connection:
                return order_repo.get_by_client_order_id(connection, account, child_id)

        stored = await asyncio.to_thread(read)
        if stored is not None and stored.order.status.is_open:
            for venue_child in await self._smart.children.children_of(stored.order.id):
                if not venue_child.status.is_final:  # a resting child: take it off its venue
                    with contextlib.suppress(VenueError):
                        await self._smart.children.cancel(venue_child)
            stored = await asyncio.to_thread(read)
        if stored is None:
            child = next(c for c in state.open_children if c.child_id == child_id)
            decision = algos.on_child_done(state, now, child_id, child.filled, child.open_quantity)
            facts = state_facts(decision.state)
            facts.update(child_id=child_id, unsent=str(child.open_quantity))
            return await self._persist(decision.state, "algo.child_unsent", facts)
        return await self._child_finished(state, now, child_id, stored.order)

    async def _child_finished(
        self, state: AlgoState, now: datetime, child_id: str, order: Order
    ) -> AlgoState:
        if order.status.is_open:  # left open (never executed): end it, its fills stand
            with contextlib.suppress(DomainError):
                await self._orders.cancel(order.id, reason="algo child settled by its parent")
            order = await self._orders.get(order.id)
        child = next(c for c in state.open_children if c.child_id == child_id)
        new_fill = order.filled_quantity - child.filled
        if new_fill > 0:
            price = order.average_price
            assert price is not None
            state = algos.on_fill(state, child_id, new_fill, price).state
        decision = algos.on_child_done(
            state, now, child_id, order.filled_quantity, child.quantity - order.filled_quantity
        )
        facts = state_facts(decision.state)
        facts.update(
            child_id=child_id,
            order_id=order.id,
            child_filled=str(order.filled_quantity),
            child_average_price=None if order.average_price is None else str(order.average_price),
        )
        state = await self._persist(decision.state, "algo.child_done", facts)
        if decision.children:  # an iceberg shows its next child at once
            for follow in decision.children:
                state = await self._send(state, now, follow)
        return state


def _child_facts(child: ChildOrder) -> dict[str, Any]:
    return {
        "child_id": child.child_id,
        "quantity": str(child.quantity),
        "limit_price": None if child.limit_price is None else str(child.limit_price),
        "time_in_force": child.time_in_force.value,
        "tag": child.tag,
    }
