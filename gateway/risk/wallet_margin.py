"""The whole-wallet margin rule of ``MarginWallet.margin_status()``, mirrored bit for bit.

``gateway.risk.margin`` mirrors the per-series math (``contracts/lib/margin.vy``); this module
mirrors what ``MarginWallet._margin`` does around it, in the same order and with the same
integer rounding:

1. no open position: ``(0, 0, True)``;
2. open positions grouped by series ``(underlying, expiry)`` in the order of the wallet's open
   list; ``required`` = sum of the series' quote requirements; the underlying cover of net
   short calls summed per underlying;
3. any underlying held below its cover: ``(required, 0, False)``;
4. option-quote balance >= required: ``(required, quote balance, True)``;
5. otherwise ``available`` = quote balance + for each of the Settlement's collateral tokens
   (its ``collateral_tokens()`` order, the option quote skipped) with ``balance - cover > 0``:
   ``amount * price // unit * (10000 - haircut_bps) // 10000``
   (``Settlement.collateral_value``); ``ok = available >= required``.

Arithmetic is checked like the EVM's: where the contract would revert (uint256 / int256
overflow, an oracle read that reverts) :func:`margin_status` raises :class:`MarginReverts`.

:func:`apply_fills` / :meth:`WalletState.after_fills` apply hypothetical fills the way
``MarginWallet._apply_leg`` / ``_apply_position`` do (position deltas, the open list's
append / swap-remove order, premium paid or received in quote, the one-option-quote rule,
the 16-position cap, net outflows that must be covered by the balance), so a pre-trade check
can ask whether a wallet still passes the rule after an order.

Pure: no I/O. Addresses are compared case-insensitively (stored lower-case). Money and sizes
are integers in token base units; prices are quote units per whole token.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, NamedTuple

from gateway.risk.margin import MAX_SERIES_POSITIONS, OptionPosition

MAX_OPEN: Final = 16  # MarginWallet.MAX_OPEN
BPS: Final = 10_000  # Settlement.BPS
UINT256_MAX: Final = 2**256 - 1
INT256_MAX: Final = 2**255 - 1
INT256_MIN: Final = -(2**255)


class MarginReverts(ArithmeticError):
    """``margin_status()`` would revert for this state (checked overflow, an oracle price
    that cannot be read, an underlying whose ``decimals()`` is out of range)."""


class MissingState(KeyError):
    """The state lacks a balance or decimals the rule needs (read them; never guessed)."""


class FillRejected(ValueError):
    """The wallet would refuse these fills (the whole batch reverts)."""


# ---------------------------------------------------------------------------- types


def _addr(value: str) -> str:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 42:
        raise ValueError(f"not an address: {value!r}")
    return value.lower()


@dataclass(frozen=True, slots=True)
class SeriesPosition:
    """One open option position of the wallet (``position(id)`` with its instrument)."""

    underlying: str
    expiry: int  # unix seconds
    strike: int  # quote units per whole underlying
    is_call: bool
    size: int  # underlying base units; long > 0, short < 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "underlying", _addr(self.underlying))

    @property
    def key(self) -> tuple[str, int, int, bool]:
        """Identifies the instrument within one wallet (its option quote is fixed)."""
        return (self.underlying, self.expiry, self.strike, self.is_call)

    @property
    def series(self) -> tuple[str, int]:
        return (self.underlying, self.expiry)


@dataclass(frozen=True, slots=True)
class CollateralToken:
    """One entry of ``Settlement.collateral_tokens()`` with what ``collateral_value`` uses."""

    token: str
    price: int | None  # PriceOracle.price(token); None: the oracle read reverts
    unit: int  # 10**decimals (Settlement's unit for the token; 0: not collateral)
    haircut_bps: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "token", _addr(self.token))

    def value(self, amount: int) -> int:
        """``Settlement.collateral_value(token, amount)`` (raises where it reverts)."""
        if self.unit == 0 or amount == 0:
            return 0
        if self.price is None:
            raise MarginReverts(f"no oracle price for {self.token}")
        gross = _u(amount * self.price) // self.unit
        return _u(gross * (BPS - self.haircut_bps)) // BPS


class MarginStatus(NamedTuple):
    """``MarginWallet.margin_status() -> (required, available, ok)``."""

    required: int
    available: int
    ok: bool


@dataclass(frozen=True, slots=True)
class OptionFill:
    """One option leg applied to the wallet: buy (``is_buy``) or sell ``amount`` underlying
    base units of the option for ``quote_amount`` quote units (paid on a buy, received on a
    sell). ``quote``: the instrument's quote token (default: the state's option quote)."""

    underlying: str
    expiry: int
    strike: int
    is_call: bool
    is_buy: bool
    amount: int
    quote_amount: int
    quote: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "underlying", _addr(self.underlying))
        if self.quote is not None:
            object.__setattr__(self, "quote", _addr(self.quote))
        if self.amount < 0 or self.quote_amount < 0:
            raise ValueError("amount and quote_amount are unsigned")


@dataclass(frozen=True, slots=True)
class SpotFill:
    """One spot leg: buy (``is_buy``) or sell ``amount`` of ``base`` for ``quote_amount``."""

    base: str
    quote: str
    is_buy: bool
    amount: int
    quote_amount: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", _addr(self.base))
        object.__setattr__(self, "quote", _addr(self.quote))
        if self.amount < 0 or self.quote_amount < 0:
            raise ValueError("amount and quote_amount are unsigned")


Fill = OptionFill | SpotFill


@dataclass(frozen=True, slots=True)
class WalletState:
    """What ``MarginWallet._margin`` reads, at one block.

    ``positions``: the wallet's open list in its order (``open_positions()``).
    ``balances``: ERC-20 balances of the wallet; must hold the option quote, every underlying
    with a position and every collateral token (a missing one raises :class:`MissingState`).
    ``decimals``: ``decimals()`` of every underlying with a position.
    ``collateral``: ``Settlement.collateral_tokens()`` in its order, with price and haircut.
    """

    option_quote: str
    balances: Mapping[str, int]
    decimals: Mapping[str, int]
    positions: tuple[SeriesPosition, ...] = ()
    collateral: tuple[CollateralToken, ...] = ()
    _balances: dict[str, int] = field(init=False, repr=False, compare=False)
    _decimals: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "option_quote", _addr(self.option_quote))
        balances = {_addr(k): int(v) for k, v in self.balances.items()}
        decimals = {_addr(k): int(v) for k, v in self.decimals.items()}
        object.__setattr__(self, "_balances", balances)
        object.__setattr__(self, "_decimals", decimals)
        object.__setattr__(self, "balances", dict(balances))
        object.__setattr__(self, "decimals", dict(decimals))
        object.__setattr__(self, "positions", tuple(self.positions))
        object.__setattr__(self, "collateral", tuple(self.collateral))
        if len(self.positions) > MAX_OPEN:
            raise ValueError(f"a wallet holds at most {MAX_OPEN} open positions")
        if len({p.key for p in self.positions}) != len(self.positions):
            raise ValueError("an instrument appears twice in the open list")

    def balance(self, token: str) -> int:
        try:
            return self._balances[_addr(token)]
        except KeyError:
            raise MissingState(f"no balance of {token} in the wallet state") from None

    def unit(self, underlying: str) -> int:
        try:
            d = self._decimals[_addr(underlying)]
        except KeyError:
            raise MissingState(f"no decimals of {underlying} in the wallet state") from None
        unit: int = 10**d
        if unit > UINT256_MAX:
            raise MarginReverts(f"10**{d} overflows uint256")
        return unit

    def position(self, underlying: str, expiry: int, strike: int, is_call: bool) -> int:
        """Signed size of one instrument (0 when not open)."""
        key = (_addr(underlying), expiry, strike, is_call)
        for p in self.positions:
            if p.key == key:
                return p.size
        return 0

    def margin_status(self) -> MarginStatus:
        return margin_status(self)

    def after_fills(self, fills: Iterable[Fill]) -> WalletState:
        return apply_fills(self, fills)

    def after_fill(
        self,
        underlying: str,
        expiry: int,
        strike: int,
        is_call: bool,
        is_buy: bool,
        amount: int,
        quote_amount: int,
    ) -> WalletState:
        """The state after one option fill in the option quote (see :func:`apply_fills`)."""
        fill = OptionFill(underlying, expiry, strike, is_call, is_buy, amount, quote_amount)
        return apply_fills(self, [fill])


# ---------------------------------------------------------------------------- checked math


def _u(x: int) -> int:
    if not 0 <= x <= UINT256_MAX:
        raise MarginReverts("uint256 overflow")
    return x


def _i(x: int) -> int:
    if not INT256_MIN <= x <= INT256_MAX:
        raise MarginReverts("int256 overflow")
    return x


def _payoff_at(positions: Sequence[OptionPosition], cover: int, price: int) -> int:
    """``margin.payoff_at`` with the EVM's checks."""
    total = _i(_u(cover * price))  # convert(uint256 -> int256) reverts above INT256_MAX
    for p in positions:
        if p.is_call:
            if price > p.strike:
                total = _i(total + _i(p.size * _i(price - p.strike)))
        elif p.strike > price:
            total = _i(total + _i(p.size * _i(p.strike - price)))
    return total


