# pragma version ~=0.4.3
"""
@title Isthmus margin math
@notice Pure integer math of the margin rule (see contracts/README.md, "Margin rule").
        For the options of one series (underlying, quote, expiry) the payoff at expiry is
        piecewise linear in the price P with kinks at the strikes, so its minimum over
        P >= 0 lies at P = 0 or at a strike once the slope beyond the last strike is made
        non-negative with underlying cover.
"""

MAX_SERIES_POSITIONS: constant(uint256) = 16


struct OptionPosition:
    strike: uint256  # quote units per whole underlying
    is_call: bool
    size: int256  # underlying base units; long > 0, short < 0


@internal
@pure
def payoff_at(positions: DynArray[OptionPosition, MAX_SERIES_POSITIONS], cover: uint256, price: uint256) -> int256:
    """
    @dev Sum over positions of size * intrinsic(price), plus cover * price, in units of
         quote * 10**underlying_decimals (not yet divided).
    """
    total: int256 = convert(cover * price, int256)
    for p: OptionPosition in positions:
        if p.is_call:
            if price > p.strike:
                total += p.size * convert(price - p.strike, int256)
        elif p.strike > price:
            total += p.size * convert(p.strike - price, int256)
    return total


@internal
@pure
def series_requirement(positions: DynArray[OptionPosition, MAX_SERIES_POSITIONS], unit: uint256) -> (uint256, uint256):
    """
    @dev Returns (quote_required, underlying_cover) for one series.
         underlying_cover = max(0, -sum of call sizes): underlying tokens that must be held so
         the payoff's slope beyond the highest strike is >= 0 (otherwise a short call's loss is
         unbounded). quote_required = ceil(max(0, -min over P in {0} U strikes of
         payoff_at(P)) / unit) with unit = 10**underlying_decimals.
    """
    net_calls: int256 = 0
    for p: OptionPosition in positions:
        if p.is_call:
            net_calls += p.size
    cover: uint256 = 0
    if net_calls < 0:
        cover = convert(-net_calls, uint256)
    worst: int256 = self.payoff_at(positions, cover, 0)
    for p: OptionPosition in positions:
        worst = min(worst, self.payoff_at(positions, cover, p.strike))
    if worst >= 0:
        return 0, cover
    loss: uint256 = convert(-worst, uint256)
    return (loss + unit - 1) // unit, cover
