"""Expiry on anvil: the round at expiry is found by walking the bound feed's rounds back from
the latest, exactly the one `Settlement.settle_expiry` accepts; the fallbacks (the last round
before expiry once the grace is over, an unwind once the feed is dead) open when the contract
opens them. Time moves with anvil's evm_increaseTime / evm_mine."""

from __future__ import annotations

import pytest
from web3 import Web3
from web3.exceptions import ContractLogicError

from gateway.chain.deploy import DeployConfig, aggregator_contract, settlement_contract
from gateway.chain.expiry import (
    ExpiryError,
    RoundKind,
    read_series,
    round_at_expiry,
    settle_expiry,
)
from gateway.settlement.eip712 import series_id
from tests.chain.option_world import USDC, WETH, World, option, trade

pytestmark = pytest.mark.chain
FEED = 10**8  # the test aggregator's 8 decimals
GRACE = DeployConfig().expiry_grace


def now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


def advance_to(w3: Web3, timestamp: int) -> None:
    """Mine a block at `timestamp` or later (anvil's clock only moves forward)."""
    ahead = timestamp - now(w3)
    if ahead > 0:
        w3.provider.make_request("evm_increaseTime", [ahead])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    assert now(w3) >= timestamp


def set_answer(world: World, answer: int, updated_at: int | None = None) -> int:
    """A new round of the series' feed; returns its id."""
    feed = aggregator_contract(world.w3, world.d)
    if updated_at is None:
        world.operator.transact(feed.functions.set_answer(answer))
    else:
        world.operator.transact(feed.functions.set_answer_at(answer, updated_at))
    return int(feed.functions.latest_round().call())


def series(world: World) -> bytes:
    return series_id(world.d.weth, world.d.usdc, world.expiry)


def test_settles_at_the_first_round_at_or_after_expiry(world: World) -> None:
    """A short call struck at 3,000 settles at the round at expiry (3,100): later rounds and
    earlier ones are refused by the contract and never chosen; the buyer is paid 100 USDC."""
    w3, d = world.w3, world.d
    settlement = settlement_contract(w3, d)
    call = option(world, 3_000 * USDC, True)
    world.operator.transact(settlement.functions.settle(trade(world, call, WETH, 50 * USDC, 1)[2]))
    bound = read_series(w3, d, series(world))
    assert (bound.feed, bound.expiry, bound.feed_decimals) == (
        d.eth_usd_aggregator,
        world.expiry,
        8,
    )

    before = set_answer(world, 2_950 * FEED)
    early = round_at_expiry(w3, bound.feed, world.expiry, grace=GRACE)
    assert (early.kind, early.round) == (RoundKind.NOT_YET, None)
    with pytest.raises(ExpiryError, match="not expired"):
        settle_expiry(world.operator, d, series(world))

    advance_to(w3, world.expiry + 10)
    at = set_answer(world, 3_100 * FEED)
    set_answer(world, 3_400 * FEED)  # later and more convenient for the writer: not it
    later = set_answer(world, 3_500 * FEED)
    choice = round_at_expiry(w3, bound.feed, world.expiry, grace=GRACE)
    assert choice.kind is RoundKind.AT_EXPIRY
    assert choice.round == choice.at_expiry
    assert choice.round is not None and choice.round.round_id == at
    assert choice.round.answer == 3_100 * FEED and choice.round.updated_at >= world.expiry
    assert choice.before_expiry is not None
    assert choice.before_expiry.round_id == before
    assert choice.before_expiry.answer == 2_950 * FEED
    assert not choice.feed_dead

    # the contract agrees: neither a later round nor the one before expiry settles it
    sid = series(world)
    with pytest.raises(ContractLogicError, match="not the round at expiry"):
        settlement.functions.settle_expiry(sid, later).call()
    with pytest.raises(ContractLogicError, match="grace period not over"):
        settlement.functions.settle_expiry(sid, before).call()

    done = settle_expiry(world.operator, d, sid)
    assert (done.round_id, done.price, done.updated_at) == (
        at,
        3_100 * USDC,
        choice.round.updated_at,
    )
    assert (done.collected_quote, done.paid_quote) == (100 * USDC, 100 * USDC)
    assert settlement.functions.expiry_price(sid).call() == 3_100 * USDC
    with pytest.raises(ExpiryError, match="already settled"):
        settle_expiry(world.operator, d, sid)


def test_a_round_updated_exactly_at_expiry_is_the_round_at_expiry(world: World) -> None:
    option(world, 3_000 * USDC, False)
    set_answer(world, 2_990 * FEED, world.expiry - 1)
    exact = set_answer(world, 3_010 * FEED, world.expiry)
    set_answer(world, 3_020 * FEED, world.expiry + 1)
    advance_to(world.w3, world.expiry)
    choice = round_at_expiry(world.w3, world.d.eth_usd_aggregator, world.expiry, grace=GRACE)
    assert (choice.kind, choice.round_id) == (RoundKind.AT_EXPIRY, exact)
    assert settle_expiry(world.operator, world.d, series(world)).price == 3_010 * USDC


