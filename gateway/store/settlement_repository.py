"""The settlement outbox and its batches (SQLAlchemy Core, portable SQL).

The outbox is the set of fills whose `settlement` is `pending` and that no batch holds
(`batch_id` NULL): fills enter it in the transaction that records them. A batch takes its
fills (`batch_id` set) in the same transaction that creates it, before anything is sent; a
confirmed receipt marks them `settled` with the transaction, block and log index; a refusal
marks them `failed` with the chain's reason; a batch that could not be sent gives them back.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from gateway.domain.amm import PoolSwap
from gateway.domain.fills import Fill
from gateway.domain.lifecycle import SettlementStatus
from gateway.domain.orders import Order
from gateway.store import order_repository as orders
from gateway.store.audit_log import AUDIT_LOG
from gateway.store.tables import ChainCursorRow, FillRow, PoolSwapRow, SettlementBatchRow

BATCHES = SettlementBatchRow.__table__  # type: ignore[attr-defined]
FILLS = FillRow.__table__  # type: ignore[attr-defined]
CURSORS = ChainCursorRow.__table__  # type: ignore[attr-defined]

BUILDING, SENT, CONFIRMED, REVERTED, ABANDONED = (
    "building",
    "sent",
    "confirmed",
    "reverted",
    "abandoned",
)


@dataclass(frozen=True, slots=True)
class BatchRecord:
    id: str
    status: str
    chain_batch_id: str | None
    created_at: datetime
    updated_at: datetime | None
    tx_hash: str | None
    block_number: int | None
    block_hash: str | None
    operator_nonce: int | None
    gas_used: int | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class SettlementFill:
    """A fill with what settlement needs to know about it."""

    fill: Fill
    batch_id: str | None
    block_number: int | None
    log_index: int | None
    reason: str | None


def outbox(connection: Connection, limit: int) -> list[tuple[Fill, Order]]:
    """Every fill of the oldest `limit` trades waiting for a batch, with their orders (a
    trade's fills are written together, so a trade is never half in the outbox)."""
    waiting = (
        select(FILLS.c.trade_id, func.min(FILLS.c.executed_at).label("first"))
        .where(
            FILLS.c.settlement == SettlementStatus.PENDING.value,
            FILLS.c.batch_id.is_(None),
            FILLS.c.trade_id.is_not(None),
        )
        .group_by(FILLS.c.trade_id)
        .order_by("first", FILLS.c.trade_id)
        .limit(limit)
    )
    trade_ids = [r.trade_id for r in connection.execute(waiting)]
    if not trade_ids:
        return []
    rows = connection.execute(
        select(FILLS)
        .where(
            FILLS.c.trade_id.in_(trade_ids),
            FILLS.c.settlement == SettlementStatus.PENDING.value,
            FILLS.c.batch_id.is_(None),
        )
        .order_by(FILLS.c.executed_at, FILLS.c.id)
    )
    fills = [orders._fill(r) for r in rows]
    found: dict[str, Order] = {}
    for order_id in {f.order_id for f in fills}:
        stored = orders.get_order(connection, order_id)
        assert stored is not None
        found[order_id] = stored.order
    return [(f, found[f.order_id]) for f in fills]


def outbox_age(connection: Connection, limit: int) -> tuple[datetime | None, int]:
    """When the oldest trade waiting for a batch was made, and how many trades wait (counted
    up to `limit`)."""
    waiting = (
        select(FILLS.c.trade_id, func.min(FILLS.c.executed_at).label("first"))
        .where(
            FILLS.c.settlement == SettlementStatus.PENDING.value,
            FILLS.c.batch_id.is_(None),
            FILLS.c.trade_id.is_not(None),
        )
        .group_by(FILLS.c.trade_id)
        .order_by("first")
        .limit(limit)
    )
    rows = connection.execute(waiting).all()
    if not rows:
        return None, 0
    first: datetime = rows[0].first
    return (first if first.tzinfo else first.replace(tzinfo=UTC)), len(rows)


def open_batch(
    connection: Connection,
    batch_id: str,
    chain_batch_id: int,
    fill_ids: Sequence[str],
    now: datetime,
) -> None:
    connection.execute(
        insert(BATCHES).values(
            id=batch_id,
            status=BUILDING,
            created_at=now,
            updated_at=now,
            chain_batch_id=str(chain_batch_id),
        )
    )
    taken = connection.execute(
        update(FILLS)
        .where(FILLS.c.id.in_(list(fill_ids)), FILLS.c.batch_id.is_(None))
        .values(batch_id=batch_id)
    ).rowcount
    if taken != len(fill_ids):  # another sender took some: roll the whole batch back
        raise RuntimeError(f"batch {batch_id}: {len(fill_ids) - taken} fills already batched")


def batch_sent(
    connection: Connection, batch_id: str, tx_hash: str, nonce: int, now: datetime
) -> None:
    connection.execute(
        update(BATCHES)
        .where(BATCHES.c.id == batch_id)
        .values(status=SENT, tx_hash=tx_hash, operator_nonce=nonce, updated_at=now)
    )


def batch_finished(
    connection: Connection,
    batch_id: str,
    status: str,
    now: datetime,
    *,
    tx_hash: str | None = None,
    block_number: int | None = None,
    block_hash: str | None = None,
    gas_used: int | None = None,
    reason: str | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "updated_at": now, "reason": reason}
    if tx_hash is not None:
        values.update(
            tx_hash=tx_hash, block_number=block_number, block_hash=block_hash, gas_used=gas_used
        )
    connection.execute(update(BATCHES).where(BATCHES.c.id == batch_id).values(**values))


def settle_fills(
    connection: Connection,
    batch_id: str,
    tx_hash: str,
    block_number: int,
    log_indexes: Mapping[str, int],
) -> list[str]:
    """Mark the batch's fills settled (those still pending); returns their ids."""
    settled = []
    for fill_id, log_index in log_indexes.items():
        changed = connection.execute(
            update(FILLS)
            .where(
                FILLS.c.id == fill_id,
                FILLS.c.batch_id == batch_id,
                FILLS.c.settlement == SettlementStatus.PENDING.value,
            )
            .values(
                settlement=SettlementStatus.SETTLED.value,
                tx_hash=tx_hash,
                block_number=block_number,
                log_index=log_index,
            )
        ).rowcount
        if changed:
            settled.append(fill_id)
    return settled


def refuse_fills(connection: Connection, fill_ids: Sequence[str], reason: str) -> None:
    connection.execute(
        update(FILLS)
        .where(FILLS.c.id.in_(list(fill_ids)), FILLS.c.settlement == SettlementStatus.PENDING.value)
        .values(settlement=SettlementStatus.FAILED.value, settlement_reason=reason[:200])
    )


def release_fills(connection: Connection, fill_ids: Sequence[str]) -> None:
    """Back to the outbox (a batch that was not sent, or was undone by a reorg)."""
    connection.execute(
        update(FILLS)
        .where(FILLS.c.id.in_(list(fill_ids)), FILLS.c.settlement == SettlementStatus.PENDING.value)
        .values(batch_id=None)
    )


def unsettle_fills(connection: Connection, fill_ids: Sequence[str]) -> None:
    """A reorg took their settlement away: pending again, in no batch."""
    connection.execute(
        update(FILLS)
        .where(FILLS.c.id.in_(list(fill_ids)))
        .values(
            settlement=SettlementStatus.PENDING.value,
            batch_id=None,
            tx_hash=None,
            block_number=None,
            log_index=None,
        )
    )


def get_batch(connection: Connection, batch_id: str) -> BatchRecord | None:
    row = connection.execute(select(BATCHES).where(BATCHES.c.id == batch_id)).first()
    return None if row is None else _batch(row)


def batch_by_chain_id(connection: Connection, chain_batch_id: int) -> BatchRecord | None:
    row = connection.execute(
        select(BATCHES).where(BATCHES.c.chain_batch_id == str(chain_batch_id))
    ).first()
    return None if row is None else _batch(row)


def batches_in(connection: Connection, statuses: Sequence[str]) -> list[BatchRecord]:
    rows = connection.execute(
        select(BATCHES).where(BATCHES.c.status.in_(list(statuses))).order_by(BATCHES.c.created_at)
    )
    return [_batch(r) for r in rows]


def confirmed_blocks_since(connection: Connection, block_number: int) -> list[tuple[int, str]]:
    """(block number, block hash) of the confirmed batches from `block_number` on, newest
    first: the blocks whose place in the chain a reorg could still take away."""
    rows = connection.execute(
        select(BATCHES.c.block_number, BATCHES.c.block_hash)
        .where(
            BATCHES.c.status == CONFIRMED,
            BATCHES.c.block_number >= block_number,
            BATCHES.c.block_hash.is_not(None),
        )
        .distinct()
        .order_by(BATCHES.c.block_number.desc())
    )
    return [(int(r.block_number), str(r.block_hash)) for r in rows]


def fills_of_batch(connection: Connection, batch_id: str) -> list[SettlementFill]:
    rows = connection.execute(
        select(FILLS).where(FILLS.c.batch_id == batch_id).order_by(FILLS.c.executed_at, FILLS.c.id)
    )
    return [_settlement_fill(r) for r in rows]


def settlement_fills_of_order(connection: Connection, order_id: str) -> list[SettlementFill]:
    rows = connection.execute(
        select(FILLS).where(FILLS.c.order_id == order_id).order_by(FILLS.c.executed_at, FILLS.c.id)
    )
    return [_settlement_fill(r) for r in rows]


def settled_fills_after(connection: Connection, block_number: int) -> list[str]:
    rows = connection.execute(
        select(FILLS.c.id).where(
            FILLS.c.settlement == SettlementStatus.SETTLED.value,
            FILLS.c.block_number > block_number,
        )
    )
    return [r.id for r in rows]


def get_cursor(connection: Connection, name: str) -> dict[str, Any] | None:
    row = connection.execute(select(CURSORS.c.cursor).where(CURSORS.c.name == name)).first()
    return None if row is None else dict(json.loads(row.cursor))


def put_cursor(connection: Connection, name: str, cursor: Mapping[str, Any], now: datetime) -> None:
    text = json.dumps(cursor, sort_keys=True)
    changed = connection.execute(
        update(CURSORS).where(CURSORS.c.name == name).values(cursor=text, updated_at=now)
    ).rowcount
    if not changed:
        connection.execute(insert(CURSORS).values(name=name, cursor=text, updated_at=now))


def _batch(r: Any) -> BatchRecord:
    return BatchRecord(
        r.id,
        r.status,
        r.chain_batch_id,
        r.created_at,
        r.updated_at,
        r.tx_hash,
        r.block_number,
        r.block_hash,
        r.operator_nonce,
        r.gas_used,
        r.reason,
    )


def _settlement_fill(r: Any) -> SettlementFill:
    return SettlementFill(
        orders._fill(r), r.batch_id, r.block_number, r.log_index, r.settlement_reason
    )


POOL_SWAPS = PoolSwapRow.__table__  # type: ignore[attr-defined]


def insert_pool_swap(connection: Connection, fill_id: str, swap: PoolSwap) -> None:
    connection.execute(
        POOL_SWAPS.insert().values(
            fill_id=fill_id,
            pair=swap.pair,
            token_in=swap.token_in,
            token_out=swap.token_out,
            amount_in=str(swap.amount_in),
            amount_out=str(swap.amount_out),
        )
    )


def _pool_swap(r: Any) -> PoolSwap:
    return PoolSwap(r.pair, r.token_in, r.token_out, int(r.amount_in), int(r.amount_out))


def pool_swaps_of(connection: Connection, fill_ids: Sequence[str]) -> dict[str, PoolSwap]:
    """The swaps behind those of `fill_ids` that are pool fills."""
    if not fill_ids:
        return {}
    rows = connection.execute(POOL_SWAPS.select().where(POOL_SWAPS.c.fill_id.in_(fill_ids)))
    return {r.fill_id: _pool_swap(r) for r in rows}


def unsettled_pool_swaps(connection: Connection) -> dict[str, tuple[PoolSwap, str | None]]:
    """Swaps of pool fills still pending settlement, with the batch that holds each (None in
    the outbox): their swaps may not be mined yet, or mined in a batch not yet confirmed."""
    rows = connection.execute(
        select(POOL_SWAPS, FILLS.c.batch_id)
        .join(FILLS, FILLS.c.id == POOL_SWAPS.c.fill_id)
        .where(FILLS.c.settlement == SettlementStatus.PENDING.value)
    )
    return {r.fill_id: (_pool_swap(r), r.batch_id) for r in rows}


# --- the operator's list of batches (GET /v1/settlements) ------------------------------

REORGED_KIND = "settlement.reorged"  # the audit record of a reorg undoing settled fills


def list_batches(
    connection: Connection, statuses: tuple[str, ...], before: str | None, limit: int
) -> tuple[list[BatchRecord], bool]:
    """Newest first: batch ids start with their creation time (`oms.ids.new_id`)."""
    batches = BATCHES
    query = select(batches).where(batches.c.status.in_(statuses))
    if before is not None:
        query = query.where(batches.c.id < before)
    rows = connection.execute(query.order_by(batches.c.id.desc()).limit(limit + 1)).all()
    page = [_batch(r) for r in rows[:limit]]
    return page, len(rows) > limit


def fill_counts(connection: Connection, batch_ids: list[str]) -> dict[str, int]:
    fills = FILLS
    rows = connection.execute(
        select(fills.c.batch_id, func.count())
        .where(fills.c.batch_id.in_(batch_ids))
        .group_by(fills.c.batch_id)
    )
    return {r[0]: int(r[1]) for r in rows}


def reorgs_of(connection: Connection, batch_ids: list[str]) -> dict[str, tuple[int, bool]]:
    """Per batch: how many reorgs undid it, and whether every fill they undid settled since.

    A confirmed batch's row keeps no trace of a reorg it survived: the audit log's
    `settlement.reorged` records (batches and fills undone) do."""
    wanted = set(batch_ids)
    named: dict[str, int] = defaultdict(int)
    undone: dict[str, set[str]] = defaultdict(set)
    rows = connection.execute(select(AUDIT_LOG.c.payload).where(AUDIT_LOG.c.kind == REORGED_KIND))
    for row in rows:
        facts = json.loads(row.payload)
        for batch_id in set(facts.get("batches", ())) & wanted:
            named[batch_id] += 1
            undone[batch_id].update(facts.get("fills", ()))
    if not named:
        return {}
    all_undone = set().union(*undone.values())
    fills = FILLS
    settled = {
        r.id
        for r in connection.execute(
            select(fills.c.id).where(
                fills.c.id.in_(sorted(all_undone)),
                fills.c.settlement == SettlementStatus.SETTLED.value,
            )
        )
    }
    return {b: (count, undone[b] <= settled) for b, count in named.items()}


def count_by_status(connection: Connection) -> dict[str, int]:
    """How many batches are in each status."""
    rows = connection.execute(select(BATCHES.c.status, func.count()).group_by(BATCHES.c.status))
    return {str(r[0]): int(r[1]) for r in rows}