def series_requirement_checked(positions: Sequence[OptionPosition], unit: int) -> tuple[int, int]:
    """``margin.series_requirement`` -> (quote_required, underlying_cover), with the EVM's
    overflow checks (same values as :func:`gateway.risk.margin.series_requirement`)."""
    if len(positions) > MAX_SERIES_POSITIONS:
        raise ValueError(f"a series holds at most {MAX_SERIES_POSITIONS} positions")
    for p in positions:
        _i(p.size)
        _u(p.strike)
    net_calls = 0
    for p in positions:
        if p.is_call:
            net_calls = _i(net_calls + p.size)
    cover = _i(-net_calls) if net_calls < 0 else 0
    worst = _payoff_at(positions, cover, 0)
    for p in positions:
        worst = min(worst, _payoff_at(positions, cover, p.strike))
    if worst >= 0:
        return 0, cover
    loss = _i(-worst)
    return _u(loss + unit - 1) // unit, cover


# ---------------------------------------------------------------------------- the rule


def requirements(state: WalletState) -> tuple[int, dict[str, int]]:
    """(quote required, underlying cover per underlying) of the wallet's option series, summed
    as the contract sums them (grouped by (underlying, expiry), in open-list order)."""
    groups: dict[tuple[str, int], list[OptionPosition]] = {}
    for p in state.positions:
        groups.setdefault(p.series, []).append(OptionPosition(p.strike, p.is_call, p.size))
    required = 0
    cover: dict[str, int] = {}
    for (underlying, _expiry), legs in groups.items():
        req, need = series_requirement_checked(legs, state.unit(underlying))
        required = _u(required + req)
        if need > 0:
            cover[underlying] = _u(cover.get(underlying, 0) + need)
    return required, cover


