# pragma version ~=0.4.3
"""
@title PriceOracle
@notice Reads Chainlink AggregatorV3 feeds (latestRoundData) and returns prices in quote
        units per one whole asset (10**asset_decimals base units), e.g. WETH at 3,000 USDC is
        3000 * 10**6. Rejects non-positive answers, incomplete rounds, answers from the future,
        answers older than the feed's staleness bound and answers that moved more than the
        feed's deviation bound (bps) from the previous round.
"""

from snekmate.auth import ownable

from .interfaces import IAggregatorV3
from .lib import timelock

initializes: ownable
initializes: timelock[ownable := ownable]

exports: (
    ownable.owner,
    ownable.transfer_ownership,
    ownable.renounce_ownership,
    timelock.DELAY,
    timelock.change_eta,
    timelock.cancel_change,
)

SET_FEED: constant(bytes32) = keccak256("set_feed")


struct Feed:
    aggregator: address
    feed_decimals: uint8
    max_staleness: uint256  # seconds
    max_deviation_bps: uint256  # 0: no deviation bound


QUOTE_DECIMALS: public(immutable(uint8))

feeds: public(HashMap[address, Feed])


event FeedSet:
    asset: indexed(address)
    aggregator: indexed(address)
    feed_decimals: uint8
    max_staleness: uint256
    max_deviation_bps: uint256


@deploy
def __init__(quote_decimals: uint8, delay: uint256):
    """
    @notice Creates the oracle; prices are scaled to `quote_decimals` decimals.
    @param quote_decimals Decimals of the quote token (USDC: 6).
    @param delay Seconds a queued feed replacement waits before it can apply.
    """
    ownable.__init__()
    timelock.__init__(delay)
    QUOTE_DECIMALS = quote_decimals


@external
def queue_feed(asset: address, aggregator: address, max_staleness: uint256, max_deviation_bps: uint256) -> bytes32:
    """
    @notice Queues the replacement of an asset's feed; `set_feed` with the same arguments
            applies it after the delay. Owner only. Replacing a feed changes what haircut
            collateral is worth (margin, so withdrawals) and which feed later series bind, so
            it waits; series already registered keep the feed they bound.
    @param asset The asset.
    @param aggregator The new AggregatorV3-compatible feed.
    @param max_staleness The oldest acceptable answer, in seconds.
    @param max_deviation_bps The largest acceptable move from the previous round (0: off).
    @return bytes32 The change id.
    """
    return timelock._queue(SET_FEED, abi_encode(asset, aggregator, max_staleness, max_deviation_bps))


@external
def set_feed(asset: address, aggregator: address, max_staleness: uint256, max_deviation_bps: uint256):
    """
    @notice Sets the feed of an asset. Owner only. An asset's first feed applies at once
            (nothing can depend on a feed that does not exist); a replacement must have been
            queued with `queue_feed` and waited out the delay.
    @param asset The asset (ERC-20 token) the feed prices in quote terms.
    @param aggregator The AggregatorV3-compatible feed.
    @param max_staleness The oldest acceptable answer, in seconds.
    @param max_deviation_bps The largest acceptable move from the previous round (0: off).
    """
    if self.feeds[asset].aggregator == empty(address):
        ownable._check_owner()
    else:
        timelock._apply(SET_FEED, abi_encode(asset, aggregator, max_staleness, max_deviation_bps))
    assert aggregator != empty(address), "oracle: zero aggregator"
    assert max_staleness > 0, "oracle: zero staleness"
    assert max_deviation_bps <= 10_000, "oracle: deviation above 100%"
    d: uint8 = staticcall IAggregatorV3(aggregator).decimals()
    self.feeds[asset] = Feed(aggregator=aggregator, feed_decimals=d, max_staleness=max_staleness, max_deviation_bps=max_deviation_bps)
    log FeedSet(asset=asset, aggregator=aggregator, feed_decimals=d, max_staleness=max_staleness, max_deviation_bps=max_deviation_bps)


@internal
@view
def _scale(answer: int256, feed_decimals: uint8) -> uint256:
    a: uint256 = convert(answer, uint256)
    q: uint256 = convert(QUOTE_DECIMALS, uint256)
    f: uint256 = convert(feed_decimals, uint256)
    if q >= f:
        return a * 10**(q - f)
    return a // 10**(f - q)


@internal
@view
def _read(asset: address) -> (uint256, uint256):
    feed: Feed = self.feeds[asset]
    assert feed.aggregator != empty(address), "oracle: no feed"
    round_id: uint80 = 0
    answer: int256 = 0
    started_at: uint256 = 0
    updated_at: uint256 = 0
    answered_in: uint80 = 0
    round_id, answer, started_at, updated_at, answered_in = staticcall IAggregatorV3(feed.aggregator).latestRoundData()
    assert answer > 0, "oracle: bad answer"
    assert updated_at > 0 and answered_in >= round_id, "oracle: incomplete round"
    assert updated_at <= block.timestamp, "oracle: answer from the future"
    assert block.timestamp - updated_at <= feed.max_staleness, "oracle: stale"
    if feed.max_deviation_bps > 0 and round_id > 1:
        prev: int256 = 0
        _r: uint80 = 0
        _s: uint256 = 0
        _u: uint256 = 0
        _a: uint80 = 0
        _r, prev, _s, _u, _a = staticcall IAggregatorV3(feed.aggregator).getRoundData(round_id - 1)
        if prev > 0:
            p: uint256 = convert(prev, uint256)
            a: uint256 = convert(answer, uint256)
            diff: uint256 = a - p if a > p else p - a
            assert diff * 10_000 <= p * feed.max_deviation_bps, "oracle: deviation"
    return self._scale(answer, feed.feed_decimals), updated_at


@external
@view
def scale(answer: int256, feed_decimals: uint8) -> uint256:
    """
    @notice Converts a positive feed answer to quote units per whole asset.
    @param answer The feed's answer.
    @param feed_decimals The feed's decimals.
    @return uint256 The price.
    """
    assert answer > 0, "oracle: bad answer"
    return self._scale(answer, feed_decimals)


@external
@view
def price(asset: address) -> uint256:
    """
    @notice The checked latest price of `asset`.
    @param asset The asset.
    @return uint256 Quote units per one whole asset.
    """
    p: uint256 = 0
    t: uint256 = 0
    p, t = self._read(asset)
    return p


@external
@view
def price_with_time(asset: address) -> (uint256, uint256):
    """
    @notice The checked latest price of `asset` and when the feed updated it.
    @param asset The asset.
    @return (price in quote units per whole asset, updatedAt)
    """
    return self._read(asset)
