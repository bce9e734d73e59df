"""Executions of orders and their settlement status."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from gateway.domain.lifecycle import SettlementStatus, check_fill_settlement_transition
from gateway.domain.orders import Side


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of one order (of one leg, for strategies)."""

    id: str
    order_id: str
    account: str
    instrument: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    venue: str
    executed_at: datetime
    settlement: SettlementStatus = SettlementStatus.PENDING
    tx_hash: str | None = None
    gas: Decimal = Decimal(0)  # network fee the operator paid for it (AMM swaps), in quote
    trade_id: str | None = None  # an internal match: the maker's and the taker's fill share it

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.price

    def settled(self, tx_hash: str) -> Fill:
        check_fill_settlement_transition(self.settlement, SettlementStatus.SETTLED)
        return replace(self, settlement=SettlementStatus.SETTLED, tx_hash=tx_hash)

    def failed(self) -> Fill:
        check_fill_settlement_transition(self.settlement, SettlementStatus.FAILED)
        return replace(self, settlement=SettlementStatus.FAILED)
