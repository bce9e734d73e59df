"""Text from outside, made fit to store: nothing PostgreSQL refuses, one line, bounded."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.foreign_text import NO_CONTROL_CHARACTERS, printable


@given(st.text(max_size=700), st.integers(min_value=2, max_value=600))
def test_printable_text_has_no_control_character_and_fits(text: str, limit: int) -> None:
    clean = printable(text, limit)
    assert re.fullmatch(NO_CONTROL_CHARACTERS, clean)
    assert len(clean) <= limit
    if len(text) <= limit:  # nothing cut: every other character kept in its place
        assert len(clean) == len(text)
        assert all(c == d or d == " " for c, d in zip(text, clean, strict=True))


@given(st.text(st.characters(blacklist_categories=("Cc",)), max_size=100))
def test_text_without_control_characters_is_kept_as_it_is(text: str) -> None:
    assert printable(text) == text
