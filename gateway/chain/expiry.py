"""Settling an options series at expiry: which feed round to name, and the call that names it.

``Settlement.settle_expiry(series, round_id)`` prices a series at one round of the feed the
series bound when it was listed, and accepts only *the round at expiry*: the first round
updated at or after expiry (its previous round is missing or updated before expiry), so no
caller can pick a later, more convenient answer. Once ``EXPIRY_GRACE`` has passed with no
usable round at expiry (none yet, or its answer is not positive) the last round before expiry
settles it instead; once twice the grace has passed with a feed that no longer answers,
``unwind_expiry`` closes every position at no payoff.

:func:`round_at_expiry` finds that round by walking back from ``latestRoundData`` with
``getRoundData``, judging each round exactly as the contract's ``_round`` does (a round that
reverts, has ``updatedAt == 0`` or ``answeredInRound < roundId`` does not exist). It walks past
a few missing rounds (incomplete ones) to reach the earliest round at or after expiry, and
stops at a longer gap (a Chainlink proxy's round ids jump by 2**64 between phases; the contract
accepts the round after a missing one as the round at expiry).
:func:`settle_expiry` sends whichever of the two calls the chain accepts now.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.exceptions import Web3Exception
from web3.types import BlockIdentifier

from gateway.chain.deploy import Deployment, settlement_contract
from gateway.chain.transactions import Sender, event_logs

AGGREGATOR_ABI: Final[list[dict[str, Any]]] = [
    {
        "type": "function",
        "name": name,
        "stateMutability": "view",
        "inputs": inputs,
        "outputs": [
            {"name": "roundId", "type": "uint80"},
            {"name": "answer", "type": "int256"},
            {"name": "startedAt", "type": "uint256"},
            {"name": "updatedAt", "type": "uint256"},
            {"name": "answeredInRound", "type": "uint80"},
        ],
    }
    for name, inputs in (
        ("latestRoundData", []),
        ("getRoundData", [{"name": "roundId", "type": "uint80"}]),
    )
]
DEFAULT_MAX_ROUNDS: Final = 10_000  # rounds walked back before giving up (a settle that late)
MAX_MISSING_ROUNDS: Final = 16  # consecutive missing rounds walked past (incomplete ones)


class ExpiryError(RuntimeError):
    """The series cannot be settled (unknown, already settled, or nothing the contract
    accepts yet: ``choice`` says why)."""

    def __init__(self, message: str, choice: RoundChoice | None = None) -> None:
        super().__init__(message)
        self.choice = choice


class RoundKind(enum.StrEnum):
    AT_EXPIRY = "at_expiry"  # the round at expiry: settles now
    BEFORE_EXPIRY = "before_expiry"  # grace over, no usable round at expiry: the last before
    NOT_YET = "not_yet"  # nothing settles it yet: wait (for expiry, a round, or the grace)
    NO_ROUND = "no_round"  # grace over, no usable round: only an unwind, once the feed is dead


@dataclass(frozen=True, slots=True)
class FeedRound:
    round_id: int
    answer: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class RoundChoice:
    """What ``settle_expiry`` can be called with now, and what the walk saw."""

    kind: RoundKind
    round: FeedRound | None  # the round to pass (AT_EXPIRY or BEFORE_EXPIRY)
    at_expiry: FeedRound | None  # the round at expiry if the feed has one (usable or not)
    before_expiry: FeedRound | None  # the last round before expiry the walk reached
    feed_dead: bool  # latestRoundData reverts or is not positive (what unwind_expiry needs)
    now: int  # the block time judged at
    reason: str

    @property
    def round_id(self) -> int | None:
        return None if self.round is None else self.round.round_id


@dataclass(frozen=True, slots=True)
class Series:
    """``Settlement.series(id)``: the series and the feed it bound at listing."""

    series_id: bytes
    underlying: ChecksumAddress
    quote: ChecksumAddress
    expiry: int
    unit: int
    feed: ChecksumAddress
    feed_decimals: int


@dataclass(frozen=True, slots=True)
class ExpirySettlement:
    """The ``ExpirySettled`` event of a settled (or unwound: ``round_id`` 0) series."""

    series_id: bytes
    round_id: int
    price: int  # quote units per whole underlying; 0: unwound
    updated_at: int
    collected_quote: int
    collected_underlying: int
    paid_quote: int
    paid_underlying: int
    tx_hash: str
    block_number: int


def _read_round(aggregator: Any, round_id: int, block: BlockIdentifier) -> FeedRound | None:
    """A round as ``Settlement._round`` judges it (None: it does not exist)."""
    try:
        rid, answer, _started, updated, answered_in = aggregator.functions.getRoundData(
            round_id
        ).call(block_identifier=block)
    except (Web3Exception, ValueError):
        return None
    if int(updated) == 0 or int(answered_in) < int(rid):
        return None
    return FeedRound(round_id, int(answer), int(updated))


def round_at_expiry(
    w3: Web3,
    aggregator: str,
    expiry: int,
    *,
    grace: int | None = None,
    block_identifier: BlockIdentifier = "latest",
    max_rounds: int = DEFAULT_MAX_ROUNDS,
) -> RoundChoice:
    """The round ``Settlement.settle_expiry`` accepts for ``expiry`` on ``aggregator`` now.

    ``grace`` is the Settlement's ``EXPIRY_GRACE()``; without it the fallback to the last
    round before expiry is never chosen."""
    block = w3.eth.get_block(block_identifier)
    now = int(block["timestamp"])
    number = int(block["number"])
    feed = w3.eth.contract(address=Web3.to_checksum_address(aggregator), abi=AGGREGATOR_ABI)
    grace_over = grace is not None and now >= expiry + grace

    def choice(
        kind: RoundKind,
        reason: str,
        chosen: FeedRound | None = None,
        at: FeedRound | None = None,
        before: FeedRound | None = None,
        dead: bool = False,
    ) -> RoundChoice:
        return RoundChoice(kind, chosen, at, before, dead, now, reason)

    try:
        latest_id, latest_answer, *_rest = feed.functions.latestRoundData().call(
            block_identifier=number
        )
    except (Web3Exception, ValueError):
        kind = RoundKind.NO_ROUND if grace_over else RoundKind.NOT_YET
        return choice(kind, "the feed's latestRoundData reverts", dead=True)
    dead = int(latest_answer) <= 0

    # walk back through the rounds updated at or after expiry; `at` ends as the earliest of
    # them (its previous round is missing or before expiry: what the contract requires)
    at: FeedRound | None = None
    before: FeedRound | None = None
    round_id = int(latest_id)
    missing = 0
    for _ in range(max_rounds):
        if round_id <= 0:
            break
        found = _read_round(feed, round_id, number)
        round_id -= 1
        if found is None:
            missing += 1  # e.g. an incomplete round; a long gap is a phase change: stop
            if missing > MAX_MISSING_ROUNDS:
                break
            continue
        missing = 0
        if found.updated_at < expiry:
            before = found
            break
        at = found
    else:
        raise ExpiryError(f"more than {max_rounds} rounds after expiry; pass a larger max_rounds")

    # the contract takes a round as the one at expiry only if the round right before it
    # exists and is before expiry (or it is the feed's first round): after a gap, the round
    # past the gap is not it, and only the fallback below can settle the series
    at_usable = at is not None and (
        at.round_id == 1 if before is None else at.round_id == before.round_id + 1
    )
    if now < expiry:
        return choice(RoundKind.NOT_YET, "not expired", None, at, before, dead)
    if at is not None and at.answer > 0 and at_usable:
        return choice(RoundKind.AT_EXPIRY, "the round at expiry", at, at, before, dead)
    if not grace_over:
        why = (
            "no round at expiry yet"
            if at is None
            else "a missing round precedes the first round after expiry"
            if not at_usable
            else "the round at expiry has no valid answer"
        )
        return choice(
            RoundKind.NOT_YET, f"{why}; the grace period is not over", None, at, before, dead
        )
    # the contract wants the last round before expiry whose next round is missing or an
    # unusable round at expiry: `before` is exactly that (its next round is `at` or none)
    if before is not None and before.answer > 0:
        return choice(
            RoundKind.BEFORE_EXPIRY,
            "the last round before expiry (grace over)",
            before,
            at,
            before,
            dead,
        )
    return choice(RoundKind.NO_ROUND, "no usable round at or before expiry", None, at, before, dead)


def read_series(w3: Web3, deployment: Deployment, series_id: bytes) -> Series:
    """The series as the Settlement stored it at listing."""
    settlement = settlement_contract(w3, deployment)
    underlying, quote, expiry, unit, feed, feed_decimals = settlement.functions.series(
        series_id
    ).call()
    if int(unit) == 0:
        raise ExpiryError(f"unknown series 0x{series_id.hex()}")
    return Series(
        series_id,
        Web3.to_checksum_address(underlying),
        Web3.to_checksum_address(quote),
        int(expiry),
        int(unit),
        Web3.to_checksum_address(feed),
        int(feed_decimals),
    )


def settle_expiry(
    sender: Sender,
    deployment: Deployment,
    series_id: bytes,
    *,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
) -> ExpirySettlement:
    """Settle ``series_id`` at its feed's round at expiry (or its fallbacks: the last round
    before expiry once the grace is over, an unwind once twice the grace is over and the feed
    is dead). Anyone may send it. Raises :class:`ExpiryError` when nothing is accepted yet."""
    w3 = sender.w3
    settlement = settlement_contract(w3, deployment)
    series = read_series(w3, deployment, series_id)
    if settlement.functions.series_settled(series_id).call():
        raise ExpiryError(f"series 0x{series_id.hex()} is already settled")
    grace = int(settlement.functions.EXPIRY_GRACE().call())
    choice = round_at_expiry(w3, series.feed, series.expiry, grace=grace, max_rounds=max_rounds)
    if choice.round is not None:
        fn = settlement.functions.settle_expiry(series_id, choice.round.round_id)
    elif choice.feed_dead and choice.now >= series.expiry + 2 * grace:
        fn = settlement.functions.unwind_expiry(series_id)
    else:
        raise ExpiryError(f"series 0x{series_id.hex()} cannot settle yet: {choice.reason}", choice)
    receipt = sender.transact(fn)
    [event] = event_logs(settlement, "ExpirySettled", receipt)
    args = event["args"]
    return ExpirySettlement(
        bytes(args["series"]),
        int(args["round_id"]),
        int(args["price"]),
        int(args["updated_at"]),
        int(args["collected_quote"]),
        int(args["collected_underlying"]),
        int(args["paid_quote"]),
        int(args["paid_underlying"]),
        Web3.to_hex(receipt["transactionHash"]),
        int(receipt["blockNumber"]),
    )
