"""The order lifecycle service: every submit, amend, cancel, fill and expiry goes through here.

Writes run as commands on the `GroupCommitter` (durable before acknowledged, one audit record
per state change); reads use their own connections and never wait for the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from gateway.compliance.rules import ComplianceRefused, ScreeningDecision
from gateway.domain.amm import PoolSwap
from gateway.domain.benchmarks import ArrivalPrice, ExecutionBenchmark
from gateway.domain.clock import Clock
from gateway.domain.errors import DomainError, InvalidOrder
from gateway.domain.fills import Fill
from gateway.domain.foreign_text import printable
from gateway.domain.instruments import InstrumentCatalogue
from gateway.domain.lifecycle import OrderStatus
from gateway.domain.orders import (
    Order,
    OrderSpec,
    Side,
    TimeInForce,
    validate,
)
from gateway.domain.venue_child import (
    ChildProgress,
    ChildReport,
    VenueChild,
    VenueChildStatus,
    progress,
)
from gateway.matching import Event, OrderCancelled, Trade
from gateway.oms.group_commit import CommandResult, GroupCommitter
from gateway.oms.ids import new_id
from gateway.oms.internal_book import InternalBook, QuoteLevel, QuoteOutcome
from gateway.oms.order_facts import (
    child_facts,
    fill_facts,
    order_change,
    request_hash,
)
from gateway.oms.signed_nonces import NonceKey, SignedNonces
from gateway.risk.exposure import ExposureLedger
from gateway.risk.pretrade import PreTradeRejected, PreTradeValidator
from gateway.store import execution_benchmarks as benchmarks
from gateway.store import order_repository as repo
from gateway.store import settlement_repository as settlement_store
from gateway.store import venue_orders
from gateway.store.audit_log import AuditEntry
from gateway.telemetry import tracing
from gateway.telemetry.logs import bind_request_ids

if TYPE_CHECKING:
    from gateway.compliance.screening import ComplianceScreen
    from gateway.oms.inventory import OperatorInventory


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


_change = order_change


@dataclass(frozen=True, slots=True)
class SubmitOrder:
    """Write command for one submission; many are applied together in a few statements."""

    spec: OrderSpec
    fingerprint: str
    order_id: str
    routed: bool = False  # the smart router executes it right after the commit
    arrival: ArrivalPrice | None = None  # the market at arrival, stored for TCA
    audit: tuple[AuditEntry, ...] = ()  # recorded first when the order is created

    def __call__(self, connection: Connection, now: datetime) -> CommandResult[Submitted]:
        outcome = self.apply_batch(connection, now, [self])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    @classmethod
    def apply_batch(
        cls, connection: Connection, now: datetime, commands: Sequence[SubmitOrder]
    ) -> list[CommandResult[Submitted] | Exception]:
        keys = [(c.spec.account, c.spec.client_order_id) for c in commands]
        known = {
            key: (stored.order, stored.request_hash)
            for key, stored in repo.get_by_client_order_ids(connection, list(set(keys))).items()
        }
        outcomes: list[CommandResult[Submitted] | Exception] = []
        created: list[tuple[Order, str]] = []
        for command, key in zip(commands, keys, strict=True):
            if key in known:
                order, fingerprint = known[key]
                if fingerprint != command.fingerprint:
                    outcomes.append(
                        DuplicateClientOrderId(
                            f"client_order_id {key[1]!r} was used for a different order",
                            field="client_order_id",
                        )
                    )
                else:
                    outcomes.append(CommandResult(Submitted(order, created=False)))
                continue
            order, changes = _accept(command.order_id, command.spec, now, command.routed)
            known[key] = (order, command.fingerprint)
            created.append((order, command.fingerprint))
            outcomes.append(
                CommandResult(
                    Submitted(order, created=True),
                    audit=[*command.audit, *(entry for entry, _ in changes)],
                    events=[event for _, event in changes],
                )
            )
        if created:
            repo.ensure_accounts(connection, [o.spec.account for o, _ in created], now)
            repo.insert_orders(connection, created)
            by_id = {c.order_id: c for c in commands}
            for order, _ in created:
                arrival = by_id[order.id].arrival
                if arrival is not None:
                    benchmarks.insert_benchmark(connection, _benchmark(order, arrival))
        return outcomes


def _screening_entry(decision: ScreeningDecision) -> AuditEntry:
    return AuditEntry("compliance.screened", decision.facts.account, decision.payload())


def _benchmark(order: Order, arrival: ArrivalPrice) -> ExecutionBenchmark:
    spec = order.spec
    return ExecutionBenchmark(
        order.id,
        "strategy" if spec.is_strategy else "order",
        spec.instrument or "strategy",
        spec.side,
        arrival,
    )


def _accept(
    order_id: str, spec: OrderSpec, now: datetime, routed: bool = False
) -> tuple[Order, list[tuple[AuditEntry, dict[str, object]]]]:
    order = Order.new(order_id, spec, now).accept(now)
    changes = [_change(order, "order.accepted")]
    if not routed and spec.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
        # No liquidity source is attached to this service yet: an immediate order finds
        # nothing to trade against, so it ends at once rather than resting.
        order = order.cancel(now, reason="no liquidity to execute against")
        changes.append(_change(order, "order.cancelled"))
    return order, changes


def _advance(
    connection: Connection, current: Order, quantity: Decimal, price: Decimal, now: datetime
) -> CommandResult[Order]:
    """A strategy order advanced by `quantity` units at `price` (its fills apart)."""
    advanced = current.fill(quantity, price, now)
    repo.update_order(connection, advanced, previous_version=current.version)
    kind = "order.filled" if advanced.status is OrderStatus.FILLED else "order.partially_filled"
    entry, event = _change(advanced, kind)
    return CommandResult(advanced, [entry], [event])


class OrderService:
    def __init__(
        self,
        writer: GroupCommitter,
        read_engine: Engine,
        catalogue: InstrumentCatalogue,
        clock: Clock,
        pre_trade: PreTradeValidator | None = None,
    ) -> None:
        self._writer = writer
        self._read_engine = read_engine
        self.catalogue = catalogue
        self._clock = clock
        self.pre_trade = pre_trade
        self.book: InternalBook | None = None  # directly routed orders trade there when set
        self.compliance: ComplianceScreen | None = None  # screens every submit when set
        # takes the other side of signed orders' exchange fills on chain when set
        self.inventory: OperatorInventory | None = None
        # hashes of every (account, client_order_id) stored, once loaded: a new order whose
        # key is not here needs no read before it goes to the book (a hash seen here only
        # means "read to be sure"); None: read every time
        self._client_keys: set[int] | None = None
        # a signed order may not take a nonce another order of the wallet holds
        self.nonces = SignedNonces(read_engine)

    # -- writes ---------------------------------------------------------------------------

    async def load_client_keys(self) -> int:
        """Load the idempotency filter (at start, before orders are taken)."""

        def read() -> set[int]:
            with self._read_engine.connect() as connection:
                return {hash(key) for key in repo.client_order_keys(connection)}

        self._client_keys = await asyncio.to_thread(read)
        await self.nonces.load()
        return len(self._client_keys)

    def validate(self, spec: OrderSpec) -> None:
        """The catalogue's rules (tick, lot, legs, expiry): raise InvalidOrder or return."""
        validate(spec, self.catalogue, self._clock.now())

    async def submit(
        self, spec: OrderSpec, *, routed: bool = False, arrival: ArrivalPrice | None = None
    ) -> Submitted:
        """Create the order once per (account, client_order_id); a retry returns it again.

        `routed`: an immediate order the smart router executes after the commit (so it is not
        cancelled at once for want of liquidity here). `arrival`: the market now, stored with
        the order as its TCA benchmark.

        Traced as `order.submit` (with `risk.pre_trade`, `compliance.screen` and
        `book.place` or `order.store` inside); the new order's id joins the request's log
        context, and its span context is kept for the span of the batch that settles it."""
        with tracing.start_span("order.submit") as span:
            span.set_attribute("order.account", spec.account)
            span.set_attribute("order.client_order_id", spec.client_order_id)
            span.set_attribute("order.routed", routed)
            submitted = await self._submit(spec, routed, arrival)
            order_id = submitted.order.id
            span.set_attribute("order.id", order_id)
            span.set_attribute("order.created", submitted.created)
            span.set_attribute("order.status", submitted.order.status.value)
            if submitted.created:  # a retry's request did not make the order
                tracing.remember_order(order_id)
            bind_request_ids(order_id=order_id)
            return submitted

    async def _submit(
        self, spec: OrderSpec, routed: bool, arrival: ArrivalPrice | None
    ) -> Submitted:
        validate(spec, self.catalogue, self._clock.now())
        screened: tuple[AuditEntry, ...] = ()
        if self.compliance is not None:
            decision = await self._screen(spec)
            if not decision.allowed:
                await self._record_refusal(decision)
                raise ComplianceRefused(decision)
            screened = (_screening_entry(decision),)
        fingerprint = request_hash(spec) + (":smart" if routed else "")
        claimed: list[NonceKey] = []
        result: Submitted | None = None
        try:
            if spec.signed is not None:
                # in a batch's order: a retry, or another body under a stored
                # client_order_id, is answered as such; then the nonce; then the limits
                keys = self._client_keys
                if keys is None or hash((spec.account, spec.client_order_id)) in keys:
                    result = await self._earlier(spec, fingerprint)
                if result is not None:
                    return result
                [held], claimed = await self.nonces.claim([spec])
                if held is not None:
                    raise held
            result = await self._admit_and_place(spec, fingerprint, routed, arrival, screened)
            return result
        finally:
            if claimed:
                self.nonces.release(claimed, [spec] if result is not None else [])

    async def _admit_and_place(
        self,
        spec: OrderSpec,
        fingerprint: str,
        routed: bool,
        arrival: ArrivalPrice | None,
        screened: tuple[AuditEntry, ...],
    ) -> Submitted:
        reserved = False
        if self.pre_trade is not None:
            try:
                with tracing.start_span("risk.pre_trade") as risk_span:
                    reserved = self.pre_trade.admit(spec)
                    risk_span.set_attribute("risk.reserved", reserved)
            except PreTradeRejected:
                # A retry of an order accepted earlier gets that order back, not a rejection
                # by limits that it already counts towards.
                earlier = await self._earlier(spec, fingerprint)
                if earlier is None:
                    raise
                return earlier
        try:
            if not routed and self.book is not None and self.book.takes(spec):
                result = await self._place_on_book(spec, fingerprint, screened)
            else:
                command = SubmitOrder(spec, fingerprint, new_id("ord"), routed, arrival, screened)
                with tracing.start_span("order.store"):
                    try:
                        result = await self._writer.execute(command)
                    except IntegrityError:
                        # Another replica inserted the same client_order_id between our
                        # read and write.
                        result = await self._writer.execute(command)
        except BaseException as error:
            if reserved and self.pre_trade is not None:
                self.pre_trade.ledger.release(spec)
            if isinstance(error, ComplianceRefused):  # listed while on its way to the book
                await self._record_refusal(error.decision)
            raise
        if reserved and not result.created and self.pre_trade is not None:
            self.pre_trade.ledger.release(spec)
        return result

    async def submit_many(self, specs: Sequence[OrderSpec]) -> list[Submitted | DomainError]:
        """Submit directly routed orders as one batch, each with its own outcome, exactly as
        if they were submitted one by one in this order (same book, same audit trail), but
        with one read for the retries, one hold of the book's lock and one group commit.

        Orders the internal book does not take (stops, or no book) go through `submit` one
        at a time, in their place in the sequence. Limits count the batch: each admitted
        order is reserved before the next is checked. Traced as `order.submit_many`."""
        with tracing.start_span("order.submit_many") as span:
            span.set_attribute("orders.count", len(specs))
            outcomes = await self._submit_many(specs)
            if span.is_recording():
                ids = [o.order.id for o in outcomes if isinstance(o, Submitted)]
                span.set_attribute("order.ids", ids)
            return outcomes

    async def _submit_many(self, specs: Sequence[OrderSpec]) -> list[Submitted | DomainError]:
        outcomes: list[Submitted | DomainError | None] = [None] * len(specs)
        run: list[int] = []  # a run of consecutive book orders, placed together
        in_run: set[tuple[str, str]] = set()
        stored_before = await self._stored_keys(specs)
        for index, spec in enumerate(specs):
            if self.book is not None and self.book.takes(spec):
                key = (spec.account, spec.client_order_id)
                if key in in_run and key not in stored_before:
                    # a new key sent again: the run before it commits first, so this one
                    # finds that order (the same request, or a conflict) or, if it was
                    # refused, nothing, exactly as it would one by one
                    await self._submit_run(specs, run, outcomes)
                    run, in_run = [], set()
                run.append(index)
                in_run.add(key)
                continue
            await self._submit_run(specs, run, outcomes)
            run, in_run = [], set()
            try:
                outcomes[index] = await self.submit(spec)
            except DomainError as error:
                outcomes[index] = error
        await self._submit_run(specs, run, outcomes)
        assert all(outcome is not None for outcome in outcomes)
        return outcomes  # type: ignore[return-value]

    async def _submit_run(
        self,
        specs: Sequence[OrderSpec],
        run: list[int],
        outcomes: list[Submitted | DomainError | None],
    ) -> None:
        if not run:
            return
        assert self.book is not None
        now = self._clock.now()
        screened: dict[int, tuple[AuditEntry, ...]] = {}
        for index in run:
            spec = specs[index]
            try:
                validate(spec, self.catalogue, now)
                screened[index] = ()
                if self.compliance is not None:
                    decision = await self._screen(spec)
                    if not decision.allowed:
                        await self._record_refusal(decision)
                        raise ComplianceRefused(decision)
                    screened[index] = (_screening_entry(decision),)
            except DomainError as error:
                outcomes[index] = error
        # retries: one read for every key the filter does not rule out
        keys = self._client_keys
        maybe = [
            (specs[i].account, specs[i].client_order_id)
            for i in screened
            if keys is None or hash((specs[i].account, specs[i].client_order_id)) in keys
        ]
        stored = await self._stored_by_keys(maybe) if maybe else {}
        fresh: list[tuple[int, str]] = []  # (index, fingerprint); each key once in a run
        for index in screened:
            spec = specs[index]
            key = (spec.account, spec.client_order_id)
            fingerprint = request_hash(spec)
            try:
                earlier = stored.get(key)
                if earlier is not None:
                    outcomes[index] = self._same_request(spec, fingerprint, earlier)
                    continue
                fresh.append((index, fingerprint))
            except DomainError as error:
                outcomes[index] = error
        # each signed order's nonce, claimed until the run is stored
        held, claimed = await self.nonces.claim([specs[i] for i, _ in fresh])
        for (index, _), refusal in zip(fresh, held, strict=True):
            if refusal is not None:
                outcomes[index] = refusal
        fresh = [entry for entry, refusal in zip(fresh, held, strict=True) if refusal is None]
        try:
            await self._place_run(specs, fresh, screened, outcomes)
        finally:
            self.nonces.release(
                claimed, [specs[i] for i, _ in fresh if isinstance(outcomes[i], Submitted)]
            )

    async def _place_run(
        self,
        specs: Sequence[OrderSpec],
        fresh: list[tuple[int, str]],
        screened: dict[int, tuple[AuditEntry, ...]],
        outcomes: list[Submitted | DomainError | None],
    ) -> None:
        assert self.book is not None
        keys = self._client_keys
        reserved: set[int] = set()  # positions in `fresh` whose limits were reserved
        ours: dict[str, tuple[str, str]] = {}  # order id -> (account, client id), this batch

        def admit(position: int, spec: OrderSpec) -> None:
            if self.pre_trade is None:
                return
            with tracing.start_span("risk.pre_trade") as span:
                if self.pre_trade.admit(spec):
                    reserved.add(position)
                span.set_attribute("risk.reserved", position in reserved)

        def placed(spec: OrderSpec, order_id: str, events: list[Event]) -> None:
            ours[order_id] = (spec.account, spec.client_order_id)
            if self.pre_trade is not None:  # what left the book stops counting at once
                _drop_gone(self.pre_trade.ledger, spec.account, events, ours)

        with tracing.start_span("book.place") as span:
            span.set_attribute("orders.count", len(fresh))
            results = await self.book.place_many(
                [(specs[i], fingerprint, screened[i]) for i, fingerprint in fresh], admit, placed
            )
        for position, ((index, _), result) in enumerate(zip(fresh, results, strict=True)):
            spec = specs[index]
            if isinstance(result, Order):
                outcomes[index] = Submitted(result, created=True)
                tracing.remember_order(result.id)
                if keys is not None:
                    keys.add(hash((spec.account, spec.client_order_id)))
                continue
            if position in reserved and self.pre_trade is not None:
                self.pre_trade.ledger.release(spec)
            if isinstance(result, ComplianceRefused):  # listed while on its way to the book
                await self._record_refusal(result.decision)
            if isinstance(result, IntegrityError):
                # raced with the same request outside this batch: the stored one stands
                again = await self._earlier(spec, request_hash(spec))
                outcomes[index] = again if again is not None else DomainError(str(result))
            elif isinstance(result, DomainError):
                outcomes[index] = result
            else:
                raise result

    async def mass_quote(
        self, account: str, instruments: frozenset[str], levels: Sequence[QuoteLevel]
    ) -> tuple[list[QuoteOutcome], list[Order]]:
        """Replace the account's quotes on `instruments` with `levels` in one step (see
        `InternalBook.replace_quotes`); each new quote is validated, screened and admitted
        by the pre-trade limits as a single order is, the whole quote counting together."""
        if self.book is None:
            raise DomainError("mass quotes need the internal book", code="no_internal_book")
        now = self._clock.now()
        for level in levels:
            if level.instrument not in instruments:
                raise InvalidOrder(
                    f"{level.instrument} is not one of the quote's instruments", field="quotes"
                )
            validate(level.spec(account), self.catalogue, now)
        if self.compliance is not None and levels:
            decision = await self.compliance.screen(levels[0].spec(account))
            if not decision.allowed:
                await self._record_refusal(decision)
                raise ComplianceRefused(decision)
        # a new signed level's nonce may not be another order's; a level the book keeps is
        # its resting quote's own
        book = self.book
        kept = {level for level in levels if book.keeps_quote(account, level)}
        new_signed = [level for level in levels if level.signed is not None and level not in kept]
        held, claimed = await self.nonces.claim(
            [level.spec(account) for level in new_signed], retries=False
        )
        refused = [
            QuoteOutcome(level, "refused", None, refusal)
            for level, refusal in zip(new_signed, held, strict=True)
            if refusal is not None
        ]
        if refused:
            gone = {outcome.level for outcome in refused}
            levels = [level for level in levels if level not in gone]
        try:
            outcomes, cancelled = await self._replace_quotes(account, instruments, levels, kept)
        finally:
            self.nonces.release(claimed, [])
        # new signed orders, resting or refused by post-only when placed: stored either way
        stored = [o.order.spec for o in outcomes if o.order is not None and o.action != "amended"]
        self.nonces.release((), stored)
        return [*refused, *outcomes], cancelled

    async def _replace_quotes(
        self,
        account: str,
        instruments: frozenset[str],
        levels: Sequence[QuoteLevel],
        unclaimed: set[QuoteLevel],
    ) -> tuple[list[QuoteOutcome], list[Order]]:
        assert self.book is not None
        reserved: dict[QuoteLevel, OrderSpec] = {}

        def admit(spec: OrderSpec) -> None:
            if self.pre_trade is not None and self.pre_trade.admit(spec):
                assert spec.instrument is not None and spec.price is not None
                level = QuoteLevel(
                    spec.instrument, spec.side, spec.price, spec.quantity, spec.signed
                )
                reserved[level] = spec

        def withdrawn(account: str, client_order_id: str) -> None:
            # its cancel is queued; the ledger would hear of it only once committed
            if self.pre_trade is not None:
                self.pre_trade.ledger.account(account).drop(client_order_id)

        outcomes, cancelled = await self.book.replace_quotes(
            account, instruments, levels, admit, withdrawn, unclaimed
        )
        for outcome in outcomes:
            spec = reserved.get(outcome.level)
            if outcome.order is None and spec is not None and self.pre_trade is not None:
                self.pre_trade.ledger.release(spec)  # refused before it was placed
        return outcomes, cancelled

    def _same_request(
        self, spec: OrderSpec, fingerprint: str, stored: repo.StoredOrder
    ) -> Submitted:
        if stored.request_hash != fingerprint:
            raise DuplicateClientOrderId(
                f"client_order_id {spec.client_order_id!r} was used for a different order",
                field="client_order_id",
            )
        return Submitted(stored.order, created=False)

    async def is_stored(self, account: str, client_order_id: str) -> bool:
        """Whether an order with this (account, client_order_id) was stored."""
        key = (account, client_order_id)
        if self._client_keys is not None and hash(key) not in self._client_keys:
            return False
        return key in await self._stored_by_keys([key])

    async def _stored_keys(self, specs: Sequence[OrderSpec]) -> set[tuple[str, str]]:
        """The keys among `specs` stored already (one read, only for keys the idempotency
        filter does not rule out)."""
        keys = self._client_keys
        maybe = list(
            {
                (s.account, s.client_order_id)
                for s in specs
                if keys is None or hash((s.account, s.client_order_id)) in keys
            }
        )
        return set(await self._stored_by_keys(maybe)) if maybe else set()

    async def _stored_by_keys(
        self, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], repo.StoredOrder]:
        def read() -> dict[tuple[str, str], repo.StoredOrder]:
            with self._read_engine.connect() as connection:
                return repo.get_by_client_order_ids(connection, keys)

        return await asyncio.to_thread(read)

    async def _place_on_book(
        self, spec: OrderSpec, fingerprint: str, audit: tuple[AuditEntry, ...] = ()
    ) -> Submitted:
        assert self.book is not None
        keys = self._client_keys
        key = hash((spec.account, spec.client_order_id))
        if keys is None or key in keys:
            earlier = await self._earlier(spec, fingerprint)
            if earlier is not None:  # a retry: the order as it is, not a second placement
                return earlier
        for attempt in range(3):
            try:
                with tracing.start_span("book.place") as span:
                    placed = await self.book.place(spec, fingerprint, audit)
                    span.set_attribute("order.id", placed.id)
                    span.set_attribute("order.status", placed.status.value)
                if keys is not None:
                    keys.add(key)
                return Submitted(placed, created=True)
            except IntegrityError:
                # The same request raced itself (the other one was stored), or another
                # replica took the same audit sequence number: the book rebuilds from the
                # store before its next command either way.
                again = await self._earlier(spec, fingerprint)
                if again is not None:
                    return again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _screen(self, spec: OrderSpec) -> ScreeningDecision:
        assert self.compliance is not None
        with tracing.start_span("compliance.screen") as span:
            decision = await self.compliance.screen(spec)
            span.set_attribute("compliance.allowed", decision.allowed)
            return decision

    async def _record_refusal(self, decision: ScreeningDecision) -> None:
        """A refused order leaves no order behind: its decision is a record of its own."""

        def command(connection: Connection, now: datetime) -> CommandResult[None]:
            return CommandResult(None, [_screening_entry(decision)])

        await self._writer.execute(command)

    async def _earlier(self, spec: OrderSpec, fingerprint: str) -> Submitted | None:
        def read() -> repo.StoredOrder | None:
            with self._read_engine.connect() as connection:
                return repo.get_by_client_order_id(connection, spec.account, spec.client_order_id)

        stored = await asyncio.to_thread(read)
        if stored is None:
            return None
        return self._same_request(spec, fingerprint, stored)

    async def amend(
        self,
        order_id: str,
        *,
        price: Decimal | None,
        quantity: Decimal | None,
        expected_version: int | None,
    ) -> Order:
        if self.book is not None and self.book.holds(order_id):
            current = await self.get(order_id)
            if expected_version is not None and current.version != expected_version:
                raise VersionConflict(
                    f"order {order_id} is at version {current.version}, not {expected_version}",
                    field="expected_version",
                )
            return await self.book.amend(current, self._clock.now(), price=price, quantity=quantity)

        def command(connection: Connection, now: datetime) -> CommandResult[Order]:
            current = self._load_for_update(connection, order_id, expected_version)
            amended = current.amend(now, self.catalogue, price=price, quantity=quantity)
            repo.update_order(connection, amended, previous_version=current.version)
            entry, event = _change(amended, "order.amended")
            return CommandResult(amended, [entry], [event])

        order: Order = await self._writer.execute(command)
        return order

    async def cancel(
        self,
        order_id: str,
        *,
        expected_version: int | None = None,
        reason: str = "cancelled by client",
    ) -> Order:
        if self.book is not None and self.book.holds(order_id):
            if expected_version is not None:
                current = await self.get(order_id)
                if current.version != expected_version:
                    raise VersionConflict(
                        f"order {order_id} is at version {current.version}, not {expected_version}",
                        field="expected_version",
                    )
            return await self.book.cancel(order_id, reason=reason)

        def command(connection: Connection, now: datetime) -> CommandResult[Order]:
            current = self._load_for_update(connection, order_id, expected_version)
            cancelled = current.cancel(now, reason=reason)
            repo.update_order(connection, cancelled, previous_version=current.version)
            entry, event = _change(cancelled, "order.cancelled")
            return CommandResult(cancelled, [entry], [event])

        order: Order = await self._writer.execute(command)
        return order

    async def record_fill(
        self,
        order_id: str,
        *,
        quantity: Decimal,
        price: Decimal,
        fee: Decimal,
        venue: str,
        gas: Decimal = Decimal(0),
    ) -> tuple[Order, Fill]:
        """Record an execution and queue it for settlement in the same transaction."""

        def command(connection: Connection, now: datetime) -> CommandResult[tuple[Order, Fill]]:
            return self._fill_changes(connection, now, order_id, quantity, price, fee, venue, gas)

        result: tuple[Order, Fill] = await self._writer.execute(command)
        return result

    def _fill_changes(
        self,
        connection: Connection,
        now: datetime,
        order_id: str,
        quantity: Decimal,
        price: Decimal,
        fee: Decimal,
        venue: str,
        gas: Decimal,
        *,
        trade_id: str | None = None,
        in_flight: bool = False,
    ) -> CommandResult[tuple[Order, Fill]]:
        current = self._load_for_update(connection, order_id, None)
        filled = current.fill(quantity, price, now, in_flight=in_flight)
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
            gas=gas,
            trade_id=trade_id,
        )
        repo.update_order(connection, filled, previous_version=current.version)
        repo.insert_fill(connection, fill)
        kind = "order.filled" if filled.status is OrderStatus.FILLED else "order.partially_filled"
        entry, event = _change(filled, kind)
        facts = fill_facts(fill)
        return CommandResult(
            (filled, fill),
            [entry, AuditEntry("fill.recorded", fill.id, facts)],
            [event, {"type": "fill.recorded", "account": fill.account, "fill": facts}],
        )

    async def record_pool_fill(
        self,
        order_id: str,
        swap: PoolSwap,
        *,
        quantity: Decimal,
        price: Decimal,
        venue: str,
        gas: Decimal = Decimal(0),
    ) -> tuple[Order, Fill]:
        """A pool leg that settles inside the settlement batch: the fill and the exact swap
        behind it in one transaction. The pool is the counterparty, so the fill is a trade of
        its own and enters the outbox at once; nothing was sent anywhere, so a crash before
        the commit leaves no trace and none after it loses the swap."""

        def command(connection: Connection, now: datetime) -> CommandResult[tuple[Order, Fill]]:
            changes = self._fill_changes(
                connection,
                now,
                order_id,
                quantity,
                price,
                Decimal(0),
                venue,
                gas,
                trade_id=new_id("trd"),
            )
            settlement_store.insert_pool_swap(connection, changes.value[1].id, swap)
            return changes

        result: tuple[Order, Fill] = await self._writer.execute(command)
        return result

    async def record_strategy_progress(
        self, order_id: str, *, quantity: Decimal, net_price: Decimal
    ) -> Order:
        """Advance a legged strategy by `quantity` units completed at `net_price` each. Its
        legs were executed as orders of their own whose fills are the executions, so no fill
        is recorded here (it would count the legs twice)."""

        def command(connection: Connection, now: datetime) -> CommandResult[Order]:
            current = self._load_for_update(connection, order_id, None)
            return _advance(connection, current, quantity, net_price, now)

        order: Order = await self._writer.execute(command)
        return order

    async def create_venue_child(self, child: VenueChild) -> None:
        """Store a venue child before it is sent (its later states: `record_child_report`,
        `close_venue_child`)."""

        def command(connection: Connection, now: datetime) -> CommandResult[None]:
            venue_orders.insert_child(connection, child, now)
            return CommandResult(
                None,
                [AuditEntry("venue_order.created", child.client_order_id, child_facts(child))],
            )

        await self._writer.execute(command)

    async def record_child_report(
        self,
        client_order_id: str,
        report: ChildReport,
        *,
        gas: Decimal = Decimal(0),
        exchange: bool = False,
    ) -> tuple[VenueChild, Order]:
        """Fold a venue's report of a child into the child as stored, and record what it
        adds (a fill, if any) with the child's new totals in one transaction: a report seen
        twice, or by two paths at once (the sender's late answer and the reconciler's
        lookup), records its fill once. The fill counts even if the order was cancelled
        since the child went out (the venue executed it). `gas` is charged to the child's
        first fill.

        `exchange`: the child is on a centralized exchange. A signed order's exchange fill
        then becomes a trade with the operator's inventory (`_inventory_trade`), in the same
        transaction: the exchange execution hedges it."""

        def command(
            connection: Connection, now: datetime
        ) -> CommandResult[tuple[VenueChild, Order]]:
            stored = venue_orders.get_child(connection, client_order_id)
            if stored is None:
                raise OrderNotFound(f"venue child {client_order_id} not found", field="id")
            step = progress(
                stored,
                venue_order_id=report.venue_order_id,
                filled=report.filled,
                average_price=report.average_price,
                fee=report.fee,
                final=report.final,
                reason=report.reason,
            )
            child = step.child
            current = repo.get_order(connection, child.order_id)
            assert current is not None
            if child == stored and step.quantity == 0:
                return CommandResult((stored, current.order))
            venue_orders.update_child(connection, child, now)
            entry = AuditEntry("venue_order.updated", child.client_order_id, child_facts(child))
            if step.quantity <= 0 or step.price is None:
                return CommandResult((child, current.order), [entry])
            first_gas = gas if stored.filled == 0 else Decimal(0)
            if exchange and self.inventory is not None and current.order.spec.signed is not None:
                changes = self._inventory_trade(
                    connection, now, current.order, step, step.fee, first_gas
                )
                return CommandResult(
                    (child, changes.value), [entry, *changes.audit], changes.events
                )
            fill_changes = self._fill_changes(
                connection,
                now,
                child.order_id,
                step.quantity,
                step.price,
                step.fee,
                child.venue,
                first_gas,
                in_flight=True,
            )
            order, _ = fill_changes.value
            return CommandResult((child, order), [entry, *fill_changes.audit], fill_changes.events)

        result: tuple[VenueChild, Order] = await self._writer.execute(command)
        return result

    async def close_venue_child(self, client_order_id: str, reason: str) -> VenueChild:
        """Mark a child done with no further execution (never sent, not known, refused),
        on its stored totals."""

        def command(connection: Connection, now: datetime) -> CommandResult[VenueChild]:
            stored = venue_orders.get_child(connection, client_order_id)
            if stored is None:
                raise OrderNotFound(f"venue child {client_order_id} not found", field="id")
            closed = replace(stored, status=VenueChildStatus.DONE, reason=printable(reason, 200))
            venue_orders.update_child(connection, closed, now)
            return CommandResult(
                closed, [AuditEntry("venue_order.updated", client_order_id, child_facts(closed))]
            )

        child: VenueChild = await self._writer.execute(command)
        return child

    def _inventory_trade(
        self,
        connection: Connection,
        now: datetime,
        order: Order,
        step: ChildProgress,
        fee_in_quote: Decimal,
        gas: Decimal,
    ) -> CommandResult[Order]:
        """A signed order's exchange fill as a trade with the inventory wallet: the trader's
        fill at the inventory price (the exchange's average, fee and spread; never beyond the
        signed limit) and the inventory's signed counter-order filled opposite, one trade id,
        so both enter the settlement outbox together. Sized by what the exchange filled."""
        inventory = self.inventory
        spec = order.spec
        assert inventory is not None and spec.instrument is not None and spec.price is not None
        assert step.price is not None
        price = inventory.price(
            spec.instrument,
            spec.side,
            average=step.price,
            fee=fee_in_quote,
            quantity=step.quantity,
            limit=spec.price,
        )
        trade_id = new_id("trd")
        venue = step.child.venue
        trader = self._fill_changes(
            connection,
            now,
            order.id,
            step.quantity,
            price,
            Decimal(0),  # the fee is in the price
            venue,
            gas,
            trade_id=trade_id,
            in_flight=True,
        )
        counter = self._counter_order(
            connection,
            now,
            spec.instrument,
            spec.side.opposite,
            step.quantity,
            price,
            venue,
            trade_id,
        )
        return CommandResult(
            trader.value[0],
            [*trader.audit, *counter.audit],
            [*trader.events, *counter.events],
        )

    def _counter_order(
        self,
        connection: Connection,
        now: datetime,
        instrument: str,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        venue: str,
        trade_id: str,
    ) -> CommandResult[None]:
        """The inventory's signed counter-order for one trade (its `side`), stored filled."""
        inventory = self.inventory
        assert inventory is not None
        counter_spec = inventory.counter_order(
            instrument, side, quantity, price, inventory.next_nonce(connection), now
        )
        counter = Order.new(new_id("ord"), counter_spec, now).accept(now)
        repo.ensure_accounts(connection, [counter_spec.account], now)
        repo.insert_orders(connection, [(counter, request_hash(counter_spec))])
        accepted = _change(counter, "order.accepted")
        fill = self._fill_changes(
            connection,
            now,
            counter.id,
            quantity,
            price,
            Decimal(0),
            venue,
            Decimal(0),
            trade_id=trade_id,
        )
        return CommandResult(None, [accepted[0], *fill.audit], [accepted[1], *fill.events])

    async def record_strategy_trade(
        self, order_id: str, units: Decimal, prices: Sequence[Decimal], *, venue: str
    ) -> Order:
        """A signed strategy's completed units, executed leg by leg on the exchanges by the
        inventory's hedges, traded with the inventory on chain: the strategy advances by
        `units` with one fill per leg at `prices` (the legs' order), and the inventory's
        signed counter-order of each leg is filled opposite, all one trade id, so every leg
        settles in one transaction."""

        def command(connection: Connection, now: datetime) -> CommandResult[Order]:
            current = self._load_for_update(connection, order_id, None)
            spec = current.spec
            flip = spec.side is Side.SELL
            net = sum(
                (
                    (price if leg.side is Side.BUY else -price) * leg.ratio
                    for leg, price in zip(spec.legs, prices, strict=True)
                ),
                Decimal(0),
            )
            advanced = _advance(connection, current, units, net, now)
            audit: list[AuditEntry] = list(advanced.audit)
            events: list[dict[str, object]] = list(advanced.events)
            trade_id = new_id("trd")
            for leg, price in zip(spec.legs, prices, strict=True):
                side = leg.side.opposite if flip else leg.side  # the trader's side of it
                quantity = units * leg.ratio
                fill = Fill(
                    id=new_id("fil"),
                    order_id=current.id,
                    account=spec.account,
                    instrument=leg.instrument,
                    side=side,
                    quantity=quantity,
                    price=price,
                    fee=Decimal(0),
                    venue=venue,
                    executed_at=now,
                    trade_id=trade_id,
                )
                repo.insert_fill(connection, fill)
                facts = fill_facts(fill)
                audit.append(AuditEntry("fill.recorded", fill.id, facts))
                events.append({"type": "fill.recorded", "account": fill.account, "fill": facts})
                counter = self._counter_order(
                    connection,
                    now,
                    leg.instrument,
                    side.opposite,
                    quantity,
                    price,
                    venue,
                    trade_id,
                )
                audit += counter.audit
                events += counter.events
            return CommandResult(advanced.value, audit, events)

        order: Order = await self._writer.execute(command)
        return order

    async def expire_due(self, limit: int = 500) -> int:
        """Expire open good-till-date orders whose time has passed; returns how many."""
        expired_on_book = 0
        if self.book is not None:
            book = self.book

            def due() -> list[str]:
                with self._read_engine.connect() as connection:
                    now = self._clock.now()
                    return [s.order.id for s in repo.open_orders_due(connection, now, limit)]

            for order_id in await asyncio.to_thread(due):
                if book.holds(order_id):
                    with contextlib.suppress(DomainError):
                        await book.cancel(order_id, expired=True)
                        expired_on_book += 1

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
        return count + expired_on_book

    async def cancel_stranded_immediate(self) -> int:
        """Cancel immediate orders left open by a stop in the middle of routing them (only a
        routed ioc/fok order is ever open): its fills so far stand, the rest is cancelled."""

        def command(connection: Connection, now: datetime) -> CommandResult[int]:
            entries, events = [], []
            waiting = {c.order_id for c in venue_orders.unfinished_children(connection)}
            for stored in repo.open_immediate_orders(connection):
                if stored.order.id in waiting:  # a venue child's outcome is still to be read
                    continue
                cancelled = stored.order.cancel(now, reason="gateway stopped while routing it")
                repo.update_order(connection, cancelled, previous_version=stored.order.version)
                entry, event = _change(cancelled, "order.cancelled")
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


def _drop_gone(
    ledger: ExposureLedger, account: str, events: list[Event], ours: dict[str, tuple[str, str]]
) -> None:
    """Drop from the ledger's working orders those `events` took off the book (filled, or
    cancelled: an IOC's rest, a self-trade), before the write commits; the committed
    events then fold the same final states in again."""
    gone: list[tuple[str, str]] = []
    for event in events:
        if isinstance(event, Trade):
            if not event.maker_remaining:
                gone.append((event.maker_account, event.maker_order_id))
            if not event.taker_remaining:
                gone.append((event.taker_account, event.taker_order_id))
        elif isinstance(event, OrderCancelled):
            gone.append((ours.get(event.order_id, (account, ""))[0], event.order_id))
    for owner, order_id in gone:
        exposure = ledger.peek(owner)
        if exposure is None:
            continue
        if order_id in ours:
            exposure.drop(ours[order_id][1])
            continue
        key = next((k for k, w in exposure.working.items() if w.order_id == order_id), None)
        if key is not None:
            exposure.drop(key)
