# pragma version ~=0.4.3
"""
@title TestMarginMath
@notice Exposes the pure margin math of lib/margin.vy so tests can compare it with the
        Python mirror. Tests only.
"""

from ..lib import margin


@external
@pure
def series_requirement(positions: DynArray[margin.OptionPosition, margin.MAX_SERIES_POSITIONS], unit: uint256) -> (uint256, uint256):
    """
    @notice (quote_required, underlying_cover) of one series.
    @param positions The series' positions.
    @param unit 10**underlying_decimals.
    @return (quote_required, underlying_cover)
    """
    return margin.series_requirement(positions, unit)


@external
@pure
def payoff_at(positions: DynArray[margin.OptionPosition, margin.MAX_SERIES_POSITIONS], cover: uint256, price: uint256) -> int256:
    """
    @notice The series payoff at `price` including `cover` underlying (quote * unit).
    @param positions The series' positions.
    @param cover Underlying units held as cover.
    @param price Quote units per whole underlying.
    @return int256 The payoff.
    """
    return margin.payoff_at(positions, cover, price)
