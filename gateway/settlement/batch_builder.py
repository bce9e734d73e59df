"""Settlement groups -> ``Settlement.settle`` / ``settle_pairs`` batches (pure; no I/O).

:func:`plan_batches` packs groups, in the order given, into as few batches as the contract's
per-batch limits allow (first fit into the open batch, a new batch when the next group does
not fit; order is kept so that earlier fills settle first). A group never spans two batches.
The contract settles a batch made only of spot trades between two signed orders wallet to
wallet (``settle_pairs``, ~22 % less gas per trade); one swap, strategy or option in a batch
nets all of it through the Settlement (``settle``). So when enough such trades stand on
their own (no order of theirs has another part in this flush, which must settle in the same
transaction), they go first, in batches of their own.
:func:`settle_call` turns one planned batch into the contract call through
:class:`gateway.chain.settlement_abi.BatchBuilder` (which re-checks every limit):
``settle_pairs`` when it is all paired trades, else ``settle``.

Batch ids: the contract takes a ``uint256``; :func:`batch_id_from_key` maps our batch id
string to ``int.from_bytes(keccak256(utf-8 key), "big")``, so the on-chain id is stable
across restarts and an auditor can recompute it from the string alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import keccak

from gateway.chain import settlement_abi as abi
from gateway.settlement.items import (
    OrderSettlement,
    SettlementGroup,
    StrategySettlement,
    SwapSettlement,
)


class GroupTooLargeError(ValueError):
    """A single group exceeds a per-batch limit, so no batch can hold it."""

    def __init__(self, group: SettlementGroup, reason: str) -> None:
        super().__init__(f"group {group.group_id!r} cannot fit in any batch: {reason}")
        self.group = group
        self.reason = reason


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """Per-batch bounds of ``contracts/Settlement.vy`` (defaults: the contract's constants)."""

    max_orders: int = abi.MAX_ORDERS
    max_strategies: int = abi.MAX_STRATEGIES
    max_swaps: int = abi.MAX_SWAPS
    max_instruments: int = abi.MAX_BATCH_INSTRUMENTS
    max_wallets: int = abi.MAX_WALLETS
    max_tokens: int = abi.MAX_BATCH_TOKENS
    max_contract_signatures: int = abi.MAX_CONTRACT_SIGS


@dataclass(slots=True)
class _Usage:
    orders: int = 0
    strategies: int = 0
    swaps: int = 0
    instruments: set[bytes] = field(default_factory=set)
    wallets: set[str] = field(default_factory=set)
    tokens: set[str] = field(default_factory=set)
    contract_signatures: set[bytes] = field(default_factory=set)

    def overflow(self, group: SettlementGroup, limits: BatchLimits) -> str | None:
        """Why ``group`` does not fit on top of this usage (None: it fits)."""
        checks = (
            (self.orders + len(group.orders), limits.max_orders, "orders"),
            (self.strategies + len(group.strategies), limits.max_strategies, "strategies"),
            (self.swaps + len(group.swaps), limits.max_swaps, "swaps"),
            (len(self.instruments | group.instruments()), limits.max_instruments, "instruments"),
            (len(self.wallets | group.wallets()), limits.max_wallets, "wallets"),
            (len(self.tokens | group.tokens()), limits.max_tokens, "tokens"),
            (
                len(self.contract_signatures | group.contract_signatures()),
                limits.max_contract_signatures,
                "contract signatures",
            ),
        )
        for used, limit, what in checks:
            if used > limit:
                return f"{used} {what} > {limit}"
        return None

    def add(self, group: SettlementGroup) -> None:
        self.orders += len(group.orders)
        self.strategies += len(group.strategies)
        self.swaps += len(group.swaps)
        self.instruments |= group.instruments()
        self.wallets |= group.wallets()
        self.tokens |= group.tokens()
        self.contract_signatures |= group.contract_signatures()


# A batch of its own costs ~41,000 gas before its trades (bench/gas.py: one paired trade
# 110,459 against 69,403 per trade at 32), and pairing saves ~20,000 per trade (89,401
# netted): from two or three trades up the paired batch pays for itself; four leaves room
# for the batch's fixed costs on a busier chain.
MIN_PAIRED_TRADES_APART = 4


def is_paired_trade(group: SettlementGroup) -> bool:
    """Whether ``group`` is what the contract settles wallet to wallet: two signed orders on
    one spot instrument, opposite sides, the same fill and quote, two different wallets."""
    if len(group.items) != 2 or len(group.orders) != 2:
        return False
    a, b = group.orders
    return (
        a.instrument.id == b.instrument.id
        and a.instrument.kind == 0
        and a.is_buy != b.is_buy
        and a.fill == b.fill
        and a.quote == b.quote
        and a.wallet.lower() != b.wallet.lower()
    )


def _signed_keys(group: SettlementGroup) -> list[tuple[str, int]]:
    """(wallet, nonce) of every signed order and strategy of ``group``."""
    items: list[OrderSettlement | StrategySettlement] = [*group.orders, *group.strategies]
    return [(item.wallet.lower(), item.nonce) for item in items]


def _paired_apart(
    groups: Sequence[SettlementGroup],
) -> tuple[list[SettlementGroup], list[SettlementGroup]]:
    """(paired trades that may settle in batches of their own, everything else), each in
    the order given. Groups that share a signed order are one cluster (the parts of one
    order): a cluster goes apart only when every group of it is a paired trade. No split
    when it would not pay."""
    parent = list(range(len(groups)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_user: dict[tuple[str, int], int] = {}
    for i, group in enumerate(groups):
        for key in _signed_keys(group):
            j = first_user.setdefault(key, i)
            parent[root(i)] = root(j)
    mixed = {root(i) for i, g in enumerate(groups) if not is_paired_trade(g)}
    apart_at = [i for i in range(len(groups)) if root(i) not in mixed]
    if len(apart_at) < MIN_PAIRED_TRADES_APART or len(apart_at) == len(groups):
        return [], list(groups)
    chosen = set(apart_at)
    return [groups[i] for i in apart_at], [g for i, g in enumerate(groups) if i not in chosen]


def plan_batches(
    groups: Sequence[SettlementGroup], limits: BatchLimits | None = None
) -> list[list[SettlementGroup]]:
    """Pack ``groups`` into batches within ``limits``: paired trades that stand on their own
    first (see the module's docstring), then the rest, each part in the order given.

    Raises :class:`GroupTooLargeError` for a group that exceeds a limit on its own (it needs
    splitting upstream; silently dropping it would lose fills)."""
    limits = limits or BatchLimits()
    apart, rest = _paired_apart(groups)
    return _pack(apart, limits) + _pack(rest, limits)


def _pack(groups: Sequence[SettlementGroup], limits: BatchLimits) -> list[list[SettlementGroup]]:
    """First fit, in order."""
    batches: list[list[SettlementGroup]] = []
    current: list[SettlementGroup] = []
    usage = _Usage()
    for group in groups:
        alone = _Usage().overflow(group, limits)
        if alone is not None:
            raise GroupTooLargeError(group, alone)
        if usage.overflow(group, limits) is not None:
            batches.append(current)
            current, usage = [], _Usage()
        current.append(group)
        usage.add(group)
    if current:
        batches.append(current)
    return batches


def batch_id_from_key(key: str) -> int:
    """The ``uint256`` batch id for our batch id string: keccak256 of its UTF-8 bytes."""
    return int.from_bytes(keccak(text=key), "big")


def batch_builder(batch_id: int, groups: Sequence[SettlementGroup]) -> abi.BatchBuilder:
    """Every item of ``groups`` in one builder. Within the batch, orders, strategies and swaps
    each keep the groups' order (the contract applies all orders, then all strategies, then
    all swaps)."""
    builder = abi.BatchBuilder(batch_id)
    for group in groups:
        for item in group.items:
            add_item(builder, item)
    return builder


def build_batch(batch_id: int, groups: Sequence[SettlementGroup]) -> tuple[Any, ...]:
    """The ``Batch`` tuple for ``Settlement.settle`` holding every item of ``groups``."""
    return batch_builder(batch_id, groups).build()


def settle_call(settlement: Any, batch_id: int, groups: Sequence[SettlementGroup]) -> Any:
    """The call that settles ``groups`` (each paired trade's two orders are one group's, so
    they are neighbours): see :func:`settle_function`."""
    return settle_function(settlement, batch_builder(batch_id, groups))


def settle_function(settlement: Any, builder: abi.BatchBuilder) -> Any:
    """``settlement.settle_pairs`` for a batch laid out as paired trades, else ``settle``."""
    pairs = builder.build_pairs()
    if pairs is not None:
        return settlement.functions.settle_pairs(pairs)
    return settlement.functions.settle(builder.build())


def add_item(
    builder: abi.BatchBuilder, item: OrderSettlement | StrategySettlement | SwapSettlement
) -> None:
    """Append one settlement item to ``builder``."""
    if isinstance(item, OrderSettlement):
        builder.add_order(
            item.wallet,
            item.instrument,
            item.order(),
            item.signature,
            item.fill,
            item.quote,
        )
    elif isinstance(item, StrategySettlement):
        builder.add_strategy(
            item.wallet,
            [leg.instrument for leg in item.legs],
            item.strategy(),
            item.signature,
            item.fill,
            [leg.quote for leg in item.legs],
        )
    else:
        builder.add_swap(item.pair, item.token_in, item.amount_in, item.amount_out)
