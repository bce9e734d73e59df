"""The operator's inventory MarginWallet: counter-orders it signs, and whether it can carry a
trade before the exchange child that would hedge it is sent (`gateway.domain.inventory`
says why it exists).

The inventory is a MarginWallet like a trader's, owned by an operator key. For each exchange
fill of a signed order it signs a counter-order (the opposite side, the fill's quantity, at
the inventory price) with a fresh nonce; trader fill and counter fill share a trade id and
settle together in the batch, exactly once, like an internal match.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from eth_account import Account
from sqlalchemy import Connection, Engine

from gateway.chain.onchain_orders import OnchainOrders
from gateway.domain.inventory import (
    HedgeExecution,
    InventoryLine,
    InventoryTrade,
    inventory_book,
    inventory_price,
)
from gateway.domain.orders import OrderSignature, OrderSpec, OrderType, Side, TimeInForce
from gateway.oms.risk_view import WalletSource
from gateway.risk.exposure import WorkingOrder
from gateway.risk.pretrade import PreTradeRejected, PreTradeValidator
from gateway.settlement import eip712
from gateway.store import inventory_repository as store

# the counter-order's deadline: far enough for any settlement backlog, short enough that a
# leaked counter-order does not live forever
COUNTER_ORDER_LIFETIME = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class InventoryConfig:
    wallet: str
    owner_key: str  # hex private key of the wallet's owner (the operator's inventory key)
    onchain: OnchainOrders
    chain_id: int
    spread_bps: Decimal = Decimal(5)
    # nonces the wallet may already have used (another database before this one)
    nonce_base: int = 0


class InventoryRefused(Exception):
    """The inventory cannot carry this trade: its exchange leg is not sent."""


class OperatorInventory:
    def __init__(
        self,
        config: InventoryConfig,
        read_engine: Engine,
        *,
        validator: PreTradeValidator | None = None,
        wallets: WalletSource | None = None,
    ) -> None:
        self.wallet = config.wallet
        self.spread_bps = config.spread_bps
        self._key = config.owner_key
        self.owner = Account.from_key(config.owner_key).address
        self._nonce_base = config.nonce_base
        self._onchain = config.onchain
        self._chain_id = config.chain_id
        self._read_engine = read_engine
        self._validator = validator
        self._wallets = wallets

    # -- pricing and signing (inside the writer's transaction) ------------------------------

    def price(
        self,
        instrument: str,
        trader_side: Side,
        *,
        average: Decimal,
        fee: Decimal,
        quantity: Decimal,
        limit: Decimal,
    ) -> Decimal:
        tick = self._onchain.catalogue.get(instrument).rules.tick_size
        return inventory_price(
            trader_side,
            average=average,
            fee_per_unit=fee / quantity,
            spread_bps=self.spread_bps,
            limit=limit,
            tick=tick,
        )

    def next_nonce(self, connection: Connection) -> int:
        """Counter-orders count up from the base: consecutive nonces share the wallet's
        nonce-bitmap words (cheap on chain); the order's client id `inv-<nonce>` is unique
        per account, so two writers can never sign the same nonce twice."""
        return self._nonce_base + store.orders_of(connection, self.wallet)

    def counter_order(
        self,
        instrument: str,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        nonce: int,
        now: datetime,
    ) -> OrderSpec:
        """The inventory's own signed order for one trade: `side` is the inventory's."""
        deadline = int((now + COUNTER_ORDER_LIFETIME).timestamp())
        unsigned = OrderSpec(
            self.wallet,
            f"inv-{nonce}",
            side,
            OrderType.LIMIT,
            quantity,
            TimeInForce.IOC,
            instrument=instrument,
            price=price,
        )
        digest = self._onchain.digest(
            unsigned, OrderSignature(nonce, deadline, b""), self._chain_id
        )
        signature = eip712.sign_digest(digest, self._key)
        return replace(unsigned, signed=OrderSignature(nonce, deadline, signature))

    # -- before an exchange child is sent ---------------------------------------------------

    async def check_capacity(
        self, instrument: str, trader_side: Side, quantity: Decimal, price: Decimal
    ) -> None:
        """Raise `InventoryRefused` unless the inventory wallet, with every trade still
        waiting for settlement, can take the other side of `quantity` at `price` within its
        risk limits and margin (the same checks a trader's order passes)."""
        if self._validator is None:
            return
        spec = OrderSpec(
            self.wallet,
            "inventory-capacity",
            trader_side.opposite,
            OrderType.LIMIT,
            quantity,
            TimeInForce.IOC,
            instrument=instrument,
            price=price,
        )
        pending = await asyncio.to_thread(self._pending)
        margin = self._validator.margin
        if self._wallets is not None:  # a fresh read, not the last one cached
            await self._wallets.state(self.wallet)
        try:
            self._validator.check(spec, dry_run=True)
            if margin is not None:
                working = [_working(t) for t in pending]
                verdict = margin.margin_after(spec, working)
                if verdict is not None and not verdict.ok:
                    raise InventoryRefused(
                        verdict.reason
                        or f"the inventory would need {verdict.required} quote units of "
                        f"margin and have {verdict.available}"
                    )
        except PreTradeRejected as error:
            raise InventoryRefused(f"{error.code}: {error.message}") from error

    def _pending(self) -> list[InventoryTrade]:
        with self._read_engine.connect() as connection:
            return store.pending_trades(connection, self.wallet)

    # -- what the operator sees -------------------------------------------------------------

    def book(self, marks: dict[str, Decimal | None]) -> list[InventoryLine]:
        with self._read_engine.connect() as connection:
            trades = store.trades(connection, self.wallet)
            hedges: list[HedgeExecution] = store.hedges(connection, self.wallet)
        return inventory_book(trades, hedges, marks)


def _working(trade: InventoryTrade) -> WorkingOrder:
    """A pending trade as the margin projection takes it: a fill still to come on chain."""
    spec = OrderSpec(
        "inventory",
        "pending",
        trade.side,
        OrderType.LIMIT,
        trade.quantity,
        TimeInForce.IOC,
        instrument=trade.instrument,
        price=trade.price,
    )
    return WorkingOrder.of_spec(spec)
