"""Order and trade ids: 26 Crockford digits that decode to the 128-bit value and sort by it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.oms.ids import _ALPHABET, encode_128, new_id

values = st.integers(min_value=0, max_value=2**128 - 1)


def decode(digits: str) -> int:
    value = 0
    for digit in digits:
        value = value * 32 + _ALPHABET.index(digit)
    return value


@given(values)
def test_the_digits_decode_to_the_value(value: int) -> None:
    digits = encode_128(value)
    assert len(digits) == 26
    assert decode(digits) == value


@given(values, values)
def test_digits_sort_as_their_values(a: int, b: int) -> None:
    assert (encode_128(a) < encode_128(b)) == (a < b)


def test_a_new_id_has_its_prefix_and_26_digits() -> None:
    made = {new_id("ord") for _ in range(1000)}
    assert len(made) == 1000
    assert all(i.startswith("ord_") and len(i) == 30 and decode(i[4:]) >= 0 for i in made)
