"""The auditor's store side: the gateway's record of settled fills against the chain.

Every fill the store says is settled must be exactly one on-chain fill (its transaction and
log index, and the same wallet, instrument, side, base amount and quote amount once its
decimal quantity and price are put in token units the way the settlement service does);
every on-chain fill must be known to the store; and the audit log's hash chain must be
intact. A fill the store calls settled in a transaction that settled nothing is a problem.

Instrument symbols become chain ids through the catalogue and the token addresses: given, or
learnt from the chain (the ``symbol()`` of each token the calldata's instruments use).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, or_, select
from web3 import Web3

from gateway.chain.onchain_orders import OnchainOrders
from gateway.chain.settlement_abi import quote_amount
from gateway.domain.errors import DomainError
from gateway.domain.instruments import InstrumentCatalogue
from gateway.domain.lifecycle import SettlementStatus
from gateway.oms.internal_book import BOOK_VENUE
from gateway.settlement.audit_chain import AuditedFill, ChainAudit
from gateway.store import audit_log
from gateway.store.tables import FillRow, SettlementBatchRow

FILLS = FillRow.__table__  # type: ignore[attr-defined]
BATCHES = SettlementBatchRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class StoreAudit:
    settled_fills: int  # fills the store says are settled
    matched: int  # of those, matched to an on-chain fill without a difference
    fills: tuple[AuditedFill, ...]  # the chain's fills, with store problems added
    problems: tuple[str, ...]  # store fills with no on-chain counterpart
    audit_log: audit_log.ChainVerification


def tokens_from_chain(chain: ChainAudit) -> dict[str, str]:
    """Token symbol -> address, from the instruments the chain's batches used."""
    found: dict[str, str] = {}
    for ins in chain.instruments.values():
        found[ins.base_symbol] = ins.base
        found[ins.quote_symbol] = ins.quote
    return found


@dataclass(frozen=True, slots=True)
class _Expected:
    instrument: str | None  # chain id, 0x hex
    amount: int | None
    quote: int | None  # quote units, as the settlement service rounds a book fill's
    exact_quote: Decimal | None  # quantity x price in quote units, unrounded
    problem: str | None


def _expected(onchain: OnchainOrders, row: Any) -> _Expected:
    """The on-chain view of a stored fill, as the settlement service computed it. A pool
    fill's price is its swap's average, finer than the quote token: only a book fill's price
    must be whole quote units."""
    try:
        instrument = onchain.catalogue.get(row.instrument)
        ins_id = Web3.to_hex(onchain.preimage(row.instrument).id)
        amount = onchain.amount(instrument, Decimal(row.quantity))
        exact = Decimal(row.quantity) * Decimal(row.price) * 10**instrument.quote.decimals
        quote = None
        if row.venue == BOOK_VENUE:
            price = onchain.price(instrument, Decimal(row.price))
            quote = quote_amount(amount, price, instrument.base.decimals)
    except DomainError as error:
        return _Expected(None, None, None, None, error.message)
    return _Expected(ins_id, amount, quote, exact, None)


def _quote_agrees(row: Any, expected: _Expected, onchain_fill: AuditedFill) -> bool:
    """A book fill settles at exactly quantity x price (rounded down to quote units). A pool
    fill settles what its swap moved, and its recorded price is that swap's rounded average:
    it agrees if the difference is within the rounding of the price's last recorded digit
    (plus one unit)."""
    if expected.quote is not None:
        return expected.quote == onchain_fill.quote
    assert expected.exact_quote is not None
    price = Decimal(row.price)
    if price <= 0:
        return False
    exponent = price.as_tuple().exponent
    digit = Decimal(1).scaleb(exponent if isinstance(exponent, int) else 0)
    slack = expected.exact_quote * digit / price + 1
    return abs(expected.exact_quote - onchain_fill.quote) <= slack