def test_without_a_round_at_expiry_the_last_round_before_settles_after_the_grace(
    world: World,
) -> None:
    w3 = world.w3
    option(world, 3_000 * USDC, True)
    last = set_answer(world, 2_900 * FEED)
    advance_to(w3, world.expiry + 1)
    waiting = round_at_expiry(w3, world.d.eth_usd_aggregator, world.expiry, grace=GRACE)
    assert waiting.kind is RoundKind.NOT_YET and "no round at expiry yet" in waiting.reason
    with pytest.raises(ExpiryError) as refused:
        settle_expiry(world.operator, world.d, series(world))
    assert refused.value.choice is not None and refused.value.choice.kind is RoundKind.NOT_YET
    # without the Settlement's grace the fallback is never chosen
    assert round_at_expiry(w3, world.d.eth_usd_aggregator, world.expiry).kind is (RoundKind.NOT_YET)

    advance_to(w3, world.expiry + GRACE)
    choice = round_at_expiry(w3, world.d.eth_usd_aggregator, world.expiry, grace=GRACE)
    assert (choice.kind, choice.round_id, choice.at_expiry) == (
        RoundKind.BEFORE_EXPIRY,
        last,
        None,
    )
    done = settle_expiry(world.operator, world.d, series(world))
    assert (done.round_id, done.price) == (last, 2_900 * USDC)


def test_a_bad_answer_at_expiry_falls_back_to_the_round_before_after_the_grace(
    world: World,
) -> None:
    w3 = world.w3
    option(world, 3_000 * USDC, True)
    last = set_answer(world, 2_800 * FEED)
    advance_to(w3, world.expiry + 5)
    bad = set_answer(world, 0)
    set_answer(world, 3_300 * FEED)  # a good answer, but not the round at expiry
    within = round_at_expiry(w3, world.d.eth_usd_aggregator, world.expiry, grace=GRACE)
    assert within.kind is RoundKind.NOT_YET and "no valid answer" in within.reason
    assert within.at_expiry is not None and within.at_expiry.round_id == bad

    advance_to(w3, world.expiry + GRACE)
    choice = round_at_expiry(w3, world.d.eth_usd_aggregator, world.expiry, grace=GRACE)
    assert (choice.kind, choice.round_id) == (RoundKind.BEFORE_EXPIRY, last)
    assert settle_expiry(world.operator, world.d, series(world)).price == 2_800 * USDC


def test_a_dead_feed_unwinds_after_twice_the_grace(world: World) -> None:
    w3 = world.w3
    settlement = settlement_contract(w3, world.d)
    option(world, 3_000 * USDC, True)
    set_answer(world, 0)  # the last round before expiry has no valid answer either
    advance_to(w3, world.expiry + 1)
    set_answer(world, -1)
    advance_to(w3, world.expiry + GRACE)
    choice = round_at_expiry(w3, world.d.eth_usd_aggregator, world.expiry, grace=GRACE)
    assert (choice.kind, choice.round, choice.feed_dead) == (RoundKind.NO_ROUND, None, True)
    with pytest.raises(ExpiryError, match="no usable round"):
        settle_expiry(world.operator, world.d, series(world))

    advance_to(w3, world.expiry + 2 * GRACE)
    done = settle_expiry(world.operator, world.d, series(world))
    assert (done.round_id, done.price) == (0, 0)
    assert settlement.functions.series_settled(series(world)).call()


def test_the_walk_passes_a_missing_round_to_the_earliest_round_at_expiry(world: World) -> None:
    """A round with updatedAt 0 does not exist for the contract. The walk passes it and names
    the earliest round at or after expiry, not the one right after the gap."""
    w3 = world.w3
    settlement = settlement_contract(w3, world.d)
    option(world, 3_000 * USDC, True)
    before = set_answer(world, 2_950 * FEED)
    advance_to(w3, world.expiry + 1)
    at = set_answer(world, 3_100 * FEED)
    gap = set_answer(world, 3_200 * FEED, 0)
    after_gap = set_answer(world, 3_300 * FEED)
    choice = round_at_expiry(w3, world.d.eth_usd_aggregator, world.expiry, grace=GRACE)
    assert (choice.kind, choice.round_id) == (RoundKind.AT_EXPIRY, at)
    assert choice.before_expiry is not None and choice.before_expiry.round_id == before
    assert gap == after_gap - 1
    # the contract refuses the round after a missing one: its predecessor must be before expiry
    with pytest.raises(ContractLogicError, match="not the round at expiry"):
        settlement.functions.settle_expiry(series(world), after_gap).call()
    assert settle_expiry(world.operator, world.d, series(world)).price == 3_100 * USDC


def test_a_gap_before_the_first_round_after_expiry_waits_for_the_grace(world: World) -> None:
    """The round past a missing round is not the round at expiry for the contract (a gap could
    make any later round look like the first one): nothing is chosen until the grace is over,
    then the last round before expiry, which the contract accepts."""
    w3, d = world.w3, world.d
    settlement = settlement_contract(w3, d)
    call = option(world, 3_000 * USDC, True)
    world.operator.transact(settlement.functions.settle(trade(world, call, WETH, 50 * USDC, 1)[2]))
    feed = read_series(w3, d, series(world)).feed
    before = set_answer(world, 2_900 * FEED)
    advance_to(w3, world.expiry + 5)
    set_answer(world, 3_000 * FEED, 0)  # a round that does not exist for the contract
    after_gap = set_answer(world, 3_100 * FEED)
    with pytest.raises(ContractLogicError, match="not the round at expiry"):
        settlement.functions.settle_expiry(series(world), after_gap).call()

    waiting = round_at_expiry(w3, feed, world.expiry, grace=GRACE)
    assert (waiting.kind, waiting.round) == (RoundKind.NOT_YET, None)
    assert "missing round" in waiting.reason

    advance_to(w3, world.expiry + GRACE)
    fallback = round_at_expiry(w3, feed, world.expiry, grace=GRACE)
    assert fallback.kind is RoundKind.BEFORE_EXPIRY
    assert fallback.round is not None and fallback.round.round_id == before
    done = settle_expiry(world.operator, d, series(world))
    assert (done.round_id, done.price) == (before, 2_900 * USDC)
