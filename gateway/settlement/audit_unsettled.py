"""What the gateway filled for a signed order but the chain never settled.

Every fill of a signed order must end on chain between wallets. The auditor's store side
checks what the gateway says is settled against the chain; this adds the other direction:

- a fill of a signed order still not settled `after_blocks` blocks after it was executed
  (still pending, or never queued for settlement at all) is a finding;
- an order's filled quantity must be exactly what its fills add up to (its settled part plus
  what is pending or was refused): anything else is a fill recorded on one side only.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Connection, select
from web3 import Web3

from gateway.domain.lifecycle import SettlementStatus
from gateway.store.order_repository import FILLS, LEGS, ORDERS

DEFAULT_AFTER_BLOCKS = 20


def _cutoff(w3: Web3, after_blocks: int) -> datetime | None:
    """When the block `after_blocks` below the head was made (None: the chain is younger)."""
    head = int(w3.eth.block_number)
    if head < after_blocks:
        return None
    block = w3.eth.get_block(head - after_blocks)
    return datetime.fromtimestamp(int(block["timestamp"]), UTC)


def unsettled_fills(connection: Connection, w3: Web3, after_blocks: int) -> list[str]:
    """Fills of signed orders with no on-chain counterpart `after_blocks` blocks later."""
    cutoff = _cutoff(w3, after_blocks)
    if cutoff is None:
        return []
    rows = connection.execute(
        select(
            FILLS.c.id,
            FILLS.c.order_id,
            FILLS.c.instrument,
            FILLS.c.quantity,
            FILLS.c.venue,
            FILLS.c.executed_at,
            FILLS.c.trade_id,
        )
        .join(ORDERS, ORDERS.c.id == FILLS.c.order_id)
        .where(
            ORDERS.c.signature.is_not(None),
            FILLS.c.settlement == SettlementStatus.PENDING.value,
            FILLS.c.executed_at < cutoff,
        )
        .order_by(FILLS.c.executed_at, FILLS.c.id)
    )
    found = []
    for row in rows:
        why = "never queued for settlement" if row.trade_id is None else "still pending"
        found.append(
            f"fill {row.id} of signed order {row.order_id} ({row.quantity} {row.instrument} on "
            f"{row.venue}, {row.executed_at:%Y-%m-%d %H:%M:%S}): no on-chain counterpart "
            f"{after_blocks} blocks later ({why})"
        )
    return found


def filled_beyond_fills(connection: Connection) -> list[str]:
    """Orders whose filled quantity is not what their fills add up to (a strategy's per
    leg, in units of its ratio)."""
    # summed here, exactly: SQL's SUM of a decimal column is a float on SQLite
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for order_id, instrument, quantity in connection.execute(
        select(FILLS.c.order_id, FILLS.c.instrument, FILLS.c.quantity)
    ):
        totals[order_id][instrument] += quantity
    ratios: dict[str, dict[str, int]] = defaultdict(dict)
    for order_id, instrument, ratio in connection.execute(
        select(LEGS.c.order_id, LEGS.c.instrument, LEGS.c.ratio)
    ):
        ratios[order_id][instrument] = int(ratio)
    found = []
    for order_id, filled in connection.execute(
        select(ORDERS.c.id, ORDERS.c.filled_quantity).where(ORDERS.c.filled_quantity > 0)
    ):
        legs = ratios.get(order_id)
        fills = totals.get(order_id, {})
        if legs is None:
            total = sum(fills.values(), Decimal(0))
            if total != filled:
                found.append(f"order {order_id}: filled {filled}, its fills add up to {total}")
            continue
        if not fills:
            continue  # a legged strategy without an inventory: its legs' orders hold the fills
        for instrument, ratio in legs.items():
            leg_total = fills.get(instrument, Decimal(0))
            if leg_total != Decimal(filled) * ratio:
                found.append(
                    f"order {order_id}: filled {filled} units, its {instrument} fills add up "
                    f"to {leg_total} (ratio {ratio})"
                )
    return found
