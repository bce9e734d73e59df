# pragma version ~=0.4.3
"""
@title MarginWallet positions and margin
@notice The wallet's option positions (signed sizes by instrument, the open list, each
        option's metadata) and the margin rule over them (contracts/README.md, "Margin rule"),
        mirrored bit for bit by gateway/risk/wallet_margin.py.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed

from .. lib import orders
from .. lib import margin
from . import core

uses: core


interface ISettlementCollateral:
    def collateral_tokens() -> DynArray[address, MAX_COLLATERAL]: view
    def collateral_value(token: address, amount: uint256) -> uint256: view


MAX_OPEN: constant(uint256) = 16  # open option positions per wallet
MAX_COLLATERAL: constant(uint256) = 8
EXPIRY_MASK: constant(uint256) = (1 << 64) - 1


# option positions: instrument -> signed size in underlying base units
position: public(HashMap[bytes32, int256])
_open: HashMap[uint256, bytes32]  # index < open count -> instrument
# instrument -> underlying | expiry << 160 | is_call << 224
_option_meta: HashMap[bytes32, uint256]
_option_strike: HashMap[bytes32, uint256]
# the quote token all this wallet's options settle in (fixed while positions are open)
option_quote: public(address)


event PositionChanged:
    instrument: indexed(bytes32)
    size: int256


@external
@view
def open_positions() -> DynArray[bytes32, MAX_OPEN]:
    """
    @notice The option instruments in which this wallet has a non-zero position.
    @return DynArray The instrument ids.
    """
    return self._open_ids(core._open_count(core.config))


@external
@view
def option_meta(id: bytes32) -> (address, uint64, bool, uint256):
    """
    @notice What the wallet recorded of an option it traded.
    @param id The instrument id.
    @return (underlying, expiry, is_call, strike); zeros for an option it never held.
    """
    meta: uint256 = self._option_meta[id]
    return convert(meta & core.ADDRESS_MASK, address), convert((meta >> 160) & EXPIRY_MASK, uint64), (meta >> 224) & 1 == 1, self._option_strike[id]


@internal
@view
def _open_ids(count: uint256) -> DynArray[bytes32, MAX_OPEN]:
    ids: DynArray[bytes32, MAX_OPEN] = []
    for i: uint256 in range(MAX_OPEN):
        if i >= count:
            break
        ids.append(self._open[i])
    return ids


@internal
def _apply_position(id: bytes32, ins: orders.Instrument, delta: int256):
    config: uint256 = core.config
    count: uint256 = core._open_count(config)
    if self.option_quote != ins.quote:
        assert count == 0, "wallet: one option quote per wallet"
        self.option_quote = ins.quote
    prev: int256 = self.position[id]
    new: int256 = prev + delta
    self.position[id] = new
    if prev == 0:
        assert count < MAX_OPEN, "wallet: too many positions"
        self._open[count] = id
        core.config = (config & ~core.OPEN_MASK) | ((count + 1) << core.OPEN_SHIFT)
        if self._option_strike[id] == 0:
            self._option_meta[id] = convert(ins.base, uint256) | (convert(ins.expiry, uint256) << 160) | (convert(ins.is_call, uint256) << 224)
            self._option_strike[id] = ins.strike
    elif new == 0:
        self._remove_open(id)
    log PositionChanged(instrument=id, size=new)


@internal
def _remove_open(id: bytes32):
    config: uint256 = core.config
    n: uint256 = core._open_count(config)
    for i: uint256 in range(MAX_OPEN):
        if i >= n:
            break
        if self._open[i] == id:
            if i != n - 1:
                self._open[i] = self._open[n - 1]
            self._open[n - 1] = empty(bytes32)
            core.config = (config & ~core.OPEN_MASK) | ((n - 1) << core.OPEN_SHIFT)
            return


@internal
def _close_series(underlying: address, quote: address, expiry: uint64, price: uint256) -> int256:
    """
    @dev Closes every position of the series and returns its value at `price` in units of
         quote * 10**underlying_decimals (> 0: owed to the wallet). Price 0 means the series
         unwound with no price: positions close worth nothing.
    """
    total: int256 = 0
    if quote != self.option_quote:
        return 0
    ids: DynArray[bytes32, MAX_OPEN] = self._open_ids(core._open_count(core.config))
    for id: bytes32 in ids:
        meta: uint256 = self._option_meta[id]
        if convert(meta & core.ADDRESS_MASK, address) != underlying or convert((meta >> 160) & EXPIRY_MASK, uint64) != expiry:
            continue
        size: int256 = self.position[id]
        strike: uint256 = self._option_strike[id]
        if price > 0:
            if (meta >> 224) & 1 == 1:
                if price > strike:
                    total += size * convert(price - strike, int256)
            elif strike > price:
                total += size * convert(strike - price, int256)
        self.position[id] = 0
        self._remove_open(id)
        log PositionChanged(instrument=id, size=0)
    return total


@internal
@view
def _margin(config: uint256) -> (uint256, uint256, bool):
    count: uint256 = core._open_count(config)
    if count == 0:
        return 0, 0, True
    ids: DynArray[bytes32, MAX_OPEN] = self._open_ids(count)
    # group the open positions by series (underlying, expiry)
    series_keys: DynArray[uint256, MAX_OPEN] = []
    groups: DynArray[DynArray[margin.OptionPosition, MAX_OPEN], MAX_OPEN] = []
    for id: bytes32 in ids:
        meta: uint256 = self._option_meta[id]
        key: uint256 = meta & ((1 << 224) - 1)
        p: margin.OptionPosition = margin.OptionPosition(strike=self._option_strike[id], is_call=(meta >> 224) & 1 == 1, size=self.position[id])
        found: bool = False
        for g: uint256 in range(MAX_OPEN):
            if g >= len(series_keys):
                break
            if series_keys[g] == key:
                groups[g].append(p)
                found = True
                break
        if not found:
            series_keys.append(key)
            groups.append([p])
    required: uint256 = 0
    cover_tokens: DynArray[address, MAX_OPEN] = []
    cover_amounts: DynArray[uint256, MAX_OPEN] = []
    for g: uint256 in range(MAX_OPEN):
        if g >= len(series_keys):
            break
        underlying: address = convert(series_keys[g] & core.ADDRESS_MASK, address)
        unit: uint256 = 10**convert(staticcall IERC20Detailed(underlying).decimals(), uint256)
        req: uint256 = 0
        cover: uint256 = 0
        req, cover = margin.series_requirement(groups[g], unit)
        required += req
        if cover > 0:
            found: bool = False
            for c: uint256 in range(MAX_OPEN):
                if c >= len(cover_tokens):
                    break
                if cover_tokens[c] == underlying:
                    cover_amounts[c] += cover
                    found = True
                    break
            if not found:
                cover_tokens.append(underlying)
                cover_amounts.append(cover)
    # short calls must be covered by underlying held
    for c: uint256 in range(MAX_OPEN):
        if c >= len(cover_tokens):
            break
        if staticcall IERC20(cover_tokens[c]).balanceOf(self) < cover_amounts[c]:
            return required, 0, False
    quote: address = self.option_quote
    available: uint256 = staticcall IERC20(quote).balanceOf(self)
    if available >= required:
        return required, available, True
    # other collateral counts at oracle price with the settlement's per-asset haircut
    settlement: address = core._settlement_of(config)
    tokens: DynArray[address, MAX_COLLATERAL] = staticcall ISettlementCollateral(settlement).collateral_tokens()
    for token: address in tokens:
        if token == quote:
            continue
        balance: uint256 = staticcall IERC20(token).balanceOf(self)
        for c: uint256 in range(MAX_OPEN):
            if c >= len(cover_tokens):
                break
            if cover_tokens[c] == token:
                balance -= cover_amounts[c]
                break
        if balance > 0:
            available += staticcall ISettlementCollateral(settlement).collateral_value(token, balance)
    return required, available, available >= required


@external
@view
def margin_status() -> (uint256, uint256, bool):
    """
    @notice The margin rule evaluated now: quote required by the option portfolio, quote
            available (quote balance plus haircut collateral), and whether it holds
            (including the underlying cover of short calls).
    @return (required, available, ok)
    """
    return self._margin(core.config)


@internal
@view
def _check_margin():
    required: uint256 = 0
    available: uint256 = 0
    ok: bool = False
    required, available, ok = self._margin(core.config)
    assert ok, "wallet: margin"