def audit_store(
    connection: Connection,
    chain: ChainAudit,
    catalogue: InstrumentCatalogue,
    tokens: Mapping[str, str] | None = None,
) -> StoreAudit:
    onchain = OnchainOrders(catalogue, tokens if tokens is not None else tokens_from_chain(chain))
    by_item: dict[tuple[str, int], list[int]] = defaultdict(list)
    txs = {f.tx_hash.lower() for f in chain.fills}
    for index, fill in enumerate(chain.fills):
        by_item[(fill.tx_hash.lower(), fill.item_log_index)].append(index)
    claims: dict[int, list[str]] = defaultdict(list)
    extra: dict[int, list[str]] = defaultdict(list)
    problems: list[str] = []
    rows = connection.execute(
        select(FILLS, BATCHES.c.chain_batch_id)
        .select_from(FILLS.outerjoin(BATCHES, FILLS.c.batch_id == BATCHES.c.id))
        .where(
            or_(
                FILLS.c.settlement == SettlementStatus.SETTLED.value,
                FILLS.c.tx_hash.is_not(None),
            )
        )
        .order_by(FILLS.c.block_number, FILLS.c.log_index, FILLS.c.id)
    ).all()
    settled = 0
    matched = 0
    for row in rows:
        if row.settlement != SettlementStatus.SETTLED.value:
            problems.append(f"fill {row.id}: carries tx {row.tx_hash} but is {row.settlement}")
            continue
        if row.block_number is not None and not (
            chain.from_block <= row.block_number <= chain.to_block
        ):
            continue  # outside the blocks audited
        settled += 1
        tx = (row.tx_hash or "").lower()
        where = f"fill {row.id} ({row.tx_hash} log {row.log_index})"
        candidates = by_item.get((tx, row.log_index if row.log_index is not None else -1), [])
        if not candidates:
            if tx not in txs:
                problems.append(
                    f"{where}: the store says settled; that transaction settled nothing on chain"
                )
            else:
                problems.append(
                    f"{where}: the store says settled, but no on-chain fill has that log index"
                )
            continue
        expected = _expected(onchain, row)
        same = [i for i in candidates if chain.fills[i].instrument == expected.instrument]
        # a paired trade's two fills share one log (Traded): each row takes its own side
        mine = [
            i
            for i in (same or candidates)
            if chain.fills[i].wallet.lower() == row.account.lower()
            and chain.fills[i].side == row.side
        ]
        free = [i for i in (mine or same or candidates) if not claims[i]]
        index = (free or mine or same or candidates)[0]
        onchain_fill = chain.fills[index]
        claims[index].append(row.id)
        found: list[str] = []
        if expected.problem is not None:
            found.append(f"{where}: {expected.problem}")
        if expected.instrument is not None and onchain_fill.instrument != expected.instrument:
            found.append(
                f"{where}: instrument {row.instrument} is not the instrument settled on chain"
            )
        if row.account.lower() != onchain_fill.wallet.lower():
            found.append(f"{where}: account {row.account} is not the wallet {onchain_fill.wallet}")
        if row.side != onchain_fill.side:
            found.append(f"{where}: side {row.side} but the chain settled a {onchain_fill.side}")
        if expected.amount is not None and expected.amount != onchain_fill.amount:
            found.append(
                f"{where}: quantity {row.quantity} is {expected.amount} base units, "
                f"the chain settled {onchain_fill.amount}"
            )
        elif expected.exact_quote is not None and not _quote_agrees(row, expected, onchain_fill):
            made = expected.quote if expected.quote is not None else expected.exact_quote
            found.append(
                f"{where}: price {row.price} makes {made} quote units, "
                f"the chain settled {onchain_fill.quote}"
            )
        if row.block_number != onchain_fill.block_number:
            found.append(
                f"{where}: block {row.block_number}, the chain says {onchain_fill.block_number}"
            )
        if row.chain_batch_id is not None and int(row.chain_batch_id) != onchain_fill.batch_id:
            found.append(f"{where}: its batch is not the batch settled on chain")
        extra[index].extend(found)
        if not found:
            matched += 1
    fills = []
    for index, fill in enumerate(chain.fills):
        added = list(extra[index])
        if not claims[index]:
            added.append("not known to the gateway's store")
        elif len(claims[index]) > 1:
            added.append(
                f"claimed by {len(claims[index])} stored fills: {', '.join(claims[index])}"
            )
        fills.append(
            replace(fill, problems=fill.problems + tuple(added), gateway_fills=tuple(claims[index]))
        )
    return StoreAudit(settled, matched, tuple(fills), tuple(problems), audit_log.verify(connection))


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    kind: str
    entity_id: str
    payload: str  # canonical JSON, as hashed
    created_at: datetime
    prev_hash: str
    hash: str


def audit_records(connection: Connection, after: int, limit: int) -> list[AuditRecord]:
    """The audit log's records with `seq > after`, oldest first, at most `limit`."""
    rows = connection.execute(
        select(audit_log.AUDIT_LOG)
        .where(audit_log.AUDIT_LOG.c.seq > after)
        .order_by(audit_log.AUDIT_LOG.c.seq)
        .limit(limit)
    )
    return [
        AuditRecord(r.seq, r.kind, r.entity_id, r.payload, r.created_at, r.prev_hash, r.hash)
        for r in rows
    ]
