"""Canonical and compact JSON are json.dumps's text, whichever encoder writes it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.json_text import canonical_json, compact_json

# JSON without floats (money is never one): text of every kind (lone surrogates, controls,
# non-ASCII), integers well past 64 bits, and non-string keys (json writes them as strings)
scalars = st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.text()
keys = st.text() | st.integers(-(2**70), 2**70)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(keys, children, max_size=4)
        | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


def reference(value: Any, ascii_only: bool) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only)


@given(values, st.booleans())
def test_the_text_is_json_dumps_sorted_and_compact(value: Any, ascii_only: bool) -> None:
    try:
        expected = reference(value, ascii_only)
    except TypeError:  # keys json cannot order (text next to integers)
        with pytest.raises(TypeError):
            canonical_json(value, ascii_only=ascii_only)
        return
    assert canonical_json(value, ascii_only=ascii_only) == expected


@given(values)
def test_compact_text_is_json_dumps_in_the_given_key_order(value: Any) -> None:
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert compact_json(value) == expected


@dataclass
class Point:
    x: int


@pytest.mark.parametrize("value", [datetime(2026, 1, 1, tzinfo=UTC), Point(1)])
def test_what_json_refuses_is_still_refused(value: object) -> None:
    # orjson would write these; the audit and fingerprints keep refusing them
    with pytest.raises(TypeError):
        canonical_json({"at": value})
