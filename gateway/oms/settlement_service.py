"""Settling matched fills on chain, exactly once, across crashes and reorgs.

The pieces: the outbox (`store.settlement_repository`: fills written pending with the trade
that made them), the chain side (`settlement.sender.SettlementSender`, which simulates,
bisects, sends, replaces and confirms; `settlement.reconciler.SettlementReconciler`, which
follows the contract's events), and this service between them:

- `send`: the outbox's fills are grouped by trade (the maker's and the taker's fill settle
  together or not at all; both orders must carry their owner's signature), planned into
  batches within the contract's limits, and each batch is **committed first** (the fills are
  taken by a `building` batch whose on-chain id is derived from its own id), then sent. The
  outcome is recorded: a confirmed receipt marks the fills `settled` with tx hash, block and
  log index (and an order `settled` once all its fills are); a group the chain refuses is
  marked `failed` with the revert reason; groups deferred or a batch never sent go back to
  the outbox.
- `heal`: the reconciler's events are the ground truth. A `BatchSettled` for one of our batch
  ids settles that batch's fills from the `Fill` logs of the same transaction, whatever the
  store thought (a crash between the receipt and the write, a resend); a reorg below settled
  fills makes them pending again, still held by their batch, until the chain shows the batch
  again or proves it will not (`resolve`).
- `resolve`: a batch left `building`/`sent`/`reorged` (a crash, a reorg, a timeout) is given
  back to the outbox only when the operator has no transaction pending and the chain (healed
  first) has no `BatchSettled` for it: then nothing can still settle it.

The operator key is used by this service only, one batch at a time, so "no transaction
pending" is exact. The reconciler's cursor is stored in the same transaction as what it read.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from opentelemetry.trace import Span
from sqlalchemy import Connection, Engine
from structlog.contextvars import bound_contextvars
from web3 import Web3

from gateway.chain.onchain_orders import OnchainOrders
from gateway.chain.settlement_abi import quote_amount
from gateway.domain.amm import PoolSwap
from gateway.domain.fills import Fill
from gateway.domain.lifecycle import SettlementStatus
from gateway.domain.orders import Order, Side, TimeInForce
from gateway.oms.event_wait import set_or_timeout
from gateway.oms.group_commit import CommandResult, GroupCommitter
from gateway.oms.ids import new_id
from gateway.oms.order_facts import order_facts
from gateway.settlement.batch_builder import batch_id_from_key, plan_batches
from gateway.settlement.items import (
    OrderSettlement,
    SettlementGroup,
    SettlementItem,
    StrategyLegSettlement,
    StrategySettlement,
    SwapSettlement,
)
from gateway.settlement.reconciler import (
    ChainCursor,
    ReconcileUpdate,
    SettledEvent,
    SettlementReconciler,
)
from gateway.settlement.sender import (
    BatchStatus,
    SenderConfig,
    SendProgress,
    SettlementSender,
    Stage,
)
from gateway.store import order_repository as orders_repo
from gateway.store import settlement_repository as store
from gateway.store.audit_log import AuditEntry
from gateway.telemetry import tracing
from gateway.venues.in_flight_swaps import InFlightSwaps

log = logging.getLogger("gateway.settlement")
CURSOR_NAME = "settlement"
REORGED = "reorged"


@dataclass(frozen=True, slots=True)
class Outcome:
    batches: int = 0
    settled: int = 0
    refused: int = 0
    returned: int = 0


def _event(kind: str, facts: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "settlement": facts}


class SettlementService:
    def __init__(
        self,
        writer: GroupCommitter,
        read_engine: Engine,
        sender: SettlementSender,
        reconciler: SettlementReconciler,
        onchain: OnchainOrders,
        *,
        outbox_limit: int = 256,
        batch_age: float = 0.0,
    ) -> None:
        self._writer = writer
        self._read_engine = read_engine
        self.sender = sender
        self.reconciler = reconciler
        self.onchain = onchain
        self._outbox_limit = outbox_limit
        # a batch leaves when its oldest trade has waited `batch_age` seconds or when
        # `outbox_limit` trades wait, whichever comes first (0: at once, lowest latency)
        self.batch_age = batch_age
        self._lock = asyncio.Lock()
        self.sender.on_progress = self._progress
        self._sent: list[SendProgress] = []
        self._work = asyncio.Event()  # set when matched fills were committed
        self._behind: dict[str, list[str]] = {}  # item id -> the fills it settles
        self._order_of: dict[str, str] = {}  # fill id -> its order's id, of the outbox read
        self.in_flight: InFlightSwaps | None = None  # the pool's, when pool legs settle here

    # -- the whole cycle --------------------------------------------------------------------

    async def run_once(self) -> Outcome:
        """Heal from the chain, give back what cannot settle any more, send the outbox."""
        async with self._lock:
            await self.heal()
            await self.resolve()
            return await self.send()

    def wake(self) -> None:
        """New matched fills are in the outbox: start a cycle now rather than at the next
        interval (batching comes from what accumulates while a batch is on its way)."""
        self._work.set()

    async def run(self, interval: float) -> None:
        while True:
            self._work.clear()
            try:
                await self._gather()
                await self.run_once()
            except Exception:
                log.exception("settlement cycle failed; the next one starts from the store")
            await set_or_timeout(self._work, interval)

    async def _gather(self) -> None:
        """Let a batch fill up: wait until the oldest waiting trade is `batch_age` old,
        unless a full batch of trades already waits."""
        if self.batch_age <= 0:
            return

        def read() -> tuple[datetime | None, int]:
            with self._read_engine.connect() as connection:
                return store.outbox_age(connection, self._outbox_limit)

        oldest, trades = await asyncio.to_thread(read)
        if oldest is None or trades >= self._outbox_limit:
            return
        waited = (self._writer.now() - oldest).total_seconds()
        if waited < self.batch_age:
            await asyncio.sleep(self.batch_age - waited)  # a batching timer, not a sync

    # -- send -------------------------------------------------------------------------------

    def _item(self, fill: Fill, order: Order, swap: PoolSwap | None = None) -> OrderSettlement:
        spec = order.spec
        assert spec.signed is not None and spec.instrument is not None and spec.price is not None
        instrument = self.onchain.catalogue.get(spec.instrument)
        amount = self.onchain.amount(instrument, fill.quantity)
        if swap is None:
            quote = quote_amount(
                amount, self.onchain.price(instrument, fill.price), instrument.base.decimals
            )
        else:  # a pool fill pays or gets exactly what its swap moves (its price is not round)
            quote = swap.amount_in if spec.side is Side.BUY else swap.amount_out
        return OrderSettlement(
            item_id=fill.id,
            wallet=spec.account,
            instrument=self.onchain.preimage(spec.instrument),
            is_buy=spec.side is Side.BUY,
            amount=self.onchain.amount(instrument, spec.quantity),
            limit_price=self.onchain.price(instrument, spec.price),
            nonce=spec.signed.nonce,
            deadline=spec.signed.deadline,
            signature=spec.signed.signature,
            fill=amount,
            quote=quote,
        )

    def _strategy_item(self, order: Order, fills: list[Fill], trade_id: str) -> StrategySettlement:
        """One strategy's part of a trade: every leg's fill, in the legs' signed order."""
        spec = order.spec
        assert spec.signed is not None
        signed = self.onchain.strategy(spec, spec.signed)
        by_instrument = {f.instrument: f for f in fills}
        legs = []
        units: Decimal | None = None
        for leg, signed_leg in zip(spec.legs, signed.legs, strict=True):
            fill = by_instrument[leg.instrument]
            instrument = self.onchain.catalogue.get(leg.instrument)
            amount = self.onchain.amount(instrument, fill.quantity)
            price = self.onchain.price(instrument, fill.price)
            legs.append(
                StrategyLegSettlement(
                    self.onchain.preimage(leg.instrument),
                    signed_leg.is_buy,
                    leg.ratio,
                    quote_amount(amount, price, instrument.base.decimals),
                )
            )
            units = fill.quantity / leg.ratio
        assert units is not None
        first = self.onchain.catalogue.get(spec.legs[0].instrument)
        return StrategySettlement(
            item_id=f"{order.id}:{trade_id}",
            wallet=spec.account,
            legs=tuple(legs),
            amount=signed.amount,
            limit_net_price=signed.limit_net_price,
            nonce=signed.nonce,
            deadline=signed.deadline,
            signature=spec.signed.signature,
            fill=self.onchain.amount(first, units),
        )

    def _groups(
        self, pending: Sequence[tuple[Fill, Order]], swaps: Mapping[str, PoolSwap]
    ) -> tuple[list[SettlementGroup], list[str], dict[str, list[str]]]:
        """Whole trades whose orders are all signed (a strategy's legs as one item; a pool
        fill with its swap); the fill ids that can never settle; and the fills behind each
        item."""
        by_trade: dict[str, list[tuple[Fill, Order]]] = defaultdict(list)
        for fill, order in pending:
            assert fill.trade_id is not None
            by_trade[fill.trade_id].append((fill, order))
        groups: list[SettlementGroup] = []
        unsettleable: list[str] = []
        behind: dict[str, list[str]] = {}
        for trade_id, sides in by_trade.items():
            if any(order.spec.signed is None for _, order in sides):
                unsettleable.extend(fill.id for fill, _ in sides)
                continue
            items: list[SettlementItem] = []
            strategies: dict[str, tuple[Order, list[Fill]]] = {}
            for fill, order in sides:
                if order.spec.is_strategy:
                    strategies.setdefault(order.id, (order, []))[1].append(fill)
                else:
                    swap = swaps.get(fill.id)
                    items.append(self._item(fill, order, swap))
                    behind[fill.id] = [fill.id]
                    if swap is not None:
                        item_id = f"swap:{fill.id}"
                        items.append(
                            SwapSettlement(
                                item_id, swap.pair, swap.token_in, swap.amount_in, swap.amount_out
                            )
                        )
                        behind[item_id] = []  # its fill is the order item's
            for order, fills in strategies.values():
                item = self._strategy_item(order, fills, trade_id)
                items.append(item)
                behind[item.item_id] = [f.id for f in fills]
            groups.append(SettlementGroup(trade_id, tuple(items)))
        return groups, unsettleable, behind

    async def send(self) -> Outcome:
        def read() -> tuple[list[tuple[Fill, Order]], dict[str, PoolSwap]]:
            with self._read_engine.connect() as connection:
                pending = store.outbox(connection, self._outbox_limit)
                return pending, store.pool_swaps_of(connection, [f.id for f, _ in pending])

        pending, swaps = await asyncio.to_thread(read)
        # an order still being routed (an immediate order not ended yet) may fill more: its
        # trades wait for the rest, so that all its parts settle in one transaction
        routing = {f.trade_id for f, order in pending if _being_routed(order)}
        pending = [(f, order) for f, order in pending if f.trade_id not in routing]
        groups, unsettleable, behind = self._groups(pending, swaps)
        self._behind = behind
        self._order_of = {fill.id: order.id for fill, order in pending}
        outcome = Outcome()
        if unsettleable:
            await self._refuse(unsettleable, "unsigned: the order carries no owner signature")
            outcome = Outcome(refused=len(unsettleable))
        for planned in plan_batches(groups):
            result = await self._send_batch(planned)
            outcome = Outcome(
                outcome.batches + result.batches,
                outcome.settled + result.settled,
                outcome.refused + result.refused,
                outcome.returned + result.returned,
            )
        return outcome

    def _progress(self, progress: SendProgress) -> None:
        self._sent.append(progress)

    async def _send_batch(self, groups: list[SettlementGroup]) -> Outcome:
        """Commit, send and record one planned batch. Traced as `settlement.batch` (with
        `settlement.simulate` and `settlement.transaction` inside): a child of the newest of
        its orders' submissions and linked to each of them, so the request that traded
        reaches its settlement in one trace (`gateway.telemetry.tracing` says why); its
        logs carry its `batch_id`."""
        batch_id = new_id("bat")
        fill_ids = [
            f for group in groups for item in group.items for f in self._behind[item.item_id]
        ]
        order_ids = sorted({self._order_of[f] for f in fill_ids if f in self._order_of})
        with (
            tracing.start_batch_span("settlement.batch", order_ids) as span,
            bound_contextvars(batch_id=batch_id),
        ):
            span.set_attribute("batch.id", batch_id)
            span.set_attribute("batch.trades", len(groups))
            span.set_attribute("batch.fills", len(fill_ids))
            span.set_attribute("batch.order_ids", order_ids)
            outcome = await self._settle_batch(batch_id, groups, fill_ids, order_ids, span)
            span.set_attribute("batch.settled", outcome.settled)
            span.set_attribute("batch.refused", outcome.refused)
            span.set_attribute("batch.returned", outcome.returned)
            return outcome

    async def _settle_batch(
        self,
        batch_id: str,
        groups: list[SettlementGroup],
        fill_ids: list[str],
        order_ids: list[str],
        span: Span,
    ) -> Outcome:
        chain_batch_id = batch_id_from_key(batch_id)
        span.set_attribute("batch.chain_id", str(chain_batch_id))

        def open_batch(connection: Connection, now: datetime) -> CommandResult[None]:
            store.open_batch(connection, batch_id, chain_batch_id, fill_ids, now)
            facts = {"batch_id": batch_id, "chain_batch_id": str(chain_batch_id), "fills": fill_ids}
            return CommandResult(None, [AuditEntry("settlement.batch_opened", batch_id, facts)])

        await self._writer.execute(open_batch)
        self._sent = []
        result = await self.sender.settle(chain_batch_id, groups)
        first = next((p for p in self._sent if p.stage is Stage.SENT), None)
        if first is not None:
            sent = first

            def record_sent(connection: Connection, now: datetime) -> CommandResult[None]:
                store.batch_sent(connection, batch_id, sent.tx_hash, sent.nonce, now)
                return CommandResult(None)

            await self._writer.execute(record_sent)
        refused = [
            (fill_id, rejected.reason)
            for rejected in result.rejected
            for item in rejected.group.items
            for fill_id in self._behind[item.item_id]
        ]
        for fill_id, reason in refused:
            await self._refuse([fill_id], f"refused by the chain: {reason}")
        deferred = [
            f
            for group in result.deferred
            for item in group.items
            for f in self._behind[item.item_id]
        ]
        batch = result.batch
        if batch is not None:
            span.set_attribute("tx.hash", batch.tx_hash)
            span.set_attribute("tx.gas_used", batch.gas_used)
            span.set_attribute("tx.block_number", batch.block_number)
            span.set_attribute("batch.status", batch.status.value)
        log.info(
            "settlement batch %s: %s",
            batch_id,
            "nothing sent" if batch is None else batch.status.value,
            extra={
                "tx_hash": None if batch is None else batch.tx_hash,
                "gas_used": None if batch is None else batch.gas_used,
                "fills": len(fill_ids),
                "order_ids": order_ids,
                "rejected": len(result.rejected),
                "deferred": len(result.deferred),
            },
        )
        if batch is None or batch.status is not BatchStatus.CONFIRMED:
            status = "abandoned" if batch is None else batch.status.value
            give_back = (
                [i for i in fill_ids if i not in {f for f, _ in refused}]
                if batch is None or batch.status is BatchStatus.REVERTED
                else deferred
            )

            def finish(connection: Connection, now: datetime) -> CommandResult[None]:
                store.release_fills(connection, give_back)
                store.batch_finished(
                    connection,
                    batch_id,
                    REORGED if status == BatchStatus.REORGED.value else status,
                    now,
                    tx_hash=None if batch is None else batch.tx_hash,
                    block_number=None if batch is None else batch.block_number,
                    block_hash=None if batch is None else batch.block_hash,
                    gas_used=None if batch is None else batch.gas_used,
                    reason=None if batch is None else f"{batch.status.value}",
                )
                facts = {"batch_id": batch_id, "status": status, "returned": give_back}
                return CommandResult(
                    None,
                    [AuditEntry("settlement.batch_" + status, batch_id, facts)],
                    [_event("settlement.batch_" + status, facts)],
                )

            await self._writer.execute(finish)
            return Outcome(batches=1, refused=len(refused), returned=len(give_back))
        settled = await self._confirm(
            batch_id,
            batch.tx_hash,
            batch.block_number,
            batch.block_hash,
            batch.gas_used,
            {
                fill_id: index
                for item_id, index in batch.item_log_index.items()
                for fill_id in self._behind.get(item_id, [])
            },
            released=deferred,
        )
        return Outcome(batches=1, settled=settled, refused=len(refused), returned=len(deferred))

    async def _refuse(self, fill_ids: list[str], reason: str) -> None:
        def command(connection: Connection, now: datetime) -> CommandResult[None]:
            store.refuse_fills(connection, fill_ids, reason)
            if self.in_flight is not None:
                self.in_flight.drop(fill_ids)
            audit, events = [], []
            for order in self._orders_of(connection, fill_ids):
                if order.settlement is SettlementStatus.PENDING:
                    failed = order.mark_settlement_failed(now)
                    orders_repo.update_order(connection, failed, previous_version=order.version)
                    audit.append(
                        AuditEntry("order.settlement_failed", order.id, order_facts(failed))
                    )
                    events.append(
                        {
                            "type": "order.settlement_failed",
                            "account": order.spec.account,
                            "order": order_facts(failed),
                        }
                    )
            facts = {"fills": fill_ids, "reason": reason}
            audit.append(AuditEntry("settlement.fills_refused", fill_ids[0], facts))
            return CommandResult(None, audit, [*events, _event("settlement.fills_refused", facts)])

        await self._writer.execute(command)

    def _orders_of(self, connection: Connection, fill_ids: Sequence[str]) -> list[Order]:
        seen: dict[str, Order] = {}
        for fill_id in fill_ids:
            found = connection.execute(
                store.FILLS.select().where(store.FILLS.c.id == fill_id)
            ).first()
            if found is None or found.order_id in seen:
                continue
            stored = orders_repo.get_order(connection, found.order_id)
            if stored is not None:
                seen[found.order_id] = stored.order
        return list(seen.values())

    async def _confirm(
        self,
        batch_id: str,
        tx_hash: str,
        block_number: int,
        block_hash: str,
        gas_used: int | None,
        log_indexes: dict[str, int],
        *,
        released: Sequence[str] = (),
    ) -> int:
        def command(connection: Connection, now: datetime) -> CommandResult[int]:
            settled = store.settle_fills(connection, batch_id, tx_hash, block_number, log_indexes)
            store.release_fills(connection, list(released))
            store.batch_finished(
                connection,
                batch_id,
                store.CONFIRMED,
                now,
                tx_hash=tx_hash,
                block_number=block_number,
                block_hash=block_hash,
                gas_used=gas_used,
            )
            audit, events = [], []
            for order in self._orders_of(connection, settled):
                fills = store.settlement_fills_of_order(connection, order.id)
                if order.settlement is SettlementStatus.PENDING and all(
                    f.fill.settlement is SettlementStatus.SETTLED for f in fills
                ):
                    done = order.mark_settled(now)
                    orders_repo.update_order(connection, done, previous_version=order.version)
                    facts = order_facts(done)
                    audit.append(AuditEntry("order.settled", order.id, facts))
                    events.append(
                        {"type": "order.settled", "account": order.spec.account, "order": facts}
                    )
            for entry in store.fills_of_batch(connection, batch_id):
                if entry.fill.id in settled:  # each owner hears of its own fills
                    events.append(
                        {
                            "type": "fill.settled",
                            "account": entry.fill.account,
                            "fill": {
                                "id": entry.fill.id,
                                "order_id": entry.fill.order_id,
                                "batch_id": batch_id,
                                "tx_hash": tx_hash,
                                "block_number": block_number,
                                "log_index": log_indexes[entry.fill.id],
                            },
                        }
                    )
            facts = {
                "batch_id": batch_id,
                "tx_hash": tx_hash,
                "block_number": block_number,
                "fills": {f: log_indexes[f] for f in settled},
            }
            audit.append(AuditEntry("settlement.confirmed", batch_id, facts))
            events.append(_event("settlement.confirmed", facts))
            return CommandResult(len(settled), audit, events)

        # before the write, which can take a while on a busy writer: a quote read at this
        # block or later already sees these swaps in the pair's reserves
        if self.in_flight is not None:
            self.in_flight.included(log_indexes, block_number)
        count: int = await self._writer.execute(command)
        return count

    # -- heal from the chain's events -------------------------------------------------------

    async def heal(self) -> int:
        """Apply what the chain says happened since the stored cursor; returns how many fills
        it settled that the store did not know were."""
        forked = await self._forked_batch_block()
        if forked is not None:  # a block we settled from its receipt is no longer the chain's
            await self._undo_after(forked - 1)
        update = await self.reconciler.poll()
        healed = 0
        if update.reorged_after is not None:
            await self._undo_after(update.reorged_after)
        by_tx: dict[str, list[SettledEvent]] = defaultdict(list)
        for event in update.events:
            by_tx[event.tx_hash].append(event)
        for events in by_tx.values():
            healed += await self._heal_tx(events)
        await self._save_cursor(update)
        return healed

    async def _forked_batch_block(self) -> int | None:
        """The oldest recent block holding one of our confirmed batches that a reorg replaced.

        Batches are marked settled from their receipts, often before the event follower has
        read their block, so its own fork detection cannot see them go. Checked newest first:
        once a block is still the chain's, so are all before it (usually one call).
        """
        w3: Web3 = self.sender.w3

        def find() -> int | None:
            head = int(w3.eth.block_number)
            with self._read_engine.connect() as connection:
                recent = store.confirmed_blocks_since(connection, head - REORG_WINDOW_BLOCKS)
            forked = None
            for number, block_hash in recent:
                block = w3.eth.get_block(number) if number <= head else None
                if block is not None and Web3.to_hex(block["hash"]) == block_hash:
                    break
                forked = number
            return forked

        return await asyncio.to_thread(find)

    async def _save_cursor(self, update: ReconcileUpdate) -> None:
        cursor = update.cursor.to_dict()

        def command(connection: Connection, now: datetime) -> CommandResult[None]:
            store.put_cursor(connection, CURSOR_NAME, cursor, now)
            return CommandResult(None)

        await self._writer.execute(command)

    async def _heal_tx(self, events: list[SettledEvent]) -> int:
        settled_event = next((e for e in events if e.event == "BatchSettled"), None)
        if settled_event is None:
            return 0

        def read() -> tuple[
            store.BatchRecord | None, list[tuple[Fill, Order]], dict[str, PoolSwap]
        ]:
            with self._read_engine.connect() as connection:
                batch = store.batch_by_chain_id(connection, settled_event.batch_id)
                if batch is None:
                    return None, [], {}
                fills = [s.fill for s in store.fills_of_batch(connection, batch.id)]
                found = []
                for fill in fills:
                    stored = orders_repo.get_order(connection, fill.order_id)
                    assert stored is not None
                    found.append((fill, stored.order))
                swaps = store.pool_swaps_of(connection, [f.id for f in fills])
                return batch, found, swaps

        batch, fills, swaps = await asyncio.to_thread(read)
        if batch is None:
            return 0  # not ours (another gateway's operator, a test)
        # Rebuild the batch's items as they were sent and find each one's own event: an order
        # with two fills in one batch (its internal match and its pool leg, say) has two
        # `Fill` events with the same digest, told apart by their amounts.
        queues: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for event in events:
            if event.event == "Fill" and event.digest:
                # the digest names the wallet too (the EIP-712 domain is the wallet)
                key: tuple[Any, ...] = ("Fill", event.digest, event.amount, event.quote)
                queues[key].append(event.log_index)
            elif event.event == "StrategyFilled" and event.wallet and event.digest:
                key = (
                    "StrategyFilled",
                    event.wallet.lower(),
                    event.digest,
                    event.fill,
                    event.net_quote,
                )
                queues[key].append(event.log_index)
        pending = [
            (fill, order)
            for fill, order in fills
            if fill.settlement is SettlementStatus.PENDING and order.spec.signed is not None
        ]
        groups, _, behind = self._groups(pending, swaps)
        chain_id = self.sender.chain_id
        log_indexes: dict[str, int] = {}
        for group in groups:
            for item in group.items:
                if isinstance(item, OrderSettlement):
                    key = ("Fill", item.digest(chain_id), item.fill, item.quote)
                elif isinstance(item, StrategySettlement):
                    net = sum(leg.quote if leg.is_buy else -leg.quote for leg in item.legs)
                    key = (
                        "StrategyFilled",
                        item.wallet.lower(),
                        item.digest(chain_id),
                        item.fill,
                        net,
                    )
                else:
                    continue  # a swap: its fill is the order item's
                if queues.get(key):
                    index = queues[key].pop(0)
                    for fill_id in behind[item.item_id]:
                        log_indexes[fill_id] = index
        if not log_indexes:
            return 0
        order_ids = sorted({order.id for _, order in fills})
        with (
            tracing.start_batch_span("settlement.heal", order_ids) as span,
            bound_contextvars(batch_id=batch.id),
        ):
            span.set_attribute("batch.id", batch.id)
            span.set_attribute("batch.order_ids", order_ids)
            span.set_attribute("tx.hash", settled_event.tx_hash)
            healed = await self._confirm(
                batch.id,
                settled_event.tx_hash,
                settled_event.block_number,
                settled_event.block_hash,
                batch.gas_used,
                log_indexes,
            )
            span.set_attribute("batch.settled", healed)
            log.info(
                "settlement batch %s settled from the chain's events: %d fills",
                batch.id,
                healed,
                extra={"tx_hash": settled_event.tx_hash, "order_ids": order_ids},
            )
            return healed

    async def _undo_after(self, block_number: int) -> None:
        self.sender.resync_nonce()  # what the operator's nonce counted may be gone too

        def command(connection: Connection, now: datetime) -> CommandResult[list[str]]:
            undone = store.settled_fills_after(connection, block_number)
            batches = set()
            for fill_id in undone:
                row = connection.execute(
                    store.FILLS.select().where(store.FILLS.c.id == fill_id)
                ).first()
                if row is not None and row.batch_id is not None:
                    batches.add(row.batch_id)
            # pending again, still held by their batch: only `resolve` gives them back
            connection.execute(
                store.FILLS.update()
                .where(store.FILLS.c.id.in_(undone))
                .values(
                    settlement=SettlementStatus.PENDING.value,
                    tx_hash=None,
                    block_number=None,
                    log_index=None,
                )
            )
            for batch_id in batches:
                store.batch_finished(
                    connection, batch_id, REORGED, now, reason=f"reorg after block {block_number}"
                )
            facts = {"after_block": block_number, "fills": undone, "batches": sorted(batches)}
            return CommandResult(
                undone,
                [AuditEntry(store.REORGED_KIND, str(block_number), facts)],
                [_event("settlement.reorged", facts)],
            )

        undone: list[str] = await self._writer.execute(command)
        await self.restore_in_flight(undone)

    async def restore_in_flight(self, fill_ids: Sequence[str] | None = None) -> None:
        """Put the swaps of pending pool fills (all, or those of `fill_ids`) back in flight:
        at start, and after a reorg took their block away."""
        if self.in_flight is None:
            return
        in_flight = self.in_flight

        def read() -> tuple[dict[str, PoolSwap], list[tuple[store.BatchRecord, list[str]]]]:
            """The swaps, and each unfinished batch with the pool fills it holds."""
            with self._read_engine.connect() as connection:
                if fill_ids is not None:  # a reorg took their block: none is on chain now
                    return store.pool_swaps_of(connection, fill_ids), []
                pending = store.unsettled_pool_swaps(connection)
                held: dict[str, list[str]] = defaultdict(list)
                for fill_id, (_, batch_id) in pending.items():
                    if batch_id is not None:
                        held[batch_id].append(fill_id)
                unfinished = store.batches_in(connection, [store.BUILDING, store.SENT])
                batches = [(b, held[b.id]) for b in unfinished if b.id in held]
                return {f: swap for f, (swap, _) in pending.items()}, batches

        swaps, batches = await asyncio.to_thread(read)
        for fill_id, swap in swaps.items():
            in_flight.add(fill_id, swap)
        # A stop (or a lost lease) between a batch's receipt and its write leaves its fills
        # pending while its swaps are already in the pair's reserves: counted again, they
        # would price the next pool fill on reserves that are not there, and its swap revert.
        for batch, fills in batches:
            block = await self._mined_at(batch)
            if block is not None:
                in_flight.included(fills, block)

    # -- resolve batches whose outcome is unknown -------------------------------------------

    async def resolve(self) -> int:
        """Give back the fills of batches that nothing on chain can settle any more."""

        def read() -> list[store.BatchRecord]:
            with self._read_engine.connect() as connection:
                return store.batches_in(connection, [store.BUILDING, store.SENT, REORGED])

        unfinished = await asyncio.to_thread(read)
        if not unfinished:
            return 0
        operator = Web3.to_checksum_address(self.sender.operator)
        w3: Web3 = self.sender.w3

        def pending_count() -> int:
            latest = w3.eth.get_transaction_count(operator, "latest")
            pending = w3.eth.get_transaction_count(operator, "pending")
            return int(pending) - int(latest)

        if await asyncio.to_thread(pending_count) > 0:
            return 0  # something of ours may still be mined: wait
        await self.heal()  # everything confirmed so far is known now
        unfinished = await asyncio.to_thread(read)
        returned = 0
        for batch in unfinished:
            if await self._on_chain(batch):
                continue  # mined, not yet deep enough: `heal` will settle it

            def give_back(
                connection: Connection, now: datetime, batch_id: str = batch.id
            ) -> CommandResult[int]:
                fills = [
                    s.fill.id
                    for s in store.fills_of_batch(connection, batch_id)
                    if s.fill.settlement is SettlementStatus.PENDING
                ]
                store.release_fills(connection, fills)
                store.batch_finished(
                    connection,
                    batch_id,
                    "abandoned",
                    now,
                    reason="not on chain and nothing pending",
                )
                facts = {"batch_id": batch_id, "returned": fills}
                return CommandResult(
                    len(fills), [AuditEntry("settlement.batch_abandoned", batch_id, facts)]
                )

            returned += await self._writer.execute(give_back)
            self.sender.resync_nonce()  # its nonce was never spent (a lost node, a reorg)
        return returned

    async def _on_chain(self, batch: store.BatchRecord) -> bool:
        """Whether any block, however recent, holds this batch's `BatchSettled`."""
        return await self._mined_at(batch) is not None

    async def _mined_at(self, batch: store.BatchRecord) -> int | None:
        """The block, however recent, that holds this batch's `BatchSettled`, if any does."""
        if batch.chain_batch_id is None:
            return None
        chain_batch_id = int(batch.chain_batch_id)
        event = self.sender.settlement.events.BatchSettled

        def logs() -> int | None:
            found = event.get_logs(argument_filters={"batch_id": chain_batch_id}, from_block=0)
            return int(found[-1]["blockNumber"]) if found else None

        return await asyncio.to_thread(logs)


