"""The gateway's own order book: the matching engine, wrapped with persistence.

`gateway.matching.MatchingEngine` is pure and in memory. This service is its sequencer:
under one lock, each command (place, cancel, amend) is applied to the engine and the write
that records its events (the order, both sides' fills of every trade with one `trade_id`,
cancels, the new time priority) is queued on the single writer at once, so writes commit in
exactly the order the engine applied the commands. Nothing is acknowledged before its write
commits.

If a write fails (the database refused it, or went away), the engine holds a change the
store does not: the service marks itself stale and, before the next command, waits for the
writer to drain and rebuilds every book from the store. Later writes that depended on the
lost one fail too (the maker they fill is not there), so the rebuilt books equal what was
committed. The same rebuild runs at start-up: open orders that rest on the book
(`book_priority` set) are placed again in priority order with what remains of them; they
did not cross when they rested, so the books come back exactly, queue positions included.

Scope: single-instrument limit and market orders, every time in force, post-only,
self-trade prevention (cancel newest: the incoming order's rest is cancelled). Stop orders
and strategies are stored but not placed here (strategies trade through the combo books
with the settlement pipeline).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from time import perf_counter
from typing import Any

from sqlalchemy import Connection, Engine

from gateway.domain.errors import DomainError, IllegalTransition, InvalidOrder
from gateway.domain.fills import Fill
from gateway.domain.instruments import InstrumentCatalogue, TradingRules
from gateway.domain.lifecycle import OrderStatus
from gateway.domain.market import BookLevel
from gateway.domain.orders import (
    Order,
    OrderSignature,
    OrderSpec,
    OrderType,
    Side,
    TimeInForce,
)
from gateway.matching import (
    AmendOrder,
    CancelOrder,
    CancelReason,
    ComboFill,
    Command,
    Event,
    InstrumentUnits,
    MatchingEngine,
    OpenOrder,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderRejected,
    PlaceCombo,
    PlaceOrder,
    StrategyUnits,
    Trade,
    normalise,
)
from gateway.oms.group_commit import CommandResult, GroupCommitter
from gateway.oms.ids import new_id
from gateway.oms.order_facts import fill_facts, order_change
from gateway.oms.order_signatures import SpentNonce
from gateway.store import order_repository as repo
from gateway.store.audit_log import AuditEntry
from gateway.telemetry.metrics import matching_histogram

log = logging.getLogger("gateway.book")
BOOK_VENUE = "internal"
BOOK_ORDER_TYPES = (OrderType.LIMIT, OrderType.MARKET)

_CANCEL_REASONS = {
    CancelReason.USER: "cancelled by client",
    CancelReason.EXPIRED: "expired",
    CancelReason.IOC_REMAINDER: "the rest found no liquidity on the book",
    CancelReason.FOK_UNFILLED: "fill or kill: the book could not fill it whole",
    CancelReason.SELF_TRADE: "self-trade prevented: it would have traded with the same account",
    CancelReason.POST_ONLY_WOULD_CROSS: "post-only: it would have taken liquidity",
}


class BookRejected(InvalidOrder):
    code = "book_rejected"


QUOTE_PREFIX = "mq-"  # the client order ids of orders a mass quote placed


def request_key(spec: OrderSpec) -> str:
    """The fingerprint stored with a mass quote's order (its id is generated: no retry)."""
    return f"mass-quote:{spec.client_order_id}"


@dataclass(frozen=True)
class QuoteLevel:
    """One price level a mass quote asks for: a post-only GTC limit order of the account,
    signed (it then settles on chain) or not."""

    instrument: str
    side: Side
    price: Decimal
    quantity: Decimal
    signed: OrderSignature | None = None

    def spec(self, account: str) -> OrderSpec:
        return OrderSpec(
            account,
            QUOTE_PREFIX + new_id("q")[2:],
            self.side,
            OrderType.LIMIT,
            self.quantity,
            TimeInForce.GTC,
            instrument=self.instrument,
            price=self.price,
            post_only=True,
            signed=self.signed,
        )


@dataclass(frozen=True)
class QuoteOutcome:
    """What a mass quote did with one level: kept, amended, placed or refused."""

    level: QuoteLevel
    action: str
    order_id: str | None
    error: Exception | None
    order: Order | None = None


@dataclass
class _Changes:
    """The store's side of one engine command, built inside the write transaction."""

    audit: list[AuditEntry] = field(default_factory=list)
    events: list[dict[str, object]] = field(default_factory=list)

    def order(self, order: Order, kind: str) -> None:
        entry, event = order_change(order, kind)
        self.audit.append(entry)
        self.events.append(event)

    def fill(self, fill: Fill) -> None:
        facts = fill_facts(fill)
        self.audit.append(AuditEntry("fill.recorded", fill.id, facts))
        self.events.append({"type": "fill.recorded", "account": fill.account, "fill": facts})