def margin_status(state: WalletState) -> MarginStatus:
    """Exactly ``MarginWallet.margin_status()`` for ``state`` (raises :class:`MarginReverts`
    where the contract reverts)."""
    if not state.positions:
        return MarginStatus(0, 0, True)
    required, cover = requirements(state)
    for token, need in cover.items():
        if state.balance(token) < need:
            return MarginStatus(required, 0, False)
    quote = state.option_quote
    available = state.balance(quote)
    if available >= required:
        return MarginStatus(required, available, True)
    for c in state.collateral:
        if c.token == quote:
            continue
        balance = state.balance(c.token) - cover.get(c.token, 0)
        if balance > 0:
            available = _u(available + c.value(balance))
    return MarginStatus(required, available, available >= required)


def collateral_value(token: CollateralToken, amount: int) -> int:
    """``Settlement.collateral_value(token, amount)``."""
    return token.value(amount)


# ---------------------------------------------------------------------------- fills


def apply_fills(state: WalletState, fills: Iterable[Fill]) -> WalletState:
    """The wallet state after ``fills`` settle in one batch, as the wallet books them.

    Options (``_apply_position``): a wallet with open positions only takes options in its
    option quote (with none open, the first option fill sets it); a new instrument is appended
    to the open list (at most 16), one that nets to zero is removed by moving the last entry
    into its slot. Token flows: a buy pays ``quote_amount`` of the quote and receives the base
    (spot) / the position (option); a sell the reverse. Flows are netted per token over the
    batch; a token whose net outflow exceeds the balance makes the wallet's transfer (so the
    batch) fail: :class:`FillRejected`. Not modelled here (the caller's checks): signature,
    nonce, deadline, limit price, owner limits, expiry, the Settlement's listing.
    """
    option_quote = state.option_quote
    positions = list(state.positions)
    net: dict[str, int] = {}
    for fill in fills:
        if fill.amount == 0:
            raise FillRejected("wallet: zero fill")  # `_consume` refuses it
        if isinstance(fill, SpotFill):
            base_delta = fill.amount if fill.is_buy else -fill.amount
            net[fill.base] = net.get(fill.base, 0) + base_delta
            quote_token = fill.quote
        else:
            quote_token = fill.quote or option_quote
            if quote_token != option_quote:
                if positions:
                    raise FillRejected("wallet: one option quote per wallet")
                option_quote = quote_token
            delta = fill.amount if fill.is_buy else -fill.amount
            key = (fill.underlying, fill.expiry, fill.strike, fill.is_call)
            index = next((i for i, p in enumerate(positions) if p.key == key), None)
            if index is None:
                if len(positions) >= MAX_OPEN:
                    raise FillRejected("wallet: too many positions")
                positions.append(SeriesPosition(*key, size=delta))
            else:
                new = positions[index].size + delta
                if new == 0:
                    last = positions.pop()
                    if index < len(positions):
                        positions[index] = last
                else:
                    positions[index] = replace(positions[index], size=new)
        quote_delta = -fill.quote_amount if fill.is_buy else fill.quote_amount
        net[quote_token] = net.get(quote_token, 0) + quote_delta
    balances = dict(state.balances)
    for token, delta in net.items():
        if delta == 0 and token not in balances:
            continue
        new_balance = state.balance(token) + delta
        if new_balance < 0:
            raise FillRejected(f"wallet: transfer failed ({token} short by {-new_balance})")
        balances[token] = new_balance
    return replace(state, option_quote=option_quote, positions=tuple(positions), balances=balances)


def margin_after_fills(state: WalletState, fills: Iterable[Fill]) -> MarginStatus:
    """The pre-trade question: ``margin_status`` of the wallet once ``fills`` settle (raises
    :class:`FillRejected` when the wallet would refuse them outright)."""
    return margin_status(apply_fills(state, fills))
