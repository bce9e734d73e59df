"""Constant-product (Uniswap v2) pool math: exact integers, as the pair contract computes.

`fee_bps` generalizes Uniswap v2's 0.3% (997/1000 is 9970/10000, the same integers).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gateway.domain.errors import DomainError
from gateway.domain.market import BookLevel

BPS = 10_000


class InsufficientLiquidity(DomainError):
    code = "insufficient_liquidity"


@dataclass(frozen=True, slots=True)
class PoolSwap:
    """`amount_in` of `token_in` into `pair` for exactly `amount_out` of `token_out` (token
    units): the swap behind a pool fill, run inside the settlement transaction."""

    pair: str
    token_in: str
    token_out: str
    amount_in: int
    amount_out: int


def amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """Output for an exact input (`UniswapV2Library.getAmountOut`)."""
    if amount_in <= 0:
        raise DomainError("amount in must be positive", field="quantity")
    if reserve_in <= 0 or reserve_out <= 0:
        raise InsufficientLiquidity("the pool is empty")
    with_fee = amount_in * (BPS - fee_bps)
    return with_fee * reserve_out // (reserve_in * BPS + with_fee)


def amount_in(amount_out: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """Input needed for an exact output (`UniswapV2Library.getAmountIn`)."""
    if amount_out <= 0:
        raise DomainError("amount out must be positive", field="quantity")
    if reserve_in <= 0 or amount_out >= reserve_out:
        raise InsufficientLiquidity(f"the pool holds less than {amount_out}")
    return reserve_in * amount_out * BPS // ((reserve_out - amount_out) * (BPS - fee_bps)) + 1


def book_levels(
    reserve_base: int,
    reserve_quote: int,
    *,
    base_decimals: int,
    quote_decimals: int,
    chunk: int,
    levels: int,
    fee_bps: int = 30,
) -> tuple[tuple[BookLevel, ...], tuple[BookLevel, ...]]:
    """The pool as a book: consecutive chunks of `chunk` base units and what each costs.

    Ask k is the quote paid for the k-th chunk bought (exact-output swaps), bid k the quote
    received for the k-th chunk sold (exact-input swaps), both with the pool fee, so each
    level is a price a taker really gets for that slice.
    """
    base_unit = Decimal(10) ** base_decimals
    quote_unit = Decimal(10) ** quote_decimals
    size = Decimal(chunk) / base_unit
    asks: list[BookLevel] = []
    bids: list[BookLevel] = []
    paid = 0
    received = 0
    for k in range(1, levels + 1):
        if chunk * k < reserve_base:
            total_paid = amount_in(chunk * k, reserve_quote, reserve_base, fee_bps)
            price = Decimal(total_paid - paid) / quote_unit / size
            if asks and price < asks[-1].price:  # integer rounding: keep the side sorted
                price = asks[-1].price
            asks.append(BookLevel(price, size))
            paid = total_paid
        total_received = amount_out(chunk * k, reserve_base, reserve_quote, fee_bps)
        if total_received > received:
            price = Decimal(total_received - received) / quote_unit / size
            if bids and price > bids[-1].price:
                price = bids[-1].price
            bids.append(BookLevel(price, size))
        received = total_received
    return tuple(bids), tuple(asks)
