"""A pool fill's recorded price is its swap's rounded average: the store audit accepts the
rounding of that price's last digit and nothing more; a book fill must match exactly."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from types import SimpleNamespace

from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.settlement.audit_chain import AuditedFill
from gateway.settlement.audit_store import _Expected, _quote_agrees

WETH_DECIMALS, USDC_DECIMALS = 18, 6


def onchain(quote: int) -> AuditedFill:
    return AuditedFill("0x", 1, 1, 1, 1, "0x", "0x", "0x", "buy", 0, quote, "order")


def expectation(quantity: Decimal, price: Decimal, quote: int | None = None) -> _Expected:
    exact = quantity * price * 10**USDC_DECIMALS
    return _Expected("0x", int(quantity.scaleb(WETH_DECIMALS)), quote, exact, None)


@given(
    amount=st.integers(min_value=10**15, max_value=10**22),  # 0.001 .. 10,000 WETH
    quote=st.integers(min_value=10**6, max_value=10**14),
    places=st.integers(min_value=2, max_value=12),
)
def test_a_pool_price_rounded_from_its_swap_agrees_and_one_quote_unit_off_does_not(
    amount: int, quote: int, places: int
) -> None:
    quantity = Decimal(amount).scaleb(-WETH_DECIMALS)
    average = Decimal(quote).scaleb(-USDC_DECIMALS) / quantity
    assume(average >= 1)  # a price of at least one quote token per base token
    price = average.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    pool = SimpleNamespace(venue="uniswap", price=price)
    assert _quote_agrees(pool, expectation(quantity, price), onchain(quote))
    moved = SimpleNamespace(venue="uniswap", price=price + 1)
    assert not _quote_agrees(moved, expectation(quantity, moved.price), onchain(quote))


def test_a_book_fill_must_match_to_the_unit() -> None:
    book = SimpleNamespace(venue="internal", price=Decimal("3000.25"))
    quantity = Decimal(1)
    assert _quote_agrees(
        book, expectation(quantity, book.price, 3_000_250_000), onchain(3_000_250_000)
    )
    assert not _quote_agrees(
        book, expectation(quantity, book.price, 3_000_250_000), onchain(3_000_250_001)
    )
