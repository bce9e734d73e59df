"""plan_batches / build_batch: pure packing within the contract's limits."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.chain import settlement_abi as abi
from gateway.settlement.batch_builder import (
    BatchLimits,
    GroupTooLargeError,
    batch_id_from_key,
    build_batch,
    is_paired_trade,
    plan_batches,
)
from gateway.settlement.items import OrderSettlement, SettlementGroup, SwapSettlement

WETH = "0x" + "11" * 20
USDC = "0x" + "22" * 20
SPOT = abi.Instrument.spot(WETH, USDC)
SIG = (1).to_bytes(32, "big") * 2 + bytes([27])


def _order(item_id: str, wallet: int, is_buy: bool) -> OrderSettlement:
    return OrderSettlement(
        item_id, "0x" + f"{wallet:040x}", SPOT, is_buy, 10, 3, wallet, 99, SIG, 10, 0
    )


def _trade(n: int) -> SettlementGroup:
    return SettlementGroup(
        f"g{n}", (_order(f"b{n}", 2 * n + 1, True), _order(f"s{n}", 2 * n + 2, False))
    )


def test_groups_fill_batches_in_order_and_never_split() -> None:
    groups = [_trade(n) for n in range(40)]  # 80 orders: 64 per batch, 2 per group
    batches = plan_batches(groups)
    assert [len(b) for b in batches] == [32, 8]
    assert [g for b in batches for g in b] == groups


def test_other_limits_close_a_batch() -> None:
    swap = SwapSettlement("sw", "0x" + "33" * 20, USDC, 5, 1)
    groups = [SettlementGroup(f"s{n}", (swap,)) for n in range(3)]
    assert [len(b) for b in plan_batches(groups, BatchLimits(max_swaps=2))] == [2, 1]
    wallets = [_trade(n) for n in range(5)]  # 2 wallets each
    assert [len(b) for b in plan_batches(wallets, BatchLimits(max_wallets=4))] == [2, 2, 1]


def test_a_group_over_a_limit_is_refused() -> None:
    with pytest.raises(GroupTooLargeError, match="orders"):
        plan_batches([_trade(0)], BatchLimits(max_orders=1))


def test_build_batch_and_batch_id() -> None:
    batch = build_batch(batch_id_from_key("batch-1"), [_trade(0), _trade(1)])
    assert batch[0] == batch_id_from_key("batch-1") < 2**256
    assert batch_id_from_key("batch-1") != batch_id_from_key("batch-2")
    assert len(batch[1]) == 1 and len(batch[2]) == 4


def _safe_trade(n: int, signature: bytes) -> SettlementGroup:
    """A trade whose buyer is a contract owner (its signature is not 65 bytes)."""
    buy = _order(f"b{n}", 2 * n + 1, True)
    buy = OrderSettlement(**{**{f: getattr(buy, f) for f in buy.__slots__}, "signature": signature})
    return SettlementGroup(f"g{n}", (buy, _order(f"s{n}", 2 * n + 2, False)))


def test_contract_signatures_are_a_batch_limit_and_travel_once() -> None:
    signatures = [bytes([n + 1]) * 130 for n in range(abi.MAX_CONTRACT_SIGS + 1)]
    groups = [_safe_trade(n, s) for n, s in enumerate(signatures)]
    assert groups[0].contract_signatures() == {signatures[0]}
    assert _trade(0).contract_signatures() == frozenset()
    assert [len(b) for b in plan_batches(groups)] == [abi.MAX_CONTRACT_SIGS, 1]
    # the same signature twice (one Safe signed one order that fills twice) counts once
    again = [_safe_trade(n, signatures[0]) for n in range(abi.MAX_CONTRACT_SIGS + 1)]
    [batch_groups] = plan_batches(again)
    batch = build_batch(1, batch_groups)
    assert batch[5] == [signatures[0]]
    buys = [o for o in batch[2] if o[2]]
    assert {o[7] for o in buys} == {abi.contract_signature_struct(0)}
    with pytest.raises(GroupTooLargeError, match="contract signatures"):
        plan_batches(groups[:1], BatchLimits(max_contract_signatures=0))


def _pool_fill(n: int, wallet: int) -> SettlementGroup:
    """A signed order's pool leg: its fill and the swap (the contract nets such a batch)."""
    swap = SwapSettlement(f"sw{n}", "0x" + "33" * 20, USDC, 5, 1)
    return SettlementGroup(f"p{n}", (_order(f"o{n}", wallet, True), swap))


def test_paired_trades_that_stand_alone_settle_apart_first() -> None:
    trades = [_trade(n) for n in range(5)]
    pool = _pool_fill(9, 999)
    groups = [trades[0], pool, *trades[1:]]
    batches = plan_batches(groups)
    assert batches == [trades, [pool]]
    assert all(is_paired_trade(t) for t in trades) and not is_paired_trade(pool)
    # one paired batch holds only pairs, side by side: the contract settles it wallet to wallet
    orders = build_batch(1, batches[0])[2]
    assert [o[2] for o in orders] == [True, False] * 5


def test_a_trade_sharing_an_order_with_a_netted_part_stays_with_it() -> None:
    trades = [_trade(n) for n in range(6)]
    # the buyer of trade 0 (wallet 1, nonce 1) also filled in the pool: one order, one tx
    pool = _pool_fill(9, 1)
    # trade 5's seller shares its order with trade 0's cluster through a second trade
    linked = SettlementGroup("g-link", (_order("b-link", 77, True), _order("s-link", 2, False)))
    groups = [*trades, linked, pool]
    batches = plan_batches(groups)
    assert batches == [trades[1:], [trades[0], linked, pool]]


def test_few_paired_trades_are_not_worth_a_batch_of_their_own() -> None:
    trades = [_trade(n) for n in range(3)]
    pool = _pool_fill(9, 999)
    assert plan_batches([*trades, pool]) == [[*trades, pool]]


def test_what_the_contract_would_not_pair_is_not_a_paired_trade() -> None:
    buy, sell = _order("b", 1, True), _order("s", 2, False)
    assert is_paired_trade(SettlementGroup("ok", (buy, sell)))
    for other in (
        replace(sell, quote=1),  # the sides disagree on the quote
        replace(sell, fill=9),  # or on the fill
        replace(sell, is_buy=True),  # two buys
        replace(sell, wallet=buy.wallet),  # one wallet
        replace(sell, instrument=abi.Instrument.spot(USDC, WETH)),  # two instruments
    ):
        assert not is_paired_trade(SettlementGroup("no", (buy, other)))