REORG_WINDOW_BLOCKS = 256  # deeper reorgs are beyond any confirmation depth we use


def _being_routed(order: Order) -> bool:
    return order.status.is_open and order.spec.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)


def restore_cursor(read_engine: Engine) -> ChainCursor | None:
    with read_engine.connect() as connection:
        raw = store.get_cursor(connection, CURSOR_NAME)
    return None if raw is None else ChainCursor.from_dict(raw)


def settlement_factory(
    rpc_url: str,
    operator_key: str,
    settlement_address: str,
    onchain: OnchainOrders,
    *,
    confirmations: int = 0,
    batch_age: float = 0.0,
    batch_trades: int = 256,
) -> Callable[[GroupCommitter, Engine], SettlementService]:
    """What `Runtime.build` calls with its writer and read engine. The reconciler resumes
    from the stored cursor, or starts at the chain's head the first time (nothing before the
    gateway's first start can be its own)."""

    def build(writer: GroupCommitter, read_engine: Engine) -> SettlementService:
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        sender = SettlementSender(
            rpc_url,
            operator_key,
            settlement_address,
            int(w3.eth.chain_id),
            config=SenderConfig(confirmations=confirmations),
            w3=w3,
        )
        cursor = restore_cursor(read_engine)
        reconciler = SettlementReconciler(
            rpc_url,
            settlement_address,
            start_block=int(w3.eth.block_number) if cursor is None else cursor.block_number,
            cursor=cursor,
            confirmations=confirmations,
        )
        return SettlementService(
            writer,
            read_engine,
            sender,
            reconciler,
            onchain,
            outbox_limit=batch_trades,
            batch_age=batch_age,
        )

    return build