@dataclass(frozen=True)
class _BookWrite:
    """Record the events of one engine command. `new` is the order a place command created
    (inserted here); every other order the events touch is loaded and updated."""

    events: tuple[Event, ...]
    units: dict[str, InstrumentUnits]
    catalogue: InstrumentCatalogue
    subject: str  # the order whose final state the command returns
    new: tuple[Order, str] | None = None  # (accepted order, request fingerprint)
    priorities: tuple[tuple[str, int | None], ...] = ()
    cancel_reason: str | None = None  # a user cancel's own reason
    references: dict[str, Decimal] = field(default_factory=dict)  # mids, to split a net
    audit: tuple[AuditEntry, ...] = ()  # recorded first, in the same transaction

    def _rules(self) -> dict[str, TradingRules]:
        return {i.symbol: i.rules for i in self.catalogue}

    def _leg_prices(self, order: Order, event: ComboFill, net: Decimal) -> list[Decimal]:
        """Each leg's price in a combo fill. Implied fills have the leg books' prices. Two
        combo orders agree on the net only: every leg is put at its reference (the
        consolidated mid, on its tick) but one, which takes what makes the net exact; that
        leg is the one of the largest value whose tick lets the net come out exactly (the
        split is the same for both sides of the trade)."""
        if all(leg.price is not None for leg in event.legs):
            return [
                self.units[leg.instrument].from_ticks(leg.price)  # type: ignore[arg-type]
                for leg in event.legs
            ]
        legs = event.legs
        ratio = {leg.instrument: leg.ratio for leg in order.spec.legs}
        references: list[Decimal] = []
        for leg in legs:
            mid = self.references.get(leg.instrument)
            if mid is None:
                raise BookRejected(f"no reference price for {leg.instrument} to split the net")
            tick = self.catalogue.get(leg.instrument).rules.tick_size
            references.append((mid / tick).to_integral_value() * tick)
        # the net in the fill's own terms: buy legs pay, sell legs receive
        signs = [1 if leg.side is Side.BUY else -1 for leg in legs]
        client_net = net if event.side is Side.BUY else -net
        order_of_value = sorted(
            range(len(legs)), key=lambda i: -references[i] * ratio[legs[i].instrument]
        )
        for absorber in order_of_value:
            others = sum(
                signs[i] * ratio[legs[i].instrument] * references[i]
                for i in range(len(legs))
                if i != absorber
            )
            rest = (client_net - others) / (signs[absorber] * ratio[legs[absorber].instrument])
            tick = self.catalogue.get(legs[absorber].instrument).rules.tick_size
            if rest > 0 and rest % tick == 0:
                return [rest if i == absorber else references[i] for i in range(len(legs))]
        raise BookRejected("the net price cannot be split across the legs' ticks")

    def __call__(self, connection: Connection, now: datetime) -> CommandResult[Order]:
        store = _BookStore(connection, now)
        result = self._apply(store)
        store.flush()
        return result

    @classmethod
    def apply_batch(
        cls, connection: Connection, now: datetime, commands: Sequence[_BookWrite]
    ) -> list[CommandResult[Any] | Exception]:
        """Consecutive book writes in a few statements: each order read once, inserted or
        updated once with its last state, the fills in one statement. Any failure fails
        them all (the writer then replays them one by one, each in its own savepoint)."""
        store = _BookStore(connection, now)
        results: list[CommandResult[Any] | Exception] = [c._apply(store) for c in commands]
        store.flush()
        return results

    def _apply(self, store: _BookStore) -> CommandResult[Order]:
        changes = _Changes()
        now = store.now
        orders = store.orders
        if self.new is not None:
            order, fingerprint = self.new
            order = Order.new(order.id, order.spec, now).accept(now)
            store.insert(order, fingerprint)
            changes.order(order, "order.accepted")

        load = store.load

        def record(
            order_id: str,
            instrument: str,
            side: Side,
            quantity: Decimal,
            price: Decimal,
            trade_id: str,
        ) -> None:
            current = orders[order_id]
            fill = Fill(
                id=new_id("fil"),
                order_id=order_id,
                account=current.spec.account,
                instrument=instrument,
                side=side,
                quantity=quantity,
                price=price,
                fee=Decimal(0),
                venue=BOOK_VENUE,
                executed_at=now,
                trade_id=trade_id,
            )
            store.fills.append(fill)
            changes.fill(fill)

        def advance(order_id: str, quantity: Decimal, price: Decimal) -> None:
            filled = load(order_id).fill(quantity, price, now)
            orders[order_id] = filled
            kind = (
                "order.filled" if filled.status is OrderStatus.FILLED else "order.partially_filled"
            )
            changes.order(filled, kind)

        implied: dict[str, str] = {}  # combo order -> trade id of its implied leg fills
        paired: dict[tuple[str, str], str] = {}  # combo against combo: one trade id
        for event in self.events:
            if isinstance(event, Trade):
                units = self.units[event.book]
                price = units.from_ticks(event.price)
                quantity = units.from_lots(event.quantity)
                if event.implied:  # the combo's side is recorded with its ComboFill
                    trade_id = implied.setdefault(event.taker_order_id, new_id("trd"))
                    maker = load(event.maker_order_id)
                    advance(event.maker_order_id, quantity, price)
                    record(
                        event.maker_order_id, event.book, maker.spec.side, quantity, price, trade_id
                    )
                    continue
                trade_id = new_id("trd")
                for order_id in (event.maker_order_id, event.taker_order_id):
                    current = load(order_id)
                    advance(order_id, quantity, price)
                    record(order_id, event.book, current.spec.side, quantity, price, trade_id)
            elif isinstance(event, ComboFill):
                current = load(event.order_id)
                strategy_units = StrategyUnits.of(current.spec.legs, self._rules())
                units_filled = strategy_units.from_lots(event.quantity)
                net = strategy_units.from_ticks(event.price)
                if event.counterparty_order_id is None:
                    trade_id = implied.get(event.order_id) or new_id("trd")
                    implied.pop(event.order_id, "")
                else:
                    key = tuple(sorted((event.order_id, event.counterparty_order_id)))
                    pair = (key[0], key[1])
                    if pair in paired:  # the second of the two: the same trade
                        trade_id = paired.pop(pair)
                    else:
                        trade_id = paired.setdefault(pair, new_id("trd"))
                prices = self._leg_prices(current, event, net)
                advance(event.order_id, units_filled, net)
                for leg, price in zip(event.legs, prices, strict=True):
                    quantity = self.units[leg.instrument].from_lots(leg.quantity)
                    record(event.order_id, leg.instrument, leg.side, quantity, price, trade_id)
            elif isinstance(event, OrderCancelled):
                current = load(event.order_id)
                reason = self.cancel_reason or _CANCEL_REASONS.get(event.reason, event.reason.value)
                if event.reason is CancelReason.EXPIRED:
                    cancelled = current.expire(now)
                    kind = "order.expired"
                else:
                    cancelled = current.cancel(now, reason=reason)
                    kind = "order.cancelled"
                orders[event.order_id] = cancelled
                changes.order(cancelled, kind)
            elif isinstance(event, OrderAmended):
                current = load(event.order_id)
                amended_units: InstrumentUnits | StrategyUnits
                ticks = event.price
                if current.spec.is_strategy:  # the engine's price is the normalised strategy's
                    amended_units = StrategyUnits.of(current.spec.legs, self._rules())
                    if ticks is not None and normalise(current.spec.legs)[1]:
                        ticks = -ticks
                else:
                    amended_units = self.units[current.spec.instrument or ""]
                new_price = None if ticks is None else amended_units.from_ticks(ticks)
                new_quantity = amended_units.from_lots(event.quantity)
                amended = current.amend(
                    now,
                    self.catalogue,
                    price=None if new_price == current.price else new_price,
                    quantity=None if new_quantity == current.quantity else new_quantity,
                )
                orders[event.order_id] = amended
                changes.order(amended, "order.amended")
        store.priorities.update(self.priorities)
        return CommandResult(load(self.subject), [*self.audit, *changes.audit], changes.events)


