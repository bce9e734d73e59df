# pragma version ~=0.4.3
"""
@title TestAggregator
@notice A Chainlink AggregatorV3-compatible feed whose answer anyone can set (tests and
        devnet only). Every `set_answer` starts a new round; past rounds stay readable
        through `getRoundData`.
"""

from ..interfaces import IAggregatorV3

implements: IAggregatorV3

struct Round:
    answer: int256
    started_at: uint256
    updated_at: uint256

decimals: public(uint8)
description: public(String[64])
version: public(uint256)
latest_round: public(uint80)
rounds: HashMap[uint80, Round]

event AnswerUpdated:
    current: indexed(int256)
    round_id: indexed(uint256)
    updated_at: uint256


@deploy
def __init__(decimals_: uint8, initial_answer: int256):
    """
    @notice Creates the feed with `decimals_` decimals and a first round.
    @param decimals_ Decimals of the answer (Chainlink USD feeds use 8).
    @param initial_answer The answer of round 1, updated now.
    """
    self.decimals = decimals_
    self.description = "Isthmus test aggregator"
    self.version = 4
    self._new_round(initial_answer, block.timestamp)


@internal
def _new_round(answer: int256, updated_at: uint256):
    round_id: uint80 = self.latest_round + 1
    self.latest_round = round_id
    self.rounds[round_id] = Round(answer=answer, started_at=updated_at, updated_at=updated_at)
    log AnswerUpdated(current=answer, round_id=convert(round_id, uint256), updated_at=updated_at)


@external
def set_answer(answer: int256):
    """
    @notice Starts a new round with `answer`, updated at the current block time.
    @param answer The new answer.
    """
    self._new_round(answer, block.timestamp)


@external
def set_answer_at(answer: int256, updated_at: uint256):
    """
    @notice Starts a new round with `answer` and an explicit `updatedAt` (to test staleness).
    @param answer The new answer.
    @param updated_at The round's `updatedAt`.
    """
    self._new_round(answer, updated_at)


@external
@view
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    """
    @notice The latest round, as Chainlink returns it.
    @return (roundId, answer, startedAt, updatedAt, answeredInRound)
    """
    r: Round = self.rounds[self.latest_round]
    return (self.latest_round, r.answer, r.started_at, r.updated_at, self.latest_round)


@external
@view
def getRoundData(round_id: uint80) -> (uint80, int256, uint256, uint256, uint80):
    """
    @notice A past round.
    @param round_id The round to read (1 .. latest_round).
    @return (roundId, answer, startedAt, updatedAt, answeredInRound)
    """
    assert round_id > 0 and round_id <= self.latest_round, "no data present"
    r: Round = self.rounds[round_id]
    return (round_id, r.answer, r.started_at, r.updated_at, round_id)
