"""Normalized settlement items: what one ``Settlement.settle`` batch is made of.

Every amount is an integer in token units (never a float). An item is indivisible: it is the
signed order (or strategy) of one wallet with the fill chosen for it, or one AMM swap. Items
that only balance together (the maker and taker sides of one trade, a strategy and the swaps
its counterpart needs) form a :class:`SettlementGroup`; batching and bisection split between
groups and never inside one, so a group settles entirely or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from web3 import Web3

from gateway.chain.settlement_abi import Instrument, is_contract_signature
from gateway.settlement.eip712 import Leg, Order, Strategy, order_digest, strategy_digest


@dataclass(frozen=True, slots=True)
class OrderSettlement:
    """One signed order of ``wallet`` filled by ``fill`` base units for ``quote`` quote units."""

    item_id: str  # our fill id
    wallet: str
    instrument: Instrument  # the preimage; its id is the signed ``Order.instrument``
    is_buy: bool
    amount: int
    limit_price: int
    nonce: int
    deadline: int
    # 65 bytes r || s || v: ECDSA by the owner EOA or a trading key; any other length: the
    # contract owner's EIP-1271 signature (see gateway.chain.settlement_abi)
    signature: bytes
    fill: int
    quote: int

    def order(self) -> Order:
        """The signed EIP-712 ``Order``."""
        return Order(
            self.instrument.id,
            self.is_buy,
            self.amount,
            self.limit_price,
            self.nonce,
            self.deadline,
        )

    def digest(self, chain_id: int) -> bytes:
        """The EIP-712 digest the wallet reports in its ``Fill`` event."""
        return order_digest(self.order(), chain_id, self.wallet)


@dataclass(frozen=True, slots=True)
class StrategyLegSettlement:
    """One leg of a strategy and the quote units it pays (buy) or receives (sell) in this fill."""

    instrument: Instrument
    is_buy: bool
    ratio: int
    quote: int


@dataclass(frozen=True, slots=True)
class StrategySettlement:
    """One signed multi-leg strategy of ``wallet`` filled by ``fill`` units (all legs or none)."""

    item_id: str
    wallet: str
    legs: tuple[StrategyLegSettlement, ...]
    amount: int
    limit_net_price: int
    nonce: int
    deadline: int
    signature: bytes  # as OrderSettlement.signature
    fill: int

    def strategy(self) -> Strategy:
        """The signed EIP-712 ``Strategy``."""
        return Strategy(
            tuple(Leg(leg.instrument.id, leg.is_buy, leg.ratio) for leg in self.legs),
            self.amount,
            self.limit_net_price,
            self.nonce,
            self.deadline,
        )

    def digest(self, chain_id: int) -> bytes:
        """The EIP-712 digest the wallet reports in its ``StrategyFilled`` event."""
        return strategy_digest(self.strategy(), chain_id, self.wallet)


@dataclass(frozen=True, slots=True)
class SwapSettlement:
    """A Uniswap v2 swap run inside the batch: ``amount_in`` of ``token_in`` to ``pair`` for
    exactly ``amount_out`` of the pair's other token."""

    item_id: str
    pair: str
    token_in: str
    amount_in: int
    amount_out: int


SettlementItem: TypeAlias = OrderSettlement | StrategySettlement | SwapSettlement


@dataclass(frozen=True, slots=True)
class SettlementGroup:
    """Items that settle together or not at all (never split by batching or bisection)."""

    group_id: str
    items: tuple[SettlementItem, ...]

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError(f"settlement group {self.group_id!r} is empty")
        ids = [item.item_id for item in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError(f"settlement group {self.group_id!r} repeats an item id")

    @property
    def orders(self) -> tuple[OrderSettlement, ...]:
        return tuple(i for i in self.items if isinstance(i, OrderSettlement))

    @property
    def strategies(self) -> tuple[StrategySettlement, ...]:
        return tuple(i for i in self.items if isinstance(i, StrategySettlement))

    @property
    def swaps(self) -> tuple[SwapSettlement, ...]:
        return tuple(i for i in self.items if isinstance(i, SwapSettlement))

    def instruments(self) -> frozenset[bytes]:
        """Ids of every instrument the group trades."""
        ids = {o.instrument.id for o in self.orders}
        for s in self.strategies:
            ids.update(leg.instrument.id for leg in s.legs)
        return frozenset(ids)

    def wallets(self) -> frozenset[str]:
        """Checksummed addresses of every wallet the group touches."""
        found = {Web3.to_checksum_address(o.wallet) for o in self.orders}
        found.update(Web3.to_checksum_address(s.wallet) for s in self.strategies)
        return frozenset(found)

    def contract_signatures(self) -> frozenset[bytes]:
        """The distinct EIP-1271 signatures the group's items carry (``Batch.signatures``
        holds at most ``MAX_CONTRACT_SIGS`` per batch)."""
        items: list[OrderSettlement | StrategySettlement] = [*self.orders, *self.strategies]
        return frozenset(i.signature for i in items if is_contract_signature(i.signature))

    def tokens(self) -> frozenset[str]:
        """Tokens the group can move (as ``Settlement.settle`` counts them: a spot
        instrument's base and quote, an option's quote, a swap's input token; a swap's output
        token is the pair's other token, which is not known without the chain)."""
        found: set[str] = set()
        instruments = [o.instrument for o in self.orders]
        instruments += [leg.instrument for s in self.strategies for leg in s.legs]
        for ins in instruments:
            if ins.kind == 0:
                found.add(Web3.to_checksum_address(ins.base))
            found.add(Web3.to_checksum_address(ins.quote))
        found.update(Web3.to_checksum_address(sw.token_in) for sw in self.swaps)
        return frozenset(found)