@dataclass
class _BookStore:
    """The store's side of a run of book writes in one transaction: each order read once,
    new orders inserted and changed ones updated once (their last state) by `flush`."""

    connection: Connection
    now: datetime
    orders: dict[str, Order] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)  # as stored, before this run
    new: dict[str, str] = field(default_factory=dict)  # order id -> request fingerprint
    fills: list[Fill] = field(default_factory=list)
    priorities: dict[str, int | None] = field(default_factory=dict)

    def insert(self, order: Order, fingerprint: str) -> None:
        self.orders[order.id] = order
        self.new[order.id] = fingerprint

    def load(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            stored = repo.get_order(self.connection, order_id)
            if stored is None:  # the engine is ahead of the store: fail, rebuild
                raise IllegalTransition(f"order {order_id} is not in the store")
            order = self.orders[order_id] = stored.order
            self.versions[order_id] = order.version
        return order

    def flush(self) -> None:
        connection, new = self.connection, self.new
        if new:
            created = [
                (self.orders[order_id], fingerprint) for order_id, fingerprint in new.items()
            ]
            repo.ensure_accounts(connection, [o.spec.account for o, _ in created], self.now)
            repo.insert_orders(connection, created, self.priorities)
        for order_id, version in self.versions.items():
            order = self.orders[order_id]
            if order.version != version:
                repo.update_order(connection, order, previous_version=version)
        repo.insert_fills(connection, self.fills)
        repo.set_book_priorities(
            connection, [(o, p) for o, p in self.priorities.items() if o not in new]
        )


class InternalBook:
    def __init__(
        self,
        writer: GroupCommitter,
        read_engine: Engine,
        catalogue: InstrumentCatalogue,
        reference: Callable[[str], Decimal | None] = lambda symbol: None,
    ) -> None:
        self._reference = reference  # a mid per instrument, to split a combo's net price
        self._writer = writer
        self._read_engine = read_engine
        self._catalogue = catalogue
        self._units = {i.symbol: InstrumentUnits.of(i.rules) for i in catalogue}
        self._engine = self._new_engine()
        self._lock = asyncio.Lock()
        self._priority = 0
        self._stale = False
        self._touched: set[str] = set()
        # resting mass-quote orders: account -> (instrument, side, price) -> order id
        self._quotes: dict[str, dict[tuple[str, Side, Decimal], str]] = {}
        self._quote_clients: dict[str, str] = {}  # their order id -> client order id
        # the signed ones: order id -> its signature
        self._signed_quotes: dict[str, OrderSignature] = {}
        self._listeners: list[Callable[[], None]] = []
        self._rules = {i.symbol: i.rules for i in catalogue}
        # per book: the levels of its last depth read, by (ticks, lots): most survive a change
        self._depth_levels: dict[str, dict[tuple[int, int], BookLevel]] = {}
        # compliance: called under the lock right before an order enters the engine; raises
        # to refuse (an account listed after its order was screened)
        self.admission: Callable[[OrderSpec], None] | None = None
        self.matching_seconds = matching_histogram()  # the engine's time per order placed

    def on_change(self, listener: Callable[[], None]) -> None:
        """Called (synchronously) after every committed change of any book."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.exception("book change listener failed")

    def depth(self, instrument: str, levels: int) -> tuple[list[BookLevel], list[BookLevel]]:
        """Aggregated depth (price, quantity) of one book, best first."""
        bids, asks = self._engine.depth(instrument, levels)
        # The feed reads every changed book after every order; one order changes one or two
        # levels, so the others are the same objects as last time (no Decimal conversion).
        previous = self._depth_levels.get(instrument, {})
        current: dict[tuple[int, int], BookLevel] = {}
        units = self._units[instrument]
        sides: tuple[list[BookLevel], list[BookLevel]] = ([], [])
        for side, pairs in zip(sides, (bids, asks), strict=True):
            for key in pairs:
                level = previous.get(key)
                if level is None:
                    level = BookLevel(units.from_ticks(key[0]), units.from_lots(key[1]))
                current[key] = level
                side.append(level)
        self._depth_levels[instrument] = current
        return sides

    def _new_engine(self) -> MatchingEngine:
        return MatchingEngine({i.symbol: i.rules for i in self._catalogue})

    @staticmethod
    def takes(spec: OrderSpec) -> bool:
        """Whether a (directly routed) order trades on this book."""
        return spec.is_strategy or spec.order_type in BOOK_ORDER_TYPES

    def holds(self, order_id: str) -> bool:
        return self._engine.order(order_id) is not None

    # -- start-up and recovery ---------------------------------------------------------------

    async def load(self) -> int:
        """Rebuild every book from the store (at start-up, and after a failed write)."""

        def read() -> tuple[list[tuple[repo.StoredOrder, int]], int]:
            with self._read_engine.connect() as connection:
                return repo.book_orders(connection), repo.max_book_priority(connection)

        resting, top = await asyncio.to_thread(read)
        engine = self._new_engine()
        self._quotes = {}
        self._quote_clients = {}
        self._signed_quotes = {}
        for stored, _ in resting:
            order = stored.order
            spec = order.spec
            assert order.price is not None
            if spec.client_order_id.startswith(QUOTE_PREFIX) and spec.instrument is not None:
                key = (spec.instrument, spec.side, order.price)
                self._quotes.setdefault(spec.account, {})[key] = order.id
                self._quote_clients[order.id] = spec.client_order_id
                if spec.signed is not None:
                    self._signed_quotes[order.id] = spec.signed
            if spec.is_strategy:
                strategy_units = StrategyUnits.of(spec.legs, self._rules)
                events = engine.execute(
                    PlaceCombo(
                        order.id,
                        spec.account,
                        spec.legs,
                        spec.side,
                        strategy_units.to_lots(order.remaining),
                        strategy_units.to_ticks(order.price),
                    )
                )
                if any(not isinstance(e, OrderAccepted) for e in events):
                    raise RuntimeError(f"rebuilding the book: {order.id} did not rest ({events})")
                continue
            assert spec.instrument is not None
            units = self._units[spec.instrument]
            events = engine.execute(
                PlaceOrder(
                    order.id,
                    spec.account,
                    spec.instrument,
                    spec.side,
                    units.to_lots(order.remaining),
                    units.to_ticks(order.price),
                    OrderType.LIMIT,
                    TimeInForce.GTC,
                    spec.post_only,
                )
            )
            if any(not isinstance(e, OrderAccepted) for e in events):
                raise RuntimeError(f"rebuilding the book: {order.id} did not rest ({events})")
        self._engine = engine
        self._touched.update(engine.books())
        self._priority = top
        self._stale = False
        self._changed()  # a depth feed already running (a replica taking over) shows them
        return len(resting)

    async def _fresh(self) -> None:
        """Under the lock: rebuild first if a write failed since the last command."""
        if self._stale:
            await self._writer.drain()
            count = await self.load()
            log.warning("internal book rebuilt from the store after a failed write (%d)", count)

    async def _outcome(self, future: asyncio.Future[Order]) -> Order:
        try:
            result = await future
        except BaseException:
            self._stale = True  # the engine applied what the store refused
            raise
        self._changed()
        return result

    def _execute(self, command: Command) -> list[Event]:
        """Run `command` on the engine, noting the books it changes (for `changed_books`)."""
        touched = self._touched
        if isinstance(command, (CancelOrder, AmendOrder)):
            view = self._engine.order(command.order_id)
            if view is not None:
                touched.add(view.book)
        events = self._engine.execute(command)
        for event in events:
            if isinstance(event, (OrderAccepted, Trade)):
                touched.add(event.book)
            elif isinstance(event, ComboFill):
                touched.update(leg.instrument for leg in event.legs)
        return events

    def changed_books(self) -> set[str]:
        """The books changed since the last call (every book after a rebuild), and forget
        them: what a depth feed must publish again."""
        touched, self._touched = self._touched, set()
        return touched

    def _write(self, events: list[Event], subject: str, **extra: object) -> asyncio.Future[Order]:
        """Queue the write of `events` (under the lock: writes commit in engine order)."""
        write = _BookWrite(tuple(events), self._units, self._catalogue, subject, **extra)  # type: ignore[arg-type]
        return self._writer.enqueue(write)

    def _rest(self, order_id: str) -> tuple[tuple[str, int | None], ...]:
        if not self.holds(order_id):
            return ((order_id, None),)
        self._priority += 1
        return ((order_id, self._priority),)

    # -- commands -------------------------------------------------------------------------

    async def place(
        self, spec: OrderSpec, fingerprint: str, audit: Sequence[AuditEntry] = ()
    ) -> Order:
        """Match a new order against the book; what it does not fill rests (limit GTC/GTD)
        or is cancelled (IOC, FOK, market, post-only that would cross). `audit`: records
        written with the order."""
        order_id = new_id("ord")
        command, references = self._place_command(order_id, spec)
        placeholder = Order.new(order_id, spec, datetime.min)
        async with self._lock:
            await self._fresh()
            future, _ = self._placed(command, placeholder, fingerprint, references, audit)
        return await self._outcome(future)

    async def place_many(
        self,
        orders: Sequence[tuple[OrderSpec, str, Sequence[AuditEntry]]],
        admit: Callable[[int, OrderSpec], object] | None = None,
        placed: Callable[[OrderSpec, str, list[Event]], object] | None = None,
    ) -> list[Order | Exception]:
        """Place orders (spec, request fingerprint, audit records) one after the other in
        one hold of the lock: nothing else trades in between, and their writes are queued
        together (one group commit). Each has its own outcome: the order, or the exception
        that refused it (the others go on). `admit(position, spec)` runs right before each
        order goes to the engine (the pre-trade checks: raise to refuse it), `placed(spec,
        order id, events)` right after, so each order is checked against the book and the
        limits as the orders before it left them, as if sent one by one."""
        outcomes: list[Order | Exception | asyncio.Future[Order]] = []
        async with self._lock:
            await self._fresh()
            for spec, fingerprint, audit in orders:
                order_id = new_id("ord")
                try:
                    command, references = self._place_command(order_id, spec)
                    if admit is not None:
                        admit(len(outcomes), spec)
                    placeholder = Order.new(order_id, spec, datetime.min)
                    future, events = self._placed(
                        command, placeholder, fingerprint, references, audit
                    )
                    outcomes.append(future)
                    if placed is not None:
                        placed(spec, order_id, events)
                except DomainError as error:  # off the grid, refused by admission or the book
                    outcomes.append(error)
        results: list[Order | Exception] = []
        for outcome in outcomes:
            if isinstance(outcome, asyncio.Future):
                try:
                    results.append(await self._outcome(outcome))
                except Exception as error:  # this order's write failed; the others stand
                    results.append(error)
            else:
                results.append(outcome)
        return results

    async def replace_quotes(
        self,
        account: str,
        instruments: frozenset[str],
        levels: Sequence[QuoteLevel],
        admit: Callable[[OrderSpec], object] | None = None,
        withdrawn: Callable[[str, str], object] | None = None,
        unclaimed: Collection[QuoteLevel] = (),
    ) -> tuple[list[QuoteOutcome], list[Order]]:
        """A mass quote: `levels` become the account's quotes on `instruments`, in one hold
        of the lock. A level at the price of a resting quote keeps it when the quantity is
        the same, amends it in place (keeping its queue position) when smaller, and amends
        it to the back when larger; quotes at prices no longer given are cancelled, and
        new prices are placed post-only (a level that would take liquidity is refused).
        Signed levels and quotes are never amended (a signature covers its order's price
        and quantity): a level with the resting quote's own signature keeps it; any other
        signed level cancels it and places the level's own order, at the back of the queue.
        The cancels go first, so the account's new quotes never meet its old ones; nothing
        else runs in between. `admit` checks and reserves a new quote's limits (raises to
        refuse it); `withdrawn(account, client_order_id)` hears of each quote cancelled, at
        once (the pre-trade checks must not see it as resting any more when the new quotes
        are admitted). `unclaimed`: signed levels the caller let through as kept (their nonce
        not claimed, `keeps_quote`); one that is not kept here (its quote traded or left the
        book meanwhile) is refused, since that quote's order holds its nonce. Returns one
        outcome per level and the quotes cancelled."""
        async with self._lock:
            await self._fresh()
            quotes = self._quotes.setdefault(account, {})
            for key, order_id in list(quotes.items()):
                if self._engine.order(order_id) is None:  # filled or cancelled meanwhile
                    del quotes[key]
                    self._quote_clients.pop(order_id, None)
                    self._signed_quotes.pop(order_id, None)
            wanted = {(level.instrument, level.side, level.price): level for level in levels}
            cancelled: list[asyncio.Future[Order]] = []
            for key, order_id in list(quotes.items()):
                if key[0] in instruments and key not in wanted:
                    del quotes[key]
                    cancelled.append(self._withdraw_quote(account, order_id, withdrawn))
            pending: list[tuple[QuoteLevel, str, asyncio.Future[Order] | Exception | None]] = []
            # smaller first (they keep their place), then larger and new
            ordered = sorted(levels, key=lambda level: self._grows(quotes, level))
            for level in ordered:
                key = (level.instrument, level.side, level.price)
                order_id = quotes.get(key, "")
                try:
                    if order_id and self._same(order_id, level):
                        pending.append((level, "kept", None))
                        continue
                    if order_id and self._amendable(order_id, level):
                        pending.append((level, "amended", self._amend_quote(order_id, level)))
                        continue
                    if order_id:  # a signed quote or level: a new order replaces it
                        del quotes[key]
                        cancelled.append(self._withdraw_quote(account, order_id, withdrawn))
                    if level in unclaimed:
                        raise SpentNonce(
                            f"nonce {level.signed.nonce if level.signed else ''} signed a quote "
                            f"of {account} that traded or left the book: sign the level afresh",
                            field="signature.nonce",
                        )
                    spec = level.spec(account)
                    if admit is not None:
                        admit(spec)
                    order_id = new_id("ord")
                    command, _ = self._place_command(order_id, spec)
                    placeholder = Order.new(order_id, spec, datetime.min)
                    future, _ = self._placed(command, placeholder, request_key(spec), {}, ())
                    if self.holds(order_id):
                        quotes[key] = order_id
                        self._quote_clients[order_id] = spec.client_order_id
                        if spec.signed is not None:
                            self._signed_quotes[order_id] = spec.signed
                    pending.append((level, "placed", future))
                except DomainError as error:
                    pending.append((level, "refused", error))
        outcomes: list[QuoteOutcome] = []
        for level, action, outcome in pending:
            if outcome is None:
                order_id = quotes.get((level.instrument, level.side, level.price), "")
                outcomes.append(QuoteOutcome(level, action, order_id, None))
            elif isinstance(outcome, Exception):
                outcomes.append(QuoteOutcome(level, "refused", None, outcome))
            else:
                try:
                    order = await self._outcome(outcome)
                    if order.status is OrderStatus.CANCELLED:  # post-only: it would cross
                        action = "refused"
                    outcomes.append(QuoteOutcome(level, action, order.id, None, order))
                except Exception as error:
                    outcomes.append(QuoteOutcome(level, "refused", None, error))
        return outcomes, [await self._outcome(future) for future in cancelled]

    def keeps_quote(self, account: str, level: QuoteLevel) -> bool:
        """Whether the level is the account's resting quote at its price, under that quote's
        own signature: a mass quote now would keep it (no new order)."""
        order_id = self._quotes.get(account, {}).get((level.instrument, level.side, level.price))
        return level.signed is not None and order_id is not None and self._same(order_id, level)

    def _grows(self, quotes: dict[tuple[str, Side, Decimal], str], level: QuoteLevel) -> bool:
        """Whether the level is new or larger than the resting quote at its price."""
        order_id = quotes.get((level.instrument, level.side, level.price))
        view = None if order_id is None else self._engine.order(order_id)
        if view is None:
            return True
        return self._units[level.instrument].to_lots(level.quantity) > view.remaining

    def _withdraw_quote(
        self, account: str, order_id: str, withdrawn: Callable[[str, str], object] | None
    ) -> asyncio.Future[Order]:
        """Under the lock: cancel a resting quote a mass quote no longer wants as it is."""
        self._signed_quotes.pop(order_id, None)
        events = self._execute(CancelOrder(order_id, CancelReason.USER))
        client_id = self._quote_clients.pop(order_id, None)
        if withdrawn is not None and client_id is not None:
            withdrawn(account, client_id)
        return self._write(
            events,
            order_id,
            priorities=((order_id, None),),
            cancel_reason="replaced by a mass quote",
        )

    def _amendable(self, order_id: str, level: QuoteLevel) -> bool:
        """Whether the resting quote may become the level by an amend: only unsigned to
        unsigned. A signature covers its order's price and quantity (settlement rebuilds the
        signed order from them), so a changed signed level is a new order."""
        return level.signed is None and order_id not in self._signed_quotes

    def _same(self, order_id: str, level: QuoteLevel) -> bool:
        """The resting quote already is the level. A signed level is the same only with the
        same signature, which is the same order (its digest covers price and quantity),
        partly filled or not: a fresh nonce or deadline, or another signer, must reach the
        book (an old deadline passes, an old nonce may be cancelled, an old key revoked)."""
        if level.signed is not None:
            return self._signed_quotes.get(order_id) == level.signed
        view = self._engine.order(order_id)
        assert view is not None
        return self._units[level.instrument].to_lots(level.quantity) == view.remaining

    def _amend_quote(self, order_id: str, level: QuoteLevel) -> asyncio.Future[Order]:
        """Under the lock: the quote's open quantity becomes the level's (its filled part
        kept): a smaller one keeps its place, a larger one goes to the back."""
        view = self._engine.order(order_id)
        assert view is not None
        lots = self._units[level.instrument].to_lots(level.quantity)
        events = self._execute(AmendOrder(order_id, None, view.quantity - view.remaining + lots))
        rejected = next((e for e in events if isinstance(e, OrderRejected)), None)
        if rejected is not None:
            raise BookRejected(f"the book refused the amend: {rejected.reason.value}")
        kept = all(e.priority_kept for e in events if isinstance(e, OrderAmended))
        priorities = self._rest(order_id) if not kept else ()
        return self._write(events, order_id, priorities=priorities)

    def _place_command(
        self, order_id: str, spec: OrderSpec
    ) -> tuple[PlaceOrder | PlaceCombo, dict[str, Decimal]]:
        """The engine's command for a new order, and the legs' mids of a strategy (to split
        a net traded at once). Raises InvalidOrder for a price or quantity off the grid."""
        references: dict[str, Decimal] = {}
        if spec.is_strategy:
            assert spec.price is not None
            strategy_units = StrategyUnits.of(spec.legs, self._rules)
            for leg in spec.legs:
                mid = self._reference(leg.instrument)
                if mid is not None:
                    references[leg.instrument] = mid
            return PlaceCombo(
                order_id,
                spec.account,
                spec.legs,
                spec.side,
                strategy_units.to_lots(spec.quantity),
                strategy_units.to_ticks(spec.price),
                spec.time_in_force,
            ), references
        assert spec.instrument is not None
        units = self._units[spec.instrument]
        return PlaceOrder(
            order_id,
            spec.account,
            spec.instrument,
            spec.side,
            units.to_lots(spec.quantity),
            None if spec.price is None else units.to_ticks(spec.price),
            spec.order_type,
            spec.time_in_force,
            spec.post_only,
        ), references

    def _placed(
        self,
        command: PlaceOrder | PlaceCombo,
        placeholder: Order,
        fingerprint: str,
        references: dict[str, Decimal],
        audit: Sequence[AuditEntry],
    ) -> tuple[asyncio.Future[Order], list[Event]]:
        """Under the lock, with the books fresh: admit, match, and queue the write; the
        write's future and the engine's events."""
        events = self._admitted(placeholder.spec, command)
        future = self._write(
            events,
            placeholder.id,
            new=(placeholder, fingerprint),
            priorities=self._rest(placeholder.id),
            references=references,
            audit=tuple(audit),
        )
        return future, events

    def _admitted(self, spec: OrderSpec, command: PlaceOrder | PlaceCombo) -> list[Event]:
        """Under the lock, with the books fresh: the compliance admission, then the engine;
        a refusal by either raises (nothing was written)."""
        if self.admission is not None:
            self.admission(spec)
        started = perf_counter()
        events = self._execute(command)
        self.matching_seconds.observe(perf_counter() - started)
        rejected = next((e for e in events if isinstance(e, OrderRejected)), None)
        if rejected is not None:
            raise BookRejected(f"the book refused the order: {rejected.reason.value}")
        return events

    async def take(self, order: Order, quantity: Decimal, price: Decimal | None) -> Order:
        """A smart-routed order takes up to `quantity` from the book at `price` or better
        (immediate, never resting): its fills are recorded on it; the rest stays with the
        order for its other venues (the router ends it)."""
        spec = order.spec
        assert spec.instrument is not None
        units = self._units[spec.instrument]
        command = PlaceOrder(
            order.id,
            spec.account,
            spec.instrument,
            spec.side,
            units.to_lots(quantity),
            None if price is None else units.to_ticks(price),
            OrderType.MARKET if price is None else OrderType.LIMIT,
            TimeInForce.IOC,
        )
        async with self._lock:
            await self._fresh()
            events = self._admitted(spec, command)
            kept = [
                e for e in events if not (isinstance(e, OrderCancelled) and e.order_id == order.id)
            ]
            future = self._write(kept, order.id)
        return await self._outcome(future)

    async def cancel(
        self, order_id: str, *, reason: str = "cancelled by client", expired: bool = False
    ) -> Order:
        async with self._lock:
            await self._fresh()
            events = self._execute(
                CancelOrder(order_id, CancelReason.EXPIRED if expired else CancelReason.USER)
            )
            if any(isinstance(e, OrderRejected) for e in events):
                raise IllegalTransition(f"order {order_id} is not on the book")
            future = self._write(
                events,
                order_id,
                priorities=((order_id, None),),
                cancel_reason=None if expired else reason,
            )
        return await self._outcome(future)

    async def amend(
        self,
        order: Order,
        now: datetime,
        *,
        price: Decimal | None,
        quantity: Decimal | None,
    ) -> Order:
        """Amend a resting order as exchanges do: a lower quantity keeps its place, a new
        price or a larger quantity goes to the back (and a new price may trade at once).
        A strategy is amended the same way on its combo book: its net price (in its own
        terms, as placed) and its quantity in strategy units; a new net price may trade with
        resting combos or the legs' books at once. `order` is its current stored state: the
        amend is checked on it first."""
        spec = order.spec
        order.amend(now, self._catalogue, price=price, quantity=quantity)  # the rules, first
        units: InstrumentUnits | StrategyUnits
        references: dict[str, Decimal] = {}
        if spec.is_strategy:
            units = StrategyUnits.of(spec.legs, self._rules)
            for leg in spec.legs:  # to split a net traded at once across the legs
                mid = self._reference(leg.instrument)
                if mid is not None:
                    references[leg.instrument] = mid
        else:
            assert spec.instrument is not None
            units = self._units[spec.instrument]
        async with self._lock:
            await self._fresh()
            events = self._execute(
                AmendOrder(
                    order.id,
                    None if price is None else units.to_ticks(price),
                    None if quantity is None else units.to_lots(quantity),
                )
            )
            rejected = next((e for e in events if isinstance(e, OrderRejected)), None)
            if rejected is not None:
                raise BookRejected(f"the book refused the amend: {rejected.reason.value}")
            kept = all(e.priority_kept for e in events if isinstance(e, OrderAmended))
            priorities = self._rest(order.id) if not kept or not self.holds(order.id) else ()
            future = self._write(events, order.id, priorities=priorities, references=references)
        return await self._outcome(future)

    def accounts(self) -> set[str]:
        """The accounts with orders resting on any book."""
        return {order.account for order in self._engine.open_orders()}

    async def cancel_accounts(
        self, barred: Callable[[str], bool], *, reason: str, before: Callable[[], None]
    ) -> list[Order]:
        """Under the lock, so no command runs in between: `before()` (which may change what
        `barred` and the admission hook say), then cancel every resting order of a barred
        account. Returns once the cancels are committed."""
        async with self._lock:
            await self._fresh()
            before()
            futures = self._cancel_resting(lambda view: reason if barred(view.account) else None)
        return [await self._outcome(future) for future in futures]

    async def cancel_where(self, reason_for: Callable[[OpenOrder], str | None]) -> list[Order]:
        """Under the lock: cancel every resting order `reason_for` gives a reason for, with
        that reason (as a client cancel: one audited `order.cancelled` each). An order that
        traded away or was cancelled since the caller chose it is simply not there any more.
        Returns once the cancels are committed."""
        async with self._lock:
            await self._fresh()
            futures = self._cancel_resting(reason_for)
        return [await self._outcome(future) for future in futures]

    def _cancel_resting(
        self, reason_for: Callable[[OpenOrder], str | None]
    ) -> list[asyncio.Future[Order]]:
        """Under the lock, with the books fresh."""
        futures = []
        for view in self._engine.open_orders():
            reason = reason_for(view)
            if reason is None:
                continue
            events = self._execute(CancelOrder(view.order_id, CancelReason.USER))
            futures.append(
                self._write(
                    events,
                    view.order_id,
                    priorities=((view.order_id, None),),
                    cancel_reason=reason,
                )
            )
        return futures

    async def drop(self, order_ids: Sequence[str]) -> None:
        """Take orders the store already closed (expired) off the book."""
        async with self._lock:
            for order_id in order_ids:
                if self.holds(order_id):
                    self._execute(CancelOrder(order_id, CancelReason.EXPIRED))

    def best(self, instrument: str) -> tuple[Decimal | None, Decimal | None]:
        units = self._units[instrument]
        bid = self._engine.best_bid(instrument)
        ask = self._engine.best_ask(instrument)
        return (
            None if bid is None else units.from_ticks(bid),
            None if ask is None else units.from_ticks(ask),
        )
