"""The auditor: proves that every fill settled on chain exactly as its owner signed it and,
given the gateway's database, that the gateway's record and audit log agree with the chain.

The chain side (``audit_chain``) needs only an RPC URL and the Settlement address; the store
side (``audit_store``) adds the database. :func:`verify` runs both and returns one
:class:`AuditReport` (``ok`` is False on any problem; ``to_json()`` for machines).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from web3 import Web3

from gateway.domain.instruments import InstrumentCatalogue
from gateway.settlement.audit_chain import AuditedFill, ChainAudit, ChainAuditor
from gateway.settlement.audit_store import StoreAudit, audit_store
from gateway.settlement.audit_unsettled import (
    DEFAULT_AFTER_BLOCKS,
    filled_beyond_fills,
    unsettled_fills,
)

__all__ = ["AuditReport", "AuditedFill", "verify"]


@dataclass(frozen=True, slots=True)
class AuditReport:
    chain: ChainAudit
    store: StoreAudit | None  # None: the chain side alone was proven
    # with the store: signed orders' fills the chain never settled, and orders whose filled
    # quantity is not what their fills add up to (`audit_unsettled`)
    divergences: tuple[str, ...] = ()

    @property
    def fills(self) -> tuple[AuditedFill, ...]:
        return self.chain.fills if self.store is None else self.store.fills

    @property
    def problems(self) -> tuple[str, ...]:
        """Problems not tied to one on-chain fill (each fill lists its own)."""
        found = list(self.chain.problems)
        if self.store is not None:
            found += self.store.problems
            found += [f"audit log: {p}" for p in self.store.audit_log.problems]
        found += self.divergences
        return tuple(found)

    @property
    def ok(self) -> bool:
        return not self.problems and all(f.ok for f in self.fills)

    def to_json(self) -> dict[str, Any]:
        fills = self.fills
        store: dict[str, Any] | None = None
        if self.store is not None:
            store = {
                "settled_fills": self.store.settled_fills,
                "matched": self.store.matched,
                "audit_log": {
                    "ok": self.store.audit_log.ok,
                    "records": self.store.audit_log.records,
                    "problems": list(self.store.audit_log.problems),
                },
            }
        return {
            "ok": self.ok,
            "chain_id": self.chain.chain_id,
            "settlement": self.chain.settlement,
            "from_block": self.chain.from_block,
            "to_block": self.chain.to_block,
            "counts": {
                "batches": self.chain.batches,
                "fills": len(fills),
                "fills_ok": sum(1 for f in fills if f.ok),
                "fills_with_problems": sum(1 for f in fills if not f.ok),
                "problems": len(self.problems),
            },
            "store": store,
            "problems": list(self.problems),
            "fills": [f.to_json() for f in fills],
        }


def verify(
    w3: Web3,
    settlement_address: str,
    *,
    engine: Engine | None = None,
    catalogue: InstrumentCatalogue | None = None,
    tokens: Mapping[str, str] | None = None,
    from_block: int = 0,
    unsettled_after_blocks: int = DEFAULT_AFTER_BLOCKS,
) -> AuditReport:
    """Audit the chain from ``from_block``; with ``engine``, the gateway's store too (its
    instruments through ``catalogue``, the devnet's by default; token addresses as given or
    as the chain's tokens name themselves), including every fill of a signed order still
    without an on-chain counterpart ``unsettled_after_blocks`` blocks after it was made."""
    chain = ChainAuditor(w3, settlement_address).audit(from_block)
    if engine is None:
        return AuditReport(chain, None)
    if catalogue is None:
        from gateway.devnet.catalogue import devnet_catalogue

        catalogue = devnet_catalogue()
    with engine.connect() as connection:
        store = audit_store(connection, chain, catalogue, tokens)
        divergences = [
            *unsettled_fills(connection, w3, unsettled_after_blocks),
            *filled_beyond_fills(connection),
        ]
    return AuditReport(chain, store, tuple(divergences))
